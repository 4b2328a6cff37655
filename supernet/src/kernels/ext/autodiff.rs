//! [`NhwcBackend`] for `Autodiff<Flex>`: the forward on `flex`, registered in burn's autodiff
//! graph with hand-written backward passes.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ActivationOps, FloatTensorOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::Shape;
use spaces::Format;

use super::NhwcBackend;
use super::flex::{
    bn_forward, contiguous, conv_shape, fake_quantize_owned, flex, grid, into_unique,
    unique_values_mut, values,
};
use crate::kernels::conv;
use crate::kernels::norm::{self, NormAct, NormStats};
use crate::kernels::quant::{self, Grid};

#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 2> for ConvBackward {
    type State = (NodeId, NodeId, usize, usize);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_w] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node), "the output gradient");
        let (x_id, w_id, stride, groups) = ops.state;
        let x = contiguous(
            checkpointer.retrieve_node_output::<FlexTensor>(x_id),
            "the convolution input",
        );
        let w = contiguous(
            checkpointer.retrieve_node_output::<FlexTensor>(w_id),
            "the convolution weight",
        );
        let s = conv_shape(&x, &w, stride, groups);
        if let Some(node) = node_x {
            let dx = conv::backward_data(&s, values(&dy), values(&w));
            grads.register::<Flex>(
                node.id,
                flex(dx, [s.batch, s.height, s.width, s.in_channels]),
            );
        }
        if let Some(node) = node_w {
            let dw = conv::backward_weight(&s, values(&x), values(&dy));
            grads.register::<Flex>(node.id, flex(dw, w.layout().shape().clone()));
        }
    }
}

/// What the batch-norm backward keeps: input, output, gamma and the batch statistics.
#[derive(Clone, Debug)]
struct BnState {
    x: FlexTensor,
    y: FlexTensor,
    gamma: FlexTensor,
    stats: std::sync::Arc<NormStats>,
    act: NormAct,
}

#[derive(Debug)]
struct BnBackward;

impl Backward<Flex, 3> for BnBackward {
    type State = BnState;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        // the output gradient's buffer becomes the input gradient (copied if shared)
        let mut g = into_unique(contiguous(
            grads.consume::<Flex>(&ops.node),
            "the output gradient",
        ));
        let st = ops.state;
        let c = st.stats.mean.len();
        let (dgamma, dbeta) = norm::batch_norm_train_backward_in_place(
            values(&st.x),
            values(&st.y),
            unique_values_mut(&mut g).expect("a tensor made unique"),
            c,
            values(&st.gamma),
            &st.stats,
            st.act,
        );
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, g);
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, flex(dgamma, [c]));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, flex(dbeta, [c]));
        }
    }
}

#[derive(Debug)]
struct AddActBackward;

impl Backward<Flex, 2> for AddActBackward {
    type State = (FlexTensor, NormAct);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_a, node_b] = ops.parents;
        // the output gradient's buffer becomes the input gradient (copied if shared)
        let mut g = into_unique(contiguous(
            grads.consume::<Flex>(&ops.node),
            "the output gradient",
        ));
        let (y, act) = ops.state;
        norm::act_backward_in_place(
            values(&y),
            unique_values_mut(&mut g).expect("a tensor made unique"),
            act,
        );
        if let Some(node) = node_a {
            grads.register::<Flex>(node.id, g.clone());
        }
        if let Some(node) = node_b {
            grads.register::<Flex>(node.id, g);
        }
    }
}

#[derive(Debug)]
struct QuantBackward;

impl Backward<Flex, 1> for QuantBackward {
    type State = (FlexTensor, Grid);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x] = ops.parents;
        let mut dy = contiguous(grads.consume::<Flex>(&ops.node), "the output gradient");
        let (x, grid) = ops.state;
        if let Some(node) = node_x {
            // the output gradient becomes the input gradient where nothing else holds it
            if let Some(g) = unique_values_mut(&mut dy) {
                quant::fake_quantize_backward_in_place(values(&x), g, grid);
                grads.register::<Flex>(node.id, dy);
            } else {
                let dx = quant::fake_quantize_backward(values(&x), values(&dy), grid);
                grads.register::<Flex>(node.id, flex(dx, x.layout().shape().clone()));
            }
        }
    }
}

impl<C: CheckpointStrategy> NhwcBackend for Autodiff<Flex, C> {
    fn conv2d_nhwc(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        groups: usize,
    ) -> FloatTensor<Self> {
        match ConvBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_id = prep.checkpoint(&x);
                let w_id = prep.checkpoint(&weight);
                let y =
                    Flex::conv2d_nhwc(x.into_primitive(), weight.into_primitive(), stride, groups);
                prep.finish((x_id, w_id, stride, groups), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::conv2d_nhwc(
                x.into_primitive(),
                weight.into_primitive(),
                stride,
                groups,
            )),
        }
    }

    fn batch_norm_nhwc(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        act: NormAct,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let prep = BnBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let x = x.into_primitive();
        let gamma = gamma.into_primitive();
        let (y, stats) = bn_forward(&x, gamma.clone(), beta.into_primitive(), epsilon, act);
        let c = stats.mean.len();
        let mean = FloatTensor::<Self>::new(flex(stats.mean.clone(), [c]));
        let var = FloatTensor::<Self>::new(flex(stats.var.clone(), [c]));
        let out = match prep {
            OpsKind::Tracked(prep) => {
                let state = BnState {
                    x: contiguous(x, "the batch norm input"),
                    y: y.clone(),
                    gamma: contiguous(gamma, "the batch norm gamma"),
                    stats: std::sync::Arc::new(stats),
                    act,
                };
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        (out, mean, var)
    }

    fn add_act_nhwc(a: FloatTensor<Self>, b: FloatTensor<Self>, act: NormAct) -> FloatTensor<Self> {
        let prep = AddActBackward
            .prepare::<C>([a.node(), b.node()])
            .compute_bound()
            .stateful();
        let y = Flex::add_act_nhwc(a.into_primitive(), b.into_primitive(), act);
        match prep {
            OpsKind::Tracked(prep) => prep.finish((y.clone(), act), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn range_max(x: FloatTensor<Self>, signed: bool) -> FloatTensor<Self> {
        FloatTensor::<Self>::new(Flex::range_max(x.into_primitive(), signed))
    }

    fn range_percentile(x: FloatTensor<Self>, signed: bool, percentile: f64) -> FloatTensor<Self> {
        FloatTensor::<Self>::new(Flex::range_percentile(
            x.into_primitive(),
            signed,
            percentile,
        ))
    }

    fn fake_quantize_nhwc(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        format: Format,
        signed: bool,
    ) -> FloatTensor<Self> {
        let prep = QuantBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful();
        let grid = grid(scale.into_primitive(), format, signed);
        match prep {
            OpsKind::Tracked(prep) => {
                // the backward pass keeps the input: a new buffer for the output
                let x = contiguous(x.into_primitive(), "the quantizer input");
                let shape = x.layout().shape().clone();
                let q = flex(quant::fake_quantize(values(&x), grid), shape);
                prep.finish((x, grid), q)
            }
            OpsKind::UnTracked(prep) => prep.finish(fake_quantize_owned(x.into_primitive(), grid)),
        }
    }

    fn channel_affine_nhwc(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        act: NormAct,
    ) -> FloatTensor<Self> {
        // Inference only in practice; with gradients, compose autodiff's own ops.
        let c = scale.primitive().layout().shape().num_elements();
        let rank = x.primitive().layout().shape().num_dims();
        let mut bshape = vec![1; rank];
        bshape[rank - 1] = c;
        let scale = Self::float_reshape(scale, Shape::from(bshape.clone()));
        let shift = Self::float_reshape(shift, Shape::from(bshape));
        let y = Self::float_add(Self::float_mul(x, scale), shift);
        match act {
            NormAct::None => y,
            NormAct::Relu => Self::relu(y),
            NormAct::Relu6 => Self::float_clamp(y, 0.0.into(), 6.0.into()),
        }
    }
}
