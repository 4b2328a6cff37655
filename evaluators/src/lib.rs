//! Data sets, loaders and evaluation of sub-networks.
//!
//! - [`data`]: MNIST IDX and CIFAR-10 loaders, splits, normalization, augmentation, batching;
//! - [`accuracy`]: BN recalibration of a member, then its top-1 accuracy on held-out data;
//! - [`supernet_eval`]: [`SupernetEvaluator`], the one evaluator of a supernet member, used by
//!   search, export and correlate alike (it implements the search's `Evaluator`);
//! - [`sensitivity`]: the HAWQ-V3 baseline's layer sensitivities on a trained supernet.

pub mod accuracy;
pub mod data;
pub mod sensitivity;
pub mod supernet_eval;

pub use stats::{Accuracy, CONFIDENCE, Measured};

pub use accuracy::{
    EvalConfig, correct_per_image, evaluate_plan, evaluate_static, evaluate_with, recalibrate,
    recalibrate_and_evaluate, recalibrate_and_score,
};
pub use sensitivity::{HawqMeasurement, SensitivityError, hawq_sensitivity};
pub use supernet_eval::{SupernetEvaluator, parallel_workers};
