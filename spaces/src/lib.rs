//! qnas search spaces: the RON schema and its validation with line:column diagnostics, the
//! [`Arch`] (one point: architecture choices plus a number format per decision), sampling,
//! mutation, crossover and enumeration, and the analytic cost model (MACs, params, BitOps,
//! memory). No tensors here.
//!
//! Loading never panics: `tests/fuzz.rs` feeds the loaders seeded mutations of the presets and
//! of `tests/malformed/` (5,000 cases in `cargo test`) and renders every error. A longer
//! campaign: `QNAS_FUZZ_CASES=200000 cargo test --release -p qnas-spaces --test fuzz`.
//!
//! ```
//! let src = r#"(
//!     version: 1,
//!     input: (channels: 1, height: 28, width: 28),
//!     classes: 10,
//!     stem: (width: [8, 16]),
//!     stages: [(block: ResidualBasic, depth: [1, 2], width: [16, 32], stride: 2)],
//!     quantization: (weights: [Int(4), Int(8)], activations: [Int(4), Int(8)], tie: Block),
//! )"#;
//! let space = spaces::Space::parse(src, "tiny.ron", "tiny").unwrap();
//! let arch = space.largest();
//! let cost = space.cost(&arch).unwrap();
//! assert!(cost.bitops > 0);
//! ```

pub mod arch;
pub mod cost;
pub mod draw;
pub mod encode;
pub mod error;
pub mod fliqs;
pub mod format;
pub mod hawq;
pub mod locate;
pub mod member;
pub mod plan;
pub mod raw;
pub mod rng;
pub mod run;
pub mod source;
pub mod space;
mod validate;

pub use arch::{
    Arch, ArchError, BlockArch, FormatPair, HeadArch, PoolingArch, StageArch, StemArch,
};
pub use cost::{Cost, LayerCost};
pub use encode::{Decision, DecisionKind, EncodingError, SpaceSize, TooLarge};
pub use error::{
    ErrorRecord, FieldError, Problem, SpaceError, SyntaxError, decode_source, read_source,
};
pub use fliqs::{FliqsBaseline, FliqsScope, FliqsSettings, RewardKind};
pub use format::{Format, FormatError, RawFormat};
pub use hawq::HawqSettings;
pub use locate::{FieldPath, Locator};
pub use plan::{Act, BlockPlan, ConvLayer, LinearLayer, Plan};
pub use raw::{ActivationRange, BlockType, LayerRef, PoolOp, RawSpace, TieMode, WeightRange};
pub use rng::Rng;
pub use run::{
    DEVICE_BACKENDS, DataConfig, DataKind, DeviceName, MemberLoss, MixtureConfig, Optimizer,
    RandomDraw, Sampling, Schedule, SearchConfig, SearchStrategy, SmallestFormats, TrainConfig,
    parse_devices,
};
pub use source::Excerpt;
pub use space::{Space, Stage};
