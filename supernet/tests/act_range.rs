//! `quantization.activation_range` of a space file reaches every activation quantizer of the
//! supernet: a percentile range ignores an outlier a maximum follows, and the extracted
//! network carries that scale.

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
    let (m_max, s_max, f_max) = stem_scale(&space(""), &device);
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
fn the_default_range_leaves_the_fingerprint_as_it_was() {
    assert_eq!(
        space("").fingerprint(),
        space(", activation_range: Max").fingerprint()
    );
    assert_ne!(
        space("").fingerprint(),
        space(", activation_range: Percentile(99.9)").fingerprint()
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
