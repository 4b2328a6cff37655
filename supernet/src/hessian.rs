//! HAWQ-V3's layer sensitivity (Yao et al., 2021): Hutchinson's estimate of the trace of each
//! weight tensor's block of the loss Hessian, and the squared quantization error of the
//! weights at a format, whose product ranks how much quantizing the layer costs.
//!
//! burn has no second derivatives, so each Hessian-vector product is a central difference of
//! gradients: `Hv ≈ (∇L(w + εv) − ∇L(w − εv)) / 2ε`, exact for a quadratic loss and with an
//! error of order ε² otherwise. Each layer is probed on its own (`v` Rademacher over its
//! weights, zero elsewhere), so that its estimate `vᵀH_ll v` carries no cross terms with other
//! layers, whose variance would swamp the small blocks (two backward passes per layer and
//! vector). The step is relative, `ε_l = relative_step · rms(w_l)`.
//!
//! The loss is the cross-entropy of a fixed batch through the network as it is evaluated
//! (batch norms with their running statistics, as PyHessian's `model.eval()`), on an autodiff
//! device: a deterministic function of the weights.

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};
use spaces::Format;
use spaces::rng::Rng;

use crate::net::{LayerAt, StaticNet};
use crate::quant::{WeightQuant, fake_quantize_weight};

/// How the traces are estimated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HessianConfig {
    /// Rademacher vectors per layer (each costs two backward passes).
    pub samples: usize,
    /// Seed of the vectors.
    pub seed: u64,
    /// The finite-difference step relative to each layer's root-mean-square weight.
    pub relative_step: f64,
}

impl Default for HessianConfig {
    fn default() -> Self {
        HessianConfig {
            samples: 32,
            seed: 0,
            relative_step: 1e-2,
        }
    }
}

/// The estimate for one weight tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerTrace {
    /// Layer name in the plan (`stem`, `s0.b1.conv2`, `s0.b0.shortcut`, `head.fc`).
    pub name: String,
    /// Weights in the tensor.
    pub weights: usize,
    /// The estimated trace of the tensor's Hessian block.
    pub trace: f64,
    /// The standard error of the estimate (over the vectors).
    pub std_error: f64,
}

/// A weight tensor of a static network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WeightAt {
    Conv(LayerAt),
    Fc,
}

/// Every weight tensor of `net`, in traversal order, with its layer name.
fn weight_tensors(net: &StaticNet) -> Vec<(WeightAt, String)> {
    let plan = &net.plan;
    let mut out = vec![(WeightAt::Conv(LayerAt::Stem), plan.stem.name.clone())];
    for (i, b) in plan.blocks.iter().enumerate() {
        for (j, c) in b.convs.iter().enumerate() {
            out.push((
                WeightAt::Conv(LayerAt::Main { block: i, conv: j }),
                c.name.clone(),
            ));
        }
        if let Some(s) = &b.shortcut {
            out.push((
                WeightAt::Conv(LayerAt::Shortcut { block: i }),
                s.name.clone(),
            ));
        }
    }
    if let Some(h) = &plan.head_conv {
        out.push((WeightAt::Conv(LayerAt::Head), h.name.clone()));
    }
    out.push((WeightAt::Fc, plan.fc.name.clone()));
    out
}

/// The values of a tensor as `f32`s.
fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default()
}

/// The weights of `at`, as `(values, shape)`.
fn weight_of(net: &StaticNet, at: WeightAt) -> (Vec<f32>, Vec<usize>) {
    match at {
        WeightAt::Conv(l) => {
            let w = net.layer_module(l).conv.weight.val();
            let shape = w.dims().to_vec();
            (values(w), shape)
        }
        WeightAt::Fc => {
            let w = net.fc.weight.val();
            let shape = w.dims().to_vec();
            (values(w), shape)
        }
    }
}

/// `net` with the weights of each tensor in `tensors` replaced by `weights` (same order), as
/// leaves on `device` that require gradients.
fn with_weights(
    net: &StaticNet,
    tensors: &[(WeightAt, String)],
    weights: &[Vec<f32>],
    device: &Device,
) -> StaticNet {
    let mut out = net.clone();
    for ((at, _), w) in tensors.iter().zip(weights) {
        match *at {
            WeightAt::Conv(l) => {
                let m = out.layer_module_mut(l);
                let old = m.conv.weight.val();
                let shape: [usize; 4] = old.dims();
                let t = Tensor::<4>::from_data(TensorData::new(w.clone(), shape), device);
                m.conv.weight = Param::from_tensor(t);
            }
            WeightAt::Fc => {
                let old = out.fc.weight.val();
                let shape: [usize; 2] = old.dims();
                let t = Tensor::<2>::from_data(TensorData::new(w.clone(), shape), device);
                out.fc.weight = Param::from_tensor(t);
            }
        }
    }
    out
}

/// The gradient of the batch's cross-entropy with respect to each tensor of `tensors`.
fn gradients(
    net: &StaticNet,
    tensors: &[(WeightAt, String)],
    images: &Tensor<4>,
    labels: &Tensor<1, Int>,
) -> Vec<Vec<f32>> {
    let ce = burn::nn::loss::CrossEntropyLossConfig::new().init(&images.device());
    let loss = ce.forward(net.forward(images.clone()), labels.clone());
    let grads = loss.backward();
    tensors
        .iter()
        .map(|(at, _)| {
            let g = match *at {
                WeightAt::Conv(l) => net
                    .layer_module(l)
                    .conv
                    .weight
                    .val()
                    .grad(&grads)
                    .map(values),
                WeightAt::Fc => net.fc.weight.val().grad(&grads).map(values),
            };
            g.unwrap_or_default()
        })
        .collect()
}

/// Hutchinson's estimate of the trace of every weight tensor's Hessian block (see the module
/// docs), on `images`' device, which must be an autodiff device; `net` is copied there in
/// evaluation mode.
///
/// # Shapes
/// - `images`: `[batch, channels, height, width]`, `labels`: `[batch]`
pub fn weight_traces(
    net: &StaticNet,
    images: Tensor<4>,
    labels: Tensor<1, Int>,
    cfg: &HessianConfig,
) -> Vec<LayerTrace> {
    let device = images.device();
    let net = &net.valid().fork(&device);
    let labels = labels.to_device(&images.device());
    let tensors = weight_tensors(net);
    let weights: Vec<Vec<f32>> = tensors
        .iter()
        .map(|(at, _)| weight_of(net, *at).0)
        .collect();
    let steps: Vec<f64> = weights
        .iter()
        .map(|w| {
            let rms = (w.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>()
                / w.len().max(1) as f64)
                .sqrt();
            cfg.relative_step * if rms > 0.0 { rms } else { 1.0 }
        })
        .collect();
    let mut rng = Rng::new(cfg.seed);
    let mut estimates: Vec<Vec<f64>> = vec![Vec::with_capacity(cfg.samples); tensors.len()];
    for _ in 0..cfg.samples.max(1) {
        for l in 0..tensors.len() {
            let v: Vec<f32> = weights[l]
                .iter()
                .map(|_| if rng.chance(0.5) { 1.0 } else { -1.0 })
                .collect();
            let e = steps[l];
            let shifted = |sign: f64| -> Vec<Vec<f32>> {
                let mut w = weights.clone();
                for (x, &s) in w[l].iter_mut().zip(&v) {
                    *x = (f64::from(*x) + sign * e * f64::from(s)) as f32;
                }
                w
            };
            let one = std::slice::from_ref(&tensors[l]);
            let plus = gradients(
                &with_weights(net, one, &shifted(1.0)[l..=l], &device),
                one,
                &images,
                &labels,
            );
            let minus = gradients(
                &with_weights(net, one, &shifted(-1.0)[l..=l], &device),
                one,
                &images,
                &labels,
            );
            let dot: f64 = plus[0]
                .iter()
                .zip(&minus[0])
                .zip(&v)
                .map(|((&p, &m), &s)| (f64::from(p) - f64::from(m)) * f64::from(s))
                .sum();
            estimates[l].push(dot / (2.0 * e));
        }
    }
    tensors
        .into_iter()
        .zip(weights)
        .zip(estimates)
        .map(|(((_, name), w), est)| {
            let n = est.len() as f64;
            let mean = est.iter().sum::<f64>() / n;
            let var = if est.len() > 1 {
                est.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / (n - 1.0)
            } else {
                0.0
            };
            LayerTrace {
                name,
                weights: w.len(),
                trace: mean,
                std_error: (var / n).sqrt(),
            }
        })
        .collect()
}

/// `‖W − Q(W)‖²` of the weights of layer `name` of `net` quantized to `format` as the network's
/// weight quantizer does (per output channel, `quant`'s range rule); `None` for a layer the
/// network does not have.
pub fn quantization_error(
    net: &StaticNet,
    name: &str,
    format: Format,
    quant: WeightQuant,
) -> Option<f64> {
    let (at, _) = weight_tensors(net).into_iter().find(|(_, n)| n == name)?;
    let diff = |w: Vec<f32>, q: Vec<f32>| -> f64 {
        w.iter()
            .zip(&q)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum()
    };
    Some(match at {
        WeightAt::Conv(l) => {
            let w = net.layer_module(l).conv.weight.val().detach();
            let q = fake_quantize_weight(w.clone(), format, 0, quant);
            diff(values(w), values(q))
        }
        WeightAt::Fc => {
            let w = net.fc.weight.val().detach();
            let q = fake_quantize_weight(w.clone(), format, 1, quant);
            diff(values(w), values(q))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use spaces::Space;

    const SPACE: &str = r#"(
        version: 1,
        input: (channels: 1, height: 8, width: 8),
        classes: 4,
        stem: (width: [4]),
        stages: [(block: ResidualBasic, depth: [1], width: [8], stride: 2)],
        quantization: (weights: [Int(4), Fp32], activations: [Int(4), Fp32], tie: Block),
    )"#;

    fn net_and_batch(device: &Device, batch: usize) -> (StaticNet, Tensor<4>, Tensor<1, Int>) {
        let space = Space::parse(SPACE, "t.ron", "t").unwrap();
        let net = crate::train::seeded(device, 3, || crate::Supernet::new(&space, device));
        let net = net.extract(&space.largest()).unwrap();
        let mut rng = Rng::new(5);
        let x: Vec<f32> = (0..batch * 64).map(|_| rng.normal() as f32).collect();
        let y: Vec<i64> = (0..batch as i64).map(|i| (i + 1) % 4).collect();
        let images = Tensor::<4>::from_data(TensorData::new(x, [batch, 1, 8, 8]), device);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(y, [batch]), device);
        (net, images, labels)
    }

    /// The exact trace of the classifier's block, for one image: the logits are `z = f W + b`
    /// (`f` the pooled features, `W` `[in, out]`), so the block is `(f fᵀ) ⊗ (diag(p) − p pᵀ)`
    /// and its trace `|f|² (1 − |p|²)`, with `p` the softmax. `f` is read off the gradient,
    /// `∂L/∂W = f ⊗ (p − y)`, at the label's column, where `p − y` is far from 0.
    #[test]
    fn the_classifier_trace_matches_its_closed_form() {
        let device = Device::flex().autodiff();
        let (net, images, labels) = net_and_batch(&device, 1);
        let net = net.valid().fork(&device);
        let tensors = weight_tensors(&net);
        let (w, _) = weight_of(&net, WeightAt::Fc);
        let g = gradients(
            &with_weights(
                &net,
                &tensors,
                &tensors
                    .iter()
                    .map(|(at, _)| weight_of(&net, *at).0)
                    .collect::<Vec<_>>(),
                &device,
            ),
            &tensors,
            &images,
            &labels,
        );
        let p = values(burn::tensor::activation::softmax(
            net.forward(images.clone()).detach(),
            1,
        ));
        let classes = p.len();
        let label = 1; // (0 + 1) % 4
        let features = w.len() / classes;
        let fc_grad = g.last().unwrap();
        let f: Vec<f64> = (0..features)
            .map(|j| f64::from(fc_grad[j * classes + label]) / (f64::from(p[label]) - 1.0))
            .collect();
        let ff: f64 = f.iter().map(|x| x * x).sum();
        let pp: f64 = p.iter().map(|&x| f64::from(x).powi(2)).sum();
        let exact = ff * (1.0 - pp);
        assert!(exact > 0.0);
        let traces = weight_traces(
            &net,
            images,
            labels,
            &HessianConfig {
                samples: 96,
                seed: 1,
                relative_step: 1e-2,
            },
        );
        let names: Vec<&str> = traces.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "stem",
                "s0.b0.conv1",
                "s0.b0.conv2",
                "s0.b0.shortcut",
                "head.fc"
            ]
        );
        let fc = traces.last().unwrap();
        assert!(
            (fc.trace - exact).abs() <= 3.0 * fc.std_error + 0.02 * exact,
            "fc trace {} ± {} against the exact {exact}",
            fc.trace,
            fc.std_error
        );
        assert!(traces.iter().all(|t| t.trace.is_finite() && t.weights > 0));
    }

    #[test]
    fn quantization_errors_fall_with_the_bits_and_vanish_at_fp32() {
        let device = Device::flex();
        let (net, _, _) = net_and_batch(&device, 2);
        let quant = WeightQuant::new(
            crate::quant::FloatScaling::default(),
            spaces::WeightRange::Max,
        );
        for name in ["stem", "s0.b0.conv1", "head.fc"] {
            let e = |f| quantization_error(&net, name, f, quant).unwrap();
            assert!(e(Format::Int(2)) > e(Format::Int(4)));
            assert!(e(Format::Int(4)) > e(Format::Int(8)));
            assert!(e(Format::Int(8)) > 0.0);
            assert_eq!(e(Format::FP32), 0.0);
        }
        assert_eq!(
            quantization_error(&net, "nope", Format::Int(4), quant),
            None
        );
    }
}
