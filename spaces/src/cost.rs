//! The analytic cost model: pure functions of (space, arch).
//!
//! Definitions (batch 1):
//! - **MACs**: multiply-accumulates of every conv (`out_h * out_w * out_c * in_c / groups * k^2`)
//!   and of the classifier (`in * out`). Batch norm, activations, pooling and additions are not
//!   counted.
//! - **params**: conv weights, batch-norm scale and shift (2 per channel), classifier weights and
//!   bias. Running statistics are buffers, not parameters (as in PyTorch).
//! - **BitOps** = Σ over conv and linear layers of MACs × weight bits × activation bits, where
//!   the activation format is that of the layer's input and a float format counts its total
//!   width (fp32 = 32, bf16 = 16, e4m3 = 8).
//! - **weight memory**: each layer's weights at its weight format, plus batch-norm parameters
//!   and the classifier bias at 32 bits.
//! - **peak activation memory**: the largest, over layers, of the bits live while the layer
//!   runs: its input at its activation format, its output at the activation format of the next
//!   layer (32 bits for the logits), and, inside a residual block, the block input held for the
//!   shortcut at the block's first layer's activation format.
//!
//! A figure that does not fit in 64 bits (a space's sizes are limited only by their types)
//! saturates at `u64::MAX` rather than wrapping.

use serde::Serialize;

use crate::arch::{Arch, ArchError};
use crate::plan::{ConvLayer, Plan};
use crate::space::Space;

/// Cost of one layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LayerCost {
    /// Layer name.
    pub name: String,
    /// Multiply-accumulates.
    pub macs: u64,
    /// Parameters.
    pub params: u64,
    /// MACs × weight bits × activation bits.
    pub bitops: u64,
    /// Weight bits.
    pub weight_bits: u64,
    /// Weight format.
    pub weights: String,
    /// Activation format.
    pub activations: String,
}

/// Cost of a whole arch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Cost {
    /// Multiply-accumulates.
    pub macs: u64,
    /// Parameters.
    pub params: u64,
    /// BitOps.
    pub bitops: u64,
    /// Weight memory in bits.
    pub weight_bits: u64,
    /// Peak activation memory in bits.
    pub peak_activation_bits: u64,
}

/// Per-layer costs of a plan, in execution order.
pub fn layer_costs(plan: &Plan) -> Vec<LayerCost> {
    let conv_cost = |c: &ConvLayer| {
        let k2 = u64::from(c.kernel) * u64::from(c.kernel);
        let weights = mul(&[
            c.out_channels.into(),
            (c.in_channels / c.groups.max(1)).into(),
            k2,
        ]);
        let macs = mul(&[c.out_size.0.into(), c.out_size.1.into(), weights]);
        let bn = 2 * u64::from(c.out_channels);
        let (wb, ab) = (
            u64::from(c.formats.weights.bits()),
            u64::from(c.formats.activations.bits()),
        );
        LayerCost {
            name: c.name.clone(),
            macs,
            params: weights.saturating_add(bn),
            bitops: mul(&[macs, wb, ab]),
            weight_bits: mul(&[weights, wb]).saturating_add(bn * 32),
            weights: c.formats.weights.to_string(),
            activations: c.formats.activations.to_string(),
        }
    };
    let mut out: Vec<LayerCost> = plan.convs().map(conv_cost).collect();
    let fc = &plan.fc;
    let weights = u64::from(fc.in_features) * u64::from(fc.out_features);
    let (wb, ab) = (
        u64::from(fc.formats.weights.bits()),
        u64::from(fc.formats.activations.bits()),
    );
    out.push(LayerCost {
        name: fc.name.clone(),
        macs: weights,
        params: weights + u64::from(fc.out_features),
        bitops: mul(&[weights, wb, ab]),
        weight_bits: mul(&[weights, wb]).saturating_add(u64::from(fc.out_features) * 32),
        weights: fc.formats.weights.to_string(),
        activations: fc.formats.activations.to_string(),
    });
    out
}

/// Peak activation memory of a plan, in bits (see the module docs).
pub fn peak_activation_bits(plan: &Plan) -> u64 {
    let elems = |c: u32, hw: (u32, u32)| mul(&[c.into(), hw.0.into(), hw.1.into()]);
    // (input bits, output elements, held bits) per layer in execution order; output bits are
    // priced at the next layer's activation format
    let mut steps: Vec<(u64, u64, u64)> = Vec::new();
    let mut next_bits: Vec<u64> = Vec::new();
    let push =
        |steps: &mut Vec<(u64, u64, u64)>, next_bits: &mut Vec<u64>, c: &ConvLayer, held: u64| {
            let ab = u64::from(c.formats.activations.bits());
            steps.push((
                mul(&[elems(c.in_channels, c.in_size), ab]),
                elems(c.out_channels, c.out_size),
                held,
            ));
            next_bits.push(ab);
        };
    push(&mut steps, &mut next_bits, &plan.stem, 0);
    for b in &plan.blocks {
        let first = &b.convs[0];
        let held = if b.residual {
            mul(&[
                elems(first.in_channels, first.in_size),
                first.formats.activations.bits().into(),
            ])
        } else {
            0
        };
        for (i, c) in b.convs.iter().enumerate() {
            push(&mut steps, &mut next_bits, c, if i == 0 { 0 } else { held });
        }
        if let Some(s) = &b.shortcut {
            push(&mut steps, &mut next_bits, s, 0);
        }
    }
    if let Some(h) = &plan.head_conv {
        push(&mut steps, &mut next_bits, h, 0);
    }
    let fc = &plan.fc;
    let fc_ab = u64::from(fc.formats.activations.bits());
    steps.push((
        u64::from(fc.in_features) * fc_ab,
        u64::from(fc.out_features),
        0,
    ));
    next_bits.push(fc_ab);
    next_bits.push(32);
    steps
        .iter()
        .enumerate()
        .map(|(i, (input, out_elems, held))| {
            sum([*input, mul(&[*out_elems, next_bits[i + 1]]), *held])
        })
        .max()
        .unwrap_or(0)
}

/// The product of `factors`, `u64::MAX` when it does not fit (a space's sizes are limited
/// only by their types, so absurd ones saturate instead of wrapping).
fn mul(factors: &[u64]) -> u64 {
    factors.iter().fold(1, |p: u64, f| p.saturating_mul(*f))
}

/// The sum of `terms`, `u64::MAX` when it does not fit.
fn sum(terms: impl IntoIterator<Item = u64>) -> u64 {
    terms.into_iter().fold(0, u64::saturating_add)
}

/// Total cost of a plan.
pub fn plan_cost(plan: &Plan) -> Cost {
    let layers = layer_costs(plan);
    Cost {
        macs: sum(layers.iter().map(|l| l.macs)),
        params: sum(layers.iter().map(|l| l.params)),
        bitops: sum(layers.iter().map(|l| l.bitops)),
        weight_bits: sum(layers.iter().map(|l| l.weight_bits)),
        peak_activation_bits: peak_activation_bits(plan),
    }
}

impl Space {
    /// The cost of an arch (validated first).
    pub fn cost(&self, arch: &Arch) -> Result<Cost, ArchError> {
        Ok(plan_cost(&self.plan(arch)?))
    }
}
