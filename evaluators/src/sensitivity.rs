//! The HAWQ-V3 baseline's measurement: the largest member of a trained supernet, recalibrated
//! by the one evaluator, cut out, and its layers' Hessian traces estimated on the first
//! training images ([`supernet::hessian`]); each format decision's sensitivity at a candidate
//! format pair is `Σ_layers max(Tr(H_l), 0) · ‖W_l − Q_f(W_l)‖²` over the decision's layers
//! (a negative estimate, possible away from a minimum, counts as 0 rather than rewarding
//! quantization). The table goes to the search crate's `hawq` strategy.

use burn::tensor::Device;
use search::strategy::hawq::{GroupSensitivity, Sensitivity, candidates};
use serde::{Deserialize, Serialize};
use spaces::plan::group_of;
use spaces::{ArchError, HawqSettings, Space};
use supernet::hessian::{HessianConfig, quantization_error, weight_traces};
use supernet::quant::WeightQuant;

use crate::data::{DataError, SearchData};
use crate::supernet_eval::SupernetEvaluator;

/// Schema tag of [`HawqMeasurement`].
pub const HAWQ_SCHEMA: &str = "qnas.hawq/1";

/// One layer's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerSensitivity {
    /// Layer name.
    pub layer: String,
    /// Its format decision (`None` when pinned).
    pub group: Option<String>,
    /// Weights in the layer.
    pub weights: usize,
    /// The estimated Hessian trace of its weights.
    pub trace: f64,
    /// The estimate's standard error.
    pub std_error: f64,
    /// `(weight format, ‖W − Q(W)‖²)` for each weight format of the space.
    pub errors: Vec<(String, f64)>,
}

/// What the baseline measured: the settings, every layer's figures and the decisions' table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HawqMeasurement {
    /// [`HAWQ_SCHEMA`].
    pub schema: String,
    /// The settings used.
    pub settings: HawqSettings,
    /// The seed of the random vectors.
    pub seed: u64,
    /// Training images the loss was taken over.
    pub images: usize,
    /// Per layer, in network order.
    pub layers: Vec<LayerSensitivity>,
    /// Per format decision and candidate pair.
    pub sensitivity: Sensitivity,
}

/// Why the sensitivities could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum SensitivityError {
    /// The data could not be batched.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The largest member is not a member (a damaged space).
    #[error(transparent)]
    Arch(#[from] ArchError),
    /// The training split has no image.
    #[error("the training split has no images to measure the Hessian on")]
    NoImages,
}

/// Measures the sensitivities of `space`'s format decisions on the trained supernet behind
/// `ev` (see the module docs), with `settings`' vectors and images and seed `seed`, the
/// Hessian products on `device`'s autodiff twin.
pub fn hawq_sensitivity(
    space: &Space,
    ev: &SupernetEvaluator<'_>,
    data: &SearchData,
    settings: &HawqSettings,
    seed: u64,
    device: &Device,
) -> Result<HawqMeasurement, SensitivityError> {
    let largest = space.largest();
    let net = ev.with_member(0, &largest, |net, _| net.extract(&largest))??;
    let loader = data.eval_loader(data.train.clone(), settings.images.max(1) as usize)?;
    let batch = loader
        .host_epoch(0)
        .next()
        .ok_or(SensitivityError::NoImages)?;
    let images = batch.len();
    let ad = device.clone().autodiff();
    let batch = batch.to_device(&ad);
    let traces = weight_traces(
        &net,
        batch.images,
        batch.labels,
        &HessianConfig {
            samples: settings.samples.max(1) as usize,
            seed,
            ..HessianConfig::default()
        },
    );
    let quant = WeightQuant::for_space(space);
    let formats = &space.quantization.weights;
    let layers: Vec<LayerSensitivity> = traces
        .into_iter()
        .map(|t| {
            let errors = formats
                .iter()
                .map(|&f| {
                    let e = quantization_error(&net, &t.name, f, quant).unwrap_or(f64::NAN);
                    (f.to_string(), e)
                })
                .collect();
            LayerSensitivity {
                group: group_of(space, &t.name),
                layer: t.name,
                weights: t.weights,
                trace: t.trace,
                std_error: t.std_error,
                errors,
            }
        })
        .collect();
    let groups = candidates(space)
        .into_iter()
        .map(|(g, pairs)| {
            let options = pairs
                .into_iter()
                .map(|p| {
                    let w = p.weights.to_string();
                    let omega: f64 = layers
                        .iter()
                        .filter(|l| l.group.as_deref() == Some(g.as_str()))
                        .map(|l| {
                            let err = l
                                .errors
                                .iter()
                                .find(|(f, _)| *f == w)
                                .map_or(f64::NAN, |(_, e)| *e);
                            l.trace.max(0.0) * err
                        })
                        .sum();
                    (p, omega)
                })
                .collect();
            (g, GroupSensitivity { options })
        })
        .collect();
    Ok(HawqMeasurement {
        schema: HAWQ_SCHEMA.into(),
        settings: settings.clone(),
        seed,
        images,
        layers,
        sensitivity: Sensitivity { groups },
    })
}
