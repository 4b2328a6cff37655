//! The training backward (input, scale and shift gradients) and per-channel sums.

use rayon::prelude::*;

use super::{Layout, NONE, NormAct, NormStats, RELU, RELU6, check_param, check_rows, fold, passes};
use crate::kernels::copied;

/// Gradients of [`batch_norm_train`](super::batch_norm_train): `(dx, dgamma, dbeta)`.
///
/// `y` is the forward output, used for the activation's mask (ReLU passes the gradient where
/// `y > 0`, ReLU6 where `0 < y < 6`; it is not read for [`NormAct::None`]). With `g` the
/// masked `dy` and `xhat = (x - mean) * inv_std`: `dbeta = Σ g`, `dgamma = Σ g · xhat`,
/// `dx = gamma · inv_std · (g - dbeta / n - xhat · dgamma / n)` (sums over the `n` rows).
///
/// Reads `x`, `y`, `dy` once for the sums and once more to write `dx`.
///
/// # Shapes
///
/// `x`, `y`, `dy`: `rows × channels` (at least one row); `gamma` and each vector of `stats`:
/// `channels`. Returns `dx` with the shape of `x`, `dgamma` and `dbeta` with `channels`.
///
/// # Panics
///
/// On inconsistent lengths, zero channels or an empty `x`.
pub fn batch_norm_train_backward(
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    channels: usize,
    gamma: &[f32],
    stats: &NormStats,
    act: NormAct,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut dx = copied(dy);
    let (dgamma, dbeta) =
        batch_norm_train_backward_in_place(x, y, &mut dx, channels, gamma, stats, act);
    (dx, dgamma, dbeta)
}

/// [`batch_norm_train_backward`] in place: `g` holds the output gradient `dy` and becomes the
/// input gradient `dx` (no buffer to allocate and fill); returns `(dgamma, dbeta)`.
///
/// # Panics
///
/// As [`batch_norm_train_backward`].
pub fn batch_norm_train_backward_in_place(
    x: &[f32],
    y: &[f32],
    g: &mut [f32],
    channels: usize,
    gamma: &[f32],
    stats: &NormStats,
    act: NormAct,
) -> (Vec<f32>, Vec<f32>) {
    const WHAT: &str = "batch_norm_train_backward";
    let dy: &[f32] = g;
    let rows = check_rows(WHAT, x.len(), channels);
    assert!(rows > 0, "{WHAT}: no rows");
    assert_eq!(
        y.len(),
        x.len(),
        "{WHAT}: `y` has {} elements, `x` {}",
        y.len(),
        x.len()
    );
    assert_eq!(
        dy.len(),
        x.len(),
        "{WHAT}: `dy` has {} elements, `x` {}",
        dy.len(),
        x.len()
    );
    check_param(WHAT, "gamma", gamma.len(), channels);
    check_param(WHAT, "stats.mean", stats.mean.len(), channels);
    check_param(WHAT, "stats.var", stats.var.len(), channels);
    check_param(WHAT, "stats.inv_std", stats.inv_std.len(), channels);
    let layout = Layout::new(channels);
    let mean_l = layout.replicate(&stats.mean);

    // Pass 1: Σ g and Σ g (x - mean) per channel.
    let partial = |(xc, (yc, gc)): (&[f32], (&[f32], &[f32]))| match act {
        NormAct::None => backward_sums_chunk::<NONE>(xc, yc, gc, &mean_l, &layout),
        NormAct::Relu => backward_sums_chunk::<RELU>(xc, yc, gc, &mean_l, &layout),
        NormAct::Relu6 => backward_sums_chunk::<RELU6>(xc, yc, gc, &mean_l, &layout),
    };
    let partials: Vec<(Vec<f64>, Vec<f64>)> = x
        .par_chunks(layout.chunk)
        .zip(y.par_chunks(layout.chunk).zip(dy.par_chunks(layout.chunk)))
        .map(partial)
        .collect();
    let mut sum_g = vec![0.0f64; channels];
    let mut sum_gx = vec![0.0f64; channels];
    for (g, gx) in &partials {
        for c in 0..channels {
            sum_g[c] += g[c];
            sum_gx[c] += gx[c];
        }
    }

    // dx = k g + m (x - mean) + q per channel.
    let n = rows as f64;
    let mut dgamma = Vec::with_capacity(channels);
    let mut dbeta = Vec::with_capacity(channels);
    let (mut k, mut m, mut q) = (
        vec![0.0; channels],
        vec![0.0; channels],
        vec![0.0; channels],
    );
    for c in 0..channels {
        let inv_std = f64::from(stats.inv_std[c]);
        let dg = sum_gx[c] * inv_std;
        let db = sum_g[c];
        let kc = f64::from(gamma[c]) * inv_std;
        k[c] = kc as f32;
        m[c] = (-kc * inv_std * dg / n) as f32;
        q[c] = (-kc * db / n) as f32;
        dgamma.push(dg as f32);
        dbeta.push(db as f32);
    }
    let (k_l, m_l, q_l) = (
        layout.replicate(&k),
        layout.replicate(&m),
        layout.replicate(&q),
    );

    // Pass 2: dx, over dy.
    let coefs = [&mean_l[..], &k_l, &m_l, &q_l];
    g.par_chunks_mut(layout.chunk)
        .zip(x.par_chunks(layout.chunk).zip(y.par_chunks(layout.chunk)))
        .for_each(|(gc, (xc, yc))| match act {
            NormAct::None => backward_dx_chunk::<NONE>(gc, xc, yc, coefs),
            NormAct::Relu => backward_dx_chunk::<RELU>(gc, xc, yc, coefs),
            NormAct::Relu6 => backward_dx_chunk::<RELU6>(gc, xc, yc, coefs),
        });
    (dgamma, dbeta)
}

/// Per-channel sums of `x` over its rows (the bias gradient of a convolution).
///
/// # Shapes
///
/// `x`: `rows × channels` (`x.len() % channels == 0`, may be empty). Returns `channels`
/// sums.
///
/// # Panics
///
/// On inconsistent lengths or zero channels.
pub fn channel_sum(x: &[f32], channels: usize) -> Vec<f32> {
    check_rows("channel_sum", x.len(), channels);
    let layout = Layout::new(channels);
    let partials: Vec<Vec<f64>> = x
        .par_chunks(layout.chunk)
        .map(|x| pulp::Arch::new().dispatch(ChunkSum { x, layout: &layout }))
        .collect();
    let mut sum = vec![0.0f64; channels];
    for p in &partials {
        for (s, &v) in sum.iter_mut().zip(p) {
            *s += v;
        }
    }
    sum.iter().map(|&s| s as f32).collect()
}

fn backward_sums_chunk<const A: u8>(
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    mean: &[f32],
    layout: &Layout,
) -> (Vec<f64>, Vec<f64>) {
    pulp::Arch::new().dispatch(BackwardSums::<A> {
        x,
        y,
        dy,
        mean,
        layout,
    })
}

fn backward_dx_chunk<const A: u8>(g: &mut [f32], x: &[f32], y: &[f32], coefs: [&[f32]; 4]) {
    pulp::Arch::new().dispatch(BackwardDx::<A> { g, x, y, coefs });
}

// The chunk kernels below implement `pulp::WithSimd` with an `#[inline(always)]` body, so
// that their loops are compiled inside pulp's AVX2 / AVX-512 functions. (A closure passed to
// `dispatch` is not reliably inlined there: its `FnOnce` shim may stay out of line, compiled
// for the baseline SSE2.)

/// Per-channel sums of a chunk.
struct ChunkSum<'a> {
    x: &'a [f32],
    layout: &'a Layout,
}

impl pulp::WithSimd for ChunkSum<'_> {
    type Output = Vec<f64>;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> Vec<f64> {
        let Self { x, layout } = self;
        let mut acc = vec![0.0f32; layout.lanes];
        for block in x.chunks(layout.lanes) {
            for (a, &v) in acc.iter_mut().zip(block) {
                *a += v;
            }
        }
        fold(&acc, layout.channels)
    }
}

/// Σ g and Σ g (x - mean) per channel of a chunk, `g` being `dy` masked by the activation.
struct BackwardSums<'a, const A: u8> {
    x: &'a [f32],
    y: &'a [f32],
    dy: &'a [f32],
    mean: &'a [f32],
    layout: &'a Layout,
}

impl<const A: u8> pulp::WithSimd for BackwardSums<'_, A> {
    type Output = (Vec<f64>, Vec<f64>);

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> Self::Output {
        let Self {
            x,
            y,
            dy,
            mean,
            layout,
        } = self;
        let lanes = layout.lanes;
        let mut sum_g = vec![0.0f32; lanes];
        let mut sum_gx = vec![0.0f32; lanes];
        for ((xb, yb), gb) in x.chunks(lanes).zip(y.chunks(lanes)).zip(dy.chunks(lanes)) {
            for (((((sg, sgx), &mu), &x), &y), &dy) in sum_g
                .iter_mut()
                .zip(&mut sum_gx)
                .zip(mean)
                .zip(xb)
                .zip(yb)
                .zip(gb)
            {
                let g = if passes::<A>(y) { dy } else { 0.0 };
                *sg += g;
                *sgx += g * (x - mu);
            }
        }
        (
            fold(&sum_g, layout.channels),
            fold(&sum_gx, layout.channels),
        )
    }
}

/// `dx = k g + m (x - mean) + q` over a chunk; `coefs` = `[mean, k, m, q]`, replicated.
struct BackwardDx<'a, const A: u8> {
    /// `dy` on entry, `dx` on return.
    g: &'a mut [f32],
    x: &'a [f32],
    y: &'a [f32],
    coefs: [&'a [f32]; 4],
}

impl<const A: u8> pulp::WithSimd for BackwardDx<'_, A> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Self { g, x, y, coefs } = self;
        let [mean, k, m, q] = coefs;
        let lanes = mean.len();
        for ((gb, xb), yb) in g
            .chunks_mut(lanes)
            .zip(x.chunks(lanes))
            .zip(y.chunks(lanes))
        {
            for ((((((d, &x), &y), &mu), &k), &m), &q) in
                gb.iter_mut().zip(xb).zip(yb).zip(mean).zip(k).zip(m).zip(q)
            {
                let g = if passes::<A>(y) { *d } else { 0.0 };
                *d = k * g + m * (x - mu) + q;
            }
        }
    }
}
