//! `quantization.activation_range` of a space file reaches every activation quantizer of the
//! supernet: a percentile range ignores an outlier a maximum follows, and the extracted
//! network carries that scale; learned steps (LSQ) and per-format ranges of least squared error
//! (MSE) train and reach the extracted network.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use spaces::{Format, Space};
use supernet::Supernet;
use supernet::layers::conv_bn::SuperConv;
use supernet::quant::ActScaleMethod;

fn space(range: &str) -> Space {
    let src = format!(
        r#"(
        version: 1,
        input: (channels: 1, height: 8, width: 8),
        classes: 10,
        stem: (width: [8]),
        stages: [(block: ResidualBasic, depth: [1], width: [8], kernel: [3], stride: 1)],
        quantization: (weights: [Int(4)], activations: [Int(4)]{range}),
    )"#
    );
    Space::parse(&src, "range.ron", "range").unwrap_or_else(|e| panic!("{e:?}"))
}

/// One batch of small values with a single large outlier.
fn batch(device: &Device) -> Tensor<4> {
    let mut v: Vec<f32> = (0..4 * 64).map(|i| ((i % 17) as f32 - 8.0) / 8.0).collect();
    v[5] = 100.0;
    Tensor::from_data(TensorData::new(v, [4, 1, 8, 8]), device)
}

/// The int4 scale of the stem's input quantizer after recalibrating the largest member.
fn stem_scale(space: &Space, device: &Device) -> (ActScaleMethod, f32, f32) {
    let net = Supernet::new(space, device);
    let arch = space.largest();
    let plan = space.plan(&arch).unwrap();
    net.recalibrate_plan(&plan, [batch(device)]);
    let SuperConv::Dense(c) = &net.stem.conv else {
        panic!("a dense stem")
    };
    let scale = c
        .input_quant
        .eval_scale(Format::Int(4))
        .expect("int4 is scaled")
        .into_scalar::<f32>();
    let exported = net.extract(&arch).unwrap();
    let frozen = exported.stem.quant.scale_value();
    (c.input_quant.method, scale, frozen)
}

#[test]
fn a_percentile_range_ignores_an_outlier_and_is_carried_into_the_extracted_network() {
    let device = Device::flex();
    let (m_max, s_max, f_max) = stem_scale(&space(", activation_range: Max"), &device);
    let (m_pct, s_pct, f_pct) = stem_scale(&space(", activation_range: Percentile(99.0)"), &device);
    assert!(
        matches!(m_max, ActScaleMethod::RunningMax { .. }),
        "{m_max:?}"
    );
    assert!(
        matches!(m_pct, ActScaleMethod::Percentile { percentile, .. } if percentile == 99.0),
        "{m_pct:?}"
    );
    // the maximum follows the outlier (100), the 99th percentile the bulk (about 1)
    assert!(s_pct * 10.0 < s_max, "percentile {s_pct}, max {s_max}");
    assert_eq!(f_max, s_max);
    assert_eq!(f_pct, s_pct);
}

#[test]
fn the_range_method_is_part_of_the_fingerprint_and_the_default_is_the_percentile() {
    let default = space("");
    assert_eq!(
        default.quantization.activation_range,
        spaces::ActivationRange::Percentile(99.9)
    );
    assert_eq!(
        default.fingerprint(),
        space(", activation_range: Percentile(99.9)").fingerprint()
    );
    assert_ne!(
        default.fingerprint(),
        space(", activation_range: Max").fingerprint()
    );
    let err = Space::parse(
        r#"(version: 1, input: (channels: 1, height: 8, width: 8), classes: 10,
            stem: (width: [8]),
            stages: [(block: ConvBnRelu, depth: [1], width: [8], kernel: [3], stride: 1)],
            quantization: (weights: [Int(4)], activations: [Int(4)], activation_range: Percentile(150.0)))"#,
        "bad.ron",
        "bad",
    )
    .unwrap_err();
    let text = format!("{err:?}");
    assert!(text.contains("activation_range"), "{text}");
}

fn lsq_space() -> Space {
    Space::parse(&lsq_space_source(), "lsq.ron", "lsq").unwrap_or_else(|e| panic!("{e:?}"))
}

/// A small space with learned activation steps, several formats and a pinned last layer.
fn lsq_space_source() -> String {
    r#"(
        version: 1,
        input: (channels: 1, height: 8, width: 8),
        classes: 10,
        stem: (width: [4, 8]),
        stages: [(block: ResidualBasic, depth: [1, 2], width: [8], kernel: [3], stride: 2)],
        quantization: (
            weights: [Int(4), Int(8)],
            activations: [Int(2), Int(4), E2M1, Fp32],
            tie: Block,
            pins: [(layer: Last, weights: Int(8), activations: Int(8))],
            activation_range: Lsq,
        ),
        train: (steps: 20, batch_size: 16, sampling: Sandwich(random: 1),
            optimizer: Sgd(lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 0.0),
            schedule: Constant(warmup_steps: 0)),
    )"#
    .to_string()
}

/// The stem's LSQ steps, one per format of the quantizer.
fn stem_steps(net: &Supernet) -> (Vec<Format>, Vec<f32>) {
    let SuperConv::Dense(c) = &net.stem.conv else {
        panic!("a dense stem")
    };
    let q = &c.input_quant;
    let steps = q.steps.as_ref().expect("LSQ steps").val().into_data();
    (q.formats.clone(), steps.try_to_vec::<f32>().unwrap())
}

#[test]
fn learned_steps_start_from_the_data_train_and_reach_the_extracted_network() {
    let space = lsq_space();
    let device = Device::flex();
    let mut trainer = supernet::Trainer::new(&space, &device).unwrap();
    let (formats, init) = stem_steps(&trainer.nets[0]);
    // every choice and the pinned format get a step
    assert_eq!(
        formats,
        vec![
            Format::Int(2),
            Format::Int(4),
            Format::E2M1,
            Format::FP32,
            Format::Int(8)
        ]
    );
    assert!(init.iter().all(|&s| s == 1.0), "{init:?}");
    let mut rng = spaces::Rng::new(3);
    let x0 = Tensor::<4>::random(
        [16, 1, 8, 8],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let labels = |rng: &mut spaces::Rng| {
        let v: Vec<i64> = (0..16).map(|_| rng.below(10) as i64).collect();
        Tensor::<1, burn::tensor::Int>::from_data(TensorData::new(v, [16]), &device)
    };
    trainer.step(x0.clone(), labels(&mut rng), None).unwrap();
    let (_, after_one) = stem_steps(&trainer.nets[0]);
    // the paper's initialization from the first batch (the stem's input is x0 itself), then
    // one step of SGD: near 2 mean|x0| / sqrt(Q_p)
    let mean_abs = f64::from(x0.clone().abs().mean().into_scalar::<f32>());
    for (i, f) in [(0, 1.0f64), (1, 7.0), (4, 127.0)] {
        let want = 2.0 * mean_abs / f.sqrt();
        let got = f64::from(after_one[i]);
        assert!(
            (got / want - 1.0).abs() < 0.2,
            "{}: {got} vs {want}",
            formats[i]
        );
    }
    for _ in 0..19 {
        let x = Tensor::<4>::random(
            [16, 1, 8, 8],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        trainer.step(x, labels(&mut rng), None).unwrap();
    }
    let (_, trained) = stem_steps(&trainer.nets[0]);
    assert_ne!(trained[0], after_one[0], "the int2 step is learned");
    // the extracted network quantizes with the learned steps and computes what the supernet
    // computes
    let net = trainer.nets[0].valid();
    for arch in [space.largest(), space.smallest()] {
        let batches: Vec<_> = (0..2)
            .map(|_| {
                Tensor::<4>::random(
                    [8, 1, 8, 8],
                    burn::tensor::Distribution::Normal(0.0, 1.0),
                    &device,
                )
            })
            .collect();
        net.recalibrate(&arch, batches).unwrap();
        let x = Tensor::<4>::random(
            [8, 1, 8, 8],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let y = net
            .forward(x.clone(), &arch, supernet::Phase::Eval)
            .unwrap();
        let model = net.extract(&arch).unwrap();
        let d = (y - model.forward(x)).abs().max().into_scalar::<f32>();
        assert!(d <= 1e-5, "|supernet - extracted| = {d}");
        let f = arch.formats["stem"].activations;
        let i = formats.iter().position(|g| *g == f).unwrap();
        let want = if f == Format::FP32 {
            1.0
        } else {
            trained[i].abs()
        };
        assert_eq!(model.stem.quant.scale_value(), want, "{f}");
    }
}

#[test]
fn mse_ranges_are_kept_per_format_and_reach_the_extracted_network() {
    let space = Space::parse(
        &lsq_space_source().replace("activation_range: Lsq", "activation_range: Mse"),
        "mse.ron",
        "mse",
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let device = Device::flex();
    let mut trainer = supernet::Trainer::new(&space, &device).unwrap();
    let mut rng = spaces::Rng::new(5);
    let normal = |n: usize| {
        Tensor::<4>::random(
            [n, 1, 8, 8],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        )
    };
    for _ in 0..10 {
        let v: Vec<i64> = (0..16).map(|_| rng.below(10) as i64).collect();
        let labels = Tensor::<1, burn::tensor::Int>::from_data(TensorData::new(v, [16]), &device);
        trainer.step(normal(16), labels, None).unwrap();
    }
    let net = trainer.nets[0].valid();
    let SuperConv::Dense(stem) = &net.stem.conv else {
        panic!("a dense stem")
    };
    let q = &stem.input_quant;
    assert!(
        matches!(q.method, ActScaleMethod::Mse { .. }),
        "{:?}",
        q.method
    );
    // one range per format of the quantizer: the choices and the pinned int8
    assert_eq!(
        q.formats,
        vec![
            Format::Int(2),
            Format::Int(4),
            Format::E2M1,
            Format::FP32,
            Format::Int(8)
        ]
    );
    assert_eq!(q.running_range(&device).dims(), [5]);
    // the stem sees the images themselves (signed, standard normal): recalibrated at int2 and
    // at int4, the int2 grid clips tighter, each below the batch's largest |x|
    let x = normal(64);
    let top = x.clone().abs().max().into_scalar::<f32>();
    let mut ranges = Vec::new();
    for format in [Format::Int(2), Format::Int(4)] {
        let mut arch = space.largest();
        for f in arch.formats.values_mut() {
            f.activations = format;
        }
        net.recalibrate(&arch, [x.clone()]).unwrap();
        let scale = q.eval_scale(format).unwrap().into_scalar::<f32>();
        let range = scale * supernet::quant::grid::grid_max(format, true) as f32;
        let want = supernet::quant::act_mse::mse_range(
            &x.clone().into_data().try_to_vec::<f32>().unwrap(),
            format,
            true,
        );
        assert!(
            (range / want - 1.0).abs() < 1e-5,
            "{format}: {range} vs {want}"
        );
        assert!(range < top, "{format}: {range} vs max {top}");
        // the supernet in eval and its extracted network compute the same, at that scale
        let model = net.extract(&arch).unwrap();
        assert_eq!(model.stem.quant.scale_value(), scale, "{format}");
        let probe = normal(8);
        let y = net
            .forward(probe.clone(), &arch, supernet::Phase::Eval)
            .unwrap();
        let d = (y - model.forward(probe)).abs().max().into_scalar::<f32>();
        assert!(d <= 1e-5, "{format}: |supernet - extracted| = {d}");
        ranges.push(range);
    }
    assert!(
        ranges[0] < 0.8 * ranges[1],
        "int2 {} vs int4 {}",
        ranges[0],
        ranges[1]
    );
}
