//! Burn modules of the weight-sharing supernet.
//!
//! - [`quant`]: fake quantizers (integer and minifloat formats, straight-through gradients) and
//!   the codes of quantized tensors for export;
//! - [`Phase`]: train / recalibrate / evaluate, passed explicitly to every forward that keeps
//!   running state.

pub mod phase;
pub mod quant;

pub use phase::Phase;
