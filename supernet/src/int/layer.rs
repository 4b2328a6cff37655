//! One conv-BN-activation layer on integers: its eligibility, its weights packed once, and
//! its forward pass over a batch of NHWC `f32` activations.

use std::cell::RefCell;

use rayon::prelude::*;
use spaces::Format;
use spaces::plan::{Act, ConvLayer};

use super::kernel::{self, Chunk, Epilogue, Geom, Isa, LayerRun, Quantizer};
use crate::deploy::tensor_values;
use crate::layers::StaticConvBn;
use crate::quant::grid::int_code_range;
use crate::quant::{Codes, WeightQuant, quantize_codes};

/// Widest integer format the kernel takes (codes widened to `i16`, products summed in `i32`).
pub const MAX_INT_BITS: u8 = 8;

/// Why a layer stays on the `f32` path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FloatReason {
    /// Its weight or input format is not an integer of at most 8 bits.
    Format,
    /// A depthwise layer (the integer kernel is dense only).
    Depthwise,
    /// Its weights are not on their integer grid (`code × scale` differs from the stored
    /// value), or a weight is NaN.
    OffGrid,
    /// Its sums could overflow `i32`.
    Overflow,
}

/// An integer format of at most [`MAX_INT_BITS`] bits: its bit width.
fn narrow_int(format: Format) -> Option<u8> {
    match format {
        Format::Int(bits) if bits <= MAX_INT_BITS => Some(bits),
        _ => None,
    }
}

/// A conv-BN-activation layer ready for the integer kernel.
#[derive(Clone, Debug)]
pub(super) struct IntConv {
    /// Input height, width and channels, output channels, kernel, stride.
    pub(super) geom: Geom,
    quant: Quantizer,
    chunks: Vec<Chunk>,
    /// The weights in the quad layout of the VNNI kernel, where the CPU has VNNI and the codes
    /// fit it (activations `u8`, weights `i8`); used on [`Isa::Best`].
    quads: Option<Vec<Chunk>>,
    epi: Epilogue,
}

thread_local! {
    static PADDED: RefCell<Vec<i32>> = const { RefCell::new(Vec::new()) };
}

impl IntConv {
    /// The layer `m` (planned as `layer`) on integers, or why it stays on `f32`.
    pub(super) fn new(
        m: &StaticConvBn,
        layer: &ConvLayer,
        weight_quant: WeightQuant,
    ) -> Result<IntConv, FloatReason> {
        let (Some(_), Some(act_bits)) = (
            narrow_int(layer.formats.weights),
            narrow_int(m.quant.format),
        ) else {
            return Err(FloatReason::Format);
        };
        if layer.groups > 1 {
            return Err(FloatReason::Depthwise);
        }
        let (cin, cout, k) = (
            layer.in_channels as usize,
            layer.out_channels as usize,
            layer.kernel as usize,
        );
        let weight = m.conv.weight.val();
        let values = tensor_values(weight.clone());
        let q = quantize_codes(weight, layer.formats.weights, 0, weight_quant)
            .map_err(|_| FloatReason::OffGrid)?;
        let Codes::Int(codes) = q.codes else {
            return Err(FloatReason::Format);
        };
        let per_channel = values.len() / cout.max(1);
        let on_grid = q.scales.len() == cout
            && codes.len() == values.len()
            && codes
                .iter()
                .zip(&values)
                .enumerate()
                .all(|(i, (&c, &v))| c as f32 * q.scales[i / per_channel] == v);
        if !on_grid {
            return Err(FloatReason::OffGrid);
        }
        let (act_lo, act_hi) = int_code_range(act_bits, m.quant.signed);
        let max_w = codes.iter().map(|c| c.unsigned_abs()).max().unwrap_or(0);
        let max_a = act_lo.unsigned_abs().max(act_hi.unsigned_abs());
        let terms = (k * k * cin) as u64;
        if terms.saturating_mul(max_a).saturating_mul(max_w) > i32::MAX as u64 {
            return Err(FloatReason::Overflow);
        }
        let geom = Geom {
            height: layer.in_size.0 as usize,
            width: layer.in_size.1 as usize,
            cin,
            cout,
            kernel: k,
            stride: layer.stride as usize,
            per_word: 2,
        };
        let codes16: Vec<i16> = codes.iter().map(|&c| c as i16).collect();
        let act_scale = m.quant.scale_value();
        let (scale, shift) = bn_affine(m);
        let bias = m.conv.bias.as_ref().map(|b| tensor_values(b.val()));
        let shift = match bias {
            Some(b) => shift
                .iter()
                .zip(&scale)
                .zip(&b)
                .map(|((&t, &s), &b)| b * s + t)
                .collect(),
            None => shift,
        };
        let (lo, hi) = act_bounds(layer.act);
        Ok(IntConv {
            geom,
            quant: Quantizer {
                scale: act_scale,
                lo: act_lo as f32,
                hi: act_hi as f32,
            },
            chunks: kernel::pack(&geom, &codes16),
            quads: (vnni_available()
                && act_lo >= 0
                && act_hi <= 255
                && codes.iter().all(|&c| i8::try_from(c).is_ok()))
            .then(|| {
                kernel::pack(
                    &Geom {
                        per_word: 4,
                        ..geom
                    },
                    &codes16,
                )
            }),
            epi: Epilogue {
                mult: q.scales.iter().map(|&s| act_scale * s).collect(),
                scale,
                shift,
                lo,
                hi,
            },
        })
    }

    /// Output values per input value count: the length of [`IntConv::forward`]'s output for
    /// `x_len` input values.
    pub(super) fn output_len(&self, x_len: usize) -> usize {
        let g = &self.geom;
        x_len / (g.height * g.width * g.cin).max(1) * g.out_h() * g.out_w() * g.cout
    }

    /// The layer on a batch of NHWC activations `x` (`[batch, h, w, cin]`, of the planned
    /// size) into `out` (`[batch, oh, ow, cout]`, every value written); with `residual`
    /// (`skip` of `out`'s shape and the activation after the addition), `out` is
    /// `act(layer output + skip)`. Images run on rayon's pool, one task each; every output is
    /// computed alone, so the result does not depend on the thread count.
    pub(super) fn forward(
        &self,
        x: &[f32],
        isa: Isa,
        out: &mut [f32],
        residual: Option<(&[f32], Act)>,
    ) {
        let g = &self.geom;
        let in_img = g.height * g.width * g.cin;
        let out_img = g.out_h() * g.out_w() * g.cout;
        assert!(
            in_img > 0 && x.len().is_multiple_of(in_img) && out.len() == self.output_len(x.len()),
            "integer conv: {} input and {} output values for images of {in_img}",
            x.len(),
            out.len()
        );
        let (geom, chunks) = match &self.quads {
            Some(quads) if isa == Isa::Best => (Geom { per_word: 4, ..*g }, quads),
            _ => (*g, &self.chunks),
        };
        let run = LayerRun {
            g: geom,
            q: self.quant,
            chunks,
            epi: &self.epi,
            post: residual.map_or((f32::NEG_INFINITY, f32::INFINITY), |(_, act)| {
                act_bounds(act)
            }),
        };
        let skip = residual.map(|(s, _)| {
            assert_eq!(s.len(), out.len(), "residual of another shape");
            s
        });
        out.par_chunks_mut(out_img)
            .zip(x.par_chunks(in_img))
            .enumerate()
            .for_each(|(i, (o, xi))| {
                let skip_img = skip.map(|s| &s[i * out_img..][..out_img]);
                PADDED.with(|cell| {
                    let mut buf = cell.borrow_mut();
                    if buf.len() < g.padded_len() {
                        buf.resize(g.padded_len(), 0);
                    }
                    let xp = &mut buf[..g.padded_len()];
                    // quads exist only where the CPU has VNNI, and run on `Isa::Best`
                    #[cfg(target_arch = "x86_64")]
                    if run.g.per_word == 4 {
                        return super::vnni::image(&run, xi, xp, o, skip_img);
                    }
                    run.image(isa, xi, xp, o, skip_img);
                });
            });
    }
}

/// Whether the CPU has AVX-512 VNNI (the quad-layout kernel).
fn vnni_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::vnni::Vnni::try_new().is_some()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The bounds of the activation `act` as a clamp.
pub(super) fn act_bounds(act: Act) -> (f32, f32) {
    match act {
        Act::None => (f32::NEG_INFINITY, f32::INFINITY),
        Act::Relu => (0.0, f32::INFINITY),
        Act::Relu6 => (0.0, 6.0),
    }
}

/// The batch norm of `m` in inference as `(scale, shift)`, computed as the `f32` path
/// computes it.
fn bn_affine(m: &StaticConvBn) -> (Vec<f32>, Vec<f32>) {
    let bn = &m.bn;
    let device = bn.gamma.val().device();
    let (scale, shift) = crate::layers::elastic_bn::inference_affine(
        bn.gamma.val(),
        bn.beta.val(),
        bn.running_mean.value_sync().to_device(&device),
        bn.running_var.value_sync().to_device(&device),
        bn.epsilon,
    );
    (tensor_values(scale), tensor_values(shift))
}
