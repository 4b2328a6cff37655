//! The accuracy of a classifier on a set of images: counts, the fraction and its exact interval,
//! and the form reports carry.

use serde::{Deserialize, Serialize};

use crate::{Interval, clopper_pearson};

/// Correct predictions out of a total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Correct top-1 predictions.
    pub correct: usize,
    /// Samples seen.
    pub total: usize,
}

impl Accuracy {
    /// Top-1 accuracy in `[0, 1]` (0 for no samples).
    pub fn top1(self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.correct as f64 / self.total as f64
        }
    }

    /// Adds another count.
    pub fn merge(self, o: Accuracy) -> Accuracy {
        Accuracy {
            correct: self.correct + o.correct,
            total: self.total + o.total,
        }
    }
}

/// Confidence of the interval every reported accuracy carries.
pub const CONFIDENCE: f64 = 0.95;

impl Accuracy {
    /// The exact (Clopper-Pearson) interval of the accuracy at [`CONFIDENCE`], from its counts.
    pub fn interval(self) -> Interval {
        clopper_pearson(self.correct as u64, self.total as u64, CONFIDENCE)
    }
}

/// A measured accuracy as reports carry it: the fraction, the counts it comes from and its 95%
/// exact (Clopper-Pearson) interval. The interval is always computed from the counts, also when
/// a report is read back (older reports have none).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawMeasured")]
pub struct Measured {
    /// Top-1 accuracy in `[0, 1]`.
    pub accuracy: f64,
    /// Correct predictions.
    pub correct: usize,
    /// Images.
    pub total: usize,
    /// 95% Clopper-Pearson interval of the accuracy.
    pub interval: Interval,
}

/// [`Measured`] as written, the interval optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeasured {
    accuracy: f64,
    correct: usize,
    total: usize,
    #[serde(default)]
    #[allow(dead_code)]
    interval: Option<Interval>,
}

impl From<RawMeasured> for Measured {
    fn from(r: RawMeasured) -> Self {
        let a = Accuracy {
            correct: r.correct,
            total: r.total,
        };
        Measured {
            accuracy: r.accuracy,
            correct: r.correct,
            total: r.total,
            interval: a.interval(),
        }
    }
}

impl From<Accuracy> for Measured {
    fn from(a: Accuracy) -> Self {
        Measured {
            accuracy: a.top1(),
            correct: a.correct,
            total: a.total,
            interval: a.interval(),
        }
    }
}
