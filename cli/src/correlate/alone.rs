//! Where `qnas correlate` keeps each member's stand-alone training: one run folder per member,
//! recipe, step count and seed, and whether it is finished.

use std::path::{Path, PathBuf};

use spaces::{Arch, Space};

use crate::run_dir::RunDir;

/// The run folder of a member trained alone for `steps` steps with initialization seed
/// `train.seed + seed`: named by the member's network ([`Space::member_fingerprint`]), the
/// stand-alone recipe ([`recipe_key`]), the steps and the seed, so that a folder of trainings
/// shared by several runs (`--alone`) is never reused under another recipe or data set.
pub(super) fn member_dir(
    alone: &Path,
    space: &Space,
    recipe: u32,
    arch: &Arch,
    steps: u64,
    seed: usize,
) -> PathBuf {
    let fp = space.member_fingerprint(arch).unwrap_or(0);
    let name = match seed {
        0 => format!("{fp:016x}-r{recipe:08x}-s{steps}"),
        k => format!("{fp:016x}-r{recipe:08x}-s{steps}-seed{k}"),
    };
    alone.join(name)
}

/// A key of what a stand-alone training depends on besides the member's network, its steps and
/// its seed offset: the data (kind, folder, split, augmentation) and the recipe (batch,
/// optimizer, schedule, base seed, zero-initialized residuals, recalibration batches). The
/// sampling rule, distillation and mixture only shape the supernet and are left out. The data
/// folder is taken canonical where it exists, so that two space files naming it by different
/// relative paths share their trainings.
pub fn recipe_key(space: &Space) -> u32 {
    let t = &space.train;
    let data = space.data.as_ref().map(|d| {
        let path = std::fs::canonicalize(&d.path).unwrap_or_else(|_| d.path.clone());
        (d.kind, path, d.validation_fraction, d.seed, &d.augment)
    });
    let recipe = (
        data,
        t.batch_size,
        &t.optimizer,
        &t.schedule,
        t.seed,
        t.zero_init_residual,
        t.recalibration_batches,
    );
    crc32fast::hash(
        serde_json::to_string(&recipe)
            .unwrap_or_default()
            .as_bytes(),
    )
}

/// Whether a member's run folder holds a finished training of `steps` steps.
pub(super) fn finished(dir: &Path, steps: u64) -> bool {
    RunDir::new(dir)
        .read_summary()
        .ok()
        .flatten()
        .is_some_and(|s| s.steps == steps && s.alone.is_some())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use spaces::{Optimizer, Sampling, Space};

    use super::{member_dir, recipe_key};

    fn digits() -> Space {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spaces/presets/digits.ron");
        Space::load(&path).unwrap()
    }

    #[test]
    fn the_recipe_and_the_data_name_the_folder_and_the_supernet_rule_does_not() {
        let base = digits();
        let key = recipe_key(&base);
        // what only shapes the supernet leaves the key alone
        let mut s = base.clone();
        s.train.sampling = Sampling::Uniform;
        s.train.distill = !s.train.distill;
        s.train.checkpoint_every += 7;
        assert_eq!(recipe_key(&s), key);
        // what a training alone depends on changes it
        let mut lr = base.clone();
        if let Optimizer::Sgd { lr: l, .. } = &mut lr.train.optimizer {
            *l *= 2.0;
        }
        let mut batch = base.clone();
        batch.train.batch_size *= 2;
        let mut seed = base.clone();
        seed.train.seed += 1;
        let mut split = base.clone();
        split.data.as_mut().unwrap().seed += 1;
        let mut zero = base.clone();
        zero.train.zero_init_residual = !zero.train.zero_init_residual;
        let keys = [&lr, &batch, &seed, &split, &zero].map(recipe_key);
        for (i, k) in keys.iter().enumerate() {
            assert_ne!(*k, key, "variant {i}");
        }
        // the folder carries it, with the member, the steps and the seed
        let arch = base.smallest();
        let a = member_dir(Path::new("alone"), &base, key, &arch, 60, 0);
        let b = member_dir(Path::new("alone"), &lr, keys[0], &arch, 60, 0);
        let c = member_dir(Path::new("alone"), &base, key, &arch, 60, 1);
        assert_ne!(a, b);
        assert!(a.to_str().unwrap().ends_with("-s60"));
        assert!(c.to_str().unwrap().ends_with("-s60-seed1"));
    }
}
