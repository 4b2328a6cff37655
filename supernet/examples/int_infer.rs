//! Times inference of the largest member of a space at uniform int8 (pins kept), exported
//! (extracted, written to the deploy format, read back), on the `f32` path (fake
//! quantization) and on the integer engine, alternating step by step; or one engine alone, to
//! profile it (e.g. under `perf record`).
//!
//!     cargo run --release -p qnas-supernet --example int_infer -- [SPACE] [ENGINE] [STEPS] [BATCH]
//!
//! Defaults: spaces/presets/resnet20.ron, both (alternating; or `int`, `float`), 20 steps,
//! batch 128. Prints the median step time and img/s of each engine.

// a benchmark prints its numbers
#![allow(clippy::print_stdout)]

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};
use spaces::{Format, Space};
use supernet::int::IntNet;
use supernet::quant::WeightQuant;
use supernet::{StaticNet, Supernet};

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    // as the qnas binary does
    supernet::kernels::tune_allocator();
    supernet::kernels::pool_with_main_thread();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let space_path = args
        .first()
        .map_or("spaces/presets/resnet20.ron", String::as_str);
    let engine = args.get(1).map_or("both", String::as_str);
    let steps: usize = args.get(2).map_or(20, |s| s.parse().expect("STEPS"));
    let batch: usize = args.get(3).map_or(128, |s| s.parse().expect("BATCH"));
    let space = Space::load(std::path::Path::new(space_path)).expect("space file");
    let arch = space
        .with_uniform_formats(&space.largest(), Format::Int(8), Format::Int(8))
        .expect("the space offers Int(8)");
    let device = Device::flex();
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
    let plan = space.plan(&arch).expect("member");
    let supernet = Supernet::new(&space, &device);
    supernet.recalibrate_plan(&plan, [x.clone()]);
    let bytes = supernet
        .extract(&arch)
        .expect("member")
        .to_safetensors()
        .expect("weights");
    let net = StaticNet::from_safetensors(plan, &bytes, &device)
        .expect("weights read back")
        .with_weight_quant(WeightQuant::for_space(&space));
    let int = IntNet::new(net);
    println!(
        "{}: {} of {} conv layers on integers",
        space.name,
        int.int_layers(),
        int.net().plan.convs().count()
    );
    let engines: &[&str] = match engine {
        "int" => &["int"],
        "float" => &["float"],
        _ => &["float", "int"],
    };
    let mut times = vec![Vec::new(); engines.len()];
    for step in 0..steps + 2 {
        for (e, t) in engines.iter().zip(times.iter_mut()) {
            let start = Instant::now();
            let y = if *e == "int" {
                int.forward(x.clone())
            } else {
                int.net().forward(x.clone())
            };
            device.sync().expect("sync");
            drop(y);
            if step >= 2 {
                t.push(start.elapsed().as_secs_f64());
            }
        }
    }
    for (e, t) in engines.iter().zip(times.iter_mut()) {
        let m = median(t);
        println!(
            "{e:>5}: median {m:.4} s ({:.4}..{:.4}), {:.0} img/s",
            t[0],
            t[t.len() - 1],
            batch as f64 / m
        );
    }
}
