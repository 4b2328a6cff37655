//! `quantization.weight_range` of a space file reaches every layer of the supernet; under `Mse`
//! the supernet's forward equals the extracted network's, and the exported weights file gives
//! back the same network (its codes carry the clipped scales); the method is part of the
//! fingerprint.

mod common;
use common::{input, max_abs_diff};

use burn::module::Module;
use burn::tensor::Device;
use spaces::{Rng, Space, WeightRange};
use supernet::layers::conv_bn::SuperConv;
use supernet::{Phase, StaticNet, Supernet};

fn space(range: &str) -> Space {
    let src = format!(
        r#"(
        version: 1,
        input: (channels: 1, height: 12, width: 12),
        classes: 10,
        stem: (width: [4, 8]),
        stages: [(block: ResidualBasic, depth: [1, 2], width: [8, 12], kernel: [3, 5], stride: 2)],
        quantization: (
            weights: [Int(2), Int(4), E2M1, E4M3, Fp32],
            activations: [Int(4), Int(8), Fp32]{range}
        ),
    )"#
    );
    Space::parse(&src, "range.ron", "range").unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn the_setting_reaches_every_layer_and_is_part_of_the_fingerprint() {
    let device = Device::flex();
    let mse = space(", weight_range: Mse");
    assert_eq!(mse.quantization.weight_range, WeightRange::Mse);
    let net = Supernet::new(&mse, &device);
    let SuperConv::Dense(stem) = &net.stem.conv else {
        panic!("a dense stem")
    };
    assert_eq!(stem.weight_quant.range, WeightRange::Mse);
    assert_eq!(net.fc.weight_quant.range, WeightRange::Mse);
    for b in &net.blocks {
        for l in b.layers.iter().chain(b.shortcut.iter()) {
            let SuperConv::Dense(c) = &l.conv else {
                panic!("dense convs")
            };
            assert_eq!(c.weight_quant.range, WeightRange::Mse);
        }
    }
    // `Mse` is the default: leaving it out is the same space; `Max` is another
    assert_eq!(space("").quantization.weight_range, WeightRange::Mse);
    assert_eq!(space("").fingerprint(), mse.fingerprint());
    assert_ne!(
        space(", weight_range: Max").fingerprint(),
        mse.fingerprint()
    );
}

#[test]
fn an_unknown_range_is_a_located_error() {
    let src = r#"(version: 1, input: (channels: 1, height: 8, width: 8), classes: 10,
        stem: (width: [8]),
        stages: [(block: ConvBnRelu, depth: [1], width: [8], kernel: [3], stride: 1)],
        quantization: (weights: [Int(4)], activations: [Int(4)], weight_range: Median))"#;
    let err = Space::parse(src, "bad.ron", "bad").unwrap_err();
    let text = format!("{err:?}");
    assert!(text.contains("Median"), "{text}");
}

#[test]
fn under_mse_the_supernet_the_extracted_and_the_exported_networks_agree() {
    let device = Device::flex();
    let mut rng = Rng::new(11);
    let (mse, max) = (space(", weight_range: Mse"), space(", weight_range: Max"));
    let net = Supernet::new(&mse, &device);
    // the same initial weights under max ranges
    let net_max = Supernet::new(&max, &device).load_record(net.clone().into_record());
    let mut archs = vec![mse.largest(), mse.smallest()];
    archs.extend((0..8).map(|_| mse.sample_uniform(&mut rng)));
    let mut differs = 0;
    for (k, arch) in archs.iter().enumerate() {
        for n in [&net, &net_max] {
            n.reset_running_stats();
            for i in 0..2 {
                n.forward(input(&mse, 4, &device), arch, Phase::Recalibrate(i))
                    .unwrap();
            }
        }
        let x = input(&mse, 4, &device);
        let y = net.forward(x.clone(), arch, Phase::Eval).unwrap();
        let model = net.extract(arch).unwrap();
        let d = max_abs_diff(y.clone(), model.forward(x.clone()));
        assert!(d <= 1e-5, "arch {k}: |supernet - extracted| = {d}");
        let bytes = model.to_safetensors().unwrap();
        let back = StaticNet::from_safetensors(model.plan.clone(), &bytes, &device).unwrap();
        let d = max_abs_diff(model.forward(x.clone()), back.forward(x.clone()));
        assert!(d <= 1e-6, "arch {k}: |extracted - exported| = {d}");
        // the member's weights read back are those extracted, bit for bit
        assert_eq!(back.to_safetensors().unwrap(), bytes, "arch {k}");
        let y_max = net_max.forward(x, arch, Phase::Eval).unwrap();
        if max_abs_diff(y, y_max) > 1e-3 {
            differs += 1;
        }
    }
    // members with int2, e2m1 or int4 weights are quantized differently
    assert!(differs >= archs.len() / 2, "{differs} of {}", archs.len());
}
