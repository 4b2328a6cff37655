//! Members drawn by cost: BitOps log-uniform between the space's smallest and largest member's
//! (the sandwich rule's `draw: LogBitOps`, after AttentiveNAS's sampling by FLOPs).
//!
//! A uniform choice per decision puts most members near the space's median cost, a product of
//! many independent choices; the cheap end, where a mixed-precision front lies, is then rarely
//! trained. Drawing the cost first spreads training over every decade of cost. A member of
//! about the drawn cost is found by a random walk: a uniform member, then one randomly chosen
//! decision at a time moved to a randomly chosen cheaper (or dearer) choice, until the BitOps
//! cross the target. The member is otherwise as random as a uniform draw.

use crate::arch::Arch;
use crate::rng::Rng;
use crate::space::Space;

/// Random-walk steps allowed per decision of the space (a step that finds no move in the
/// wanted direction counts too).
const STEPS_PER_DECISION: usize = 8;

impl Space {
    /// A member whose BitOps are close to a target drawn log-uniformly between the smallest
    /// and the largest member's (see the module docs). A space whose members all cost the same
    /// gets a uniform member.
    pub fn sample_log_bitops(&self, rng: &mut Rng) -> Arch {
        let decisions = self.decisions();
        let bitops = |choices: &[usize]| -> Option<f64> {
            let arch = self.decode(choices).ok()?;
            Some(self.cost(&arch).ok()?.bitops as f64)
        };
        let mut choices: Vec<usize> = decisions
            .iter()
            .map(|d| rng.below(d.choices.len()))
            .collect();
        let smallest = vec![0; decisions.len()];
        let largest: Vec<usize> = decisions.iter().map(|d| d.choices.len() - 1).collect();
        if let (Some(lo), Some(hi), Some(mut cost)) =
            (bitops(&smallest), bitops(&largest), bitops(&choices))
            && lo > 0.0
            && hi > lo
        {
            let target = (lo.ln() + rng.unit() * (hi / lo).ln()).exp();
            let down = cost > target;
            for _ in 0..STEPS_PER_DECISION * decisions.len() {
                if (down && cost <= target) || (!down && cost >= target) {
                    break;
                }
                let d = rng.below(decisions.len());
                let moves: Vec<(usize, f64)> = (0..decisions[d].choices.len())
                    .filter(|&k| k != choices[d])
                    .filter_map(|k| {
                        let mut moved = choices.clone();
                        moved[d] = k;
                        let b = bitops(&moved)?;
                        ((down && b < cost) || (!down && b > cost)).then_some((k, b))
                    })
                    .collect();
                if !moves.is_empty() {
                    let (k, b) = moves[rng.below(moves.len())];
                    choices[d] = k;
                    cost = b;
                }
            }
        }
        self.decode(&choices)
            .expect("every choice index is within its decision")
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::{Rng, Space};

    fn mnist() -> Space {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("presets/mnist.ron");
        Space::load(&path).unwrap()
    }

    /// Fractions of `n` members of each draw in 4 equal bins of log BitOps between the
    /// smallest and the largest member.
    fn log_bins(space: &Space, n: usize, draw: impl Fn(&mut Rng) -> crate::Arch) -> [f64; 4] {
        let lo = (space.cost(&space.smallest()).unwrap().bitops as f64).ln();
        let hi = (space.cost(&space.largest()).unwrap().bitops as f64).ln();
        let mut rng = Rng::new(11);
        let mut bins = [0.0; 4];
        for _ in 0..n {
            let arch = draw(&mut rng);
            space.validate(&arch).unwrap();
            let b = (space.cost(&arch).unwrap().bitops as f64).ln();
            let i = (((b - lo) / (hi - lo)) * 4.0).floor().clamp(0.0, 3.0) as usize;
            bins[i] += 1.0 / n as f64;
        }
        bins
    }

    #[test]
    fn log_bitops_draws_cover_every_quarter_of_the_cost_range() {
        let space = mnist();
        let uniform = log_bins(&space, 1500, |rng| space.sample_uniform(rng));
        let by_cost = log_bins(&space, 1500, |rng| space.sample_log_bitops(rng));
        // a uniform choice per decision leaves the cheapest quarter nearly empty
        assert!(uniform[0] < 0.03, "uniform: {uniform:?}");
        for (i, &f) in by_cost.iter().enumerate() {
            assert!((0.15..=0.35).contains(&f), "quarter {i}: {by_cost:?}");
        }
    }

    #[test]
    fn log_bitops_draws_repeat_with_the_seed_and_vary_the_members() {
        let space = mnist();
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            (0..20)
                .map(|_| space.sample_log_bitops(&mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        let a = draw(3);
        let distinct: std::collections::BTreeSet<String> = a.iter().map(|m| m.key()).collect();
        assert!(distinct.len() >= 18, "{} distinct of 20", distinct.len());
    }
}
