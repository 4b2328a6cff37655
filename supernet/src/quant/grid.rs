//! Scalar definitions of the quantization grids: integer code ranges, floating-point codes
//! (encode / decode with round-to-nearest-even and saturation), and the bounds the
//! straight-through estimator clips at.
//!
//! These functions work on single `f32` values in exact `f64` arithmetic and do not use burn.
//! The tensor quantizers in [`super::round`] compute the same results with tensor ops; the tests
//! check the two against each other and against [`Format::float_values`].

use spaces::Format;

/// The range `(lo, hi)` of the codes of an integer format of `bits` bits.
///
/// Signed codes are symmetric, `[-(2^(b-1) - 1), 2^(b-1) - 1]` (the most negative two's
/// complement code is not used), so that zero is exact and the grid is symmetric. Unsigned
/// codes (activations after a ReLU) are `[0, 2^b - 1]`.
///
/// # Panics
/// Panics if `bits` is not in `2..=32` (a valid [`Format::Int`] never is).
pub fn int_code_range(bits: u8, signed: bool) -> (i64, i64) {
    assert!(
        (2..=32).contains(&bits),
        "integer formats have 2 to 32 bits, got {bits}"
    );
    let b = u32::from(bits);
    if signed {
        let hi = (1i64 << (b - 1)) - 1;
        (-hi, hi)
    } else {
        (0, (1i64 << b) - 1)
    }
}

/// The largest magnitude on the unscaled grid of a format: the largest integer code, or the
/// largest finite value of a floating-point format. A max-based scale maps a tensor's maximum
/// magnitude onto this value.
pub fn grid_max(format: Format, signed: bool) -> f64 {
    match format {
        Format::Int(bits) => int_code_range(bits, signed).1 as f64,
        Format::Float { .. } => format.max_finite().unwrap_or(f64::MAX),
    }
}

/// Significant bits of the largest magnitude on the unscaled grid, which bounds the significant
/// bits of every grid value: `bits - 1` for signed integers, `bits` for unsigned ones,
/// `man + 1` for floating point.
///
/// A scale with at most `24 - k` significant bits (see [`snap_scale_scalar`]) makes every
/// product `value * scale` exact in `f32`.
pub fn grid_significant_bits(format: Format, signed: bool) -> u32 {
    match format {
        Format::Int(bits) => {
            let hi = int_code_range(bits, signed).1 as u64;
            64 - hi.leading_zeros()
        }
        Format::Float { man, .. } => u32::from(man) + 1,
    }
}

/// The interval `(lo, hi)` of unscaled inputs that round onto the grid instead of saturating:
/// `[lo - 1/2, hi + 1/2]` for integer codes, `±(max_finite + ulp/2)` for floating point (where
/// `ulp` is the spacing just below `max_finite`). The clipped straight-through estimator passes
/// gradients inside this interval and blocks them outside.
pub fn saturation_bounds(format: Format, signed: bool) -> (f64, f64) {
    match format {
        Format::Int(bits) => {
            let (lo, hi) = int_code_range(bits, signed);
            (lo as f64 - 0.5, hi as f64 + 0.5)
        }
        Format::Float { man, .. } => {
            let max = grid_max(format, signed);
            let half_ulp = pow2(floor_log2(max) - i32::from(man) - 1);
            (-(max + half_ulp), max + half_ulp)
        }
    }
}

/// `2^n` exactly, for `n` in the range of `f64` exponents used here (-160..=260).
pub(crate) fn pow2(n: i32) -> f64 {
    2f64.powi(n)
}

/// `floor(log2(a))` of a positive, normal, finite `f64`, read from its exponent bits.
pub(crate) fn floor_log2(a: f64) -> i32 {
    debug_assert!(a.is_normal() && a > 0.0, "floor_log2 of {a}");
    ((a.to_bits() >> 52) & 0x7ff) as i32 - 1023
}

/// A floating-point grid rounded in f32 arithmetic (see [`FloatGrid::f32_grid`]): the same
/// values as [`FloatGrid`]'s rounding in f64, with operations that vectorize.
#[derive(Clone, Copy, Debug)]
pub(crate) struct F32Grid {
    emin: i32,
    man: i32,
    max: f32,
}

impl F32Grid {
    /// `y` rounded onto the grid: the nearest value (ties to an even multiple of the spacing),
    /// saturating at the largest finite value, with the sign of `y`. As [`Rounder::round`]
    /// except for NaN, which gives a saturated value here (callers sum squared differences,
    /// which stay NaN).
    #[inline(always)]
    pub(crate) fn round(self, y: f32) -> f32 {
        // anything at or above 2 * max saturates; this also turns inf into max
        let a = y.abs().min(2.0 * self.max);
        // floor(log2(a)) from the exponent bits (-127 for 0 and subnormals), at least emin
        let e = (((a.to_bits() >> 23) as i32) - 127).max(self.emin);
        let up = f32::from_bits(((127 + self.man - e) as u32) << 23); // 2^(man - e)
        let ulp = f32::from_bits(((127 + e - self.man) as u32) << 23); // 2^(e - man)
        let v = ((a * up).round_ties_even() * ulp).min(self.max);
        v.copysign(y)
    }
}

/// Parameters of a floating-point format used by the encoder.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FloatGrid {
    exp: u32,
    man: u32,
    bias: i32,
    /// Exponent of the smallest normal binade (and of the subnormals' spacing times `2^man`).
    emin: i32,
    max: f64,
}

impl FloatGrid {
    fn new(exp: u8, man: u8) -> FloatGrid {
        let format = Format::Float { exp, man };
        let bias = format
            .exponent_bias()
            .expect("a float format has an exponent bias");
        FloatGrid {
            exp: u32::from(exp),
            man: u32::from(man),
            bias,
            emin: 1 - bias,
            max: format.max_finite().expect("a float format has a maximum"),
        }
    }

    /// The grid's parameters for rounding in f32 arithmetic ([`F32Grid`]), when every scaling
    /// by a power of two it needs is a normal f32 (every minifloat and fp16; not bf16, whose
    /// spacing near zero is below f32's smallest normal).
    pub(crate) fn f32_grid(&self) -> Option<F32Grid> {
        let man = self.man as i32;
        let top = floor_log2(2.0 * self.max);
        let normal = |k: i32| (-126..=127).contains(&k);
        let max = self.max as f32;
        let fits = f64::from(max) == self.max
            && normal(self.emin - man)
            && normal(man - self.emin)
            && normal(top - man)
            && normal(man - top);
        fits.then_some(F32Grid {
            emin: self.emin,
            man,
            max,
        })
    }

    /// Rounds a magnitude to the nearest grid value (ties to an even multiple of the spacing),
    /// saturating at `max`. Returns `(e, r)` with value `r * 2^(e - man)`, where either
    /// `e == emin` and `r < 2^(man+1)` or `2^man <= r < 2^(man+1)`.
    fn round_magnitude(&self, a: f64) -> (i32, u64) {
        // Anything at or above 2 * max saturates; this also turns inf into max.
        let a = a.min(2.0 * self.max);
        let e = if a == 0.0 {
            self.emin
        } else {
            floor_log2(a).max(self.emin)
        };
        let ulp = pow2(e - self.man as i32);
        let r = (a / ulp).round_ties_even();
        if r * ulp > self.max {
            let e = floor_log2(self.max);
            return (e, (self.max / pow2(e - self.man as i32)) as u64);
        }
        let r = r as u64;
        if r == 1u64 << (self.man + 1) {
            (e + 1, 1u64 << self.man)
        } else {
            (e, r)
        }
    }

    fn encode(&self, y: f32) -> Option<u32> {
        if y.is_nan() {
            return None;
        }
        let (e, r) = self.round_magnitude(f64::from(y).abs());
        if r == 0 {
            return Some(0);
        }
        let sign = u32::from(y.is_sign_negative()) << (self.exp + self.man);
        let implicit = 1u64 << self.man;
        let (field, mant) = if e == self.emin && r < implicit {
            (0u32, r as u32)
        } else {
            ((e + self.bias) as u32, (r - implicit) as u32)
        };
        Some(sign | (field << self.man) | mant)
    }

    fn decode(&self, code: u32) -> f64 {
        let mant_mask = (1u32 << self.man).wrapping_sub(1);
        let mant = f64::from(code & mant_mask);
        let field = (code >> self.man) & ((1u32 << self.exp) - 1);
        let negative = (code >> (self.exp + self.man)) & 1 == 1;
        let m = self.man as i32;
        let v = if field == 0 {
            mant * pow2(self.emin - m)
        } else {
            (pow2(m) + mant) * pow2(field as i32 - self.bias - m)
        };
        if negative { -v } else { v }
    }
}

/// The bit pattern of the value of `format` nearest to `y` (round to nearest, ties to even,
/// subnormals included, saturating at `max_finite`; infinities saturate too). The pattern is
/// `sign | exponent field | mantissa` in the low `format.bits()` bits. Zero (also a negative
/// value that rounds to zero) is always the all-zero code. `None` for NaN and for integer
/// formats.
///
/// "Ties to even" means ties go to the neighbour that is an even multiple of the grid spacing at
/// that point; for formats with a mantissa this is the neighbour with an even code, for `m = 0`
/// formats it is the larger power of two (or zero).
pub fn float_code(y: f32, format: Format) -> Option<u32> {
    let Format::Float { exp, man } = format else {
        return None;
    };
    FloatGrid::new(exp, man).encode(y)
}

/// The value of a floating-point code produced by [`float_code`]. `None` for integer formats.
pub fn float_code_value(code: u32, format: Format) -> Option<f64> {
    let Format::Float { exp, man } = format else {
        return None;
    };
    Some(FloatGrid::new(exp, man).decode(code))
}

/// Rounds `y` onto the grid of a floating-point format (see [`float_code`]); NaN stays NaN.
/// Integer formats round to the nearest integer code of a signed format, with saturation.
pub fn round_scalar(y: f32, format: Format, signed: bool) -> f32 {
    match format {
        Format::Int(bits) => {
            let (lo, hi) = int_code_range(bits, signed);
            int_code(y, lo, hi) as f32
        }
        Format::Float { .. } => match float_code(y, format) {
            Some(code) => float_code_value(code, format).map_or(f32::NAN, |v| v as f32),
            None => f32::NAN,
        },
    }
}

/// [`round_scalar`] for one format, with the grid's parameters worked out once (for loops
/// over many values, such as the weight-range search).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Rounder {
    /// Integer codes `lo..=hi`.
    Int(i64, i64),
    /// A floating-point grid.
    Float(FloatGrid),
}

impl Rounder {
    /// The grid of a floating-point rounder in f32 arithmetic, where it has one.
    pub(crate) fn f32_grid(&self) -> Option<F32Grid> {
        match self {
            Rounder::Int(..) => None,
            Rounder::Float(grid) => grid.f32_grid(),
        }
    }

    /// The rounder of `format` (integer codes signed or not; floats are always signed).
    pub(crate) fn new(format: Format, signed: bool) -> Rounder {
        match format {
            Format::Int(bits) => {
                let (lo, hi) = int_code_range(bits, signed);
                Rounder::Int(lo, hi)
            }
            Format::Float { exp, man } => Rounder::Float(FloatGrid::new(exp, man)),
        }
    }

    /// `round_scalar(y, format, signed)`.
    pub(crate) fn round(&self, y: f32) -> f32 {
        match *self {
            Rounder::Int(lo, hi) => int_code(y, lo, hi) as f32,
            Rounder::Float(grid) => {
                if y.is_nan() {
                    return f32::NAN;
                }
                let (e, r) = grid.round_magnitude(f64::from(y).abs());
                let v = (r as f64 * pow2(e - grid.man as i32)) as f32;
                if y.is_sign_negative() { -v } else { v }
            }
        }
    }
}

/// The integer code nearest to `y` (ties to even), clamped to `[lo, hi]`. NaN gives 0.
pub fn int_code(y: f32, lo: i64, hi: i64) -> i64 {
    let r = f64::from(y).round_ties_even();
    if r.is_nan() {
        return 0;
    }
    (r.clamp(lo as f64, hi as f64)) as i64
}

/// Grids whose values have at most this many significant bits get snapped scales (see
/// [`snap_scale_scalar`]): integers of up to 12 bits (signed) or 11 bits (unsigned), and
/// floating-point formats with up to 10 mantissa bits (every minifloat, fp16, bf16).
pub const MAX_SNAPPED_GRID_BITS: u32 = 11;

/// Rounds a positive scale to `24 - significant_bits` significant bits (nearest, ties to even),
/// so that `value * scale` is exact in `f32` for every value of a grid whose values have at most
/// `significant_bits` significant bits (see [`grid_significant_bits`]).
///
/// This changes the scale by less than `2^-(24 - k)` relative, which moves the grid's largest
/// value by less than `2^(2k - 24)` codes: under half a code for `k <=`
/// [`MAX_SNAPPED_GRID_BITS`]. Wider grids (e.g. int16) would lose too much of the scale's
/// precision; their scale is returned unchanged, and their grid is exact only up to `f32`
/// rounding.
pub fn snap_scale_scalar(scale: f32, significant_bits: u32) -> f32 {
    if significant_bits > MAX_SNAPPED_GRID_BITS {
        return scale;
    }
    let format = Format::Float {
        exp: 8,
        man: (23 - significant_bits) as u8,
    };
    round_scalar(scale, format, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::test_util::{float_probe_values, small_float_formats};

    #[test]
    fn the_rounder_rounds_as_round_scalar() {
        let mut formats: Vec<Format> = (2..=8).map(Format::Int).collect();
        formats.extend(small_float_formats());
        formats.extend([Format::FP16, Format::BF16]);
        for format in formats {
            let probes = match format.float_values() {
                Some(grid) => float_probe_values(&grid),
                None => (-600..=600).map(|i| i as f32 * 0.25 + 0.01).collect(),
            };
            for signed in [true, false] {
                let r = Rounder::new(format, signed);
                for &y in probes
                    .iter()
                    .chain(&[0.0, -0.0, 1e30, -1e30, f32::INFINITY])
                {
                    let (a, b) = (r.round(y), round_scalar(y, format, signed));
                    assert!(a == b, "{format} signed {signed}: {y} -> {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn the_f32_grid_rounds_as_the_rounder() {
        let mut formats = small_float_formats();
        formats.push(Format::FP16);
        let mut rng = spaces::Rng::new(11);
        for format in formats {
            let r = Rounder::new(format, true);
            let common = [
                Format::E4M3,
                Format::E5M2,
                Format::E2M1,
                Format::E3M2,
                Format::E2M3,
            ];
            let Some(grid) = r.f32_grid() else {
                assert!(
                    !common.contains(&format) && format != Format::FP16,
                    "{format} rounds in f32"
                );
                continue;
            };
            let values = format.float_values().unwrap();
            let mut probes = float_probe_values(&values);
            // random magnitudes over the whole range, tiny and f32-subnormal ones
            probes.extend(
                (0..2000).map(|_| (rng.normal() as f32) * 2f32.powi((rng.normal() * 8.0) as i32)),
            );
            probes.extend([
                0.0,
                -0.0,
                1e-40,
                -1e-42,
                1e30,
                -1e30,
                f32::INFINITY,
                f32::NEG_INFINITY,
            ]);
            for &y in &probes {
                let (a, b) = (grid.round(y), r.round(y));
                assert!(
                    a.to_bits() == b.to_bits() || (a == 0.0 && b == 0.0),
                    "{format}: {y} -> {a} vs {b}"
                );
            }
        }
        // bf16's spacing near zero is below f32's normals: no f32 grid
        assert!(Rounder::new(Format::BF16, true).f32_grid().is_none());
        assert!(Rounder::new(Format::Int(4), true).f32_grid().is_none());
    }

    #[test]
    fn codes_enumerate_exactly_the_float_values() {
        for format in small_float_formats() {
            let values = format.float_values().unwrap();
            let mut decoded: Vec<f64> = (0..(1u32 << format.bits()))
                .map(|c| float_code_value(c, format).unwrap())
                .filter(|v| v.abs() <= format.max_finite().unwrap())
                .collect();
            decoded.sort_by(f64::total_cmp);
            decoded.dedup();
            assert_eq!(decoded, values, "{format}");
            // Encoding each value gives a code that decodes to it.
            for &v in &values {
                let code = float_code(v as f32, format).unwrap();
                assert_eq!(float_code_value(code, format), Some(v), "{format} {v}");
            }
        }
    }

    #[test]
    fn known_codes() {
        assert_eq!(float_code(448.0, Format::E4M3), Some(0x7E));
        assert_eq!(float_code(-448.0, Format::E4M3), Some(0xFE));
        assert_eq!(float_code(1e9, Format::E4M3), Some(0x7E));
        assert_eq!(float_code(f32::INFINITY, Format::E5M2), Some(0x7B));
        assert_eq!(float_code(1.0, Format::E4M3), Some(0x38));
        assert_eq!(float_code(2f32.powi(-9), Format::E4M3), Some(0x01));
        assert_eq!(float_code(6.0, Format::E2M1), Some(0x7));
        assert_eq!(float_code(-0.5, Format::E2M1), Some(0x9));
        assert_eq!(float_code(f32::NAN, Format::E2M1), None);
        assert_eq!(float_code(1.0, Format::Int(8)), None);
        // A negative value that rounds to zero gets the plain zero code.
        assert_eq!(float_code(-1e-6, Format::E2M1), Some(0));
        assert_eq!(float_code(-1.5, Format::FP32), Some((-1.5f32).to_bits()));
    }

    #[test]
    fn integer_ranges_and_bounds() {
        assert_eq!(int_code_range(2, true), (-1, 1));
        assert_eq!(int_code_range(8, true), (-127, 127));
        assert_eq!(int_code_range(8, false), (0, 255));
        assert_eq!(int_code_range(32, false), (0, u32::MAX as i64));
        assert_eq!(grid_significant_bits(Format::Int(8), true), 7);
        assert_eq!(grid_significant_bits(Format::Int(8), false), 8);
        assert_eq!(grid_significant_bits(Format::E4M3, true), 4);
        assert_eq!(saturation_bounds(Format::Int(4), false), (-0.5, 15.5));
        assert_eq!(saturation_bounds(Format::E4M3, true), (-464.0, 464.0));
        assert_eq!(saturation_bounds(Format::E2M1, true), (-7.0, 7.0));
        assert_eq!(int_code(2.5, -7, 7), 2);
        assert_eq!(int_code(-3.5, -7, 7), -4);
        assert_eq!(int_code(100.0, -7, 7), 7);
    }

    #[test]
    fn snapped_scales_make_products_exact() {
        let mut s = 0.013_f32;
        for _ in 0..200 {
            for format in [Format::Int(8), Format::Int(4), Format::E4M3, Format::E5M2] {
                let k = grid_significant_bits(format, true);
                let snapped = snap_scale_scalar(s, k);
                assert!((snapped / s - 1.0).abs() <= 2f32.powi(-(24 - k as i32)));
                let max = grid_max(format, true) as f32;
                // max * scale / max recovers the scale exactly.
                assert_eq!((max * snapped) / max, snapped);
                assert_eq!(
                    f64::from(max * snapped),
                    f64::from(max) * f64::from(snapped)
                );
            }
            s = (s * 1.618_034 + 1e-4) % 10.0 + 1e-3;
        }
    }
}
