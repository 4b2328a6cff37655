//! For many sampled members of every preset: the supernet's forward equals the forward of the
//! extracted static network (max abs difference <= 1e-5), after recalibrating the member.

use std::path::PathBuf;

use burn::tensor::{Device, Distribution, Tensor};
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

fn input(space: &Space, batch: usize, device: &Device) -> Tensor<4> {
    let i = space.input;
    Tensor::random(
        [
            batch,
            i.channels as usize,
            i.height as usize,
            i.width as usize,
        ],
        Distribution::Normal(0.0, 1.0),
        device,
    )
}

fn max_abs_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
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
    let net = Supernet::new(space, &Device::flex());
    for b in &net.blocks {
        let last = b.layers.last().unwrap();
        assert_eq!(last.bn.gamma.val().abs().sum().into_scalar::<f32>(), 0.0);
        assert!(b.layers[0].bn.gamma.val().sum().into_scalar::<f32>() > 0.0);
    }
}
