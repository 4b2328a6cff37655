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
//! - Narrow dense layers (both channel counts ≤ 16) use direct kernels instead, register
//!   blocked over several output pixels × 16 output channels, on a zero-padded copy of each
//!   input image: no patch matrix at all.
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

/// Output rows per im2col tile.
fn tile_rows(s: &ConvShape) -> usize {
    let row = s.out_width() * s.kernel * s.kernel * s.in_channels;
    (TILE_ELEMS / row.max(1)).clamp(1, s.out_height())
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

/// Writes the im2col rows of output rows `rows` of one image into `patches`
/// (`[(oh, ow), (kh, kw, ci)]`, zeros for the padding).
fn im2col(s: &ConvShape, x_img: &[f32], rows: Range<usize>, patches: &mut [f32]) {
    let (k, st, pad, cin) = (s.kernel, s.stride, s.padding(), s.in_channels);
    let (h, w, ow_n) = (s.height, s.width, s.out_width());
    let kkc = k * k * cin;
    let mut chunks = patches.chunks_exact_mut(kkc);
    for oh in rows {
        for ow in 0..ow_n {
            let dst = chunks.next().expect("patch buffer too short");
            let kws = valid_taps(ow, st, pad, k, w);
            let khs = valid_taps(oh, st, pad, k, h);
            for kh in 0..k {
                let row = &mut dst[kh * k * cin..(kh + 1) * k * cin];
                if !khs.contains(&kh) {
                    row.fill(0.0);
                    continue;
                }
                let ih = oh * st + kh - pad;
                row[..kws.start * cin].fill(0.0);
                let iw = ow * st + kws.start - pad;
                let src = (ih * w + iw) * cin;
                row[kws.start * cin..kws.end * cin]
                    .copy_from_slice(&x_img[src..src + kws.len() * cin]);
                row[kws.end * cin..].fill(0.0);
            }
        }
    }
}

/// Adds the patch gradients of output rows `rows` (`[(oh, ow), (kh, kw, ci)]`) into the input
/// gradient of one image (the adjoint of [`im2col`]).
#[inline(always)]
fn col2im_add(s: &ConvShape, dpatches: &[f32], rows: Range<usize>, dx_img: &mut [f32]) {
    let (k, st, pad, cin) = (s.kernel, s.stride, s.padding(), s.in_channels);
    let (h, w, ow_n) = (s.height, s.width, s.out_width());
    let kkc = k * k * cin;
    let mut chunks = dpatches.chunks_exact(kkc);
    for oh in rows {
        for ow in 0..ow_n {
            let src = chunks.next().expect("patch buffer too short");
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
    let mut out = vec![0.0; s.output_len()];
    let wmat = Src {
        data: wr,
        rs: cout,
        cs: 1,
    };
    if s.kernel == 1 && s.stride == 1 {
        let rows = (TILE_ELEMS / cin.max(cout)).max(16);
        out.par_chunks_mut(rows * cout)
            .zip(x.par_chunks(rows * cin))
            .for_each(|(o, xi)| {
                let m = xi.len() / cin;
                let dst = Dst {
                    data: o,
                    rs: cout,
                    cs: 1,
                    accumulate: false,
                };
                let lhs = Src {
                    data: xi,
                    rs: cin,
                    cs: 1,
                };
                sgemm(m, cout, cin, dst, lhs, wmat, false);
            });
        return out;
    }
    let (oh_n, ow_n) = (s.out_height(), s.out_width());
    let img_in = s.height * s.width * cin;
    let tr = tile_rows(s);
    out.par_chunks_mut(oh_n * ow_n * cout)
        .enumerate()
        .for_each(|(b, out_img)| {
            let x_img = &x[b * img_in..(b + 1) * img_in];
            out_img
                .par_chunks_mut(tr * ow_n * cout)
                .enumerate()
                .for_each(|(t, o)| {
                    let rows = t * tr..(t * tr + tr).min(oh_n);
                    let m = rows.len() * ow_n;
                    with_scratch(m * kkc, |patches| {
                        im2col(s, x_img, rows, patches);
                        let dst = Dst {
                            data: o,
                            rs: cout,
                            cs: 1,
                            accumulate: false,
                        };
                        let lhs = Src {
                            data: patches,
                            rs: kkc,
                            cs: 1,
                        };
                        sgemm(m, cout, kkc, dst, lhs, wmat, false);
                    });
                });
        });
    out
}

/// Dense backward-data (any stride): patch gradients `dy × wrᵀ`, then col2im.
fn dense_backward_data(s: &ConvShape, dy: &[f32], wr: &[f32]) -> Vec<f32> {
    let (cin, cout) = (s.in_channels, s.out_channels);
    let kkc = s.kernel * s.kernel * cin;
    let (oh_n, ow_n) = (s.out_height(), s.out_width());
    let img_out = oh_n * ow_n * cout;
    let tr = tile_rows(s);
    let mut dx = vec![0.0; s.input_len()];
    dx.par_chunks_mut(s.height * s.width * cin)
        .enumerate()
        .for_each(|(b, dx_img)| {
            let dy_img = &dy[b * img_out..(b + 1) * img_out];
            for t in 0..oh_n.div_ceil(tr) {
                let rows = t * tr..(t * tr + tr).min(oh_n);
                let m = rows.len() * ow_n;
                with_scratch(m * kkc, |dpatches| {
                    let lhs = Src {
                        data: &dy_img[rows.start * ow_n * cout..rows.end * ow_n * cout],
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
                        || col2im_add(s, dpatches, rows, dx_img),
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
    let (oh_n, ow_n) = (s.out_height(), s.out_width());
    let (img_in, img_out) = (s.height * s.width * cin, oh_n * ow_n * cout);
    let pointwise = s.kernel == 1 && s.stride == 1;
    let tr = if pointwise { oh_n } else { tile_rows(s) };
    let tiles = oh_n.div_ceil(tr);
    partitioned_sum(s.batch * tiles, kkc * cout, |units, acc| {
        for u in units {
            let (b, t) = (u / tiles, u % tiles);
            let rows = t * tr..(t * tr + tr).min(oh_n);
            let m = rows.len() * ow_n;
            let x_img = &x[b * img_in..(b + 1) * img_in];
            let dy_tile =
                &dy[b * img_out + rows.start * ow_n * cout..b * img_out + rows.end * ow_n * cout];
            let rhs = Src {
                data: dy_tile,
                rs: cout,
                cs: 1,
            };
            let dst = Dst {
                data: acc,
                rs: cout,
                cs: 1,
                accumulate: true,
            };
            if pointwise {
                let lhs = Src {
                    data: x_img,
                    rs: 1,
                    cs: cin,
                };
                sgemm(kkc, cout, m, dst, lhs, rhs, false);
            } else {
                with_scratch(m * kkc, |patches| {
                    im2col(s, x_img, rows, patches);
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

/// Output pixels per register block of the direct forward kernel.
const BLOCK_PIXELS: usize = 8;

/// Weight rows `(kh, kw, ci)` per register block of the direct backward-weight kernel.
const BLOCK_ROWS: usize = 16;

/// Whether the direct kernels handle this dense shape.
fn is_narrow(s: &ConvShape) -> bool {
    s.groups == 1 && s.in_channels <= LANES && s.out_channels <= LANES
}

/// What the direct kernels need of the shape.
#[derive(Clone, Copy, Debug)]
struct Geom {
    kernel: usize,
    stride: usize,
    cin: usize,
    cout: usize,
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

/// `P` output pixels `(oh, ow0..ow0 + P)` × all output channels, accumulated in registers.
#[inline(always)]
fn forward_block<S: Simd, const P: usize>(
    simd: S,
    g: &Geom,
    xp: &[f32],
    wp: &[f32],
    oh: usize,
    ow0: usize,
    out_row: &mut [f32],
) {
    let nv = LANES / S::F32_LANES;
    let mut acc = [[simd.splat_f32s(0.0); LANES]; P];
    for kh in 0..g.kernel {
        let base = (oh * g.stride + kh) * g.row + ow0 * g.stride * g.cin;
        let xs: [&[f32]; P] = std::array::from_fn(|p| &xp[base + p * g.stride * g.cin..][..g.kc]);
        let (wk, _) = S::as_simd_f32s(&wp[kh * g.kc * LANES..][..g.kc * LANES]);
        for r in 0..g.kc {
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
        let mut tmp = [0.0f32; LANES];
        let (t, _) = S::as_mut_simd_f32s(&mut tmp);
        t.copy_from_slice(&a[..nv]);
        out_row[(ow0 + p) * g.cout..][..g.cout].copy_from_slice(&tmp[..g.cout]);
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
            let mut ow = 0;
            while g.out_w - ow >= BLOCK_PIXELS {
                forward_block::<S, BLOCK_PIXELS>(simd, &g, xp, wp, oh, ow, out_row);
                ow += BLOCK_PIXELS;
            }
            if g.out_w - ow >= 4 {
                forward_block::<S, 4>(simd, &g, xp, wp, oh, ow, out_row);
                ow += 4;
            }
            if g.out_w - ow >= 2 {
                forward_block::<S, 2>(simd, &g, xp, wp, oh, ow, out_row);
                ow += 2;
            }
            if g.out_w - ow >= 1 {
                forward_block::<S, 1>(simd, &g, xp, wp, oh, ow, out_row);
            }
        }
    }
}

/// Dense forward for narrow layers with the weight repacked to `[(kh, kw, ci), co]`.
fn narrow_forward(s: &ConvShape, x: &[f32], wr: &[f32]) -> Vec<f32> {
    let g = Geom::new(s);
    let kkc = g.kernel * g.kc;
    let mut wp = vec![0.0; kkc * LANES];
    for (dst, src) in wp.chunks_exact_mut(LANES).zip(wr.chunks_exact(g.cout)) {
        dst[..g.cout].copy_from_slice(src);
    }
    let img_in = s.height * s.width * g.cin;
    let mut out = vec![0.0; s.output_len()];
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
/// `acc` (`[R, LANES]`), the sums held in registers over the whole image.
#[inline(always)]
fn weight_block<S: Simd, const R: usize>(
    simd: S,
    g: &Geom,
    xp: &[f32],
    dyp: &[f32],
    kh: usize,
    r0: usize,
    acc: &mut [f32],
) {
    let nv = LANES / S::F32_LANES;
    let mut sum = [[simd.splat_f32s(0.0); LANES]; R];
    for oh in 0..g.out_h {
        let base = (oh * g.stride + kh) * g.row + r0;
        let (dy_row, _) = S::as_simd_f32s(&dyp[oh * g.out_w * LANES..][..g.out_w * LANES]);
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
    let (a, _) = S::as_mut_simd_f32s(&mut acc[..R * LANES]);
    for j in 0..R {
        for v in 0..nv {
            a[j * nv + v] = simd.add_f32s(a[j * nv + v], sum[j][v]);
        }
    }
}

/// The direct backward-weight pass over a range of images, added to `acc`
/// (`[(kh, kw, ci), LANES]`).
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
        let img_in = s.height * s.width * g.cin;
        let pixels = g.out_h * g.out_w;
        dyp.fill(0.0);
        for b in images {
            pad_image(s, &x[b * img_in..(b + 1) * img_in], xp);
            let dy_img = &dy[b * pixels * g.cout..(b + 1) * pixels * g.cout];
            for (d, src) in dyp.chunks_exact_mut(LANES).zip(dy_img.chunks_exact(g.cout)) {
                d[..g.cout].copy_from_slice(src);
            }
            for kh in 0..g.kernel {
                let rows = &mut acc[kh * g.kc * LANES..(kh + 1) * g.kc * LANES];
                let mut r = 0;
                while g.kc - r >= BLOCK_ROWS {
                    let a = &mut rows[r * LANES..];
                    weight_block::<S, BLOCK_ROWS>(simd, &g, xp, dyp, kh, r, a);
                    r += BLOCK_ROWS;
                }
                for step in [8, 4, 2, 1] {
                    if g.kc - r >= step {
                        let a = &mut rows[r * LANES..];
                        match step {
                            8 => weight_block::<S, 8>(simd, &g, xp, dyp, kh, r, a),
                            4 => weight_block::<S, 4>(simd, &g, xp, dyp, kh, r, a),
                            2 => weight_block::<S, 2>(simd, &g, xp, dyp, kh, r, a),
                            _ => weight_block::<S, 1>(simd, &g, xp, dyp, kh, r, a),
                        }
                        r += step;
                    }
                }
            }
        }
    }
}

/// Dense backward-weight for narrow layers, as `[(kh, kw, ci), co]`.
fn narrow_backward_weight(s: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let g = Geom::new(s);
    let kkc = g.kernel * g.kc;
    let xp_len = padded_len(s);
    let dyp_len = g.out_h * g.out_w * LANES;
    let padded = partitioned_sum(s.batch, kkc * LANES, |images, acc| {
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
    for (dst, src) in dwr.chunks_exact_mut(g.cout).zip(padded.chunks_exact(LANES)) {
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

/// `acc[c] += a[c] * b[c]`.
#[inline(always)]
fn fma_rows(acc: &mut [f32], a: &[f32], b: &[f32]) {
    for ((o, x), y) in acc.iter_mut().zip(a).zip(b) {
        *o = x.mul_add(*y, *o);
    }
}

/// Depthwise forward with the weight as `[(kh, kw), c]`.
fn depthwise_forward(s: &ConvShape, x: &[f32], wt: &[f32]) -> Vec<f32> {
    let (k, st, pad, c) = (s.kernel, s.stride, s.padding(), s.in_channels);
    let (h, w, oh_n, ow_n) = (s.height, s.width, s.out_height(), s.out_width());
    let img_in = h * w * c;
    let row = ow_n * c;
    let mut out = vec![0.0; s.output_len()];
    out.par_chunks_mut(depthwise_rows_per_task(s, row) * row)
        .enumerate()
        .for_each(|(t, o)| {
            let first = t * depthwise_rows_per_task(s, row);
            simd(
                #[inline(always)]
                || {
                    for (r, orow) in o.chunks_exact_mut(row).enumerate() {
                        let (b, oh) = ((first + r) / oh_n, (first + r) % oh_n);
                        let x_img = &x[b * img_in..(b + 1) * img_in];
                        for (ow, opix) in orow.chunks_exact_mut(c).enumerate() {
                            let kws = valid_taps(ow, st, pad, k, w);
                            for kh in valid_taps(oh, st, pad, k, h) {
                                let ih = oh * st + kh - pad;
                                for kw in kws.clone() {
                                    let iw = ow * st + kw - pad;
                                    let xi = &x_img[(ih * w + iw) * c..(ih * w + iw + 1) * c];
                                    fma_rows(
                                        opix,
                                        xi,
                                        &wt[(kh * k + kw) * c..(kh * k + kw + 1) * c],
                                    );
                                }
                            }
                        }
                    }
                },
            )
        });
    out
}

/// Depthwise backward-data (gather form, any stride) with the weight as `[(kh, kw), c]`.
fn depthwise_backward_data(s: &ConvShape, dy: &[f32], wt: &[f32]) -> Vec<f32> {
    let (k, st, pad, c) = (s.kernel, s.stride, s.padding(), s.in_channels);
    let (h, w, oh_n, ow_n) = (s.height, s.width, s.out_height(), s.out_width());
    let img_out = oh_n * ow_n * c;
    let row = w * c;
    let mut dx = vec![0.0; s.input_len()];
    // The output positions `o` with `o * st + kt - pad == i` for some tap `kt < k`.
    let taps = move |i: usize, kt: usize, n: usize| -> Option<usize> {
        let v = (i + pad).checked_sub(kt)?;
        (v % st == 0 && v / st < n).then_some(v / st)
    };
    dx.par_chunks_mut(depthwise_rows_per_task(s, row) * row)
        .enumerate()
        .for_each(|(t, d)| {
            let first = t * depthwise_rows_per_task(s, row);
            simd(
                #[inline(always)]
                || {
                    for (r, drow) in d.chunks_exact_mut(row).enumerate() {
                        let (b, ih) = ((first + r) / h, (first + r) % h);
                        let dy_img = &dy[b * img_out..(b + 1) * img_out];
                        for (iw, dpix) in drow.chunks_exact_mut(c).enumerate() {
                            for kh in 0..k {
                                let Some(oh) = taps(ih, kh, oh_n) else {
                                    continue;
                                };
                                for kw in 0..k {
                                    let Some(ow) = taps(iw, kw, ow_n) else {
                                        continue;
                                    };
                                    let g = &dy_img[(oh * ow_n + ow) * c..(oh * ow_n + ow + 1) * c];
                                    fma_rows(
                                        dpix,
                                        g,
                                        &wt[(kh * k + kw) * c..(kh * k + kw + 1) * c],
                                    );
                                }
                            }
                        }
                    }
                },
            )
        });
    dx
}

/// Depthwise backward-weight as `[(kh, kw), c]`.
fn depthwise_backward_weight(s: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (k, st, pad, c) = (s.kernel, s.stride, s.padding(), s.in_channels);
    let (h, w, oh_n, ow_n) = (s.height, s.width, s.out_height(), s.out_width());
    let img_in = h * w * c;
    partitioned_sum(s.batch * oh_n, k * k * c, |units, acc| {
        simd(
            #[inline(always)]
            || {
                for u in units {
                    let (b, oh) = (u / oh_n, u % oh_n);
                    let x_img = &x[b * img_in..(b + 1) * img_in];
                    let dy_row = &dy[u * ow_n * c..(u + 1) * ow_n * c];
                    for (ow, g) in dy_row.chunks_exact(c).enumerate() {
                        let kws = valid_taps(ow, st, pad, k, w);
                        for kh in valid_taps(oh, st, pad, k, h) {
                            let ih = oh * st + kh - pad;
                            for kw in kws.clone() {
                                let iw = ow * st + kw - pad;
                                let xi = &x_img[(ih * w + iw) * c..(ih * w + iw + 1) * c];
                                fma_rows(&mut acc[(kh * k + kw) * c..(kh * k + kw + 1) * c], xi, g);
                            }
                        }
                    }
                }
            },
        )
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
