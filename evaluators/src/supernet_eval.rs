//! The one evaluator of a member on the trained supernet, shared by `qnas search`, `qnas
//! export` and `qnas correlate`: the member's weights are inherited from the supernet copy its
//! mixture assignment picks, its batch-norm statistics are recalibrated on the first batches
//! of the training split, then it is measured on the validation split. Every evaluation
//! recalibrates first, so a result does not depend on which worker computed it or on what was
//! evaluated before.

use burn::module::Module;
use burn::tensor::Device;
use search::driver::{EvaluationError, Evaluator};
use spaces::{Arch, ArchError, Plan, Space};
use stats::Accuracy;
use supernet::{Supernet, Trainer};

use crate::accuracy::{EvalConfig, correct_per_image, evaluate_plan, recalibrate};
use crate::data::{BatchLoader, DataError, SearchData};

/// Evaluation workers worth running on `device`: on the CPU backend (`flex` keeps about one
/// core busy per evaluation) one per core up to 4; one on accelerators.
pub fn parallel_workers(device: &Device) -> usize {
    if *device == Device::flex() {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(4)
    } else {
        1
    }
}

/// Members of a trained supernet, recalibrated and measured as the search measures them.
pub struct SupernetEvaluator<'a> {
    space: &'a Space,
    trainer: &'a Trainer,
    /// One set of supernet copies per worker (each recalibrates its own statistics).
    workers: Vec<Vec<Supernet>>,
    train: BatchLoader,
    /// The images members are measured on: the validation split unless [`Self::measuring_on`]
    /// chose others.
    images: BatchLoader,
    cfg: EvalConfig,
}

impl std::fmt::Debug for SupernetEvaluator<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupernetEvaluator")
            .field("space", &self.space.name)
            .field("workers", &self.workers.len())
            .field("cfg", &self.cfg)
            .finish()
    }
}

/// Independent copies of eval networks, through a record, so that running statistics are not
/// shared between workers; on `device`, or on the networks' own device.
fn copies(space: &Space, nets: &[Supernet], device: Option<&Device>) -> Vec<Supernet> {
    nets.iter()
        .map(|n| {
            let own = n.stem.bn.gamma.val().device();
            let device = device.unwrap_or(&own);
            Supernet::new(space, device)
                .load_record(n.clone().into_record())
                .to_device(device)
        })
        .collect()
}

impl<'a> SupernetEvaluator<'a> {
    /// An evaluator of `trainer`'s supernet (trained on `space`) with `workers` parallel
    /// workers (see [`parallel_workers`]), recalibrating on `data`'s training split with the
    /// space's `recalibration_batches` batches of its training batch size, measuring on the
    /// validation split in batches of at least 100.
    pub fn new(
        space: &'a Space,
        trainer: &'a Trainer,
        data: &SearchData,
        workers: usize,
    ) -> Result<Self, DataError> {
        let nets = trainer.eval_nets();
        let mut sets = vec![nets];
        for _ in 1..workers.max(1) {
            sets.push(copies(space, &sets[0], None));
        }
        Self::with_workers(space, trainer, data, sets)
    }

    /// An evaluator with one worker per device of `devices` (a device may be named more than
    /// once: several workers on it), each worker's supernet copies on its device, so that a
    /// batch of members is measured on every device at once.
    pub fn on_devices(
        space: &'a Space,
        trainer: &'a Trainer,
        data: &SearchData,
        devices: &[Device],
    ) -> Result<Self, DataError> {
        let nets = trainer.eval_nets();
        let sets = devices
            .iter()
            .map(|d| copies(space, &nets, Some(d)))
            .collect::<Vec<_>>();
        let sets = if sets.is_empty() { vec![nets] } else { sets };
        Self::with_workers(space, trainer, data, sets)
    }

    fn with_workers(
        space: &'a Space,
        trainer: &'a Trainer,
        data: &SearchData,
        sets: Vec<Vec<Supernet>>,
    ) -> Result<Self, DataError> {
        let bs = space.train.batch_size as usize;
        Ok(SupernetEvaluator {
            space,
            trainer,
            workers: sets,
            train: data.train_loader(bs)?,
            images: data.validation_loader(bs.max(100))?,
            cfg: EvalConfig {
                recalibration_batches: space.train.recalibration_batches as usize,
                recalibration_epoch: 0,
            },
        })
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// The loader members are measured on (the validation split unless
    /// [`Self::measuring_on`] chose others).
    pub fn images(&self) -> &BatchLoader {
        &self.images
    }

    /// The same evaluator measuring on `images` (an in-order loader, e.g. over the test files,
    /// normalized with the training part's statistics) instead of the validation split;
    /// recalibration still takes the training split's batches. For judging a search after
    /// the fact (`qnas correlate`): the search itself must only see the validation split.
    pub fn measuring_on(mut self, images: BatchLoader) -> Self {
        self.images = images;
        self
    }

    /// Recalibrates `arch` on worker `worker`'s copy of its supernet and hands that network and
    /// the member's plan to `f` (to measure it, extract it or compare with it).
    pub fn with_member<R>(
        &self,
        worker: usize,
        arch: &Arch,
        f: impl FnOnce(&Supernet, &Plan) -> R,
    ) -> Result<R, ArchError> {
        let net = &self.workers[worker][self.trainer.net_index_for(arch)];
        let plan = recalibrate(net, arch, &self.train, self.cfg)?;
        Ok(f(net, &plan))
    }

    /// The validation accuracy of `arch`, measured on worker `worker`.
    pub fn accuracy(&self, worker: usize, arch: &Arch) -> Result<Accuracy, ArchError> {
        self.with_member(worker, arch, |net, plan| {
            let device = net.stem.bn.gamma.val().device();
            evaluate_plan(net, plan, self.images.epoch(0, &device))
        })
    }

    /// Whether `arch` classifies each validation image correctly, in the loader's order: the
    /// per-image record paired comparisons and bootstraps need.
    pub fn per_image(&self, worker: usize, arch: &Arch) -> Result<Vec<bool>, ArchError> {
        self.with_member(worker, arch, |net, plan| {
            let device = net.stem.bn.gamma.val().device();
            correct_per_image(net, plan, self.images.epoch(0, &device))
        })
    }

    /// The validation accuracies of `archs`, in order, measured in parallel: worker `w` takes
    /// members `w`, `w + workers`, ...
    pub fn accuracies(&self, archs: &[Arch]) -> Vec<Result<Accuracy, ArchError>> {
        let n = self.workers.len();
        let mut out: Vec<Option<Result<Accuracy, ArchError>>> =
            archs.iter().map(|_| None).collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..n)
                .map(|w| {
                    scope.spawn(move || {
                        (w..archs.len())
                            .step_by(n)
                            .map(|i| (i, self.accuracy(w, &archs[i])))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                for (i, r) in h.join().expect("an evaluation worker panicked") {
                    out[i] = Some(r);
                }
            }
        });
        out.into_iter()
            .map(|r| r.expect("every member is measured by one worker"))
            .collect()
    }
}

impl Evaluator for SupernetEvaluator<'_> {
    fn capacity(&self) -> usize {
        self.workers.len()
    }

    fn evaluate(&mut self, archs: &[Arch]) -> Result<Vec<Accuracy>, EvaluationError> {
        archs
            .iter()
            .zip(self.accuracies(archs))
            .map(|(arch, r)| {
                r.map_err(|e| EvaluationError {
                    arch: arch.clone(),
                    message: e.to_string(),
                })
            })
            .collect()
    }
}
