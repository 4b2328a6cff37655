//! Burn modules of the weight-sharing supernet.
//!
//! - [`quant`]: fake quantizers (integer and minifloat formats, straight-through gradients) and
//!   the codes of quantized tensors for export;
//! - [`layers`]: elastic layers (width, kernel size) that slice their full-size parameters in
//!   `forward` and can be extracted into static burn modules;
//! - [`Phase`]: train / recalibrate / evaluate, passed explicitly to every forward that keeps
//!   running state.

pub mod layers;
pub mod phase;
pub mod quant;

pub use phase::Phase;
