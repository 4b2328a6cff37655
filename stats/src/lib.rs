//! qnas statistics: what it takes to judge the supernet against stand-alone training. Binomial
//! confidence intervals of an accuracy (exact Clopper-Pearson and Wilson), rank agreement of two
//! scorings of the same architectures (Kendall's tau-b, Spearman's rho, top-k overlap), and the
//! pieces of a percentile bootstrap (a seeded, portable resampler, percentile intervals,
//! medians). No burn, no tensors: plain `f64` slices.
//!
//! The conventions follow scipy and numpy, and the tests hold the functions to numbers they give.
//!
//! ```
//! // 392 of 400 test images right: the exact 95% interval of the accuracy.
//! let ci = stats::clopper_pearson(392, 400, 0.95);
//! assert!(ci.contains(0.98) && ci.lo > 0.96 && ci.hi < 0.992);
//!
//! // Two scorings of the same five architectures agree on the order but for one swap.
//! let supernet = [0.91, 0.88, 0.93, 0.85, 0.90];
//! let standalone = [0.94, 0.92, 0.95, 0.90, 0.91];
//! let tau = stats::kendall_tau_b(&supernet, &standalone).unwrap();
//! assert!((tau - 0.8).abs() < 1e-12);
//!
//! // A bootstrap of the median of the supernet scores.
//! let mut resampler = stats::Resampler::new(7);
//! let medians: Vec<f64> = (0..200)
//!     .filter_map(|_| {
//!         let sample: Vec<f64> =
//!             resampler.indices(supernet.len()).into_iter().map(|i| supernet[i]).collect();
//!         stats::median(&sample)
//!     })
//!     .collect();
//! let ci = stats::percentile_interval(&medians, 0.95).unwrap();
//! assert!(ci.lo >= 0.85 && ci.hi <= 0.93);
//! ```

#![warn(missing_docs)]

mod accuracy;
mod bootstrap;
mod interval;
mod rank;

pub use accuracy::{Accuracy, CONFIDENCE, Measured};
pub use bootstrap::{Resampler, median, percentile_interval};
pub use interval::{Interval, MAX_EXACT_TRIALS, clopper_pearson, wilson};
pub use rank::{kendall_tau_b, ranks, spearman_rho, top_k_overlap};
