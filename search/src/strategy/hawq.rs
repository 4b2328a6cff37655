//! HAWQ-V3's bit allocation as a strategy (Yao et al., 2021): the largest architecture, one
//! format per format decision, chosen to minimize the summed sensitivity
//! `Ω = Σ_layers Tr(H_l) · ‖W_l − Q_f(W_l)‖²` under a BitOps budget, solved exactly.
//!
//! The sensitivities are measured on the trained supernet (the supernet crate's Hutchinson
//! estimate; `qnas search` hands them over as a [`Sensitivity`] table), so this file sees only
//! numbers. With the architecture fixed, a member's BitOps are a sum over its format decisions
//! (every layer's weight and activation formats are its decision's), and so is `Ω`: the
//! allocation is a multiple-choice knapsack, solved here for every budget at once by dynamic
//! programming over the decisions that keeps the exact Pareto set of (BitOps, Ω) partial sums.
//! The strategy then asks the allocation of the budget HAWQ-V3 reports (all-4-bit + half the
//! way to all-8-bit, where the space has both), and of `budget` budgets spread evenly in log
//! BitOps over the whole range; each is the exact optimum of its budget.
//!
//! As in HAWQ-V3, weights and activations of a decision take the same bit width: the
//! activation format of a pair is the weight format where the space offers it, else the
//! cheapest activation format at least as wide (else the widest). Only the weights'
//! perturbation enters `Ω`, as in the paper.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use spaces::{Arch, Format, FormatPair, Space};

use super::{Strategy, StrategyError, Trial};

/// The measured sensitivities of a space's format decisions on the largest architecture.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sensitivity {
    /// One entry per format decision of the largest member, keyed by its name in
    /// [`Arch::formats`].
    pub groups: BTreeMap<String, GroupSensitivity>,
}

/// One decision's sensitivity per candidate pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupSensitivity {
    /// `(pair, Ω)` for each candidate of [`candidates`], in its order.
    pub options: Vec<(FormatPair, f64)>,
}

/// The candidate format pairs of each format decision of the largest member (see the module
/// docs), cheapest weight format first.
pub fn candidates(space: &Space) -> BTreeMap<String, Vec<FormatPair>> {
    let q = &space.quantization;
    let pair_of = |w: Format| -> FormatPair {
        let a = if q.activations.contains(&w) {
            w
        } else {
            q.activations
                .iter()
                .copied()
                .filter(|a| a.bits() >= w.bits())
                .min_by_key(|a| a.bits())
                .or_else(|| q.activations.iter().copied().max_by_key(|a| a.bits()))
                .unwrap_or(w)
        };
        FormatPair {
            weights: w,
            activations: a,
        }
    };
    space
        .largest()
        .formats
        .keys()
        .map(|g| {
            let mut pairs: Vec<FormatPair> = Vec::new();
            for &w in &q.weights {
                let p = pair_of(w);
                if !pairs.contains(&p) {
                    pairs.push(p);
                }
            }
            (g.clone(), pairs)
        })
        .collect()
}

/// One exact allocation: the minimum Ω at its BitOps.
#[derive(Clone, Debug, PartialEq)]
pub struct Allocation {
    /// The member (the largest architecture with the allocated formats).
    pub arch: Arch,
    /// Its BitOps.
    pub bitops: u64,
    /// Its summed sensitivity.
    pub omega: f64,
}

/// A partial sum of the dynamic program: BitOps relative to the largest member, Ω, and the
/// way back (index into the previous decision's set, option chosen here).
#[derive(Clone, Copy, Debug)]
struct Partial {
    cost: i128,
    omega: f64,
    back: usize,
    option: usize,
}

/// One choice of a format decision: its format pair, its BitOps relative to the largest
/// member's choice, and its sensitivity Ω.
type Choice = (FormatPair, i128, f64);

/// The exact Pareto set of allocations (BitOps down, Ω down), cheapest first: for every
/// BitOps budget, the allocation of least Ω within it is the last one at or under it.
///
/// # Errors
/// [`StrategyError::Invalid`] when `sens` does not cover the space's decisions, or a
/// sensitivity is negative or not finite.
pub fn frontier(space: &Space, sens: &Sensitivity) -> Result<Vec<Allocation>, StrategyError> {
    let cands = candidates(space);
    let largest = space.largest();
    let base = cost_of(space, &largest)?;
    // per decision: (pair, BitOps relative to the largest member's choice, Ω)
    let mut table: Vec<(String, Vec<Choice>)> = Vec::new();
    for (group, pairs) in &cands {
        let g = sens.groups.get(group).ok_or_else(|| {
            StrategyError::Invalid(format!("hawq: no sensitivity for format decision {group}"))
        })?;
        let mut options = Vec::new();
        for p in pairs {
            let omega = g
                .options
                .iter()
                .find(|(q, _)| q == p)
                .map(|(_, o)| *o)
                .ok_or_else(|| {
                    StrategyError::Invalid(format!(
                        "hawq: no sensitivity for {group} at {}/{}",
                        p.weights, p.activations
                    ))
                })?;
            if !(omega.is_finite() && omega >= 0.0) {
                return Err(StrategyError::Invalid(format!(
                    "hawq: sensitivity {omega} of {group} at {}/{} is not a finite number ≥ 0",
                    p.weights, p.activations
                )));
            }
            let mut a = largest.clone();
            a.formats.insert(group.clone(), *p);
            let delta = i128::from(cost_of(space, &a)?) - i128::from(base);
            options.push((*p, delta, omega));
        }
        table.push((group.clone(), options));
    }
    // the Pareto sets of partial sums, one per decision
    let mut layers: Vec<Vec<Partial>> = Vec::with_capacity(table.len());
    let mut current = vec![Partial {
        cost: 0,
        omega: 0.0,
        back: 0,
        option: 0,
    }];
    for (_, options) in &table {
        let mut next = Vec::with_capacity(current.len() * options.len());
        for (i, p) in current.iter().enumerate() {
            for (k, (_, dc, om)) in options.iter().enumerate() {
                next.push(Partial {
                    cost: p.cost + dc,
                    omega: p.omega + om,
                    back: i,
                    option: k,
                });
            }
        }
        let pruned = pareto_prune(next);
        layers.push(std::mem::replace(&mut current, pruned));
    }
    layers.push(current);
    // walk back from every point of the last set
    let last = layers.len() - 1;
    let mut out = Vec::with_capacity(layers[last].len());
    for end in 0..layers[last].len() {
        let mut arch = largest.clone();
        let mut at = end;
        for d in (0..table.len()).rev() {
            let p = layers[d + 1][at];
            let (group, options) = &table[d];
            arch.formats.insert(group.clone(), options[p.option].0);
            at = p.back;
        }
        let bitops = cost_of(space, &arch)?;
        let predicted = i128::from(base) + layers[last][end].cost;
        if i128::from(bitops) != predicted {
            return Err(StrategyError::Invalid(format!(
                "hawq: the space's BitOps are not a sum over its format decisions ({bitops} \
                 measured, {predicted} summed)"
            )));
        }
        out.push(Allocation {
            arch,
            bitops,
            omega: layers[last][end].omega,
        });
    }
    Ok(out)
}

/// The points of `v` not dominated in (cost down, Ω down), cheapest first; of equal points the
/// first is kept.
fn pareto_prune(mut v: Vec<Partial>) -> Vec<Partial> {
    v.sort_by(|a, b| a.cost.cmp(&b.cost).then(a.omega.total_cmp(&b.omega)));
    let mut out: Vec<Partial> = Vec::new();
    for p in v {
        if out.last().is_none_or(|l| p.omega < l.omega) {
            out.push(p);
        }
    }
    out
}

fn cost_of(space: &Space, arch: &Arch) -> Result<u64, StrategyError> {
    space
        .cost(arch)
        .map(|c| c.bitops)
        .map_err(|e| StrategyError::Invalid(format!("hawq: {e}")))
}

/// The BitOps budget HAWQ-V3 reports its mixed allocation at: the all-4-bit member plus half
/// the way to the all-8-bit one (on the largest architecture); `None` unless the space offers
/// int4 and int8 weights.
pub fn paper_budget(space: &Space) -> Option<u64> {
    let q = &space.quantization;
    let (i4, i8) = (Format::Int(4), Format::Int(8));
    if !(q.weights.contains(&i4) && q.weights.contains(&i8)) {
        return None;
    }
    let uniform = |w: Format| -> Option<u64> {
        let mut a = space.largest();
        let pairs = candidates(space);
        for (g, ps) in &pairs {
            let p = ps.iter().find(|p| p.weights == w)?;
            a.formats.insert(g.clone(), *p);
        }
        space.cost(&a).ok().map(|c| c.bitops)
    };
    let (lo, hi) = (uniform(i4)?, uniform(i8)?);
    Some(lo + (hi.saturating_sub(lo)) / 2)
}

/// The allocations to ask: the paper's budget first (where the space has one), then `n`
/// budgets spread evenly in log BitOps from the cheapest to the most expensive allocation; each
/// the least-Ω allocation within its budget, without repeats.
pub fn allocations_for_budgets(space: &Space, front: &[Allocation], n: usize) -> Vec<Arch> {
    let mut out: Vec<Arch> = Vec::new();
    let mut push = |a: &Allocation| {
        if !out.iter().any(|o| o == &a.arch) {
            out.push(a.arch.clone());
        }
    };
    let within = |budget: f64| front.iter().rev().find(|a| a.bitops as f64 <= budget);
    if let Some(a) = paper_budget(space).and_then(|b| within(b as f64)) {
        push(a);
    }
    if let (Some(lo), Some(hi)) = (front.first(), front.last()) {
        let (l, h) = (
            (lo.bitops.max(1) as f64).ln(),
            (hi.bitops.max(1) as f64).ln(),
        );
        for i in 0..n {
            let t = if n == 1 {
                1.0
            } else {
                i as f64 / (n - 1) as f64
            };
            // a hair above the budget, so that rounding never drops the allocation at it
            if let Some(a) = within((l + t * (h - l)).exp() * (1.0 + 1e-12)) {
                push(a);
            }
        }
    }
    out
}

/// HAWQ-V3 as an ask/tell strategy (see the module docs).
#[derive(Clone, Debug)]
pub struct Hawq {
    members: Vec<Arch>,
    state: State,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct State {
    strategy: String,
    version: u32,
    /// Members asked so far: `members[..next]`.
    next: usize,
    /// Members told so far.
    told: usize,
    /// Number of members (to refuse a state saved with other sensitivities).
    members: usize,
}

const NAME: &str = "hawq";
const VERSION: u32 = 1;

impl Hawq {
    /// The allocations of `budget` budgets (see [`allocations_for_budgets`]) under `sens`.
    pub fn new(space: &Space, sens: &Sensitivity, budget: usize) -> Result<Self, StrategyError> {
        let front = frontier(space, sens)?;
        let members = allocations_for_budgets(space, &front, budget.max(1));
        Ok(Hawq {
            state: State {
                strategy: NAME.into(),
                version: VERSION,
                next: 0,
                told: 0,
                members: members.len(),
            },
            members,
        })
    }

    /// The members it asks, in order.
    pub fn members(&self) -> &[Arch] {
        &self.members
    }
}

impl Strategy for Hawq {
    fn name(&self) -> &'static str {
        NAME
    }

    fn ask(&mut self, _space: &Space, n: usize) -> Vec<Arch> {
        let end = (self.state.next + n).min(self.members.len());
        let out = self.members[self.state.next..end].to_vec();
        self.state.next = end;
        out
    }

    fn tell(&mut self, _space: &Space, trials: &[Trial]) {
        self.state.told = (self.state.told + trials.len()).min(self.state.next);
    }

    fn finished(&self) -> bool {
        self.state.told >= self.members.len()
    }

    fn save(&self) -> serde_json::Value {
        serde_json::to_value(&self.state).unwrap_or_default()
    }

    fn restore(&mut self, state: serde_json::Value) -> Result<(), StrategyError> {
        let s: State =
            serde_json::from_value(state).map_err(|e| StrategyError::State(e.to_string()))?;
        if s.strategy != NAME || s.version != VERSION {
            return Err(StrategyError::State(format!(
                "saved by strategy {} version {}, not {NAME} version {VERSION}",
                s.strategy, s.version
            )));
        }
        if s.members != self.members.len() || s.next > s.members || s.told > s.next {
            return Err(StrategyError::State(
                "the saved allocation does not fit these sensitivities".into(),
            ));
        }
        self.state = s;
        Ok(())
    }
}

#[cfg(test)]
#[path = "hawq_tests.rs"]
mod tests;
