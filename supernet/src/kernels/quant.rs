//! Fused fake quantization with one per-tensor scale, onto an integer or a floating-point
//! grid: one pass forward, one pass backward, instead of the dozen (integer) to two dozen
//! (minifloat) elementwise tensor ops of [`crate::quant::fake_quantize`], whose values it
//! reproduces bit for bit.
//!
//! Forward: `q = round(x / scale) * scale`, where `round` is the format's rounding
//! ([`crate::quant::round`]: nearest code, ties to even, saturating); backward (clipped
//! straight-through estimator): `dx = dy` where `x / scale` lies inside the format's
//! [`saturation_bounds`](crate::quant::grid::saturation_bounds), 0 elsewhere. NaN stays NaN.

use std::mem::MaybeUninit;

use rayon::prelude::*;
use spaces::Format;

/// Elements per parallel task (independent of the thread count).
const CHUNK: usize = 1 << 15;

/// How values are rounded in code units.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Rounding {
    /// Nearest integer (ties to even), clamped to `[lo, hi]`.
    Int { lo: f32, hi: f32 },
    /// Nearest value of a floating-point grid with `man` mantissa bits (ties to even), the
    /// binade of the smallest normal extended down to zero (subnormals), saturating at `max`.
    Float {
        man: i32,
        min_normal: f32,
        cap: f32,
        max: f32,
    },
}

/// The grid of one quantizer call: a format, whether it is signed, and the scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grid {
    /// Real units per code unit (1 for unscaled formats), positive.
    pub scale: f32,
    rounding: Rounding,
    /// Inputs (in code units) inside `[sat_lo, sat_hi]` pass the gradient.
    sat_lo: f32,
    sat_hi: f32,
}

impl Grid {
    /// The grid of `format` (not fp32) with `scale`: integer codes of
    /// [`int_code_range`](crate::quant::grid::int_code_range), or the values of a
    /// floating-point format.
    ///
    /// # Panics
    /// Panics for fp32, and for integer formats wider than 24 bits (codes not exact in `f32`).
    pub fn new(format: Format, signed: bool, scale: f32) -> Grid {
        assert!(!format.is_full_precision(), "fp32 is not fake-quantized");
        let rounding = match format {
            Format::Int(bits) => {
                assert!(bits <= 24, "integer fake quantization of {bits} bits");
                let (lo, hi) = crate::quant::grid::int_code_range(bits, signed);
                Rounding::Int {
                    lo: lo as f32,
                    hi: hi as f32,
                }
            }
            Format::Float { man, .. } => {
                // as crate::quant::round::round_to_float computes them
                let bias = format.exponent_bias().unwrap_or(0);
                let max = format.max_finite().unwrap_or(f64::from(f32::MAX));
                Rounding::Float {
                    man: i32::from(man),
                    min_normal: 2f64.powi(1 - bias) as f32,
                    cap: (2.0 * max).min(f64::from(f32::MAX)) as f32,
                    max: max as f32,
                }
            }
        };
        let (lo, hi) = crate::quant::grid::saturation_bounds(format, signed);
        Grid {
            scale,
            rounding,
            sat_lo: lo as f32,
            sat_hi: hi as f32,
        }
    }
}

/// `2^e` for `e` in the normal range of `f32`.
#[inline(always)]
fn pow2(e: i32) -> f32 {
    f32::from_bits(((e + 127) as u32) << 23)
}

/// `y` rounded onto the grid, in code units. NaN stays NaN.
#[inline(always)]
fn round(y: f32, rounding: Rounding) -> f32 {
    match rounding {
        Rounding::Int { lo, hi } => {
            let r = y.round_ties_even();
            // written so that NaN passes through
            if r < lo {
                lo
            } else if r > hi {
                hi
            } else {
                r
            }
        }
        Rounding::Float {
            man,
            min_normal,
            cap,
            max,
        } => {
            let a = y.abs();
            let a = if a > cap { cap } else { a };
            let a_normal = if a < min_normal { min_normal } else { a };
            // floor(log2(a_normal)), exact: a_normal is a normal f32
            let e = ((a_normal.to_bits() >> 23) & 0xff) as i32 - 127;
            let ulp = pow2(e - man);
            let q = (a / ulp).round_ties_even() * ulp;
            let q = if q > max { max } else { q };
            q.copysign(y)
        }
    }
}

/// The fake-quantized value of `x` on `grid`.
#[inline(always)]
fn quantize(x: f32, grid: &Grid) -> f32 {
    round(x / grid.scale, grid.rounding) * grid.scale
}

/// The clipped straight-through gradient of `x`'s fake quantization on `grid`.
#[inline(always)]
fn pass_through(x: f32, dy: f32, grid: &Grid) -> f32 {
    let y = x / grid.scale;
    if y >= grid.sat_lo && y <= grid.sat_hi {
        dy
    } else {
        0.0
    }
}

struct Forward<'a> {
    x: &'a [f32],
    /// Written in full.
    q: &'a mut [MaybeUninit<f32>],
    grid: Grid,
}

impl pulp::WithSimd for Forward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        assert_eq!(self.q.len(), self.x.len());
        for (q, &x) in self.q.iter_mut().zip(self.x) {
            q.write(quantize(x, &self.grid));
        }
    }
}

/// [`Forward`] in place.
struct ForwardInPlace<'a> {
    x: &'a mut [f32],
    grid: Grid,
}

impl pulp::WithSimd for ForwardInPlace<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for x in self.x.iter_mut() {
            *x = quantize(*x, &self.grid);
        }
    }
}

/// The clipped straight-through backward pass, in place: the output gradient becomes the input
/// gradient.
struct BackwardInPlace<'a> {
    x: &'a [f32],
    g: &'a mut [f32],
    grid: Grid,
}

impl pulp::WithSimd for BackwardInPlace<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for (g, &x) in self.g.iter_mut().zip(self.x) {
            *g = pass_through(x, *g, &self.grid);
        }
    }
}

/// The fake-quantized values of `x` on `grid`.
///
/// # Shapes
/// - `x`: any length; output: the length of `x`
pub fn fake_quantize(x: &[f32], grid: Grid) -> Vec<f32> {
    let write = |i: usize, q: &mut [MaybeUninit<f32>]| {
        let x = &x[i * CHUNK..][..q.len()];
        pulp::Arch::new().dispatch(Forward { x, q, grid });
    };
    #[allow(unsafe_code)]
    // SAFETY: `Forward` writes every value of its output (or panics).
    unsafe {
        super::par_chunks_written(x.len(), CHUNK, write)
    }
}

/// [`fake_quantize`] in place (no output buffer to allocate and clear).
pub fn fake_quantize_in_place(x: &mut [f32], grid: Grid) {
    x.par_chunks_mut(CHUNK)
        .for_each(|x| pulp::Arch::new().dispatch(ForwardInPlace { x, grid }));
}

/// The input gradient of [`fake_quantize`] (clipped straight-through estimator).
///
/// # Shapes
/// - `x`, `dy`: the same length; output: that length
///
/// # Panics
/// Panics if the lengths differ.
pub fn fake_quantize_backward(x: &[f32], dy: &[f32], grid: Grid) -> Vec<f32> {
    let mut dx = super::copied(dy);
    fake_quantize_backward_in_place(x, &mut dx, grid);
    dx
}

/// [`fake_quantize_backward`] in place: `g` holds the output gradient and becomes the input
/// gradient.
///
/// # Panics
/// Panics if the lengths differ.
pub fn fake_quantize_backward_in_place(x: &[f32], g: &mut [f32], grid: Grid) {
    assert_eq!(
        x.len(),
        g.len(),
        "fake-quantization gradient of {} values for {} inputs",
        g.len(),
        x.len()
    );
    g.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(g, x)| pulp::Arch::new().dispatch(BackwardInPlace { x, g, grid }));
}

struct RangeMax<'a> {
    x: &'a [f32],
    signed: bool,
}

impl pulp::WithSimd for RangeMax<'_> {
    type Output = f32;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> f32 {
        // 16 independent lanes so that the loop vectorizes; max is exact in any order
        let mut acc = [0.0f32; 16];
        let mut blocks = self.x.chunks_exact(16);
        for block in &mut blocks {
            for (a, &v) in acc.iter_mut().zip(block) {
                let m = if self.signed { v.abs() } else { v };
                *a = if m > *a { m } else { *a };
            }
        }
        for &v in blocks.remainder() {
            let m = if self.signed { v.abs() } else { v };
            acc[0] = if m > acc[0] { m } else { acc[0] };
        }
        acc.into_iter().fold(0.0, f32::max)
    }
}

/// The range an activation quantizer observes in a batch: `max |x|` (`signed`) or
/// `max(max x, 0)`, in one pass without a temporary. NaN values are skipped.
pub fn range_max(x: &[f32], signed: bool) -> f32 {
    x.par_chunks(CHUNK)
        .map(|x| pulp::Arch::new().dispatch(RangeMax { x, signed }))
        .reduce(|| 0.0, f32::max)
}

/// The histogram pass of [`range_percentile`] bins a magnitude by the top bits of its f32
/// representation: its exponent and the first three bits of its mantissa (2048 bins).
const PERCENTILE_BIN_SHIFT: u32 = 20;
/// Below this many values [`range_percentile`] selects on a copy directly.
const PERCENTILE_DIRECT: usize = 1 << 14;

/// The magnitude an activation quantizer observes, `|v|` (`signed`) or `max(v, 0)`, as the
/// bits of a non-negative f32, which order as the magnitudes do (a NaN above infinity). The
/// unsigned magnitude of a negative number (or of a NaN with the sign bit set) is `+0.0`.
#[inline(always)]
fn magnitude_key(v: f32, signed: bool) -> u32 {
    let bits = v.to_bits();
    if signed {
        bits & 0x7fff_ffff
    } else {
        // all ones when the sign bit is set: no branch on the sign
        let negative = ((bits as i32) >> 31) as u32;
        bits & !negative
    }
}

/// The `rank`-th smallest (from 0) of `keys`, as the f32 it is the bits of.
fn select(mut keys: Vec<u32>, rank: usize) -> f32 {
    let (_, &mut at, _) = keys.select_nth_unstable(rank);
    f32::from_bits(at)
}

/// The sample [`percentile_above_threshold`] draws: this many runs of consecutive values,
/// evenly spaced over the tensor, of [`PERCENTILE_SAMPLE_RUN`] values each (whole runs rather
/// than single values at a stride: a few cache lines per run instead of a miss per value, and
/// in NHWC tensors, channels innermost, each run goes through every channel of a few pixels).
const PERCENTILE_SAMPLE_RUNS: usize = 64;
const PERCENTILE_SAMPLE_RUN: usize = 64;
/// [`range_percentile`] tries [`percentile_above_threshold`] when at most this share of the
/// values lies above the rank (`1 / 32`: the 96.9th percentile and above).
const PERCENTILE_TAIL_SHARE: usize = 32;

/// The keys of one chunk at or above `threshold`, in order: blocks of 16 values with no key at
/// or above it (nearly all of them) are skipped after one vector comparison, and the others
/// compacted without a branch per value. (A horizontal maximum per block and a filtered
/// `extend` had taken twice as long: 0.50-0.56 ms against 0.26-0.29 ms for the 99.9th
/// percentile of 2 Mi values, `quant_kernels` example.)
struct GatherAbove<'a> {
    x: &'a [f32],
    signed: bool,
    threshold: u32,
}

impl pulp::WithSimd for GatherAbove<'_> {
    type Output = Vec<u32>;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> Vec<u32> {
        let Self {
            x,
            signed,
            threshold,
        } = self;
        let mut out = Vec::new();
        let (blocks, tail) = x.as_chunks::<16>();
        for b in blocks {
            let hit = b
                .iter()
                .fold(false, |h, &v| h | (magnitude_key(v, signed) >= threshold));
            if hit {
                // compacted without a branch per value: every key is written at `k`, which
                // moves on past the keys kept
                let mut kept = [0u32; 17];
                let mut k = 0;
                for &v in b {
                    let key = magnitude_key(v, signed);
                    kept[k] = key;
                    k += usize::from(key >= threshold);
                }
                out.extend_from_slice(&kept[..k]);
            }
        }
        out.extend(
            tail.iter()
                .map(|&v| magnitude_key(v, signed))
                .filter(|&k| k >= threshold),
        );
        out
    }
}

/// The `rank`-th smallest magnitude key of `x` (see [`magnitude_key`]) when it lies in the
/// upper tail: a threshold `t` is read off a sample of runs of consecutive values (see
/// [`PERCENTILE_SAMPLE_RUNS`]): its key with twice as many sampled values above it as the
/// tail's share, and 16 more. One pass gathers every key at or above `t`, and a selection
/// among those gives the answer, exactly, if there are at least `x.len() - rank` of them; else
/// (a sample unlike the whole, which the margin makes rare) `None`.
fn percentile_above_threshold(x: &[f32], signed: bool, rank: usize) -> Option<f32> {
    let n = x.len();
    let need = n - rank;
    let spacing = n / PERCENTILE_SAMPLE_RUNS;
    let mut sample: Vec<u32> = (0..PERCENTILE_SAMPLE_RUNS)
        .flat_map(|r| &x[r * spacing..][..PERCENTILE_SAMPLE_RUN.min(spacing)])
        .map(|&v| magnitude_key(v, signed))
        .collect();
    let s = sample.len();
    let above = ((2 * need * s).div_ceil(n) + 16).min(s);
    let (_, &mut threshold, _) = sample.select_nth_unstable(s - above);
    let parts: Vec<Vec<u32>> = x
        .par_chunks(CHUNK)
        .map(|x| {
            pulp::Arch::new().dispatch(GatherAbove {
                x,
                signed,
                threshold,
            })
        })
        .collect();
    let members = parts.concat();
    let below = n.checked_sub(members.len())?;
    (members.len() >= need).then(|| select(members, rank - below))
}

/// The range an activation quantizer observes in a batch under a percentile rule: the
/// `percentile`-th percentile (nearest rank: the smallest value with at least `percentile`% of
/// the values at or below it) of the magnitudes `|x|` (`signed`) or `max(x, 0)`. A NaN counts
/// as larger than every number (as `f32::total_cmp` orders a positive NaN). Empty input gives 0.
///
/// Exact (the value a sort would give) without copying the tensor. In the upper tail (the
/// default 99.9th percentile) by one pass that gathers the values above a threshold read off a
/// sample ([`percentile_above_threshold`]); else, or if the sample misled it, one parallel pass counts
/// the magnitudes per bin of their f32 representation's top bits (see
/// [`PERCENTILE_BIN_SHIFT`]; the bits of non-negative floats order as their values, so every
/// value of a lower bin is below every value of a higher one), and a second gathers the bin
/// holding the rank (a small share of the values) for a selection. Small inputs are selected
/// directly.
///
/// # Panics
/// If `percentile` is not in `(0, 100]`.
pub fn range_percentile(x: &[f32], signed: bool, percentile: f64) -> f32 {
    assert!(
        percentile > 0.0 && percentile <= 100.0,
        "percentile must be in (0, 100], got {percentile}"
    );
    let n = x.len();
    if n == 0 {
        return 0.0;
    }
    let rank = ((percentile / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1;
    if n < PERCENTILE_DIRECT {
        return select(x.iter().map(|&v| magnitude_key(v, signed)).collect(), rank);
    }
    if (n - rank) * PERCENTILE_TAIL_SHARE <= n
        && let Some(at) = percentile_above_threshold(x, signed, rank)
    {
        return at;
    }
    let bins = 1usize << (32 - PERCENTILE_BIN_SHIFT);
    let counts = x
        .par_chunks(CHUNK)
        .map(|x| {
            // four interleaved histograms: runs of equal bins do not wait on one counter
            let mut counts = vec![0u32; 4 * bins];
            let (c0, rest) = counts.split_at_mut(bins);
            let (c1, rest) = rest.split_at_mut(bins);
            let (c2, c3) = rest.split_at_mut(bins);
            let bin = |v: f32| (magnitude_key(v, signed) >> PERCENTILE_BIN_SHIFT) as usize;
            let quads = x.chunks_exact(4);
            for &v in quads.remainder() {
                c0[bin(v)] += 1;
            }
            for q in quads {
                c0[bin(q[0])] += 1;
                c1[bin(q[1])] += 1;
                c2[bin(q[2])] += 1;
                c3[bin(q[3])] += 1;
            }
            for i in 0..bins {
                c0[i] += c1[i] + c2[i] + c3[i];
            }
            counts.truncate(bins);
            counts
        })
        .reduce(
            || vec![0u32; bins],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                a
            },
        );
    let mut below = 0;
    let mut target = 0;
    for (b, &c) in counts.iter().enumerate() {
        if below + c as usize > rank {
            target = b as u32;
            break;
        }
        below += c as usize;
    }
    let members: Vec<u32> = x
        .par_chunks(CHUNK)
        .flat_map_iter(|x| {
            x.iter()
                .map(move |&v| magnitude_key(v, signed))
                .filter(move |&k| k >> PERCENTILE_BIN_SHIFT == target)
        })
        .collect();
    select(members, rank - below)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_grids_round_ties_to_even_saturate_and_keep_nan() {
        let grid = Grid::new(Format::Int(4), false, 0.5);
        let x = [-1.0, -0.2, 0.25, 0.75, 1.25, 3.0, 7.7, 7.8, 100.0, f32::NAN];
        let q = fake_quantize(&x, grid);
        // ties: 0.25 / 0.5 = 0.5 -> 0, 0.75 -> 1.5 -> 2, 1.25 -> 2.5 -> 2
        assert_eq!(&q[..9], &[0.0, -0.0, 0.0, 1.0, 1.0, 3.0, 7.5, 7.5, 7.5]);
        assert!(q[9].is_nan());
        let dx = fake_quantize_backward(&x, &[1.0; 10], grid);
        // rounding range [-0.25, 7.75] in real units
        assert_eq!(dx, [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
        // signed codes are symmetric
        let q = fake_quantize(&[-100.0, 100.0], Grid::new(Format::Int(4), true, 1.0));
        assert_eq!(q, [-7.0, 7.0]);
    }

    #[test]
    fn float_grids_match_the_scalar_rounding_of_every_format() {
        for format in [
            Format::E4M3,
            Format::E5M2,
            Format::E2M1,
            Format::FP16,
            Format::BF16,
        ] {
            let grid = Grid::new(format, true, 1.0);
            let max = format.max_finite().unwrap() as f32;
            let mut x: Vec<f32> = (0..20000)
                .map(|i| ((i as f32 - 10000.0) / 10000.0).powi(3) * 2.5 * max)
                .collect();
            x.extend([
                0.0,
                -0.0,
                max,
                -max,
                3.0 * max,
                f32::INFINITY,
                1e-30,
                -1e-30,
            ]);
            let q = fake_quantize(&x, grid);
            for (&x, &q) in x.iter().zip(&q) {
                let expected = crate::quant::grid::round_scalar(x, format, true);
                assert_eq!(q, expected, "{} of {x}", format.name());
            }
        }
        assert!(fake_quantize(&[f32::NAN], Grid::new(Format::E4M3, true, 1.0))[0].is_nan());
    }

    #[test]
    fn long_inputs_are_the_same_on_any_thread_count() {
        let n = 3 * CHUNK + 17;
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 2001) as f32 * 0.01 - 10.0)
            .collect();
        for grid in [
            Grid::new(Format::Int(3), true, 0.37),
            Grid::new(Format::E4M3, true, 0.01),
        ] {
            let on = |threads| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap()
                    .install(|| fake_quantize(&x, grid))
            };
            assert_eq!(on(1), on(2));
        }
        let q = fake_quantize(&x, Grid::new(Format::Int(3), true, 0.37));
        for (q, x) in q.iter().zip(&x) {
            let r = (x / 0.37f32).round_ties_even().clamp(-3.0, 3.0);
            assert_eq!(*q, r * 0.37);
        }
    }

    #[test]
    fn range_max_of_signed_and_unsigned_inputs() {
        let mut x: Vec<f32> = (0..CHUNK * 2 + 5)
            .map(|i| (i % 100) as f32 * 0.01 - 0.7)
            .collect();
        let expect = |f: fn(f32) -> f32| x.iter().map(|&v| f(v)).fold(0.0, f32::max);
        assert_eq!(range_max(&x, false), expect(|v| v.max(0.0)));
        assert_eq!(range_max(&x, true), expect(f32::abs));
        x[CHUNK + 3] = -9.0;
        x[2 * CHUNK + 4] = 3.0;
        assert_eq!(range_max(&x, true), 9.0);
        assert_eq!(range_max(&x, false), 3.0);
        assert_eq!(range_max(&[-1.0, -2.0], false), 0.0);
        assert_eq!(range_max(&[], true), 0.0);
    }

    #[test]
    fn range_percentile_is_the_nearest_rank_of_a_sort() {
        let mut rng = spaces::Rng::new(7);
        // large enough for the histogram path, with ties (a ReLU's zeros) and an outlier
        let n = 3 * PERCENTILE_DIRECT + 17;
        let x: Vec<f32> = (0..n)
            .map(|i| match i % 5 {
                0 => 0.0,
                1 => -rng.normal() as f32,
                _ => rng.normal() as f32 * 0.5,
            })
            .chain([1e4])
            .collect();
        for signed in [false, true] {
            let mut sorted: Vec<f32> = x
                .iter()
                .map(|&v| if signed { v.abs() } else { v.max(0.0) })
                .collect();
            sorted.sort_by(f32::total_cmp);
            for p in [0.001, 1.0, 25.0, 50.0, 99.0, 99.9, 99.99, 100.0] {
                let rank =
                    ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
                assert_eq!(
                    range_percentile(&x, signed, p).to_bits(),
                    sorted[rank - 1].to_bits(),
                    "signed {signed}, percentile {p}"
                );
            }
        }
        // small inputs, all zeros, NaN counted above every number, empty
        // the tail path's sample misleads it (every sampled value is 1, the rest 0, and the
        // 97th and 99th percentiles lie among the zeros): the histogram path answers
        // (the sampled runs hold fewer values than the 97th percentile's tail)
        let n = 1 << 20;
        let spacing = n / PERCENTILE_SAMPLE_RUNS;
        assert!(PERCENTILE_SAMPLE_RUNS * PERCENTILE_SAMPLE_RUN < n * 3 / 100);
        let x: Vec<f32> = (0..n)
            .map(|i| f32::from(u8::from(i % spacing < PERCENTILE_SAMPLE_RUN)))
            .collect();
        for p in [97.0, 99.0, 99.9] {
            let sorted = {
                let mut v = x.clone();
                v.sort_by(f32::total_cmp);
                v
            };
            let rank = ((p / 100.0 * n as f64).ceil() as usize).clamp(1, n);
            assert_eq!(
                range_percentile(&x, true, p),
                sorted[rank - 1],
                "percentile {p}"
            );
        }
        assert_eq!(range_percentile(&[3.0, -5.0, 1.0], true, 50.0), 3.0);
        assert_eq!(range_percentile(&[3.0, -5.0, 1.0], false, 50.0), 1.0);
        assert_eq!(
            range_percentile(&vec![0.0; 2 * PERCENTILE_DIRECT], true, 99.9),
            0.0
        );
        let mut with_nan = vec![1.0f32; 2 * PERCENTILE_DIRECT];
        with_nan[5] = f32::NAN;
        assert_eq!(range_percentile(&with_nan, true, 99.9), 1.0);
        assert!(range_percentile(&with_nan, true, 100.0).is_nan());
        assert_eq!(range_percentile(&[], true, 99.9), 0.0);
    }
}
