//! The training forward (batch statistics, normalization, activation) and the inference
//! affine map.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::{
    Layout, NONE, NormAct, NormStats, RELU, RELU6, activate, check_param, check_rows, fold,
};
use crate::kernels::par_chunks_written;

/// Batch-norm training forward: `y = act(gamma * (x - mean) / sqrt(var + epsilon) + beta)`
/// with the batch statistics of each channel (biased variance).
///
/// Reads `x` twice: once for the statistics, once to normalize, activate and write `y`
/// (plus 64 sampled rows for the pivot of the statistics).
///
/// # Shapes
///
/// `x`: `rows × channels` (`x.len() % channels == 0`, at least one row); `gamma`, `beta`:
/// `channels`. Returns `y` with the shape of `x` and the statistics (`channels` each).
///
/// # Panics
///
/// On inconsistent lengths, zero channels or an empty `x`.
pub fn batch_norm_train(
    x: &[f32],
    channels: usize,
    gamma: &[f32],
    beta: &[f32],
    epsilon: f32,
    act: NormAct,
) -> (Vec<f32>, NormStats) {
    const WHAT: &str = "batch_norm_train";
    let rows = check_rows(WHAT, x.len(), channels);
    assert!(rows > 0, "{WHAT}: no rows to take batch statistics over");
    check_param(WHAT, "gamma", gamma.len(), channels);
    check_param(WHAT, "beta", beta.len(), channels);
    let layout = Layout::new(channels);

    let (mean, m2) = moments(x, &layout);
    let n = rows as f64;
    let var: Vec<f64> = m2.iter().map(|&m| (m / n).max(0.0)).collect();
    let inv_std: Vec<f64> = var
        .iter()
        .map(|&v| 1.0 / (v + f64::from(epsilon)).sqrt())
        .collect();
    let stats = NormStats {
        mean: mean.iter().map(|&m| m as f32).collect(),
        var: var.iter().map(|&v| v as f32).collect(),
        inv_std: inv_std.iter().map(|&s| s as f32).collect(),
    };

    let scale: Vec<f32> = gamma
        .iter()
        .zip(&inv_std)
        .map(|(&g, &s)| (f64::from(g) * s) as f32)
        .collect();
    let mean_l = layout.replicate(&stats.mean);
    let scale_l = layout.replicate(&scale);
    let beta_l = layout.replicate(beta);
    let write = |i: usize, yc: &mut [MaybeUninit<f32>]| {
        let xc = &x[i * layout.chunk..][..yc.len()];
        match act {
            NormAct::None => normalize_chunk::<NONE>(yc, xc, &mean_l, &scale_l, &beta_l),
            NormAct::Relu => normalize_chunk::<RELU>(yc, xc, &mean_l, &scale_l, &beta_l),
            NormAct::Relu6 => normalize_chunk::<RELU6>(yc, xc, &mean_l, &scale_l, &beta_l),
        }
    };
    #[allow(unsafe_code)]
    // SAFETY: `Normalize` writes every value of its output (or panics).
    let y = unsafe { par_chunks_written(x.len(), layout.chunk, write) };
    (y, stats)
}

/// Inference batch norm (or any per-channel affine map): `y = act(x * scale + shift)`.
///
/// # Shapes
///
/// `x`: `rows × channels` (`x.len() % channels == 0`, may be empty); `scale`, `shift`:
/// `channels`. Returns `y` with the shape of `x`.
///
/// # Panics
///
/// On inconsistent lengths or zero channels.
pub fn affine(x: &[f32], channels: usize, scale: &[f32], shift: &[f32], act: NormAct) -> Vec<f32> {
    const WHAT: &str = "affine";
    check_rows(WHAT, x.len(), channels);
    check_param(WHAT, "scale", scale.len(), channels);
    check_param(WHAT, "shift", shift.len(), channels);
    let layout = Layout::new(channels);
    let scale_l = layout.replicate(scale);
    let shift_l = layout.replicate(shift);
    let write = |i: usize, yc: &mut [MaybeUninit<f32>]| {
        let xc = &x[i * layout.chunk..][..yc.len()];
        match act {
            NormAct::None => affine_chunk::<NONE>(yc, xc, &scale_l, &shift_l),
            NormAct::Relu => affine_chunk::<RELU>(yc, xc, &scale_l, &shift_l),
            NormAct::Relu6 => affine_chunk::<RELU6>(yc, xc, &scale_l, &shift_l),
        }
    };
    #[allow(unsafe_code)]
    // SAFETY: `Affine` writes every value of its output (or panics).
    unsafe {
        par_chunks_written(x.len(), layout.chunk, write)
    }
}

/// Mean and centred sum of squares per channel, in one pass over `x`.
///
/// Each chunk sums the deviations `d = x - pivot` and their squares in `f32` lanes, the
/// pivot being the mean of up to [`PIVOT_ROWS`] rows spread evenly over the tensor: close to
/// the true mean (within a fraction of the spread for any reasonable distribution), so that
/// `Σ d² - (Σ d)² / n` does not cancel catastrophically even when the mean is large relative
/// to the spread. The chunks are then combined in order (Chan et al.) in `f64`.
fn moments(x: &[f32], layout: &Layout) -> (Vec<f64>, Vec<f64>) {
    let channels = layout.channels;
    let rows = x.len() / channels;
    let samples = rows.min(PIVOT_ROWS);
    let mut pivot = vec![0.0f64; channels];
    for i in 0..samples {
        let r = i * rows / samples;
        for (p, &v) in pivot.iter_mut().zip(&x[r * channels..(r + 1) * channels]) {
            *p += f64::from(v);
        }
    }
    let pivot: Vec<f32> = pivot.iter().map(|&p| (p / samples as f64) as f32).collect();
    let pivot_l = layout.replicate(&pivot);
    let partials: Vec<(f64, Vec<f64>, Vec<f64>)> = x
        .par_chunks(layout.chunk)
        .map(|x| {
            let (n, sum_d, sum_d2) = pulp::Arch::new().dispatch(ChunkMoments {
                x,
                pivot: &pivot_l,
                layout,
            });
            let mean = pivot
                .iter()
                .zip(&sum_d)
                .map(|(&p, &d)| f64::from(p) + d / n)
                .collect();
            let m2 = sum_d2
                .iter()
                .zip(&sum_d)
                .map(|(&d2, &d)| (d2 - d * d / n).max(0.0))
                .collect();
            (n, mean, m2)
        })
        .collect();
    let mut count = 0.0f64;
    let mut mean = vec![0.0f64; channels];
    let mut m2 = vec![0.0f64; channels];
    for (nb, mean_b, m2_b) in &partials {
        let n = count + nb;
        for c in 0..channels {
            let delta = mean_b[c] - mean[c];
            mean[c] += delta * nb / n;
            m2[c] += m2_b[c] + delta * delta * count * nb / n;
        }
        count = n;
    }
    (mean, m2)
}

/// Rows sampled for the pivot of [`moments`].
const PIVOT_ROWS: usize = 64;

fn normalize_chunk<const A: u8>(
    y: &mut [MaybeUninit<f32>],
    x: &[f32],
    mean: &[f32],
    scale: &[f32],
    beta: &[f32],
) {
    pulp::Arch::new().dispatch(Normalize::<A> {
        y,
        x,
        mean,
        scale,
        beta,
    });
}

fn affine_chunk<const A: u8>(y: &mut [MaybeUninit<f32>], x: &[f32], scale: &[f32], shift: &[f32]) {
    pulp::Arch::new().dispatch(Affine::<A> { y, x, scale, shift });
}

// The chunk kernels below implement `pulp::WithSimd` with an `#[inline(always)]` body, so
// that their loops are compiled inside pulp's AVX2 / AVX-512 functions. (A closure passed to
// `dispatch` is not reliably inlined there: its `FnOnce` shim may stay out of line, compiled
// for the baseline SSE2.)

/// `(rows, Σ d, Σ d²)` per channel of a chunk, with `d = x - pivot` (`pivot` replicated).
struct ChunkMoments<'a> {
    x: &'a [f32],
    pivot: &'a [f32],
    layout: &'a Layout,
}

impl pulp::WithSimd for ChunkMoments<'_> {
    type Output = (f64, Vec<f64>, Vec<f64>);

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> Self::Output {
        let Self { x, pivot, layout } = self;
        let (channels, lanes) = (layout.channels, layout.lanes);
        let mut sum_d = vec![0.0f32; lanes];
        let mut sum_d2 = vec![0.0f32; lanes];
        for block in x.chunks(lanes) {
            for (((sd, sd2), &p), &v) in sum_d.iter_mut().zip(&mut sum_d2).zip(pivot).zip(block) {
                let d = v - p;
                *sd += d;
                *sd2 += d * d;
            }
        }
        (
            (x.len() / channels) as f64,
            fold(&sum_d, channels),
            fold(&sum_d2, channels),
        )
    }
}

/// `y = act((x - mean) * scale + beta)` over a chunk (per-channel vectors replicated): writes
/// every value of `y`.
struct Normalize<'a, const A: u8> {
    y: &'a mut [MaybeUninit<f32>],
    x: &'a [f32],
    mean: &'a [f32],
    scale: &'a [f32],
    beta: &'a [f32],
}

impl<const A: u8> pulp::WithSimd for Normalize<'_, A> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Self {
            y,
            x,
            mean,
            scale,
            beta,
        } = self;
        let lanes = mean.len();
        // every value of `y` is written: one per value of `x`, each block's parameters as
        // long as the block
        assert!(y.len() == x.len() && scale.len() == lanes && beta.len() == lanes);
        for (yb, xb) in y.chunks_mut(lanes).zip(x.chunks(lanes)) {
            for ((((y, &x), &mu), &s), &b) in yb.iter_mut().zip(xb).zip(mean).zip(scale).zip(beta) {
                y.write(activate::<A>((x - mu) * s + b));
            }
        }
    }
}

/// `y = act(x * scale + shift)` over a chunk (per-channel vectors replicated): writes every
/// value of `y`.
struct Affine<'a, const A: u8> {
    y: &'a mut [MaybeUninit<f32>],
    x: &'a [f32],
    scale: &'a [f32],
    shift: &'a [f32],
}

impl<const A: u8> pulp::WithSimd for Affine<'_, A> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Self { y, x, scale, shift } = self;
        let lanes = scale.len();
        // every value of `y` is written (as in `Normalize`)
        assert!(y.len() == x.len() && shift.len() == lanes);
        for (yb, xb) in y.chunks_mut(lanes).zip(x.chunks(lanes)) {
            for (((y, &x), &s), &b) in yb.iter_mut().zip(xb).zip(scale).zip(shift) {
                y.write(activate::<A>(x * s + b));
            }
        }
    }
}
