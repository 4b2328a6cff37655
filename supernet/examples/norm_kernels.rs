//! Timings of the batch-norm kernels (`supernet::kernels::norm`) on ResNet-20-like shapes at
//! batch 128 (ReLU fused): milliseconds, median (and minimum) of repetitions after warm-up,
//! and the memory traffic they imply.
//!
//! `cargo run --offline --release -p qnas-supernet --example norm_kernels`
#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::time::Instant;

use rayon::prelude::*;
use supernet::kernels::norm::{
    NormAct, affine, batch_norm_train, batch_norm_train_backward, channel_sum,
};

const REPS: usize = 51;
const WARMUP: usize = 5;

/// Median and minimum wall time of `f`, in milliseconds.
fn time_ms(mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..WARMUP {
        f();
    }
    let mut t: Vec<f64> = (0..REPS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    (t[REPS / 2], t[0])
}

fn data(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 1.5
        })
        .collect()
}

fn main() {
    supernet::kernels::pool_with_main_thread();
    let isa = match pulp::Arch::new() {
        pulp::Arch::V4(_) => "AVX-512 (x86-v4)",
        pulp::Arch::V3(_) => "AVX2 (x86-v3)",
        _ => "scalar",
    };
    println!(
        "batch norm kernels: {} rayon threads, {isa}; median (min) of {REPS} runs after {WARMUP} \
         warm-up runs",
        rayon::current_num_threads()
    );
    println!(
        "traffic counted: copy 1R+1W, forward 2R+1W, backward 6R+1W, affine 1R+1W, \
         channel_sum 1R (of the activation's size)"
    );
    println!(
        "{:<12} {:>5} | {:>15} {:>5} | {:>15} {:>5} | {:>15} {:>5} | {:>15} | {:>15}",
        "shape",
        "MB",
        "copy ms",
        "GB/s",
        "forward ms",
        "GB/s",
        "backward ms",
        "GB/s",
        "affine ms",
        "channel_sum ms"
    );
    let batch = 128;
    for (channels, side) in [(16, 32), (32, 16), (64, 8)] {
        let len = batch * side * side * channels;
        let x = data(len, 1);
        let dy = data(len, 2);
        let gamma = data(channels, 3);
        let beta = data(channels, 4);
        let act = NormAct::Relu;
        let bytes = (len * 4) as f64;

        // A parallel copy into a reused buffer: what the memory system gives.
        let mut dst = vec![0.0f32; len];
        let copy = time_ms(|| {
            dst.par_chunks_mut(16 * 1024)
                .zip(x.par_chunks(16 * 1024))
                .for_each(|(d, s)| d.copy_from_slice(s));
            black_box(&dst);
        });
        let fwd = time_ms(|| {
            black_box(batch_norm_train(&x, channels, &gamma, &beta, 1e-5, act));
        });
        let (y, stats) = batch_norm_train(&x, channels, &gamma, &beta, 1e-5, act);
        let bwd = time_ms(|| {
            black_box(batch_norm_train_backward(
                &x, &y, &dy, channels, &gamma, &stats, act,
            ));
        });
        let aff = time_ms(|| {
            black_box(affine(&x, channels, &gamma, &beta, act));
        });
        let csum = time_ms(|| {
            black_box(channel_sum(&dy, channels));
        });
        let gbs = |passes: f64, (median, _): (f64, f64)| passes * bytes / (median * 1e-3) / 1e9;
        let ms = |(median, min): (f64, f64)| format!("{median:.3} ({min:.3})");
        println!(
            "{:<12} {:>5.1} | {:>15} {:>5.1} | {:>15} {:>5.1} | {:>15} {:>5.1} | {:>15} | {:>15}",
            format!("{channels}ch {side}x{side}"),
            bytes / 1e6,
            ms(copy),
            gbs(2.0, copy),
            ms(fwd),
            gbs(3.0, fwd),
            ms(bwd),
            gbs(7.0, bwd),
            ms(aff),
            ms(csum),
        );
    }
}
