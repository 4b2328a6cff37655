//! Our own CPU kernels for the `flex` backend, on NHWC activations: convolution (dense and
//! depthwise; forward, backward-data, backward-weight) and batch norm over the channel
//! dimension, fused integer fake quantization. They work on plain `f32` slices, run on rayon's pool (the one `flex` uses) and
//! are plugged into burn by the backend extension in [`ext`].

use std::mem::MaybeUninit;

pub mod conv;
pub mod ext;
pub mod norm;
pub mod quant;
#[allow(unsafe_code)]
mod sgemm;

/// Which instruction set a kernel runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// The best the CPU has (AVX-512, AVX2, else portable code).
    Best,
    /// AVX2 even where AVX-512 is there (portable code without AVX2), to test that path.
    Avx2,
    /// Portable code only (to test it against the SIMD paths).
    Portable,
}

impl Isa {
    /// Runs `op` compiled for this instruction set.
    pub(crate) fn run<Op: pulp::WithSimd>(self, op: Op) -> Op::Output {
        match self {
            Isa::Best => pulp::Arch::new().dispatch(op),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 if pulp::x86::V3::try_new().is_some() => {
                pulp::Simd::vectorize(pulp::x86::V3::try_new().unwrap(), op)
            }
            _ => pulp::Simd::vectorize(pulp::Scalar::new(), op),
        }
    }
}

/// The geometry of one convolution call on NHWC activations with "same" padding `kernel / 2`.
///
/// Input `[batch, height, width, in_channels]`, weight `[out_channels, in_channels / groups,
/// kernel, kernel]` (burn's OIHW, contiguous), output `[batch, out_height, out_width,
/// out_channels]` with `out_height = (height - 1) / stride + 1` (the same for the width).
/// `groups` is 1 (dense) or equal to `in_channels` and `out_channels` (depthwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvShape {
    /// Images in the batch.
    pub batch: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel size (odd).
    pub kernel: usize,
    /// Stride (both dimensions).
    pub stride: usize,
    /// 1 (dense) or the channel count (depthwise).
    pub groups: usize,
}

impl ConvShape {
    /// Zero padding on each side.
    pub fn padding(&self) -> usize {
        self.kernel / 2
    }

    /// Output height.
    pub fn out_height(&self) -> usize {
        (self.height + 2 * self.padding() - self.kernel) / self.stride + 1
    }

    /// Output width.
    pub fn out_width(&self) -> usize {
        (self.width + 2 * self.padding() - self.kernel) / self.stride + 1
    }

    /// Elements of the input.
    pub fn input_len(&self) -> usize {
        self.batch * self.height * self.width * self.in_channels
    }

    /// Elements of the weight.
    pub fn weight_len(&self) -> usize {
        self.out_channels * (self.in_channels / self.groups) * self.kernel * self.kernel
    }

    /// Elements of the output.
    pub fn output_len(&self) -> usize {
        self.batch * self.out_height() * self.out_width() * self.out_channels
    }

    /// Multiply-accumulates of the forward pass.
    pub fn macs(&self) -> u64 {
        (self.batch * self.out_height() * self.out_width() * self.out_channels) as u64
            * ((self.in_channels / self.groups) * self.kernel * self.kernel) as u64
    }

    /// Panics unless the shape is one the kernels support.
    pub fn check(&self) {
        assert!(
            self.batch > 0 && self.height > 0 && self.width > 0,
            "empty convolution input {self:?}"
        );
        assert!(
            self.in_channels > 0 && self.out_channels > 0,
            "no channels in {self:?}"
        );
        assert!(self.kernel % 2 == 1, "even kernel in {self:?}");
        assert!(self.stride > 0, "zero stride in {self:?}");
        assert!(
            self.groups == 1
                || (self.groups == self.in_channels && self.groups == self.out_channels),
            "only dense and depthwise convolutions are supported, got {self:?}"
        );
    }
}

/// A new buffer of `n` values computed in parallel, chunk by chunk: `f(i, c)` writes chunk `i`
/// (the values `i * chunk..`, the last chunk shorter), which it is handed zeroed. Each chunk
/// is zeroed by the thread that computes it, right before, in its cache rather than in a pass
/// over memory of its own: for kernels that add into their output or leave parts of it at
/// zero. Kernels that write all of it take [`par_chunks_written`], with no zeros to write.
///
/// # Panics
///
/// If `chunk` is 0 (and `n` is not), or if `f` panics.
pub(crate) fn par_chunks_zeroed(
    n: usize,
    chunk: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    #[allow(unsafe_code)]
    // SAFETY: `zero` writes every value of the chunk before `f` sees it.
    unsafe {
        par_chunks_written(n, chunk, |i, c| f(i, zero(c)))
    }
}

/// `c`, every value written 0.
fn zero(c: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    for e in c.iter_mut() {
        e.write(0.0);
    }
    #[allow(unsafe_code)]
    // SAFETY: every element of `c` was written just above.
    unsafe {
        c.assume_init_mut()
    }
}

/// A new buffer of `n` values computed in parallel, chunk by chunk: `f(i, c)` writes every
/// value of chunk `i` (the values `i * chunk..`, the last chunk shorter) into the uninitialized
/// `c`. The output of an element-wise kernel is written once, not cleared first. (A parallel
/// clear of each new buffer had cost 5-6% of a ResNet-20 training step, batch 128 on 2 cores;
/// writing element-wise outputs once and clearing the others chunk by chunk made the step 8%
/// faster, median of 12 alternated runs of the `train_step` example.)
///
/// # Safety
///
/// `f` must write every element of the chunk it is handed, or panic. (Under `cfg(test)`
/// chunks are handed over filled with NaN, so that a kernel that misses values fails its
/// tests.)
///
/// # Panics
///
/// If `chunk` is 0 (and `n` is not), or if `f` panics.
#[allow(unsafe_code)]
pub(crate) unsafe fn par_chunks_written(
    n: usize,
    chunk: usize,
    f: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    use rayon::prelude::*;
    if n == 0 {
        return Vec::new();
    }
    let mut v = Vec::with_capacity(n);
    v.spare_capacity_mut()[..n]
        .par_chunks_mut(chunk)
        .enumerate()
        .for_each(|(i, c)| {
            #[cfg(test)]
            for e in c.iter_mut() {
                e.write(f32::NAN);
            }
            f(i, c);
        });
    // SAFETY: the chunks cover `0..n`, and `f` wrote every value of each (the caller's
    // promise); had it panicked, the panic would have left `for_each` and dropped `v` at
    // length 0.
    unsafe {
        v.set_len(n);
    }
    v
}

/// A copy of `src`, written by all of rayon's threads in blocks of 16 values when it is large:
/// the buffer of a kernel that then overwrites it in place.
pub(crate) fn copied(src: &[f32]) -> Vec<f32> {
    use rayon::prelude::*;
    const BLOCK: usize = 16;
    if src.len() < 1 << 16 {
        return src.to_vec();
    }
    let (blocks, tail) = src.as_chunks::<BLOCK>();
    // the partial last block padded, then cut off: no reallocation to append it
    let mut last = [0.0f32; BLOCK];
    last[..tail.len()].copy_from_slice(tail);
    let mut v = blocks
        .par_iter()
        .copied()
        .with_min_len(1 << 10)
        .chain(rayon::iter::once(last))
        .collect::<Vec<[f32; BLOCK]>>()
        .into_flattened();
    v.truncate(src.len());
    v
}

/// Keeps freed tensor memory in the process (glibc): raises the size above which blocks are
/// `mmap`ed to its maximum (32 MiB) and the free memory kept before returning it to the system
/// to 1 GiB. With glibc's defaults a training step hands its activations back to the system
/// and faults them in again, zeroed, in the next step; on ResNet-20 (batch 128, 2 cores) that
/// cost a quarter of the step. Call it once at program start, before other threads allocate
/// (the `qnas` binary does); it changes nothing elsewhere than Linux with glibc.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt only sets allocator parameters (valid constants and values here); it is
    // thread-safe in glibc and has no memory-safety preconditions.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Builds the kernels' thread pool (rayon's global pool) with one worker per core plus this
/// thread, which joins the pool as its worker 0: the kernels' parallel loops, started here,
/// then run partly on this thread, instead of being handed to the pool while this thread
/// sleeps until they finish (two wake-ups per kernel call). Measured with `qnas bench`,
/// alternated on 2 cores: 5-15% more images per second in training and inference on the
/// default space's largest member and on ResNet-20. The workers alone (one per core) still
/// serve threads that only wait, as a search's evaluation threads do. Call it on the main
/// thread before any work (the `qnas` binary does, and the kernels' benchmark examples, so
/// that they measure the kernels as the binary runs them); a pool already built keeps its
/// shape.
pub fn pool_with_main_thread() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(cores + 1)
        .use_current_thread()
        .build_global();
}

static DISABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns our kernels on (the default) or off for this process. Off, the supernet runs on
/// burn's own NCHW ops (the portable path every backend has); on, a supernet on a `flex`
/// device keeps its activations NHWC and convolves and normalizes with these kernels. Other
/// devices always take burn's path. Set it before building or running networks.
pub fn set_enabled(enabled: bool) {
    DISABLED.store(!enabled, std::sync::atomic::Ordering::Relaxed);
}

/// Whether our kernels are on for this process (see [`set_enabled`]).
pub fn enabled() -> bool {
    !DISABLED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Whether networks on `device` run on our kernels: they are on and the device is `flex`
/// (with or without autodiff).
pub fn active(device: &burn::tensor::Device) -> bool {
    enabled() && device.clone().inner() == burn::tensor::Device::flex()
}

/// The machine's measured `f32` matrix-multiply throughput: the yardstick of `qnas bench`.
#[derive(Clone, Debug, PartialEq)]
pub struct SgemmPeak {
    /// Best throughput seen, GFLOP/s (`2·n³` per product).
    pub gflop_per_s: f64,
    /// How it was measured.
    pub method: String,
}

/// Measures the sgemm peak: square products of size 1024 on rayon's current pool with the
/// gemm the kernels use, one warm-up then the best of 8 (the machine's capability, not its
/// typical load).
pub fn sgemm_peak() -> SgemmPeak {
    const N: usize = 1024;
    const REPS: usize = 8;
    let a: Vec<f32> = (0..N * N).map(|i| ((i % 97) as f32) * 0.01).collect();
    let b: Vec<f32> = (0..N * N).map(|i| ((i % 89) as f32) * 0.01).collect();
    let mut c = vec![0.0f32; N * N];
    let mut best = f64::INFINITY;
    for rep in 0..=REPS {
        let t = std::time::Instant::now();
        sgemm::sgemm(
            N,
            N,
            N,
            sgemm::Dst {
                data: &mut c,
                rs: N,
                cs: 1,
                accumulate: false,
            },
            sgemm::Src {
                data: &a,
                rs: N,
                cs: 1,
            },
            sgemm::Src {
                data: &b,
                rs: N,
                cs: 1,
            },
            true,
        );
        if rep > 0 {
            best = best.min(t.elapsed().as_secs_f64());
        }
    }
    std::hint::black_box(&c);
    SgemmPeak {
        gflop_per_s: 2.0 * (N as f64).powi(3) / best / 1e9,
        method: format!(
            "best of {REPS} f32 {N}x{N}x{N} products, gemm 0.19 on {} threads",
            rayon::current_num_threads()
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn chunks_are_handed_over_zeroed_and_kept_in_place() {
        // empty, one short chunk, a partial last chunk; each into memory just freed dirty
        for (n, chunk) in [(0, 1), (5, 8), (1000, 64), ((1 << 16) + 7, 4096)] {
            drop(std::hint::black_box(vec![f32::NAN; n]));
            let v = super::par_chunks_zeroed(n, chunk, |i, c| {
                assert!(c.len() == chunk || (c.len() < chunk && (i + 1) * chunk >= n));
                assert!(c.iter().all(|&x| x.to_bits() == 0), "chunk {i} not zeroed");
                for (j, x) in c.iter_mut().enumerate() {
                    if j % 3 != 0 {
                        *x = (i * chunk + j) as f32;
                    }
                }
            });
            assert_eq!(v.len(), n);
            for (k, &x) in v.iter().enumerate() {
                let want = if (k % chunk) % 3 == 0 { 0.0 } else { k as f32 };
                assert_eq!(x, want, "value {k} of {n}");
            }
        }
    }

    #[test]
    fn copies_are_equal_to_their_source() {
        for n in [0, 5, (1 << 16) - 1, 1 << 16, (1 << 16) + 7, 3 << 16] {
            let src: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
            let v = super::copied(&src);
            assert_eq!(v, src);
        }
    }
}
