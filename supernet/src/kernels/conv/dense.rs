//! Dense convolution: im2col + gemm.

use std::ops::Range;

use super::narrow::{is_narrow, narrow_backward_weight, narrow_forward};
use super::winograd;
use super::{ConvShape, par_chunks_zeroed, partitioned_sum, simd, valid_taps, with_scratch};
use crate::kernels::Isa;
use crate::kernels::sgemm::{Dst, Src, sgemm};

/// Target size (in `f32`) of one tile of the im2col patch matrix: 256 KiB, half of a typical
/// L2 cache.
const TILE_ELEMS: usize = 64 * 1024;

/// Output pixels per im2col tile (tiles run over the flattened `(b, oh, ow)` pixels).
fn tile_pixels(s: &ConvShape) -> usize {
    (TILE_ELEMS / (s.kernel * s.kernel * s.in_channels)).max(16)
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

/// Dense forward with the weight repacked to `[(kh, kw, ci), co]`.
pub(super) fn dense_forward(s: &ConvShape, x: &[f32], wr: &[f32]) -> Vec<f32> {
    if is_narrow(s) {
        return if winograd::applies(s) {
            winograd::forward_on(Isa::Best, s, x, wr)
        } else {
            narrow_forward(s, x, wr)
        };
    }
    let (cin, cout) = (s.in_channels, s.out_channels);
    let kkc = s.kernel * s.kernel * cin;
    let pointwise = s.kernel == 1 && s.stride == 1;
    let tile = tile_pixels(s);
    let wmat = Src {
        data: wr,
        rs: cout,
        cs: 1,
    };
    par_chunks_zeroed(s.output_len(), tile * cout, |t, o| {
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
    })
}

/// Dense backward-data (any stride): patch gradients `dy × wrᵀ`, then col2im.
pub(super) fn dense_backward_data(s: &ConvShape, dy: &[f32], wr: &[f32]) -> Vec<f32> {
    let (cin, cout) = (s.in_channels, s.out_channels);
    let kkc = s.kernel * s.kernel * cin;
    let img_pixels = s.out_height() * s.out_width();
    let tile = tile_pixels(s);
    // Tasks own whole images (col2im adds into neighbouring pixels), about a tile each.
    let images = tile.div_ceil(img_pixels).max(1);
    par_chunks_zeroed(
        s.input_len(),
        images * s.height * s.width * cin,
        |g, dx_group| {
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
        },
    )
}

/// Dense backward-weight as `[(kh, kw, ci), co]`: `patchesᵀ × dy` summed over the batch.
pub(super) fn dense_backward_weight(s: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
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
