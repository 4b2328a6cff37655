//! `qnas bench`'s integer-inference section: an exported int8 model on the `f32` path
//! (fake quantization, [`StaticNet::forward`]) against the integer engine
//! ([`supernet::int::IntNet`]).
//!
//! The member is the space's largest at uniform `Int(8)` weights and activations (pinned
//! layers keep their pins), recalibrated on the benchmark's input batch, extracted into a
//! [`StaticNet`], written to the deploy weights format and read back, so that it is what an
//! exported model is. The two engines run it alternately, step by step (f32, int, f32, ...),
//! each step a forward of the batch and a device sync; the medians are compared.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::tensor::{Device, Tensor};
use serde::Serialize;
use spaces::{Format, Space};
use supernet::int::IntNet;
use supernet::quant::WeightQuant;
use supernet::{StaticNet, Supernet};

use super::{
    BenchError, BenchOptions, BenchProgress, Measurement, Mode, Variant, event, format_counts,
    measurement,
};

/// The integer-inference figures of `qnas bench`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Int8Report {
    /// How many layers (convs and the classifier) use each `weights/activations` format
    /// pair.
    pub formats: BTreeMap<String, usize>,
    /// Conv layers the integer engine runs on integers.
    pub int_layers: usize,
    /// Conv layers of the member.
    pub layers: usize,
    /// Bytes of the member's `weights.safetensors`.
    pub weights_bytes: usize,
    /// The `f32` path: fake quantization, [`StaticNet::forward`].
    pub float: Measurement,
    /// The integer engine.
    pub int: Measurement,
    /// `float` median step time / `int` median step time.
    pub speedup: f64,
    /// Largest difference of the two engines' logits on the batch, relative to the largest
    /// logit magnitude.
    pub max_logit_difference: f32,
    /// Images of the batch whose predicted class differs between the engines.
    pub class_flips: usize,
}

/// Steps of this section, for the progress total: 0 when it does not run.
pub(crate) fn steps(space: &Space, opts: &BenchOptions) -> usize {
    if member(space).is_some() {
        2 * (opts.warmup + opts.steps)
    } else {
        0
    }
}

pub(crate) fn member(space: &Space) -> Option<spaces::Arch> {
    space.with_uniform_formats(&space.largest(), Format::Int(8), Format::Int(8))
}

/// The exported int8 member of `space`, recalibrated on `x`.
fn exported(
    space: &Space,
    x: &Tensor<4>,
    device: &Device,
) -> Result<Option<(StaticNet, usize)>, BenchError> {
    let Some(arch) = member(space) else {
        return Ok(None);
    };
    let plan = space.plan(&arch)?;
    let supernet = Supernet::new(space, device);
    supernet.recalibrate_plan(&plan, [x.clone()]);
    let extracted = supernet.extract(&arch)?;
    let bytes = extracted
        .to_safetensors()
        .map_err(|e| BenchError::Execution(e.to_string()))?;
    let net = StaticNet::from_safetensors(plan, &bytes, device)
        .map_err(|e| BenchError::Execution(e.to_string()))?
        .with_weight_quant(WeightQuant::for_space(space));
    Ok(Some((net, bytes.len())))
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap_or_default()
}

/// Runs the section on `x` (the benchmark's batch), or `None` when the space offers no
/// `Int(8)` for weights and activations or the device does not run our kernels (the integer
/// engine is a CPU engine on `flex`).
pub(crate) fn run(
    space: &Space,
    x: &Tensor<4>,
    device: &Device,
    opts: &BenchOptions,
    flop_per_image: f64,
    peak: f64,
    progress: &mut dyn BenchProgress,
) -> Result<Option<Int8Report>, BenchError> {
    if !supernet::kernels::active(device) {
        return Ok(None);
    }
    let Some((net, weights_bytes)) = exported(space, x, device)? else {
        return Ok(None);
    };
    let formats = format_counts(&net.plan);
    let layers = net.plan.convs().count();
    let int = IntNet::new(net);
    let float = int.net();
    let sync = || {
        device
            .sync()
            .map_err(|e| BenchError::Execution(format!("{e:?}")))
    };
    let mut times = [Vec::new(), Vec::new()];
    let mut logits = [Vec::new(), Vec::new()];
    for i in 0..opts.warmup + opts.steps {
        for (k, variant) in [Variant::Int8Float, Variant::Int8Int]
            .into_iter()
            .enumerate()
        {
            let t = Instant::now();
            let y = match variant {
                Variant::Int8Int => int.forward(x.clone()),
                _ => float.forward(x.clone()),
            };
            sync()?;
            let seconds = t.elapsed().as_secs_f64();
            if i == 0 {
                logits[k] = values(y);
            }
            progress.step(&event(Mode::Infer, variant, i, opts, seconds));
            if i >= opts.warmup {
                times[k].push(seconds);
            }
        }
    }
    let classes = space.classes as usize;
    let (max_logit_difference, class_flips) =
        supernet::int::logit_agreement(&logits[1], &logits[0], classes);
    let [f, n] = times;
    let float = measurement(f, opts.batch, flop_per_image, peak);
    let int_m = measurement(n, opts.batch, flop_per_image, peak);
    Ok(Some(Int8Report {
        formats,
        int_layers: int.int_layers(),
        layers,
        weights_bytes,
        speedup: float.median_s / int_m.median_s,
        float,
        int: int_m,
        max_logit_difference,
        class_flips,
    }))
}
