//! Times the NHWC convolution kernels of `supernet::kernels::conv` on ResNet-20's layers and on
//! smaller ones of the default (MNIST) space's size.
//!
//! ```text
//! cargo run --offline --release -p qnas-supernet --example conv_kernels [-- BATCH REPS FILTER]
//! ```
//!
//! Prints, per layer, the median milliseconds of forward, backward-data and backward-weight
//! over several repetitions after a warm-up, their total, GFLOP/s (2 × MACs per pass, from the
//! median total), and the sum of the three passes' fastest repetitions.
#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::time::Instant;

use supernet::kernels::ConvShape;
use supernet::kernels::conv;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median and minimum milliseconds of `reps` calls after a warm-up call.
fn time(reps: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let ms: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let min = ms.iter().copied().fold(f64::INFINITY, f64::min);
    (median(ms), min)
}

fn main() {
    // as the qnas binary does: freed outputs are reused, not faulted in again at every call
    supernet::kernels::tune_allocator();
    supernet::kernels::pool_with_main_thread();
    let usage = "usage: conv_kernels [BATCH [REPS [LAYER-NAME-FILTER]]]";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let batch = args.first().map_or(128, |a| a.parse().expect(usage));
    let reps = args.get(1).map_or(15, |a| a.parse().expect(usage));
    let filter = args.get(2).cloned().unwrap_or_default();
    let layer =
        |hw: usize, cin: usize, cout: usize, kernel: usize, stride: usize, dw: bool| ConvShape {
            batch,
            height: hw,
            width: hw,
            in_channels: cin,
            out_channels: cout,
            kernel,
            stride,
            groups: if dw { cin } else { 1 },
        };
    let layers = [
        ("16->16 3x3 32x32", layer(32, 16, 16, 3, 1, false)),
        ("16->32 3x3 s2 32x32", layer(32, 16, 32, 3, 2, false)),
        ("32->32 3x3 16x16", layer(16, 32, 32, 3, 1, false)),
        ("32->64 3x3 s2 16x16", layer(16, 32, 64, 3, 2, false)),
        ("64->64 3x3 8x8", layer(8, 64, 64, 3, 1, false)),
        ("32->64 1x1 s2 16x16", layer(16, 32, 64, 1, 2, false)),
        ("dw 96 3x3 16x16", layer(16, 96, 96, 3, 1, true)),
        // layers of the default (MNIST) space's size: where Winograd starts to pay
        ("8->8 3x3 28x28", layer(28, 8, 8, 3, 1, false)),
        ("12->12 3x3 28x28", layer(28, 12, 12, 3, 1, false)),
        ("8->16 5x5 28x28", layer(28, 8, 16, 5, 1, false)),
        ("16->16 5x5 14x14", layer(14, 16, 16, 5, 1, false)),
        ("24->24 5x5 14x14", layer(14, 24, 24, 5, 1, false)),
        ("32->32 5x5 7x7", layer(7, 32, 32, 5, 1, false)),
    ];
    println!(
        "batch {batch}, {} threads, median of {reps} after a warm-up",
        rayon::current_num_threads()
    );
    println!(
        "{:<22} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9}",
        "layer", "fwd ms", "bwd-d ms", "bwd-w ms", "total ms", "GFLOP/s", "min total"
    );
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut random = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    };
    for (name, s) in layers.into_iter().filter(|(n, _)| n.contains(&filter)) {
        let x = random(s.input_len());
        let w = random(s.weight_len());
        let dy = random(s.output_len());
        let f = time(reps, || {
            black_box(conv::forward(&s, black_box(&x), black_box(&w)));
        });
        let bd = time(reps, || {
            black_box(conv::backward_data(&s, black_box(&dy), black_box(&w)));
        });
        let bw = time(reps, || {
            black_box(conv::backward_weight(&s, black_box(&x), black_box(&dy)));
        });
        let total = f.0 + bd.0 + bw.0;
        let best = f.1 + bd.1 + bw.1;
        let gflops = 3.0 * 2.0 * s.macs() as f64 / (total * 1e-3) / 1e9;
        println!(
            "{name:<22} {:>9.2} {:>9.2} {:>9.2} {total:>9.2} {gflops:>8.1} {best:>9.2}",
            f.0, bd.0, bw.0
        );
    }
}
