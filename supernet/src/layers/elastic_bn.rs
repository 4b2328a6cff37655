//! Elastic batch norm: normalizes the first `c` channels with the first `c` entries of
//! full-width parameters and running statistics.

use burn::config::Config;
use burn::module::{Module, Param, RunningState};
use burn::nn::BatchNorm;
use burn::tensor::module::{batch_norm, batch_norm_train};
use burn::tensor::{Device, Tensor};

use crate::Phase;
use crate::kernels::ext;
use crate::kernels::norm::NormAct;

/// Configuration to create an [elastic batch norm](ElasticBatchNorm).
#[derive(Config, Debug)]
pub struct ElasticBatchNormConfig {
    /// Largest number of channels.
    pub max_channels: usize,
    /// Added to the variance for numerical stability.
    #[config(default = 1e-5)]
    pub epsilon: f64,
    /// Weight of the batch statistics when the running statistics are updated in
    /// [`Phase::Train`].
    #[config(default = 0.1)]
    pub momentum: f64,
}

/// Batch norm over the first `c` channels of a full-width layer, `c` being the channel count of
/// the input. In [`Phase::Train`] and [`Phase::Recalibrate`] it normalizes with the batch
/// statistics and blends them into the first `c` running statistics (the others are left
/// alone); in [`Phase::Eval`] it normalizes with the running statistics. Like burn's
/// [`BatchNorm`], it keeps the biased batch variance.
///
/// Sub-networks share the running statistics, which therefore fit none of them exactly:
/// before evaluating a sub-network, recalibrate (see [`ElasticBatchNorm::reset_running_stats`]
/// and [`Phase::Recalibrate`]).
///
/// Should be created with [`ElasticBatchNormConfig`].
#[derive(Module, Debug)]
pub struct ElasticBatchNorm {
    /// Scale, shape `[max_channels]`.
    pub gamma: Param<Tensor<1>>,
    /// Shift, shape `[max_channels]`.
    pub beta: Param<Tensor<1>>,
    /// Running mean, shape `[max_channels]`.
    pub running_mean: RunningState<Tensor<1>>,
    /// Running (biased) variance, shape `[max_channels]`.
    pub running_var: RunningState<Tensor<1>>,
    /// Momentum of [`Phase::Train`].
    pub momentum: f64,
    /// Added to the variance.
    pub epsilon: f64,
}

impl ElasticBatchNormConfig {
    /// Initializes a new [elastic batch norm](ElasticBatchNorm): gamma 1, beta 0, running mean
    /// 0, running variance 1.
    ///
    /// # Panics
    /// Panics if `max_channels` is zero, `epsilon` is not positive or `momentum` is not in
    /// `[0, 1]`.
    pub fn init(&self, device: &Device) -> ElasticBatchNorm {
        assert!(self.max_channels > 0, "the channel count must be positive");
        assert!(
            self.epsilon.is_finite() && self.epsilon > 0.0,
            "epsilon must be positive"
        );
        assert!(
            (0.0..=1.0).contains(&self.momentum),
            "momentum must be in [0, 1]"
        );
        let c = self.max_channels;
        ElasticBatchNorm {
            gamma: Param::from_tensor(Tensor::ones([c], device)),
            beta: Param::from_tensor(Tensor::zeros([c], device)),
            running_mean: RunningState::new(Tensor::zeros([c], device)),
            running_var: RunningState::new(Tensor::ones([c], device)),
            momentum: self.momentum,
            epsilon: self.epsilon,
        }
    }
}

impl ElasticBatchNorm {
    /// Normalizes `input` over its `c` channels (see [`ElasticBatchNorm`] for the phases).
    ///
    /// # Shapes
    /// - `input`: `[batch_size, channels, ...]`, `channels <= max_channels`
    /// - output: the shape of `input`
    ///
    /// # Panics
    /// Panics if the input has rank < 2 or more channels than the layer.
    pub fn forward<const D: usize>(&self, input: Tensor<D>, phase: Phase) -> Tensor<D> {
        assert!(D >= 2, "batch norm needs an input of rank 2 or more");
        let c = input.dims()[1];
        let device = input.device();
        let (gamma, beta) = self.affine_prefix(c);
        match phase.momentum(self.momentum) {
            None => {
                let (mean, var) = self.running_prefix(c, &device);
                batch_norm(input, gamma, beta, mean, var, self.epsilon)
            }
            Some(momentum) => {
                let out = batch_norm_train(input, gamma, beta, self.epsilon);
                update_prefix(&self.running_mean, out.mean, c, momentum, &device);
                update_prefix(&self.running_var, out.variance, c, momentum, &device);
                out.output
            }
        }
    }

    /// [`ElasticBatchNorm::forward`] over the last dimension of an NHWC input, followed by
    /// `act`, fused, on our kernels ([`crate::kernels::ext`]; the device must be `flex`).
    ///
    /// # Shapes
    /// - `input`: `[batch_size, height, width, channels]`, `channels <= max_channels`
    /// - output: the shape of `input`
    ///
    /// # Panics
    /// Panics if the input has more channels than the layer, or on a device other than `flex`.
    pub fn forward_nhwc(&self, input: Tensor<4>, phase: Phase, act: NormAct) -> Tensor<4> {
        let c = input.dims()[3];
        let device = input.device();
        let (gamma, beta) = self.affine_prefix(c);
        match phase.momentum(self.momentum) {
            None => {
                let (mean, var) = self.running_prefix(c, &device);
                let (scale, shift) = inference_affine(gamma, beta, mean, var, self.epsilon);
                ext::channel_affine(input, scale, shift, act)
            }
            Some(momentum) => {
                let out = ext::batch_norm_train(input, gamma, beta, self.epsilon, act);
                update_prefix(&self.running_mean, out.mean, c, momentum, &device);
                update_prefix(&self.running_var, out.variance, c, momentum, &device);
                out.output
            }
        }
    }

    /// Gamma and beta of the first `c` channels.
    ///
    /// # Panics
    /// Panics if `c` is zero or more than the layer's channels.
    fn affine_prefix(&self, c: usize) -> (Tensor<1>, Tensor<1>) {
        let max = self.gamma.dims()[0];
        assert!(
            (1..=max).contains(&c),
            "{c} channels for a batch norm of {max}"
        );
        (self.gamma.val().slice(0..c), self.beta.val().slice(0..c))
    }

    /// Running mean and variance of the first `c` channels, on `device`.
    fn running_prefix(&self, c: usize, device: &Device) -> (Tensor<1>, Tensor<1>) {
        let prefix = |s: &RunningState<Tensor<1>>| s.value_sync().to_device(device).slice(0..c);
        (prefix(&self.running_mean), prefix(&self.running_var))
    }

    /// Resets the running statistics (mean 0, variance 1) of every channel. Recalibration of a
    /// sub-network: reset, then run `N` batches with [`Phase::Recalibrate`]`(n)` for
    /// `n = 0..N`; the running statistics become the average of the `N` batch statistics.
    /// (Pass 0 overwrites the used channels anyway; resetting also clears the unused ones.)
    pub fn reset_running_stats(&self) {
        let device = self.running_mean.value().device();
        let c = self.gamma.dims()[0];
        self.running_mean.update(Tensor::zeros([c], &device));
        self.running_var.update(Tensor::ones([c], &device));
    }

    /// A static burn [`BatchNorm`] over the first `channels` channels, with copies of the
    /// parameters and running statistics. In inference (a device without autodiff, or its
    /// training flag off) its forward equals this layer's forward in [`Phase::Eval`].
    ///
    /// # Panics
    /// Panics if `channels` is zero or larger than the layer.
    pub fn extract(&self, channels: usize) -> BatchNorm {
        let max = self.gamma.dims()[0];
        assert!(
            (1..=max).contains(&channels),
            "{channels} channels for a batch norm of {max}"
        );
        let slice = |t: Tensor<1>| t.slice(0..channels).detach();
        BatchNorm {
            gamma: Param::from_tensor(slice(self.gamma.val())),
            beta: Param::from_tensor(slice(self.beta.val())),
            training: Param::from_bool(true),
            running_mean: RunningState::new(slice(self.running_mean.value_sync())),
            running_var: RunningState::new(slice(self.running_var.value_sync())),
            momentum: self.momentum,
            epsilon: self.epsilon,
        }
    }
}

/// Batch norm in inference as a per-channel affine map: `(scale, shift)` with
/// `scale = gamma / sqrt(var + epsilon)` and `shift = beta - mean * scale`. The elastic layer
/// and its extracted twin both use it on the NHWC path, so they compute the same bits.
pub(crate) fn inference_affine(
    gamma: Tensor<1>,
    beta: Tensor<1>,
    mean: Tensor<1>,
    var: Tensor<1>,
    epsilon: f64,
) -> (Tensor<1>, Tensor<1>) {
    let scale = gamma * var.add_scalar(epsilon).sqrt().recip();
    let shift = beta - mean * scale.clone();
    (scale, shift)
}

/// `state[..c] = (1 - m) * state[..c] + m * batch`, leaving `state[c..]` alone.
fn update_prefix(
    state: &RunningState<Tensor<1>>,
    batch: Tensor<1>,
    c: usize,
    momentum: f64,
    device: &Device,
) {
    let full = state.value_sync().to_device(device);
    let blended = full
        .clone()
        .slice(0..c)
        .mul_scalar(1.0 - momentum)
        .add(batch.detach().mul_scalar(momentum));
    state.update(full.slice_assign(0..c, blended).detach());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::test_util::max_abs_diff;
    use crate::quant::test_util::{pseudo_random, values_of};

    /// Per-channel mean and biased variance of a `[n, c, h, w]` tensor.
    fn channel_stats(x: &[f32], [n, c, h, w]: [usize; 4]) -> (Vec<f64>, Vec<f64>) {
        let mut mean = vec![0.0f64; c];
        let mut var = vec![0.0f64; c];
        let m = (n * h * w) as f64;
        for ch in 0..c {
            let vals: Vec<f64> = (0..n)
                .flat_map(|b| (0..h * w).map(move |i| (b, i)))
                .map(|(b, i)| f64::from(x[(b * c + ch) * h * w + i]))
                .collect();
            mean[ch] = vals.iter().sum::<f64>() / m;
            var[ch] = vals.iter().map(|v| (v - mean[ch]).powi(2)).sum::<f64>() / m;
        }
        (mean, var)
    }

    fn close(a: &[f32], b: &[f64], tol: f64) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (f64::from(*x) - y).abs() <= tol)
    }

    #[test]
    fn train_updates_only_the_used_running_stats() {
        let device = Device::flex();
        let bn = ElasticBatchNormConfig::new(5)
            .with_momentum(0.25)
            .init(&device);
        let x = pseudo_random([4, 3, 3, 3], 2.0, 1, &device).add_scalar(1.0);
        let y = bn.forward(x.clone(), Phase::Train);
        let (mean, var) = channel_stats(&values_of(x.clone()), [4, 3, 3, 3]);
        // Output normalized with the batch statistics (gamma 1, beta 0).
        let (ym, yv) = channel_stats(&values_of(y), [4, 3, 3, 3]);
        assert!(close(
            &ym.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            &[0.0; 3],
            1e-5
        ));
        for (v, bv) in yv.iter().zip(&var) {
            assert!((v - bv / (bv + 1e-5)).abs() < 1e-4);
        }
        let rm = values_of(bn.running_mean.value_sync());
        let rv = values_of(bn.running_var.value_sync());
        let want_m: Vec<f64> = mean.iter().map(|m| 0.25 * m).chain([0.0, 0.0]).collect();
        let want_v: Vec<f64> = var
            .iter()
            .map(|v| 0.75 + 0.25 * v)
            .chain([1.0, 1.0])
            .collect();
        assert!(close(&rm, &want_m, 1e-5), "{rm:?} vs {want_m:?}");
        assert!(close(&rv, &want_v, 1e-5), "{rv:?} vs {want_v:?}");
    }

    #[test]
    fn recalibration_averages_the_batch_statistics() {
        let device = Device::flex();
        let bn = ElasticBatchNormConfig::new(4).init(&device);
        // Some training first, so that there is something to reset.
        bn.forward(pseudo_random([2, 4, 2, 2], 5.0, 9, &device), Phase::Train);
        bn.reset_running_stats();
        let batches: Vec<_> = (0..3)
            .map(|i| {
                pseudo_random([2, 2, 3, 3], 1.0 + i as f32, 20 + i, &device).add_scalar(i as f32)
            })
            .collect();
        let mut sum_m = [0.0f64; 2];
        let mut sum_v = [0.0f64; 2];
        for (n, x) in batches.iter().enumerate() {
            bn.forward(x.clone(), Phase::Recalibrate(n));
            let (m, v) = channel_stats(&values_of(x.clone()), [2, 2, 3, 3]);
            for ch in 0..2 {
                sum_m[ch] += m[ch];
                sum_v[ch] += v[ch];
            }
        }
        let rm = values_of(bn.running_mean.value_sync());
        let rv = values_of(bn.running_var.value_sync());
        let want_m = [sum_m[0] / 3.0, sum_m[1] / 3.0, 0.0, 0.0];
        let want_v = [sum_v[0] / 3.0, sum_v[1] / 3.0, 1.0, 1.0];
        assert!(close(&rm, &want_m, 1e-5), "{rm:?} vs {want_m:?}");
        assert!(close(&rv, &want_v, 1e-5), "{rv:?} vs {want_v:?}");
    }

    #[test]
    fn eval_forward_equals_extracted_batch_norm() {
        let device = Device::flex();
        let bn = ElasticBatchNormConfig::new(6).init(&device);
        // Non-trivial parameters and statistics.
        let bn = ElasticBatchNorm {
            gamma: Param::from_tensor(pseudo_random([6], 1.0, 4, &device).add_scalar(1.5)),
            beta: Param::from_tensor(pseudo_random([6], 1.0, 5, &device)),
            ..bn
        };
        for _ in 0..3 {
            bn.forward(pseudo_random([3, 6, 2, 2], 2.0, 6, &device), Phase::Train);
        }
        for c in [6, 4, 1] {
            let x = pseudo_random([2, c, 3, 3], 3.0, c as u64, &device);
            let y = bn.forward(x.clone(), Phase::Eval);
            let y_static = bn.extract(c).forward(x.clone());
            assert!(max_abs_diff(y.clone(), y_static) <= 1e-5, "{c}");
            // Eval does not touch the running statistics.
            let before = values_of(bn.running_mean.value_sync());
            bn.forward(x, Phase::Eval);
            assert_eq!(values_of(bn.running_mean.value_sync()), before);
        }
        // Rank-2 inputs (after a linear layer).
        let x = pseudo_random([5, 3], 1.0, 7, &device);
        let y = bn.forward(x.clone(), Phase::Eval);
        assert!(max_abs_diff(y, bn.extract(3).forward(x)) <= 1e-5);
    }

    #[test]
    fn gradients_reach_only_the_used_channels() {
        let device = Device::flex().autodiff();
        let bn = ElasticBatchNormConfig::new(4).init(&device);
        let x = pseudo_random([2, 2, 2, 2], 1.0, 3, &device);
        let w = pseudo_random([2, 2, 2, 2], 1.0, 4, &device);
        let y = bn.forward(x, Phase::Train).mul(w);
        let grads = y.sum().backward();
        let gg = values_of(bn.gamma.grad(&grads).unwrap());
        let gb = values_of(bn.beta.grad(&grads).unwrap());
        assert!(gg[..2].iter().all(|&v| v != 0.0) && gg[2..] == [0.0, 0.0]);
        assert!(gb[..2].iter().all(|&v| v != 0.0) && gb[2..] == [0.0, 0.0]);
    }
}
