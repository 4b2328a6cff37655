//! One evaluated member ([`Row`]), the front of a set of rows, the uniform-precision
//! baselines a space allows, and the CSV form of rows.

use serde::{Deserialize, Serialize};
use spaces::{Arch, Cost, Format, Space};
use stats::{Accuracy, Interval};

use crate::origin::{BaselineSize, Origin};
use crate::pareto::{Point, pareto_front};

/// One evaluated member.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Where it came from (written as its text form: `nsga2`, `baseline int8 largest`, ...).
    pub origin: Origin,
    /// The member.
    pub arch: Arch,
    /// Validation accuracy.
    pub accuracy: f64,
    /// BitOps.
    pub bitops: u64,
    /// MACs.
    pub macs: u64,
    /// Parameters.
    pub params: u64,
    /// Weight memory in bits.
    pub weight_bits: u64,
    /// Validation images the accuracy was measured on (0 when unknown: a search saved before
    /// intervals were recorded, or a member not measured yet).
    #[serde(default)]
    pub samples: usize,
    /// 95% Clopper-Pearson interval of the accuracy (from `samples`).
    #[serde(default)]
    pub interval: Option<Interval>,
}

impl Row {
    /// The row of `arch` with its costs and, when measured, its accuracy and interval (an
    /// unmeasured member's accuracy is NaN).
    pub fn new(origin: Origin, arch: Arch, cost: &Cost, acc: Option<Accuracy>) -> Row {
        Row {
            origin,
            arch,
            accuracy: acc.map_or(f64::NAN, Accuracy::top1),
            bitops: cost.bitops,
            macs: cost.macs,
            params: cost.params,
            weight_bits: cost.weight_bits,
            samples: acc.map_or(0, |a| a.total),
            interval: acc.map(Accuracy::interval),
        }
    }
}

/// The non-dominated rows (accuracy up, BitOps down), cheapest first.
pub fn front_of(rows: &[Row]) -> Vec<Row> {
    let points: Vec<Point> = rows
        .iter()
        .map(|r| Point::new(r.accuracy, r.bitops))
        .collect();
    pareto_front(&points)
        .into_iter()
        .map(|i| rows[i].clone())
        .collect()
}

/// For each member of `front` (cheapest first), whether its accuracy interval overlaps the
/// interval of a cheaper member of the front: its gain over that member is within noise.
pub fn overlaps_cheaper(front: &[Row]) -> Vec<bool> {
    front
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.interval.is_some_and(|iv| {
                front[..i]
                    .iter()
                    .filter(|c| c.bitops < r.bitops)
                    .filter_map(|c| c.interval)
                    .any(|c| c.overlaps(&iv))
            })
        })
        .collect()
}

/// The uniform-precision members a space allows: all-int8, all-int4, all-e4m3, all-e2m1,
/// all-bf16, all-fp16 and fp32, at the largest and the smallest architecture.
pub fn baselines(space: &Space) -> Vec<(Origin, Arch)> {
    let mut out = Vec::new();
    for (size, arch) in [
        (BaselineSize::Largest, space.largest()),
        (BaselineSize::Smallest, space.smallest()),
    ] {
        for f in [
            Format::Int(8),
            Format::Int(4),
            Format::E4M3,
            Format::E2M1,
            Format::BF16,
            Format::FP16,
            Format::FP32,
        ] {
            if let Some(a) = space.with_uniform_formats(&arch, f, f) {
                out.push((Origin::Baseline { format: f, size }, a));
            }
        }
    }
    out
}

fn csv_escape(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The rows as CSV, one line per row (`evaluated.csv`, `pareto.csv`).
pub fn rows_csv(rows: &[Row]) -> String {
    let mut out = String::from(
        "origin,accuracy,bitops,macs,params,weight_bits,accuracy_lo,accuracy_hi,validation_images,arch\n",
    );
    for r in rows {
        let (lo, hi) = r.interval.map_or((f64::NAN, f64::NAN), |i| (i.lo, i.hi));
        out += &format!(
            "{},{:.6},{},{},{},{},{:.6},{:.6},{},{}\n",
            csv_escape(&r.origin.to_string()),
            r.accuracy,
            r.bitops,
            r.macs,
            r.params,
            r.weight_bits,
            lo,
            hi,
            r.samples,
            csv_escape(&r.arch.key())
        );
    }
    out
}
