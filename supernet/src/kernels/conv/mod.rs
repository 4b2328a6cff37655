//! Convolutions on NHWC `f32` slices: forward, backward-data and backward-weight, dense
//! (`groups == 1`) and depthwise (`groups == channels`), "same" padding `kernel / 2`.
//!
//! - Dense layers use im2col + `sgemm` with the weight repacked once per call to a
//!   `[kernel * kernel * in_channels, out_channels]` matrix (`(kh, kw, ci)` rows). A 1×1
//!   stride-1 convolution needs no im2col: the NHWC input already is the `[pixels, channels]`
//!   matrix. The patch matrix is built a tile of output rows at a time, so that it stays in
//!   the L2 cache. Backward-data of a stride-1 layer is the forward convolution of the output
//!   gradient with the flipped, transposed weight; with a larger stride it is a gemm to patch
//!   gradients followed by a col2im scatter-add. Backward-weight is `patchesᵀ × dy`
//!   accumulated over the batch.
//! - Narrow dense layers (≤ 64 output channels with AVX-512, else ≤ 32; ≤ 64 input channels;
//!   this includes the stride-1 backward-data of a layer with that many input channels) use
//!   direct kernels instead, on a zero-padded copy of each input image, with no patch matrix:
//!   the forward kernel holds 8 output pixels × 16 or 32 output channels (4-6 pixels × 48 or
//!   64) in registers, the backward-weight kernel 16 (12, 8, 6) weight rows `(kh, kw, ci)` ×
//!   16 (32, 48, 64) output channels over a whole image. Their stride-1 3×3 and 5×5 forward
//!   passes (and so their stride-1 backward-data) run by Winograd F(2×2, 3×3) and F(2×2, 5×5)
//!   (`winograd.rs`) on the same register-blocked loop, where the layer has channels enough
//!   for that to pay (`winograd::applies`).
//! - Depthwise layers use direct loops vectorized over the channels (innermost in NHWC).
//!
//! Every pass runs on rayon's current pool, over images or tiles of output rows, with the
//! gemm calls single-threaded inside each task. Weight gradients are summed per fixed chunk of
//! the work (the partition depends on the shape only) and the partial sums are added in
//! order, so results do not depend on the number of threads.
//!
//! The loops run inside [`pulp::Arch::dispatch`], so that they are compiled (and
//! autovectorized) for AVX2 or AVX-512 when the CPU has them.
//!
//! The code: this file has the entry points, the weight layouts and the helpers the kernels
//! share; `dense.rs` the im2col + gemm kernels, `narrow.rs` the direct kernels of narrow dense
//! layers, `lanes.rs` how those hold a pixel's channels in registers (16 + 8 lanes for 24
//! channels on AVX-512), `winograd.rs` their Winograd kernel, `depthwise.rs` the depthwise
//! loops.

use std::cell::RefCell;
use std::ops::Range;

use rayon::prelude::*;

use super::{ConvShape, par_chunks_zeroed};
use dense::{dense_backward_data, dense_backward_weight, dense_forward};
use depthwise::{depthwise_backward_data, depthwise_backward_weight, depthwise_forward};

mod dense;
mod depthwise;
mod lanes;
mod narrow;
#[cfg(test)]
mod tests;
mod winograd;

/// Upper bound on the number of partial weight gradients summed at the end of a
/// backward-weight pass.
const MAX_PARTIALS: usize = 16;

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a per-thread scratch buffer of `len` elements (contents unspecified), reused
/// across calls; a fresh buffer if the thread's one is already in use.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
            f(&mut buf[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}

/// Runs `f` compiled for the best SIMD instruction set of the CPU (AVX-512, AVX2 or the
/// baseline). Everything `f` calls should be `#[inline(always)]` to benefit.
#[inline(always)]
fn simd<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

fn check_lengths(s: &ConvShape, pass: &str, what: [(&str, usize, usize); 2]) {
    s.check();
    for (name, got, want) in what {
        assert!(
            got == want,
            "conv {pass}: {name} has {got} elements, the shape {s:?} needs {want}"
        );
    }
}

/// The convolution of an NHWC input with an OIHW weight.
///
/// # Shapes
///
/// - `x`: `[batch, height, width, in_channels]`
/// - `w`: `[out_channels, in_channels / groups, kernel, kernel]`
/// - returns `[batch, out_height, out_width, out_channels]`
///
/// # Panics
///
/// If the shape is unsupported ([`ConvShape::check`]) or a slice length does not match it.
pub fn forward(s: &ConvShape, x: &[f32], w: &[f32]) -> Vec<f32> {
    check_lengths(
        s,
        "forward",
        [
            ("input", x.len(), s.input_len()),
            ("weight", w.len(), s.weight_len()),
        ],
    );
    if s.groups > 1 {
        depthwise_forward(s, x, &depthwise_repack(s, w, false))
    } else {
        dense_forward(s, x, &dense_repack(s, w))
    }
}

/// The gradient of [`forward`] with respect to its input.
///
/// # Shapes
///
/// - `dy`: `[batch, out_height, out_width, out_channels]`
/// - `w`: `[out_channels, in_channels / groups, kernel, kernel]`
/// - returns `[batch, height, width, in_channels]`
///
/// # Panics
///
/// If the shape is unsupported ([`ConvShape::check`]) or a slice length does not match it.
pub fn backward_data(s: &ConvShape, dy: &[f32], w: &[f32]) -> Vec<f32> {
    check_lengths(
        s,
        "backward_data",
        [
            ("output gradient", dy.len(), s.output_len()),
            ("weight", w.len(), s.weight_len()),
        ],
    );
    if s.groups > 1 {
        depthwise_backward_data(s, dy, &depthwise_repack(s, w, false))
    } else if s.stride == 1 {
        // dx = dy ⊛ w' with w'[ci, co, kh, kw] = w[co, ci, k-1-kh, k-1-kw], "same" padding.
        let t = ConvShape {
            in_channels: s.out_channels,
            out_channels: s.in_channels,
            ..*s
        };
        dense_forward(&t, dy, &dense_repack_transposed(s, w))
    } else {
        dense_backward_data(s, dy, &dense_repack(s, w))
    }
}

/// The gradient of [`forward`] with respect to its weight.
///
/// # Shapes
///
/// - `x`: `[batch, height, width, in_channels]`
/// - `dy`: `[batch, out_height, out_width, out_channels]`
/// - returns `[out_channels, in_channels / groups, kernel, kernel]`
///
/// # Panics
///
/// If the shape is unsupported ([`ConvShape::check`]) or a slice length does not match it.
pub fn backward_weight(s: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    check_lengths(
        s,
        "backward_weight",
        [
            ("input", x.len(), s.input_len()),
            ("output gradient", dy.len(), s.output_len()),
        ],
    );
    if s.groups > 1 {
        let dwt = depthwise_backward_weight(s, x, dy);
        // [kh, kw, c] -> [c, 1, kh, kw]
        let (kk, c) = (s.kernel * s.kernel, s.in_channels);
        let mut dw = vec![0.0; s.weight_len()];
        for (ch, dst) in dw.chunks_exact_mut(kk).enumerate() {
            for (t, d) in dst.iter_mut().enumerate() {
                *d = dwt[t * c + ch];
            }
        }
        dw
    } else {
        let dwr = dense_backward_weight(s, x, dy);
        // [kh, kw, ci, co] -> [co, ci, kh, kw]
        let (k, cin, cout) = (s.kernel, s.in_channels, s.out_channels);
        let mut dw = vec![0.0; s.weight_len()];
        for co in 0..cout {
            for ci in 0..cin {
                for t in 0..k * k {
                    dw[(co * cin + ci) * k * k + t] = dwr[(t * cin + ci) * cout + co];
                }
            }
        }
        dw
    }
}

// ---------------------------------------------------------------------------------------------
// Weight layouts

/// OIHW `[cout, cin, k, k]` -> `[(kh, kw, ci), co]`.
fn dense_repack(s: &ConvShape, w: &[f32]) -> Vec<f32> {
    let (k, cin, cout) = (s.kernel, s.in_channels, s.out_channels);
    let mut wr = vec![0.0; w.len()];
    for co in 0..cout {
        for ci in 0..cin {
            for t in 0..k * k {
                wr[(t * cin + ci) * cout + co] = w[(co * cin + ci) * k * k + t];
            }
        }
    }
    wr
}

/// OIHW `[cout, cin, k, k]` -> `[(kh, kw, co), ci]` with the kernel flipped: the repacked
/// weight of the stride-1 transposed convolution (from `cout` to `cin` channels).
fn dense_repack_transposed(s: &ConvShape, w: &[f32]) -> Vec<f32> {
    let (k, cin, cout) = (s.kernel, s.in_channels, s.out_channels);
    let kk = k * k;
    let mut wr = vec![0.0; w.len()];
    for co in 0..cout {
        for ci in 0..cin {
            for t in 0..kk {
                wr[((kk - 1 - t) * cout + co) * cin + ci] = w[(co * cin + ci) * kk + t];
            }
        }
    }
    wr
}

/// `[c, 1, k, k]` -> `[(kh, kw), c]`, optionally with the kernel flipped.
fn depthwise_repack(s: &ConvShape, w: &[f32], flip: bool) -> Vec<f32> {
    let (kk, c) = (s.kernel * s.kernel, s.in_channels);
    let mut wt = vec![0.0; w.len()];
    for ch in 0..c {
        for t in 0..kk {
            let tt = if flip { kk - 1 - t } else { t };
            wt[tt * c + ch] = w[ch * kk + t];
        }
    }
    wt
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

/// The range of kernel offsets `kw` for which input column `o * stride + kw - pad` is inside
/// `0..len`.
#[inline(always)]
fn valid_taps(o: usize, stride: usize, pad: usize, k: usize, len: usize) -> Range<usize> {
    let start = o * stride;
    let lo = pad.saturating_sub(start);
    let hi = (len + pad).saturating_sub(start).min(k);
    lo..hi.max(lo)
}

/// Splits `0..n` into at most `parts` contiguous near-equal ranges (depends on `n` and
/// `parts` only).
fn split(n: usize, parts: usize) -> Vec<Range<usize>> {
    let parts = parts.clamp(1, n.max(1));
    (0..parts)
        .map(|i| (i * n / parts)..((i + 1) * n / parts))
        .collect()
}

/// Sums `len`-element partial results over a fixed partition of the work units `0..units`:
/// `f(units, acc)` adds the contribution of a range of units into `acc` (zeroed first). The
/// partition and the order of the final sum depend on `units` and `len` only.
fn partitioned_sum(
    units: usize,
    len: usize,
    f: impl Fn(Range<usize>, &mut [f32]) + Sync,
) -> Vec<f32> {
    let max_parts = ((1 << 24) / len.max(1)).clamp(1, MAX_PARTIALS);
    let parts: Vec<Vec<f32>> = split(units, max_parts)
        .into_par_iter()
        .map(|range| {
            let mut acc = vec![0.0; len];
            f(range, &mut acc);
            acc
        })
        .collect();
    let mut parts = parts.into_iter();
    let mut total = parts.next().unwrap_or_else(|| vec![0.0; len]);
    for p in parts {
        for (t, v) in total.iter_mut().zip(&p) {
            *t += v;
        }
    }
    total
}
