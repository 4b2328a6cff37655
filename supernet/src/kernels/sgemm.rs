//! A safe wrapper around [`gemm::gemm`] for `f32` matrices stored in slices with arbitrary
//! (non-negative) row and column strides. All the `unsafe` of the kernels lives here.

use gemm::Parallelism;

/// A read-only `rows × cols` matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Src<'a> {
    /// The elements.
    pub data: &'a [f32],
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

/// The destination `rows × cols` matrix: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Debug)]
pub(crate) struct Dst<'a> {
    /// The elements.
    pub data: &'a mut [f32],
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
    /// Add the product to the destination (`true`) or overwrite it (`false`).
    pub accumulate: bool,
}

/// One past the largest offset of a `rows × cols` view with strides `rs`, `cs` (0 if empty).
fn span(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        return 0;
    }
    (rows - 1)
        .checked_mul(rs)
        .and_then(|a| (cols - 1).checked_mul(cs).and_then(|b| a.checked_add(b)))
        .and_then(|a| a.checked_add(1))
        .expect("sgemm: matrix view offsets overflow usize")
}

/// Whether distinct elements of a `rows × cols` view with strides `rs`, `cs` have distinct
/// offsets (a sufficient condition: one dimension's stride steps over whole runs of the other).
fn injective(rows: usize, cols: usize, rs: usize, cs: usize) -> bool {
    let rows_ok = rows <= 1 || rs >= 1;
    let cols_ok = cols <= 1 || cs >= 1;
    if rows <= 1 || cols <= 1 {
        return rows_ok && cols_ok;
    }
    (cs >= 1 && rs > cs * (cols - 1)) || (rs >= 1 && cs > rs * (rows - 1))
}

/// `dst (m × n) = [dst +] lhs (m × k) × rhs (k × n)` in `f32`.
///
/// Runs on the calling thread, or on rayon's current pool when `parallel` is true.
///
/// # Panics
///
/// If a view does not fit in its slice, or if the destination view maps two elements to the
/// same offset.
pub(crate) fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: Dst<'_>,
    lhs: Src<'_>,
    rhs: Src<'_>,
    parallel: bool,
) {
    assert!(
        span(m, n, dst.rs, dst.cs) <= dst.data.len(),
        "sgemm: {m}x{n} destination with strides ({}, {}) does not fit in {} elements",
        dst.rs,
        dst.cs,
        dst.data.len()
    );
    assert!(
        injective(m, n, dst.rs, dst.cs),
        "sgemm: {m}x{n} destination strides ({}, {}) overlap",
        dst.rs,
        dst.cs
    );
    assert!(
        span(m, k, lhs.rs, lhs.cs) <= lhs.data.len(),
        "sgemm: {m}x{k} left operand with strides ({}, {}) does not fit in {} elements",
        lhs.rs,
        lhs.cs,
        lhs.data.len()
    );
    assert!(
        span(k, n, rhs.rs, rhs.cs) <= rhs.data.len(),
        "sgemm: {k}x{n} right operand with strides ({}, {}) does not fit in {} elements",
        rhs.rs,
        rhs.cs,
        rhs.data.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !dst.accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst.data[i * dst.rs + j * dst.cs] = 0.0;
                }
            }
        }
        return;
    }
    // All spans fit in their slices, and slice lengths are at most isize::MAX elements, so
    // every stride that matters (the ones of dimensions longer than 1) converts without loss;
    // strides of unit dimensions are never multiplied by a non-zero index (0 if too large).
    let stride = |len: usize, s: usize| -> isize {
        match isize::try_from(s) {
            Ok(s) => s,
            Err(_) if len <= 1 => 0,
            Err(_) => panic!("sgemm: stride {s} exceeds isize::MAX"),
        }
    };
    let parallelism = if parallel {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    };
    // SAFETY: `gemm::gemm` reads `lhs` at offsets `i * lhs_rs + l * lhs_cs` for i < m, l < k,
    // `rhs` at `l * rhs_rs + j * rhs_cs` for l < k, j < n, and reads (when `read_dst`) and
    // writes `dst` at `i * dst_rs + j * dst_cs` for i < m, j < n. The asserts above check that
    // the largest of these offsets is inside each slice (all strides non-negative, so the
    // smallest is 0), and that the destination offsets are pairwise distinct, so the parallel
    // version never writes one element from two threads. `dst` is a unique borrow, hence it
    // aliases neither operand, and the operands are only read. `T = f32` is a supported type
    // (it does not panic on the type), and the conj flags are ignored for real types.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            stride(n, dst.cs),
            stride(m, dst.rs),
            dst.accumulate,
            lhs.data.as_ptr(),
            stride(k, lhs.cs),
            stride(m, lhs.rs),
            rhs.data.as_ptr(),
            stride(n, rhs.cs),
            stride(k, rhs.rs),
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_product_matches_naive() {
        let (m, n, k) = (7, 5, 9);
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 - 3.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.5).collect();
        // a row-major, b column-major (rs = 1, cs = k), dst column-major with padding
        let mut c = vec![1.0f32; n * (m + 2)];
        sgemm(
            m,
            n,
            k,
            Dst {
                data: &mut c,
                rs: 1,
                cs: m + 2,
                accumulate: true,
            },
            Src {
                data: &a,
                rs: k,
                cs: 1,
            },
            Src {
                data: &b,
                rs: 1,
                cs: k,
            },
            false,
        );
        for i in 0..m {
            for j in 0..n {
                let want: f32 = 1.0 + (0..k).map(|l| a[i * k + l] * b[l + j * k]).sum::<f32>();
                assert!((c[i + j * (m + 2)] - want).abs() < 1e-4);
            }
        }
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn rejects_short_slices() {
        let a = vec![0.0f32; 5];
        let mut c = vec![0.0f32; 4];
        sgemm(
            2,
            2,
            3,
            Dst {
                data: &mut c,
                rs: 2,
                cs: 1,
                accumulate: false,
            },
            Src {
                data: &a,
                rs: 3,
                cs: 1,
            },
            Src {
                data: &a,
                rs: 2,
                cs: 1,
            },
            false,
        );
    }
}
