//! Timings of the fake-quantization and range kernels (`supernet::kernels::quant`) on one
//! activation of ResNet-20's first stage at batch 128 (2 Mi values, `[128, 32, 32, 16]`):
//! milliseconds, median and minimum of repetitions after a warm-up.
//!
//! ```text
//! cargo run --release -p qnas-supernet --example quant_kernels [-- REPS]
//! ```
#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::time::Instant;

use spaces::Format;
use supernet::kernels::quant::{
    Grid, fake_quantize, fake_quantize_backward, fake_quantize_backward_in_place,
    fake_quantize_in_place, range_max, range_percentile,
};

/// Median and minimum milliseconds of `reps` calls of `f` after one warm-up call.
fn time(reps: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let mut ms: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[0])
}

fn main() {
    // as the qnas binary does
    supernet::kernels::tune_allocator();
    supernet::kernels::pool_with_main_thread();
    let reps: usize = std::env::args()
        .nth(1)
        .map_or(25, |a| a.parse().expect("usage: quant_kernels [REPS]"));
    let n = 128 * 32 * 32 * 16;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let x: Vec<f32> = (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 6.0
        })
        .collect();
    let dy: Vec<f32> = x.iter().map(|v| v * 0.25 + 0.1).collect();
    let grid = Grid::new(Format::Int(4), false, 3.0 / 15.0);
    println!(
        "{n} values, {} threads, median (min) ms of {reps} after a warm-up",
        rayon::current_num_threads()
    );
    let mut buf = x.clone();
    let rows: Vec<(&str, (f64, f64))> = vec![
        (
            "fake_quantize (new buffer)",
            time(reps, || drop(black_box(fake_quantize(&x, grid)))),
        ),
        (
            "fake_quantize_in_place",
            time(reps, || fake_quantize_in_place(black_box(&mut buf), grid)),
        ),
        (
            "fake_quantize_backward (new buffer)",
            time(reps, || {
                drop(black_box(fake_quantize_backward(&x, &dy, grid)));
            }),
        ),
        ("fake_quantize_backward_in_place", {
            let mut g = dy.clone();
            time(reps, || {
                fake_quantize_backward_in_place(&x, black_box(&mut g), grid);
            })
        }),
        (
            "range_max",
            time(reps, || {
                black_box(range_max(&x, false));
            }),
        ),
        (
            "range_percentile 99.9",
            time(reps, || {
                black_box(range_percentile(&x, false, 99.9));
            }),
        ),
        (
            "range_percentile 50",
            time(reps, || {
                black_box(range_percentile(&x, false, 50.0));
            }),
        ),
    ];
    for (name, (median, min)) in rows {
        println!("{name:<38} {median:>8.3} {min:>8.3}");
    }
}
