//! Helpers shared by the quantization tests.

use burn::tensor::Tensor;
use spaces::Format;

/// Every floating-point format of at most 8 bits (e1m0 … e7m0, e1m6, e2m5, e4m3, e5m2, …).
pub(crate) fn small_float_formats() -> Vec<Format> {
    let mut out = Vec::new();
    for exp in 1u8..=7 {
        for man in 0u8..=(7 - exp) {
            out.push(Format::Float { exp, man });
        }
    }
    out
}

/// Probe inputs for a sorted grid: every grid value, every midpoint between neighbours and the
/// floats just above and below it, quarter points, values beyond the maximum, tiny values.
pub(crate) fn float_probe_values(grid: &[f64]) -> Vec<f32> {
    let mut out = Vec::new();
    for pair in grid.windows(2) {
        let (lo, hi) = (pair[0] as f32, pair[1] as f32);
        let mid = ((pair[0] + pair[1]) / 2.0) as f32;
        out.extend([
            lo,
            mid,
            mid.next_up(),
            mid.next_down(),
            ((3.0 * pair[0] + pair[1]) / 4.0) as f32,
            ((pair[0] + 3.0 * pair[1]) / 4.0) as f32,
            hi,
        ]);
    }
    let max = *grid.last().expect("a grid has values") as f32;
    out.extend([
        max * 1.01,
        max * 1.2,
        max * 3.0,
        -max * 5.0,
        1.0e30,
        -1.0e30,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        0.0,
        -0.0,
    ]);
    out
}

/// The elements of a tensor as `f32`.
pub(crate) fn values_of<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .try_to_vec::<f32>()
        .expect("a float tensor holds f32")
}

/// The gradient of `y.sum()` with respect to the leaf `x`.
pub(crate) fn grad_of<const D: usize, const E: usize>(x: &Tensor<D>, y: Tensor<E>) -> Vec<f32> {
    let grads = y.sum().backward();
    values_of(x.grad(&grads).expect("x takes part in the graph"))
}

/// A deterministic pseudo-random tensor with values uniform in `[-amp, amp)`.
pub(crate) fn pseudo_random<const D: usize>(
    shape: [usize; D],
    amp: f32,
    seed: u64,
    device: &burn::tensor::Device,
) -> Tensor<D> {
    let n: usize = shape.iter().product();
    let mut rng = spaces::Rng::new(seed);
    let values: Vec<f32> = (0..n)
        .map(|_| ((2.0 * rng.unit() - 1.0) as f32) * amp)
        .collect();
    Tensor::from_data(burn::tensor::TensorData::new(values, shape), device)
}
