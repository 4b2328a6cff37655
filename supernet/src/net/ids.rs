//! Stable parameter ids of a static network: renumbered in traversal order, so that its record
//! is the same for the same weights.

use burn::module::{Param, RunningState};
use burn::tensor::{Device, Tensor};

use super::static_net::{StaticBlock, StaticNet};
use crate::layers::StaticConvBn;
use crate::quant::FrozenActQuant;

/// Renumbers the parameter ids of a static network in traversal order, so that its record
/// (whose bytes include the ids, random by default) is the same for the same weights.
struct StableIds(u64);

impl StableIds {
    fn id(&mut self) -> burn::module::ParamId {
        self.0 += 1;
        burn::module::ParamId::from(self.0)
    }

    fn param<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let t = p.val();
        let (device, shape) = (t.device(), t.shape());
        Param::uninitialized(
            self.id(),
            move |d: &Device, grad: bool| t.to_device(d).set_require_grad(grad),
            device,
            true,
            shape,
        )
    }

    fn state<const D: usize>(&mut self, s: RunningState<Tensor<D>>) -> RunningState<Tensor<D>> {
        RunningState::with_id(self.id(), s.value())
    }

    fn conv_bn(&mut self, l: StaticConvBn) -> StaticConvBn {
        let StaticConvBn {
            quant,
            mut conv,
            mut bn,
            act,
        } = l;
        conv.weight = self.param(conv.weight);
        conv.bias = conv.bias.map(|b| self.param(b));
        bn.gamma = self.param(bn.gamma);
        bn.beta = self.param(bn.beta);
        bn.running_mean = self.state(bn.running_mean);
        bn.running_var = self.state(bn.running_var);
        let quant = FrozenActQuant {
            scale: self.state(quant.scale),
            ..quant
        };
        StaticConvBn {
            quant,
            conv,
            bn,
            act,
        }
    }
}

impl StaticNet {
    /// This network with its parameter ids numbered in traversal order: its record is then
    /// reproducible (the same weights give the same bytes). For writing records; train the
    /// network as it was.
    pub fn with_stable_ids(self) -> StaticNet {
        let mut ids = StableIds(0);
        let StaticNet {
            stem,
            blocks,
            head_conv,
            mut fc,
            fc_quant,
            plan,
            weight_quant,
        } = self;
        let stem = ids.conv_bn(stem);
        let blocks = blocks
            .into_iter()
            .map(|b| StaticBlock {
                convs: b.convs.into_iter().map(|c| ids.conv_bn(c)).collect(),
                shortcut: b.shortcut.map(|s| ids.conv_bn(s)),
            })
            .collect();
        let head_conv = head_conv.map(|h| ids.conv_bn(h));
        fc.weight = ids.param(fc.weight);
        fc.bias = fc.bias.map(|b| ids.param(b));
        let fc_quant = FrozenActQuant {
            scale: ids.state(fc_quant.scale),
            ..fc_quant
        };
        StaticNet {
            stem,
            blocks,
            head_conv,
            fc,
            fc_quant,
            plan,
            weight_quant,
        }
    }
}
