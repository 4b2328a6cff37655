//! The HAWQ-V3 baseline's settings of a space file's `search` section (`search: (strategy:
//! Hawq, hawq: (...))`): how the Hessian traces that rank the layers' sensitivity are
//! estimated. The estimate itself is the supernet crate's, the bit allocation the search
//! crate's; these are the settings as a user writes them, validated with located errors.

use serde::{Deserialize, Serialize};

use crate::error::Problem;
use crate::locate::FieldPath;

/// `search.hawq`: the Hutchinson estimate of each layer's Hessian trace. Every field has a
/// default; unknown fields are errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HawqSettings {
    /// Random (Rademacher) vectors of Hutchinson's estimator (≥ 1). Default 32.
    #[serde(default = "default_samples")]
    pub samples: u32,
    /// Training images the loss (and so the Hessian) is taken over (≥ 1). Default 128.
    #[serde(default = "default_images")]
    pub images: u32,
}

fn default_samples() -> u32 {
    32
}
fn default_images() -> u32 {
    128
}

impl Default for HawqSettings {
    fn default() -> Self {
        HawqSettings {
            samples: default_samples(),
            images: default_images(),
        }
    }
}

/// Checks `search.hawq`, reporting each problem at its field.
pub(crate) fn check_hawq(h: &HawqSettings, p: &FieldPath, problems: &mut Vec<Problem>) {
    let p = p.field("hawq");
    if h.samples == 0 {
        problems.push(
            Problem::new(p.field("samples"), "0 random vectors")
                .help("expected at least 1, e.g. 32"),
        );
    }
    if h.images == 0 {
        problems.push(
            Problem::new(p.field("images"), "0 images").help("expected at least 1, e.g. 128"),
        );
    }
}
