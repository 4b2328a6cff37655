//! The deployable weights file (`supernet::deploy`): the network rebuilt from it computes
//! exactly what the extracted network computes (and within 1e-5 of the supernet), the weight
//! codes take exactly their formats' bits, and writing a rebuilt network gives the same bytes.

mod common;
use common::{input, max_abs_diff};

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Device, Tensor};
use spaces::plan::Plan;
use spaces::{Arch, Format, Rng, Space};
use supernet::deploy::{DeployError, weight_sizes};
use supernet::{Phase, StaticNet, Supernet};

/// Residual and inverted-residual stages, every kind of format, one format per layer.
fn space() -> Space {
    let src = r#"(
        version: 1,
        input: (channels: 1, height: 8, width: 8),
        classes: 10,
        stem: (width: [8, 16]),
        stages: [
            (block: ResidualBasic, depth: [1, 2], width: [16, 24], kernel: [1, 3], stride: 2),
            (block: InvertedResidual, depth: [1, 2], width: [16, 24], expand: [1.0, 3.0], stride: 1),
        ],
        head: (conv_width: [32, 48]),
        quantization: (
            weights: [Int(2), Int(3), Int(4), Int(5), Int(8), Int(12), Int(16), E4M3, E5M2, E2M1, E3M2, E2M3, Float(e: 3, m: 4), Fp16, Bf16, Fp32],
            activations: [Int(2), Int(4), Int(8), E4M3, E5M2, E2M1, Fp16, Fp32],
            tie: Layer,
        ),
    )"#;
    Space::parse(src, "deploy.ron", "deploy").unwrap_or_else(|e| panic!("{e:?}"))
}

/// A supernet recalibrated for `arch`, and its extracted network.
fn extracted(net: &Supernet, arch: &Arch, device: &Device) -> StaticNet {
    net.reset_running_stats();
    for n in 0..2 {
        net.forward(input(&net.space, 16, device), arch, Phase::Recalibrate(n))
            .unwrap();
    }
    net.extract(arch).unwrap()
}

fn y_loaded_values(net: &StaticNet, x: &Tensor<4>) -> Vec<f32> {
    net.forward(x.clone())
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

fn expected_sizes(plan: &Plan) -> Vec<(String, usize, Format)> {
    let mut out = Vec::new();
    let conv = |c: &spaces::plan::ConvLayer| {
        let n = (c.out_channels * c.in_channels / c.groups * c.kernel * c.kernel) as usize;
        (c.name.clone(), n, c.formats.weights)
    };
    out.push(conv(&plan.stem));
    for b in &plan.blocks {
        out.extend(b.convs.iter().map(conv));
        out.extend(b.shortcut.iter().map(conv));
    }
    out.extend(plan.head_conv.iter().map(conv));
    let fc = &plan.fc;
    out.push((
        fc.name.clone(),
        (fc.in_features * fc.out_features) as usize,
        fc.formats.weights,
    ));
    out
}

#[test]
fn weights_file_round_trips_exactly_and_takes_the_formats_bits() {
    let device = Device::flex();
    device.seed(11);
    let space = space();
    let net = Supernet::new(&space, &device);
    let mut rng = Rng::new(3);
    let mut archs = vec![space.largest(), space.smallest()];
    archs.extend((0..10).map(|_| space.sample_uniform(&mut rng)));
    let mut seen = std::collections::BTreeSet::new();
    for (k, arch) in archs.iter().enumerate() {
        let model = extracted(&net, arch, &device);
        let x = input(&space, 8, &device);
        let y_super = net.forward(x.clone(), arch, Phase::Eval).unwrap();
        let y_static = model.forward(x.clone());
        let d = max_abs_diff(y_super.clone(), y_static.clone());
        assert!(d <= 1e-5, "arch {k}: max |supernet - extracted| = {d}");

        let bytes = model.to_safetensors().unwrap();
        let plan = space.plan(arch).unwrap();
        let loaded = StaticNet::from_safetensors(plan.clone(), &bytes, &device).unwrap();
        // the rebuilt network holds exactly the extracted values: identical logits
        assert_eq!(
            y_loaded_values(&loaded, &x),
            y_static.into_data().try_to_vec::<f32>().unwrap(),
            "arch {k}: loaded != extracted"
        );
        // the burn record reloads into the skeleton of the member, with the same logits
        let record = model
            .clone()
            .with_stable_ids()
            .into_record()
            .into_bytes()
            .unwrap();
        // with stable ids the record's bytes depend only on the weights
        let again = loaded
            .clone()
            .with_stable_ids()
            .into_record()
            .into_bytes()
            .unwrap();
        assert!(record[..] == again[..], "arch {k}: records differ");
        let reloaded = StaticNet::init(&space, arch, &device)
            .unwrap()
            .try_load_record(ModuleRecord::from_bytes(record).unwrap())
            .unwrap();
        assert_eq!(
            reloaded
                .forward(x.clone())
                .into_data()
                .try_to_vec::<f32>()
                .unwrap(),
            y_loaded_values(&loaded, &x),
            "arch {k}: record reloaded != extracted"
        );
        // writing the rebuilt network gives the same file
        let again = loaded.to_safetensors().unwrap();
        let first_diff = again.iter().zip(&bytes).position(|(a, b)| a != b);
        assert!(
            again.len() == bytes.len() && first_diff.is_none(),
            "arch {k}: export -> load -> export changed the file ({} vs {} bytes, first difference at {first_diff:?}: {:?})",
            again.len(),
            bytes.len(),
            first_diff.map(|i| String::from_utf8_lossy(
                &bytes[i.saturating_sub(40)..(i + 40).min(bytes.len())]
            )
            .to_string())
        );
        // every weight tensor takes exactly ceil(n * bits / 8) bytes
        let sizes = weight_sizes(&bytes).unwrap();
        let expected = expected_sizes(&plan);
        assert_eq!(sizes.len(), expected.len());
        for (got, (name, n, format)) in sizes.iter().zip(&expected) {
            assert_eq!(&got.layer, name);
            assert_eq!(got.values, *n, "{name}");
            assert_eq!(
                got.bytes,
                (n * format.bits() as usize).div_ceil(8),
                "{name}: {n} weights in {format}"
            );
            seen.insert(format.to_string());
        }
    }
    assert!(seen.len() >= 8, "formats covered: {seen:?}");
}

#[test]
fn damaged_files_are_refused_with_the_tensor_named() {
    let device = Device::flex();
    device.seed(2);
    let space = space();
    let net = Supernet::new(&space, &device);
    let arch = space.smallest();
    let bytes = extracted(&net, &arch, &device).to_safetensors().unwrap();
    let plan = space.plan(&arch).unwrap();

    // truncated
    let err = StaticNet::from_safetensors(plan.clone(), &bytes[..bytes.len() / 2], &device)
        .err()
        .unwrap();
    assert!(matches!(err, DeployError::Format(_)), "{err}");
    // garbage
    let err = StaticNet::from_safetensors(plan.clone(), b"not a file", &device)
        .err()
        .unwrap();
    assert!(matches!(err, DeployError::Format(_)), "{err}");
    // another architecture's plan: formats or shapes disagree
    let other = space.plan(&space.largest()).unwrap();
    let err = StaticNet::from_safetensors(other, &bytes, &device)
        .err()
        .unwrap();
    assert!(
        matches!(err, DeployError::Metadata(_) | DeployError::Tensor { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("stem"), "{err}");
}
