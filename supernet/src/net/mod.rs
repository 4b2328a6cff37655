//! The supernet: every layer of a space at its largest size, run for any member with
//! `forward(x, &arch, phase)`, and cut out as a static network with `extract(&arch)`.
//!
//! Both networks follow the [`Plan`] that `spaces` resolves for an arch, through one traversal
//! ([`run_plan`]), so they cannot disagree on the wiring (pooling, strides, residuals,
//! activations); they differ only in the layers they call, which the traversal addresses by
//! their index in the plan ([`LayerAt`]).
//!
//! - `supernet.rs`: [`Supernet`] (construction, forward, extraction, recalibration);
//! - `static_net.rs`: [`StaticNet`], and the one builder of a static network from a plan;
//! - `traversal.rs`: [`run_plan`] and the [`PlanLayers`] it calls;
//! - `ids.rs`: [`StaticNet::with_stable_ids`];
//! - `signed.rs`: which activation quantizers are signed.
//!
//! The conv-BN layer pair and its static twin are in [`crate::layers::conv_bn`].
//!
//! [`Plan`]: spaces::plan::Plan

mod ids;
mod signed;
mod static_net;
mod supernet;
mod traversal;

pub use self::supernet::{SuperBlock, Supernet, SupernetConfig};
pub use crate::layers::conv_bn::{ConvBn, ConvBnParts, StaticConvBn, SuperConv};
pub use static_net::{StaticBlock, StaticNet};
pub use traversal::{LayerAt, PlanLayers, run_plan};
pub(crate) use traversal::{block_pool, stem_pool};
