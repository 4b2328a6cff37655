//! Times training steps (forward, loss, backward; no optimizer) or inference steps (the
//! evaluation forward, no autodiff) of the largest member of a space at one uniform format, to
//! profile one mode and variant alone (e.g. under `perf record`).
//!
//!     cargo run --release -p qnas-supernet --example train_step -- [SPACE] [FORMAT] [STEPS] [BATCH] [MODE]
//!
//! Defaults: spaces/presets/resnet20.ron, fp32, 10 steps, batch 128, `train` (or `infer`).
//! FORMAT is a format name of the space language (`fp32`, `int4`, `e4m3`, ...). Prints the
//! median step time and img/s.

// a benchmark prints its numbers
#![allow(clippy::print_stdout)]

use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Distribution, Int, Tensor};
use spaces::{Format, Space};
use supernet::{Phase, Supernet};

fn main() {
    // as the qnas binary does
    supernet::kernels::tune_allocator();
    supernet::kernels::pool_with_main_thread();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let space_path = args
        .first()
        .map_or("spaces/presets/resnet20.ron", String::as_str);
    let format_name = args.get(1).map_or("fp32", String::as_str);
    let steps: usize = args.get(2).map_or(10, |s| s.parse().expect("STEPS"));
    let batch: usize = args.get(3).map_or(128, |s| s.parse().expect("BATCH"));
    let infer = match args.get(4).map_or("train", String::as_str) {
        "train" => false,
        "infer" => true,
        other => panic!("MODE is `train` or `infer`, not `{other}`"),
    };
    let space = Space::load(std::path::Path::new(space_path)).expect("space file");
    let format: Format = format_name.parse().expect("format name");
    let arch = space
        .with_uniform_formats(&space.largest(), format, format)
        .expect("the space offers the format");
    let device = if infer {
        Device::flex()
    } else {
        Device::flex().autodiff()
    };
    let net = Supernet::new(&space, &device);
    let i = space.input;
    let x = Tensor::<4>::random(
        [
            batch,
            i.channels as usize,
            i.height as usize,
            i.width as usize,
        ],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let y = Tensor::<1, Int>::zeros([batch], &device);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut times = Vec::new();
    for step in 0..=steps {
        let t = Instant::now();
        if infer {
            let logits = net.forward(x.clone(), &arch, Phase::Eval).expect("member");
            drop(logits.into_data());
            if step > 0 {
                times.push(t.elapsed().as_secs_f64());
            }
            continue;
        }
        let logits = net.forward(x.clone(), &arch, Phase::Train).expect("member");
        let loss = loss_fn.forward(logits, y.clone());
        let grads = loss.backward();
        drop(grads);
        if step > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "{} {format_name} {}: median step {:.1} ms, {:.0} img/s (batch {batch}, {steps} steps)",
        space.name,
        if infer { "infer" } else { "train" },
        median * 1e3,
        batch as f64 / median
    );
}
