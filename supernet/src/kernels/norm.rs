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

use rayon::prelude::*;

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
    let mut y = zeros(x.len());
    let body = |(yc, xc): (&mut [f32], &[f32])| match act {
        NormAct::None => normalize_chunk::<NONE>(yc, xc, &mean_l, &scale_l, &beta_l),
        NormAct::Relu => normalize_chunk::<RELU>(yc, xc, &mean_l, &scale_l, &beta_l),
        NormAct::Relu6 => normalize_chunk::<RELU6>(yc, xc, &mean_l, &scale_l, &beta_l),
    };
    y.par_chunks_mut(layout.chunk)
        .zip(x.par_chunks(layout.chunk))
        .for_each(body);
    (y, stats)
}

/// Gradients of [`batch_norm_train`]: `(dx, dgamma, dbeta)`.
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
    const WHAT: &str = "batch_norm_train_backward";
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

    // Pass 2: dx.
    let mut dx = zeros(x.len());
    let coefs = [&mean_l[..], &k_l, &m_l, &q_l];
    dx.par_chunks_mut(layout.chunk)
        .zip(
            x.par_chunks(layout.chunk)
                .zip(y.par_chunks(layout.chunk).zip(dy.par_chunks(layout.chunk))),
        )
        .for_each(|(dxc, (xc, (yc, gc)))| match act {
            NormAct::None => backward_dx_chunk::<NONE>(dxc, xc, yc, gc, coefs),
            NormAct::Relu => backward_dx_chunk::<RELU>(dxc, xc, yc, gc, coefs),
            NormAct::Relu6 => backward_dx_chunk::<RELU6>(dxc, xc, yc, gc, coefs),
        });
    (dx, dgamma, dbeta)
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
    let mut y = zeros(x.len());
    let body = |(yc, xc): (&mut [f32], &[f32])| match act {
        NormAct::None => affine_chunk::<NONE>(yc, xc, &scale_l, &shift_l),
        NormAct::Relu => affine_chunk::<RELU>(yc, xc, &scale_l, &shift_l),
        NormAct::Relu6 => affine_chunk::<RELU6>(yc, xc, &scale_l, &shift_l),
    };
    y.par_chunks_mut(layout.chunk)
        .zip(x.par_chunks(layout.chunk))
        .for_each(body);
    y
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

/// `act(a + b)` elementwise: a residual connection and the activation after it, in one pass.
///
/// # Shapes
///
/// `a`, `b`: the same length. Returns that length.
///
/// # Panics
///
/// If the lengths differ.
pub fn add_act(a: &[f32], b: &[f32], act: NormAct) -> Vec<f32> {
    assert_eq!(
        a.len(),
        b.len(),
        "add_act: inputs of {} and {} values",
        a.len(),
        b.len()
    );
    let mut y = zeros(a.len());
    y.par_chunks_mut(TARGET_CHUNK)
        .zip(a.par_chunks(TARGET_CHUNK).zip(b.par_chunks(TARGET_CHUNK)))
        .for_each(|(y, (a, b))| match act {
            NormAct::None => pulp::Arch::new().dispatch(AddAct::<NONE> { y, a, b }),
            NormAct::Relu => pulp::Arch::new().dispatch(AddAct::<RELU> { y, a, b }),
            NormAct::Relu6 => pulp::Arch::new().dispatch(AddAct::<RELU6> { y, a, b }),
        });
    y
}

/// The gradient through an activation, from its output `y`: `dy` where the activation
/// passes (`y > 0` for ReLU, `0 < y < 6` for ReLU6, everywhere for none), 0 elsewhere.
///
/// # Shapes
///
/// `y`, `dy`: the same length. Returns that length.
///
/// # Panics
///
/// If the lengths differ.
pub fn act_backward(y: &[f32], dy: &[f32], act: NormAct) -> Vec<f32> {
    assert_eq!(
        y.len(),
        dy.len(),
        "act_backward: {} outputs and {} gradients",
        y.len(),
        dy.len()
    );
    let mut dx = zeros(y.len());
    dx.par_chunks_mut(TARGET_CHUNK)
        .zip(y.par_chunks(TARGET_CHUNK).zip(dy.par_chunks(TARGET_CHUNK)))
        .for_each(|(dx, (y, dy))| match act {
            NormAct::None => dx.copy_from_slice(dy),
            NormAct::Relu => pulp::Arch::new().dispatch(ActBackward::<RELU> { dx, y, dy }),
            NormAct::Relu6 => pulp::Arch::new().dispatch(ActBackward::<RELU6> { dx, y, dy }),
        });
    dx
}

struct AddAct<'a, const A: u8> {
    y: &'a mut [f32],
    a: &'a [f32],
    b: &'a [f32],
}

impl<const A: u8> pulp::WithSimd for AddAct<'_, A> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for ((y, &a), &b) in self.y.iter_mut().zip(self.a).zip(self.b) {
            *y = activate::<A>(a + b);
        }
    }
}

struct ActBackward<'a, const A: u8> {
    dx: &'a mut [f32],
    y: &'a [f32],
    dy: &'a [f32],
}

impl<const A: u8> pulp::WithSimd for ActBackward<'_, A> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for ((dx, &y), &dy) in self.dx.iter_mut().zip(self.y).zip(self.dy) {
            *dx = if passes::<A>(y) { dy } else { 0.0 };
        }
    }
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

/// A zeroed output buffer, written by all threads (rather than one thread's `memset` inside
/// `calloc` when the allocator reuses memory).
fn zeros(len: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    v.par_extend(rayon::iter::repeat_n(0.0f32, len));
    v
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
    y: &mut [f32],
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

fn affine_chunk<const A: u8>(y: &mut [f32], x: &[f32], scale: &[f32], shift: &[f32]) {
    pulp::Arch::new().dispatch(Affine::<A> { y, x, scale, shift });
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

fn backward_dx_chunk<const A: u8>(
    dx: &mut [f32],
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    coefs: [&[f32]; 4],
) {
    pulp::Arch::new().dispatch(BackwardDx::<A> {
        dx,
        x,
        y,
        dy,
        coefs,
    });
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

/// `y = act((x - mean) * scale + beta)` over a chunk (per-channel vectors replicated).
struct Normalize<'a, const A: u8> {
    y: &'a mut [f32],
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
        for (yb, xb) in y.chunks_mut(lanes).zip(x.chunks(lanes)) {
            for ((((y, &x), &mu), &s), &b) in yb.iter_mut().zip(xb).zip(mean).zip(scale).zip(beta) {
                *y = activate::<A>((x - mu) * s + b);
            }
        }
    }
}

/// `y = act(x * scale + shift)` over a chunk (per-channel vectors replicated).
struct Affine<'a, const A: u8> {
    y: &'a mut [f32],
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
        for (yb, xb) in y.chunks_mut(lanes).zip(x.chunks(lanes)) {
            for (((y, &x), &s), &b) in yb.iter_mut().zip(xb).zip(scale).zip(shift) {
                *y = activate::<A>(x * s + b);
            }
        }
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
    dx: &'a mut [f32],
    x: &'a [f32],
    y: &'a [f32],
    dy: &'a [f32],
    coefs: [&'a [f32]; 4],
}

impl<const A: u8> pulp::WithSimd for BackwardDx<'_, A> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Self {
            dx,
            x,
            y,
            dy,
            coefs,
        } = self;
        let [mean, k, m, q] = coefs;
        let lanes = mean.len();
        for (((dxb, xb), yb), gb) in dx
            .chunks_mut(lanes)
            .zip(x.chunks(lanes))
            .zip(y.chunks(lanes))
            .zip(dy.chunks(lanes))
        {
            for (((((((dx, &x), &y), &dy), &mu), &k), &m), &q) in dxb
                .iter_mut()
                .zip(xb)
                .zip(yb)
                .zip(gb)
                .zip(mean)
                .zip(k)
                .zip(m)
                .zip(q)
            {
                let g = if passes::<A>(y) { dy } else { 0.0 };
                *dx = k * g + m * (x - mu) + q;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64, mapped to uniform values in [-1, 1).
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn uniform(&mut self) -> f32 {
            ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }

        fn vec(&mut self, len: usize, center: f32, spread: f32) -> Vec<f32> {
            (0..len).map(|_| center + spread * self.uniform()).collect()
        }
    }

    const EPS: f32 = 1e-5;
    const ACTS: [NormAct; 3] = [NormAct::None, NormAct::Relu, NormAct::Relu6];

    fn act64(act: NormAct, v: f64) -> f64 {
        match act {
            NormAct::None => v,
            NormAct::Relu => v.max(0.0),
            NormAct::Relu6 => v.clamp(0.0, 6.0),
        }
    }

    fn passes64(act: NormAct, pre: f64) -> bool {
        match act {
            NormAct::None => true,
            NormAct::Relu => pre > 0.0,
            NormAct::Relu6 => pre > 0.0 && pre < 6.0,
        }
    }

    struct Reference {
        mean: Vec<f64>,
        var: Vec<f64>,
        pre: Vec<f64>,
        y: Vec<f64>,
    }

    /// The textbook forward in f64 (two passes, biased variance).
    fn reference_forward(
        x: &[f32],
        c: usize,
        gamma: &[f32],
        beta: &[f32],
        eps: f64,
        act: NormAct,
    ) -> Reference {
        let n = (x.len() / c) as f64;
        let mut mean = vec![0.0; c];
        for (i, &v) in x.iter().enumerate() {
            mean[i % c] += f64::from(v) / n;
        }
        let mut var = vec![0.0; c];
        for (i, &v) in x.iter().enumerate() {
            var[i % c] += (f64::from(v) - mean[i % c]).powi(2) / n;
        }
        let pre: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let ch = i % c;
                f64::from(gamma[ch]) * (f64::from(v) - mean[ch]) / (var[ch] + eps).sqrt()
                    + f64::from(beta[ch])
            })
            .collect();
        let y = pre.iter().map(|&p| act64(act, p)).collect();
        Reference { mean, var, pre, y }
    }

    /// The textbook backward in f64: `(dx, dgamma, dbeta)`.
    fn reference_backward(
        x: &[f32],
        dy: &[f32],
        c: usize,
        gamma: &[f32],
        r: &Reference,
        eps: f64,
        mask: &[bool],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let n = (x.len() / c) as f64;
        let inv_std: Vec<f64> = r.var.iter().map(|&v| 1.0 / (v + eps).sqrt()).collect();
        let xhat = |i: usize| (f64::from(x[i]) - r.mean[i % c]) * inv_std[i % c];
        let g = |i: usize| {
            if mask[i] { f64::from(dy[i]) } else { 0.0 }
        };
        let mut dgamma = vec![0.0; c];
        let mut dbeta = vec![0.0; c];
        for i in 0..x.len() {
            dgamma[i % c] += g(i) * xhat(i);
            dbeta[i % c] += g(i);
        }
        let dx = (0..x.len())
            .map(|i| {
                let ch = i % c;
                f64::from(gamma[ch]) * inv_std[ch] / n
                    * (n * g(i) - dbeta[ch] - xhat(i) * dgamma[ch])
            })
            .collect();
        (dx, dgamma, dbeta)
    }

    /// Max-norm closeness: `|a - b| <= tol * (1 + max |b|)`.
    fn assert_close(what: &str, a: &[f32], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        let scale = 1.0 + b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (i, (&a, &b)) in a.iter().zip(b).enumerate() {
            assert!(
                (f64::from(a) - b).abs() <= tol * scale,
                "{what}[{i}]: {a} vs reference {b} (tolerance {})",
                tol * scale
            );
        }
    }

    fn check_case(rng: &mut Rng, rows: usize, c: usize, act: NormAct, center: f32, spread: f32) {
        let what = format!("rows {rows}, channels {c}, {act:?}, x ~ {center} ± {spread}");
        let x = rng.vec(rows * c, center, spread);
        let gamma = rng.vec(c, 1.0, 0.5);
        // Shifts around 1 so that ReLU6 sees both kinks.
        let beta = rng.vec(c, 1.0, 2.0);
        let dy = rng.vec(rows * c, 0.0, 1.0);
        let (y, stats) = batch_norm_train(&x, c, &gamma, &beta, EPS, act);
        let r = reference_forward(&x, c, &gamma, &beta, f64::from(EPS), act);
        // Relative to the spread for the statistics: a large mean must not spoil the variance.
        let sp = f64::from(spread);
        for ch in 0..c {
            assert!(
                (f64::from(stats.mean[ch]) - r.mean[ch]).abs()
                    <= 1e-4 * sp + 1e-7 * r.mean[ch].abs(),
                "{what}: mean[{ch}] {} vs {}",
                stats.mean[ch],
                r.mean[ch]
            );
            assert!(
                (f64::from(stats.var[ch]) - r.var[ch]).abs() <= 1e-4 * sp * sp,
                "{what}: var[{ch}] {} vs {}",
                stats.var[ch],
                r.var[ch]
            );
            let inv = 1.0 / (r.var[ch] + f64::from(EPS)).sqrt();
            assert!((f64::from(stats.inv_std[ch]) - inv).abs() <= 1e-5 * inv);
        }
        // The f32 mean itself is only within half an ulp (6e-8 |mean|) of the truth, which is
        // up to ~1e-7 |mean| / spread in normalized units.
        let tol = 2e-5 + 2e-7 * f64::from(center.abs()) / sp;
        assert_close(&format!("{what}: y"), &y, &r.y, tol);

        let (dx, dgamma, dbeta) = batch_norm_train_backward(&x, &y, &dy, c, &gamma, &stats, act);
        // The mask comes from the kernel's own output (as documented): near a kink the f64
        // pre-activation may fall on the other side.
        let mask: Vec<bool> = y.iter().map(|&v| passes64(act, f64::from(v))).collect();
        let (rdx, rdgamma, rdbeta) =
            reference_backward(&x, &dy, c, &gamma, &r, f64::from(EPS), &mask);
        assert_close(&format!("{what}: dx"), &dx, &rdx, tol * 2.0);
        assert_close(&format!("{what}: dgamma"), &dgamma, &rdgamma, tol);
        assert_close(&format!("{what}: dbeta"), &dbeta, &rdbeta, 1e-5);
    }

    #[test]
    fn matches_the_f64_reference() {
        let mut rng = Rng(1);
        for c in [1, 3, 16, 17, 64, 96] {
            for rows in [1, 2, 7, 1000, 5000] {
                for act in ACTS {
                    check_case(&mut rng, rows, c, act, 0.3, 2.0);
                }
            }
        }
    }

    #[test]
    fn large_mean_keeps_the_variance() {
        let mut rng = Rng(2);
        for c in [1, 3, 16, 64] {
            for rows in [7, 5000] {
                for act in ACTS {
                    check_case(&mut rng, rows, c, act, 1000.0, 0.1);
                }
            }
        }
        // One constant channel: zero variance, y = beta.
        let x = vec![1000.0f32; 3000];
        let (y, stats) = batch_norm_train(&x, 1, &[2.0], &[0.5], EPS, NormAct::None);
        assert_eq!(stats.var, vec![0.0]);
        assert!(y.iter().all(|&v| v == 0.5));
    }

    /// The statistics stay accurate when the rows sampled for the pivot are outliers.
    #[test]
    fn outlying_pivot_rows_keep_the_variance() {
        let mut rng = Rng(7);
        let (rows, c) = (64 * 80, 16);
        let mut x = rng.vec(rows * c, 1000.0, 0.1);
        for i in 0..64 {
            let r = i * rows / 64;
            for v in &mut x[r * c..(r + 1) * c] {
                *v += 5.0;
            }
        }
        let gamma = vec![1.0; c];
        let beta = vec![0.0; c];
        let (y, stats) = batch_norm_train(&x, c, &gamma, &beta, 0.0, NormAct::None);
        let r = reference_forward(&x, c, &gamma, &beta, 0.0, NormAct::None);
        for ch in 0..c {
            let rel = (f64::from(stats.var[ch]) - r.var[ch]).abs() / r.var[ch];
            assert!(
                rel < 1e-4,
                "var[{ch}] {} vs {} ({rel:e})",
                stats.var[ch],
                r.var[ch]
            );
        }
        assert_close("y", &y, &r.y, 1e-3);
    }

    /// Central differences of `L = Σ w · y` in f64 around the reference, for all activations.
    #[test]
    fn reference_backward_matches_finite_differences() {
        let mut rng = Rng(3);
        let (rows, c) = (5, 3);
        let h = 1e-6;
        for act in ACTS {
            let x = rng.vec(rows * c, 0.0, 1.0);
            let gamma = rng.vec(c, 1.0, 0.5);
            let beta = rng.vec(c, 1.0, 2.0);
            let w = rng.vec(rows * c, 0.0, 1.0);
            let r = reference_forward(&x, c, &gamma, &beta, f64::from(EPS), act);
            let mask: Vec<bool> = r.pre.iter().map(|&p| passes64(act, p)).collect();
            let (dx, _, _) = reference_backward(&x, &w, c, &gamma, &r, f64::from(EPS), &mask);
            // The reference takes f32 inputs: difference in f64 by hand instead.
            let loss = |x: &[f64]| {
                let n = rows as f64;
                let mut mean = vec![0.0; c];
                for (i, &v) in x.iter().enumerate() {
                    mean[i % c] += v / n;
                }
                let mut var = vec![0.0; c];
                for (i, &v) in x.iter().enumerate() {
                    var[i % c] += (v - mean[i % c]).powi(2) / n;
                }
                x.iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        let ch = i % c;
                        let pre = f64::from(gamma[ch]) * (v - mean[ch])
                            / (var[ch] + f64::from(EPS)).sqrt()
                            + f64::from(beta[ch]);
                        f64::from(w[i]) * act64(act, pre)
                    })
                    .sum::<f64>()
            };
            let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
            for i in 0..x.len() {
                let (mut xp, mut xm) = (x64.clone(), x64.clone());
                xp[i] += h;
                xm[i] -= h;
                let fd = (loss(&xp) - loss(&xm)) / (2.0 * h);
                assert!(
                    (fd - dx[i]).abs() < 1e-5,
                    "{act:?} dx[{i}]: {fd} vs {}",
                    dx[i]
                );
            }
        }
    }

    /// Central differences of `L = Σ w · y` on the f32 kernels themselves (tiny case), for x,
    /// gamma and beta; coordinates where a perturbation flips an activation mask are skipped.
    #[test]
    fn backward_matches_finite_differences() {
        let mut rng = Rng(4);
        let (rows, c) = (6, 3);
        let h = 1e-2f32;
        for act in ACTS {
            let x = rng.vec(rows * c, 0.0, 1.0);
            let gamma = rng.vec(c, 1.0, 0.5);
            let beta = rng.vec(c, 1.0, 2.0);
            let w = rng.vec(rows * c, 0.0, 1.0);
            let (y, stats) = batch_norm_train(&x, c, &gamma, &beta, EPS, act);
            let (dx, dgamma, dbeta) = batch_norm_train_backward(&x, &y, &w, c, &gamma, &stats, act);
            let mask = |y: &[f32]| -> Vec<bool> {
                y.iter().map(|&v| passes64(act, f64::from(v))).collect()
            };
            let run = |x: &[f32], gamma: &[f32], beta: &[f32]| {
                let (y, _) = batch_norm_train(x, c, gamma, beta, EPS, act);
                let loss: f64 = y.iter().zip(&w).map(|(&y, &w)| f64::from(y * w)).sum();
                (loss, mask(&y))
            };
            let base_mask = mask(&y);
            let mut checked = 0;
            let mut fd_check =
                |what: &str, grad: f32, plus: (f64, Vec<bool>), minus: (f64, Vec<bool>)| {
                    if plus.1 != base_mask || minus.1 != base_mask {
                        return;
                    }
                    let fd = (plus.0 - minus.0) / (2.0 * f64::from(h));
                    assert!(
                        (fd - f64::from(grad)).abs() < 2e-3 * (1.0 + fd.abs()),
                        "{act:?} {what}: finite difference {fd} vs {grad}"
                    );
                    checked += 1;
                };
            for i in 0..x.len() {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[i] += h;
                xm[i] -= h;
                fd_check(
                    &format!("dx[{i}]"),
                    dx[i],
                    run(&xp, &gamma, &beta),
                    run(&xm, &gamma, &beta),
                );
            }
            for ch in 0..c {
                let (mut gp, mut gm) = (gamma.clone(), gamma.clone());
                gp[ch] += h;
                gm[ch] -= h;
                fd_check(
                    &format!("dgamma[{ch}]"),
                    dgamma[ch],
                    run(&x, &gp, &beta),
                    run(&x, &gm, &beta),
                );
                let (mut bp, mut bm) = (beta.clone(), beta.clone());
                bp[ch] += h;
                bm[ch] -= h;
                fd_check(
                    &format!("dbeta[{ch}]"),
                    dbeta[ch],
                    run(&x, &gamma, &bp),
                    run(&x, &gamma, &bm),
                );
            }
            assert!(
                checked > x.len(),
                "{act:?}: only {checked} coordinates checked"
            );
        }
    }

    #[test]
    fn affine_and_channel_sum() {
        let mut rng = Rng(5);
        for c in [1, 3, 16, 17, 64, 96, 200] {
            for rows in [0, 1, 2, 7, 1000, 5000] {
                let x = rng.vec(rows * c, 0.5, 4.0);
                let scale = rng.vec(c, 0.0, 2.0);
                let shift = rng.vec(c, 1.0, 3.0);
                for act in ACTS {
                    let y = affine(&x, c, &scale, &shift, act);
                    let r: Vec<f64> = x
                        .iter()
                        .enumerate()
                        .map(|(i, &v)| {
                            act64(
                                act,
                                f64::from(v) * f64::from(scale[i % c]) + f64::from(shift[i % c]),
                            )
                        })
                        .collect();
                    assert_close(
                        &format!("affine rows {rows} channels {c} {act:?}"),
                        &y,
                        &r,
                        1e-6,
                    );
                }
                let s = channel_sum(&x, c);
                let mut r = vec![0.0f64; c];
                for (i, &v) in x.iter().enumerate() {
                    r[i % c] += f64::from(v);
                }
                let tol = 1e-6 * (1.0 + rows as f64 * 4.5);
                for ch in 0..c {
                    assert!(
                        (f64::from(s[ch]) - r[ch]).abs() <= tol,
                        "channel_sum rows {rows} channels {c}: [{ch}] {} vs {}",
                        s[ch],
                        r[ch]
                    );
                }
            }
        }
    }

    #[test]
    fn same_result_on_one_and_two_threads() {
        let mut rng = Rng(6);
        let on = |threads: usize, f: &(dyn Fn() -> Vec<Vec<f32>> + Sync)| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(f)
        };
        for (rows, c) in [(5000, 3), (20_000, 16), (3000, 96)] {
            let x = rng.vec(rows * c, 10.0, 3.0);
            let gamma = rng.vec(c, 1.0, 0.5);
            let beta = rng.vec(c, 1.0, 2.0);
            let dy = rng.vec(rows * c, 0.0, 1.0);
            for act in ACTS {
                let all = || {
                    let (y, s) = batch_norm_train(&x, c, &gamma, &beta, EPS, act);
                    let (dx, dg, db) = batch_norm_train_backward(&x, &y, &dy, c, &gamma, &s, act);
                    vec![
                        y,
                        s.mean,
                        s.var,
                        s.inv_std,
                        dx,
                        dg,
                        db,
                        channel_sum(&dy, c),
                        affine(&x, c, &gamma, &beta, act),
                    ]
                };
                assert_eq!(on(1, &all), on(2, &all), "rows {rows} channels {c} {act:?}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "whole number of rows")]
    fn ragged_input_panics() {
        let _ = channel_sum(&[1.0; 10], 3);
    }

    #[test]
    #[should_panic(expected = "`beta` has 2 values for 3 channels")]
    fn wrong_parameter_length_panics() {
        let _ = batch_norm_train(&[1.0; 9], 3, &[1.0; 3], &[0.0; 2], EPS, NormAct::Relu);
    }

    #[test]
    fn nan_passes_through_the_activations() {
        for act in [NormAct::None, NormAct::Relu, NormAct::Relu6] {
            let y = affine(&[f32::NAN, -1.0, 7.0], 1, &[1.0], &[0.0], act);
            assert!(y[0].is_nan(), "{act:?}");
            let (y, _) = batch_norm_train(&[f32::NAN, 1.0, 2.0], 1, &[1.0], &[0.0], 1e-5, act);
            assert!(y.iter().all(|v| v.is_nan()), "{act:?}: {y:?}");
        }
    }

    #[test]
    fn add_act_and_its_gradient() {
        let a: Vec<f32> = (0..40000).map(|i| (i % 97) as f32 * 0.1 - 4.0).collect();
        let b: Vec<f32> = (0..40000).map(|i| (i % 89) as f32 * 0.05 - 1.0).collect();
        let dy: Vec<f32> = (0..40000).map(|i| (i % 13) as f32 - 6.0).collect();
        for act in [NormAct::None, NormAct::Relu, NormAct::Relu6] {
            let y = add_act(&a, &b, act);
            let dx = act_backward(&y, &dy, act);
            for i in 0..a.len() {
                let pre = a[i] + b[i];
                let (expected, pass) = match act {
                    NormAct::None => (pre, true),
                    NormAct::Relu => (pre.max(0.0), pre > 0.0),
                    NormAct::Relu6 => (pre.clamp(0.0, 6.0), pre > 0.0 && pre < 6.0),
                };
                assert_eq!(y[i], expected, "{act:?} at {i}");
                assert_eq!(dx[i], if pass { dy[i] } else { 0.0 }, "{act:?} at {i}");
            }
        }
        assert!(add_act(&[f32::NAN], &[1.0], NormAct::Relu)[0].is_nan());
    }
}
