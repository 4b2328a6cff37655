//! The integer convolution kernel: activation codes times weight codes, summed exactly in
//! `i32`, then one `f32` epilogue per output.
//!
//! Codes are widened to `i16` (activation codes fit: `u8` after a ReLU, `i8` otherwise; weight
//! codes are `i8`), and products are summed in pairs by `madd` (`vpmaddwd`: two `i16 × i16`
//! products added into one `i32` lane, no saturation), which pulp exposes as safe methods of
//! its `V4` (AVX-512) and `V3` (AVX2) tokens. `maddubs` (`u8 × i8` pairs into saturating
//! `i16`) would overflow for 8-bit codes (`2 × 255 × 127 > 32767`). Where the CPU has AVX-512
//! VNNI and the codes are `u8` activations and `i8` weights, the same loops run on quads of
//! `u8` codes per word with `vpdpbusd` ([`super::vnni`], `Geom::per_word == 4`).
//!
//! Layouts:
//! - the input image is quantized into a zero-padded copy `[h + 2p, w + 2p, cin2]` of `i32`
//!   words, each holding the codes of two adjacent input channels (`cin` padded to even), so
//!   that one word broadcast to every lane pairs with the weights of 16 output channels;
//! - the weights are packed once, at load time, per chunk of up to 64 output channels:
//!   `[kh][kw * cin2 + pair][group][16 channels × 2 codes]`, zeros past the real channels.
//!
//! The micro-kernel holds `P` output pixels × `G` groups of 16 output channels in `i32`
//! registers over the whole reduction (`kernel × kernel × cin`), then converts them.

use pulp::bytemuck;

/// Output channels per group (one AVX-512 register of `i32`).
pub(super) const LANES: usize = 16;

/// Most groups of one chunk: 64 output channels.
const MAX_GROUPS: usize = 4;

/// The weights of one chunk of output channels, for one `madd` per pixel and reduction pair.
#[derive(Clone, Debug)]
pub(super) struct Chunk {
    /// The chunk's first output channel.
    pub(super) first: usize,
    /// Groups of [`LANES`] channels (the last may be partly padding).
    pub(super) groups: usize,
    /// `[kh][kw * cin2 + pair][group]` blocks of `LANES × 2` codes: block element `2j + i` is
    /// the weight of output channel `first + 16 * group + j` and input channel `2 * pair + i`.
    pub(super) w: Vec<[i16; 2 * LANES]>,
}

/// The geometry of one integer convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Geom {
    pub(super) height: usize,
    pub(super) width: usize,
    pub(super) cin: usize,
    pub(super) cout: usize,
    pub(super) kernel: usize,
    pub(super) stride: usize,
    /// Activation codes per `i32` word: 2 (`i16` pairs, for `madd`) or 4 (`u8` quads, for
    /// VNNI's `dpbusd`, [`super::vnni`]).
    pub(super) per_word: usize,
}

impl Geom {
    pub(super) fn pad(&self) -> usize {
        self.kernel / 2
    }

    /// Words of one input pixel: the input channels in pairs (or quads).
    pub(super) fn cin2(&self) -> usize {
        self.cin.div_ceil(self.per_word)
    }

    pub(super) fn out_h(&self) -> usize {
        (self.height + 2 * self.pad() - self.kernel) / self.stride + 1
    }

    pub(super) fn out_w(&self) -> usize {
        (self.width + 2 * self.pad() - self.kernel) / self.stride + 1
    }

    /// Words of one padded input row.
    fn row(&self) -> usize {
        (self.width + 2 * self.pad()) * self.cin2()
    }

    /// Words of one padded input image.
    pub(super) fn padded_len(&self) -> usize {
        (self.height + 2 * self.pad()) * self.row()
    }

    /// Reduction words of one kernel row: `kernel * cin2`.
    fn kc2(&self) -> usize {
        self.kernel * self.cin2()
    }
}

/// Packs OIHW weight codes (`[cout, cin, k, k]`, row-major) into chunks of at most 64 output
/// channels: `i16` pairs (`g.per_word == 2`), or `i8` quads in the same 64-byte blocks
/// (`g.per_word == 4`; block byte `4j + i` is the weight of output channel `16 * group + j` and
/// input channel `4 * word + i`; the codes must fit `i8`).
pub(super) fn pack(g: &Geom, codes: &[i16]) -> Vec<Chunk> {
    let (k, cin, cout, words, per) = (g.kernel, g.cin, g.cout, g.cin2(), g.per_word);
    let mut chunks = Vec::new();
    let mut first = 0;
    while first < cout {
        let n = (cout - first).min(MAX_GROUPS * LANES);
        let groups = n.div_ceil(LANES);
        let mut w = vec![[0i16; 2 * LANES]; k * k * words * groups];
        for kh in 0..k {
            for kw in 0..k {
                for ci in 0..cin {
                    let r = kh * k * words + kw * words + ci / per;
                    for c in 0..n {
                        let co = first + c;
                        let block = &mut w[r * groups + c / LANES];
                        let code = codes[((co * cin + ci) * k + kh) * k + kw];
                        if per == 2 {
                            block[2 * (c % LANES) + ci % 2] = code;
                        } else {
                            let bytes: &mut [i8; 4 * LANES] = bytemuck::cast_mut(block);
                            bytes[4 * (c % LANES) + ci % 4] =
                                i8::try_from(code).expect("quad weight codes fit i8");
                        }
                    }
                }
            }
        }
        chunks.push(Chunk { first, groups, w });
        first += n;
    }
    chunks
}

/// The `f32` epilogue of one layer, per output channel `c`:
/// `act((acc * mult[c]) * scale[c] + shift[c])`, where `mult = input_scale * weight_scale[c]`
/// and `(scale, shift)` is the batch norm as an affine map (with the conv's bias folded in).
#[derive(Clone, Debug)]
pub(super) struct Epilogue {
    pub(super) mult: Vec<f32>,
    pub(super) scale: Vec<f32>,
    pub(super) shift: Vec<f32>,
    /// Lower and upper clamp of the activation (`-inf, inf` for none, `0, inf` for ReLU,
    /// `0, 6` for ReLU6).
    pub(super) lo: f32,
    pub(super) hi: f32,
}

/// How an input activation becomes codes: `clamp(round_ties_even(x / scale), lo, hi)`, the
/// rounding of the fake quantizer ([`crate::kernels::quant`]), so the codes are the ones the
/// `f32` path multiplies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Quantizer {
    pub(super) scale: f32,
    pub(super) lo: f32,
    pub(super) hi: f32,
}

/// `1.5 × 2^23`: adding and subtracting it rounds an `f32` of magnitude below `2^22` to the
/// nearest integer, ties to even (the sum lies in the binade whose spacing is 1).
const ROUND: f32 = 12_582_912.0;

impl Quantizer {
    /// The code of `x`. Clamping before rounding gives the same code as rounding first (the
    /// bounds are integers and rounding is monotone); the clamped value is far below `2^22`,
    /// so the [`ROUND`] trick rounds it exactly as `round_ties_even` does, in a form LLVM
    /// vectorizes (the quantizer's rounding, `crate::kernels::quant`, on the same `x / scale`).
    #[inline(always)]
    fn code(self, x: f32) -> i16 {
        let y = (x / self.scale).max(self.lo).min(self.hi);
        ((y + ROUND) - ROUND) as i32 as i16
    }
}

/// Quantizes one NHWC input image (`[h, w, cin]`) into the zero-padded word layout.
#[inline(always)]
fn quantize_image<L: Lanes>(lanes: L, g: &Geom, q: Quantizer, x: &[f32], xp: &mut [i32]) {
    let (p, cin, cin2, w) = (g.pad(), g.cin, g.cin2(), g.width);
    let row = g.row();
    xp.fill(0);
    if g.per_word == 4 {
        // `u8` codes (the caller checked that the codes are within 0..=255), quantized by the
        // lanes' vector code a piece of a row at a time, then narrowed into place
        const PIECE: usize = 1024;
        let mut codes = [0i16; PIECE];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(xp);
        for (ih, src) in x.chunks_exact(w * cin).enumerate() {
            let start = 4 * ((ih + p) * row + p * cin2);
            let dst = &mut bytes[start..start + 4 * w * cin2];
            for (k, piece) in src.chunks(PIECE).enumerate() {
                let codes = &mut codes[..piece.len()];
                lanes.quantize(q, piece, codes);
                if cin % 4 == 0 {
                    let d = &mut dst[k * PIECE..][..piece.len()];
                    for (d, &c) in d.iter_mut().zip(codes.iter()) {
                        *d = c as u8;
                    }
                } else {
                    for (i, &c) in codes.iter().enumerate() {
                        let at = k * PIECE + i;
                        dst[(at / cin) * 4 * cin2 + at % cin] = c as u8;
                    }
                }
            }
        }
        return;
    }
    let xp16: &mut [i16] = bytemuck::cast_slice_mut(xp);
    for (ih, src) in x.chunks_exact(w * cin).enumerate() {
        let start = 2 * ((ih + p) * row + p * cin2);
        let dst = &mut xp16[start..start + 2 * w * cin2];
        if cin % 2 == 0 {
            lanes.quantize(q, src, dst);
        } else {
            for (dpix, spix) in dst.chunks_exact_mut(2 * cin2).zip(src.chunks_exact(cin)) {
                for (d, &v) in dpix.iter_mut().zip(spix) {
                    *d = q.code(v);
                }
            }
        }
    }
}

/// The SIMD operations of the micro-kernel, for one group of 16 output channels.
pub(super) trait Lanes: Copy {
    /// One input word broadcast.
    type X: Copy;
    /// One weight block.
    type W: Copy;
    /// 16 `i32` accumulators.
    type Acc: Copy;
    /// Pixels per micro-kernel call for `groups` groups (what fits the registers).
    fn pixels(groups: usize) -> usize;
    fn zero(self) -> Self::Acc;
    fn splat(self, word: i32) -> Self::X;
    fn load(self, w: &[i16; 2 * LANES]) -> Self::W;
    /// `acc + madd(x, w)`.
    fn madd(self, acc: Self::Acc, x: Self::X, w: Self::W) -> Self::Acc;
    fn to_array(self, acc: Self::Acc) -> [i32; LANES];
    /// `dst[i] = q.code(src[i])` (the same codes, vectorized where overridden).
    #[inline(always)]
    fn quantize(self, q: Quantizer, src: &[f32], dst: &mut [i16]) {
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = q.code(v);
        }
    }
}

/// Portable lanes (any CPU; LLVM vectorizes what it can).
#[derive(Clone, Copy, Debug)]
pub(super) struct Scalar;

impl Lanes for Scalar {
    type X = [i16; 2];
    type W = [i16; 2 * LANES];
    type Acc = [i32; LANES];

    fn pixels(groups: usize) -> usize {
        if groups <= 2 { 4 } else { 2 }
    }
    #[inline(always)]
    fn zero(self) -> Self::Acc {
        [0; LANES]
    }
    #[inline(always)]
    fn splat(self, word: i32) -> Self::X {
        bytemuck::cast(word)
    }
    #[inline(always)]
    fn load(self, w: &[i16; 2 * LANES]) -> Self::W {
        *w
    }
    #[inline(always)]
    fn madd(self, mut acc: Self::Acc, x: Self::X, w: Self::W) -> Self::Acc {
        for (j, a) in acc.iter_mut().enumerate() {
            *a += i32::from(x[0]) * i32::from(w[2 * j]) + i32::from(x[1]) * i32::from(w[2 * j + 1]);
        }
        acc
    }
    #[inline(always)]
    fn to_array(self, acc: Self::Acc) -> [i32; LANES] {
        acc
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use pulp::Simd;
    use pulp::x86::{V3, V4};
    use pulp::{f32x8, f32x16, i16x16, i16x32, i32x8, i32x16};

    use super::{LANES, Lanes, Quantizer, ROUND};

    impl Lanes for V4 {
        type X = i16x32;
        type W = i16x32;
        type Acc = i32x16;

        fn pixels(groups: usize) -> usize {
            // 32 registers: P × G accumulators, 2 G weights, two broadcasts
            if groups <= 2 { 8 } else { 4 }
        }
        #[inline(always)]
        fn zero(self) -> i32x16 {
            self.splat_i32x16(0)
        }
        #[inline(always)]
        fn splat(self, word: i32) -> i16x32 {
            pulp::cast(self.splat_i32x16(word))
        }
        #[inline(always)]
        fn load(self, w: &[i16; 2 * LANES]) -> i16x32 {
            pulp::cast(*w)
        }
        #[inline(always)]
        fn madd(self, acc: i32x16, x: i16x32, w: i16x32) -> i32x16 {
            self.add_i32s(acc, self.multiply_wrapping_add_adjacent_i16x32(x, w))
        }
        #[inline(always)]
        fn to_array(self, acc: i32x16) -> [i32; LANES] {
            pulp::cast(acc)
        }
        #[inline(always)]
        fn quantize(self, q: Quantizer, src: &[f32], dst: &mut [i16]) {
            let (scale, lo, hi) = (
                self.splat_f32x16(q.scale),
                self.splat_f32x16(q.lo),
                self.splat_f32x16(q.hi),
            );
            let round = self.splat_f32x16(ROUND);
            let n = src.len().min(dst.len());
            let (s16, s_rest) = src[..n].as_chunks::<16>();
            let (d16, d_rest) = dst[..n].as_chunks_mut::<16>();
            for (d, s) in d16.iter_mut().zip(s16) {
                let x: f32x16 = pulp::cast(*s);
                let y = self.min_f32s(self.max_f32s(self.div_f32s(x, scale), lo), hi);
                let r = self.sub_f32s(self.add_f32s(y, round), round);
                *d = pulp::cast(self.convert_i32x16_to_i16x16(self.convert_f32x16_to_i32x16(r)));
            }
            for (d, &v) in d_rest.iter_mut().zip(s_rest) {
                *d = q.code(v);
            }
        }
    }

    impl Lanes for V3 {
        type X = i16x16;
        type W = [i16x16; 2];
        type Acc = [i32x8; 2];

        fn pixels(groups: usize) -> usize {
            // 16 registers: two per group and pixel, four per group of weights
            if groups == 1 { 4 } else { 2 }
        }
        #[inline(always)]
        fn zero(self) -> [i32x8; 2] {
            [self.splat_i32x8(0); 2]
        }
        #[inline(always)]
        fn splat(self, word: i32) -> i16x16 {
            pulp::cast(self.splat_i32x8(word))
        }
        #[inline(always)]
        fn load(self, w: &[i16; 2 * LANES]) -> [i16x16; 2] {
            pulp::cast(*w)
        }
        #[inline(always)]
        fn madd(self, acc: [i32x8; 2], x: i16x16, w: [i16x16; 2]) -> [i32x8; 2] {
            [
                self.add_i32s(acc[0], self.multiply_wrapping_add_adjacent_i16x16(x, w[0])),
                self.add_i32s(acc[1], self.multiply_wrapping_add_adjacent_i16x16(x, w[1])),
            ]
        }
        #[inline(always)]
        fn to_array(self, acc: [i32x8; 2]) -> [i32; LANES] {
            pulp::cast(acc)
        }
        #[inline(always)]
        fn quantize(self, q: Quantizer, src: &[f32], dst: &mut [i16]) {
            let (scale, lo, hi) = (
                self.splat_f32x8(q.scale),
                self.splat_f32x8(q.lo),
                self.splat_f32x8(q.hi),
            );
            let round = self.splat_f32x8(ROUND);
            let n = src.len().min(dst.len());
            let (s8, s_rest) = src[..n].as_chunks::<8>();
            let (d8, d_rest) = dst[..n].as_chunks_mut::<8>();
            for (d, s) in d8.iter_mut().zip(s8) {
                let x: f32x8 = pulp::cast(*s);
                let y = self.min_f32s(self.max_f32s(self.div_f32s(x, scale), lo), hi);
                let r = self.sub_f32s(self.add_f32s(y, round), round);
                let c: [i32; 8] = pulp::cast(self.convert_f32x8_to_i32x8(r));
                *d = c.map(|v| v as i16);
            }
            for (d, &v) in d_rest.iter_mut().zip(s_rest) {
                *d = q.code(v);
            }
        }
    }
}

pub use crate::kernels::Isa;

/// One convolution layer's integer work: quantize each image, convolve, epilogue.
pub(super) struct LayerRun<'a> {
    pub(super) g: Geom,
    pub(super) q: Quantizer,
    pub(super) chunks: &'a [Chunk],
    pub(super) epi: &'a Epilogue,
    /// With a residual input: the clamp of the activation after the addition.
    pub(super) post: (f32, f32),
}

impl LayerRun<'_> {
    /// Runs one image of a pair layout (`g.per_word == 2`; the quad layout runs in
    /// [`super::vnni::image`]): `x_img` `[h, w, cin]` → `out_img` `[oh, ow, cout]`, with `xp` the
    /// scratch padded image; with `skip_img` (`[oh, ow, cout]`) the output is
    /// `post(layer output + skip)`, a residual addition and the activation after it.
    pub(super) fn image(
        &self,
        isa: Isa,
        x_img: &[f32],
        xp: &mut [i32],
        out_img: &mut [f32],
        skip_img: Option<&[f32]>,
    ) {
        #[cfg(target_arch = "x86_64")]
        if isa != Isa::Portable {
            if let Some(v4) = pulp::x86::V4::try_new().filter(|_| isa == Isa::Best) {
                return pulp::Simd::vectorize(
                    v4,
                    ImageOp {
                        lanes: v4,
                        run: self,
                        x_img,
                        xp,
                        out_img,
                        skip_img,
                    },
                );
            }
            if let Some(v3) = pulp::x86::V3::try_new() {
                return pulp::Simd::vectorize(
                    v3,
                    ImageOp {
                        lanes: v3,
                        run: self,
                        x_img,
                        xp,
                        out_img,
                        skip_img,
                    },
                );
            }
        }
        let _ = isa;
        pulp::Arch::new().dispatch(ImageOp {
            lanes: Scalar,
            run: self,
            x_img,
            xp,
            out_img,
            skip_img,
        });
    }
}

/// The work of one image, compiled inside the SIMD dispatch of its lanes.
pub(super) struct ImageOp<'a, 'b, L> {
    pub(super) lanes: L,
    pub(super) run: &'a LayerRun<'b>,
    pub(super) x_img: &'a [f32],
    pub(super) xp: &'a mut [i32],
    pub(super) out_img: &'a mut [f32],
    pub(super) skip_img: Option<&'a [f32]>,
}

impl<L: Lanes> pulp::WithSimd for ImageOp<'_, '_, L> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let ImageOp {
            lanes,
            run,
            x_img,
            xp,
            out_img,
            skip_img,
        } = self;
        quantize_image(lanes, &run.g, run.q, x_img, xp);
        for chunk in run.chunks {
            match chunk.groups {
                1 => chunk_rows::<L, 1>(lanes, run, chunk, xp, out_img, skip_img),
                2 => chunk_rows::<L, 2>(lanes, run, chunk, xp, out_img, skip_img),
                3 => chunk_rows::<L, 3>(lanes, run, chunk, xp, out_img, skip_img),
                _ => chunk_rows::<L, 4>(lanes, run, chunk, xp, out_img, skip_img),
            }
        }
    }
}

/// Every output pixel of one image for one chunk of `G` groups.
#[inline(always)]
fn chunk_rows<L: Lanes, const G: usize>(
    lanes: L,
    run: &LayerRun<'_>,
    chunk: &Chunk,
    xp: &[i32],
    out_img: &mut [f32],
    skip_img: Option<&[f32]>,
) {
    match L::pixels(G) {
        8 => pixel_loop::<L, G, 8>(lanes, run, chunk, xp, out_img, skip_img),
        6 => pixel_loop::<L, G, 6>(lanes, run, chunk, xp, out_img, skip_img),
        4 => pixel_loop::<L, G, 4>(lanes, run, chunk, xp, out_img, skip_img),
        _ => pixel_loop::<L, G, 2>(lanes, run, chunk, xp, out_img, skip_img),
    }
}

#[inline(always)]
fn pixel_loop<L: Lanes, const G: usize, const P: usize>(
    lanes: L,
    run: &LayerRun<'_>,
    chunk: &Chunk,
    xp: &[i32],
    out_img: &mut [f32],
    skip_img: Option<&[f32]>,
) {
    let (out_h, out_w) = (run.g.out_h(), run.g.out_w());
    for oh in 0..out_h {
        let mut ow = 0;
        while ow + P <= out_w {
            block::<L, G, P>(lanes, run, chunk, xp, (oh, ow), out_img, skip_img);
            ow += P;
        }
        while ow < out_w {
            block::<L, G, 1>(lanes, run, chunk, xp, (oh, ow), out_img, skip_img);
            ow += 1;
        }
    }
}

/// `P` output pixels `(oh, ow0..ow0 + P)` × `G` groups of one chunk: the exact `i32` sums,
/// then the epilogue into `out_img`.
#[inline(always)]
fn block<L: Lanes, const G: usize, const P: usize>(
    lanes: L,
    run: &LayerRun<'_>,
    chunk: &Chunk,
    xp: &[i32],
    (oh, ow0): (usize, usize),
    out_img: &mut [f32],
    skip_img: Option<&[f32]>,
) {
    let g = &run.g;
    let (row, cin2, kc2, stride) = (g.row(), g.cin2(), g.kc2(), g.stride);
    let mut acc = [[lanes.zero(); G]; P];
    for kh in 0..g.kernel {
        let base = (oh * stride + kh) * row + ow0 * stride * cin2;
        let mut xs: [&[i32]; P] = [&[]; P];
        for (p, x) in xs.iter_mut().enumerate() {
            *x = &xp[base + p * stride * cin2..][..kc2];
        }
        // each pixel's words as exactly `kc2 / 2` pairs, indexed below with no bounds checks
        // (as in the f32 direct kernels' `fma_rows`)
        let pairs = kc2 / 2;
        let mut x2: [&[[i32; 2]]; P] = [&[]; P];
        for (d, x) in x2.iter_mut().zip(&xs) {
            *d = &x.as_chunks::<2>().0[..pairs];
        }
        let wk = &chunk.w[kh * kc2 * G..][..kc2 * G];
        let (w2, _) = wk[..2 * pairs * G].as_chunks::<G>();
        let w2 = &w2[..2 * pairs];
        // two reduction pairs per iteration (fewer loop-carried register copies)
        for r in 0..pairs {
            let w0: [L::W; G] = std::array::from_fn(|gi| lanes.load(&w2[2 * r][gi]));
            let w1: [L::W; G] = std::array::from_fn(|gi| lanes.load(&w2[2 * r + 1][gi]));
            for p in 0..P {
                let [a, b] = x2[p][r];
                let x0 = lanes.splat(a);
                let x1 = lanes.splat(b);
                for gi in 0..G {
                    acc[p][gi] = lanes.madd(acc[p][gi], x0, w0[gi]);
                    acc[p][gi] = lanes.madd(acc[p][gi], x1, w1[gi]);
                }
            }
        }
        if kc2 % 2 == 1 {
            let r = kc2 - 1;
            let wv: [L::W; G] = std::array::from_fn(|gi| lanes.load(&wk[r * G + gi]));
            for p in 0..P {
                let x = lanes.splat(xs[p][r]);
                for gi in 0..G {
                    acc[p][gi] = lanes.madd(acc[p][gi], x, wv[gi]);
                }
            }
        }
    }
    let epi = run.epi;
    for (p, acc_p) in acc.iter().enumerate() {
        let at = (oh * g.out_w() + ow0 + p) * g.cout;
        let px = &mut out_img[at..][..g.cout];
        let skip = skip_img.map(|s| &s[at..][..g.cout]);
        for (gi, a) in acc_p.iter().enumerate() {
            let c0 = chunk.first + gi * LANES;
            if c0 >= g.cout {
                break;
            }
            let n = (g.cout - c0).min(LANES);
            let a = lanes.to_array(*a);
            if n == LANES {
                let lanes16 = |v: &[f32]| -> [f32; LANES] {
                    v[c0..c0 + LANES].try_into().expect("16 channels")
                };
                let out: &mut [f32; LANES] =
                    (&mut px[c0..c0 + LANES]).try_into().expect("16 channels");
                epilogue16(
                    &a,
                    &lanes16(&epi.mult),
                    &lanes16(&epi.scale),
                    &lanes16(&epi.shift),
                    epi.lo,
                    epi.hi,
                    out,
                );
                if let Some(skip) = skip {
                    let (lo, hi) = run.post;
                    let skip: [f32; LANES] = lanes16(skip);
                    for j in 0..LANES {
                        out[j] = (out[j] + skip[j]).max(lo).min(hi);
                    }
                }
            } else {
                epilogue(
                    &a[..n],
                    &epi.mult[c0..c0 + n],
                    &epi.scale[c0..c0 + n],
                    &epi.shift[c0..c0 + n],
                    epi.lo,
                    epi.hi,
                    &mut px[c0..c0 + n],
                );
                if let Some(skip) = skip {
                    let (lo, hi) = run.post;
                    for (o, &s) in px[c0..c0 + n].iter_mut().zip(&skip[c0..c0 + n]) {
                        *o = (*o + s).max(lo).min(hi);
                    }
                }
            }
        }
    }
}

/// [`epilogue`] on one full group, on arrays (so that it compiles to vector code).
#[inline(always)]
fn epilogue16(
    acc: &[i32; LANES],
    mult: &[f32; LANES],
    scale: &[f32; LANES],
    shift: &[f32; LANES],
    lo: f32,
    hi: f32,
    out: &mut [f32; LANES],
) {
    for j in 0..LANES {
        let y = (acc[j] as f32 * mult[j]) * scale[j] + shift[j];
        out[j] = y.max(lo).min(hi);
    }
}

/// `act((acc × mult) × scale + shift)` per channel.
#[inline(always)]
fn epilogue(
    acc: &[i32],
    mult: &[f32],
    scale: &[f32],
    shift: &[f32],
    lo: f32,
    hi: f32,
    out: &mut [f32],
) {
    for ((((o, &a), &m), &s), &t) in out.iter_mut().zip(acc).zip(mult).zip(scale).zip(shift) {
        let y = (a as f32 * m) * s + t;
        *o = y.max(lo).min(hi);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rounding of the fake quantizer (`crate::kernels::quant`): nearest, ties to even,
    /// then clamped.
    fn reference(q: Quantizer, x: f32) -> i16 {
        let r = (x / q.scale).round_ties_even();
        (if r < q.lo {
            q.lo
        } else if r > q.hi {
            q.hi
        } else {
            r
        }) as i16
    }

    #[test]
    fn codes_round_like_the_fake_quantizer() {
        let q = Quantizer {
            scale: 0.037,
            lo: -127.0,
            hi: 127.0,
        };
        let mut state = 1u32;
        let mut xs: Vec<f32> = (0..100_000)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state as f32 / u32::MAX as f32 - 0.5) * 12.0
            })
            .collect();
        // ties, bounds, beyond the bounds
        xs.extend((-300..300).map(|k| (k as f32 + 0.5) * q.scale));
        xs.extend([0.0, -0.0, 1e30, -1e30, 127.4 * q.scale, -127.6 * q.scale]);
        let mut bad = Vec::new();
        for &x in &xs {
            if q.code(x) != reference(q, x) {
                bad.push((x, q.code(x), reference(q, x)));
            }
        }
        assert!(
            bad.is_empty(),
            "{} codes differ, e.g. {:?}",
            bad.len(),
            &bad[..bad.len().min(5)]
        );
    }
}
