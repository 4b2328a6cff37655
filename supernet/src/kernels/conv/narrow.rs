//! Narrow dense convolution: direct kernels.

use std::ops::Range;

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use super::{ConvShape, partitioned_sum, with_scratch, zeroed};

/// Vector width of the direct kernels: output channels (forward) or output-gradient channels
/// (backward-weight) are padded to this many lanes, one AVX-512 register.
const LANES: usize = 16;

/// Most 16-lane groups of output channels the direct kernels handle.
const MAX_GROUPS: usize = 2;

/// Whether the direct kernels handle this dense shape: up to 32 output channels (two AVX-512
/// registers per pixel), and not too many input channels. They beat im2col + gemm there
/// (gemm's microkernel runs vectors over the output channels, which few channels fill badly);
/// from 64 output channels on, gemm is as fast.
pub(super) fn is_narrow(s: &ConvShape) -> bool {
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
pub(super) fn narrow_forward(s: &ConvShape, x: &[f32], wr: &[f32]) -> Vec<f32> {
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
pub(super) fn narrow_backward_weight(s: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
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
