//! Helpers shared by the supernet's integration tests.
#![allow(dead_code)]

use burn::tensor::{Device, Distribution, Tensor};
use spaces::Space;

/// A batch of standard-normal images of the space's input shape.
pub fn input(space: &Space, batch: usize, device: &Device) -> Tensor<4> {
    let i = space.input;
    Tensor::random(
        [
            batch,
            i.channels as usize,
            i.height as usize,
            i.width as usize,
        ],
        Distribution::Normal(0.0, 1.0),
        device,
    )
}

/// The largest absolute difference of two logit tensors.
pub fn max_abs_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}
