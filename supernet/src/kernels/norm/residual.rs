//! The residual add with its activation, and the gradient through an activation.

use rayon::prelude::*;

use super::{NONE, NormAct, RELU, RELU6, TARGET_CHUNK, activate, passes, zeros};

/// `act(a + b)` elementwise: a residual connection and the activation after it, in one pass.
///
/// # Shapes
///
/// `a`, `b`: the same length. Returns that length.
///
/// # Panics
///
/// If the lengths differ.
pub fn add_act(a: &[f32], b: &[f32], act: NormAct) -> Vec<f32> {
    assert_eq!(
        a.len(),
        b.len(),
        "add_act: inputs of {} and {} values",
        a.len(),
        b.len()
    );
    let mut y = zeros(a.len());
    y.par_chunks_mut(TARGET_CHUNK)
        .zip(a.par_chunks(TARGET_CHUNK).zip(b.par_chunks(TARGET_CHUNK)))
        .for_each(|(y, (a, b))| match act {
            NormAct::None => pulp::Arch::new().dispatch(AddAct::<NONE> { y, a, b }),
            NormAct::Relu => pulp::Arch::new().dispatch(AddAct::<RELU> { y, a, b }),
            NormAct::Relu6 => pulp::Arch::new().dispatch(AddAct::<RELU6> { y, a, b }),
        });
    y
}

/// The gradient through an activation, from its output `y`: `dy` where the activation
/// passes (`y > 0` for ReLU, `0 < y < 6` for ReLU6, everywhere for none), 0 elsewhere.
///
/// # Shapes
///
/// `y`, `dy`: the same length. Returns that length.
///
/// # Panics
///
/// If the lengths differ.
pub fn act_backward(y: &[f32], dy: &[f32], act: NormAct) -> Vec<f32> {
    assert_eq!(
        y.len(),
        dy.len(),
        "act_backward: {} outputs and {} gradients",
        y.len(),
        dy.len()
    );
    let mut dx = zeros(y.len());
    dx.par_chunks_mut(TARGET_CHUNK)
        .zip(y.par_chunks(TARGET_CHUNK).zip(dy.par_chunks(TARGET_CHUNK)))
        .for_each(|(dx, (y, dy))| match act {
            NormAct::None => dx.copy_from_slice(dy),
            NormAct::Relu => pulp::Arch::new().dispatch(ActBackward::<RELU> { dx, y, dy }),
            NormAct::Relu6 => pulp::Arch::new().dispatch(ActBackward::<RELU6> { dx, y, dy }),
        });
    dx
}

struct AddAct<'a, const A: u8> {
    y: &'a mut [f32],
    a: &'a [f32],
    b: &'a [f32],
}

impl<const A: u8> pulp::WithSimd for AddAct<'_, A> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for ((y, &a), &b) in self.y.iter_mut().zip(self.a).zip(self.b) {
            *y = activate::<A>(a + b);
        }
    }
}

struct ActBackward<'a, const A: u8> {
    dx: &'a mut [f32],
    y: &'a [f32],
    dy: &'a [f32],
}

impl<const A: u8> pulp::WithSimd for ActBackward<'_, A> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for ((dx, &y), &dy) in self.dx.iter_mut().zip(self.y).zip(self.dy) {
            *dx = if passes::<A>(y) { dy } else { 0.0 };
        }
    }
}
