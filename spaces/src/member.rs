//! The space of one member alone: what stand-alone training of a member (`qnas train --arch`,
//! `qnas correlate`) builds its network from.
//!
//! Every architecture choice that sizes a weight (widths, kernels, expand ratios, the head's
//! conv width) and the downsampling configuration are narrowed to the member's own, so that a
//! network built from the narrowed space holds the member's weights at the member's shapes and
//! is initialized for them, as a model written for that member alone would be. Depth choices
//! are kept: block positions (which downsampling configurations and checkpoints refer to)
//! depend on every stage's largest depth, and a block the member does not use is never run.
//! Format choices are kept too: they size no weight, and the member's formats stay valid.

use crate::arch::{Arch, ArchError};
use crate::space::{Downsampling, Space, fnv1a};

impl Space {
    /// The space of `arch` alone (see the module docs): `arch` is a member of it, and its
    /// largest member has `arch`'s architecture. The training settings are kept except the
    /// mixture, which is one network (a member has one pooling configuration).
    pub fn for_member(&self, arch: &Arch) -> Result<Space, ArchError> {
        self.validate(arch)?;
        let mut s = self.clone();
        s.stem.widths = vec![arch.stem.width];
        s.stem.kernels = vec![arch.stem.kernel];
        for (stage, sa) in s.stages.iter_mut().zip(&arch.stages) {
            stage.widths = vec![sa.width];
            let mut kernels: Vec<u32> = sa.blocks.iter().map(|b| b.kernel).collect();
            kernels.sort_unstable();
            kernels.dedup();
            let mut expands: Vec<f64> = sa.blocks.iter().map(|b| b.expand).collect();
            expands.sort_by(f64::total_cmp);
            expands.dedup();
            // a stage the member leaves empty keeps its choices (its blocks never run)
            if !kernels.is_empty() {
                stage.kernels = kernels;
                stage.expands = expands;
            }
        }
        if let Some(w) = arch.head.conv_width {
            s.head.conv_widths = vec![w];
        }
        if let (Some(d), Some(p)) = (&self.downsampling, &arch.pooling) {
            s.downsampling = Some(Downsampling {
                configs: vec![p.positions.clone()],
                ops: d.ops.iter().copied().filter(|o| *o == p.op).collect(),
            });
        }
        s.train.mixture.supernets = 1;
        debug_assert!(s.validate(arch).is_ok());
        Ok(s)
    }

    /// A fingerprint of `arch` trained alone in this space: the narrowed space's fingerprint
    /// mixed with the member itself (two members can narrow to the same space).
    pub fn member_fingerprint(&self, arch: &Arch) -> Result<u64, ArchError> {
        let narrowed = self.for_member(arch)?;
        let text = format!("{:016x} {}", narrowed.fingerprint(), arch.key());
        Ok(fnv1a(text.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::{Rng, Space};

    fn preset(name: &str) -> Space {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("presets")
            .join(name);
        Space::load(&path).unwrap()
    }

    #[test]
    fn a_member_is_the_largest_of_its_own_space() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("presets");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert!(names.iter().any(|n| n == "resnet20-pooling.ron"));
        for name in &names {
            let space = preset(name);
            let mut rng = Rng::new(7);
            for _ in 0..20 {
                let arch = space.sample_uniform(&mut rng);
                let alone = space.for_member(&arch).unwrap();
                alone.validate(&arch).unwrap();
                let largest = alone.largest();
                assert_eq!(largest.stem, arch.stem, "{name}");
                assert_eq!(largest.head, arch.head, "{name}");
                assert_eq!(largest.pooling, arch.pooling, "{name}");
                for (l, a) in largest.stages.iter().zip(&arch.stages) {
                    assert_eq!(l.width, a.width, "{name}");
                }
                // the costs of the member do not change by narrowing the space
                assert_eq!(alone.cost(&arch).unwrap(), space.cost(&arch).unwrap());
                assert_eq!(alone.train.mixture.supernets, 1);
            }
        }
    }

    #[test]
    fn member_fingerprints_differ_between_members_and_repeat() {
        let space = preset("mnist.ron");
        let a = space.smallest();
        let b = space.largest();
        let fa = space.member_fingerprint(&a).unwrap();
        assert_eq!(fa, space.member_fingerprint(&a).unwrap());
        assert_ne!(fa, space.member_fingerprint(&b).unwrap());
        assert_ne!(fa, space.fingerprint());
        // formats alone change the member, not the narrowed space
        let a8 = space
            .with_uniform_formats(&a, crate::Format::Int(8), crate::Format::Int(8))
            .unwrap();
        assert_eq!(
            space.for_member(&a).unwrap().fingerprint(),
            space.for_member(&a8).unwrap().fingerprint()
        );
        assert_ne!(fa, space.member_fingerprint(&a8).unwrap());
    }

    #[test]
    fn an_arch_of_another_space_is_refused() {
        let mnist = preset("mnist.ron");
        let mut other = mnist.largest();
        other.stages[0].width = 7;
        let e = mnist.for_member(&other).unwrap_err();
        assert!(e.to_string().contains("width"), "{e}");
    }
}
