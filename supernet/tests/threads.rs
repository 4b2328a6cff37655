//! The supernet on our kernels gives the same logits, loss and gradients whatever the number of
//! threads (up to float rounding): one training forward and backward of ResNet-20's largest
//! member, at fp32 and at int4, on 1, 2 and 3 threads.

mod common;
use common::input;

use std::path::PathBuf;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Int, Tensor};
use spaces::{Format, Space};
use supernet::net::SuperConv;
use supernet::{Phase, Supernet};

fn resnet20() -> Space {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../spaces/presets/resnet20.ron");
    Space::load(&path).unwrap()
}

/// Logits, then the gradient of the stem weight and of the classifier weight, flattened.
fn step(net: &Supernet, space: &Space, format: Format, x: &Tensor<4>) -> [Vec<f32>; 3] {
    let device = x.device();
    let arch = space
        .with_uniform_formats(&space.largest(), format, format)
        .unwrap();
    let logits = net.forward(x.clone(), &arch, Phase::Train).unwrap();
    let labels = Tensor::<1, Int>::from_data([1, 7, 3, 0], &device);
    let loss = CrossEntropyLossConfig::new()
        .init(&device)
        .forward(logits.clone(), labels);
    let grads = loss.backward();
    let values = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
    let SuperConv::Dense(stem) = &net.stem.conv else {
        panic!("ResNet-20's stem is a dense conv")
    };
    let stem = stem.weight.grad(&grads).unwrap();
    let fc = net.fc.weight.grad(&grads).unwrap();
    [
        logits.inner().into_data().try_to_vec::<f32>().unwrap(),
        values(stem),
        fc.into_data().try_to_vec::<f32>().unwrap(),
    ]
}

fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

#[test]
fn training_step_does_not_depend_on_the_thread_count() {
    assert!(supernet::kernels::enabled(), "our kernels are the default");
    let space = resnet20();
    let device = Device::flex().autodiff();
    assert!(supernet::kernels::active(&device));
    let net = Supernet::new(&space, &device);
    let x = input(&space, 4, &device);
    for format in [Format::FP32, Format::Int(4)] {
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            // in training the batch statistics and ranges are used, not the running state
            pool.install(|| step(&net, &space, format, &x))
        };
        let one = on(1);
        for threads in [2, 3] {
            let other = on(threads);
            for (what, a, b) in [
                ("logits", &other[0], &one[0]),
                ("stem gradient", &other[1], &one[1]),
                ("classifier gradient", &other[2], &one[2]),
            ] {
                let d = max_rel_diff(a, b);
                assert!(
                    d < 1e-4,
                    "{} {what}: {threads} threads differ from 1 by {d}",
                    format.name()
                );
            }
        }
    }
}
