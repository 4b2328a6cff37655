//! Narrow dense convolution: direct kernels.

use std::ops::Range;

use pulp::{Simd, WithSimd};

use super::lanes::{Channels, LANES, Layout, with_layout};
use super::{ConvShape, par_chunks_zeroed, partitioned_sum, with_scratch};
use crate::kernels::Isa;

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
    /// Lanes per pixel of the output channels: `cout` padded for the channel layout.
    width: usize,
    /// `kernel * cin`: the weight rows of one kernel row, contiguous in a padded input row.
    kc: usize,
    /// Elements of one row of the padded image.
    row: usize,
    out_h: usize,
    out_w: usize,
}

impl Geom {
    fn new(s: &ConvShape, layout: Layout) -> Self {
        Self {
            kernel: s.kernel,
            stride: s.stride,
            cin: s.in_channels,
            cout: s.out_channels,
            width: layout.width(s.out_channels),
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

/// Adds `Σ_r xs[p][r] · wk[r]` to `acc[p]` for the `n` rows `r` of `wk`: `P` rows of inputs
/// times one weight matrix, the sums held in registers.
#[inline(always)]
pub(super) fn fma_rows<C: Channels, const P: usize>(
    c: C,
    acc: &mut [C::Acc; P],
    xs: &[&[f32]; P],
    wk: &[C::Row],
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
    let w2 = &wk[..2 * pairs];
    // two weight rows per iteration (fewer loop-carried register copies)
    for r in 0..pairs {
        let w0 = &w2[2 * r];
        let w1 = &w2[2 * r + 1];
        for p in 0..P {
            let [a, b] = x2[p][r];
            c.mul_add(&mut acc[p], a, w0);
            c.mul_add(&mut acc[p], b, w1);
        }
    }
    if n % 2 == 1 {
        let wv = &wk[n - 1];
        for p in 0..P {
            c.mul_add(&mut acc[p], xs[p][n - 1], wv);
        }
    }
}

/// `P` output pixels `(oh, ow0..ow0 + P)` × the (padded) output channels, accumulated in
/// registers.
#[inline(always)]
fn forward_block<C: Channels, const P: usize>(
    c: C,
    g: &Geom,
    xp: &[f32],
    wp: &[f32],
    oh: usize,
    ow0: usize,
    out_row: &mut [f32],
) {
    let mut acc = [c.zero(); P];
    let w_len = g.kc * C::WIDTH;
    for kh in 0..g.kernel {
        let base = (oh * g.stride + kh) * g.row + ow0 * g.stride * g.cin;
        let mut xs: [&[f32]; P] = [&[]; P];
        for (p, x) in xs.iter_mut().enumerate() {
            *x = &xp[base + p * g.stride * g.cin..][..g.kc];
        }
        let wk = C::rows(&wp[kh * w_len..][..w_len]);
        fma_rows(c, &mut acc, &xs, wk, g.kc);
    }
    for (p, a) in acc.iter().enumerate() {
        c.store_first(a, &mut out_row[(ow0 + p) * g.cout..][..g.cout]);
    }
}

/// One output row of the direct forward kernel, in blocks of `P` pixels (then 8, 4, 2, 1).
#[inline(always)]
fn forward_row<C: Channels, const P: usize>(
    c: C,
    g: &Geom,
    xp: &[f32],
    wp: &[f32],
    oh: usize,
    out_row: &mut [f32],
) {
    let mut ow = 0;
    while g.out_w - ow >= P {
        forward_block::<C, P>(c, g, xp, wp, oh, ow, out_row);
        ow += P;
    }
    if P > 8 && g.out_w - ow >= 8 {
        forward_block::<C, 8>(c, g, xp, wp, oh, ow, out_row);
        ow += 8;
    }
    if P > 4 && g.out_w - ow >= 4 {
        forward_block::<C, 4>(c, g, xp, wp, oh, ow, out_row);
        ow += 4;
    }
    if P > 2 && g.out_w - ow >= 2 {
        forward_block::<C, 2>(c, g, xp, wp, oh, ow, out_row);
        ow += 2;
    }
    if P > 1 && g.out_w - ow >= 1 {
        forward_block::<C, 1>(c, g, xp, wp, oh, ow, out_row);
    }
}

/// The direct forward pass over one image.
struct ForwardImage<'a> {
    s: &'a ConvShape,
    g: Geom,
    layout: Layout,
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
            layout,
            x_img,
            xp,
            wp,
            out_img,
        } = self;
        pad_image(s, x_img, xp);
        with_layout!(layout, S, simd, g.width, |c, P, _R| {
            for (oh, out_row) in out_img.chunks_exact_mut(g.out_w * g.cout).enumerate() {
                forward_row::<_, P>(c, &g, xp, wp, oh, out_row);
            }
        });
    }
}

/// Dense forward for narrow layers with the weight repacked to `[(kh, kw, ci), co]`, by the
/// direct kernel (`dense_forward` sends the layers Winograd takes to `winograd.rs`).
pub(super) fn narrow_forward(s: &ConvShape, x: &[f32], wr: &[f32]) -> Vec<f32> {
    narrow_forward_on(Isa::Best, s, x, wr)
}

/// [`narrow_forward`] on the given instruction set.
pub(super) fn narrow_forward_on(isa: Isa, s: &ConvShape, x: &[f32], wr: &[f32]) -> Vec<f32> {
    let layout = Layout::new(isa, s.out_channels);
    let g = Geom::new(s, layout);
    let kkc = g.kernel * g.kc;
    let mut wp = vec![0.0; kkc * g.width];
    for (dst, src) in wp.chunks_exact_mut(g.width).zip(wr.chunks_exact(g.cout)) {
        dst[..g.cout].copy_from_slice(src);
    }
    let img_in = s.height * s.width * g.cin;
    par_chunks_zeroed(s.output_len(), g.out_h * g.out_w * g.cout, |b, out_img| {
        with_scratch(padded_len(s), |xp| {
            isa.run(ForwardImage {
                s,
                g,
                layout,
                x_img: &x[b * img_in..(b + 1) * img_in],
                xp,
                wp: &wp,
                out_img,
            })
        });
    })
}

/// Adds `Σ_pixels xp[pixel, (kh, r0..r0 + R)] ⊗ dy[pixel, :]` to the `R` weight-gradient rows
/// `acc[r0..r0 + R]`, the sums held in registers over the whole image.
#[inline(always)]
fn weight_block<C: Channels, const R: usize>(
    c: C,
    g: &Geom,
    xp: &[f32],
    dyp: &[C::Row],
    kh: usize,
    r0: usize,
    acc: &mut [C::Row],
) {
    let mut sum = [c.zero(); R];
    for oh in 0..g.out_h {
        let base = (oh * g.stride + kh) * g.row + r0;
        let dy_row = &dyp[oh * g.out_w..][..g.out_w];
        for (ow, gv) in dy_row.iter().enumerate() {
            let xr: &[f32; R] = xp[base + ow * g.stride * g.cin..][..R].try_into().unwrap();
            for j in 0..R {
                c.mul_add(&mut sum[j], xr[j], gv);
            }
        }
    }
    for (a, s) in acc[r0..r0 + R].iter_mut().zip(&sum) {
        c.add_to(a, s);
    }
}

/// The weight-gradient rows `(kh, 0..kc)` of one image, in blocks of `R` rows (then 8, 4, 2,
/// 1).
#[inline(always)]
fn weight_rows<C: Channels, const R: usize>(
    c: C,
    g: &Geom,
    xp: &[f32],
    dyp: &[C::Row],
    kh: usize,
    rows: &mut [C::Row],
) {
    let mut r = 0;
    while g.kc - r >= R {
        weight_block::<C, R>(c, g, xp, dyp, kh, r, rows);
        r += R;
    }
    if R > 8 && g.kc - r >= 8 {
        weight_block::<C, 8>(c, g, xp, dyp, kh, r, rows);
        r += 8;
    }
    if R > 4 && g.kc - r >= 4 {
        weight_block::<C, 4>(c, g, xp, dyp, kh, r, rows);
        r += 4;
    }
    if R > 2 && g.kc - r >= 2 {
        weight_block::<C, 2>(c, g, xp, dyp, kh, r, rows);
        r += 2;
    }
    if R > 1 && g.kc - r >= 1 {
        weight_block::<C, 1>(c, g, xp, dyp, kh, r, rows);
    }
}

/// Copies `src` (`[pixels, cout]`) into `dst` (`[pixels, C::WIDTH]`), zero in the padding
/// lanes.
#[inline(always)]
fn pad_channels<C: Channels>(c: C, cout: usize, src: &[f32], dst: &mut [C::Row]) {
    for (d, px) in dst.iter_mut().zip(src.chunks_exact(cout)) {
        c.put(d, &c.load_first(px));
    }
}

/// The direct backward-weight pass over a range of images, added to `acc`
/// (`[(kh, kw, ci), width]`).
struct WeightImages<'a> {
    s: &'a ConvShape,
    g: Geom,
    layout: Layout,
    x: &'a [f32],
    dy: &'a [f32],
    images: Range<usize>,
    xp: &'a mut [f32],
    dyp: &'a mut [f32],
    acc: &'a mut [f32],
}

impl WeightImages<'_> {
    #[inline(always)]
    fn run<C: Channels, const R: usize>(self, c: C) {
        let Self {
            s,
            g,
            x,
            dy,
            images,
            xp,
            dyp,
            acc,
            ..
        } = self;
        let img_in = s.height * s.width * g.cin;
        let pixels = g.out_h * g.out_w;
        for b in images {
            pad_image(s, &x[b * img_in..(b + 1) * img_in], xp);
            let dy_img = &dy[b * pixels * g.cout..(b + 1) * pixels * g.cout];
            // the output gradient as it is when its channels fill the vectors, else a padded copy
            let dyp: &[C::Row] = if g.cout == g.width {
                C::rows(dy_img)
            } else {
                pad_channels(c, g.cout, dy_img, C::rows_mut(dyp));
                C::rows(dyp)
            };
            for kh in 0..g.kernel {
                let rows = C::rows_mut(&mut acc[kh * g.kc * g.width..(kh + 1) * g.kc * g.width]);
                weight_rows::<C, R>(c, &g, xp, dyp, kh, rows);
            }
        }
    }
}

impl WithSimd for WeightImages<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let (layout, width) = (self.layout, self.g.width);
        with_layout!(layout, S, simd, width, |c, _P, R| self.run::<_, R>(c));
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
    let layout = Layout::new(isa, s.out_channels);
    let g = Geom::new(s, layout);
    let kkc = g.kernel * g.kc;
    let xp_len = padded_len(s);
    let dyp_len = g.out_h * g.out_w * g.width;
    let padded = partitioned_sum(s.batch, kkc * g.width, |images, acc| {
        with_scratch(xp_len + dyp_len, |scratch| {
            let (xp, dyp) = scratch.split_at_mut(xp_len);
            isa.run(WeightImages {
                s,
                g,
                layout,
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
    for (dst, src) in dwr
        .chunks_exact_mut(g.cout)
        .zip(padded.chunks_exact(g.width))
    {
        dst.copy_from_slice(&src[..g.cout]);
    }
    dwr
}
