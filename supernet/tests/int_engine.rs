//! The integer engine (`supernet::int`) against the fake-quantized `f32` path
//! (`StaticNet::forward`) on extracted members read back from their weights files: int2, int4
//! and int8 layers, signed (stem, after an inverted residual) and unsigned (after a ReLU)
//! inputs, stride 2, projection shortcuts, odd input channels, output channels that are not a
//! multiple of 16 and more than 64, depthwise and floating-point layers on the `f32` fallback;
//! the AVX2 and portable kernels against the best one (AVX-512 here), and the thread count.

mod common;
use common::input;

use burn::tensor::{Device, Tensor};
use spaces::{Arch, Format, Rng, Space};
use supernet::int::{Engine, FloatReason, Inference, IntNet, Isa, logit_agreement};
use supernet::{Phase, StaticNet, Supernet};

/// Held while a test seeds the device's generator and draws from it: the tests run on
/// threads of one process and share the generator of `Device::flex()`.
static SEEDING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What a test draws from the device's generator: a supernet of `space`, a batch of `batch`
/// images, and two batches of 16 images to recalibrate members on.
struct Drawn {
    net: Supernet,
    x: Tensor<4>,
    recalibration: [Tensor<4>; 2],
}

/// [`Drawn`] from `seed`, the generator held meanwhile.
fn seeded(space: &Space, seed: u64, batch: usize, device: &Device) -> Drawn {
    let _serial = SEEDING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    device.seed(seed);
    let net = Supernet::new(space, device);
    let x = input(space, batch, device);
    let recalibration = [input(space, 16, device), input(space, 16, device)];
    // burn draws a parameter at its first use: the largest member uses every one
    net.forward(x.clone(), &space.largest(), Phase::Recalibrate(0))
        .unwrap();
    Drawn {
        net,
        x,
        recalibration,
    }
}

/// Largest logit difference allowed, relative to the largest logit magnitude. The integer
/// sums are exact. The `f32` path's direct sums are too while they fit `f32`'s 24-bit
/// significand (the scales are snapped so that every code × scale is exact), but its 3×3
/// stride-1 layers run by Winograd F(2×2, 3×3), whose transformed products round; a rounding
/// that moves an activation across the next quantizer's rounding boundary changes that one
/// code by one. On these members the logits agree within 4.9e-3 (measured on AVX-512, with
/// no class flip; within 2e-7 before the f32 path used Winograd); the bound leaves room for
/// another member's or CPU's few such codes.
const TOLERANCE: f32 = 1e-2;

/// Residual stages (stride 2, 1x1 projection shortcuts, 24 and 72 channels) and an inverted
/// residual stage (depthwise, signed block outputs), 3 input channels.
fn space() -> Space {
    let src = r#"(
        version: 1,
        input: (channels: 3, height: 8, width: 8),
        classes: 10,
        stem: (width: [16, 24]),
        stages: [
            (block: ResidualBasic, depth: [1, 2], width: [24, 72], kernel: [1, 3], stride: 2),
            (block: InvertedResidual, depth: [1, 2], width: [16, 24], expand: [1.0, 3.0], stride: 1),
        ],
        head: (conv_width: [32, 48]),
        quantization: (
            weights: [Int(2), Int(4), Int(8), E4M3, Fp32],
            activations: [Int(2), Int(4), Int(8), E4M3, Fp32],
            tie: Layer,
        ),
    )"#;
    Space::parse(src, "int.ron", "int").unwrap_or_else(|e| panic!("{e:?}"))
}

/// `arch` recalibrated on the supernet, extracted, written to the deploy format and read back:
/// what an exported model is.
fn exported(d: &Drawn, arch: &Arch, device: &Device) -> StaticNet {
    d.net.reset_running_stats();
    for (n, batch) in d.recalibration.iter().enumerate() {
        d.net
            .forward(batch.clone(), arch, Phase::Recalibrate(n))
            .unwrap();
    }
    let bytes = d.net.extract(arch).unwrap().to_safetensors().unwrap();
    let plan = d.net.space.plan(arch).unwrap();
    StaticNet::from_safetensors(plan, &bytes, device).unwrap()
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn integer_engine_matches_the_fake_quantized_forward() {
    let device = Device::flex();
    let space = space();
    let d = seeded(&space, 5, 8, &device);
    let x = &d.x;
    let largest = space.largest();
    let mut archs = Vec::new();
    for f in [Format::Int(8), Format::Int(4), Format::Int(2)] {
        archs.push(space.with_uniform_formats(&largest, f, f).unwrap());
    }
    let mut rng = Rng::new(9);
    archs.extend((0..4).map(|_| space.sample_uniform(&mut rng)));
    let mut int_layers_seen = 0;
    let mut flips_total = 0;
    let mut diffs = Vec::new();
    for (k, arch) in archs.iter().enumerate() {
        let model = exported(&d, arch, &device);
        let reference = values(model.forward(x.clone()));
        let int = IntNet::new(model);
        int_layers_seen += int.int_layers();
        let on_float = |name: &str| int.float_layers().iter().any(|(n, _)| n == name);
        let on_int: Vec<_> = int
            .net()
            .plan
            .convs()
            .filter(|c| !on_float(&c.name))
            .collect();
        assert_eq!(on_int.len(), int.int_layers());
        if k < 3 {
            // the uniform members cover every case of the kernel on integers
            let covered = [
                ("a signed input", on_int.iter().any(|c| c.input_signed)),
                ("an unsigned input", on_int.iter().any(|c| !c.input_signed)),
                ("stride 2", on_int.iter().any(|c| c.stride == 2)),
                ("a 1x1 kernel", on_int.iter().any(|c| c.kernel == 1)),
                (
                    "odd input channels",
                    on_int.iter().any(|c| c.in_channels % 2 == 1),
                ),
                (
                    "two chunks of channels",
                    on_int.iter().any(|c| c.out_channels > 64),
                ),
                (
                    "a partial group",
                    on_int.iter().any(|c| c.out_channels % 16 != 0),
                ),
            ];
            for (what, seen) in covered {
                assert!(seen, "arch {k}: no layer with {what} on integers");
            }
        }
        for (name, reason) in int.float_layers() {
            let layer = int.net().plan.convs().find(|c| &c.name == name).unwrap();
            let narrow_int = |f: Format| matches!(f, Format::Int(b) if b <= 8);
            match reason {
                FloatReason::Depthwise => assert!(layer.groups > 1),
                FloatReason::Format => assert!(
                    !narrow_int(layer.formats.weights) || !narrow_int(layer.formats.activations),
                    "arch {k}: {name} has integer formats {:?}",
                    layer.formats
                ),
                other => panic!("arch {k}: {name} stays on f32: {other:?}"),
            }
        }
        let got = values(int.forward(x.clone()));
        let (diff, flips) = logit_agreement(&got, &reference, space.classes as usize);
        diffs.push(diff);
        flips_total += flips;
    }
    assert!(
        diffs.iter().all(|&d| d <= TOLERANCE),
        "logits differ by {diffs:?} of their largest magnitude"
    );
    // the uniform members: every dense layer on integers
    assert!(int_layers_seen >= 3 * 6, "{int_layers_seen} integer layers");
    assert!(
        flips_total <= 1,
        "{flips_total} predicted classes flipped over {} images",
        8 * archs.len()
    );
}

#[test]
fn every_kernel_path_computes_the_same_and_threads_do_not_matter() {
    let device = Device::flex();
    let space = space();
    let d = seeded(&space, 6, 5, &device);
    let x = &d.x;
    let arch = space
        .with_uniform_formats(&space.largest(), Format::Int(8), Format::Int(8))
        .unwrap();
    let model = exported(&d, &arch, &device);
    let simd = IntNet::new(model.clone());
    let best = values(simd.forward(x.clone()));
    for isa in [Isa::Avx2, Isa::Portable] {
        let other = values(IntNet::new(model.clone()).with_isa(isa).forward(x.clone()));
        assert_eq!(best, other, "the {isa:?} kernel computes other values");
    }
    for threads in [1, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let again = pool.install(|| values(simd.forward(x.clone())));
        assert_eq!(again, best, "{threads} threads change the logits");
    }
}

#[test]
fn the_engine_choice_follows_the_layers_and_the_flag() {
    let device = Device::flex();
    let space = space();
    let d = seeded(&space, 7, 1, &device);
    let largest = space.largest();
    let int8 = space
        .with_uniform_formats(&largest, Format::Int(8), Format::Int(8))
        .unwrap();
    let fp32 = space
        .with_uniform_formats(&largest, Format::FP32, Format::FP32)
        .unwrap();
    let model = exported(&d, &int8, &device);
    let layers = model.plan.convs().count();
    let depthwise = model.plan.convs().filter(|c| c.groups > 1).count();
    let on_int = Inference::new(model.clone(), Engine::Int, &device);
    assert_eq!(on_int.engine(), Engine::Int);
    assert_eq!(on_int.int_layers(), layers - depthwise);
    assert_eq!(on_int.layers(), layers);
    let on_float = Inference::new(model, Engine::Float, &device);
    assert_eq!(
        (on_float.engine(), on_float.int_layers()),
        (Engine::Float, 0)
    );
    let full = Inference::new(exported(&d, &fp32, &device), Engine::Int, &device);
    assert_eq!((full.engine(), full.int_layers()), (Engine::Float, 0));
}

#[test]
fn pooling_between_integer_layers_runs_as_on_the_f32_path() {
    let src = r#"(
        version: 1,
        input: (channels: 1, height: 16, width: 16),
        classes: 10,
        stem: (width: [16], kernel: [3], stride: 1, pool: Some(MaxPool(kernel: 3, stride: 2))),
        stages: [
            (block: ResidualBasic, depth: [2], width: [16], kernel: [3], stride: 1),
            (block: ResidualBasic, depth: [2], width: [24], kernel: [3], stride: 1),
        ],
        downsampling: (configs: Choose(count: 1, from: [1, 2]), ops: [MaxPool, AvgPool]),
        quantization: (weights: [Int(8), Fp32], activations: [Int(8), Fp32]),
    )"#;
    let space = Space::parse(src, "pool.ron", "pool").unwrap_or_else(|e| panic!("{e:?}"));
    let device = Device::flex();
    let d = seeded(&space, 8, 4, &device);
    let mut rng = Rng::new(2);
    let mut pools = std::collections::BTreeSet::new();
    for k in 0..6 {
        let arch = space
            .with_uniform_formats(
                &space.sample_uniform(&mut rng),
                Format::Int(8),
                Format::Int(8),
            )
            .unwrap();
        let model = exported(&d, &arch, &device);
        assert!(model.plan.stem_pool.is_some());
        pools.extend(model.plan.blocks.iter().filter_map(|b| b.pool_before));
        let reference = values(model.forward(d.x.clone()));
        let int = IntNet::new(model);
        assert_eq!(int.int_layers(), int.net().plan.convs().count());
        let (diff, flips) = logit_agreement(&values(int.forward(d.x.clone())), &reference, 10);
        assert!(
            diff <= TOLERANCE && flips == 0,
            "member {k}: logits differ by {diff} of their largest magnitude, {flips} flips"
        );
    }
    assert_eq!(pools.len(), 2, "both poolings drawn: {pools:?}");
}
