//! For many sampled members of every preset: the supernet's forward equals the forward of the
//! extracted static network (max abs difference <= 1e-5), after recalibrating the member.

mod common;
use common::{input, max_abs_diff};

use std::path::PathBuf;

use burn::tensor::Device;
use spaces::{Rng, Space};
use supernet::{Phase, Supernet, SupernetConfig};

fn presets() -> Vec<(String, Space)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../spaces/presets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".ron"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| (n.clone(), Space::load(&dir.join(&n)).unwrap()))
        .collect()
}

#[test]
fn supernet_forward_equals_extracted_forward_for_every_preset() {
    let device = Device::flex();
    let mut rng = Rng::new(5);
    let cfg = SupernetConfig {
        zero_init_residual: false,
        ..SupernetConfig::default()
    };
    for (name, space) in presets() {
        let big = space.input.height >= 100;
        let (samples, batch) = if big { (1, 1) } else { (12, 4) };
        let net = Supernet::with_config(&space, &cfg, &device);
        let mut archs = vec![space.largest(), space.smallest()];
        archs.extend((0..samples).map(|_| space.sample_uniform(&mut rng)));
        archs.truncate(if big { 1 } else { archs.len() });
        for (k, arch) in archs.iter().enumerate() {
            // recalibrate batch norms and activation ranges for this member
            net.reset_running_stats();
            for n in 0..2 {
                net.forward(input(&space, batch, &device), arch, Phase::Recalibrate(n))
                    .unwrap();
            }
            let x = input(&space, batch, &device);
            let y = net.forward(x.clone(), arch, Phase::Eval).unwrap();
            let classes = space.classes as usize;
            assert_eq!(y.dims(), [batch, classes], "{name}");
            let model = net.extract(arch).unwrap();
            let z = model.forward(x);
            let d = max_abs_diff(y.clone(), z);
            assert!(
                d <= 1e-5,
                "{name} arch {k}: max |supernet - extracted| = {d}\n{}",
                arch.to_ron()
            );
            assert!(
                y.abs().max().into_scalar::<f32>() > 0.0,
                "{name}: non-trivial logits"
            );
        }
    }
}

#[test]
fn forward_rejects_an_arch_of_another_space() {
    let all = presets();
    let mnist = &all.iter().find(|(n, _)| n == "mnist.ron").unwrap().1;
    let digits = &all.iter().find(|(n, _)| n == "digits.ron").unwrap().1;
    let device = Device::flex();
    let net = Supernet::new(mnist, &device);
    let foreign = digits.largest();
    assert!(
        net.forward(input(mnist, 1, &device), &foreign, Phase::Eval)
            .is_err()
    );
    assert!(net.extract(&foreign).is_err());
}

#[test]
fn zero_init_makes_residual_blocks_start_as_identity_paths() {
    let all = presets();
    let space = &all.iter().find(|(n, _)| n == "resnet20.ron").unwrap().1;
    let cfg = SupernetConfig {
        zero_init_residual: true,
        ..SupernetConfig::default()
    };
    let net = Supernet::with_config(space, &cfg, &Device::flex());
    for b in &net.blocks {
        let last = b.layers.last().unwrap();
        assert_eq!(last.bn.gamma.val().abs().sum().into_scalar::<f32>(), 0.0);
        assert!(b.layers[0].bn.gamma.val().sum().into_scalar::<f32>() > 0.0);
    }
}

#[test]
fn recalibrating_on_one_batch_makes_eval_equal_batch_statistics() {
    // After recalibration on exactly one batch, the running statistics are that batch's
    // statistics, so evaluating the batch equals the training-mode forward on it.
    let all = presets();
    let space = &all.iter().find(|(n, _)| n == "mnist.ron").unwrap().1;
    let device = Device::flex();
    let cfg = SupernetConfig {
        zero_init_residual: false,
        ..SupernetConfig::default()
    };
    let net = Supernet::with_config(space, &cfg, &device);
    let mut rng = Rng::new(2);
    for _ in 0..3 {
        let arch = space
            .with_uniform_formats(
                &space.sample_uniform(&mut rng),
                spaces::Format::FP32,
                spaces::Format::FP32,
            )
            .unwrap();
        let x = input(space, 8, &device);
        // disturb the statistics with another member first
        net.forward(input(space, 8, &device), &space.largest(), Phase::Train)
            .unwrap();
        assert_eq!(net.recalibrate(&arch, [x.clone()]).unwrap(), 1);
        let eval = net.forward(x.clone(), &arch, Phase::Eval).unwrap();
        let train = net.forward(x, &arch, Phase::Recalibrate(0)).unwrap();
        let d = max_abs_diff(eval, train);
        assert!(d <= 1e-4, "max diff {d}");
    }
}

#[test]
fn recalibration_averages_the_batches() {
    let all = presets();
    let space = &all.iter().find(|(n, _)| n == "digits.ron").unwrap().1;
    let device = Device::flex();
    let net = Supernet::new(space, &device);
    let arch = space.smallest();
    let batches: Vec<_> = (0..3).map(|_| input(space, 4, &device)).collect();
    net.recalibrate(&arch, batches.clone()).unwrap();
    let once = net.forward(batches[0].clone(), &arch, Phase::Eval).unwrap();
    // recalibrating again on the same batches gives the same statistics, whatever came between
    net.forward(input(space, 4, &device), &space.largest(), Phase::Train)
        .unwrap();
    net.recalibrate(&arch, batches.clone()).unwrap();
    let twice = net.forward(batches[0].clone(), &arch, Phase::Eval).unwrap();
    assert!(max_abs_diff(once.clone(), twice) <= 1e-6);
    // and differs from recalibrating on the first batch alone
    net.recalibrate(&arch, batches[..1].to_vec()).unwrap();
    let first_only = net.forward(batches[0].clone(), &arch, Phase::Eval).unwrap();
    assert!(max_abs_diff(once, first_only) > 1e-4);
}
