//! Narrow dense convolution: direct kernels.

use std::ops::Range;

use pulp::{Simd, WithSimd};

use super::{ConvShape, par_chunks_zeroed, partitioned_sum, with_scratch};
use crate::kernels::Isa;

/// Vector width of the direct kernels: output channels (forward) or output-gradient channels
/// (backward-weight) are padded to this many lanes, one AVX-512 register.
const LANES: usize = 16;

/// Most 16-lane groups of output channels the direct kernels handle.
const MAX_GROUPS: usize = 4;

/// Whether the direct kernels handle this dense shape: up to 64 output channels where the CPU
/// has AVX-512 (four registers per pixel; 32 registers hold the sums of 4 pixels), else up to
/// 32, and not too many input channels. They beat im2col + gemm there (gemm's microkernel runs
/// vectors over the output channels, which few channels fill badly, and on small images its
/// packing costs as much as the product): 1.8x on ResNet-20's 64-channel 8x8 layers (forward +
/// both backward passes, `conv_kernels` example, AVX-512 at 256 bits per cycle).
pub(super) fn is_narrow(s: &ConvShape) -> bool {
    let max_groups = if wide_registers() { MAX_GROUPS } else { 2 };
    s.groups == 1 && s.out_channels <= max_groups * LANES && s.in_channels <= 64
}

/// Whether the CPU has AVX-512 (32 vector registers of 16 lanes).
fn wide_registers() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        pulp::x86::V4::try_new().is_some()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
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
    pad_into(x_img, xp, (w, c, p), (w + 2 * p) * c);
}

/// Writes the zero-padded copy of an image `[h, width, channels]` into `xp`, in rows of `row`
/// elements (at least `(width + 2 pad) * channels`): the image at pixel `(pad, pad)`, zeros
/// everywhere else, also in the rows and columns past the padding.
#[inline(always)]
pub(super) fn pad_into(
    x_img: &[f32],
    xp: &mut [f32],
    (width, channels, pad): (usize, usize, usize),
    row: usize,
) {
    let (w, c, p) = (width, channels, pad);
    let h = x_img.len() / (w * c);
    xp[..p * row].fill(0.0);
    for (ih, src) in x_img.chunks_exact(w * c).enumerate() {
        let dst = &mut xp[(ih + p) * row..(ih + p + 1) * row];
        dst[..p * c].fill(0.0);
        dst[p * c..(p + w) * c].copy_from_slice(src);
        dst[(p + w) * c..].fill(0.0);
    }
    xp[(h + p) * row..].fill(0.0);
}

/// Adds `Σ_r xs[p][r] · wk[r]` to `acc[p]` for the `n` rows `r` of `wk` (`NV` vectors each):
/// `P` rows of inputs times one weight matrix, the sums held in registers.
#[inline(always)]
pub(super) fn fma_rows<S: Simd, const NV: usize, const P: usize>(
    simd: S,
    acc: &mut [[S::f32s; NV]; P],
    xs: &[&[f32]; P],
    wk: &[S::f32s],
    n: usize,
) {
    // each pixel's inputs as exactly `n / 2` pairs, so that the loop below indexes them with no
    // bounds checks (with them, the 1-vector case spent as many instructions on checks and
    // reloaded pointers as on multiply-adds)
    let pairs = n / 2;
    let mut x2: [&[[f32; 2]]; P] = [&[]; P];
    for (d, x) in x2.iter_mut().zip(xs) {
        *d = &x[..n].as_chunks::<2>().0[..pairs];
    }
    let (w2, _) = wk[..2 * pairs * NV].as_chunks::<NV>();
    let w2 = &w2[..2 * pairs];
    // two weight rows per iteration (fewer loop-carried register copies)
    for r in 0..pairs {
        let w0 = &w2[2 * r];
        let w1 = &w2[2 * r + 1];
        for p in 0..P {
            let [a, b] = x2[p][r];
            let x0 = simd.splat_f32s(a);
            let x1 = simd.splat_f32s(b);
            for v in 0..NV {
                acc[p][v] = simd.mul_add_f32s(x0, w0[v], acc[p][v]);
                acc[p][v] = simd.mul_add_f32s(x1, w1[v], acc[p][v]);
            }
        }
    }
    if n % 2 == 1 {
        let r = n - 1;
        let wv: &[S::f32s; NV] = wk[r * NV..][..NV].try_into().unwrap();
        for p in 0..P {
            let xv = simd.splat_f32s(xs[p][r]);
            for v in 0..NV {
                acc[p][v] = simd.mul_add_f32s(xv, wv[v], acc[p][v]);
            }
        }
    }
}

/// `P` output pixels `(oh, ow0..ow0 + P)` × the `NV` vectors of (padded) output channels,
/// accumulated in registers.
#[inline(always)]
fn forward_block<S: Simd, const NV: usize, const P: usize>(
    simd: S,
    g: &Geom,
    xp: &[f32],
    wp: &[f32],
    oh: usize,
    ow0: usize,
    out_row: &mut [f32],
) {
    let mut acc = [[simd.splat_f32s(0.0); NV]; P];
    let w_len = g.kc * NV * S::F32_LANES;
    for kh in 0..g.kernel {
        let base = (oh * g.stride + kh) * g.row + ow0 * g.stride * g.cin;
        let mut xs: [&[f32]; P] = [&[]; P];
        for (p, x) in xs.iter_mut().enumerate() {
            *x = &xp[base + p * g.stride * g.cin..][..g.kc];
        }
        let (wk, _) = S::as_simd_f32s(&wp[kh * w_len..][..w_len]);
        fma_rows(simd, &mut acc, &xs, wk, g.kc);
    }
    for (p, a) in acc.iter().enumerate() {
        store_channels(simd, a, &mut out_row[(ow0 + p) * g.cout..][..g.cout]);
    }
}

/// Stores the first `dst.len()` lanes of `v` into `dst` (full vectors, then one partial
/// store), with no call to `memcpy` for these few bytes. `v` is only indexed by constants, so
/// that it stays in registers.
#[inline(always)]
pub(super) fn store_channels<S: Simd, const NV: usize>(
    simd: S,
    v: &[S::f32s; NV],
    dst: &mut [f32],
) {
    for (i, x) in v.iter().enumerate() {
        let lo = i * S::F32_LANES;
        if lo + S::F32_LANES <= dst.len() {
            let (d, _) = S::as_mut_simd_f32s(&mut dst[lo..lo + S::F32_LANES]);
            d[0] = *x;
        } else if lo < dst.len() {
            simd.partial_store_f32s(&mut dst[lo..], *x);
        }
    }
}

/// Runs `$call` with the constants `$NV` (vectors of output channels per pixel: `nv`) and `$P`
/// (pixels per block) chosen for `nv` vectors of `$S`'s lanes: `NV * P` accumulators and
/// `2 * NV` weight vectors within the 32 vector registers of AVX-512 (16 of AVX2). `nv` is 1-4
/// (16 lanes), 2-8 (8 lanes: AVX2), 4-16 (4 lanes: NEON) or 16-64 (portable code). More than 8
/// pixels do not pay: LLVM no longer unrolls the pixel loop, and 8 accumulators already cover
/// the FMA latency. The direct forward kernel and the Winograd products share it.
macro_rules! forward_blocks {
    ($S:ty, $nv:expr, |$NV:ident, $P:ident| $call:expr) => {{
        let nv: usize = $nv;
        let wide = <$S as Simd>::F32_LANES >= 16;
        macro_rules! with {
            ($n:literal, $p:literal) => {{
                const $NV: usize = $n;
                const $P: usize = $p;
                $call
            }};
        }
        match nv {
            1 => with!(1, 8),
            2 if wide => with!(2, 8),
            2 => with!(2, 4),
            3 if wide => with!(3, 6),
            4 if wide => with!(4, 4),
            4 => with!(4, 2),
            6 => with!(6, 1),
            8 => with!(8, 1),
            12 => with!(12, 1),
            16 => with!(16, 1),
            32 => with!(32, 1),
            48 => with!(48, 1),
            64 => with!(64, 1),
            _ => unreachable!(
                "{nv} vectors of {} lanes per pixel",
                <$S as Simd>::F32_LANES
            ),
        }
    }};
}
pub(super) use forward_blocks;

/// One output row of the direct forward kernel, in blocks of `P` pixels (then 8, 4, 2, 1).
#[inline(always)]
fn forward_row<S: Simd, const NV: usize, const P: usize>(
    simd: S,
    g: &Geom,
    xp: &[f32],
    wp: &[f32],
    oh: usize,
    out_row: &mut [f32],
) {
    let mut ow = 0;
    while g.out_w - ow >= P {
        forward_block::<S, NV, P>(simd, g, xp, wp, oh, ow, out_row);
        ow += P;
    }
    if P > 8 && g.out_w - ow >= 8 {
        forward_block::<S, NV, 8>(simd, g, xp, wp, oh, ow, out_row);
        ow += 8;
    }
    if P > 4 && g.out_w - ow >= 4 {
        forward_block::<S, NV, 4>(simd, g, xp, wp, oh, ow, out_row);
        ow += 4;
    }
    if P > 2 && g.out_w - ow >= 2 {
        forward_block::<S, NV, 2>(simd, g, xp, wp, oh, ow, out_row);
        ow += 2;
    }
    if P > 1 && g.out_w - ow >= 1 {
        forward_block::<S, NV, 1>(simd, g, xp, wp, oh, ow, out_row);
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
        let nv = g.groups * LANES / S::F32_LANES;
        for (oh, out_row) in out_img.chunks_exact_mut(g.out_w * g.cout).enumerate() {
            forward_blocks!(S, nv, |NV, P| forward_row::<S, NV, P>(
                simd, &g, xp, wp, oh, out_row
            ));
        }
    }
}

/// Dense forward for narrow layers with the weight repacked to `[(kh, kw, ci), co]`, by the
/// direct kernel (`dense_forward` sends the layers Winograd takes to `winograd.rs`).
pub(super) fn narrow_forward(s: &ConvShape, x: &[f32], wr: &[f32]) -> Vec<f32> {
    narrow_forward_on(Isa::Best, s, x, wr)
}

/// [`narrow_forward`] on the given instruction set.
pub(super) fn narrow_forward_on(isa: Isa, s: &ConvShape, x: &[f32], wr: &[f32]) -> Vec<f32> {
    let g = Geom::new(s);
    let width = g.groups * LANES;
    let kkc = g.kernel * g.kc;
    let mut wp = vec![0.0; kkc * width];
    for (dst, src) in wp.chunks_exact_mut(width).zip(wr.chunks_exact(g.cout)) {
        dst[..g.cout].copy_from_slice(src);
    }
    let img_in = s.height * s.width * g.cin;
    par_chunks_zeroed(s.output_len(), g.out_h * g.out_w * g.cout, |b, out_img| {
        with_scratch(padded_len(s), |xp| {
            isa.run(ForwardImage {
                s,
                g,
                x_img: &x[b * img_in..(b + 1) * img_in],
                xp,
                wp: &wp,
                out_img,
            })
        });
    })
}

/// Adds `Σ_pixels xp[pixel, (kh, r0..r0 + R)] ⊗ dy[pixel, :]` to the `R` weight-gradient rows
/// `acc` (`[R, NV vectors]`), the sums held in registers over the whole image.
#[inline(always)]
fn weight_block<S: Simd, const NV: usize, const R: usize>(
    simd: S,
    g: &Geom,
    xp: &[f32],
    dyp: &[f32],
    kh: usize,
    r0: usize,
    acc: &mut [f32],
) {
    let mut sum = [[simd.splat_f32s(0.0); NV]; R];
    for oh in 0..g.out_h {
        let base = (oh * g.stride + kh) * g.row + r0;
        let (dy_row, _) = S::as_simd_f32s(
            &dyp[oh * g.out_w * NV * S::F32_LANES..][..g.out_w * NV * S::F32_LANES],
        );
        for ow in 0..g.out_w {
            let gv: &[S::f32s; NV] = dy_row[ow * NV..][..NV].try_into().unwrap();
            let xr: &[f32; R] = xp[base + ow * g.stride * g.cin..][..R].try_into().unwrap();
            for j in 0..R {
                let xv = simd.splat_f32s(xr[j]);
                for v in 0..NV {
                    sum[j][v] = simd.mul_add_f32s(xv, gv[v], sum[j][v]);
                }
            }
        }
    }
    let (a, _) =
        S::as_mut_simd_f32s(&mut acc[r0 * NV * S::F32_LANES..(r0 + R) * NV * S::F32_LANES]);
    for j in 0..R {
        for v in 0..NV {
            a[j * NV + v] = simd.add_f32s(a[j * NV + v], sum[j][v]);
        }
    }
}

/// The weight-gradient rows `(kh, 0..kc)` of one image, in blocks of `R` rows (then 8, 4, 2,
/// 1).
#[inline(always)]
fn weight_rows<S: Simd, const NV: usize, const R: usize>(
    simd: S,
    g: &Geom,
    xp: &[f32],
    dyp: &[f32],
    kh: usize,
    rows: &mut [f32],
) {
    let mut r = 0;
    while g.kc - r >= R {
        weight_block::<S, NV, R>(simd, g, xp, dyp, kh, r, rows);
        r += R;
    }
    if R > 8 && g.kc - r >= 8 {
        weight_block::<S, NV, 8>(simd, g, xp, dyp, kh, r, rows);
        r += 8;
    }
    if R > 4 && g.kc - r >= 4 {
        weight_block::<S, NV, 4>(simd, g, xp, dyp, kh, r, rows);
        r += 4;
    }
    if R > 2 && g.kc - r >= 2 {
        weight_block::<S, NV, 2>(simd, g, xp, dyp, kh, r, rows);
        r += 2;
    }
    if R > 1 && g.kc - r >= 1 {
        weight_block::<S, NV, 1>(simd, g, xp, dyp, kh, r, rows);
    }
}

/// Copies `src` (`[pixels, cout]`) into `dst` (`[pixels, NV vectors]`), zero in the padding
/// lanes.
#[inline(always)]
fn pad_channels<S: Simd, const NV: usize>(simd: S, cout: usize, src: &[f32], dst: &mut [f32]) {
    let (dst, _) = S::as_mut_simd_f32s(dst);
    for (d, px) in dst.chunks_exact_mut(NV).zip(src.chunks_exact(cout)) {
        for (i, d) in d.iter_mut().enumerate() {
            let lo = i * S::F32_LANES;
            *d = if lo + S::F32_LANES <= cout {
                S::as_simd_f32s(&px[lo..lo + S::F32_LANES]).0[0]
            } else {
                simd.partial_load_f32s(&px[lo.min(cout)..])
            };
        }
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

impl WeightImages<'_> {
    #[inline(always)]
    fn run<S: Simd, const NV: usize, const R: usize>(self, simd: S) {
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
        for b in images {
            pad_image(s, &x[b * img_in..(b + 1) * img_in], xp);
            let dy_img = &dy[b * pixels * g.cout..(b + 1) * pixels * g.cout];
            // the output gradient as it is when its channels fill the vectors, else a padded copy
            let dyp: &[f32] = if g.cout == width {
                dy_img
            } else {
                pad_channels::<S, NV>(simd, g.cout, dy_img, dyp);
                dyp
            };
            for kh in 0..g.kernel {
                let rows = &mut acc[kh * g.kc * width..(kh + 1) * g.kc * width];
                weight_rows::<S, NV, R>(simd, &g, xp, dyp, kh, rows);
            }
        }
    }
}

impl WithSimd for WeightImages<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        // registers: `NV * R` sums, one output-gradient vector per lane group and the
        // broadcast, within 32 vector registers (AVX-512) or 16 (AVX2)
        let nv = self.g.groups * LANES / S::F32_LANES;
        let wide = S::F32_LANES >= 16;
        match nv {
            1 => self.run::<S, 1, 16>(simd),
            2 if wide => self.run::<S, 2, 12>(simd),
            2 => self.run::<S, 2, 6>(simd),
            3 if wide => self.run::<S, 3, 8>(simd),
            4 if wide => self.run::<S, 4, 6>(simd),
            4 => self.run::<S, 4, 3>(simd),
            6 => self.run::<S, 6, 1>(simd),
            8 => self.run::<S, 8, 1>(simd),
            12 => self.run::<S, 12, 1>(simd),
            16 => self.run::<S, 16, 1>(simd),
            32 => self.run::<S, 32, 1>(simd),
            48 => self.run::<S, 48, 1>(simd),
            64 => self.run::<S, 64, 1>(simd),
            _ => unreachable!("{nv} vectors of {} lanes per pixel", S::F32_LANES),
        }
    }
}

/// Dense backward-weight for narrow layers, as `[(kh, kw, ci), co]`.
pub(super) fn narrow_backward_weight(s: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    narrow_backward_weight_on(Isa::Best, s, x, dy)
}

/// [`narrow_backward_weight`] on the given instruction set.
pub(super) fn narrow_backward_weight_on(
    isa: Isa,
    s: &ConvShape,
    x: &[f32],
    dy: &[f32],
) -> Vec<f32> {
    let g = Geom::new(s);
    let width = g.groups * LANES;
    let kkc = g.kernel * g.kc;
    let xp_len = padded_len(s);
    let dyp_len = g.out_h * g.out_w * width;
    let padded = partitioned_sum(s.batch, kkc * width, |images, acc| {
        with_scratch(xp_len + dyp_len, |scratch| {
            let (xp, dyp) = scratch.split_at_mut(xp_len);
            isa.run(WeightImages {
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
