//! Fused integer fake quantization with one per-tensor scale: one pass forward, one pass
//! backward, instead of the dozen elementwise tensor ops of [`crate::quant::fake_quantize`]
//! (whose values it reproduces bit for bit).
//!
//! Forward: `q = clamp(round_ties_even(x / scale), lo, hi) * scale`; backward (clipped
//! straight-through estimator): `dx = dy` where `x / scale` lies in `[lo - 1/2, hi + 1/2]`, 0
//! elsewhere. NaN stays NaN.

use rayon::prelude::*;

/// Elements per parallel task (independent of the thread count).
const CHUNK: usize = 1 << 15;

/// The integer grid of one quantizer call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IntGrid {
    /// Scale (real units per code), positive.
    pub scale: f32,
    /// Smallest code.
    pub lo: f32,
    /// Largest code.
    pub hi: f32,
}

impl IntGrid {
    /// The grid of `bits`-bit codes ([`crate::quant::grid::int_code_range`]: symmetric
    /// `[-(2^(b-1) - 1), 2^(b-1) - 1]` signed, `[0, 2^b - 1]` unsigned) with `scale`.
    ///
    /// # Panics
    /// Panics unless `2 <= bits <= 24` (codes exact in `f32`).
    pub fn new(bits: u8, signed: bool, scale: f32) -> IntGrid {
        assert!(
            (2..=24).contains(&bits),
            "integer fake quantization of {bits} bits"
        );
        let (lo, hi) = crate::quant::grid::int_code_range(bits, signed);
        IntGrid {
            scale,
            lo: lo as f32,
            hi: hi as f32,
        }
    }
}

struct Forward<'a> {
    x: &'a [f32],
    q: &'a mut [f32],
    grid: IntGrid,
}

impl pulp::WithSimd for Forward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let IntGrid { scale, lo, hi } = self.grid;
        for (q, &x) in self.q.iter_mut().zip(self.x) {
            let r = (x / scale).round_ties_even();
            // written so that NaN passes through
            let r = if r < lo {
                lo
            } else if r > hi {
                hi
            } else {
                r
            };
            *q = r * scale;
        }
    }
}

struct Backward<'a> {
    x: &'a [f32],
    dy: &'a [f32],
    dx: &'a mut [f32],
    grid: IntGrid,
}

impl pulp::WithSimd for Backward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let IntGrid { scale, lo, hi } = self.grid;
        let (lo, hi) = (lo - 0.5, hi + 0.5);
        for ((dx, &x), &dy) in self.dx.iter_mut().zip(self.x).zip(self.dy) {
            let y = x / scale;
            *dx = if y >= lo && y <= hi { dy } else { 0.0 };
        }
    }
}

/// The fake-quantized values of `x` on `grid`.
///
/// # Shapes
/// - `x`: any length; output: the length of `x`
pub fn fake_quantize_int(x: &[f32], grid: IntGrid) -> Vec<f32> {
    let mut q = vec![0.0f32; x.len()];
    q.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(q, x)| pulp::Arch::new().dispatch(Forward { x, q, grid }));
    q
}

/// The input gradient of [`fake_quantize_int`] (clipped straight-through estimator).
///
/// # Shapes
/// - `x`, `dy`: the same length; output: that length
///
/// # Panics
/// Panics if the lengths differ.
pub fn fake_quantize_int_backward(x: &[f32], dy: &[f32], grid: IntGrid) -> Vec<f32> {
    assert_eq!(
        x.len(),
        dy.len(),
        "fake-quantization gradient of {} values for {} inputs",
        dy.len(),
        x.len()
    );
    let mut dx = vec![0.0f32; x.len()];
    dx.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
        .for_each(|(dx, (x, dy))| pulp::Arch::new().dispatch(Backward { x, dy, dx, grid }));
    dx
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_of_signed_and_unsigned_codes() {
        let g = IntGrid::new(4, true, 0.5);
        assert_eq!((g.lo, g.hi), (-7.0, 7.0));
        let g = IntGrid::new(4, false, 0.5);
        assert_eq!((g.lo, g.hi), (0.0, 15.0));
        let g = IntGrid::new(2, true, 1.0);
        assert_eq!((g.lo, g.hi), (-1.0, 1.0));
    }

    #[test]
    fn rounds_ties_to_even_saturates_and_keeps_nan() {
        let grid = IntGrid::new(4, false, 0.5);
        let x = [-1.0, -0.2, 0.25, 0.75, 1.25, 3.0, 7.7, 7.8, 100.0, f32::NAN];
        let q = fake_quantize_int(&x, grid);
        // ties: 0.25 / 0.5 = 0.5 -> 0, 0.75 -> 1.5 -> 2, 1.25 -> 2.5 -> 2
        assert_eq!(&q[..9], &[0.0, -0.0, 0.0, 1.0, 1.0, 3.0, 7.5, 7.5, 7.5]);
        assert!(q[9].is_nan());
        let dx = fake_quantize_int_backward(&x, &[1.0; 10], grid);
        // rounding range [-0.25, 7.75] in real units
        assert_eq!(dx, [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn long_inputs_match_the_scalar_rule_on_any_thread_count() {
        let n = 3 * CHUNK + 17;
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 2001) as f32 * 0.01 - 10.0)
            .collect();
        let grid = IntGrid::new(3, true, 0.37);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| fake_quantize_int(&x, grid));
        let two = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap()
            .install(|| fake_quantize_int(&x, grid));
        assert_eq!(one, two);
        for (q, x) in one.iter().zip(&x) {
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
}
