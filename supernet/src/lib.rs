//! Burn modules of the weight-sharing supernet.
//!
//! - [`quant`]: fake quantizers (integer and minifloat formats, straight-through gradients) and
//!   the codes of quantized tensors for export;
//! - [`layers`]: elastic layers (width, kernel size) that slice their full-size parameters in
//!   `forward` and can be extracted into static burn modules;
//! - [`net`]: the [`Supernet`] of a space (`forward(x, &arch, phase)`, `extract(&arch)`) and
//!   the extracted [`StaticNet`];
//! - [`deploy`]: the real quantized codes of a [`StaticNet`] in a safetensors file, and the
//!   network rebuilt from one;
//! - [`onnx`]: a [`StaticNet`] as an ONNX model with QuantizeLinear/DequantizeLinear nodes;
//! - [`Phase`]: train / recalibrate / evaluate, passed explicitly to every forward that keeps
//!   running state.

pub mod checkpoint;
pub mod deploy;
pub mod hessian;
pub mod int;
pub mod kernels;
pub mod layers;
pub mod mixture;
pub mod net;
pub mod onnx;
pub mod phase;
pub mod quant;
pub mod train;

pub use net::{StaticNet, Supernet, SupernetConfig};
pub use phase::Phase;
pub use train::{Choice, StepReport, TrainError, TrainState, Trainer};
