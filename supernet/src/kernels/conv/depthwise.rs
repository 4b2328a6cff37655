//! Depthwise convolution: direct loops over the channels.

use std::ops::Range;

use pulp::{Simd, WithSimd};

use super::{ConvShape, par_chunks_zeroed, partitioned_sum, valid_taps};

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
pub(super) fn depthwise_forward(s: &ConvShape, x: &[f32], wt: &[f32]) -> Vec<f32> {
    let row = s.out_width() * s.in_channels;
    let per_task = depthwise_rows_per_task(s, row);
    par_chunks_zeroed(s.output_len(), per_task * row, |t, dst| {
        let first = t * per_task;
        pulp::Arch::new().dispatch(DepthwiseRows {
            s,
            pass: DwPass::Forward,
            rows: first..first + dst.len() / row,
            a: x,
            b: wt,
            dst,
        });
    })
}

/// Depthwise backward-data (gather form, any stride) with the weight as `[(kh, kw), c]`.
pub(super) fn depthwise_backward_data(s: &ConvShape, dy: &[f32], wt: &[f32]) -> Vec<f32> {
    let row = s.width * s.in_channels;
    let per_task = depthwise_rows_per_task(s, row);
    par_chunks_zeroed(s.input_len(), per_task * row, |t, dst| {
        let first = t * per_task;
        pulp::Arch::new().dispatch(DepthwiseRows {
            s,
            pass: DwPass::BackwardData,
            rows: first..first + dst.len() / row,
            a: dy,
            b: wt,
            dst,
        });
    })
}

/// Depthwise backward-weight as `[(kh, kw), c]`.
pub(super) fn depthwise_backward_weight(s: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
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
