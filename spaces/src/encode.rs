//! The decisions of a space, the encoding of an arch as one choice index per decision, and what
//! rests on it: seeded sampling (uniform, smallest, largest), mutation, crossover, enumeration of
//! small spaces and the exact size of a space.
//!
//! Decisions cover the space's largest structure, in a fixed order: stem width and kernel; per
//! stage its depth, its width, and a kernel and an expand ratio per block; the head conv width;
//! the downsampling configuration; then one format decision per tie group (two when weights and
//! activations are not tied). A decision of a block that the arch's depth leaves out, or of a
//! format group that the arch does not use, is *inactive*; its canonical index is 0. Choices are
//! sorted cheapest first, so index 0 everywhere is the smallest member.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::arch::{Arch, BlockArch, FormatPair, HeadArch, PoolingArch, StageArch, StemArch};
use crate::format::Format;
use crate::plan::{self, block_conv_names};
use crate::raw::TieMode;
use crate::rng::Rng;
use crate::space::Space;

/// What a decision decides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum DecisionKind {
    /// Stem width.
    StemWidth,
    /// Stem kernel.
    StemKernel,
    /// Depth of a stage.
    Depth {
        /// Stage.
        stage: usize,
    },
    /// Width of a stage.
    Width {
        /// Stage.
        stage: usize,
    },
    /// Kernel of a block.
    Kernel {
        /// Stage.
        stage: usize,
        /// Block.
        block: u32,
    },
    /// Expand ratio of a block.
    Expand {
        /// Stage.
        stage: usize,
        /// Block.
        block: u32,
    },
    /// Head conv width.
    HeadWidth,
    /// Downsampling configuration (positions x op).
    Pooling,
    /// Weight format of a group.
    Weights {
        /// Group name.
        group: String,
    },
    /// Activation format of a group.
    Activations {
        /// Group name.
        group: String,
    },
    /// Tied weight and activation format of a group.
    Formats {
        /// Group name.
        group: String,
    },
}

impl DecisionKind {
    /// Whether this is a number-format decision.
    pub fn is_format(&self) -> bool {
        matches!(
            self,
            DecisionKind::Weights { .. }
                | DecisionKind::Activations { .. }
                | DecisionKind::Formats { .. }
        )
    }
}

/// One decision and its choices.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    /// A readable name, e.g. `s1.depth`, `s0.b2.kernel`, `fmt[s1.b0]`.
    pub name: String,
    /// What it decides.
    pub kind: DecisionKind,
    /// The choices, as text, cheapest first.
    pub choices: Vec<String>,
}

/// The size of a space: exact while it fits 128 bits, and its log10.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SpaceSize {
    /// Exact number of distinct archs, when it fits.
    pub exact: Option<u128>,
    /// log10 of the number of distinct archs.
    pub log10: f64,
}

impl SpaceSize {
    fn zero() -> Self {
        SpaceSize {
            exact: Some(0),
            log10: f64::NEG_INFINITY,
        }
    }

    fn of(n: u128) -> Self {
        SpaceSize {
            exact: Some(n),
            log10: if n == 0 {
                f64::NEG_INFINITY
            } else {
                (n as f64).log10()
            },
        }
    }

    fn add(self, o: Self) -> Self {
        let (hi, lo) = if self.log10 >= o.log10 {
            (self.log10, o.log10)
        } else {
            (o.log10, self.log10)
        };
        let log10 = if hi == f64::NEG_INFINITY {
            hi
        } else {
            hi + (1.0 + 10f64.powf(lo - hi)).log10()
        };
        SpaceSize {
            exact: self.exact.zip(o.exact).and_then(|(a, b)| a.checked_add(b)),
            log10,
        }
    }

    fn mul(self, o: Self) -> Self {
        SpaceSize {
            exact: self.exact.zip(o.exact).and_then(|(a, b)| a.checked_mul(b)),
            log10: self.log10 + o.log10,
        }
    }
}

impl std::fmt::Display for SpaceSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.exact {
            Some(n) if n < 1_000_000_000_000 => write!(f, "{n}"),
            _ => write!(f, "about 10^{:.2}", self.log10),
        }
    }
}

/// Why an encoding cannot be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodingError {
    /// Wrong number of indices.
    #[error("expected {expected} choice indices, got {got}")]
    Length {
        /// Decisions of the space.
        expected: usize,
        /// Indices given.
        got: usize,
    },
    /// An index past the end of its decision's choices.
    #[error("choice {index} of decision `{decision}` is out of range (it has {len} choices)")]
    OutOfRange {
        /// Decision name.
        decision: String,
        /// Index given.
        index: usize,
        /// Number of choices.
        len: usize,
    },
}

/// The enumeration was stopped at its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the space has more than {limit} members")]
pub struct TooLarge {
    /// The limit.
    pub limit: usize,
}

impl Space {
    /// Every decision of the space, in encoding order.
    pub fn decisions(&self) -> Vec<Decision> {
        let nums = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>();
        let mut out = vec![
            Decision {
                name: "stem.width".into(),
                kind: DecisionKind::StemWidth,
                choices: nums(&self.stem.widths),
            },
            Decision {
                name: "stem.kernel".into(),
                kind: DecisionKind::StemKernel,
                choices: nums(&self.stem.kernels),
            },
        ];
        for (s, st) in self.stages.iter().enumerate() {
            out.push(Decision {
                name: format!("s{s}.depth"),
                kind: DecisionKind::Depth { stage: s },
                choices: nums(&st.depths),
            });
            out.push(Decision {
                name: format!("s{s}.width"),
                kind: DecisionKind::Width { stage: s },
                choices: nums(&st.widths),
            });
            for b in 0..st.max_depth() {
                out.push(Decision {
                    name: format!("s{s}.b{b}.kernel"),
                    kind: DecisionKind::Kernel { stage: s, block: b },
                    choices: nums(&st.kernels),
                });
                out.push(Decision {
                    name: format!("s{s}.b{b}.expand"),
                    kind: DecisionKind::Expand { stage: s, block: b },
                    choices: st.expands.iter().map(|e| e.to_string()).collect(),
                });
            }
        }
        if !self.head.conv_widths.is_empty() {
            out.push(Decision {
                name: "head.conv_width".into(),
                kind: DecisionKind::HeadWidth,
                choices: nums(&self.head.conv_widths),
            });
        }
        if let Some(ds) = &self.downsampling {
            let choices = ds
                .configs
                .iter()
                .flat_map(|c| ds.ops.iter().map(move |o| format!("{c:?} {o:?}")))
                .collect();
            out.push(Decision {
                name: "pooling".into(),
                kind: DecisionKind::Pooling,
                choices,
            });
        }
        let q = &self.quantization;
        let names = |v: &[Format]| v.iter().map(Format::to_string).collect::<Vec<_>>();
        for g in plan::all_groups(self) {
            if q.tie_weights_activations {
                out.push(Decision {
                    name: format!("fmt[{g}]"),
                    kind: DecisionKind::Formats { group: g },
                    choices: names(&q.weights),
                });
            } else {
                out.push(Decision {
                    name: format!("w[{g}]"),
                    kind: DecisionKind::Weights { group: g.clone() },
                    choices: names(&q.weights),
                });
                out.push(Decision {
                    name: format!("a[{g}]"),
                    kind: DecisionKind::Activations { group: g },
                    choices: names(&q.activations),
                });
            }
        }
        out
    }

    /// The arch an encoding stands for (inactive indices are ignored).
    pub fn decode(&self, choices: &[usize]) -> Result<Arch, EncodingError> {
        let decisions = self.decisions();
        if choices.len() != decisions.len() {
            return Err(EncodingError::Length {
                expected: decisions.len(),
                got: choices.len(),
            });
        }
        for (d, &c) in decisions.iter().zip(choices) {
            if c >= d.choices.len() {
                return Err(EncodingError::OutOfRange {
                    decision: d.name.clone(),
                    index: c,
                    len: d.choices.len(),
                });
            }
        }
        Ok(self.decode_unchecked(&decisions, choices))
    }

    fn decode_unchecked(&self, decisions: &[Decision], choices: &[usize]) -> Arch {
        let mut arch = Arch {
            stem: StemArch {
                width: 0,
                kernel: 0,
            },
            stages: self
                .stages
                .iter()
                .map(|_| StageArch {
                    width: 0,
                    blocks: Vec::new(),
                })
                .collect(),
            head: HeadArch::default(),
            pooling: None,
            formats: BTreeMap::new(),
        };
        let mut depth = vec![0u32; self.stages.len()];
        let mut blocks: Vec<Vec<BlockArch>> = self
            .stages
            .iter()
            .map(|st| {
                vec![
                    BlockArch {
                        kernel: 0,
                        expand: 1.0
                    };
                    st.max_depth() as usize
                ]
            })
            .collect();
        let mut weights = BTreeMap::new();
        let mut acts = BTreeMap::new();
        let q = &self.quantization;
        for (d, &c) in decisions.iter().zip(choices) {
            match &d.kind {
                DecisionKind::StemWidth => arch.stem.width = self.stem.widths[c],
                DecisionKind::StemKernel => arch.stem.kernel = self.stem.kernels[c],
                DecisionKind::Depth { stage } => depth[*stage] = self.stages[*stage].depths[c],
                DecisionKind::Width { stage } => {
                    arch.stages[*stage].width = self.stages[*stage].widths[c]
                }
                DecisionKind::Kernel { stage, block } => {
                    blocks[*stage][*block as usize].kernel = self.stages[*stage].kernels[c]
                }
                DecisionKind::Expand { stage, block } => {
                    blocks[*stage][*block as usize].expand = self.stages[*stage].expands[c]
                }
                DecisionKind::HeadWidth => arch.head.conv_width = Some(self.head.conv_widths[c]),
                DecisionKind::Pooling => {
                    if let Some(ds) = &self.downsampling {
                        let n = ds.ops.len();
                        arch.pooling = Some(PoolingArch {
                            positions: ds.configs[c / n].clone(),
                            op: ds.ops[c % n],
                        });
                    }
                }
                DecisionKind::Weights { group } => {
                    weights.insert(group.clone(), q.weights[c]);
                }
                DecisionKind::Activations { group } => {
                    acts.insert(group.clone(), q.activations[c]);
                }
                DecisionKind::Formats { group } => {
                    weights.insert(group.clone(), q.weights[c]);
                    acts.insert(group.clone(), q.weights[c]);
                }
            }
        }
        for (s, st) in arch.stages.iter_mut().enumerate() {
            blocks[s].truncate(depth[s] as usize);
            st.blocks = std::mem::take(&mut blocks[s]);
        }
        for g in plan::active_groups(self, &arch) {
            if let (Some(w), Some(a)) = (weights.get(&g), acts.get(&g)) {
                arch.formats.insert(
                    g,
                    FormatPair {
                        weights: *w,
                        activations: *a,
                    },
                );
            }
        }
        arch
    }

    /// The encoding of a valid arch; inactive decisions get index 0.
    pub fn encode(&self, arch: &Arch) -> Vec<usize> {
        let pos = |v: &[u32], x: u32| v.iter().position(|y| *y == x).unwrap_or(0);
        let fpos = |v: &[Format], x: Format| v.iter().position(|y| *y == x).unwrap_or(0);
        let q = &self.quantization;
        self.decisions()
            .iter()
            .map(|d| match &d.kind {
                DecisionKind::StemWidth => pos(&self.stem.widths, arch.stem.width),
                DecisionKind::StemKernel => pos(&self.stem.kernels, arch.stem.kernel),
                DecisionKind::Depth { stage } => {
                    pos(&self.stages[*stage].depths, arch.depth(*stage))
                }
                DecisionKind::Width { stage } => {
                    pos(&self.stages[*stage].widths, arch.stages[*stage].width)
                }
                DecisionKind::Kernel { stage, block } => arch.stages[*stage]
                    .blocks
                    .get(*block as usize)
                    .map_or(0, |b| pos(&self.stages[*stage].kernels, b.kernel)),
                DecisionKind::Expand { stage, block } => arch.stages[*stage]
                    .blocks
                    .get(*block as usize)
                    .and_then(|b| {
                        self.stages[*stage]
                            .expands
                            .iter()
                            .position(|e| *e == b.expand)
                    })
                    .unwrap_or(0),
                DecisionKind::HeadWidth => arch
                    .head
                    .conv_width
                    .map_or(0, |w| pos(&self.head.conv_widths, w)),
                DecisionKind::Pooling => match (&self.downsampling, &arch.pooling) {
                    (Some(ds), Some(p)) => {
                        let c = ds
                            .configs
                            .iter()
                            .position(|c| *c == p.positions)
                            .unwrap_or(0);
                        let o = ds.ops.iter().position(|o| *o == p.op).unwrap_or(0);
                        c * ds.ops.len() + o
                    }
                    _ => 0,
                },
                DecisionKind::Weights { group } | DecisionKind::Formats { group } => arch
                    .formats
                    .get(group)
                    .map_or(0, |p| fpos(&q.weights, p.weights)),
                DecisionKind::Activations { group } => arch
                    .formats
                    .get(group)
                    .map_or(0, |p| fpos(&q.activations, p.activations)),
            })
            .collect()
    }

    /// Which decisions an encoding uses.
    pub fn active_mask(&self, choices: &[usize]) -> Vec<bool> {
        let decisions = self.decisions();
        let arch = self.decode_unchecked(&decisions, choices);
        mask_of(&decisions, &arch)
    }

    /// A uniformly random choice for every decision.
    pub fn sample_uniform(&self, rng: &mut Rng) -> Arch {
        let decisions = self.decisions();
        let choices: Vec<usize> = decisions
            .iter()
            .map(|d| rng.below(d.choices.len()))
            .collect();
        self.decode_unchecked(&decisions, &choices)
    }

    /// The smallest member: the first (cheapest) choice of every decision.
    pub fn smallest(&self) -> Arch {
        let decisions = self.decisions();
        self.decode_unchecked(&decisions, &vec![0; decisions.len()])
    }

    /// The largest member: the last (most expensive) choice of every decision.
    pub fn largest(&self) -> Arch {
        let decisions = self.decisions();
        let choices: Vec<usize> = decisions.iter().map(|d| d.choices.len() - 1).collect();
        self.decode_unchecked(&decisions, &choices)
    }

    /// `arch` with every format decision set to `weights`/`activations` where the space offers
    /// them (pinned layers keep their pins). `None` when a format is not a choice.
    pub fn with_uniform_formats(
        &self,
        arch: &Arch,
        weights: Format,
        activations: Format,
    ) -> Option<Arch> {
        let q = &self.quantization;
        if !q.weights.contains(&weights) || !q.activations.contains(&activations) {
            return None;
        }
        if q.tie_weights_activations && weights != activations {
            return None;
        }
        let mut out = arch.clone();
        for pair in out.formats.values_mut() {
            *pair = FormatPair {
                weights,
                activations,
            };
        }
        Some(out)
    }

    /// Changes each active decision with probability `prob` (at least one decision changes when
    /// any can); decisions that become active are drawn uniformly.
    pub fn mutate(&self, arch: &Arch, prob: f64, rng: &mut Rng) -> Arch {
        let decisions = self.decisions();
        let mut enc = self.encode(arch);
        let before = mask_of(&decisions, arch);
        let open: Vec<usize> = (0..decisions.len())
            .filter(|&i| before[i] && decisions[i].choices.len() > 1)
            .collect();
        let mut changed = false;
        let redraw = |i: usize, enc: &mut Vec<usize>, rng: &mut Rng| {
            let n = decisions[i].choices.len();
            let v = rng.below(n - 1);
            enc[i] = if v >= enc[i] { v + 1 } else { v };
        };
        for &i in &open {
            if rng.chance(prob) {
                redraw(i, &mut enc, rng);
                changed = true;
            }
        }
        if !changed && !open.is_empty() {
            let i = open[rng.below(open.len())];
            redraw(i, &mut enc, rng);
        }
        self.activate(&decisions, &before, enc, rng)
    }

    /// Uniform crossover of two parents.
    pub fn crossover(&self, a: &Arch, b: &Arch, rng: &mut Rng) -> Arch {
        let decisions = self.decisions();
        let (ea, eb) = (self.encode(a), self.encode(b));
        let (ma, mb) = (mask_of(&decisions, a), mask_of(&decisions, b));
        let mut child = Vec::with_capacity(ea.len());
        let mut known = Vec::with_capacity(ea.len());
        for i in 0..ea.len() {
            let pick_a = rng.chance(0.5);
            let (v, m, ov, om) = if pick_a {
                (ea[i], ma[i], eb[i], mb[i])
            } else {
                (eb[i], mb[i], ea[i], ma[i])
            };
            if m || !om {
                child.push(v);
                known.push(m);
            } else {
                child.push(ov);
                known.push(om);
            }
        }
        self.activate(&decisions, &known, child, rng)
    }

    /// Draws every decision that is active in `enc` but had no meaningful value before.
    fn activate(
        &self,
        decisions: &[Decision],
        known: &[bool],
        mut enc: Vec<usize>,
        rng: &mut Rng,
    ) -> Arch {
        let arch = self.decode_unchecked(decisions, &enc);
        let after = mask_of(decisions, &arch);
        let mut redrawn = false;
        for i in 0..enc.len() {
            if after[i] && !known[i] {
                enc[i] = rng.below(decisions[i].choices.len());
                redrawn = true;
            }
        }
        if redrawn {
            self.decode_unchecked(decisions, &enc)
        } else {
            arch
        }
    }

    /// Every distinct member of the space, in encoding order; an error past `limit` members.
    pub fn enumerate(&self, limit: usize) -> Result<Vec<Arch>, TooLarge> {
        let decisions = self.decisions();
        let first_format = decisions
            .iter()
            .position(|d| d.kind.is_format())
            .unwrap_or(decisions.len());
        let mut out = Vec::new();
        let mut enc = vec![0usize; decisions.len()];
        self.enumerate_rec(&decisions, first_format, 0, &mut enc, &mut out, limit)?;
        Ok(out)
    }

    fn enumerate_rec(
        &self,
        decisions: &[Decision],
        first_format: usize,
        i: usize,
        enc: &mut Vec<usize>,
        out: &mut Vec<Arch>,
        limit: usize,
    ) -> Result<(), TooLarge> {
        if i == first_format {
            // architecture fixed: enumerate the formats of its active groups
            let arch = self.decode_unchecked(decisions, enc);
            let mask = mask_of(decisions, &arch);
            let active: Vec<usize> = (first_format..decisions.len())
                .filter(|&k| mask[k])
                .collect();
            let mut odo = vec![0usize; active.len()];
            loop {
                for (slot, &k) in active.iter().enumerate() {
                    enc[k] = odo[slot];
                }
                if out.len() >= limit {
                    return Err(TooLarge { limit });
                }
                out.push(self.decode_unchecked(decisions, enc));
                let mut slot = 0;
                loop {
                    if slot == active.len() {
                        for &k in &active {
                            enc[k] = 0;
                        }
                        return Ok(());
                    }
                    odo[slot] += 1;
                    if odo[slot] < decisions[active[slot]].choices.len() {
                        break;
                    }
                    odo[slot] = 0;
                    slot += 1;
                }
            }
        }
        let active = match decisions[i].kind {
            DecisionKind::Kernel { stage, block } | DecisionKind::Expand { stage, block } => {
                let di = decisions
                    .iter()
                    .position(|d| d.kind == DecisionKind::Depth { stage })
                    .unwrap_or(0);
                block < self.stages[stage].depths[enc[di]]
            }
            _ => true,
        };
        if !active {
            enc[i] = 0;
            return self.enumerate_rec(decisions, first_format, i + 1, enc, out, limit);
        }
        for c in 0..decisions[i].choices.len() {
            enc[i] = c;
            self.enumerate_rec(decisions, first_format, i + 1, enc, out, limit)?;
        }
        enc[i] = 0;
        Ok(())
    }

    /// The exact number of distinct members (archs with their formats).
    pub fn size(&self) -> SpaceSize {
        let q = &self.quantization;
        let per_group = if q.tie_weights_activations {
            q.weights.len() as u128
        } else {
            (q.weights.len() * q.activations.len()) as u128
        };
        let f = SpaceSize::of(per_group);
        let unpinned =
            |names: &[String]| names.iter().filter(|n| q.pin(n).is_none()).count() as u32;
        // counts of the alternatives of one part, split by whether a shared (stage/global) group is used
        let leaf = |n: u32| -> Split {
            match q.tie {
                TieMode::Layer => Split {
                    none: pow(f, n),
                    some: SpaceSize::zero(),
                },
                TieMode::Block => Split {
                    none: if n > 0 { f } else { SpaceSize::of(1) },
                    some: SpaceSize::zero(),
                },
                TieMode::Stage | TieMode::Global => {
                    if n > 0 {
                        Split {
                            none: SpaceSize::zero(),
                            some: SpaceSize::of(1),
                        }
                    } else {
                        Split {
                            none: SpaceSize::of(1),
                            some: SpaceSize::zero(),
                        }
                    }
                }
            }
        };
        let close_stage = |x: Split| {
            if q.tie == TieMode::Stage {
                x.close(f)
            } else {
                x
            }
        };
        let mut total = leaf(unpinned(&[plan::STEM.to_string()])).scale(SpaceSize::of(
            (self.stem.widths.len() * self.stem.kernels.len()) as u128,
        ));
        total = close_stage(total);
        for (s, st) in self.stages.iter().enumerate() {
            let blocks: Vec<Split> = (0..st.max_depth())
                .map(|j| {
                    let mut sum = Split::zero();
                    for e in &st.expands {
                        let names: Vec<String> = block_conv_names(st.block, *e != 1.0)
                            .iter()
                            .map(|n| format!("s{s}.b{j}.{n}"))
                            .collect();
                        sum = sum.add(leaf(unpinned(&names)));
                    }
                    sum.scale(SpaceSize::of(st.kernels.len() as u128))
                })
                .collect();
            let mut stage = Split::zero();
            for &d in &st.depths {
                let mut prod = Split::one();
                for b in &blocks[..d as usize] {
                    prod = prod.mul(*b);
                }
                stage = stage.add(prod);
            }
            stage = close_stage(stage.scale(SpaceSize::of(st.widths.len() as u128)));
            total = total.mul(stage);
        }
        let mut head_names = vec![plan::FC.to_string()];
        if !self.head.conv_widths.is_empty() {
            head_names.push(plan::HEAD_CONV.to_string());
        }
        let head = leaf(unpinned(&head_names))
            .scale(SpaceSize::of(self.head.conv_widths.len().max(1) as u128));
        total = close_stage(total.mul(close_stage(head)));
        if let Some(ds) = &self.downsampling {
            total = total.scale(SpaceSize::of((ds.configs.len() * ds.ops.len()) as u128));
        }
        total.close(f).none
    }
}

fn mask_of(decisions: &[Decision], arch: &Arch) -> Vec<bool> {
    decisions
        .iter()
        .map(|d| match &d.kind {
            DecisionKind::Kernel { stage, block } | DecisionKind::Expand { stage, block } => {
                (*block as usize) < arch.stages[*stage].blocks.len()
            }
            DecisionKind::Weights { group }
            | DecisionKind::Activations { group }
            | DecisionKind::Formats { group } => arch.formats.contains_key(group),
            _ => true,
        })
        .collect()
}

fn pow(f: SpaceSize, n: u32) -> SpaceSize {
    (0..n).fold(SpaceSize::of(1), |acc, _| acc.mul(f))
}

/// Counts split by whether a shared format group has been used.
#[derive(Clone, Copy)]
struct Split {
    none: SpaceSize,
    some: SpaceSize,
}

impl Split {
    fn zero() -> Self {
        Split {
            none: SpaceSize::zero(),
            some: SpaceSize::zero(),
        }
    }

    fn one() -> Self {
        Split {
            none: SpaceSize::of(1),
            some: SpaceSize::zero(),
        }
    }

    fn add(self, o: Split) -> Split {
        Split {
            none: self.none.add(o.none),
            some: self.some.add(o.some),
        }
    }

    fn mul(self, o: Split) -> Split {
        Split {
            none: self.none.mul(o.none),
            some: self
                .none
                .mul(o.some)
                .add(self.some.mul(o.none))
                .add(self.some.mul(o.some)),
        }
    }

    fn scale(self, k: SpaceSize) -> Split {
        Split {
            none: self.none.mul(k),
            some: self.some.mul(k),
        }
    }

    /// Resolves the shared group: each count that used it gets `f` format choices.
    fn close(self, f: SpaceSize) -> Split {
        Split {
            none: self.none.add(self.some.mul(f)),
            some: SpaceSize::zero(),
        }
    }
}
