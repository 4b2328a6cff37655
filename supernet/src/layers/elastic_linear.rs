//! Elastic linear layer: input and output features chosen per call.

use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::nn::Linear;
use burn::tensor::module::linear;
use burn::tensor::{Device, Tensor};
use spaces::Format;

use crate::Phase;
use crate::quant::{
    ActQuantizer, ActQuantizerConfig, Precision, WeightQuant, fake_quantize_weight,
};

/// Configuration to create an [elastic linear layer](ElasticLinear).
#[derive(Config, Debug)]
pub struct ElasticLinearConfig {
    /// Largest number of input features.
    pub max_in_features: usize,
    /// Largest number of output features.
    pub max_out_features: usize,
    /// Whether the layer has a bias.
    #[config(default = true)]
    pub bias: bool,
    /// Initializer of the full weight and bias.
    #[config(default = "Initializer::KaimingUniform{gain:0.5773502691896258, fan_out_only:false}")]
    pub initializer: Initializer,
    /// How weights are quantized: which floating-point formats are scaled, and each output
    /// feature's range.
    #[config(default = "WeightQuant::default()")]
    pub weight_quant: WeightQuant,
    /// The input activation quantizer.
    #[config(default = "ActQuantizerConfig::new()")]
    pub input_quant: ActQuantizerConfig,
}

/// A linear layer `y = x W + b` whose input and output widths are chosen per call: `forward`
/// uses the first input features (those of the input tensor) and the first output features of
/// the full weight. Weights (per output feature) and the input activation are fake-quantized
/// to the formats passed to `forward`.
///
/// Should be created with [`ElasticLinearConfig`].
#[derive(Module, Debug)]
pub struct ElasticLinear {
    /// Full weight in burn's `Linear` layout, shape `[max_in_features, max_out_features]`.
    pub weight: Param<Tensor<2>>,
    /// Full bias, shape `[max_out_features]`.
    pub bias: Option<Param<Tensor<1>>>,
    /// Quantizer of the input activation.
    pub input_quant: ActQuantizer,
    /// How weights are quantized.
    #[module(skip)]
    pub weight_quant: WeightQuant,
}

impl ElasticLinearConfig {
    /// Initializes a new [elastic linear layer](ElasticLinear).
    ///
    /// # Panics
    /// Panics if a size is zero.
    pub fn init(&self, device: &Device) -> ElasticLinear {
        assert!(
            self.max_in_features > 0 && self.max_out_features > 0,
            "feature counts must be positive"
        );
        let (d_in, d_out) = (self.max_in_features, self.max_out_features);
        let weight = self
            .initializer
            .init_with([d_in, d_out], Some(d_in), Some(d_out), device);
        let bias = self.bias.then(|| {
            self.initializer
                .init_with([d_out], Some(d_in), Some(d_out), device)
        });
        ElasticLinear {
            weight,
            bias,
            input_quant: self.input_quant.init(device),
            weight_quant: self.weight_quant,
        }
    }
}

impl ElasticLinear {
    /// Applies the layer with `out_features` outputs to `input`, whose last dimension selects
    /// the input features. The input is fake-quantized to `precision.act` (using `phase`), the
    /// sliced weight to `precision.weight`.
    ///
    /// # Shapes
    /// - `input`: `[batch_size, ..., in_features]`, `in_features <= max_in_features`
    /// - output: `[batch_size, ..., out_features]`
    ///
    /// # Panics
    /// Panics if the input has more features than the layer or `out_features` is zero or too
    /// large.
    pub fn forward<const D: usize>(
        &self,
        input: Tensor<D>,
        out_features: usize,
        precision: Precision,
        phase: Phase,
    ) -> Tensor<D> {
        let in_features = input.dims()[D - 1];
        let input = self.input_quant.forward(input, precision.act, phase);
        let weight = self.active_weight(in_features, out_features, precision.weight);
        linear(input, weight, self.active_bias(out_features))
    }

    /// The weight `forward` uses: the first `in_features` rows and `out_features` columns,
    /// fake-quantized per output feature.
    ///
    /// # Shapes
    /// - output: `[in_features, out_features]`
    pub fn active_weight(
        &self,
        in_features: usize,
        out_features: usize,
        format: Format,
    ) -> Tensor<2> {
        let [max_in, max_out] = self.weight.dims();
        assert!(
            (1..=max_in).contains(&in_features),
            "{in_features} input features for a layer of {max_in}"
        );
        assert!(
            (1..=max_out).contains(&out_features),
            "{out_features} output features for a layer of {max_out}"
        );
        let weight = self.weight.val().slice([0..in_features, 0..out_features]);
        fake_quantize_weight(weight, format, 1, self.weight_quant)
    }

    fn active_bias(&self, out_features: usize) -> Option<Tensor<1>> {
        self.bias.as_ref().map(|b| b.val().slice(0..out_features))
    }

    /// A static [`Linear`] with the weights (fake-quantized to `weight_format`, detached) and
    /// bias `forward` would use. Its forward equals this layer's forward with `precision.act` =
    /// fp32.
    pub fn extract(
        &self,
        in_features: usize,
        out_features: usize,
        weight_format: Format,
    ) -> Linear {
        let weight = self
            .active_weight(in_features, out_features, weight_format)
            .detach();
        Linear {
            weight: Param::from_tensor(weight),
            bias: self
                .active_bias(out_features)
                .map(|b| Param::from_tensor(b.detach())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::test_util::max_abs_diff;
    use crate::quant::test_util::{pseudo_random, values_of};

    #[test]
    fn elastic_forward_equals_extracted_and_a_direct_product() {
        let device = Device::flex();
        device.seed(1);
        let layer = ElasticLinearConfig::new(7, 5).init(&device);
        let w = values_of(layer.weight.val());
        let bias = values_of(layer.bias.as_ref().unwrap().val());
        for (d_in, d_out) in [(7, 5), (3, 2), (1, 5), (7, 1), (4, 4)] {
            let x = pseudo_random([3, d_in], 1.0, d_in as u64, &device);
            let y = layer.forward(x.clone(), d_out, Precision::FULL, Phase::Eval);
            let y_static = layer.extract(d_in, d_out, Format::FP32).forward(x.clone());
            assert!(max_abs_diff(y.clone(), y_static) <= 1e-5);
            let xv = values_of(x);
            let got = values_of(y);
            for b in 0..3 {
                for o in 0..d_out {
                    let want: f32 = bias[o]
                        + (0..d_in)
                            .map(|i| xv[b * d_in + i] * w[i * 5 + o])
                            .sum::<f32>();
                    assert!((got[b * d_out + o] - want).abs() <= 1e-5);
                }
            }
        }
        // Inputs of rank 3 (e.g. tokens) work too.
        let x = pseudo_random([2, 3, 6], 1.0, 9, &device);
        let y = layer.forward(x.clone(), 4, Precision::FULL, Phase::Eval);
        assert_eq!(y.dims(), [2, 3, 4]);
        let y_static = layer.extract(6, 4, Format::FP32).forward(x);
        assert!(max_abs_diff(y, y_static) <= 1e-5);
    }

    #[test]
    fn quantized_forward_equals_frozen_quantizer_then_extracted() {
        let device = Device::flex();
        let layer = ElasticLinearConfig::new(8, 6).init(&device);
        let x = pseudo_random([4, 8], 2.0, 2, &device);
        layer.forward(x.clone(), 6, Precision::FULL, Phase::Train);
        for precision in [
            Precision::new(Format::Int(4), Format::Int(8)),
            Precision::new(Format::E4M3, Format::E2M1),
            Precision::new(Format::Int(2), Format::FP16),
        ] {
            let xs = x.clone().slice([0..4, 0..5]);
            let y = layer.forward(xs.clone(), 3, precision, Phase::Eval);
            let frozen = layer.input_quant.frozen(precision.act);
            let y_static = layer
                .extract(5, 3, precision.weight)
                .forward(frozen.forward(xs));
            assert!(max_abs_diff(y, y_static) <= 1e-5, "{precision:?}");
        }
        // Weights are quantized per output feature (column): int2 gives codes in {-1, 0, 1}
        // and every column reaches ±scale.
        let w = values_of(layer.extract(8, 6, Format::Int(2)).weight.val());
        for o in 0..6 {
            let col: Vec<f32> = (0..8).map(|i| w[i * 6 + o]).collect();
            let s = col.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(col.iter().all(|&v| v == 0.0 || v.abs() == s), "{col:?}");
        }
    }

    #[test]
    fn gradients_reach_only_the_used_slice() {
        let device = Device::flex().autodiff();
        let layer = ElasticLinearConfig::new(4, 3).init(&device);
        let x = pseudo_random([2, 2], 1.0, 3, &device);
        let y = layer.forward(
            x,
            2,
            Precision::new(Format::Int(8), Format::Int(8)),
            Phase::Train,
        );
        let grads = y.sum().backward();
        let g = values_of(layer.weight.grad(&grads).unwrap());
        for i in 0..4 {
            for o in 0..3 {
                assert_eq!(g[i * 3 + o] != 0.0, i < 2 && o < 2, "{i} {o}");
            }
        }
        let gb = values_of(layer.bias.as_ref().unwrap().grad(&grads).unwrap());
        assert_eq!(gb, vec![2.0, 2.0, 0.0]);
    }
}
