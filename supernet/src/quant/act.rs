//! Activation fake quantization: one [`ActQuantizer`] per layer input, with a per-tensor scale
//! chosen by an [`ActScaleMethod`].
//!
//! # State
//! - [`ActScaleMethod::RunningMax`] and [`ActScaleMethod::Percentile`] keep a single running
//!   *range* per layer (the maximum or a percentile of `|x|`, in real units). The range does not
//!   depend on the format: the scale for a format is `range / grid_max(format)`, computed in
//!   every forward pass. In [`Phase::Train`] and [`Phase::Recalibrate`] the current batch's range
//!   is used and blended into the running range; in [`Phase::Eval`] the running range is used.
//!   The running range is a [`RunningState`] of the module (saved with it), observed in every
//!   training pass whatever format that pass uses, and never tied to an architecture.
//! - [`ActScaleMethod::Lsq`] learns one step per candidate format (a [`Param`] of shape
//!   `[n_formats]`), as in LSQ (Esser et al., 2020): the step receives the LSQ gradient, scaled
//!   by `1 / sqrt(n_features * Q_p)`. Its running state holds the mean of `|x|` observed in
//!   [`Phase::Recalibrate`] passes, from which [`ActQuantizer::init_lsq_from_observed`] sets
//!   the steps as the paper does (`2 * mean|x| / sqrt(Q_p)`); the steps never depend on it
//!   otherwise.
//! - [`ActScaleMethod::Mse`] keeps one running range per candidate format (shape
//!   `[n_formats]`): in [`Phase::Train`] and [`Phase::Recalibrate`] the batch's range of least
//!   squared error at the pass's format ([`super::act_mse::mse_range`]) sets the scale and is
//!   blended into that format's running range; [`Phase::Eval`] uses the running range of the
//!   format. A format's range is observed only by passes at that format.

use burn::config::Config;
use burn::module::{Module, Param, RunningState};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use spaces::Format;

use super::codes::{QuantCodes, QuantError};
use super::grid::{grid_max, grid_significant_bits, int_code_range};
use super::round::{round_to_float, snap_scale};
use super::{FloatScaling, fake_quantize};
use crate::Phase;

/// How an activation quantizer chooses its scale.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum ActScaleMethod {
    /// The range is the maximum of `|x|` (of `max(x, 0)` for unsigned quantizers) over the
    /// batch; the running range is its exponential moving average with `momentum`.
    RunningMax {
        /// Weight of the new batch in the moving average, in `(0, 1]`.
        momentum: f64,
    },
    /// The range is the `percentile`-th percentile (nearest rank, in `(0, 100]`) of `|x|` over
    /// the batch, which ignores rare outliers; the running range is its moving average.
    Percentile {
        /// Percentile in `(0, 100]`, e.g. 99.99.
        percentile: f64,
        /// Weight of the new batch in the moving average, in `(0, 1]`.
        momentum: f64,
    },
    /// Learned step size (LSQ), one per candidate format, initialized to `init_step` or from
    /// data with [`ActQuantizer::init_lsq_steps`].
    Lsq {
        /// Initial step of every format.
        init_step: f64,
    },
    /// One running range per candidate format, each the moving average of the batches' ranges
    /// of least squared error at that format.
    Mse {
        /// Weight of the new batch in the moving average, in `(0, 1]`.
        momentum: f64,
    },
}

/// Configuration of an [`ActQuantizer`].
#[derive(Config, Debug)]
pub struct ActQuantizerConfig {
    /// How the scale is chosen.
    #[config(default = "ActScaleMethod::RunningMax { momentum: 0.1 }")]
    pub method: ActScaleMethod,
    /// False for inputs that follow a ReLU: integer codes are then `[0, 2^b - 1]`.
    #[config(default = true)]
    pub signed: bool,
    /// Which floating-point formats are scaled.
    #[config(default = "FloatScaling::Minifloats")]
    pub float_scaling: FloatScaling,
    /// The formats that get a learned step under [`ActScaleMethod::Lsq`] or a range of their
    /// own under [`ActScaleMethod::Mse`] (ignored otherwise).
    #[config(default = "Vec::new()")]
    pub formats: Vec<Format>,
}

impl ActQuantizerConfig {
    /// Creates the quantizer.
    ///
    /// # Panics
    /// Panics if a momentum is not in `(0, 1]`, a percentile not in `(0, 100]`, or an LSQ
    /// initial step not positive and finite.
    pub fn init(&self, device: &Device) -> ActQuantizer {
        let ranges = match self.method {
            ActScaleMethod::Mse { .. } => self.formats.len().max(1),
            _ => 1,
        };
        let steps = match self.method {
            ActScaleMethod::RunningMax { momentum } | ActScaleMethod::Mse { momentum } => {
                check_momentum(momentum);
                None
            }
            ActScaleMethod::Percentile {
                percentile,
                momentum,
            } => {
                check_momentum(momentum);
                assert!(
                    percentile > 0.0 && percentile <= 100.0,
                    "percentile must be in (0, 100], got {percentile}"
                );
                None
            }
            ActScaleMethod::Lsq { init_step } => {
                assert!(
                    init_step.is_finite() && init_step > 0.0,
                    "the LSQ initial step must be positive, got {init_step}"
                );
                let n = self.formats.len();
                let steps = Tensor::<1>::from_data(
                    TensorData::new(vec![init_step as f32; n.max(1)], [n.max(1)]),
                    device,
                );
                Some(Param::from_tensor(steps))
            }
        };
        ActQuantizer {
            range: RunningState::new(Tensor::zeros([ranges], device)),
            steps,
            method: self.method,
            signed: self.signed,
            float_scaling: self.float_scaling,
            formats: self.formats.clone(),
        }
    }
}

fn check_momentum(momentum: f64) {
    assert!(
        momentum > 0.0 && momentum <= 1.0,
        "momentum must be in (0, 1], got {momentum}"
    );
}

/// Fake quantizer of one layer input (see the module docs for its state).
#[derive(Module, Debug)]
pub struct ActQuantizer {
    /// Running range in real units, shape `[1]` (under [`ActScaleMethod::Mse`] one per entry
    /// of `formats`, shape `[max(1, n)]`); 0 until observed. Unused by LSQ.
    pub range: RunningState<Tensor<1>>,
    /// LSQ steps, one per entry of `formats`, shape `[max(1, n)]`; `None` for the other
    /// methods.
    pub steps: Option<Param<Tensor<1>>>,
    /// How the scale is chosen.
    #[module(skip)]
    pub method: ActScaleMethod,
    /// Signed or unsigned integer codes.
    pub signed: bool,
    /// Which floating-point formats are scaled.
    #[module(skip)]
    pub float_scaling: FloatScaling,
    /// The formats with an LSQ step (in the order of `steps`) or, under
    /// [`ActScaleMethod::Mse`], a range (in the order of `range`).
    #[module(skip)]
    pub formats: Vec<Format>,
}

impl ActQuantizer {
    /// Fake-quantizes `x` to `format`.
    ///
    /// With a running range, `phase` decides which range sets the scale (see the module docs);
    /// the running range is updated in [`Phase::Train`] and [`Phase::Recalibrate`] even when
    /// `format` is fp32. Values outside the range saturate and get no gradient (clipped
    /// straight-through estimator). With LSQ, `phase` does not matter.
    ///
    /// # Shapes
    /// - `x`: `[batch_size, ...]`
    /// - output: the shape of `x`
    ///
    /// # Panics
    /// Panics under LSQ or MSE ranges if `format` needs a scale and is not one of `formats`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>, format: Format, phase: Phase) -> Tensor<D> {
        if let ActScaleMethod::Mse { momentum } = self.method {
            return self.forward_mse(x, format, phase, momentum);
        }
        if let ActScaleMethod::Lsq { .. } = self.method {
            if let Phase::Recalibrate(_) = phase
                && let Some(momentum) = phase.momentum(1.0)
            {
                let mean = self.magnitude(x.clone().detach()).mean();
                self.update_range(mean, momentum);
            }
            return self.forward_lsq(x, format);
        }
        let range = match phase.momentum(self.momentum()) {
            Some(momentum) => {
                let batch = self.batch_range(x.clone());
                self.update_range(batch.clone(), momentum);
                batch
            }
            None => self.running_range(&x.device()),
        };
        if format.is_full_precision() {
            return x;
        }
        let scale = self
            .scale_from_range(range, format)
            .map(|s| s.reshape([1; D]));
        fake_quantize(x, format, scale, self.signed)
    }

    /// The running range, shape `[1]` (`[max(1, formats)]` under [`ActScaleMethod::Mse`]).
    pub fn running_range(&self, device: &Device) -> Tensor<1> {
        self.range.value_sync().to_device(device)
    }

    /// Forgets the running range (back to 0, "not observed yet").
    pub fn reset_range(&self) {
        let range = self.range.value();
        self.range
            .update(Tensor::zeros(range.dims(), &range.device()));
    }

    /// The scale used for `format` in [`Phase::Eval`], shape `[1]`: `running range /
    /// grid_max`, or the LSQ step; `None` for fp32 and unscaled floating-point formats.
    ///
    /// # Panics
    /// Panics under LSQ if `format` needs a scale and is not one of `formats`.
    pub fn eval_scale(&self, format: Format) -> Option<Tensor<1>> {
        if !self.is_scaled(format) {
            return None;
        }
        match self.method {
            ActScaleMethod::Lsq { .. } => Some(self.lsq_step(format).detach()),
            ActScaleMethod::Mse { .. } => {
                let index = self.format_index(format);
                let range = self.running_range(&self.range.value().device());
                self.scale_from_range(range.slice(index..index + 1), format)
            }
            _ => self.scale_from_range(self.running_range(&self.range.value().device()), format),
        }
    }

    /// A fixed quantizer with the scale [`ActQuantizer::eval_scale`] would use for `format`:
    /// its forward equals this quantizer's forward in [`Phase::Eval`].
    ///
    /// # Panics
    /// Panics under LSQ if `format` needs a scale and is not one of `formats`.
    pub fn frozen(&self, format: Format) -> FrozenActQuant {
        let device = self.range.value().device();
        let scale = self
            .eval_scale(format)
            .map_or(1.0, |s| s.into_scalar::<f32>());
        FrozenActQuant::new(format, scale, self.signed, &device)
    }

    /// Sets every LSQ step from a sample batch as in the LSQ paper: `2 * mean|x| / sqrt(Q_p)`,
    /// with `Q_p` the grid's largest value in code units (`2^(b-1) - 1`, `2^b - 1` or
    /// `max_finite`). Does nothing for the other methods.
    ///
    /// # Shapes
    /// - `x`: any shape
    pub fn init_lsq_steps<const D: usize>(self, x: Tensor<D>) -> Self {
        let mean_abs = f64::from(x.detach().abs().mean().into_scalar::<f32>());
        self.with_lsq_steps_from(mean_abs)
    }

    /// Sets every LSQ step as [`ActQuantizer::init_lsq_steps`] does, from the mean of `|x|`
    /// (of `max(x, 0)` for unsigned quantizers) observed in the [`Phase::Recalibrate`] passes
    /// since the last [`ActQuantizer::reset_range`]. Does nothing for the other methods, or
    /// when nothing was observed.
    pub fn init_lsq_from_observed(self) -> Self {
        if self.steps.is_none() {
            return self;
        }
        let device = self.range.value().device();
        let observed = f64::from(self.running_range(&device).into_scalar::<f32>());
        if observed > 0.0 {
            self.with_lsq_steps_from(observed)
        } else {
            self
        }
    }

    fn with_lsq_steps_from(mut self, mean_abs: f64) -> Self {
        let Some(steps) = self.steps.take() else {
            return self;
        };
        let mut values: Vec<f32> = self
            .formats
            .iter()
            .map(|&f| (2.0 * mean_abs / grid_max(f, self.signed).sqrt()).max(1e-8) as f32)
            .collect();
        if values.is_empty() {
            values.push(1.0);
        }
        let n = values.len();
        self.steps = Some(steps.map(|old| {
            let requires = old.is_require_grad();
            Tensor::<1>::from_data(TensorData::new(values, [n]), &old.device())
                .set_require_grad(requires)
        }));
        self
    }

    fn momentum(&self) -> f64 {
        match self.method {
            ActScaleMethod::RunningMax { momentum }
            | ActScaleMethod::Percentile { momentum, .. }
            | ActScaleMethod::Mse { momentum } => momentum,
            ActScaleMethod::Lsq { .. } => 0.0,
        }
    }

    fn is_scaled(&self, format: Format) -> bool {
        self.float_scaling.scales(format)
    }

    /// `range / grid_max`, at least `f32::MIN_POSITIVE`, snapped to an exact grid.
    fn scale_from_range(&self, range: Tensor<1>, format: Format) -> Option<Tensor<1>> {
        if !self.is_scaled(format) {
            return None;
        }
        let scale = range
            .div_scalar(grid_max(format, self.signed) as f32)
            .clamp_min(f32::MIN_POSITIVE);
        Some(snap_scale(
            scale,
            grid_significant_bits(format, self.signed),
        ))
    }

    /// `|x|`, or `max(x, 0)` for unsigned quantizers.
    fn magnitude<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if self.signed {
            x.abs()
        } else {
            x.clamp_min(0.0)
        }
    }

    /// The range of one batch, shape `[1]`, detached.
    fn batch_range<const D: usize>(&self, x: Tensor<D>) -> Tensor<1> {
        let x = x.detach();
        if crate::kernels::active(&x.device()) {
            // on the tensor's own memory, no copy: the same values as below
            return match self.method {
                ActScaleMethod::Percentile { percentile, .. } => {
                    crate::kernels::ext::range_percentile(x, self.signed, percentile)
                }
                _ => crate::kernels::ext::range_max(x, self.signed),
            };
        }
        match self.method {
            ActScaleMethod::Percentile { percentile, .. } => {
                // on the host, with the kernels' nearest-rank selection (a top-k of the
                // tensor would sort it)
                let device = x.device();
                let values = x
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .expect("a float tensor's values read as f32");
                let at = crate::kernels::quant::range_percentile(&values, self.signed, percentile);
                Tensor::from_data(TensorData::new(vec![at], [1]), &device)
            }
            _ => self.magnitude(x).max(),
        }
    }

    fn update_range(&self, batch: Tensor<1>, momentum: f64) {
        let running = self.running_range(&batch.device());
        let unset = running.clone().lower_equal_elem(0.0);
        let blended = running
            .mul_scalar(1.0 - momentum)
            .add(batch.clone().mul_scalar(momentum));
        self.range.update(blended.mask_where(unset, batch).detach());
    }

    /// The position of `format` in `formats`.
    ///
    /// # Panics
    /// Panics if `format` is not one of them.
    fn format_index(&self, format: Format) -> usize {
        self.formats
            .iter()
            .position(|&f| f == format)
            .unwrap_or_else(|| {
                panic!(
                    "no step or range for format {format}; this quantizer has them for {:?}",
                    self.formats
                )
            })
    }

    /// [`ActQuantizer::forward`] under [`ActScaleMethod::Mse`].
    fn forward_mse<const D: usize>(
        &self,
        x: Tensor<D>,
        format: Format,
        phase: Phase,
        momentum: f64,
    ) -> Tensor<D> {
        if format.is_full_precision() {
            return x;
        }
        if !self.is_scaled(format) {
            return fake_quantize(x, format, None, self.signed);
        }
        let index = self.format_index(format);
        let device = x.device();
        let range = match phase.momentum(momentum) {
            Some(momentum) => {
                let values = x
                    .clone()
                    .detach()
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .expect("a float tensor's values read as f32");
                let batch = super::act_mse::mse_range(&values, format, self.signed);
                let mut running = self
                    .running_range(&device)
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .expect("the running ranges read as f32");
                let old = running[index];
                running[index] = if old > 0.0 {
                    ((1.0 - momentum) * f64::from(old) + momentum * f64::from(batch)) as f32
                } else {
                    batch
                };
                let n = running.len();
                self.range
                    .update(Tensor::from_data(TensorData::new(running, [n]), &device));
                Tensor::from_data(TensorData::new(vec![batch], [1]), &device)
            }
            None => self.running_range(&device).slice(index..index + 1),
        };
        let scale = self
            .scale_from_range(range, format)
            .map(|s| s.reshape([1; D]));
        fake_quantize(x, format, scale, self.signed)
    }

    fn lsq_step(&self, format: Format) -> Tensor<1> {
        let index = self.format_index(format);
        let steps = self.steps.as_ref().expect("an LSQ quantizer has steps");
        steps
            .val()
            .slice(index..index + 1)
            .abs()
            .clamp_min(f32::MIN_POSITIVE)
    }

    fn forward_lsq<const D: usize>(&self, x: Tensor<D>, format: Format) -> Tensor<D> {
        if format.is_full_precision() {
            return x;
        }
        if !self.is_scaled(format) {
            return fake_quantize(x, format, None, self.signed);
        }
        let step = self.lsq_step(format);
        let q_p = grid_max(format, self.signed);
        let q_n = match format {
            Format::Int(bits) => -(int_code_range(bits, self.signed).0 as f64),
            Format::Float { .. } => q_p,
        };
        let dims = x.dims();
        let features = dims[1..].iter().product::<usize>().max(1) as f64;
        let g = (1.0 / (features * q_p).sqrt()) as f32;
        // Value exactly `step`, gradient scaled by g.
        let scaled = step.clone().mul_scalar(g);
        let step = step
            .detach()
            .add(scaled.clone().sub(scaled.detach()))
            .reshape([1; D]);

        let y = x.clone().div(step.clone()).clamp(-q_n as f32, q_p as f32);
        let rounded = match format {
            Format::Int(_) => y.clone().detach().round(),
            Format::Float { .. } => round_to_float(y.clone(), format),
        };
        let y_q = y.clone().add(rounded.sub(y).detach());
        let lsq = y_q.mul(step.clone());
        // The values of the fixed quantizer an extracted network gets (the same function, so
        // the two agree bit for bit), the gradients of LSQ.
        let values = fake_quantize(x.detach(), format, Some(step.detach()), self.signed);
        lsq.clone().sub(lsq.detach()).add(values)
    }
}

/// An activation quantizer with a fixed scale, for an extracted (static) sub-network.
///
/// The scale is module state (saved in records, like a batch norm's running statistics);
/// the format and signedness are constants of the architecture.
#[derive(Module, Debug)]
pub struct FrozenActQuant {
    /// The format.
    #[module(skip)]
    pub format: Format,
    /// The scale, shape `[1]` (1 for unscaled formats). Not trained.
    pub scale: RunningState<Tensor<1>>,
    /// Signed or unsigned integer codes.
    #[module(skip)]
    pub signed: bool,
}

impl FrozenActQuant {
    /// A quantizer to `format` with a fixed scale.
    pub fn new(format: Format, scale: f32, signed: bool, device: &Device) -> FrozenActQuant {
        FrozenActQuant {
            format,
            scale: RunningState::new(Tensor::from_data(TensorData::new(vec![scale], [1]), device)),
            signed,
        }
    }

    /// The scale.
    pub fn scale_value(&self) -> f32 {
        self.scale.value().into_scalar::<f32>()
    }

    /// Fake-quantizes `x` with the fixed scale (straight-through gradient).
    ///
    /// # Shapes
    /// - `x`: any shape
    /// - output: the shape of `x`
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if self.format.is_full_precision() {
            return x;
        }
        let scale = self.scale.value().to_device(&x.device()).reshape([1; D]);
        fake_quantize(x, self.format, Some(scale), self.signed)
    }

    /// The codes of `x` under this quantizer (one per-tensor scale).
    ///
    /// # Errors
    /// See [`QuantCodes::encode`].
    pub fn codes<const D: usize>(&self, x: Tensor<D>) -> Result<QuantCodes, QuantError> {
        let shape = x.dims().to_vec();
        let values = x
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| QuantError::Data(format!("{e:?}")))?;
        QuantCodes::encode(
            &values,
            &shape,
            self.format,
            vec![self.scale_value()],
            None,
            self.signed,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::test_util::{grad_of, pseudo_random, small_float_formats, values_of};

    fn running(method: ActScaleMethod, signed: bool) -> ActQuantizer {
        ActQuantizerConfig::new()
            .with_method(method)
            .with_signed(signed)
            .init(&Device::flex())
    }

    fn range_of(q: &ActQuantizer) -> f32 {
        q.running_range(&Device::flex()).into_scalar::<f32>()
    }

    #[test]
    fn running_max_is_an_ema_started_at_the_first_batch() {
        let device = Device::flex();
        let q = running(ActScaleMethod::RunningMax { momentum: 0.25 }, true);
        assert_eq!(range_of(&q), 0.0);
        let x1 = Tensor::<2>::from_floats([[1.0, -4.0], [2.0, 0.5]], &device);
        let x2 = Tensor::<2>::from_floats([[8.0, 0.0], [0.0, 0.0]], &device);
        q.forward(x1.clone(), Format::Int(8), Phase::Train);
        assert_eq!(range_of(&q), 4.0);
        // fp32 passes also observe the range.
        let y = q.forward(x2.clone(), Format::FP32, Phase::Train);
        assert_eq!(values_of(y), values_of(x2.clone()));
        assert_eq!(range_of(&q), 0.75 * 4.0 + 0.25 * 8.0);
        // Eval uses and keeps the running range: scale 5 / 127.
        let y = values_of(q.forward(x2.clone(), Format::Int(8), Phase::Eval));
        assert_eq!(range_of(&q), 5.0);
        let s = values_of(q.eval_scale(Format::Int(8)).unwrap())[0];
        assert!((f64::from(s) * 127.0 / 5.0 - 1.0).abs() < 2f64.powi(-16));
        assert_eq!(y[0], 127.0 * s); // 8 saturates at the range
        // Train uses the batch range: 8 maps to the top code exactly.
        let y = values_of(q.forward(x2, Format::Int(8), Phase::Train));
        assert!((y[0] - 8.0).abs() < 1e-4);
        // Recalibration pass 0 replaces, pass n averages.
        q.forward(x1.clone(), Format::Int(4), Phase::Recalibrate(0));
        assert_eq!(range_of(&q), 4.0);
        let x3 = Tensor::<2>::from_floats([[10.0, 0.0], [0.0, 0.0]], &device);
        q.forward(x3, Format::Int(4), Phase::Recalibrate(1));
        assert_eq!(range_of(&q), 7.0);
        q.reset_range();
        assert_eq!(range_of(&q), 0.0);
    }

    #[test]
    fn unsigned_int_activations_use_codes_0_to_2b_minus_1() {
        let device = Device::flex();
        let x = pseudo_random([2, 3, 4, 4], 3.0, 5, &device).clamp_min(0.0);
        for bits in 2..=8u8 {
            let q = running(ActScaleMethod::RunningMax { momentum: 0.1 }, false);
            let format = Format::Int(bits);
            let y = values_of(q.forward(x.clone(), format, Phase::Train));
            let s = values_of(q.eval_scale(format).unwrap())[0];
            let (lo, hi) = int_code_range(bits, false);
            assert_eq!(lo, 0);
            let mut top = 0.0f64;
            for v in &y {
                let code = f64::from(*v) / f64::from(s);
                assert_eq!(code, code.round(), "int{bits}: {v}");
                assert!((0.0..=hi as f64).contains(&code));
                top = top.max(code);
            }
            assert_eq!(
                top, hi as f64,
                "int{bits}: the maximum maps to the top code"
            );
            // Fixed scale: quantizing twice is quantizing once.
            let y_t = Tensor::<4>::from_data(TensorData::new(y.clone(), [2, 3, 4, 4]), &device);
            assert_eq!(values_of(q.forward(y_t, format, Phase::Eval)), y);
        }
    }

    #[test]
    fn signed_activations_on_every_grid_up_to_8_bits() {
        let device = Device::flex();
        let x = pseudo_random([2, 2, 5, 5], 6.0, 9, &device);
        let mut formats: Vec<Format> = (2..=8).map(Format::Int).collect();
        formats.extend(small_float_formats());
        for format in formats {
            let q = running(ActScaleMethod::RunningMax { momentum: 0.1 }, true);
            q.forward(x.clone(), format, Phase::Train);
            let y = values_of(q.forward(x.clone(), format, Phase::Eval));
            let s = f64::from(values_of(q.eval_scale(format).unwrap())[0]);
            for v in &y {
                let code = f64::from(*v) / s;
                match format {
                    Format::Int(bits) => {
                        let (lo, hi) = int_code_range(bits, true);
                        assert_eq!(code, code.round());
                        assert!((lo as f64..=hi as f64).contains(&code));
                    }
                    _ => {
                        let grid = format.float_values().unwrap();
                        assert!(
                            grid.binary_search_by(|g| g.partial_cmp(&code).unwrap())
                                .is_ok(),
                            "{format}: {code}"
                        );
                    }
                }
            }
            let y_t = Tensor::<4>::from_data(TensorData::new(y.clone(), [2, 2, 5, 5]), &device);
            assert_eq!(
                values_of(q.forward(y_t, format, Phase::Eval)),
                y,
                "{format}"
            );
            // The frozen quantizer agrees with Eval.
            let frozen = q.frozen(format);
            assert_eq!(values_of(frozen.forward(x.clone())), y, "{format}");
        }
    }

    #[test]
    fn percentile_range_ignores_outliers() {
        let device = Device::flex();
        // 1..=1000 and one outlier of 1e6.
        let mut v: Vec<f32> = (1..=1000).map(|i| i as f32).collect();
        v.push(1.0e6);
        let n = v.len();
        let x = Tensor::<2>::from_data(TensorData::new(v, [1, n]), &device);
        let q = running(
            ActScaleMethod::Percentile {
                percentile: 99.0,
                momentum: 0.1,
            },
            true,
        );
        q.forward(x.clone(), Format::Int(8), Phase::Train);
        // Nearest rank: ceil(0.99 * 1001) = 991, the 991st smallest value.
        assert_eq!(range_of(&q), 991.0);
        let q100 = running(
            ActScaleMethod::Percentile {
                percentile: 100.0,
                momentum: 0.1,
            },
            true,
        );
        q100.forward(x, Format::Int(8), Phase::Train);
        assert_eq!(range_of(&q100), 1.0e6);
    }

    #[test]
    fn activation_gradients_are_clipped_outside_the_range() {
        let device = Device::flex().autodiff();
        let q = ActQuantizerConfig::new().with_signed(false).init(&device);
        let calib = Tensor::<2>::from_floats([[2.0, 0.0]], &device);
        q.forward(calib, Format::Int(4), Phase::Train);
        let x = Tensor::<2>::from_floats([[-1.0, 0.5, 1.9, 2.0, 2.1, 5.0]], &device).require_grad();
        let y = q.forward(x.clone(), Format::Int(4), Phase::Eval);
        // Scale 2/15: the rounding range is [-1/15, 2 + 1/15].
        assert_eq!(grad_of(&x, y), vec![0.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn lsq_step_gets_the_lsq_gradient() {
        let device = Device::flex().autodiff();
        let formats = vec![Format::Int(4), Format::Int(2), Format::E2M1];
        let q = ActQuantizerConfig::new()
            .with_method(ActScaleMethod::Lsq { init_step: 0.5 })
            .with_signed(true)
            .with_formats(formats.clone())
            .init(&device);
        let xs = [-5.0f32, -1.2, -0.3, 0.0, 0.26, 0.74, 2.0, 3.4, 3.6, 9.0];
        let x = Tensor::<2>::from_floats([xs], &device).require_grad();
        let y = q.forward(x.clone(), Format::Int(4), Phase::Train);
        let yv = values_of(y.clone());
        let grads = y.sum().backward();
        let gx = values_of(x.grad(&grads).unwrap());
        let steps = q.steps.as_ref().unwrap();
        let gs = values_of(steps.grad(&grads).unwrap());
        // int4 signed: codes ±7, step 0.5.
        let (s, qn, qp) = (0.5f64, 7.0f64, 7.0f64);
        let mut want_gs = 0.0f64;
        for (i, &xi) in xs.iter().enumerate() {
            let v = f64::from(xi) / s;
            let (val, dx, ds) = if v < -qn {
                (-qn * s, 0.0, -qn)
            } else if v > qp {
                (qp * s, 0.0, qp)
            } else {
                (v.round_ties_even() * s, 1.0, v.round_ties_even() - v)
            };
            assert!(
                (f64::from(yv[i]) - val).abs() < 1e-6,
                "{i}: {} vs {val}",
                yv[i]
            );
            assert_eq!(f64::from(gx[i]), dx, "{i}");
            want_gs += ds;
        }
        let g = 1.0 / (10.0 * qp).sqrt();
        assert!(
            (f64::from(gs[0]) - want_gs * g).abs() < 1e-5,
            "{gs:?} vs {}",
            want_gs * g
        );
        // Only the step of the format used gets a gradient.
        assert_eq!(gs[1], 0.0);
        assert_eq!(gs[2], 0.0);

        // The e2m1 step: values lie on the scaled e2m1 grid.
        let y = values_of(q.forward(x.clone(), Format::E2M1, Phase::Eval));
        let grid = Format::E2M1.float_values().unwrap();
        for v in y {
            let code = f64::from(v) / 0.5;
            assert!(grid.contains(&code), "{code}");
        }
    }

    #[test]
    fn lsq_init_from_data() {
        let device = Device::flex();
        let q = ActQuantizerConfig::new()
            .with_method(ActScaleMethod::Lsq { init_step: 1.0 })
            .with_formats(vec![Format::Int(8), Format::Int(2)])
            .init(&device)
            .init_lsq_steps(Tensor::<1>::from_floats([-2.0, 2.0, 1.0, -1.0], &device));
        let steps = values_of(q.steps.as_ref().unwrap().val());
        let want = [2.0 * 1.5 / 127f64.sqrt(), 2.0 * 1.5];
        for (g, w) in steps.iter().zip(want) {
            assert!((f64::from(*g) - w).abs() < 1e-6);
        }
        let frozen = q.frozen(Format::Int(2));
        assert_eq!(frozen.scale_value(), 3.0);
    }

    #[test]
    #[should_panic(expected = "no step or range for format int3")]
    fn lsq_rejects_unknown_formats() {
        let device = Device::flex();
        let q = ActQuantizerConfig::new()
            .with_method(ActScaleMethod::Lsq { init_step: 1.0 })
            .with_formats(vec![Format::Int(8)])
            .init(&device);
        q.forward(
            Tensor::<1>::from_floats([1.0], &device),
            Format::Int(3),
            Phase::Eval,
        );
    }
}
