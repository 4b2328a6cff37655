//! Number formats: integers of 2–32 bits and floating-point formats given by their exponent and
//! mantissa bits (minifloats such as e4m3, e5m2, e2m1, and bf16, fp16, fp32).
//!
//! A [`Format`] is the validated, canonical form. In a space file formats are written as the
//! externally tagged [`RawFormat`] (`Int(4)`, `E4M3`, `Float(e: 3, m: 4)`, `Bf16`, …); in an
//! [`Arch`](crate::Arch) and in JSON they are written as their short name (`"int4"`, `"e4m3"`,
//! `"bf16"`).
//!
//! # Which floating-point codes are finite
//! The exponent bias is always `2^(e-1) - 1` and subnormals are included. What the all-ones
//! exponent field means depends on the exponent width, following the formats in use today:
//! - `e >= 5` (e5m2, fp16, bf16, fp32): IEEE 754, the all-ones exponent is reserved for inf/NaN;
//! - `e == 4` with `m >= 1` (e4m3, OCP "fn" style): only the all-ones code is reserved (NaN);
//! - `e <= 3` or `m == 0` (e2m1, e3m2, e2m3, OCP MX style): every code is a finite number.
//!
//! Quantizers saturate at the largest finite value and never produce inf or NaN.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A number format for weights or activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// Integer of `bits` bits. Weights are signed and symmetric; activations are unsigned after a
    /// ReLU and signed otherwise.
    Int(u8),
    /// Floating point with a sign bit, `exp` exponent bits and `man` mantissa bits.
    Float {
        /// Exponent bits (1..=8).
        exp: u8,
        /// Mantissa bits.
        man: u8,
    },
}

/// Why a format is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Integer bits out of range.
    #[error("integer formats need 2 to 32 bits, got {0}")]
    IntBits(u32),
    /// Exponent bits out of range.
    #[error("floating-point formats need 1 to 8 exponent bits, got {0}")]
    ExpBits(u32),
    /// Total width out of range.
    #[error("a floating-point format has at most 32 bits in all (1 + e + m), got {0}")]
    FloatBits(u32),
    /// Not a format name.
    #[error("unknown format `{0}` (expected e.g. int4, e4m3, e2m1, bf16, fp16, fp32)")]
    Unknown(String),
}

impl Format {
    /// bf16: e8m7.
    pub const BF16: Format = Format::Float { exp: 8, man: 7 };
    /// IEEE half precision: e5m10.
    pub const FP16: Format = Format::Float { exp: 5, man: 10 };
    /// IEEE single precision: e8m23.
    pub const FP32: Format = Format::Float { exp: 8, man: 23 };
    /// OCP fp8 e4m3 (fn: no infinities, max 448).
    pub const E4M3: Format = Format::Float { exp: 4, man: 3 };
    /// OCP fp8 e5m2 (IEEE-like, max 57344).
    pub const E5M2: Format = Format::Float { exp: 5, man: 2 };
    /// OCP MX fp4 e2m1 (max 6).
    pub const E2M1: Format = Format::Float { exp: 2, man: 1 };
    /// OCP MX fp6 e3m2 (max 28).
    pub const E3M2: Format = Format::Float { exp: 3, man: 2 };
    /// OCP MX fp6 e2m3 (max 7.5).
    pub const E2M3: Format = Format::Float { exp: 2, man: 3 };

    /// An integer format, checked.
    pub fn int(bits: u32) -> Result<Format, FormatError> {
        if !(2..=32).contains(&bits) {
            return Err(FormatError::IntBits(bits));
        }
        Ok(Format::Int(bits as u8))
    }

    /// A floating-point format, checked.
    pub fn float(exp: u32, man: u32) -> Result<Format, FormatError> {
        if !(1..=8).contains(&exp) {
            return Err(FormatError::ExpBits(exp));
        }
        let total = 1 + exp + man;
        if total > 32 {
            return Err(FormatError::FloatBits(total));
        }
        Ok(Format::Float {
            exp: exp as u8,
            man: man as u8,
        })
    }

    /// Total storage width in bits; this is what the cost model charges (fp8 e4m3 = 8).
    pub fn bits(self) -> u32 {
        match self {
            Format::Int(b) => u32::from(b),
            Format::Float { exp, man } => 1 + u32::from(exp) + u32::from(man),
        }
    }

    /// True for floating-point formats.
    pub fn is_float(self) -> bool {
        matches!(self, Format::Float { .. })
    }

    /// True for full precision (fp32), which quantizers pass through unchanged.
    pub fn is_full_precision(self) -> bool {
        self == Format::FP32
    }

    /// Exponent bias of a floating-point format, `2^(e-1) - 1`.
    pub fn exponent_bias(self) -> Option<i32> {
        match self {
            Format::Int(_) => None,
            Format::Float { exp, .. } => Some((1i32 << (exp - 1)) - 1),
        }
    }

    /// Largest finite value of a floating-point format (see the module docs for which codes are
    /// finite); `None` for integers.
    pub fn max_finite(self) -> Option<f64> {
        let Format::Float { exp, man } = self else {
            return None;
        };
        let bias = (1i32 << (exp - 1)) - 1;
        let top_field = (1i32 << exp) - 1;
        let frac = |m_code: f64| 1.0 + m_code / f64::from(1u32 << man);
        let full = f64::from((1u32 << man) - 1);
        let v = if exp >= 5 {
            frac(full) * 2f64.powi(top_field - 1 - bias)
        } else if exp == 4 && man >= 1 {
            frac(full - 1.0) * 2f64.powi(top_field - bias)
        } else {
            frac(full) * 2f64.powi(top_field - bias)
        };
        Some(v)
    }

    /// Smallest positive (subnormal) value of a floating-point format.
    pub fn min_positive(self) -> Option<f64> {
        let Format::Float { man, .. } = self else {
            return None;
        };
        let bias = self.exponent_bias()?;
        Some(2f64.powi(1 - bias - i32::from(man)))
    }

    /// Every finite value of a floating-point format of at most 16 bits, sorted ascending, with
    /// one zero. Used to check quantizers exhaustively. `None` for integers and wider formats.
    pub fn float_values(self) -> Option<Vec<f64>> {
        let Format::Float { exp, man } = self else {
            return None;
        };
        if self.bits() > 16 {
            return None;
        }
        let bias = self.exponent_bias()?;
        let max = self.max_finite()?;
        let mut out = Vec::new();
        for e_field in 0..(1u32 << exp) {
            for m_code in 0..(1u32 << man) {
                let m = f64::from(m_code) / f64::from(1u32 << man);
                let v = if e_field == 0 {
                    m * 2f64.powi(1 - bias)
                } else {
                    (1.0 + m) * 2f64.powi(e_field as i32 - bias)
                };
                if v <= max {
                    out.push(v);
                    if v != 0.0 {
                        out.push(-v);
                    }
                }
            }
        }
        out.sort_by(f64::total_cmp);
        out.dedup();
        Some(out)
    }

    /// Short name: `int4`, `e4m3`, `bf16`, `fp16`, `fp32`, `e3m4`.
    pub fn name(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Format::Int(b) => write!(f, "int{b}"),
            Format::BF16 => f.write_str("bf16"),
            Format::FP16 => f.write_str("fp16"),
            Format::FP32 => f.write_str("fp32"),
            Format::Float { exp, man } => write!(f, "e{exp}m{man}"),
        }
    }
}

impl FromStr for Format {
    type Err = FormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let unknown = || FormatError::Unknown(s.to_string());
        match lower.as_str() {
            "bf16" => return Ok(Format::BF16),
            "fp16" => return Ok(Format::FP16),
            "fp32" => return Ok(Format::FP32),
            _ => {}
        }
        if let Some(bits) = lower.strip_prefix("int") {
            let bits: u32 = bits.parse().map_err(|_| unknown())?;
            return Format::int(bits);
        }
        if let Some(rest) = lower.strip_prefix('e') {
            let (e, m) = rest.split_once('m').ok_or_else(unknown)?;
            let e: u32 = e.parse().map_err(|_| unknown())?;
            let m: u32 = m.parse().map_err(|_| unknown())?;
            return Format::float(e, m);
        }
        Err(unknown())
    }
}

impl Serialize for Format {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Format {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A format as written in a space file (externally tagged).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum RawFormat {
    /// `Int(bits)`.
    Int(u32),
    /// `Float(e: 3, m: 4)`: any exponent/mantissa split.
    Float {
        /// Exponent bits.
        e: u32,
        /// Mantissa bits.
        m: u32,
    },
    /// fp4 e2m1.
    E2M1,
    /// fp6 e3m2.
    E3M2,
    /// fp6 e2m3.
    E2M3,
    /// fp8 e4m3.
    E4M3,
    /// fp8 e5m2.
    E5M2,
    /// bfloat16.
    Bf16,
    /// IEEE half.
    Fp16,
    /// IEEE single (full precision).
    Fp32,
}

impl TryFrom<RawFormat> for Format {
    type Error = FormatError;

    fn try_from(raw: RawFormat) -> Result<Self, Self::Error> {
        Ok(match raw {
            RawFormat::Int(b) => Format::int(b)?,
            RawFormat::Float { e, m } => Format::float(e, m)?,
            RawFormat::E2M1 => Format::E2M1,
            RawFormat::E3M2 => Format::E3M2,
            RawFormat::E2M3 => Format::E2M3,
            RawFormat::E4M3 => Format::E4M3,
            RawFormat::E5M2 => Format::E5M2,
            RawFormat::Bf16 => Format::BF16,
            RawFormat::Fp16 => Format::FP16,
            RawFormat::Fp32 => Format::FP32,
        })
    }
}

impl From<Format> for RawFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Int(b) => RawFormat::Int(u32::from(b)),
            Format::E2M1 => RawFormat::E2M1,
            Format::E3M2 => RawFormat::E3M2,
            Format::E2M3 => RawFormat::E2M3,
            Format::E4M3 => RawFormat::E4M3,
            Format::E5M2 => RawFormat::E5M2,
            Format::BF16 => RawFormat::Bf16,
            Format::FP16 => RawFormat::Fp16,
            Format::FP32 => RawFormat::Fp32,
            Format::Float { exp, man } => RawFormat::Float {
                e: u32::from(exp),
                m: u32::from(man),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_maxima() {
        let cases = [
            (Format::E4M3, 448.0),
            (Format::E5M2, 57344.0),
            (Format::E2M1, 6.0),
            (Format::E3M2, 28.0),
            (Format::E2M3, 7.5),
            (Format::FP16, 65504.0),
        ];
        for (f, max) in cases {
            assert_eq!(f.max_finite(), Some(max), "{f}");
        }
        assert_eq!(
            Format::BF16.max_finite(),
            Some((2.0 - 2f64.powi(-7)) * 2f64.powi(127))
        );
        assert_eq!(Format::FP32.max_finite(), Some(f64::from(f32::MAX)));
    }

    #[test]
    fn e2m1_values_are_the_ocp_grid() {
        let pos: Vec<f64> = Format::E2M1
            .float_values()
            .unwrap()
            .into_iter()
            .filter(|v| *v >= 0.0)
            .collect();
        assert_eq!(pos, vec![0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]);
        // e4m3 has 2^8 codes, two NaNs and a negative zero: 253 distinct finite values.
        assert_eq!(Format::E4M3.float_values().unwrap().len(), 253);
        // e5m2: 256 codes minus 2*(4) inf/nan minus -0 = 247.
        assert_eq!(Format::E5M2.float_values().unwrap().len(), 247);
        assert_eq!(Format::E4M3.min_positive(), Some(2f64.powi(-9)));
    }

    #[test]
    fn names_round_trip() {
        for f in [
            Format::Int(2),
            Format::Int(16),
            Format::E4M3,
            Format::BF16,
            Format::FP16,
            Format::FP32,
            Format::Float { exp: 3, man: 4 },
        ] {
            assert_eq!(f.name().parse::<Format>().unwrap(), f);
        }
        assert_eq!("int33".parse::<Format>(), Err(FormatError::IntBits(33)));
        assert_eq!("e0m3".parse::<Format>(), Err(FormatError::ExpBits(0)));
        assert!("int".parse::<Format>().is_err());
        assert_eq!(Format::E4M3.bits(), 8);
        assert_eq!(Format::BF16.bits(), 16);
        assert_eq!(Format::Int(4).bits(), 4);
    }
}
