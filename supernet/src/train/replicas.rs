//! Data-parallel training: one replica of the trained supernet per device, each step's batch
//! split into one shard per replica.
//!
//! Every replica runs the step's members (drawn once, by the trainer's seeded generator) on its
//! shard and differentiates its share of the loss, the shard's members' losses weighted by the
//! shard's share of the batch; the gradients are moved to the first (main) device and summed
//! there with burn's `GradientsAccumulator`, in shard order; the one optimizer steps the main
//! supernet, and the next step copies it to the other replicas again. The step's loss and each
//! member's loss and batch accuracy are the shards' figures weighted the same way.
//!
//! Batch norm normalizes each shard with the shard's own statistics (as PyTorch's
//! `DistributedDataParallel` without `SyncBatchNorm`), so a step on several devices is not the
//! step on one device over the whole batch; the running statistics (and activation ranges) kept
//! are those of the main replica, which trains on the first shard (as DDP's
//! `broadcast_buffers`). Searches recalibrate every member's statistics before measuring it.
//!
//! Replicas on distinct devices run on threads of their own; replicas sharing a device (e.g.
//! `flex` twice, which has one device) run in sequence on it, so that their draws from the
//! device's generator (dropout) come in a fixed order.

use std::ops::Range;

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Int, Tensor};
use spaces::plan::Plan;

use super::{
    Choice, Materialize, StepOutcome, StepReport, TrainError, Trainer, member_pass, seeded,
};
use crate::net::Supernet;

/// What one replica's shard gave: its gradients (on its device), its share of the batch, its
/// members' summed loss, and each member's loss and batch accuracy.
struct ShardResult {
    grads: GradientsParams,
    weight: f64,
    loss: f64,
    member_losses: Vec<f64>,
    member_accuracies: Vec<f64>,
}

/// `n` rows split into `k` contiguous shards whose sizes differ by at most one (the first
/// `n % k` one larger).
pub fn shard_ranges(n: usize, k: usize) -> Vec<Range<usize>> {
    let k = k.max(1);
    let (base, extra) = (n / k, n % k);
    let mut start = 0;
    (0..k)
        .map(|i| {
            let len = base + usize::from(i < extra);
            let r = start..start + len;
            start += len;
            r
        })
        .collect()
}

/// A copy of `net` on `device` (autodiff) whose parameters are new leaves and whose running
/// statistics are its own: `clone` would share the running statistics, which `to_device` then
/// moves for both.
fn replica(net: &Supernet, device: &Device) -> Supernet {
    net.valid().train().fork(device)
}

impl Trainer {
    /// Trains data-parallel on `devices` (without autodiff; the first one must be the device
    /// the trainer was built on, which keeps the supernets and the optimizer): each step's
    /// batch is split into one shard per device (see the module docs); one device is the
    /// ordinary training. Every parameter is drawn now, under the seed, as
    /// [`Trainer::for_member`] does (burn otherwise draws a parameter at its first use, which
    /// a replica's copy would anticipate), so that the initial weights do not depend on the
    /// number of devices; a trainer restored afterwards loads its weights over them.
    pub fn set_replicas(&mut self, devices: &[Device]) -> Result<(), TrainError> {
        let devices: Vec<Device> = devices.iter().map(|d| d.clone().autodiff()).collect();
        match devices.first() {
            None => return Err(TrainError::Replicas("no device given".to_string())),
            Some(first) if *first != self.device => {
                return Err(TrainError::Replicas(format!(
                    "the first device ({first:?}) must be the one the trainer was built on ({:?})",
                    self.device
                )));
            }
            Some(_) => {}
        }
        let batch = self.space.train.batch_size as usize;
        if devices.len() > batch {
            return Err(TrainError::Replicas(format!(
                "{} devices for batches of {batch} images: every device needs at least one image \
                 (train.batch_size)",
                devices.len()
            )));
        }
        seeded(&self.device, self.space.train.seed, || {
            for net in &self.nets {
                net.visit(&mut Materialize);
            }
        });
        self.replicas = devices;
        Ok(())
    }

    /// The devices of data-parallel training (autodiff), the main one first.
    pub fn replicas(&self) -> &[Device] {
        &self.replicas
    }

    /// [`Trainer::train_members`] on several replicas; see the module docs.
    pub(super) fn train_members_sharded(
        &mut self,
        images: Tensor<4>,
        labels: Tensor<1, Int>,
        plans: &[(String, Plan)],
        choice: Choice,
        validation: Option<(Tensor<4>, Tensor<1, Int>)>,
    ) -> Result<StepReport, TrainError> {
        let n = labels.dims()[0];
        let shards = shard_ranges(n, self.replicas.len());
        let settings = self.pass_settings(&choice);
        let main = &self.nets[choice.model];
        // the copies are taken before the main replica's pass updates its running statistics
        let mut jobs: Vec<(usize, Device, Option<Supernet>)> = shards
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.is_empty())
            .map(|(i, _)| {
                let device = self.replicas[i].clone();
                let copy = (i > 0).then(|| replica(main, &device));
                (i, device, copy)
            })
            .collect();
        // one group of jobs per device, in the order the devices first appear
        let mut groups: Vec<Vec<(usize, Device, Option<Supernet>)>> = Vec::new();
        for job in jobs.drain(..) {
            match groups.iter_mut().find(|g| g[0].1 == job.1) {
                Some(g) => g.push(job),
                None => groups.push(vec![job]),
            }
        }
        let run = |group: Vec<(usize, Device, Option<Supernet>)>,
                   main: Option<&Supernet>|
         -> Result<Vec<(usize, ShardResult)>, TrainError> {
            group
                .into_iter()
                .map(|(i, device, copy)| {
                    let net = match (&copy, main) {
                        (Some(c), _) => c,
                        (None, Some(m)) => m,
                        (None, None) => unreachable!("shard 0 runs on the main replica"),
                    };
                    let range = shards[i].clone();
                    let x = images.clone().slice(range.clone()).to_device(&device);
                    let y = labels.clone().slice(range.clone()).to_device(&device);
                    let weight = range.len() as f64 / n as f64;
                    let pass = member_pass(net, x, y, plans, &settings)?;
                    let loss = f64::from(pass.total.clone().into_scalar::<f32>());
                    let grads =
                        GradientsParams::from_grads(pass.total.mul_scalar(weight).backward(), net);
                    Ok((
                        i,
                        ShardResult {
                            grads,
                            weight,
                            loss,
                            member_losses: pass.member_losses,
                            member_accuracies: pass.member_accuracies,
                        },
                    ))
                })
                .collect()
        };
        let mut results: Vec<(usize, ShardResult)> = Vec::with_capacity(shards.len());
        std::thread::scope(|scope| -> Result<(), TrainError> {
            let mut groups = groups.into_iter();
            let first = groups.next().expect("shard 0 is never empty");
            let others: Vec<_> = groups
                .map(|g| {
                    let run = &run;
                    scope.spawn(move || run(g, None))
                })
                .collect();
            let mine = run(first, Some(main));
            for handle in others {
                match handle.join() {
                    Ok(r) => results.extend(r?),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            results.extend(mine?);
            Ok(())
        })?;
        results.sort_by_key(|(i, _)| *i);
        let host = self.device.clone().inner();
        let mut sum = GradientsAccumulator::<Supernet>::new();
        let mut outcome = StepOutcome {
            loss: 0.0,
            member_losses: vec![0.0; plans.len()],
            member_accuracies: vec![0.0; plans.len()],
        };
        for (_, r) in results {
            sum.accumulate(main, r.grads.to_device(&host, main));
            outcome.loss += r.weight * r.loss;
            for (m, (l, a)) in r.member_losses.iter().zip(&r.member_accuracies).enumerate() {
                outcome.member_losses[m] += r.weight * l;
                outcome.member_accuracies[m] += r.weight * a;
            }
        }
        let grads = sum.grads();
        self.finish_step(grads, outcome, plans.len(), choice, validation)
    }
}

#[cfg(test)]
mod tests {
    use super::shard_ranges;

    #[test]
    fn shards_cover_the_batch_in_order() {
        assert_eq!(shard_ranges(10, 3), vec![0..4, 4..7, 7..10]);
        assert_eq!(shard_ranges(4, 2), vec![0..2, 2..4]);
        assert_eq!(shard_ranges(2, 3), vec![0..1, 1..2, 2..2]);
        assert_eq!(shard_ranges(5, 1), vec![0..5]);
    }
}
