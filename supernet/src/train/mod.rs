//! Supernet training: one optimizer step over the members a sampling rule draws (BigNAS
//! sandwich rule, SortedNet nested levels, or uniform single path), with in-place distillation
//! from the largest member, and a balanced mixture of supernet copies keyed by the pooling
//! configuration.
//!
//! The trainer takes batches as tensors and knows nothing about files or progress bars: the
//! `qnas train` command drives it, checkpoints it and reports progress.

use burn::module::Module;
use burn::optim::{
    AdamWConfig, GradientsParams, ModuleOptimizer, SgdConfig, decay::WeightDecayConfig,
    momentum::MomentumConfig,
};
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Int, Tensor};
use serde::{Deserialize, Serialize};
use spaces::plan::Plan;
use spaces::{
    ActivationRange, Arch, DecisionKind, Optimizer, RandomDraw, Rng, Sampling, SmallestFormats,
    Space,
};

mod replicas;

use crate::Phase;
pub use crate::layers::dropout;
use crate::mixture::{Mixture, MixtureConfig, MixtureError};
use crate::net::{Supernet, SupernetConfig};

/// Why training cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The loss became NaN or infinite.
    #[error(
        "the loss of member {member} ({role}) became {value} at step {step}; training stopped (lower the learning rate, or resume from the last good checkpoint)"
    )]
    NonFinite {
        /// Step.
        step: u64,
        /// Which member of the step.
        member: usize,
        /// Its role (largest, smallest, random, level k).
        role: String,
        /// The loss value.
        value: f32,
    },
    /// A mixture setting is impossible.
    #[error(transparent)]
    Mixture(#[from] MixtureError),
    /// Training state does not fit this trainer.
    #[error("cannot restore training state: {0}")]
    State(String),
    /// The devices of data-parallel training do not fit the trainer.
    #[error("data-parallel training: {0}")]
    Replicas(String),
    /// The member to train alone is not a member of the space.
    #[error(transparent)]
    Member(#[from] spaces::ArchError),
}

/// What one step did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Step number (1-based, after the step).
    pub step: u64,
    /// Learning rate used.
    pub lr: f64,
    /// Sum of the members' losses.
    pub loss: f64,
    /// Label loss of the largest member (or of the single member).
    pub largest_loss: f64,
    /// Batch accuracy of the largest member.
    pub largest_accuracy: f64,
    /// Batch accuracy of the smallest member of the step.
    pub smallest_accuracy: f64,
    /// Members trained.
    pub members: usize,
    /// Supernet copy trained (0 without a mixture).
    pub supernet: usize,
    /// Pooling configuration index trained.
    pub config: usize,
    /// The loss of each member, in order.
    #[serde(default)]
    pub member_losses: Vec<f64>,
    /// The batch accuracy of each member (before the update), in order.
    #[serde(default)]
    pub member_accuracies: Vec<f64>,
}

/// Which supernet copy, pooling configuration, distillation and learning rate a step uses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Choice {
    /// Supernet copy.
    pub model: usize,
    /// Pooling configuration index.
    pub config: usize,
    /// Whether members after the first learn from its soft targets.
    pub distill: bool,
    /// Learning rate.
    pub lr: f64,
    /// Dropout on every member (members are peers, e.g. FLIQS's samples), instead of on the
    /// first alone (the sandwich's largest, BigNAS's rule).
    pub dropout_on_every: bool,
}

/// The serialized model and optimizer state of one supernet copy (burnpack bytes).
pub type WeightBytes = (Vec<u8>, Vec<u8>);

/// Serializable trainer state besides the weights and optimizer moments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Steps done.
    pub step: u64,
    /// Sampling generator.
    pub rng: Rng,
    /// Mixture assignment (None with one supernet).
    pub mixture: Option<Mixture>,
}

/// The training of one space's supernet(s).
pub struct Trainer {
    /// The supernet copies (one without a mixture), on an autodiff device.
    pub nets: Vec<Supernet>,
    optims: Vec<ModuleOptimizer>,
    /// Serializable state.
    pub state: TrainState,
    space: Space,
    device: Device,
    /// The (autodiff) devices of data-parallel training, one replica each, the first being
    /// `device`, which holds the supernets and the optimizer (see [`Trainer::set_replicas`]).
    replicas: Vec<Device>,
    /// The one member a stand-alone trainer trains (see [`Trainer::for_member`]).
    member: Option<Arch>,
    /// Whether learned activation steps were initialized (on the first batch trained, or by a
    /// restored checkpoint); nothing to do without them.
    lsq_ready: bool,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("space", &self.space.name)
            .field("supernets", &self.nets.len())
            .field("state", &self.state)
            .field("member", &self.member.as_ref().map(Arch::key))
            .field("replicas", &self.replicas.len())
            .finish()
    }
}

/// Number of pooling configurations of a space (configurations x ops; 1 without searchable
/// downsampling) and the index of an arch's.
pub fn pooling_configs(space: &Space) -> usize {
    space
        .downsampling
        .as_ref()
        .map_or(1, |d| d.configs.len() * d.ops.len())
}

/// Index of `arch`'s pooling configuration among [`pooling_configs`].
pub fn pooling_index(space: &Space, arch: &Arch) -> usize {
    let decisions = space.decisions();
    match decisions
        .iter()
        .position(|d| d.kind == DecisionKind::Pooling)
    {
        Some(i) => space.encode(arch)[i],
        None => 0,
    }
}

/// `arch` with its pooling configuration set to index `config`.
pub fn with_pooling(space: &Space, arch: &Arch, config: usize) -> Arch {
    let decisions = space.decisions();
    match decisions
        .iter()
        .position(|d| d.kind == DecisionKind::Pooling)
    {
        Some(i) => {
            let mut enc = space.encode(arch);
            enc[i] = config;
            space.decode(&enc).unwrap_or_else(|_| arch.clone())
        }
        None => arch.clone(),
    }
}

/// The smallest architecture with uniformly drawn number formats: the sandwich rule's lower
/// slice. (Always the cheapest formats would train the shared weights for int2 alone, and the
/// small architecture at the formats users deploy, such as int8, would be trained only by
/// chance.)
pub fn smallest_with_random_formats(space: &Space, rng: &mut Rng) -> Arch {
    let choices: Vec<usize> = space
        .decisions()
        .iter()
        .map(|d| {
            if d.kind.is_format() {
                rng.below(d.choices.len())
            } else {
                0
            }
        })
        .collect();
    space.decode(&choices).expect("indices are in range")
}

/// Level `l` of `levels` nested members: every decision takes the choice at fraction
/// `l / (levels - 1)` of its sorted choices (SortedNet).
pub fn sorted_level(space: &Space, level: u32, levels: u32) -> Arch {
    let decisions = space.decisions();
    let frac = f64::from(level) / f64::from(levels.max(2) - 1);
    let enc: Vec<usize> = decisions
        .iter()
        .map(|d| ((frac * (d.choices.len() - 1) as f64).round() as usize).min(d.choices.len() - 1))
        .collect();
    space.decode(&enc).expect("indices are in range")
}

fn optimizer(o: &Optimizer) -> ModuleOptimizer {
    match *o {
        Optimizer::Sgd {
            momentum,
            nesterov,
            weight_decay,
            ..
        } => {
            let m = (momentum > 0.0).then(|| {
                MomentumConfig::new()
                    .with_momentum(momentum)
                    .with_dampening(0.0)
                    .with_nesterov(nesterov)
            });
            SgdConfig::new()
                .with_momentum(m)
                .with_weight_decay(
                    (weight_decay > 0.0).then(|| WeightDecayConfig::new(weight_decay as f32)),
                )
                .init()
        }
        Optimizer::AdamW { weight_decay, .. } => AdamWConfig::new()
            .with_weight_decay(weight_decay as f32)
            .init(),
    }
}

/// Mean cross-entropy against soft targets (in-place distillation): the gradient of
/// KL(teacher || student) with respect to the student.
///
/// # Shapes
/// - `student`, `teacher`: `[batch, classes]`
pub fn soft_cross_entropy(student: Tensor<2>, teacher: Tensor<2>) -> Tensor<1> {
    let p = softmax(teacher.detach(), 1);
    (p * log_softmax(student, 1)).sum_dim(1).mean().neg()
}

fn batch_accuracy(logits: Tensor<2>, labels: Tensor<1, Int>) -> f64 {
    let n = labels.dims()[0].max(1);
    let pred = logits.argmax(1).squeeze_dim::<1>(1);
    pred.equal(labels).int().sum().into_scalar::<i64>() as f64 / n as f64
}

/// Runs `f` right after seeding `device`'s generator with `seed`, with no other call of
/// `seeded` in between: burn's generator is one per device, so two trainers built at the same
/// time on different threads (`qnas correlate` trains members side by side) would otherwise
/// draw each other's initial weights, and a trainer's weights would depend on the schedule.
pub fn seeded<T>(device: &Device, seed: u64, f: impl FnOnce() -> T) -> T {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // a panic elsewhere while holding the lock leaves nothing half-done that matters here
    let _guard = LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    device.seed(seed);
    f()
}

/// Draws every parameter's initial value (burn draws it lazily, at first use).
struct Materialize;

impl burn::module::ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        let _ = param.val();
    }

    fn visit_int<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D, Int>>) {
        let _ = param.val();
    }

    fn visit_bool<const D: usize>(
        &mut self,
        param: &burn::module::Param<Tensor<D, burn::tensor::Bool>>,
    ) {
        let _ = param.val();
    }
}

impl Trainer {
    /// A trainer for `space` (its `train` section) on `device` (autodiff is enabled on it).
    pub fn new(space: &Space, device: &Device) -> Result<Trainer, TrainError> {
        Trainer::build(space, device, false)
    }

    /// [`Trainer::new`]; with `eager`, every parameter is drawn at construction, under the
    /// seed (burn draws a parameter's initial value when it is first used, so a trainer whose
    /// first steps run beside another trainer's would draw from a generator both advance).
    fn build(space: &Space, device: &Device, eager: bool) -> Result<Trainer, TrainError> {
        let t = &space.train;
        let device = device.clone().autodiff();
        let m = t.mixture.supernets.max(1) as usize;
        let nets = seeded(&device, t.seed, || {
            (0..m)
                .map(|_| {
                    let net = Supernet::with_config(
                        space,
                        &SupernetConfig {
                            zero_init_residual: t.zero_init_residual,
                            ..SupernetConfig::for_space(space)
                        },
                        &device,
                    );
                    if eager {
                        net.visit(&mut Materialize);
                    }
                    net
                })
                .collect()
        });
        let optims = (0..m).map(|_| optimizer(&t.optimizer)).collect();
        let mixture = if m > 1 {
            Some(Mixture::new(
                pooling_configs(space),
                m,
                MixtureConfig {
                    temperature: t.mixture.temperature,
                    ema_decay: t.mixture.ema_decay,
                    // tight enough that the marginal is uniform within 1e-6, not just KL < 1e-4
                    tolerance: 1e-10,
                },
            )?)
        } else {
            None
        };
        Ok(Trainer {
            nets,
            optims,
            state: TrainState {
                step: 0,
                rng: Rng::new(t.seed ^ 0x5EED),
                mixture,
            },
            space: space.clone(),
            replicas: vec![device.clone()],
            device,
            member: None,
            lsq_ready: space.quantization.activation_range != ActivationRange::Lsq,
        })
    }

    /// A trainer of `arch` alone, from scratch: its network is built from
    /// [`Space::for_member`] (the member's own shapes), every step trains `arch` at its formats
    /// (fake-quantized from the first step) on the space's recipe, without distillation (there
    /// is no teacher). Its networks hold the narrowed space: evaluate `arch` on them.
    pub fn for_member(space: &Space, arch: &Arch, device: &Device) -> Result<Trainer, TrainError> {
        let alone = space.for_member(arch)?;
        // eager: `qnas correlate` trains members side by side
        let mut trainer = Trainer::build(&alone, device, true)?;
        trainer.member = Some(arch.clone());
        Ok(trainer)
    }

    /// The member a stand-alone trainer trains.
    pub fn member(&self) -> Option<&Arch> {
        self.member.as_ref()
    }

    /// The space trained.
    pub fn space(&self) -> &Space {
        &self.space
    }

    /// The (autodiff) device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Learning rate of the next step.
    pub fn lr(&self) -> f64 {
        let t = &self.space.train;
        t.schedule.lr_at(t.optimizer.lr(), self.state.step, t.steps)
    }

    /// The members of the next step with their roles, all with pooling configuration `config`
    /// (the largest first when the rule has one).
    pub fn draw_members(&mut self, config: usize) -> Vec<(String, Arch)> {
        let space = &self.space;
        if let Some(arch) = &self.member {
            return vec![("member".to_string(), arch.clone())];
        }
        let rng = &mut self.state.rng;
        let mut out = match space.train.sampling {
            Sampling::Sandwich {
                random,
                smallest,
                draw,
            } => {
                let cheapest = match smallest {
                    SmallestFormats::RandomFormats => false,
                    SmallestFormats::Cheapest => true,
                    SmallestFormats::Alternate => self.state.step.is_multiple_of(2),
                };
                let small = if cheapest {
                    space.smallest()
                } else {
                    smallest_with_random_formats(space, rng)
                };
                let mut v = vec![
                    ("largest".to_string(), space.largest()),
                    ("smallest".to_string(), small),
                ];
                v.extend((0..random).map(|_| {
                    let arch = match draw {
                        RandomDraw::Uniform => space.sample_uniform(rng),
                        RandomDraw::LogBitOps => space.sample_log_bitops(rng),
                    };
                    ("random".to_string(), arch)
                }));
                v
            }
            Sampling::Sorted { levels, per_step } => {
                let mut v = vec![(
                    format!("level {}", levels - 1),
                    sorted_level(space, levels - 1, levels),
                )];
                let mut others: Vec<u32> = (0..levels - 1).collect();
                rng.shuffle(&mut others);
                for &l in others.iter().take(per_step.saturating_sub(1) as usize) {
                    v.push((format!("level {l}"), sorted_level(space, l, levels)));
                }
                v
            }
            Sampling::Uniform => vec![("random".to_string(), space.sample_uniform(rng))],
        };
        for (_, a) in &mut out {
            *a = with_pooling(space, a, config);
        }
        out
    }

    /// One training step on a batch; with a mixture, `validation` (a held-out batch) updates
    /// the accuracy matrix after the step.
    ///
    /// # Shapes
    /// - `images`: `[batch, channels, height, width]`, `labels`: `[batch]`
    pub fn step(
        &mut self,
        images: Tensor<4>,
        labels: Tensor<1, Int>,
        validation: Option<(Tensor<4>, Tensor<1, Int>)>,
    ) -> Result<StepReport, TrainError> {
        let configs = pooling_configs(&self.space);
        let (config, model) = match &self.state.mixture {
            Some(mix) => {
                let c = self.state.rng.below(configs);
                (c, mix.sample_model(c, &mut self.state.rng)?)
            }
            None => (
                if configs > 1 {
                    self.state.rng.below(configs)
                } else {
                    0
                },
                0,
            ),
        };
        let members = self.draw_members(config);
        let distill = self.space.train.distill
            && members.len() > 1
            && !matches!(self.space.train.sampling, Sampling::Uniform);
        let lr = self.lr();
        self.train_members(
            images,
            labels,
            &members,
            Choice {
                model,
                config,
                distill,
                lr,
                dropout_on_every: false,
            },
            validation,
        )
    }

    /// One optimizer step on the given members (the first one is the teacher when `distill`)
    /// of supernet copy `choice.model` with pooling configuration `choice.config`, at learning
    /// rate `choice.lr`. [`Trainer::step`] draws the members by the space's sampling rule;
    /// FLIQS training mode passes the members its policy samples.
    ///
    /// # Shapes
    /// - `images`: `[batch, channels, height, width]`, `labels`: `[batch]`
    pub fn train_members(
        &mut self,
        images: Tensor<4>,
        labels: Tensor<1, Int>,
        members: &[(String, Arch)],
        choice: Choice,
        validation: Option<(Tensor<4>, Tensor<1, Int>)>,
    ) -> Result<StepReport, TrainError> {
        let model = choice.model;
        if !self.lsq_ready {
            let first = images.clone().to_device(&self.device);
            let nets = std::mem::take(&mut self.nets);
            self.nets = nets
                .into_iter()
                .map(|n| n.init_lsq_steps(first.clone()))
                .collect();
            self.lsq_ready = true;
        }
        let plans: Vec<(String, Plan)> = members
            .iter()
            .map(|(role, arch)| {
                let plan = self
                    .space
                    .plan(arch)
                    .expect("members drawn from the space are valid");
                (role.clone(), plan)
            })
            .collect();
        if self.replicas.len() > 1 {
            return self.train_members_sharded(images, labels, &plans, choice, validation);
        }
        let net = &self.nets[model];
        let images = images.to_device(&self.device);
        let labels = labels.to_device(&self.device);
        let pass = member_pass(net, images, labels, &plans, &self.pass_settings(&choice))?;
        let total = pass.total;
        let loss_value = f64::from(total.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(total.backward(), net);
        self.finish_step(
            grads,
            StepOutcome {
                loss: loss_value,
                member_losses: pass.member_losses,
                member_accuracies: pass.member_accuracies,
            },
            members.len(),
            choice,
            validation,
        )
    }

    /// What a pass of this step's members needs besides the network and the data: the step,
    /// `choice`'s distillation and dropout, the head's dropout, how the losses combine.
    fn pass_settings(&self, choice: &Choice) -> PassSettings {
        PassSettings {
            step: self.state.step,
            distill: choice.distill,
            dropout: self.space.head.dropout,
            dropout_on_every: choice.dropout_on_every,
            mean: self.space.train.member_loss == spaces::MemberLoss::Mean,
        }
    }

    /// The optimizer step of copy `choice.model` with the summed gradients `grads`, the
    /// mixture's update on `validation`, and the step's report.
    fn finish_step(
        &mut self,
        grads: GradientsParams,
        outcome: StepOutcome,
        members: usize,
        choice: Choice,
        validation: Option<(Tensor<4>, Tensor<1, Int>)>,
    ) -> Result<StepReport, TrainError> {
        let Choice {
            model, config, lr, ..
        } = choice;
        let net = self.nets.remove(model);
        let net = self.optims[model].step(lr, net, grads);
        self.nets.insert(model, net);
        self.state.step += 1;
        if let (Some((vx, vy)), Some(_)) = (validation, &self.state.mixture) {
            // the accuracy of this configuration on this supernet, on a held-out batch
            let arch = with_pooling(&self.space, &self.space.largest(), config);
            let plan = self.space.plan(&arch).expect("valid");
            let logits = self.nets[model]
                .forward_plan(vx.to_device(&self.device), &plan, Phase::Train)
                .detach();
            let acc = batch_accuracy(logits, vy.to_device(&self.device));
            if let Some(mix) = &mut self.state.mixture {
                mix.update(config, model, acc)?;
            }
        }
        let StepOutcome {
            loss,
            member_losses,
            member_accuracies,
        } = outcome;
        // the first member is the largest (or the single member); the second the smallest
        let largest_loss = member_losses.first().copied().unwrap_or(0.0);
        let largest_accuracy = member_accuracies.first().copied().unwrap_or(0.0);
        let smallest_accuracy = member_accuracies
            .get(1)
            .or(member_accuracies.first())
            .copied()
            .unwrap_or(0.0);
        Ok(StepReport {
            step: self.state.step,
            lr,
            loss,
            largest_loss,
            largest_accuracy,
            smallest_accuracy,
            members,
            supernet: model,
            config,
            member_losses,
            member_accuracies,
        })
    }

    /// Index of the supernet that evaluates `arch`: with a mixture, the copy its pooling
    /// configuration is assigned to.
    pub fn net_index_for(&self, arch: &Arch) -> usize {
        match &self.state.mixture {
            Some(mix) => mix
                .assignment(pooling_index(&self.space, arch))
                .unwrap_or(0),
            None => 0,
        }
    }

    /// Copies of the supernets without autodiff, for evaluation.
    pub fn eval_nets(&self) -> Vec<Supernet> {
        self.nets.iter().map(|n| n.valid()).collect()
    }

    /// Model and optimizer state as bytes (burnpack), one pair per supernet copy.
    pub fn weights_bytes(&self) -> Result<Vec<WeightBytes>, TrainError> {
        self.nets
            .iter()
            .zip(&self.optims)
            .map(|(n, o)| {
                let model = n
                    .clone()
                    .into_record()
                    .into_bytes()
                    .map_err(|e| TrainError::State(format!("{e:?}")))?;
                let optim = o
                    .into_bytes()
                    .map_err(|e| TrainError::State(format!("{e:?}")))?;
                Ok((model.to_vec(), optim.to_vec()))
            })
            .collect()
    }

    /// Restores model and optimizer state written by [`Trainer::weights_bytes`], and `state`.
    pub fn restore(
        &mut self,
        weights: Vec<(Vec<u8>, Vec<u8>)>,
        state: TrainState,
    ) -> Result<(), TrainError> {
        if weights.len() != self.nets.len() {
            return Err(TrainError::State(format!(
                "{} supernets saved, {} configured",
                weights.len(),
                self.nets.len()
            )));
        }
        let t = &self.space.train;
        let mut nets = Vec::new();
        let mut optims = Vec::new();
        for ((model, optim), net) in weights.into_iter().zip(self.nets.drain(..)) {
            let record =
                burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(model))
                    .map_err(|e| TrainError::State(format!("model: {e:?}")))?;
            nets.push(
                net.try_load_record(record)
                    .map_err(|e| TrainError::State(format!("model: {e:?}")))?,
            );
            optims.push(
                optimizer(&t.optimizer)
                    .from_bytes(burn::tensor::Bytes::from_bytes_vec(optim))
                    .map_err(|e| TrainError::State(format!("optimizer: {e:?}")))?,
            );
        }
        self.nets = nets;
        self.optims = optims;
        self.state = state;
        self.lsq_ready = true;
        Ok(())
    }
}

/// What one pass of a step's members over a batch needs besides the network and the data.
#[derive(Clone, Copy, Debug)]
struct PassSettings {
    /// Steps done before this one (for the error of a non-finite loss).
    step: u64,
    /// Whether members after the first learn from its soft targets.
    distill: bool,
    /// The head's dropout probability.
    dropout: f64,
    /// Dropout on every member instead of the first alone.
    dropout_on_every: bool,
    /// The members' mean loss instead of their sum (`train.member_loss: Mean`).
    mean: bool,
}

/// The members' summed (or mean) loss over one batch (the graph to differentiate) and each
/// member's loss and batch accuracy.
struct Pass {
    total: Tensor<1>,
    member_losses: Vec<f64>,
    member_accuracies: Vec<f64>,
}

/// The figures of a step that its report carries besides the choice.
struct StepOutcome {
    loss: f64,
    member_losses: Vec<f64>,
    member_accuracies: Vec<f64>,
}

/// Runs `members` (their roles and plans) in sequence on one batch: each one's label loss (or, with `distill`, soft
/// cross-entropy against the first member's detached logits), summed (or averaged).
///
/// # Shapes
/// - `images`: `[batch, channels, height, width]`, `labels`: `[batch]`, on `net`'s device
fn member_pass(
    net: &Supernet,
    images: Tensor<4>,
    labels: Tensor<1, Int>,
    members: &[(String, Plan)],
    settings: &PassSettings,
) -> Result<Pass, TrainError> {
    let ce = burn::nn::loss::CrossEntropyLossConfig::new().init(&images.device());
    let mut total: Option<Tensor<1>> = None;
    let mut teacher: Option<Tensor<2>> = None;
    let mut member_losses = Vec::with_capacity(members.len());
    let mut member_accuracies = Vec::with_capacity(members.len());
    for (i, (role, plan)) in members.iter().enumerate() {
        let first = i == 0;
        let logits = forward_with_dropout(
            net,
            images.clone(),
            plan,
            if first || settings.dropout_on_every {
                settings.dropout
            } else {
                0.0
            },
        );
        let loss = match (&teacher, settings.distill && !first) {
            (Some(t), true) => soft_cross_entropy(logits.clone(), t.clone()),
            _ => ce.forward(logits.clone(), labels.clone()),
        };
        let value = loss.clone().into_scalar::<f32>();
        if !value.is_finite() {
            return Err(TrainError::NonFinite {
                step: settings.step + 1,
                member: i,
                role: role.clone(),
                value,
            });
        }
        member_losses.push(f64::from(value));
        member_accuracies.push(batch_accuracy(logits.clone().detach(), labels.clone()));
        if first {
            teacher = Some(logits.detach());
        }
        total = Some(match total {
            Some(t) => t + loss,
            None => loss,
        });
    }
    let mut total = total.expect("at least one member");
    if settings.mean && members.len() > 1 {
        total = total.div_scalar(members.len() as f64);
    }
    Ok(Pass {
        total,
        member_losses,
        member_accuracies,
    })
}

/// Forward in training mode, with dropout of probability `p` on the pooled features.
fn forward_with_dropout(net: &Supernet, x: Tensor<4>, plan: &Plan, p: f64) -> Tensor<2> {
    net.forward_plan_dropout(x, plan, Phase::Train, p)
}
