//! Presets, the cost model against published figures, and the behaviour of archs: validation,
//! encoding, sampling, mutation, crossover, enumeration and the size of a space.

use std::collections::BTreeSet;
use std::path::PathBuf;

use spaces::{Arch, Format, FormatPair, Rng, Space, SpaceError};

fn preset(name: &str) -> Space {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("presets")
        .join(name);
    Space::load(&path).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

fn presets() -> Vec<(String, Space)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("presets");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".ron"))
        .collect();
    names.sort();
    names.into_iter().map(|n| (n.clone(), preset(&n))).collect()
}

fn within(value: f64, target: f64, rel: f64) -> bool {
    ((value - target) / target).abs() <= rel
}

#[test]
fn every_preset_checks_clean_and_its_extremes_are_valid() {
    let all = presets();
    assert!(all.len() >= 7, "{} presets", all.len());
    for (name, space) in &all {
        for arch in [space.smallest(), space.largest()] {
            space
                .validate(&arch)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let small = space.cost(&space.smallest()).unwrap();
        let large = space.cost(&space.largest()).unwrap();
        assert!(
            small.macs <= large.macs && small.bitops <= large.bitops,
            "{name}"
        );
    }
}

#[test]
fn resnet18_costs_match_published_figures() {
    let fp32 = preset("resnet18.ron");
    let arch = fp32.largest();
    let c = fp32.cost(&arch).unwrap();
    assert!(within(c.macs as f64, 1.82e9, 0.01), "MACs {}", c.macs);
    assert!(
        within(c.params as f64, 11.69e6, 0.01),
        "params {}",
        c.params
    );
    assert!(
        within(c.bitops as f64, 1.858e12, 0.01),
        "BitOps {}",
        c.bitops
    );
    // torchvision's exact parameter count
    assert_eq!(c.params, 11_689_512);
    let w8a8 = preset("resnet18-w8a8.ron");
    let c8 = w8a8.cost(&w8a8.largest()).unwrap();
    assert!(
        within(c8.bitops as f64, 1.16e11, 0.01),
        "W8A8 BitOps {}",
        c8.bitops
    );
    assert_eq!(c8.macs, c.macs);
    assert_eq!(c.bitops, c8.bitops * 16);
}

#[test]
fn mobilenetv2_costs_match_published_figures() {
    let s = preset("mobilenetv2-1.0.ron");
    let c = s.cost(&s.largest()).unwrap();
    assert!(within(c.macs as f64, 300e6, 0.01), "MACs {}", c.macs);
    assert!(within(c.params as f64, 3.5e6, 0.01), "params {}", c.params);
    assert_eq!(
        c.params, 3_504_872,
        "torchvision's mobilenet_v2 parameter count"
    );
}

#[test]
fn hand_computed_costs_of_a_tiny_net() {
    let src = r#"(
        version: 1,
        input: (channels: 1, height: 4, width: 4),
        classes: 3,
        stem: (width: [2], kernel: [3]),
        stages: [(block: ConvBnRelu, depth: [1], width: [4], kernel: [1])],
        quantization: (weights: [Int(8)], activations: [Int(4)], tie: Global),
    )"#;
    let s = Space::parse(src, "tiny.ron", "tiny").unwrap();
    let c = s.cost(&s.largest()).unwrap();
    // stem 4*4*2*1*9 = 288, conv 4*4*4*2 = 128, fc 4*3 = 12
    assert_eq!(c.macs, 428);
    // stem 18 + bn 4, conv 8 + bn 8, fc 12 + 3
    assert_eq!(c.params, 53);
    assert_eq!(c.bitops, 428 * 8 * 4);
    // weights at 8 bits, bn and bias at 32
    assert_eq!(c.weight_bits, (18 + 8 + 12) * 8 + (4 + 8 + 3) * 32);
    // the 1x1 conv: input 2x4x4 at 4 bits + output 4x4x4 at the classifier's 4 bits
    assert_eq!(c.peak_activation_bits, 32 * 4 + 64 * 4);
}

#[test]
fn floats_cost_their_total_width() {
    let src = |fmt: &str| {
        format!(
            r#"(version: 1, input: (channels: 3, height: 8, width: 8), classes: 10, stem: (width: [8]),
            stages: [(block: ResidualBasic, depth: [1], width: [8])],
            quantization: (weights: [{fmt}], activations: [{fmt}], tie: Global))"#
        )
    };
    let cost = |fmt: &str| {
        let s = Space::parse(&src(fmt), "f.ron", "f").unwrap();
        s.cost(&s.largest()).unwrap()
    };
    let base = cost("Fp32");
    for (fmt, bits) in [
        ("E4M3", 8u64),
        ("E2M1", 4),
        ("Bf16", 16),
        ("Fp16", 16),
        ("Float(e: 3, m: 4)", 8),
        ("Int(3)", 3),
    ] {
        assert_eq!(
            cost(fmt).bitops * 32 * 32,
            base.bitops * bits * bits,
            "{fmt}"
        );
    }
}

#[test]
fn sampled_mutated_and_crossed_archs_are_valid_and_round_trip() {
    let mut rng = Rng::new(11);
    for (name, space) in presets() {
        let decisions = space.decisions();
        for _ in 0..40 {
            let a = space.sample_uniform(&mut rng);
            space.validate(&a).unwrap_or_else(|e| panic!("{name}: {e}"));
            let enc = space.encode(&a);
            assert_eq!(enc.len(), decisions.len());
            assert_eq!(space.decode(&enc).unwrap(), a, "{name}: encode/decode");
            let m = space.mutate(&a, 0.1, &mut rng);
            space
                .validate(&m)
                .unwrap_or_else(|e| panic!("{name} mutate: {e}"));
            if space.size().exact != Some(1) {
                assert_ne!(m, a, "{name}: a mutation changes something");
            }
            let b = space.sample_uniform(&mut rng);
            let c = space.crossover(&a, &b, &mut rng);
            space
                .validate(&c)
                .unwrap_or_else(|e| panic!("{name} crossover: {e}"));
            // RON and JSON round trips
            let ron_text = a.to_ron();
            assert_eq!(
                Arch::parse(&ron_text, "a.ron", &space).unwrap(),
                a,
                "{name}: RON\n{ron_text}"
            );
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(
                Arch::parse(&json, "a.json", &space).unwrap(),
                a,
                "{name}: JSON"
            );
        }
    }
}

#[test]
fn sampling_is_seeded() {
    let s = preset("mnist.ron");
    let draw = |seed| {
        let mut rng = Rng::new(seed);
        (0..5)
            .map(|_| s.sample_uniform(&mut rng))
            .collect::<Vec<_>>()
    };
    assert_eq!(draw(3), draw(3));
    assert_ne!(draw(3), draw(4));
}

#[test]
fn smallest_and_largest_take_the_extreme_choices() {
    let s = preset("mnist.ron");
    let small = s.smallest();
    let large = s.largest();
    assert_eq!(small.stem.width, 8);
    assert_eq!(large.stem.width, 16);
    assert_eq!(
        small
            .stages
            .iter()
            .map(|st| st.blocks.len())
            .collect::<Vec<_>>(),
        vec![1, 1]
    );
    assert_eq!(
        large
            .stages
            .iter()
            .map(|st| st.blocks.len())
            .collect::<Vec<_>>(),
        vec![2, 2]
    );
    assert!(
        small
            .formats
            .values()
            .all(|p| *p == FormatPair::uniform(Format::Int(2)))
    );
    assert!(
        large
            .formats
            .values()
            .all(|p| *p == FormatPair::uniform(Format::FP32))
    );
    let int8 = s
        .with_uniform_formats(&small, Format::Int(8), Format::Int(8))
        .unwrap();
    s.validate(&int8).unwrap();
    assert!(
        s.with_uniform_formats(&small, Format::Int(3), Format::Int(8))
            .is_none()
    );
}

fn small_space(tie: &str, tied: bool, pins: &str) -> Space {
    // keeps every count small enough to enumerate: two format choices per decision
    let acts = if tied { "Int(4), Int(8)" } else { "Int(8)" };
    let src = format!(
        r#"(
        version: 1,
        input: (channels: 3, height: 16, width: 16),
        classes: 4,
        stem: (width: [8], kernel: [1, 3]),
        stages: [
            (block: InvertedResidual, depth: [1, 2], width: [8], kernel: [3], expand: [1.0, 2.0], stride: 1),
            (block: ResidualBasic, depth: [1, 2], width: [8, 12], kernel: [3], stride: 1),
        ],
        head: (conv_width: [16]),
        downsampling: (configs: List([[0], [2]]), ops: [StridedConv]),
        quantization: (weights: [Int(4), Int(8)], activations: [{acts}], tie: {tie}, tie_weights_activations: {tied}, pins: [{pins}]),
    )"#
    );
    Space::parse(&src, "small.ron", "small").unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn size_matches_enumeration_for_every_tie_mode() {
    for tie in ["Layer", "Block", "Stage", "Global"] {
        for tied in [false, true] {
            for pins in [
                "",
                "(layer: First, weights: Int(8), activations: Int(8)), (layer: Named(\"s0.b1.expand\"), weights: Int(8), activations: Int(8))",
            ] {
                let s = small_space(tie, tied, pins);
                let all = s.enumerate(1_000_000).unwrap();
                let distinct: BTreeSet<String> = all.iter().map(Arch::key).collect();
                assert_eq!(distinct.len(), all.len(), "{tie} {tied}: duplicates");
                for a in all.iter().step_by(97) {
                    s.validate(a).unwrap();
                }
                assert_eq!(
                    s.size().exact,
                    Some(all.len() as u128),
                    "{tie} tied={tied} pins={pins:?}"
                );
            }
        }
    }
}

#[test]
fn enumeration_stops_at_its_limit_and_sizes_can_be_huge() {
    let s = preset("resnet20.ron");
    assert!(s.enumerate(1000).is_err());
    let size = s.size();
    assert!(size.log10 > 20.0, "{}", size.log10);
    let digits = preset("digits.ron");
    assert_eq!(
        digits.enumerate(100_000).unwrap().len() as u128,
        digits.size().exact.unwrap()
    );
    let pooling = preset("resnet20-pooling.ron");
    assert_eq!(pooling.size().exact, Some(36));
}

#[test]
fn invalid_archs_are_rejected_with_the_offending_field() {
    let s = preset("mnist.ron");
    let mut a = s.largest();
    a.stem.width = 20;
    let extra = a.stages[1].blocks[0];
    a.stages[1].blocks.push(extra);
    a.formats
        .insert("nonsense".into(), FormatPair::uniform(Format::Int(8)));
    let err = s.validate(&a).unwrap_err();
    let paths: Vec<String> = err.problems.iter().map(|p| p.path.to_string()).collect();
    assert_eq!(paths, vec!["stem.width", "stages[1].blocks"]);

    let mut b = s.largest();
    b.formats
        .insert("nonsense".into(), FormatPair::uniform(Format::Int(8)));
    let first = b.formats.keys().next().unwrap().clone();
    b.formats.get_mut(&first).unwrap().weights = Format::Int(3);
    let err = s.validate(&b).unwrap_err();
    let paths: Vec<String> = err.problems.iter().map(|p| p.path.to_string()).collect();
    assert_eq!(
        paths,
        vec![
            format!("formats[{first:?}].weights"),
            "formats[\"nonsense\"]".to_string()
        ]
    );
    assert!(s.plan(&b).is_err(), "plan validates first");
}

#[test]
fn an_arch_file_gets_located_errors() {
    let s = preset("mnist.ron");
    let mut a = s.smallest();
    a.stages[0].blocks[0].kernel = 7;
    let text = a.to_ron();
    let err = Arch::parse(&text, "arch.ron", &s).unwrap_err();
    let SpaceError::Invalid { errors, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(errors.len(), 1);
    let line = text.lines().nth(errors[0].line - 1).unwrap();
    assert!(line.contains("kernel: 7"), "{line}");
    assert!(errors[0].message.contains("kernel 7 is not a choice"));
}

#[test]
fn fingerprints_are_stable_and_distinguish_spaces() {
    assert_eq!(
        preset("mnist.ron").fingerprint(),
        preset("mnist.ron").fingerprint()
    );
    assert_ne!(
        preset("mnist.ron").fingerprint(),
        preset("digits.ron").fingerprint()
    );
}

#[test]
fn left_out_ranges_and_smallest_formats_take_the_measured_defaults() {
    use spaces::{ActivationRange, Sampling, SmallestFormats, WeightRange};
    let src = |quant: &str, sampling: &str| {
        format!(
            r#"(
            version: 1,
            input: (channels: 1, height: 8, width: 8),
            classes: 10,
            stem: (width: [8], kernel: [3]),
            stages: [(block: ConvBnRelu, depth: [1], width: [8, 16], kernel: [3], stride: 2)],
            quantization: (weights: [Int(2), Int(8)], activations: [Int(2), Int(8)]{quant}),
            train: (sampling: Sandwich(random: 1{sampling})),
        )"#
        )
    };
    let left_out = Space::parse(&src("", ""), "a.ron", "a").unwrap();
    let q = &left_out.quantization;
    assert_eq!(q.activation_range, ActivationRange::Percentile(99.9));
    assert_eq!(q.weight_range, WeightRange::Mse);
    assert!(matches!(
        left_out.train.sampling,
        Sampling::Sandwich {
            smallest: SmallestFormats::Alternate,
            ..
        }
    ));
    let explicit = src(
        ", activation_range: Percentile(99.9), weight_range: Mse",
        ", smallest: Alternate",
    );
    let explicit = Space::parse(&explicit, "b.ron", "b").unwrap();
    assert_eq!(left_out.fingerprint(), explicit.fingerprint());
    // the ranges a file written before the defaults changed meant: another fingerprint, so its
    // checkpoints are refused rather than read under other ranges
    let max = src(", activation_range: Max, weight_range: Max", "");
    let max = Space::parse(&max, "c.ron", "c").unwrap();
    assert_ne!(left_out.fingerprint(), max.fingerprint());
    let mixed = src(", activation_range: Max", "");
    let mixed = Space::parse(&mixed, "d.ron", "d").unwrap();
    assert_ne!(mixed.fingerprint(), max.fingerprint());
    assert_ne!(mixed.fingerprint(), left_out.fingerprint());
}

#[test]
fn plans_follow_the_block_rules() {
    let s = preset("mobilenetv2-1.0.ron");
    let plan = s.plan(&s.largest()).unwrap();
    // first block: expand 1, no expand conv, no residual (16 != 32)
    let names: Vec<_> = plan.blocks[0]
        .convs
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, vec!["s0.b0.dw", "s0.b0.project"]);
    assert!(!plan.blocks[0].residual);
    // second block of stage 1 keeps its shape: identity residual
    assert!(plan.blocks[2].residual && plan.blocks[2].shortcut.is_none());
    assert_eq!(plan.pool_size, (7, 7));
    assert_eq!(plan.head_conv.as_ref().unwrap().out_channels, 1280);
    let r = preset("resnet18.ron");
    let p = r.plan(&r.largest()).unwrap();
    assert_eq!(p.blocks.iter().filter(|b| b.shortcut.is_some()).count(), 3);
    assert_eq!(p.blocks[0].convs[0].in_size, (56, 56));
    assert_eq!(p.pool_size, (7, 7));
    // pooling configurations place the stride
    let pooled = preset("resnet20-pooling.ron");
    let mut a = pooled.smallest();
    a.pooling.as_mut().unwrap().positions = vec![3, 6];
    let plan = pooled.plan(&a).unwrap();
    let strides: Vec<u32> = plan.blocks.iter().map(|b| b.convs[0].stride).collect();
    assert_eq!(strides, vec![1, 1, 1, 2, 1, 1, 2, 1, 1]);
    assert_eq!(plan.pool_size, (8, 8));
}
