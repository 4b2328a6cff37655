//! The integer kernel on AVX-512 VNNI: `vpdpbusd` multiplies four `u8` activation codes by four
//! `i8` weight codes and adds the four products to an `i32` lane, 64 products per instruction
//! where `madd` + `add` give 32 in two. It serves the layers whose activation codes are
//! unsigned bytes (after a ReLU, up to 8 bits) and whose weight codes fit `i8`, in the quad
//! layout of [`super::kernel::pack`]; the sums are the same exact `i32` sums as the `madd`
//! path's, so the outputs are equal bit for bit (`tests/int_engine.rs`).
//!
//! pulp 0.22 has no wrapper for `vpdpbusd`, so this file calls the intrinsic itself, inside a
//! function compiled with the feature: the integer engine's only `unsafe` code.

use core::arch::x86_64::{__m512i, _mm512_dpbusd_epi32};

use pulp::i32x16;
use pulp::x86::V4;

use super::kernel::{ImageOp, LANES, Lanes, LayerRun, Quantizer};

/// AVX-512 with VNNI: a [`V4`] token whose CPU also has `avx512vnni`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Vnni(V4);

impl Vnni {
    /// The token, where the CPU has AVX-512 (pulp's `V4` set) and VNNI.
    pub(super) fn try_new() -> Option<Self> {
        let v4 = V4::try_new()?;
        std::arch::is_x86_feature_detected!("avx512vnni").then_some(Vnni(v4))
    }
}

impl Lanes for Vnni {
    type X = i32x16;
    type W = i32x16;
    type Acc = i32x16;

    fn pixels(groups: usize) -> usize {
        // the same 32 registers as the madd kernel's
        <V4 as Lanes>::pixels(groups)
    }
    #[inline(always)]
    fn zero(self) -> i32x16 {
        self.0.splat_i32x16(0)
    }
    #[inline(always)]
    fn splat(self, word: i32) -> i32x16 {
        self.0.splat_i32x16(word)
    }
    #[inline(always)]
    fn load(self, w: &[i16; 2 * LANES]) -> i32x16 {
        pulp::cast(*w)
    }
    #[inline(always)]
    fn madd(self, acc: i32x16, x: i32x16, w: i32x16) -> i32x16 {
        let (acc, x, w): (__m512i, __m512i, __m512i) = (to_m512i(acc), to_m512i(x), to_m512i(w));
        // SAFETY: a `Vnni` exists only where the CPU has AVX-512 VNNI (`Vnni::try_new`), and
        // this runs inlined into `image_vnni`, which is compiled with the feature.
        let sum = unsafe { _mm512_dpbusd_epi32(acc, x, w) };
        from_m512i(sum)
    }
    #[inline(always)]
    fn to_array(self, acc: i32x16) -> [i32; LANES] {
        pulp::cast(acc)
    }
    #[inline(always)]
    fn quantize(self, q: Quantizer, src: &[f32], dst: &mut [i16]) {
        Lanes::quantize(self.0, q, src, dst);
    }
}

#[inline(always)]
fn to_m512i(v: i32x16) -> __m512i {
    // SAFETY: both are 64 bytes of plain integers, any bit pattern valid.
    unsafe { core::mem::transmute::<i32x16, __m512i>(v) }
}

#[inline(always)]
fn from_m512i(v: __m512i) -> i32x16 {
    // SAFETY: as in `to_m512i`.
    unsafe { core::mem::transmute::<__m512i, i32x16>(v) }
}

/// Runs one image of a quad-layout layer (see [`LayerRun::image`]).
pub(super) fn image(
    run: &LayerRun<'_>,
    x_img: &[f32],
    xp: &mut [i32],
    out_img: &mut [f32],
    skip_img: Option<&[f32]>,
) {
    let lanes = Vnni::try_new().expect("quad layouts are built only where the CPU has VNNI");
    let op = ImageOp {
        lanes,
        run,
        x_img,
        xp,
        out_img,
        skip_img,
    };
    // SAFETY: the CPU has every feature `image_vnni` is compiled with: `Vnni::try_new` checked
    // pulp's V4 set (AVX-512 F/BW/CD/DQ/VL over AVX2, FMA, BMI, LZCNT, POPCNT, F16C, MOVBE)
    // and VNNI.
    unsafe { image_vnni(op) }
}

#[target_feature(
    enable = "avx512f,avx512bw,avx512cd,avx512dq,avx512vl,avx512vnni,avx,avx2,fma,bmi1,bmi2,lzcnt,popcnt,f16c,movbe,sse3,ssse3,sse4.1,sse4.2"
)]
unsafe fn image_vnni(op: ImageOp<'_, '_, Vnni>) {
    let v4 = op.lanes.0;
    pulp::WithSimd::with_simd(op, v4);
}
