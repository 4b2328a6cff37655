//! Convolutions on NHWC `f32` slices: forward, backward-data and backward-weight, dense
//! (`groups == 1`) and depthwise (`groups == channels`), "same" padding `kernel / 2`.
//!
//! - Dense layers use im2col + [`sgemm`] with the weight repacked once per call to a
//!   `[kernel * kernel * in_channels, out_channels]` matrix (`(kh, kw, ci)` rows). A 1×1
//!   stride-1 convolution needs no im2col: the NHWC input already is the `[pixels, channels]`
//!   matrix. The patch matrix is built a tile of output rows at a time, so that it stays in
//!   the L2 cache. Backward-data of a stride-1 layer is the forward convolution of the output
//!   gradient with the flipped, transposed weight; with a larger stride it is a gemm to patch
//!   gradients followed by a col2im scatter-add. Backward-weight is `patchesᵀ × dy`
//!   accumulated over the batch.
//! - Narrow dense layers (≤ 32 output channels, ≤ 64 input channels; this includes the
//!   stride-1 backward-data of a layer with ≤ 32 input channels) use direct kernels instead,
//!   on a zero-padded copy of each input image, with no patch matrix: the forward kernel holds
//!   8 output pixels × 16 or 32 output channels in registers, the backward-weight kernel
//!   16 (or 12) weight rows `(kh, kw, ci)` × 16 (or 32) output channels over a whole image.
//! - Depthwise layers use direct loops vectorized over the channels (innermost in NHWC).
//!
//! Every pass runs on rayon's current pool, over images or tiles of output rows, with the
//! gemm calls single-threaded inside each task. Weight gradients are summed per fixed chunk of
//! the work (the partition depends on the shape only) and the partial sums are added in
//! order, so results do not depend on the number of threads.
//!
//! The loops run inside [`pulp::Arch::dispatch`], so that they are compiled (and
//! autovectorized) for AVX2 or AVX-512 when the CPU has them.

use std::cell::RefCell;
use std::ops::Range;

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use super::ConvShape;
use super::sgemm::{Dst, Src, sgemm};

/// Target size (in `f32`) of one tile of the im2col patch matrix: 256 KiB, half of a typical
/// L2 cache.
const TILE_ELEMS: usize = 64 * 1024;

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

/// A zeroed vector, written by all of rayon's threads when it is large (a reused heap block
/// would otherwise be cleared by one thread in `calloc`, fresh pages faulted in by one thread).
fn zeroed(n: usize) -> Vec<f32> {
    if n < 1 << 16 {
        vec![0.0; n]
    } else {
        rayon::iter::repeat_n(0.0f32, n)
            .with_min_len(1 << 14)
            .collect()
    }
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

/// Output pixels per im2col tile (tiles run over the flattened `(b, oh, ow)` pixels).
fn tile_pixels(s: &ConvShape) -> usize {
    (TILE_ELEMS / (s.kernel * s.kernel * s.in_channels)).max(16)
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

/// Writes the im2col rows of the output pixels `pixels` (flattened `(b, oh, ow)` indices
/// over the images of `x`) into `patches` (`[pixel, (kh, kw, ci)]`, zeros for the padding).
fn im2col(s: &ConvShape, x: &[f32], pixels: Range<usize>, patches: &mut [f32]) {
    let (k, st, pad, cin) = (s.kernel, s.stride, s.padding(), s.in_channels);
    let (h, w, oh_n, ow_n) = (s.height, s.width, s.out_height(), s.out_width());
    let img_in = h * w * cin;
    let kkc = k * k * cin;
    for (p, dst) in pixels.zip(patches.chunks_exact_mut(kkc)) {
        let (b, oh, ow) = (p / (oh_n * ow_n), p / ow_n % oh_n, p % ow_n);
        let x_img = &x[b * img_in..(b + 1) * img_in];
        let kws = valid_taps(ow, st, pad, k, w);
        let khs = valid_taps(oh, st, pad, k, h);
        for (kh, row) in dst.chunks_exact_mut(k * cin).enumerate() {
            if !khs.contains(&kh) {
                row.fill(0.0);
                continue;
            }
            let ih = oh * st + kh - pad;
            row[..kws.start * cin].fill(0.0);
            let iw = ow * st + kws.start - pad;
            let src = (ih * w + iw) * cin;
            row[kws.start * cin..kws.end * cin].copy_from_slice(&x_img[src..src + kws.len() * cin]);
            row[kws.end * cin..].fill(0.0);
        }
    }
}

/// Adds the patch gradients of the output pixels `pixels` (`[pixel, (kh, kw, ci)]`, flattened
/// `(b, oh, ow)` indices over the images of `dx`) into the input gradient `dx` (the adjoint of
/// [`im2col`]).
#[inline(always)]
fn col2im_add(s: &ConvShape, dpatches: &[f32], pixels: Range<usize>, dx: &mut [f32]) {
    let (k, st, pad, cin) = (s.kernel, s.stride, s.padding(), s.in_channels);
    let (h, w, oh_n, ow_n) = (s.height, s.width, s.out_height(), s.out_width());
    let img_in = h * w * cin;
    let kkc = k * k * cin;
    for (p, src) in pixels.zip(dpatches.chunks_exact(kkc)) {
        let (b, oh, ow) = (p / (oh_n * ow_n), p / ow_n % oh_n, p % ow_n);
        let dx_img = &mut dx[b * img_in..(b + 1) * img_in];
        let kws = valid_taps(ow, st, pad, k, w);
        for kh in valid_taps(oh, st, pad, k, h) {
            let ih = oh * st + kh - pad;
            let iw = ow * st + kws.start - pad;
            let d = (ih * w + iw) * cin;
            let dst = &mut dx_img[d..d + kws.len() * cin];
            let sr = &src[(kh * k + kws.start) * cin..(kh * k + kws.end) * cin];
            for (a, b) in dst.iter_mut().zip(sr) {
                *a += b;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dense convolution: im2col + gemm

/// Dense forward with the weight repacked to `[(kh, kw, ci), co]`.
fn dense_forward(s: &ConvShape, x: &[f32], wr: &[f32]) -> Vec<f32> {
    if is_narrow(s) {
        return narrow_forward(s, x, wr);
    }
    let (cin, cout) = (s.in_channels, s.out_channels);
    let kkc = s.kernel * s.kernel * cin;
    let pointwise = s.kernel == 1 && s.stride == 1;
    let tile = tile_pixels(s);
    let mut out = zeroed(s.output_len());
    let wmat = Src {
        data: wr,
        rs: cout,
        cs: 1,
    };
    out.par_chunks_mut(tile * cout)
        .enumerate()
        .for_each(|(t, o)| {
            let m = o.len() / cout;
            let pixels = t * tile..t * tile + m;
            let dst = Dst {
                data: o,
                rs: cout,
                cs: 1,
                accumulate: false,
            };
            if pointwise {
                let lhs = Src {
                    data: &x[pixels.start * cin..pixels.end * cin],
                    rs: cin,
                    cs: 1,
                };
                sgemm(m, cout, cin, dst, lhs, wmat, false);
            } else {
                with_scratch(m * kkc, |patches| {
                    im2col(s, x, pixels, patches);
                    let lhs = Src {
                        data: patches,
                        rs: kkc,
                        cs: 1,
                    };
                    sgemm(m, cout, kkc, dst, lhs, wmat, false);
                });
            }
        });
    out
}

/// Dense backward-data (any stride): patch gradients `dy × wrᵀ`, then col2im.
fn dense_backward_data(s: &ConvShape, dy: &[f32], wr: &[f32]) -> Vec<f32> {
    let (cin, cout) = (s.in_channels, s.out_channels);
    let kkc = s.kernel * s.kernel * cin;
    let img_pixels = s.out_height() * s.out_width();
    let tile = tile_pixels(s);
    // Tasks own whole images (col2im adds into neighbouring pixels), about a tile each.
    let images = tile.div_ceil(img_pixels).max(1);
    let mut dx = zeroed(s.input_len());
    dx.par_chunks_mut(images * s.height * s.width * cin)
        .enumerate()
        .for_each(|(g, dx_group)| {
            let first = g * images * img_pixels;
            let n = dx_group.len() / (s.height * s.width * cin) * img_pixels;
            for start in (0..n).step_by(tile) {
                let pixels = start..(start + tile).min(n);
                let m = pixels.len();
                with_scratch(m * kkc, |dpatches| {
                    let lhs = Src {
                        data: &dy[(first + pixels.start) * cout..(first + pixels.end) * cout],
                        rs: cout,
                        cs: 1,
                    };
                    let rhs = Src {
                        data: wr,
                        rs: 1,
                        cs: cout,
                    };
                    let dst = Dst {
                        data: dpatches,
                        rs: kkc,
                        cs: 1,
                        accumulate: false,
                    };
                    sgemm(m, kkc, cout, dst, lhs, rhs, false);
                    simd(
                        #[inline(always)]
                        || col2im_add(s, dpatches, pixels, dx_group),
                    );
                });
            }
        });
    dx
}

/// Dense backward-weight as `[(kh, kw, ci), co]`: `patchesᵀ × dy` summed over the batch.
fn dense_backward_weight(s: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    if is_narrow(s) {
        return narrow_backward_weight(s, x, dy);
    }
    let (cin, cout) = (s.in_channels, s.out_channels);
    let kkc = s.kernel * s.kernel * cin;
    let n = s.batch * s.out_height() * s.out_width();
    let pointwise = s.kernel == 1 && s.stride == 1;
    let tile = tile_pixels(s);
    partitioned_sum(n.div_ceil(tile), kkc * cout, |tiles, acc| {
        for t in tiles {
            let pixels = t * tile..(t * tile + tile).min(n);
            let m = pixels.len();
            let rhs = Src {
                data: &dy[pixels.start * cout..pixels.end * cout],
                rs: cout,
                cs: 1,
            };
            let dst = Dst {
                data: &mut *acc,
                rs: cout,
                cs: 1,
                accumulate: true,
            };
            if pointwise {
                let lhs = Src {
                    data: &x[pixels.start * cin..pixels.end * cin],
                    rs: 1,
                    cs: cin,
                };
                sgemm(kkc, cout, m, dst, lhs, rhs, false);
            } else {
                with_scratch(m * kkc, |patches| {
                    im2col(s, x, pixels, patches);
                    let lhs = Src {
                        data: patches,
                        rs: 1,
                        cs: kkc,
                    };
                    sgemm(kkc, cout, m, dst, lhs, rhs, false);
                });
            }
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Narrow dense convolution: direct kernels

/// Vector width of the direct kernels: output channels (forward) or output-gradient channels
/// (backward-weight) are padded to this many lanes, one AVX-512 register.
const LANES: usize = 16;

/// Most 16-lane groups of output channels the direct kernels handle.
const MAX_GROUPS: usize = 2;

/// Whether the direct kernels handle this dense shape: up to 32 output channels (two AVX-512
/// registers per pixel), and not too many input channels. They beat im2col + gemm there
/// (gemm's microkernel runs vectors over the output channels, which few channels fill badly);
/// from 64 output channels on, gemm is as fast.
fn is_narrow(s: &ConvShape) -> bool {
    s.groups == 1 && s.out_channels <= MAX_GROUPS * LANES && s.in_channels <= 64
}

/// What the direct kernels need of the shape.
#[derive(Clone, Copy, Debug)]
struct Geom {
    kernel: usize,
    stride: usize,
    cin: usize,
    cout: usize,
    /// 16-lane groups of output channels: `cout` padded to `groups * LANES`.
    groups: usize,
    /// `kernel * cin`: the weight rows of one kernel row, contiguous in a padded input row.
    kc: usize,
    /// Elements of one row of the padded image.
    row: usize,
    out_h: usize,
    out_w: usize,
}

impl Geom {
    fn new(s: &ConvShape) -> Self {
        Self {
            kernel: s.kernel,
            stride: s.stride,
            cin: s.in_channels,
            cout: s.out_channels,
            groups: s.out_channels.div_ceil(LANES),
            kc: s.kernel * s.in_channels,
            row: (s.width + 2 * s.padding()) * s.in_channels,
            out_h: s.out_height(),
            out_w: s.out_width(),
        }
    }
}

/// Elements of one zero-padded input image.
fn padded_len(s: &ConvShape) -> usize {
    (s.height + 2 * s.padding()) * (s.width + 2 * s.padding()) * s.in_channels
}

/// Writes the zero-padded copy of one input image, `[h + 2p, w + 2p, cin]`, into `xp`.
#[inline(always)]
fn pad_image(s: &ConvShape, x_img: &[f32], xp: &mut [f32]) {
    let (p, c, w) = (s.padding(), s.in_channels, s.width);
    let row = (w + 2 * p) * c;
    xp[..p * row].fill(0.0);
    for (ih, src) in x_img.chunks_exact(w * c).enumerate() {
        let dst = &mut xp[(ih + p) * row..(ih + p + 1) * row];
        dst[..p * c].fill(0.0);
        dst[p * c..(p + w) * c].copy_from_slice(src);
        dst[(p + w) * c..].fill(0.0);
    }
    xp[(s.height + p) * row..].fill(0.0);
}

/// `P` output pixels `(oh, ow0..ow0 + P)` × the `G * LANES` (padded) output channels,
/// accumulated in registers.
#[inline(always)]
fn forward_block<S: Simd, const G: usize, const P: usize>(
    simd: S,
    g: &Geom,
    xp: &[f32],
    wp: &[f32],
    oh: usize,
    ow0: usize,
    out_row: &mut [f32],
) {
    let width = G * LANES;
    let nv = width / S::F32_LANES;
    let mut acc = [[simd.splat_f32s(0.0); MAX_GROUPS * LANES]; P];
    for kh in 0..g.kernel {
        let base = (oh * g.stride + kh) * g.row + ow0 * g.stride * g.cin;
        let xs: [&[f32]; P] = std::array::from_fn(|p| &xp[base + p * g.stride * g.cin..][..g.kc]);
        let (wk, _) = S::as_simd_f32s(&wp[kh * g.kc * width..][..g.kc * width]);
        // two weight rows per iteration (fewer loop-carried register copies)
        let pairs = g.kc / 2;
        for r in 0..pairs {
            let w0 = &wk[2 * r * nv..][..nv];
            let w1 = &wk[(2 * r + 1) * nv..][..nv];
            for p in 0..P {
                let x0 = simd.splat_f32s(xs[p][2 * r]);
                let x1 = simd.splat_f32s(xs[p][2 * r + 1]);
                for v in 0..nv {
                    acc[p][v] = simd.mul_add_f32s(x0, w0[v], acc[p][v]);
                    acc[p][v] = simd.mul_add_f32s(x1, w1[v], acc[p][v]);
                }
            }
        }
        if g.kc % 2 == 1 {
            let r = g.kc - 1;
            let wv = &wk[r * nv..][..nv];
            for p in 0..P {
                let xv = simd.splat_f32s(xs[p][r]);
                for v in 0..nv {
                    acc[p][v] = simd.mul_add_f32s(xv, wv[v], acc[p][v]);
                }
            }
        }
    }
    for (p, a) in acc.iter().enumerate() {
        let mut tmp = [0.0f32; MAX_GROUPS * LANES];
        let (t, _) = S::as_mut_simd_f32s(&mut tmp[..width]);
        t.copy_from_slice(&a[..nv]);
        out_row[(ow0 + p) * g.cout..][..g.cout].copy_from_slice(&tmp[..g.cout]);
    }
}

/// One output row of the direct forward kernel, in blocks of `P` pixels (then 4, 2, 1).
#[inline(always)]
fn forward_row<S: Simd, const G: usize, const P: usize>(
    simd: S,
    g: &Geom,
    xp: &[f32],
    wp: &[f32],
    oh: usize,
    out_row: &mut [f32],
) {
    let mut ow = 0;
    while g.out_w - ow >= P {
        forward_block::<S, G, P>(simd, g, xp, wp, oh, ow, out_row);
        ow += P;
    }
    while g.out_w - ow >= 4 {
        forward_block::<S, G, 4>(simd, g, xp, wp, oh, ow, out_row);
        ow += 4;
    }
    while g.out_w - ow >= 2 {
        forward_block::<S, G, 2>(simd, g, xp, wp, oh, ow, out_row);
        ow += 2;
    }
    if g.out_w - ow >= 1 {
        forward_block::<S, G, 1>(simd, g, xp, wp, oh, ow, out_row);
    }
}

/// The direct forward pass over one image.
struct ForwardImage<'a> {
    s: &'a ConvShape,
    g: Geom,
    x_img: &'a [f32],
    xp: &'a mut [f32],
    wp: &'a [f32],
    out_img: &'a mut [f32],
}

impl WithSimd for ForwardImage<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self {
            s,
            g,
            x_img,
            xp,
            wp,
            out_img,
        } = self;
        pad_image(s, x_img, xp);
        for (oh, out_row) in out_img.chunks_exact_mut(g.out_w * g.cout).enumerate() {
            match g.groups {
                1 => forward_row::<S, 1, 8>(simd, &g, xp, wp, oh, out_row),
                _ => forward_row::<S, 2, 8>(simd, &g, xp, wp, oh, out_row),
            }
        }
    }
}

/// Dense forward for narrow layers with the weight repacked to `[(kh, kw, ci), co]`.
fn narrow_forward(s: &ConvShape, x: &[f32], wr: &[f32]) -> Vec<f32> {
    let g = Geom::new(s);
    let width = g.groups * LANES;
    let kkc = g.kernel * g.kc;
    let mut wp = vec![0.0; kkc * width];
    for (dst, src) in wp.chunks_exact_mut(width).zip(wr.chunks_exact(g.cout)) {
        dst[..g.cout].copy_from_slice(src);
    }
    let img_in = s.height * s.width * g.cin;
    let mut out = zeroed(s.output_len());
    out.par_chunks_mut(g.out_h * g.out_w * g.cout)
        .enumerate()
        .for_each(|(b, out_img)| {
            with_scratch(padded_len(s), |xp| {
                pulp::Arch::new().dispatch(ForwardImage {
                    s,
                    g,
                    x_img: &x[b * img_in..(b + 1) * img_in],
                    xp,
                    wp: &wp,
                    out_img,
                })
            });
        });
    out
}

/// Adds `Σ_pixels xp[pixel, (kh, r0..r0 + R)] ⊗ dy[pixel, :]` to the `R` weight-gradient rows
/// `acc` (`[R, G * LANES]`), the sums held in registers over the whole image.
#[inline(always)]
fn weight_block<S: Simd, const G: usize, const R: usize>(
    simd: S,
    g: &Geom,
    xp: &[f32],
    dyp: &[f32],
    kh: usize,
    r0: usize,
    acc: &mut [f32],
) {
    let width = G * LANES;
    let nv = width / S::F32_LANES;
    let mut sum = [[simd.splat_f32s(0.0); MAX_GROUPS * LANES]; R];
    for oh in 0..g.out_h {
        let base = (oh * g.stride + kh) * g.row + r0;
        let (dy_row, _) = S::as_simd_f32s(&dyp[oh * g.out_w * width..][..g.out_w * width]);
        for ow in 0..g.out_w {
            let gv = &dy_row[ow * nv..][..nv];
            let xr: &[f32; R] = xp[base + ow * g.stride * g.cin..][..R].try_into().unwrap();
            for j in 0..R {
                let xv = simd.splat_f32s(xr[j]);
                for v in 0..nv {
                    sum[j][v] = simd.mul_add_f32s(xv, gv[v], sum[j][v]);
                }
            }
        }
    }
    let (a, _) = S::as_mut_simd_f32s(&mut acc[r0 * width..(r0 + R) * width]);
    for j in 0..R {
        for v in 0..nv {
            a[j * nv + v] = simd.add_f32s(a[j * nv + v], sum[j][v]);
        }
    }
}

/// The weight-gradient rows `(kh, 0..kc)` of one image, in blocks of `R` rows (then 4, 2, 1).
#[inline(always)]
fn weight_rows<S: Simd, const G: usize, const R: usize>(
    simd: S,
    g: &Geom,
    xp: &[f32],
    dyp: &[f32],
    kh: usize,
    rows: &mut [f32],
) {
    let mut r = 0;
    while g.kc - r >= R {
        weight_block::<S, G, R>(simd, g, xp, dyp, kh, r, rows);
        r += R;
    }
    while g.kc - r >= 4 {
        weight_block::<S, G, 4>(simd, g, xp, dyp, kh, r, rows);
        r += 4;
    }
    while g.kc - r >= 2 {
        weight_block::<S, G, 2>(simd, g, xp, dyp, kh, r, rows);
        r += 2;
    }
    if g.kc - r >= 1 {
        weight_block::<S, G, 1>(simd, g, xp, dyp, kh, r, rows);
    }
}

/// The direct backward-weight pass over a range of images, added to `acc`
/// (`[(kh, kw, ci), groups * LANES]`).
struct WeightImages<'a> {
    s: &'a ConvShape,
    g: Geom,
    x: &'a [f32],
    dy: &'a [f32],
    images: Range<usize>,
    xp: &'a mut [f32],
    dyp: &'a mut [f32],
    acc: &'a mut [f32],
}

impl WithSimd for WeightImages<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self {
            s,
            g,
            x,
            dy,
            images,
            xp,
            dyp,
            acc,
        } = self;
        let width = g.groups * LANES;
        let img_in = s.height * s.width * g.cin;
        let pixels = g.out_h * g.out_w;
        dyp.fill(0.0);
        for b in images {
            pad_image(s, &x[b * img_in..(b + 1) * img_in], xp);
            let dy_img = &dy[b * pixels * g.cout..(b + 1) * pixels * g.cout];
            for (d, src) in dyp.chunks_exact_mut(width).zip(dy_img.chunks_exact(g.cout)) {
                d[..g.cout].copy_from_slice(src);
            }
            for kh in 0..g.kernel {
                let rows = &mut acc[kh * g.kc * width..(kh + 1) * g.kc * width];
                match g.groups {
                    1 => weight_rows::<S, 1, 16>(simd, &g, xp, dyp, kh, rows),
                    _ => weight_rows::<S, 2, 12>(simd, &g, xp, dyp, kh, rows),
                }
            }
        }
    }
}

/// Dense backward-weight for narrow layers, as `[(kh, kw, ci), co]`.
fn narrow_backward_weight(s: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let g = Geom::new(s);
    let width = g.groups * LANES;
    let kkc = g.kernel * g.kc;
    let xp_len = padded_len(s);
    let dyp_len = g.out_h * g.out_w * width;
    let padded = partitioned_sum(s.batch, kkc * width, |images, acc| {
        with_scratch(xp_len + dyp_len, |scratch| {
            let (xp, dyp) = scratch.split_at_mut(xp_len);
            pulp::Arch::new().dispatch(WeightImages {
                s,
                g,
                x,
                dy,
                images,
                xp,
                dyp,
                acc,
            });
        })
    });
    let mut dwr = vec![0.0; kkc * g.cout];
    for (dst, src) in dwr.chunks_exact_mut(g.cout).zip(padded.chunks_exact(width)) {
        dst.copy_from_slice(&src[..g.cout]);
    }
    dwr
}

// ---------------------------------------------------------------------------------------------
// Depthwise convolution: direct loops over the channels

/// Output rows (over the whole batch) per depthwise task.
fn depthwise_rows_per_task(s: &ConvShape, row_elems: usize) -> usize {
    (16 * 1024 / (row_elems * s.kernel * s.kernel).max(1)).max(1)
}

/// Channel vectors per register block of the depthwise kernels.
const DW_VECTORS: usize = 4;

/// `out[ch] (+)= Σ_(i, j) ∈ terms a[i + ch] * b[j + ch]` for `ch < c`, the sums of each block of
/// channels held in registers.
#[inline(always)]
fn dot_channels<S: Simd>(
    simd: S,
    c: usize,
    terms: &[(usize, usize)],
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    accumulate: bool,
) {
    let lanes = S::F32_LANES;
    let out = &mut out[..c];
    let mut c0 = 0;
    while c - c0 >= DW_VECTORS * lanes {
        let n = DW_VECTORS * lanes;
        let (o, _) = S::as_mut_simd_f32s(&mut out[c0..c0 + n]);
        let mut acc = [simd.splat_f32s(0.0); DW_VECTORS];
        if accumulate {
            acc.copy_from_slice(&o[..DW_VECTORS]);
        }
        for &(i, j) in terms {
            let (av, _) = S::as_simd_f32s(&a[i + c0..][..n]);
            let (bv, _) = S::as_simd_f32s(&b[j + c0..][..n]);
            for v in 0..DW_VECTORS {
                acc[v] = simd.mul_add_f32s(av[v], bv[v], acc[v]);
            }
        }
        o[..DW_VECTORS].copy_from_slice(&acc);
        c0 += n;
    }
    while c - c0 >= lanes {
        let (o, _) = S::as_mut_simd_f32s(&mut out[c0..c0 + lanes]);
        let mut acc = if accumulate {
            o[0]
        } else {
            simd.splat_f32s(0.0)
        };
        for &(i, j) in terms {
            let (av, _) = S::as_simd_f32s(&a[i + c0..][..lanes]);
            let (bv, _) = S::as_simd_f32s(&b[j + c0..][..lanes]);
            acc = simd.mul_add_f32s(av[0], bv[0], acc);
        }
        o[0] = acc;
        c0 += lanes;
    }
    for ch in c0..c {
        let mut acc = if accumulate { out[ch] } else { 0.0 };
        for &(i, j) in terms {
            acc = a[i + ch].mul_add(b[j + ch], acc);
        }
        out[ch] = acc;
    }
}

/// Which depthwise pass a [`DepthwiseRows`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DwPass {
    /// Output rows `rows` (over the batch) into `dst` from the input `a`.
    Forward,
    /// Input-gradient rows `rows` into `dst` from the output gradient `a`.
    BackwardData,
    /// Weight gradient `[(kh, kw), c]` added into `dst` from the input `a` and the output
    /// gradient `b` of output rows `rows`.
    BackwardWeight,
}

/// One depthwise task: a range of rows (over the batch) of one pass.
struct DepthwiseRows<'a> {
    s: &'a ConvShape,
    pass: DwPass,
    rows: Range<usize>,
    a: &'a [f32],
    b: &'a [f32],
    dst: &'a mut [f32],
}

impl WithSimd for DepthwiseRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self {
            s,
            pass,
            rows,
            a,
            b,
            dst,
        } = self;
        let (k, st, pad, c) = (s.kernel, s.stride, s.padding(), s.in_channels);
        let (h, w, oh_n, ow_n) = (s.height, s.width, s.out_height(), s.out_width());
        let (img_in, img_out) = (h * w * c, oh_n * ow_n * c);
        let mut terms: Vec<(usize, usize)> = Vec::with_capacity(k * k.max(ow_n));
        match pass {
            DwPass::Forward => {
                for (r, orow) in rows.zip(dst.chunks_exact_mut(ow_n * c)) {
                    let (bi, oh) = (r / oh_n, r % oh_n);
                    let x_img = &a[bi * img_in..(bi + 1) * img_in];
                    for (ow, opix) in orow.chunks_exact_mut(c).enumerate() {
                        terms.clear();
                        let kws = valid_taps(ow, st, pad, k, w);
                        for kh in valid_taps(oh, st, pad, k, h) {
                            let ih = oh * st + kh - pad;
                            for kw in kws.clone() {
                                let iw = ow * st + kw - pad;
                                terms.push(((ih * w + iw) * c, (kh * k + kw) * c));
                            }
                        }
                        dot_channels(simd, c, &terms, x_img, b, opix, false);
                    }
                }
            }
            DwPass::BackwardData => {
                // The output positions `o` with `o * st + kt - pad == i` for a tap `kt`.
                let tap = |i: usize, kt: usize, n: usize| -> Option<usize> {
                    let v = (i + pad).checked_sub(kt)?;
                    (v % st == 0 && v / st < n).then_some(v / st)
                };
                for (r, drow) in rows.zip(dst.chunks_exact_mut(w * c)) {
                    let (bi, ih) = (r / h, r % h);
                    let dy_img = &a[bi * img_out..(bi + 1) * img_out];
                    for (iw, dpix) in drow.chunks_exact_mut(c).enumerate() {
                        terms.clear();
                        for kh in 0..k {
                            let Some(oh) = tap(ih, kh, oh_n) else {
                                continue;
                            };
                            for kw in 0..k {
                                if let Some(ow) = tap(iw, kw, ow_n) {
                                    terms.push(((oh * ow_n + ow) * c, (kh * k + kw) * c));
                                }
                            }
                        }
                        dot_channels(simd, c, &terms, dy_img, b, dpix, false);
                    }
                }
            }
            DwPass::BackwardWeight => {
                for r in rows {
                    let (bi, oh) = (r / oh_n, r % oh_n);
                    let x_img = &a[bi * img_in..(bi + 1) * img_in];
                    let dy_row = &b[r * ow_n * c..(r + 1) * ow_n * c];
                    for kh in valid_taps(oh, st, pad, k, h) {
                        let ih = oh * st + kh - pad;
                        for kw in 0..k {
                            terms.clear();
                            for ow in 0..ow_n {
                                if valid_taps(ow, st, pad, k, w).contains(&kw) {
                                    let iw = ow * st + kw - pad;
                                    terms.push(((ih * w + iw) * c, ow * c));
                                }
                            }
                            let acc = &mut dst[(kh * k + kw) * c..];
                            dot_channels(simd, c, &terms, x_img, dy_row, acc, true);
                        }
                    }
                }
            }
        }
    }
}

/// Depthwise forward with the weight as `[(kh, kw), c]`.
fn depthwise_forward(s: &ConvShape, x: &[f32], wt: &[f32]) -> Vec<f32> {
    let row = s.out_width() * s.in_channels;
    let per_task = depthwise_rows_per_task(s, row);
    let mut out = zeroed(s.output_len());
    out.par_chunks_mut(per_task * row)
        .enumerate()
        .for_each(|(t, dst)| {
            let first = t * per_task;
            pulp::Arch::new().dispatch(DepthwiseRows {
                s,
                pass: DwPass::Forward,
                rows: first..first + dst.len() / row,
                a: x,
                b: wt,
                dst,
            });
        });
    out
}

/// Depthwise backward-data (gather form, any stride) with the weight as `[(kh, kw), c]`.
fn depthwise_backward_data(s: &ConvShape, dy: &[f32], wt: &[f32]) -> Vec<f32> {
    let row = s.width * s.in_channels;
    let per_task = depthwise_rows_per_task(s, row);
    let mut dx = zeroed(s.input_len());
    dx.par_chunks_mut(per_task * row)
        .enumerate()
        .for_each(|(t, dst)| {
            let first = t * per_task;
            pulp::Arch::new().dispatch(DepthwiseRows {
                s,
                pass: DwPass::BackwardData,
                rows: first..first + dst.len() / row,
                a: dy,
                b: wt,
                dst,
            });
        });
    dx
}

/// Depthwise backward-weight as `[(kh, kw), c]`.
fn depthwise_backward_weight(s: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (k, c) = (s.kernel, s.in_channels);
    partitioned_sum(s.batch * s.out_height(), k * k * c, |rows, acc| {
        pulp::Arch::new().dispatch(DepthwiseRows {
            s,
            pass: DwPass::BackwardWeight,
            rows,
            a: x,
            b: dy,
            dst: acc,
        });
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
            xs[self.below(xs.len())]
        }

        fn vec(&mut self, n: usize) -> Vec<f32> {
            (0..n)
                .map(|_| (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
                .collect()
        }
    }

    /// Input position of output `o` and tap `kt`, if inside `0..n`.
    fn pos(o: usize, kt: usize, s: &ConvShape, n: usize) -> Option<usize> {
        (o * s.stride + kt)
            .checked_sub(s.padding())
            .filter(|&i| i < n)
    }

    /// Calls `f(b, oh, ow, co, ih, iw, ci, weight index)` for every term of the convolution.
    fn each_term(s: &ConvShape, mut f: impl FnMut([usize; 3], usize, usize, usize)) {
        let cpg = s.in_channels / s.groups;
        let opg = s.out_channels / s.groups;
        let (k, h, w) = (s.kernel, s.height, s.width);
        let (oh_n, ow_n) = (s.out_height(), s.out_width());
        for b in 0..s.batch {
            for oh in 0..oh_n {
                for ow in 0..ow_n {
                    for co in 0..s.out_channels {
                        let g = co / opg;
                        for cl in 0..cpg {
                            let ci = g * cpg + cl;
                            for kh in 0..k {
                                let Some(ih) = pos(oh, kh, s, h) else {
                                    continue;
                                };
                                for kw in 0..k {
                                    let Some(iw) = pos(ow, kw, s, w) else {
                                        continue;
                                    };
                                    let yi = ((b * oh_n + oh) * ow_n + ow) * s.out_channels + co;
                                    let xi = ((b * h + ih) * w + iw) * s.in_channels + ci;
                                    let wi = ((co * cpg + cl) * k + kh) * k + kw;
                                    f([b, oh, ow], yi, xi, wi);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn reference(s: &ConvShape, x: &[f32], w: &[f32], dy: &[f32]) -> [Vec<f64>; 3] {
        let mut y = vec![0.0f64; s.output_len()];
        let mut dx = vec![0.0f64; s.input_len()];
        let mut dw = vec![0.0f64; s.weight_len()];
        each_term(s, |_, yi, xi, wi| {
            y[yi] += x[xi] as f64 * w[wi] as f64;
            dx[xi] += dy[yi] as f64 * w[wi] as f64;
            dw[wi] += x[xi] as f64 * dy[yi] as f64;
        });
        [y, dx, dw]
    }

    fn assert_close(what: &str, s: &ConvShape, got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len(), "{what} length for {s:?}");
        let scale = want.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let err = (*g as f64 - w).abs();
            assert!(
                err <= 1e-4 * scale + 1e-5 * w.abs(),
                "{what} of {s:?} at {i}: got {g}, want {w} (scale {scale})"
            );
        }
    }

    fn check_shape(s: &ConvShape, rng: &mut Rng) {
        let x = rng.vec(s.input_len());
        let w = rng.vec(s.weight_len());
        let dy = rng.vec(s.output_len());
        let [y, dx, dw] = reference(s, &x, &w, &dy);
        assert_close("forward", s, &forward(s, &x, &w), &y);
        assert_close("backward_data", s, &backward_data(s, &dy, &w), &dx);
        assert_close("backward_weight", s, &backward_weight(s, &x, &dy), &dw);
    }

    fn random_shape(rng: &mut Rng, depthwise: bool, narrow: bool) -> ConvShape {
        let chans: &[usize] = if narrow {
            &[1, 2, 3, 5, 8, 13, 16]
        } else {
            &[1, 3, 5, 16, 17, 24, 32, 40]
        };
        let cin = rng.pick(chans);
        let cout = if depthwise { cin } else { rng.pick(chans) };
        let kernel = rng.pick(&[1, 3, 3, 5, 7]);
        ConvShape {
            batch: 1 + rng.below(3),
            height: 1 + rng.below(11),
            width: 1 + rng.below(11),
            in_channels: cin,
            out_channels: cout,
            kernel,
            stride: rng.pick(&[1, 1, 2, 3]),
            groups: if depthwise { cin } else { 1 },
        }
    }

    #[test]
    fn dense_matches_reference() {
        let mut rng = Rng(1);
        for i in 0..60 {
            let s = random_shape(&mut rng, false, i % 2 == 0);
            check_shape(&s, &mut rng);
        }
    }

    #[test]
    fn depthwise_matches_reference() {
        let mut rng = Rng(2);
        for _ in 0..40 {
            let s = random_shape(&mut rng, true, false);
            check_shape(&s, &mut rng);
        }
        // more channels than one vector, awkward remainders
        for c in [96, 33] {
            let s = ConvShape {
                batch: 2,
                height: 7,
                width: 6,
                in_channels: c,
                out_channels: c,
                kernel: 3,
                stride: 2,
                groups: c,
            };
            check_shape(&s, &mut rng);
        }
    }

    #[test]
    fn fixed_shapes_match_reference() {
        let mut rng = Rng(3);
        let shapes = [
            // (batch, h, w, cin, cout, k, stride, depthwise)
            (2, 9, 8, 16, 16, 3, 1, false),
            (1, 9, 9, 16, 32, 3, 2, false),
            (2, 8, 8, 32, 32, 3, 1, false),
            (1, 7, 5, 24, 96, 1, 1, false),
            (2, 7, 7, 32, 64, 1, 2, false),
            (1, 1, 1, 3, 5, 7, 1, false),
            (1, 2, 3, 3, 16, 7, 3, false),
            (1, 5, 5, 96, 96, 3, 1, true),
            (1, 1, 1, 8, 8, 5, 2, true),
            (3, 4, 4, 17, 1, 5, 1, false),
            (1, 18, 20, 16, 16, 3, 1, false),
            (1, 13, 11, 16, 8, 5, 2, false),
            // im2col tiles smaller than an image, and spanning image boundaries
            (2, 13, 13, 40, 24, 7, 1, false),
            (3, 12, 11, 40, 24, 7, 2, false),
            (5, 3, 3, 64, 20, 5, 1, false),
            (2, 5, 5, 96, 24, 3, 1, false),
        ];
        for (batch, height, width, cin, cout, kernel, stride, dw) in shapes {
            let s = ConvShape {
                batch,
                height,
                width,
                in_channels: cin,
                out_channels: cout,
                kernel,
                stride,
                groups: if dw { cin } else { 1 },
            };
            check_shape(&s, &mut rng);
        }
    }

    #[test]
    fn thread_count_does_not_change_results() {
        let mut rng = Rng(4);
        let shapes = [
            (5, 10, 9, 16, 16, 3, 1, 1),
            (4, 12, 12, 32, 24, 3, 2, 1),
            (3, 9, 9, 40, 40, 1, 1, 1),
            (3, 9, 9, 40, 48, 3, 1, 1),
            (3, 9, 9, 40, 48, 3, 2, 1),
            (4, 9, 8, 24, 24, 5, 1, 24),
        ];
        for (batch, height, width, cin, cout, kernel, stride, groups) in shapes {
            let s = ConvShape {
                batch,
                height,
                width,
                in_channels: cin,
                out_channels: cout,
                kernel,
                stride,
                groups,
            };
            let x = rng.vec(s.input_len());
            let w = rng.vec(s.weight_len());
            let dy = rng.vec(s.output_len());
            let run = |threads: usize| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap()
                    .install(|| {
                        [
                            forward(&s, &x, &w),
                            backward_data(&s, &dy, &w),
                            backward_weight(&s, &x, &dy),
                        ]
                    })
            };
            let one = run(1);
            let two = run(2);
            for (a, b) in one.iter().zip(&two) {
                for (u, v) in a.iter().zip(b) {
                    assert!(
                        (u - v).abs() <= 1e-5 * u.abs().max(1e-3),
                        "{s:?}: {u} vs {v}"
                    );
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "weight has 3 elements")]
    fn rejects_wrong_lengths() {
        let s = ConvShape {
            batch: 1,
            height: 2,
            width: 2,
            in_channels: 1,
            out_channels: 1,
            kernel: 3,
            stride: 1,
            groups: 1,
        };
        forward(&s, &[0.0; 4], &[0.0; 3]);
    }
}
