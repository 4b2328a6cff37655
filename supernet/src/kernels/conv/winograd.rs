//! Winograd F(2×2, 3×3) for the stride-1 3×3 narrow dense layers (forward, and through it the
//! stride-1 backward-data).
//!
//! Each 2×2 block of output pixels ("tile") is computed from the 4×4 input patch under it as
//! `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`: 16 products per tile and channel pair instead of the
//! direct convolution's 36, 2.25x fewer multiply-adds, for the cost of transforming the input
//! patches and the products. Per image and row of tiles: the input transform writes
//! `V[16 positions][tiles][in_channels]`, then, for each of the 16 positions, a matrix product
//! `V[pos] × U[pos]` (`U` the transformed weight, `[in_channels, out_channels]`) runs on the
//! direct kernels' register-blocked loop ([`fma_rows`]) into `M[16][tiles][out_channels]`,
//! and the output transform writes the row's 2×2 tiles. A row of tiles stays in the L2 cache.
//!
//! Numerically the transforms only add and subtract (and halve, in `G`), so the result differs
//! from the direct sum by rounding alone: a few ulps of the largest partial sums, well within
//! the tolerance the convolution tests hold every kernel to.

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use super::narrow::{fma_rows, store_channels};
use super::{ConvShape, with_scratch, zeroed};
use crate::kernels::Isa;

/// Vector width the channels are padded to (one AVX-512 register), as in the direct kernels.
const LANES: usize = 16;

/// Whether the Winograd kernel handles this shape (the caller has checked that it is narrow):
/// dense 3×3 with stride 1, on images of at least 4×4 pixels (smaller ones are mostly
/// padding).
pub(super) fn applies(s: &ConvShape) -> bool {
    s.groups == 1 && s.kernel == 3 && s.stride == 1 && s.height >= 4 && s.width >= 4
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
    /// Tiles down and across.
    th: usize,
    tw: usize,
    /// Elements of one row of the padded image (`2 * tw + 2` pixels).
    row: usize,
}

impl Geom {
    fn new(s: &ConvShape) -> Self {
        let (th, tw) = (s.height.div_ceil(2), s.width.div_ceil(2));
        Self {
            h: s.height,
            w: s.width,
            cin: s.in_channels,
            cout: s.out_channels,
            width: s.out_channels.div_ceil(LANES) * LANES,
            th,
            tw,
            row: (2 * tw + 2) * s.in_channels,
        }
    }

    /// Elements of the padded image: one zero pixel above and left, up to two below and right
    /// (whole tiles).
    fn padded_len(&self) -> usize {
        (2 * self.th + 2) * self.row
    }

    fn v_len(&self) -> usize {
        16 * self.tw * self.cin
    }

    fn m_len(&self) -> usize {
        16 * self.tw * self.width
    }
}

/// `U = G g Gᵀ` for every (in, out) channel pair, as `[16 positions][cin][width]` (zero in
/// the padding lanes), from the weight repacked to `[(kh, kw, ci), co]`.
fn transform_weight(g: &Geom, wr: &[f32]) -> Vec<f32> {
    let (cin, cout, width) = (g.cin, g.cout, g.width);
    let mut u = vec![0.0; 16 * cin * width];
    for ci in 0..cin {
        for co in 0..cout {
            let k = |kh: usize, kw: usize| wr[((kh * 3 + kw) * cin + ci) * cout + co];
            // t = G g (4 x 3), G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
            let mut t = [[0.0f32; 3]; 4];
            for j in 0..3 {
                let (g0, g1, g2) = (k(0, j), k(1, j), k(2, j));
                t[0][j] = g0;
                t[1][j] = 0.5 * (g0 + g1 + g2);
                t[2][j] = 0.5 * (g0 - g1 + g2);
                t[3][j] = g2;
            }
            // U = t Gᵀ (4 x 4)
            for (i, r) in t.iter().enumerate() {
                let row = [
                    r[0],
                    0.5 * (r[0] + r[1] + r[2]),
                    0.5 * (r[0] - r[1] + r[2]),
                    r[2],
                ];
                for (j, v) in row.into_iter().enumerate() {
                    u[((i * 4 + j) * cin + ci) * width + co] = v;
                }
            }
        }
    }
    u
}

/// Stride-1 3×3 dense forward by Winograd F(2×2, 3×3), with the weight repacked to
/// `[(kh, kw, ci), co]`. The caller has checked [`applies`] and that the layer is narrow.
pub(super) fn forward_on(isa: Isa, s: &ConvShape, x: &[f32], wr: &[f32]) -> Vec<f32> {
    let g = Geom::new(s);
    let u = transform_weight(&g, wr);
    let img_in = g.h * g.w * g.cin;
    let (xp_len, v_len) = (g.padded_len(), g.v_len());
    let mut out = zeroed(s.output_len());
    out.par_chunks_mut(g.h * g.w * g.cout)
        .enumerate()
        .for_each(|(b, out_img)| {
            with_scratch(xp_len + v_len + g.m_len(), |scratch| {
                let (xp, rest) = scratch.split_at_mut(xp_len);
                let (v, m) = rest.split_at_mut(v_len);
                isa.run(Image {
                    g,
                    x_img: &x[b * img_in..(b + 1) * img_in],
                    xp,
                    v,
                    m,
                    u: &u,
                    out_img,
                })
            });
        });
    out
}

/// One image through the Winograd kernel.
struct Image<'a> {
    g: Geom,
    x_img: &'a [f32],
    xp: &'a mut [f32],
    v: &'a mut [f32],
    m: &'a mut [f32],
    u: &'a [f32],
    out_img: &'a mut [f32],
}

impl WithSimd for Image<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        // as the direct forward kernel: `NV * P` accumulators within the vector registers
        let nv = self.g.width / S::F32_LANES;
        let wide = S::F32_LANES >= 16;
        match nv {
            1 => self.run::<S, 1, 8>(simd),
            2 if wide => self.run::<S, 2, 8>(simd),
            2 => self.run::<S, 2, 4>(simd),
            3 if wide => self.run::<S, 3, 6>(simd),
            4 if wide => self.run::<S, 4, 4>(simd),
            4 => self.run::<S, 4, 2>(simd),
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

impl Image<'_> {
    #[inline(always)]
    fn run<S: Simd, const NV: usize, const P: usize>(self, simd: S) {
        let Self {
            g,
            x_img,
            xp,
            v,
            m,
            u,
            out_img,
        } = self;
        pad(&g, x_img, xp);
        let u_len = g.cin * g.width;
        for ty in 0..g.th {
            input_transform(simd, &g, xp, ty, v);
            for pos in 0..16 {
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
            output_transform::<S, NV>(simd, &g, m, ty, out_img);
        }
    }
}

/// Writes the zero-padded copy of one image: `[2 th + 2, 2 tw + 2, cin]`, the image at (1, 1).
fn pad(g: &Geom, x_img: &[f32], xp: &mut [f32]) {
    let c = g.cin;
    xp[..g.row].fill(0.0);
    for (ih, src) in x_img.chunks_exact(g.w * c).enumerate() {
        let dst = &mut xp[(ih + 1) * g.row..(ih + 2) * g.row];
        dst[..c].fill(0.0);
        dst[c..(1 + g.w) * c].copy_from_slice(src);
        dst[(1 + g.w) * c..].fill(0.0);
    }
    xp[(g.h + 1) * g.row..].fill(0.0);
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

/// `V = Bᵀ d B` for the tiles of tile row `ty`, into `v` (`[16][tw][cin]`), with
/// `Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]`.
#[inline(always)]
fn input_transform<S: Simd>(simd: S, g: &Geom, xp: &[f32], ty: usize, v: &mut [f32]) {
    let c = g.cin;
    let stride = g.tw * c;
    for t in 0..g.tw {
        let at = |i: usize| (2 * ty + i) * g.row + 2 * t * c;
        let rows = [at(0), at(1), at(2), at(3)];
        for c0 in (0..c).step_by(S::F32_LANES) {
            let n = (c - c0).min(S::F32_LANES);
            let mut d = [[simd.splat_f32s(0.0); 4]; 4];
            for i in 0..4 {
                for j in 0..4 {
                    d[i][j] = load(simd, &xp[rows[i] + j * c + c0..][..n]);
                }
            }
            // Bᵀ d, then (Bᵀ d) B
            let mut bd = [[simd.splat_f32s(0.0); 4]; 4];
            for j in 0..4 {
                bd[0][j] = simd.sub_f32s(d[0][j], d[2][j]);
                bd[1][j] = simd.add_f32s(d[1][j], d[2][j]);
                bd[2][j] = simd.sub_f32s(d[2][j], d[1][j]);
                bd[3][j] = simd.sub_f32s(d[1][j], d[3][j]);
            }
            for i in 0..4 {
                let r = bd[i];
                let out = [
                    simd.sub_f32s(r[0], r[2]),
                    simd.add_f32s(r[1], r[2]),
                    simd.sub_f32s(r[2], r[1]),
                    simd.sub_f32s(r[1], r[3]),
                ];
                for j in 0..4 {
                    store(
                        simd,
                        &mut v[(i * 4 + j) * stride + t * c + c0..][..n],
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
    let xs: [&[f32]; P] = std::array::from_fn(|p| &v[base + p * c..][..c]);
    let mut acc = [[simd.splat_f32s(0.0); NV]; P];
    fma_rows(simd, &mut acc, &xs, u_pos, c);
    let (mv, _) = S::as_mut_simd_f32s(&mut m[(pos * g.tw + t0) * g.width..][..P * g.width]);
    for (p, a) in acc.iter().enumerate() {
        for (k, x) in a.iter().enumerate() {
            mv[p * NV + k] = *x;
        }
    }
}

/// `Y = Aᵀ M A` for the tiles of tile row `ty`, written to the output image (the pixels inside
/// it), with `Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]`.
#[inline(always)]
fn output_transform<S: Simd, const NV: usize>(
    simd: S,
    g: &Geom,
    m: &[f32],
    ty: usize,
    out_img: &mut [f32],
) {
    let (mv, _) = S::as_simd_f32s(m);
    let stride = g.tw * NV;
    for t in 0..g.tw {
        let mut y = [[[simd.splat_f32s(0.0); NV]; 2]; 2];
        for k in 0..NV {
            let mut mm = [[simd.splat_f32s(0.0); 4]; 4];
            for i in 0..4 {
                for j in 0..4 {
                    mm[i][j] = mv[(i * 4 + j) * stride + t * NV + k];
                }
            }
            // Aᵀ M (2 x 4), then (Aᵀ M) A (2 x 2)
            let mut am = [[simd.splat_f32s(0.0); 4]; 2];
            for j in 0..4 {
                am[0][j] = simd.add_f32s(simd.add_f32s(mm[0][j], mm[1][j]), mm[2][j]);
                am[1][j] = simd.sub_f32s(simd.sub_f32s(mm[1][j], mm[2][j]), mm[3][j]);
            }
            for (a, r) in am.iter().enumerate() {
                y[a][0][k] = simd.add_f32s(simd.add_f32s(r[0], r[1]), r[2]);
                y[a][1][k] = simd.sub_f32s(simd.sub_f32s(r[1], r[2]), r[3]);
            }
        }
        for (a, ya) in y.iter().enumerate() {
            let oh = 2 * ty + a;
            if oh >= g.h {
                continue;
            }
            for (b, yb) in ya.iter().enumerate() {
                let ow = 2 * t + b;
                if ow < g.w {
                    store_channels(simd, yb, &mut out_img[(oh * g.w + ow) * g.cout..][..g.cout]);
                }
            }
        }
    }
}
