//! Winograd F(2×2, 3×3) and F(2×2, 5×5) for the stride-1 3×3 and 5×5 narrow dense layers
//! (forward, and through it the stride-1 backward-data).
//!
//! Each 2×2 block of output pixels ("tile") is computed from the `α×α` input patch under it
//! (`α = 2 + r - 1`: 4 for 3×3 kernels, 6 for 5×5) as `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`: `α²`
//! products per tile and channel pair instead of the direct convolution's `4 r²`, 2.25x fewer
//! multiply-adds for 3×3 and 2.8x for 5×5, for the cost of transforming the input patches and
//! the products. Per image and row of tiles: the input transform writes
//! `V[α² positions][tiles][in_channels]`, then, for each position, a matrix product
//! `V[pos] × U[pos]` (`U` the transformed weight, `[in_channels, out_channels]`) runs on the
//! direct kernels' register-blocked loop ([`fma_rows`]) into `M[α²][tiles][out_channels]`,
//! and the output transform writes the row's 2×2 tiles. A row of tiles stays in the L2 cache.
//! The matrices are Lavin and Gray's (interpolation points 0, ±1 for 3×3; 0, ±1, ±2 for 5×5,
//! and ∞), checked in exact rational arithmetic when they were derived and here by the tests.
//!
//! Numerically the transforms add, subtract and scale by small constants, so the result
//! differs from the direct sum by rounding alone: a few ulps of the largest partial sums for
//! 3×3, somewhat more for 5×5 (its transforms scale by up to 5 and by 1/24), well within the
//! tolerance the convolution tests hold every kernel to.

use pulp::{Simd, WithSimd};

use super::lanes::{Full, store_channels, with_full};
use super::narrow::{fma_rows, pad_into};
use super::{ConvShape, par_chunks_zeroed, with_scratch};
use crate::kernels::Isa;

/// Vector width the channels are padded to (one AVX-512 register), as in the direct kernels.
const LANES: usize = 16;

/// Whether the Winograd kernel can run this shape (the caller has checked that it is narrow):
/// dense 3×3 or 5×5 with stride 1, on images of at least 4×4 pixels (smaller ones are mostly
/// padding).
pub(super) fn fits(s: &ConvShape) -> bool {
    s.groups == 1
        && (s.kernel == 3 || s.kernel == 5)
        && s.stride == 1
        && s.height >= 4
        && s.width >= 4
}

/// Whether `dense_forward` sends this shape to the Winograd kernel: it [`fits`], and it has
/// channels enough for the fewer products to pay for the transforms, whose work grows with
/// `in + out` channels while the products' grows with `in × out`: `in × out ≥ t (in + out)`,
/// `t` = 8 for 3×3 and 5 for 5×5 (F(2×2, 5×5) saves more products). Measured against the
/// direct kernel (`conv_kernels` example, one thread, alternated, minimum totals): 3×3 8→8 and
/// 12→12 ran 15-30% faster direct, 16→16 even, 32→32 1.2x and 64→64 1.4x faster by Winograd;
/// 5×5 8→16 and 16→16 10-15% and 24→24 1.25x faster by Winograd.
pub(super) fn applies(s: &ConvShape) -> bool {
    let t = if s.kernel == 3 { 8 } else { 5 };
    fits(s) && s.in_channels * s.out_channels >= t * (s.in_channels + s.out_channels)
}

/// The largest `α` (input patch side) of the variants.
const A_MAX: usize = 6;

/// One Winograd variant F(2×2, r×r): its sizes and transforms, on arrays of [`A_MAX`] (the
/// first `A` entries used).
trait Tile {
    /// Kernel size.
    const R: usize;
    /// Input patch side, `2 + R - 1`.
    const A: usize;
    /// `G` (`A × R`).
    const G: [[f64; 5]; A_MAX];
    /// `Bᵀ d` on one column (or row) of the patch.
    fn input<S: Simd>(simd: S, d: &[S::f32s; A_MAX]) -> [S::f32s; A_MAX];
    /// `Aᵀ m` on one column (or row) of the products: the two outputs.
    fn output<S: Simd>(simd: S, m: &[S::f32s; A_MAX]) -> [S::f32s; 2];
}

/// F(2×2, 3×3).
struct F23;

impl Tile for F23 {
    const R: usize = 3;
    const A: usize = 4;
    const G: [[f64; 5]; A_MAX] = [
        [1.0, 0.0, 0.0, 0.0, 0.0],
        [0.5, 0.5, 0.5, 0.0, 0.0],
        [0.5, -0.5, 0.5, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0, 0.0],
        [0.0; 5],
        [0.0; 5],
    ];
    #[inline(always)]
    fn input<S: Simd>(simd: S, d: &[S::f32s; A_MAX]) -> [S::f32s; A_MAX] {
        let z = simd.splat_f32s(0.0);
        [
            simd.sub_f32s(d[0], d[2]),
            simd.add_f32s(d[1], d[2]),
            simd.sub_f32s(d[2], d[1]),
            simd.sub_f32s(d[1], d[3]),
            z,
            z,
        ]
    }
    #[inline(always)]
    fn output<S: Simd>(simd: S, m: &[S::f32s; A_MAX]) -> [S::f32s; 2] {
        [
            simd.add_f32s(simd.add_f32s(m[0], m[1]), m[2]),
            simd.sub_f32s(simd.sub_f32s(m[1], m[2]), m[3]),
        ]
    }
}

/// F(2×2, 5×5).
struct F25;

impl Tile for F25 {
    const R: usize = 5;
    const A: usize = 6;
    const G: [[f64; 5]; A_MAX] = [
        [1.0 / 4.0, 0.0, 0.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0, 1.0 / 3.0, 2.0 / 3.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0, -1.0 / 3.0, 2.0 / 3.0],
        [0.0, 0.0, 0.0, 0.0, 1.0],
    ];
    #[inline(always)]
    fn input<S: Simd>(simd: S, d: &[S::f32s; A_MAX]) -> [S::f32s; A_MAX] {
        let c = |v: f32| simd.splat_f32s(v);
        let fma = |a: f32, x, y| simd.mul_add_f32s(c(a), x, y);
        // Bᵀ rows: [4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
        // [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]
        let d4m4d2 = fma(-4.0, d[2], d[4]);
        let d3m4d1 = fma(-4.0, d[1], d[3]);
        let d4md2 = simd.sub_f32s(d[4], d[2]);
        let d3md1 = simd.sub_f32s(d[3], d[1]);
        [
            fma(4.0, d[0], fma(-5.0, d[2], d[4])),
            simd.add_f32s(d4m4d2, d3m4d1),
            simd.sub_f32s(d4m4d2, d3m4d1),
            fma(2.0, d3md1, d4md2),
            fma(-2.0, d3md1, d4md2),
            fma(4.0, d[1], fma(-5.0, d[3], d[5])),
        ]
    }
    #[inline(always)]
    fn output<S: Simd>(simd: S, m: &[S::f32s; A_MAX]) -> [S::f32s; 2] {
        let p12 = simd.add_f32s(m[1], m[2]);
        let p34 = simd.add_f32s(m[3], m[4]);
        let d12 = simd.sub_f32s(m[1], m[2]);
        let d34 = simd.sub_f32s(m[3], m[4]);
        [
            simd.add_f32s(simd.add_f32s(m[0], p12), p34),
            simd.add_f32s(simd.mul_add_f32s(simd.splat_f32s(2.0), d34, d12), m[5]),
        ]
    }
}

/// What the kernel needs of the shape.
#[derive(Clone, Copy, Debug)]
struct Geom {
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    /// `cout` padded to whole 16-lane groups.
    width: usize,
    /// Kernel size `r`, padding `r / 2`, input patch side `α`.
    r: usize,
    a: usize,
    /// Tiles down and across.
    th: usize,
    tw: usize,
    /// Elements of one row of the padded image (`2 * tw + α - 2` pixels).
    row: usize,
}

impl Geom {
    fn new<T: Tile>(s: &ConvShape) -> Self {
        let (th, tw) = (s.height.div_ceil(2), s.width.div_ceil(2));
        Self {
            h: s.height,
            w: s.width,
            cin: s.in_channels,
            cout: s.out_channels,
            width: s.out_channels.div_ceil(LANES) * LANES,
            r: T::R,
            a: T::A,
            th,
            tw,
            row: (2 * tw + T::A - 2) * s.in_channels,
        }
    }

    fn pad(&self) -> usize {
        self.r / 2
    }

    /// Elements of the padded image: `r / 2` zero pixels above and left, as many or more below
    /// and right (whole tiles).
    fn padded_len(&self) -> usize {
        (2 * self.th + self.a - 2) * self.row
    }

    fn v_len(&self) -> usize {
        self.a * self.a * self.tw * self.cin
    }

    fn m_len(&self) -> usize {
        self.a * self.a * self.tw * self.width
    }
}

/// `U = G g Gᵀ` for every (in, out) channel pair, as `[α² positions][cin][width]` (zero in
/// the padding lanes), from the weight repacked to `[(kh, kw, ci), co]`; in `f64`, rounded
/// once.
fn transform_weight<T: Tile>(g: &Geom, wr: &[f32]) -> Vec<f32> {
    let (cin, cout, width, r, a) = (g.cin, g.cout, g.width, T::R, T::A);
    let mut u = vec![0.0; a * a * cin * width];
    for ci in 0..cin {
        for co in 0..cout {
            let k = |kh: usize, kw: usize| f64::from(wr[((kh * r + kw) * cin + ci) * cout + co]);
            // t = G g (α × r), then U = t Gᵀ (α × α)
            let mut t = [[0.0f64; 5]; A_MAX];
            for (i, ti) in t.iter_mut().enumerate().take(a) {
                for (kw, tv) in ti.iter_mut().enumerate().take(r) {
                    *tv = (0..r).map(|kh| T::G[i][kh] * k(kh, kw)).sum();
                }
            }
            for (i, ti) in t.iter().enumerate().take(a) {
                for j in 0..a {
                    let v: f64 = (0..r).map(|kw| ti[kw] * T::G[j][kw]).sum();
                    u[((i * a + j) * cin + ci) * width + co] = v as f32;
                }
            }
        }
    }
    u
}

/// Stride-1 3×3 or 5×5 dense forward by Winograd, with the weight repacked to
/// `[(kh, kw, ci), co]`. The caller has checked [`applies`] and that the layer is narrow.
pub(super) fn forward_on(isa: Isa, s: &ConvShape, x: &[f32], wr: &[f32]) -> Vec<f32> {
    if s.kernel == 3 {
        forward_with::<F23>(isa, s, x, wr)
    } else {
        forward_with::<F25>(isa, s, x, wr)
    }
}

fn forward_with<T: Tile>(isa: Isa, s: &ConvShape, x: &[f32], wr: &[f32]) -> Vec<f32> {
    let g = Geom::new::<T>(s);
    let u = transform_weight::<T>(&g, wr);
    let img_in = g.h * g.w * g.cin;
    let (xp_len, v_len) = (g.padded_len(), g.v_len());
    par_chunks_zeroed(s.output_len(), g.h * g.w * g.cout, |b, out_img| {
        with_scratch(xp_len + v_len + g.m_len(), |scratch| {
            let (xp, rest) = scratch.split_at_mut(xp_len);
            let (v, m) = rest.split_at_mut(v_len);
            isa.run(Image::<T> {
                g,
                x_img: &x[b * img_in..(b + 1) * img_in],
                xp,
                v,
                m,
                u: &u,
                out_img,
                tile: std::marker::PhantomData,
            })
        });
    })
}

/// One image through the Winograd kernel.
struct Image<'a, T> {
    g: Geom,
    x_img: &'a [f32],
    xp: &'a mut [f32],
    v: &'a mut [f32],
    m: &'a mut [f32],
    u: &'a [f32],
    out_img: &'a mut [f32],
    tile: std::marker::PhantomData<T>,
}

impl<T: Tile> WithSimd for Image<'_, T> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        with_full!(S, simd, self.g.width, |c, P, _R| self.run::<S, _, P>(c));
    }
}

impl<T: Tile> Image<'_, T> {
    #[inline(always)]
    fn run<S: Simd, const NV: usize, const P: usize>(self, Full(simd): Full<S, NV>) {
        let Self {
            g,
            x_img,
            xp,
            v,
            m,
            u,
            out_img,
            ..
        } = self;
        // `r / 2` zero pixels above and left, as many or more below and right (whole tiles)
        pad_into(x_img, xp, (g.w, g.cin, g.pad()), g.row);
        let u_len = g.cin * g.width;
        for ty in 0..g.th {
            input_transform::<S, T>(simd, &g, xp, ty, v);
            for pos in 0..T::A * T::A {
                let (u_pos, _) = S::as_simd_f32s(&u[pos * u_len..][..u_len]);
                let mut t = 0;
                while g.tw - t >= P {
                    product_block::<S, NV, P>(simd, &g, v, u_pos, pos, t, m);
                    t += P;
                }
                if P > 4 && g.tw - t >= 4 {
                    product_block::<S, NV, 4>(simd, &g, v, u_pos, pos, t, m);
                    t += 4;
                }
                if P > 2 && g.tw - t >= 2 {
                    product_block::<S, NV, 2>(simd, &g, v, u_pos, pos, t, m);
                    t += 2;
                }
                if P > 1 && g.tw - t >= 1 {
                    product_block::<S, NV, 1>(simd, &g, v, u_pos, pos, t, m);
                }
            }
            output_transform::<S, T, NV>(simd, &g, m, ty, out_img);
        }
    }
}

/// Loads up to one vector of lanes (zero beyond the slice).
#[inline(always)]
fn load<S: Simd>(simd: S, s: &[f32]) -> S::f32s {
    if s.len() >= S::F32_LANES {
        S::as_simd_f32s(&s[..S::F32_LANES]).0[0]
    } else {
        simd.partial_load_f32s(s)
    }
}

/// Stores the first `d.len()` lanes of `x` (at most one vector).
#[inline(always)]
fn store<S: Simd>(simd: S, d: &mut [f32], x: S::f32s) {
    if d.len() >= S::F32_LANES {
        S::as_mut_simd_f32s(&mut d[..S::F32_LANES]).0[0] = x;
    } else {
        simd.partial_store_f32s(d, x);
    }
}

/// `V = Bᵀ d B` for the tiles of tile row `ty`, into `v` (`[α²][tw][cin]`).
#[inline(always)]
fn input_transform<S: Simd, T: Tile>(simd: S, g: &Geom, xp: &[f32], ty: usize, v: &mut [f32]) {
    let (c, a) = (g.cin, T::A);
    let stride = g.tw * c;
    let zero = simd.splat_f32s(0.0);
    // declared once, not per tile: zero-initialized arrays this large live on the stack and
    // cost a `memset` where they are declared (every entry read below is written first)
    let mut col = [[zero; A_MAX]; A_MAX];
    let mut bd = [[zero; A_MAX]; A_MAX];
    for t in 0..g.tw {
        let base = 2 * ty * g.row + 2 * t * c;
        for c0 in (0..c).step_by(S::F32_LANES) {
            let n = (c - c0).min(S::F32_LANES);
            // columns of the patch: col[j][i] = d[i][j]
            for i in 0..a {
                for j in 0..a {
                    col[j][i] = load(simd, &xp[base + i * g.row + j * c + c0..][..n]);
                }
            }
            // Bᵀ d: per column; then (Bᵀ d) B: per row of it
            for j in 0..a {
                let t = T::input(simd, &col[j]);
                for i in 0..a {
                    bd[i][j] = t[i];
                }
            }
            for i in 0..a {
                let out = T::input(simd, &bd[i]);
                for j in 0..a {
                    store(
                        simd,
                        &mut v[(i * a + j) * stride + t * c + c0..][..n],
                        out[j],
                    );
                }
            }
        }
    }
}

/// `M[pos][t0..t0 + P] = V[pos][t0..t0 + P] × U[pos]`, `P` tiles × `NV` vectors of output
/// channels in registers.
#[inline(always)]
fn product_block<S: Simd, const NV: usize, const P: usize>(
    simd: S,
    g: &Geom,
    v: &[f32],
    u_pos: &[S::f32s],
    pos: usize,
    t0: usize,
    m: &mut [f32],
) {
    let c = g.cin;
    let base = (pos * g.tw + t0) * c;
    let mut xs: [&[f32]; P] = [&[]; P];
    for (p, x) in xs.iter_mut().enumerate() {
        *x = &v[base + p * c..][..c];
    }
    let mut acc = [[simd.splat_f32s(0.0); NV]; P];
    fma_rows(
        Full::<S, NV>(simd),
        &mut acc,
        &xs,
        u_pos.as_chunks::<NV>().0,
        c,
    );
    let (mv, _) = S::as_mut_simd_f32s(&mut m[(pos * g.tw + t0) * g.width..][..P * g.width]);
    for (p, a) in acc.iter().enumerate() {
        for (k, x) in a.iter().enumerate() {
            mv[p * NV + k] = *x;
        }
    }
}

/// `Y = Aᵀ M A` for the tiles of tile row `ty`, written to the output image (the pixels inside
/// it).
#[inline(always)]
fn output_transform<S: Simd, T: Tile, const NV: usize>(
    simd: S,
    g: &Geom,
    m: &[f32],
    ty: usize,
    out_img: &mut [f32],
) {
    let a = T::A;
    let (mv, _) = S::as_simd_f32s(m);
    let stride = g.tw * NV;
    let zero = simd.splat_f32s(0.0);
    for t in 0..g.tw {
        let mut y = [[[zero; NV]; 2]; 2];
        for k in 0..NV {
            // Aᵀ M per column (2 × α), then (Aᵀ M) A per row (2 × 2)
            let mut am = [[zero; A_MAX]; 2];
            for j in 0..a {
                let mut col = [zero; A_MAX];
                for (i, x) in col.iter_mut().enumerate().take(a) {
                    *x = mv[(i * a + j) * stride + t * NV + k];
                }
                let o = T::output(simd, &col);
                am[0][j] = o[0];
                am[1][j] = o[1];
            }
            for (r, row) in am.iter().enumerate() {
                let o = T::output(simd, row);
                y[r][0][k] = o[0];
                y[r][1][k] = o[1];
            }
        }
        for (r, yr) in y.iter().enumerate() {
            let oh = 2 * ty + r;
            if oh >= g.h {
                continue;
            }
            for (b, yb) in yr.iter().enumerate() {
                let ow = 2 * t + b;
                if ow < g.w {
                    store_channels(simd, yb, &mut out_img[(oh * g.w + ow) * g.cout..][..g.cout]);
                }
            }
        }
    }
}
