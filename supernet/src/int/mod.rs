//! The integer engine: inference of a [`StaticNet`] with integer arithmetic in its integer
//! layers.
//!
//! [`StaticNet::forward`] runs an exported int8 model with fake quantization: values on the
//! integer grid, arithmetic in `f32`. [`IntNet`] runs the same network with every dense
//! conv-BN-activation layer whose weight and input formats are integers of at most 8 bits
//! ([`MAX_INT_BITS`]) on integers: the input activation is quantized to its codes (`u8`
//! range after a ReLU, `i8` otherwise; the rounding of the fake quantizer, so the codes are
//! the ones the `f32` path multiplies), multiplied by the weight codes (`i8`, packed once when
//! the engine is built), summed exactly in `i32`, and one `f32` epilogue per output turns the
//! sum into the layer's output: `acc × input_scale × weight_scale[c]`, the batch norm as an
//! affine map, the activation, and for the last conv of a residual block the residual
//! addition and the activation after it (where that conv runs on integers; elsewhere they are
//! one pass of their own, with the same arithmetic). Activations between layers are `f32`
//! NHWC, in buffers the network reuses from layer to layer and call to call. Pooling (a burn
//! op, as on the `f32` path) and the classifier run as [`StaticNet::forward`] runs them, and
//! so do the other layers (fp32, minifloats, depthwise layers: the kernel is dense only; see
//! [`FloatReason`]).
//!
//! Agreement with [`StaticNet::forward`]: the integer sums are exact where the `f32` path
//! rounds its partial sums, so a layer's outputs differ by `f32` summation order only (a few
//! ulps of the sum); where such a difference moves a value across a rounding boundary of the
//! next layer's quantizer, that one code differs by one. The tests bound the logits'
//! difference relative to their largest magnitude and count the predicted classes that flip.
//!
//! - `kernel.rs`: the SIMD kernel (`madd` on `i16`-widened codes, `i32` accumulators, pulp's
//!   AVX-512 and AVX2 tokens, a portable fallback), the weight packing and the epilogue;
//! - `layer.rs`: one layer's eligibility, packing and batch forward;
//! - this file: the network, its traversal of the plan, and the engine choice.

use std::collections::HashMap;
use std::sync::Mutex;

use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;
use spaces::plan::{Act, ConvLayer};

use crate::net::StaticNet;
use crate::net::{LayerAt, block_pool, stem_pool};
use rayon::prelude::*;

mod kernel;
mod layer;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod vnni;

pub use kernel::Isa;
pub use layer::{FloatReason, MAX_INT_BITS};

use layer::{IntConv, act_bounds};

/// Which arithmetic runs an exported model's integer layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Integer arithmetic where the layers allow ([`IntNet`]), `f32` elsewhere.
    Int,
    /// `f32` fake quantization everywhere ([`StaticNet::forward`]).
    Float,
}

impl Engine {
    /// Every engine, for command-line parsing.
    pub const ALL: [Engine; 2] = [Engine::Int, Engine::Float];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Int => "int",
            Engine::Float => "float",
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// NHWC activations of a batch: the first `dims`' product of `values` (a buffer from
/// [`Buffers`] may be longer).
#[derive(Debug)]
struct Nhwc {
    values: Vec<f32>,
    dims: [usize; 4],
}

impl Nhwc {
    fn len(&self) -> usize {
        self.dims.iter().product()
    }

    fn data(&self) -> &[f32] {
        &self.values[..self.len()]
    }

    fn data_mut(&mut self) -> &mut [f32] {
        let n = self.len();
        &mut self.values[..n]
    }

    fn to_tensor(&self, device: &Device) -> Tensor<4> {
        Tensor::from_data(TensorData::new(self.data().to_vec(), self.dims), device)
    }

    fn from_tensor(t: Tensor<4>) -> Nhwc {
        let dims = t.dims();
        let values = t
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("a float tensor holds f32");
        Nhwc { values, dims }
    }
}

/// Activation buffers reused from layer to layer and call to call (a fresh multi-megabyte
/// buffer per layer costs page faults and zeroing comparable to a narrow layer's work).
/// Buffers keep their length (an [`Nhwc`] uses a prefix of its buffer), so that once the
/// pool holds buffers as long as the layers need, none is cleared or grown again: handing the
/// last buffer back and cutting it to size, the pool had cleared the part to grow again in
/// every batch, 5% of ResNet-20's integer inference.
#[derive(Debug, Default)]
struct Buffers(Mutex<Vec<Vec<f32>>>);

impl Buffers {
    /// A buffer of at least `len` values (contents unspecified): the shortest one the pool
    /// has that is long enough, else its longest one (or a new one) grown to `len`.
    fn take(&self, len: usize) -> Vec<f32> {
        let mut pool = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fit = pool
            .iter()
            .enumerate()
            .filter(|(_, v)| v.len() >= len)
            .min_by_key(|(_, v)| v.len())
            .or_else(|| pool.iter().enumerate().max_by_key(|(_, v)| v.len()))
            .map(|(i, _)| i);
        let mut v = fit.map(|i| pool.swap_remove(i)).unwrap_or_default();
        drop(pool);
        if v.len() < len {
            v.resize(len, 0.0);
        }
        v
    }

    fn give(&self, x: Nhwc) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(x.values);
    }
}

/// A [`StaticNet`] with its integer layers prepared for the integer kernel (weights packed).
#[derive(Debug)]
pub struct IntNet {
    net: StaticNet,
    int: HashMap<LayerAt, IntConv>,
    float: Vec<(String, FloatReason)>,
    isa: Isa,
    buffers: Buffers,
}

impl IntNet {
    /// Prepares `net`: every layer that can run on integers is packed for the kernel.
    pub fn new(net: StaticNet) -> IntNet {
        let mut int = HashMap::new();
        let mut float = Vec::new();
        for (at, layer) in layers_of(&net) {
            match IntConv::new(net.layer_module(at), layer, net.weight_quant) {
                Ok(c) => {
                    int.insert(at, c);
                }
                Err(reason) => float.push((layer.name.clone(), reason)),
            }
        }
        IntNet {
            net,
            int,
            float,
            isa: Isa::Best,
            buffers: Buffers::default(),
        }
    }

    /// This network with its kernel compiled for `isa` (the portable code, to test it).
    pub fn with_isa(self, isa: Isa) -> IntNet {
        IntNet { isa, ..self }
    }

    /// The network.
    pub fn net(&self) -> &StaticNet {
        &self.net
    }

    /// The network, given back.
    pub fn into_net(self) -> StaticNet {
        self.net
    }

    /// Conv layers that run on integers.
    pub fn int_layers(&self) -> usize {
        self.int.len()
    }

    /// The conv layers that stay on `f32`, by plan name, with the reason.
    pub fn float_layers(&self) -> &[(String, FloatReason)] {
        &self.float
    }

    /// The logits. On a device where [`StaticNet::forward`] does not run our kernels (not
    /// `flex`, our kernels switched off, or with autodiff), this is `StaticNet::forward`.
    ///
    /// # Shapes
    /// - `x`: `[batch, channels, height, width]`
    /// - output: `[batch, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let device = x.device();
        if !crate::kernels::active(&device) || device.is_autodiff() {
            return self.net.forward(x);
        }
        let plan = &self.net.plan;
        let mut x = Nhwc::from_tensor(x.permute([0, 2, 3, 1]));
        x = self.conv(LayerAt::Stem, &plan.stem, x, &device);
        if let Some(p) = plan.stem_pool {
            x = self.through_tensor(x, &device, |t| stem_pool(p, t, true));
        }
        for (i, b) in plan.blocks.iter().enumerate() {
            if b.pool_before.is_some() {
                x = self.through_tensor(x, &device, |t| block_pool(b.pool_before, t, true));
            }
            let last = b.convs.len().checked_sub(1);
            // the residual addition is fused into the last conv's epilogue when it runs on
            // integers: the shortcut first
            let fuse = b.residual
                && last
                    .is_some_and(|j| self.int.contains_key(&LayerAt::Main { block: i, conv: j }));
            let shortcut = match &b.shortcut {
                Some(s) if b.residual => {
                    Some(self.conv_ref(LayerAt::Shortcut { block: i }, s, &x, None, &device))
                }
                _ => None,
            };
            let mut y: Option<Nhwc> = None;
            for (j, c) in b.convs.iter().enumerate() {
                let at = LayerAt::Main { block: i, conv: j };
                let input = y.as_ref().unwrap_or(&x);
                let residual = (fuse && Some(j) == last)
                    .then(|| (shortcut.as_ref().unwrap_or(&x).data(), b.post_act));
                let next = self.conv_ref(at, c, input, residual, &device);
                if let Some(done) = y.replace(next) {
                    self.buffers.give(done);
                }
            }
            let Some(mut y) = y else {
                // a block without convs: its input, activated
                activate(x.data_mut(), b.post_act);
                continue;
            };
            if !fuse {
                if b.residual {
                    add_act(
                        y.data_mut(),
                        shortcut.as_ref().unwrap_or(&x).data(),
                        b.post_act,
                    );
                } else {
                    activate(y.data_mut(), b.post_act);
                }
            }
            if let Some(s) = shortcut {
                self.buffers.give(s);
            }
            self.buffers.give(std::mem::replace(&mut x, y));
        }
        if let Some(h) = &plan.head_conv {
            x = self.conv(LayerAt::Head, h, x, &device);
        }
        let [n, h, w, c] = x.dims;
        let pooled = x
            .to_tensor(&device)
            .reshape([n, h * w, c])
            .mean_dim(1)
            .reshape([n, c]);
        self.buffers.give(x);
        self.net.fc.forward(self.net.fc_quant.forward(pooled))
    }

    /// `x` through a burn op (pooling), its buffer given back.
    fn through_tensor(
        &self,
        x: Nhwc,
        device: &Device,
        op: impl FnOnce(Tensor<4>) -> Tensor<4>,
    ) -> Nhwc {
        let y = Nhwc::from_tensor(op(x.to_tensor(device)));
        self.buffers.give(x);
        y
    }

    /// [`IntNet::conv_ref`], `x`'s buffer given back.
    fn conv(&self, at: LayerAt, layer: &ConvLayer, x: Nhwc, device: &Device) -> Nhwc {
        let y = self.conv_ref(at, layer, &x, None, device);
        self.buffers.give(x);
        y
    }

    /// The layer at `at` on `x`: on integers when it was prepared for them, else as
    /// [`StaticNet::forward`] runs it. With `residual` (integer layers only), the output is
    /// `act(layer output + skip)`.
    fn conv_ref(
        &self,
        at: LayerAt,
        layer: &ConvLayer,
        x: &Nhwc,
        residual: Option<(&[f32], Act)>,
        device: &Device,
    ) -> Nhwc {
        let [n, h, w, c] = x.dims;
        match self.int.get(&at) {
            Some(ic) => {
                let g = ic.geom;
                assert_eq!(
                    (h, w, c),
                    (g.height, g.width, g.cin),
                    "layer {} planned for other inputs",
                    layer.name
                );
                let len = ic.output_len(x.len());
                let mut values = self.buffers.take(len);
                ic.forward(x.data(), self.isa, &mut values[..len], residual);
                Nhwc {
                    values,
                    dims: [n, g.out_h(), g.out_w(), g.cout],
                }
            }
            None => {
                assert!(residual.is_none(), "residual fused into an f32 layer");
                Nhwc::from_tensor(self.net.layer_module(at).forward_nhwc(x.to_tensor(device)))
            }
        }
    }
}

/// The activation `act` in place.
fn activate(y: &mut [f32], act: Act) {
    if act == Act::None {
        return;
    }
    let (lo, hi) = act_bounds(act);
    y.par_chunks_mut(CHUNK).for_each(|y| {
        pulp::Arch::new().dispatch(AddClamp {
            y,
            skip: None,
            lo,
            hi,
        })
    });
}

/// `y = act(y + skip)` in place: the residual addition and the activation after it.
fn add_act(y: &mut [f32], skip: &[f32], act: Act) {
    assert_eq!(y.len(), skip.len(), "residual of another shape");
    let (lo, hi) = act_bounds(act);
    y.par_chunks_mut(CHUNK)
        .zip(skip.par_chunks(CHUNK))
        .for_each(|(y, s)| {
            pulp::Arch::new().dispatch(AddClamp {
                y,
                skip: Some(s),
                lo,
                hi,
            })
        });
}

/// `y = clamp(y (+ skip), lo, hi)` on one chunk, compiled inside the SIMD dispatch.
struct AddClamp<'a> {
    y: &'a mut [f32],
    skip: Option<&'a [f32]>,
    lo: f32,
    hi: f32,
}

impl pulp::WithSimd for AddClamp<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (lo, hi) = (self.lo, self.hi);
        match self.skip {
            Some(skip) => {
                for (y, &s) in self.y.iter_mut().zip(skip) {
                    *y = (*y + s).max(lo).min(hi);
                }
            }
            None => {
                for y in self.y.iter_mut() {
                    *y = y.max(lo).min(hi);
                }
            }
        }
    }
}

/// Values per parallel task of the elementwise passes (fixed, so results do not depend on the
/// thread count; they are elementwise anyway).
const CHUNK: usize = 1 << 15;

/// Every conv layer of `net`'s plan with where it sits.
fn layers_of(net: &StaticNet) -> Vec<(LayerAt, &ConvLayer)> {
    let plan = &net.plan;
    let mut out = vec![(LayerAt::Stem, &plan.stem)];
    for (i, b) in plan.blocks.iter().enumerate() {
        for (j, c) in b.convs.iter().enumerate() {
            out.push((LayerAt::Main { block: i, conv: j }, c));
        }
        if let Some(s) = &b.shortcut {
            out.push((LayerAt::Shortcut { block: i }, s));
        }
    }
    if let Some(h) = &plan.head_conv {
        out.push((LayerAt::Head, h));
    }
    out
}

/// A network ready for inference on the engine chosen.
#[derive(Debug)]
pub enum Inference {
    /// [`StaticNet::forward`].
    Float(StaticNet),
    /// [`IntNet::forward`], with at least one layer on integers.
    Int(IntNet),
}

impl Inference {
    /// `net` on `engine`: the integer engine when asked for, on a device where our kernels
    /// run (`flex`, without autodiff), and when at least one layer can run on integers;
    /// otherwise the `f32` path.
    pub fn new(net: StaticNet, engine: Engine, device: &Device) -> Inference {
        if engine == Engine::Float || !crate::kernels::active(device) || device.is_autodiff() {
            return Inference::Float(net);
        }
        let int = IntNet::new(net);
        if int.int_layers() == 0 {
            Inference::Float(int.into_net())
        } else {
            Inference::Int(int)
        }
    }

    /// The logits.
    ///
    /// # Shapes
    /// - `x`: `[batch, channels, height, width]`
    /// - output: `[batch, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Inference::Float(net) => net.forward(x),
            Inference::Int(net) => net.forward(x),
        }
    }

    /// The engine that runs.
    pub fn engine(&self) -> Engine {
        match self {
            Inference::Float(_) => Engine::Float,
            Inference::Int(_) => Engine::Int,
        }
    }

    /// Conv layers on integers (0 on the `f32` path).
    pub fn int_layers(&self) -> usize {
        match self {
            Inference::Float(_) => 0,
            Inference::Int(net) => net.int_layers(),
        }
    }

    /// Conv layers of the network.
    pub fn layers(&self) -> usize {
        self.net().plan.convs().count()
    }

    /// The network.
    pub fn net(&self) -> &StaticNet {
        match self {
            Inference::Float(net) => net,
            Inference::Int(net) => net.net(),
        }
    }
}

/// How far the logits `a` of one engine are from the reference logits `b` (rows of `classes`,
/// the same images): the largest difference relative to the largest magnitude of `b` (at least
/// `f32::MIN_POSITIVE`), and how many rows have a different argmax (the first of equal maxima).
pub fn logit_agreement(a: &[f32], b: &[f32], classes: usize) -> (f32, usize) {
    let scale = b.iter().fold(f32::MIN_POSITIVE, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale;
    let argmax = |r: &[f32]| {
        r.iter()
            .enumerate()
            .fold((0, f32::MIN), |m, (i, &v)| if v > m.1 { (i, v) } else { m })
            .0
    };
    let flips = a
        .chunks(classes.max(1))
        .zip(b.chunks(classes.max(1)))
        .filter(|(x, y)| argmax(x) != argmax(y))
        .count();
    (diff, flips)
}
