//! How the direct kernels (`narrow.rs`) hold the channels of one pixel in vector registers.
//!
//! - [`Full`]: `NV` whole vectors of the instruction set's lanes, the channels padded to a
//!   multiple of them (24 channels: two 16-lane vectors, 8 lanes of padding).
//! - [`Half`] (AVX-512 only): 16-lane vectors and one 8-lane vector, for channel counts that
//!   fill at most half of their last 16 lanes (24 channels: 16 + 8 lanes). It takes as many
//!   instructions as [`Full`], and its 8-lane multiply-adds cost half of a 16-lane one where the
//!   CPU runs AVX-512 on 256-bit units (AMD Zen 4 splits every 16-lane operation in two), so
//!   there the padding's work is gone. Measured on Zen 4 (2 cores, alternated; README, Speed):
//!   the backward-weight pass of the default space's 24→24 5×5 layers 16-20% faster
//!   (`conv_kernels`), a training step of its largest member 1.5-4% faster (`train_step`).
//!
//! Both lay a pixel's channels out in memory as `WIDTH` consecutive floats ([`Channels::Row`])
//! and keep each lane's sum on its own, so a layout changes no result: the kernels give the
//! same bits on either. The Winograd kernel keeps [`Full`]: with [`Half`] its 24-channel
//! products ran no faster, and its output transform, rewritten a vector at a time for 8-lane
//! tails, cost ResNet-20's inference 10%.

use pulp::Simd;

use crate::kernels::Isa;

/// Lanes of one AVX-512 register: the [`Layout::Full`] layout pads channels to a multiple of
/// them (on AVX2 that is two vectors, on portable code more).
pub(super) const LANES: usize = 16;

/// How a layer's kernels hold its output channels.
#[derive(Clone, Copy, Debug)]
pub(super) enum Layout {
    /// Whole vectors of the instruction set's lanes, the channels padded to [`LANES`].
    Full,
    /// 16-lane vectors and one 8-lane vector (AVX-512), the channels padded to 8.
    #[cfg(target_arch = "x86_64")]
    Half(pulp::x86::V4),
}

impl Layout {
    /// The layout for `channels` output channels on `isa`: [`Layout::Half`] where it applies
    /// ([`half_token`]), else [`Layout::Full`].
    pub(super) fn new(isa: Isa, channels: usize) -> Self {
        #[cfg(target_arch = "x86_64")]
        if let Some(v4) = half_token(channels, isa == Isa::Best) {
            return Layout::Half(v4);
        }
        let _ = (isa, channels);
        Layout::Full
    }

    /// Lanes per pixel for `channels` channels.
    pub(super) fn width(self, channels: usize) -> usize {
        match self {
            Layout::Full => channels.div_ceil(LANES) * LANES,
            #[cfg(target_arch = "x86_64")]
            Layout::Half(_) => channels.div_ceil(8) * 8,
        }
    }
}

/// Runs `$call` with `$c` the [`Full`] layout for `$width` lanes on `$S` (a [`Channels`]
/// value) and `$P` (pixels per block) or `$R` (weight rows per block) chosen for its vectors
/// per pixel: for the forward kernels `P` pixels × the vectors of sums and two weight rows, for
/// the backward-weight kernel `R` rows × the vectors of sums, the output-gradient vectors and
/// the broadcast, within 32 vector registers (AVX-512) or 16 (AVX2). `$width / lanes` is 1-4
/// (16 lanes), 2-8 (8 lanes: AVX2), 4-16 (4 lanes: NEON) or 16-64 (portable code). More than 8
/// pixels do not pay: LLVM no longer unrolls the pixel loop, and 8 accumulators already cover
/// the FMA latency. The Winograd products use it directly, the direct kernels through
/// [`with_layout`].
macro_rules! with_full {
    ($S:ty, $simd:expr, $width:expr, |$c:ident, $P:ident, $R:ident| $call:expr) => {{
        use $crate::kernels::conv::lanes::Full;
        let simd = $simd;
        let lanes = <$S as pulp::Simd>::F32_LANES;
        let wide = lanes >= 16;
        macro_rules! with {
            ($nv:literal, $p:literal, $r:literal) => {{
                const $P: usize = $p;
                const $R: usize = $r;
                let $c: Full<$S, $nv> = Full(simd);
                $call
            }};
        }
        match $width / lanes {
            1 => with!(1, 8, 16),
            2 if wide => with!(2, 8, 12),
            2 => with!(2, 4, 6),
            3 if wide => with!(3, 6, 8),
            4 if wide => with!(4, 4, 6),
            4 => with!(4, 2, 3),
            6 => with!(6, 1, 1),
            8 => with!(8, 1, 1),
            12 => with!(12, 1, 1),
            16 => with!(16, 1, 1),
            32 => with!(32, 1, 1),
            48 => with!(48, 1, 1),
            64 => with!(64, 1, 1),
            nv => unreachable!("{nv} vectors of {lanes} lanes per pixel"),
        }
    }};
}
pub(super) use with_full;

/// [`with_full`] for the layout `$layout`: with [`Layout::Half`] (only on AVX-512, where `$S`
/// has 16 lanes), `$P` and `$R` are those of as many whole vectors per pixel.
macro_rules! with_layout {
    ($layout:expr, $S:ty, $simd:expr, $width:expr, |$c:ident, $P:ident, $R:ident| $call:expr) => {{
        #[cfg(target_arch = "x86_64")]
        use $crate::kernels::conv::lanes::Half;
        use $crate::kernels::conv::lanes::Layout;
        match $layout {
            Layout::Full => {
                $crate::kernels::conv::lanes::with_full!($S, $simd, $width, |$c, $P, $R| $call)
            }
            #[cfg(target_arch = "x86_64")]
            Layout::Half(v4) if <$S as pulp::Simd>::F32_LANES >= 16 => {
                macro_rules! with {
                    ($nf:literal, $p:literal, $r:literal) => {{
                        const $P: usize = $p;
                        const $R: usize = $r;
                        let $c: Half<$nf> = Half(v4);
                        $call
                    }};
                }
                match $width {
                    8 => with!(0, 8, 16),
                    24 => with!(1, 8, 12),
                    40 => with!(2, 6, 8),
                    56 => with!(3, 4, 6),
                    w => unreachable!("{w} lanes in the half layout"),
                }
            }
            #[cfg(target_arch = "x86_64")]
            Layout::Half(_) => {
                unreachable!("the half layout on {} lanes", <$S as pulp::Simd>::F32_LANES)
            }
        }
    }};
}
pub(super) use with_layout;

/// One pixel's channels: in registers ([`Channels::Acc`]) and in memory ([`Channels::Row`],
/// `WIDTH` floats, the channels then zeros).
pub(super) trait Channels: Copy {
    /// The channels in registers.
    type Acc: Copy;
    /// The channels in memory.
    type Row: Copy;
    /// Lanes per pixel: the channels, padded.
    const WIDTH: usize;

    /// All lanes zero.
    fn zero(self) -> Self::Acc;
    /// `acc += x · w` lane by lane, each lane one fused multiply-add (`w` read from memory, where
    /// the multiply-add instructions take it as an operand: a copy of it had made LLVM call
    /// `memcpy`).
    fn mul_add(self, acc: &mut Self::Acc, x: f32, w: &Self::Row);
    /// `r += a` lane by lane.
    fn add_to(self, r: &mut Self::Row, a: &Self::Acc);
    /// Stores `a` into `r`.
    fn put(self, r: &mut Self::Row, a: &Self::Acc);
    /// Stores the first `dst.len()` (at most `WIDTH`) lanes of `a` into `dst`.
    fn store_first(self, a: &Self::Acc, dst: &mut [f32]);
    /// Loads `src` (at most `WIDTH` floats) into the first lanes, zero in the others.
    fn load_first(self, src: &[f32]) -> Self::Acc;
    /// `s` as rows (its first `s.len() / WIDTH * WIDTH` floats).
    fn rows(s: &[f32]) -> &[Self::Row];
    /// `s` as rows (its first `s.len() / WIDTH * WIDTH` floats).
    fn rows_mut(s: &mut [f32]) -> &mut [Self::Row];
}

/// `NV` vectors of `S`'s lanes per pixel.
#[derive(Clone, Copy, Debug)]
pub(super) struct Full<S, const NV: usize>(pub S);

impl<S: Simd, const NV: usize> Channels for Full<S, NV> {
    type Acc = [S::f32s; NV];
    type Row = [S::f32s; NV];
    const WIDTH: usize = NV * S::F32_LANES;

    #[inline(always)]
    fn zero(self) -> Self::Acc {
        [self.0.splat_f32s(0.0); NV]
    }
    #[inline(always)]
    fn mul_add(self, acc: &mut Self::Acc, x: f32, w: &Self::Row) {
        let xv = self.0.splat_f32s(x);
        for v in 0..NV {
            acc[v] = self.0.mul_add_f32s(xv, w[v], acc[v]);
        }
    }
    #[inline(always)]
    fn add_to(self, r: &mut Self::Row, a: &Self::Acc) {
        for v in 0..NV {
            r[v] = self.0.add_f32s(r[v], a[v]);
        }
    }
    #[inline(always)]
    fn put(self, r: &mut Self::Row, a: &Self::Acc) {
        *r = *a;
    }
    #[inline(always)]
    fn store_first(self, a: &Self::Acc, dst: &mut [f32]) {
        store_channels(self.0, a, dst);
    }
    #[inline(always)]
    fn load_first(self, src: &[f32]) -> Self::Acc {
        load_channels(self.0, src)
    }
    #[inline(always)]
    fn rows(s: &[f32]) -> &[Self::Row] {
        S::as_simd_f32s(s).0.as_chunks::<NV>().0
    }
    #[inline(always)]
    fn rows_mut(s: &mut [f32]) -> &mut [Self::Row] {
        S::as_mut_simd_f32s(s).0.as_chunks_mut::<NV>().0
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

/// Loads the first `NV` vectors' lanes of `src` (full vectors, then one partial load), zero
/// in the lanes past its end: [`store_channels`] the other way.
#[inline(always)]
fn load_channels<S: Simd, const NV: usize>(simd: S, src: &[f32]) -> [S::f32s; NV] {
    let mut v = [simd.splat_f32s(0.0); NV];
    for (i, x) in v.iter_mut().enumerate() {
        let lo = i * S::F32_LANES;
        if lo + S::F32_LANES <= src.len() {
            *x = S::as_simd_f32s(&src[lo..lo + S::F32_LANES]).0[0];
        } else if lo < src.len() {
            *x = simd.partial_load_f32s(&src[lo..]);
        }
    }
    v
}

#[cfg(target_arch = "x86_64")]
pub(super) use half::{Half, half_token};

#[cfg(target_arch = "x86_64")]
mod half {
    use pulp::x86::{V3, V4};
    use pulp::{Simd, f32x8, f32x16};

    use super::Channels;

    /// `NF` 16-lane vectors and one 8-lane vector per pixel, on AVX-512: `16 NF + 8` lanes.
    #[derive(Clone, Copy, Debug)]
    pub(in super::super) struct Half<const NF: usize>(pub V4);

    /// The AVX-512 token of the [`Half`] layout for `channels`, where it is the one to use: on
    /// AVX-512 (with `isa_best`: the kernels run on the CPU's best instruction set), for channel
    /// counts that leave 8 or more of their last 16 lanes empty.
    pub(in super::super) fn half_token(channels: usize, isa_best: bool) -> Option<V4> {
        let v4 = V4::try_new().filter(|_| isa_best)?;
        let rem = channels % 16;
        (rem != 0 && rem <= 8).then_some(v4)
    }

    /// The 16-lane vector `i` of a row.
    #[inline(always)]
    fn full_at(r: &[f32], i: usize) -> f32x16 {
        pulp::cast(*<&[f32; 16]>::try_from(&r[16 * i..16 * i + 16]).unwrap())
    }

    /// The 8-lane vector after the `nf` 16-lane ones.
    #[inline(always)]
    fn half_at(r: &[f32], nf: usize) -> f32x8 {
        pulp::cast(*<&[f32; 8]>::try_from(&r[16 * nf..16 * nf + 8]).unwrap())
    }

    /// One implementation per width: a row is an array of `16 NF + 8` floats, which a generic
    /// `NF` cannot name.
    macro_rules! half_layout {
        ($nf:literal, $width:literal) => {
            impl Channels for Half<$nf> {
                type Acc = ([f32x16; $nf], f32x8);
                type Row = [f32; $width];
                const WIDTH: usize = $width;

                #[inline(always)]
                fn zero(self) -> Self::Acc {
                    let zero = self.0.splat_f32x16(0.0);
                    (std::array::from_fn(|_| zero), self.v3().splat_f32x8(0.0))
                }
                #[inline(always)]
                fn mul_add(self, acc: &mut Self::Acc, x: f32, w: &Self::Row) {
                    let x16 = self.0.splat_f32x16(x);
                    for (v, a) in acc.0.iter_mut().enumerate() {
                        *a = self.0.mul_add_f32x16(x16, full_at(w, v), *a);
                    }
                    let v3 = self.v3();
                    acc.1 = v3.mul_add_f32x8(v3.splat_f32x8(x), half_at(w, $nf), acc.1);
                }
                #[inline(always)]
                fn add_to(self, r: &mut Self::Row, a: &Self::Acc) {
                    let v3 = self.v3();
                    let sum = (
                        std::array::from_fn(|v| self.0.add_f32x16(full_at(r, v), a.0[v])),
                        v3.add_f32x8(half_at(r, $nf), a.1),
                    );
                    self.put(r, &sum);
                }
                #[inline(always)]
                fn put(self, r: &mut Self::Row, a: &Self::Acc) {
                    for (v, x) in a.0.iter().enumerate() {
                        let d: &mut [f32; 16] = (&mut r[16 * v..16 * v + 16]).try_into().unwrap();
                        *d = pulp::cast(*x);
                    }
                    let d: &mut [f32; 8] = (&mut r[16 * $nf..]).try_into().unwrap();
                    *d = pulp::cast(a.1);
                }
                #[inline(always)]
                fn store_first(self, a: &Self::Acc, dst: &mut [f32]) {
                    super::store_channels(self.0, &a.0, dst);
                    let lo = 16 * $nf;
                    if lo + 8 <= dst.len() {
                        let d: &mut [f32; 8] = (&mut dst[lo..lo + 8]).try_into().unwrap();
                        *d = pulp::cast(a.1);
                    } else if lo < dst.len() {
                        self.v3().partial_store_f32s(&mut dst[lo..], a.1);
                    }
                }
                #[inline(always)]
                fn load_first(self, src: &[f32]) -> Self::Acc {
                    let lo = 16 * $nf;
                    let half = if lo + 8 <= src.len() {
                        half_at(src, $nf)
                    } else if lo < src.len() {
                        self.v3().partial_load_f32s(&src[lo..])
                    } else {
                        self.v3().splat_f32x8(0.0)
                    };
                    (super::load_channels(self.0, src), half)
                }
                #[inline(always)]
                fn rows(s: &[f32]) -> &[Self::Row] {
                    s.as_chunks::<$width>().0
                }
                #[inline(always)]
                fn rows_mut(s: &mut [f32]) -> &mut [Self::Row] {
                    s.as_chunks_mut::<$width>().0
                }
            }
        };
    }

    impl<const NF: usize> Half<NF> {
        /// The AVX2 half of the token, for the 8-lane vector (compiled with AVX-512's features
        /// where it is inlined, so with its 32 registers).
        #[inline(always)]
        fn v3(self) -> V3 {
            *self.0
        }
    }

    half_layout!(0, 8);
    half_layout!(1, 24);
    half_layout!(2, 40);
    half_layout!(3, 56);
}
