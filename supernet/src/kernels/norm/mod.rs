//! Batch norm over the channel dimension of NHWC activations (training forward and backward,
//! inference affine, fused ReLU / ReLU6) and per-channel sums, on plain `f32` slices.
//!
//! A tensor is `rows × channels`, channel innermost and contiguous (`rows = batch · height ·
//! width`). Every kernel splits the rows into chunks whose size depends only on the channel
//! count (never on the thread count), works on the chunks in parallel on rayon's global pool
//! and reduces per-chunk partial sums in chunk order, in `f64`: results are the same whatever
//! the number of threads.
//!
//! Within a chunk the per-channel vectors are replicated to a lane count that is a multiple
//! of both the channel count and 16, at least 256 (see `Layout`; one row for very wide
//! tensors), so that the hot loops run over long
//! flat blocks of memory (lane `j` of a block is channel `j % channels`) and vectorize for
//! any channel count. The loops are compiled for AVX2 / AVX-512 through pulp's runtime
//! dispatch.
//!
//! Statistics are computed robustly in one pass: per chunk, sums of the deviations from a
//! pivot close to the mean (the mean of 64 rows sampled evenly over the tensor) and of their
//! squares, so a large mean relative to the spread does not cancel; chunks are combined with
//! Chan et al.'s parallel formula in `f64`.
//!
//! The code: `forward.rs` has the training forward (statistics, normalization) and the
//! inference affine map, `backward.rs` the training backward and the per-channel sums,
//! `residual.rs` the residual add with its activation and the activation's gradient; this
//! file the layout of the chunks and the activations they share.

mod backward;
mod forward;
mod residual;
#[cfg(test)]
mod tests;

pub use backward::{batch_norm_train_backward, batch_norm_train_backward_in_place, channel_sum};
pub use forward::{affine, batch_norm_train};
pub use residual::{act_backward, act_backward_in_place, add_act};

/// The activation fused after a batch norm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NormAct {
    /// The identity.
    None,
    /// `max(v, 0)`.
    Relu,
    /// `min(max(v, 0), 6)`.
    Relu6,
}

/// What the training forward keeps for the backward pass, one value per channel.
#[derive(Clone, Debug, PartialEq)]
pub struct NormStats {
    /// Batch mean.
    pub mean: Vec<f32>,
    /// Batch variance, biased (divided by the row count).
    pub var: Vec<f32>,
    /// `1 / sqrt(var + epsilon)`.
    pub inv_std: Vec<f32>,
}

/// Elements per chunk aimed at: 64 KiB of `f32`, which stays in L2 between the two passes
/// over a chunk.
const TARGET_CHUNK: usize = 16 * 1024;

/// Fewest lanes in a block: enough for the per-block loop overhead not to matter.
const MIN_LANES: usize = 256;

/// Most lanes in a block (8 KiB of `f32`) when rounding up to a multiple of 16 and of the
/// channel count; beyond, a block is one row.
const MAX_LANES: usize = 2048;

/// How the kernels cut a `rows × channels` tensor: into chunks of `chunk` elements (a whole
/// number of rows, fixed by the channel count alone) and, within a chunk, into blocks of
/// `lanes` elements (a whole number of rows too), over which the per-channel vectors are
/// replicated.
#[derive(Clone, Copy, Debug)]
struct Layout {
    channels: usize,
    lanes: usize,
    chunk: usize,
}

impl Layout {
    fn new(channels: usize) -> Self {
        let lcm = channels * (16 / gcd(channels, 16));
        let lanes = if lcm > MAX_LANES {
            channels
        } else {
            lcm * MIN_LANES.div_ceil(lcm)
        };
        let rows_per_block = lanes / channels;
        let rows = (TARGET_CHUNK / channels / rows_per_block * rows_per_block).max(rows_per_block);
        Self {
            channels,
            lanes,
            chunk: rows * channels,
        }
    }

    /// `v` (one value per channel) repeated over the lanes.
    fn replicate(&self, v: &[f32]) -> Vec<f32> {
        v.iter().copied().cycle().take(self.lanes).collect()
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Sums lanes into channels (lane `j` is channel `j % channels`), in lane order.
fn fold(acc: &[f32], channels: usize) -> Vec<f64> {
    let mut out = vec![0.0f64; channels];
    for part in acc.chunks(channels) {
        for (o, &a) in out.iter_mut().zip(part) {
            *o += f64::from(a);
        }
    }
    out
}

fn check_rows(what: &str, len: usize, channels: usize) -> usize {
    assert!(channels > 0, "{what}: zero channels");
    assert!(
        len.is_multiple_of(channels),
        "{what}: {len} elements are not a whole number of rows of {channels} channels"
    );
    len / channels
}

fn check_param(what: &str, name: &str, len: usize, channels: usize) {
    assert_eq!(
        len, channels,
        "{what}: `{name}` has {len} values for {channels} channels"
    );
}

const NONE: u8 = 0;
const RELU: u8 = 1;
const RELU6: u8 = 2;

/// The activation `A` of a pre-activation value.
#[inline(always)]
fn activate<const A: u8>(v: f32) -> f32 {
    match A {
        NONE => v,
        // written so that NaN passes through (as burn's relu and clamp do): a non-finite
        // loss must stay visible
        RELU => {
            if v < 0.0 {
                0.0
            } else {
                v
            }
        }
        // f32::clamp keeps NaN
        _ => v.clamp(0.0, 6.0),
    }
}

/// Whether activation `A` passes the gradient at output `y`.
#[inline(always)]
fn passes<const A: u8>(y: f32) -> bool {
    match A {
        NONE => true,
        RELU => y > 0.0,
        _ => y > 0.0 && y < 6.0,
    }
}
