//! The residual add with its activation, and the gradient through an activation.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::{NONE, NormAct, RELU, RELU6, TARGET_CHUNK, activate, passes};
use crate::kernels::{copied, par_chunks_written};

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
    let write = |i: usize, y: &mut [MaybeUninit<f32>]| {
        let a = &a[i * TARGET_CHUNK..][..y.len()];
        let b = &b[i * TARGET_CHUNK..][..y.len()];
        match act {
            NormAct::None => pulp::Arch::new().dispatch(AddAct::<NONE> { y, a, b }),
            NormAct::Relu => pulp::Arch::new().dispatch(AddAct::<RELU> { y, a, b }),
            NormAct::Relu6 => pulp::Arch::new().dispatch(AddAct::<RELU6> { y, a, b }),
        }
    };
    #[allow(unsafe_code)]
    // SAFETY: `AddAct` writes every value of its output (or panics).
    unsafe {
        par_chunks_written(a.len(), TARGET_CHUNK, write)
    }
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
    let mut dx = copied(dy);
    act_backward_in_place(y, &mut dx, act);
    dx
}

/// [`act_backward`] in place: `g` holds the output gradient and becomes the input gradient.
///
/// # Panics
///
/// If the lengths differ.
pub fn act_backward_in_place(y: &[f32], g: &mut [f32], act: NormAct) {
    assert_eq!(
        y.len(),
        g.len(),
        "act_backward: {} outputs and {} gradients",
        y.len(),
        g.len()
    );
    g.par_chunks_mut(TARGET_CHUNK)
        .zip(y.par_chunks(TARGET_CHUNK))
        .for_each(|(g, y)| match act {
            NormAct::None => {}
            NormAct::Relu => pulp::Arch::new().dispatch(ActBackward::<RELU> { g, y }),
            NormAct::Relu6 => pulp::Arch::new().dispatch(ActBackward::<RELU6> { g, y }),
        });
}

/// `y = act(a + b)`: writes every value of `y`.
struct AddAct<'a, const A: u8> {
    y: &'a mut [MaybeUninit<f32>],
    a: &'a [f32],
    b: &'a [f32],
}

impl<const A: u8> pulp::WithSimd for AddAct<'_, A> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        assert!(self.a.len() == self.y.len() && self.b.len() == self.y.len());
        for ((y, &a), &b) in self.y.iter_mut().zip(self.a).zip(self.b) {
            y.write(activate::<A>(a + b));
        }
    }
}

struct ActBackward<'a, const A: u8> {
    /// `dy` on entry, `dx` on return.
    g: &'a mut [f32],
    y: &'a [f32],
}

impl<const A: u8> pulp::WithSimd for ActBackward<'_, A> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for (g, &y) in self.g.iter_mut().zip(self.y) {
            *g = if passes::<A>(y) { *g } else { 0.0 };
        }
    }
}
