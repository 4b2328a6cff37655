//! Data sets, loaders and evaluation of sub-networks.
//!
//! - [`data`]: MNIST IDX and CIFAR-10 loaders, splits, normalization, augmentation, batching;
//! - [`accuracy`]: BN recalibration of a member, then its top-1 accuracy on held-out data.

pub mod accuracy;
pub mod data;

pub use accuracy::{
    Accuracy, CONFIDENCE, EvalConfig, Measured, correct_per_image, evaluate_plan, evaluate_static,
    recalibrate, recalibrate_and_evaluate, recalibrate_and_score,
};
