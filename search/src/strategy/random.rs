//! Random search: `budget` members drawn with [`Space::sample_uniform`] from a seeded generator,
//! without asking a member (by [`Arch::key`]) twice while that can be avoided.
//!
//! A draw that repeats an asked member is redrawn up to [`RandomSearch::REDRAWS`] times; past
//! that, when the space has at most [`RandomSearch::ENUMERATE_LIMIT`] members, the member is
//! picked uniformly among those not yet asked, and when every member has been asked the search
//! stops early (it is then exhausted). Only in a larger space does it accept a repeat after the
//! redraws fail. Results do not steer the search; `tell` only marks members as evaluated, and the
//! search is finished once its budget is asked and every asked member told.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use spaces::{Arch, Rng, Space};

use super::{Strategy, StrategyError, Trial};

/// The settings of a random search.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RandomSettings {
    /// Members to ask in all (at least 1).
    pub budget: usize,
    /// Seed of the generator.
    pub seed: u64,
}

/// Seeded uniform random search (see the module docs).
#[derive(Clone, Debug)]
pub struct RandomSearch {
    state: State,
    /// The members of a small space with their keys, enumerated when redraws keep failing (not
    /// saved: derived).
    members: Option<Vec<(Arch, String)>>,
    /// Redraws before the fallback ([`RandomSearch::REDRAWS`]; tests lower it).
    redraws: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct State {
    strategy: String,
    version: u32,
    settings: RandomSettings,
    rng: Rng,
    /// Keys of every asked member.
    seen: BTreeSet<String>,
    /// Keys of asked members not yet told.
    pending: BTreeSet<String>,
    asked: usize,
    told: usize,
    exhausted: bool,
}

const NAME: &str = "random";
const VERSION: u32 = 1;

impl RandomSearch {
    /// Redraws of a repeated member before falling back to enumeration.
    pub const REDRAWS: usize = 64;
    /// The largest space that is enumerated to find a member not yet asked.
    pub const ENUMERATE_LIMIT: usize = 100_000;

    /// A random search of `budget` members (at least 1) seeded with `seed`.
    pub fn new(budget: usize, seed: u64) -> Result<Self, StrategyError> {
        if budget == 0 {
            return Err(StrategyError::Invalid(
                "budget: a random search needs a budget of at least 1 member".into(),
            ));
        }
        let settings = RandomSettings { budget, seed };
        Ok(RandomSearch {
            state: State {
                strategy: NAME.into(),
                version: VERSION,
                settings,
                rng: Rng::new(seed),
                seen: BTreeSet::new(),
                pending: BTreeSet::new(),
                asked: 0,
                told: 0,
                exhausted: false,
            },
            members: None,
            redraws: Self::REDRAWS,
        })
    }

    /// Its settings.
    pub fn settings(&self) -> &RandomSettings {
        &self.state.settings
    }

    /// Members asked so far.
    pub fn asked(&self) -> usize {
        self.state.asked
    }

    /// Members told so far.
    pub fn told(&self) -> usize {
        self.state.told
    }

    /// Whether every member of the space has been asked (the search stopped before its budget).
    pub fn exhausted(&self) -> bool {
        self.state.exhausted
    }

    /// A member not asked before, if the space has one (see the module docs).
    fn draw(&mut self, space: &Space) -> Option<Arch> {
        let st = &mut self.state;
        let mut last = None;
        for _ in 0..self.redraws {
            let arch = space.sample_uniform(&mut st.rng);
            let key = arch.key();
            if !st.seen.contains(&key) {
                st.seen.insert(key);
                return Some(arch);
            }
            last = Some(arch);
        }
        if self.members.is_none() {
            self.members = space.enumerate(Self::ENUMERATE_LIMIT).ok().map(|all| {
                all.into_iter()
                    .map(|a| {
                        let k = a.key();
                        (a, k)
                    })
                    .collect()
            });
        }
        match &self.members {
            Some(all) => {
                let fresh: Vec<&(Arch, String)> =
                    all.iter().filter(|(_, k)| !st.seen.contains(k)).collect();
                if fresh.is_empty() {
                    return None;
                }
                let (arch, key) = fresh[st.rng.below(fresh.len())];
                st.seen.insert(key.clone());
                Some(arch.clone())
            }
            // a space too large to enumerate: accept the repeat
            None => last.or_else(|| Some(space.sample_uniform(&mut st.rng))),
        }
    }
}

impl Strategy for RandomSearch {
    fn name(&self) -> &'static str {
        NAME
    }

    fn ask(&mut self, space: &Space, n: usize) -> Vec<Arch> {
        let want = n.min(self.state.settings.budget - self.state.asked);
        let mut out = Vec::with_capacity(want);
        if self.state.exhausted {
            return out;
        }
        for _ in 0..want {
            match self.draw(space) {
                Some(arch) => {
                    self.state.pending.insert(arch.key());
                    self.state.asked += 1;
                    out.push(arch);
                }
                None => {
                    self.state.exhausted = true;
                    break;
                }
            }
        }
        out
    }

    /// Marks the trials' members as evaluated; members that are not awaited are ignored.
    fn tell(&mut self, _space: &Space, trials: &[Trial]) {
        for t in trials {
            if self.state.pending.remove(&t.arch.key()) {
                self.state.told += 1;
            }
        }
    }

    fn finished(&self) -> bool {
        let st = &self.state;
        (st.asked == st.settings.budget || st.exhausted) && st.pending.is_empty()
    }

    fn save(&self) -> serde_json::Value {
        serde_json::to_value(&self.state).unwrap_or_default()
    }

    /// Restores a saved state; its settings must equal this search's.
    fn restore(&mut self, state: serde_json::Value) -> Result<(), StrategyError> {
        let st: State =
            serde_json::from_value(state).map_err(|e| StrategyError::State(e.to_string()))?;
        if st.strategy != NAME || st.version != VERSION {
            return Err(StrategyError::State(format!(
                "it is the state of strategy `{}` version {}, not `{NAME}` version {VERSION}",
                st.strategy, st.version
            )));
        }
        if st.settings != self.state.settings {
            return Err(StrategyError::State(format!(
                "it was saved with {:?}, this search has {:?}",
                st.settings, self.state.settings
            )));
        }
        if st.asked > st.settings.budget || st.pending.len() > st.asked {
            return Err(StrategyError::State("inconsistent counters".into()));
        }
        self.state = st;
        Ok(())
    }
}

/// Test support shared by the strategies' tests: a small space, a synthetic evaluator, and a
/// driver that interrupts and resumes a search.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::strategy::Evaluation;

    /// A small space: 2 stem widths, two elastic stages and one format per stage (stem, s0, s1,
    /// head) for weights and activations together. 3,888 members.
    pub(crate) const SMALL_SPACE: &str = r#"(
        version: 1,
        input: (channels: 1, height: 8, width: 8),
        classes: 10,
        stem: (width: [4, 8]),
        stages: [
            (block: ConvBnRelu, depth: [1, 2], width: [8, 16], kernel: [1, 3], stride: 2),
            (block: ResidualBasic, depth: [1], width: [16, 32], stride: 2),
        ],
        quantization: (
            weights: [Int(2), Int(4), Int(8)],
            activations: [Int(2), Int(4), Int(8)],
            tie: Stage,
            tie_weights_activations: true,
        ),
    )"#;

    /// A tiny space of 12 members.
    pub(crate) const TINY_SPACE: &str = r#"(
        version: 1,
        input: (channels: 1, height: 8, width: 8),
        classes: 10,
        stem: (width: [4, 8]),
        stages: [(block: ConvBnRelu, depth: [1], width: [8, 16, 24])],
        quantization: (weights: [Int(4), Int(8)], activations: [Int(8)], tie: Global),
    )"#;

    pub(crate) fn space(src: &str) -> Space {
        Space::parse(src, "test.ron", "test").unwrap()
    }

    /// A synthetic accuracy: increasing in every choice index (larger choices are more
    /// accurate), with diminishing returns, and different for every member of the test spaces
    /// (irrational weights per decision). BitOps come from the cost model.
    pub(crate) fn synthetic(space: &Space, arch: &Arch) -> Evaluation {
        let decisions = space.decisions();
        let enc = space.encode(arch);
        let mut s = 0.0;
        for (i, (d, &c)) in decisions.iter().zip(&enc).enumerate() {
            if d.choices.len() > 1 {
                let w = 0.35 + ((i as f64) + 2.0).sqrt().fract();
                s += w * c as f64 / (d.choices.len() - 1) as f64;
            }
        }
        Evaluation {
            accuracy: 1.0 - 0.9 * (-s).exp(),
            bitops: space.cost(arch).unwrap().bitops,
        }
    }

    /// Runs `strategy` to its end with [`synthetic`] scores, asking `chunk` members at a time
    /// and keeping one asked chunk outstanding (told one step later, in reverse order). With
    /// `interrupt = Some(k)`, after the k-th `tell` the state goes through JSON text into
    /// `fresh()`, which continues. Returns every ask (as keys) and the final strategy.
    pub(crate) fn drive<S: Strategy>(
        space: &Space,
        mut strategy: S,
        fresh: impl Fn() -> S,
        chunk: usize,
        interrupt: Option<usize>,
    ) -> (Vec<Vec<String>>, S) {
        let mut asks = Vec::new();
        let mut outstanding: std::collections::VecDeque<Vec<Arch>> = Default::default();
        let mut tells = 0;
        for _ in 0..100_000 {
            if strategy.finished() {
                assert!(outstanding.is_empty(), "finished with members outstanding");
                return (asks, strategy);
            }
            let got = strategy.ask(space, chunk);
            assert!(got.len() <= chunk);
            let empty = got.is_empty();
            if !empty {
                asks.push(got.iter().map(Arch::key).collect());
                outstanding.push_back(got);
            }
            if outstanding.len() >= 2 || empty {
                let Some(batch) = outstanding.pop_front() else {
                    panic!(
                        "{}: nothing to ask or tell but not finished",
                        strategy.name()
                    );
                };
                let trials: Vec<Trial> = batch
                    .into_iter()
                    .rev()
                    .map(|arch| Trial {
                        eval: synthetic(space, &arch),
                        arch,
                    })
                    .collect();
                strategy.tell(space, &trials);
                tells += 1;
                if interrupt == Some(tells) {
                    let text = serde_json::to_string(&strategy.save()).unwrap();
                    let mut resumed = fresh();
                    resumed
                        .restore(serde_json::from_str(&text).unwrap())
                        .unwrap();
                    strategy = resumed;
                }
            }
        }
        panic!("{} did not finish", strategy.name());
    }

    #[test]
    fn respects_its_budget_without_repeats_and_is_seeded() {
        let space = space(SMALL_SPACE);
        assert_eq!(space.size().exact, Some(3_888));
        let (asks, s) = drive(
            &space,
            RandomSearch::new(50, 3).unwrap(),
            || unreachable!(),
            7,
            None,
        );
        let keys: Vec<&String> = asks.iter().flatten().collect();
        assert_eq!(keys.len(), 50);
        assert_eq!(asks.iter().map(Vec::len).max(), Some(7));
        assert_eq!(keys.iter().collect::<BTreeSet<_>>().len(), 50);
        assert_eq!((s.asked(), s.told(), s.exhausted()), (50, 50, false));
        // the budget is a hard limit
        let mut s = s;
        assert!(s.ask(&space, 10).is_empty());

        // same seed, same members, whatever the chunks; another seed, other members
        let (again, _) = drive(
            &space,
            RandomSearch::new(50, 3).unwrap(),
            || unreachable!(),
            50,
            None,
        );
        assert_eq!(again.concat(), asks.concat());
        let (other, _) = drive(
            &space,
            RandomSearch::new(50, 4).unwrap(),
            || unreachable!(),
            7,
            None,
        );
        assert_ne!(other.concat(), asks.concat());
        // every member belongs to the space
        for arch in RandomSearch::new(20, 9).unwrap().ask(&space, 20) {
            space.validate(&arch).unwrap();
        }
        assert!(RandomSearch::new(0, 1).is_err());
    }

    #[test]
    fn exhausts_a_tiny_space_without_repeats() {
        let space = space(TINY_SPACE);
        let all: BTreeSet<String> = space
            .enumerate(100)
            .unwrap()
            .iter()
            .map(Arch::key)
            .collect();
        assert_eq!(all.len(), 12);
        let (asks, s) = drive(
            &space,
            RandomSearch::new(40, 1).unwrap(),
            || unreachable!(),
            5,
            None,
        );
        let keys: Vec<String> = asks.concat();
        assert_eq!(keys.len(), 12, "stops when every member was asked");
        assert_eq!(keys.iter().cloned().collect::<BTreeSet<_>>(), all);
        assert!(s.exhausted() && s.finished());
    }

    #[test]
    fn falls_back_to_the_members_not_yet_asked() {
        let space = space(TINY_SPACE);
        let all: BTreeSet<String> = space
            .enumerate(100)
            .unwrap()
            .iter()
            .map(Arch::key)
            .collect();
        let mut s = RandomSearch::new(20, 5).unwrap();
        s.redraws = 0; // every draw goes through the enumeration
        let got: Vec<String> = s.ask(&space, 12).iter().map(Arch::key).collect();
        assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), all);
        assert!(!s.exhausted());
        assert!(s.ask(&space, 1).is_empty());
        assert!(
            s.exhausted() && !s.finished(),
            "exhausted, but 12 members are not told"
        );
        let trials: Vec<Trial> = space
            .enumerate(100)
            .unwrap()
            .into_iter()
            .map(|arch| Trial {
                eval: synthetic(&space, &arch),
                arch,
            })
            .collect();
        s.tell(&space, &trials[..11]);
        assert!(!s.finished());
        s.tell(&space, &trials[..12]);
        assert!(s.finished());
        assert_eq!(s.told(), 12, "a repeated tell counts once");
        // seeded: the same order again
        let mut again = RandomSearch::new(20, 5).unwrap();
        again.redraws = 0;
        let keys: Vec<String> = again.ask(&space, 12).iter().map(Arch::key).collect();
        assert_eq!(keys, got);
    }

    #[test]
    fn resumes_exactly() {
        let space = space(SMALL_SPACE);
        let make = || RandomSearch::new(30, 11).unwrap();
        let (whole, _) = drive(&space, make(), make, 4, None);
        for k in [1, 3, 7] {
            let (resumed, s) = drive(&space, make(), make, 4, Some(k));
            assert_eq!(resumed, whole, "interrupted after tell {k}");
            assert!(s.finished());
        }
        // also through the exhaustion path of a tiny space
        let tiny = self::space(TINY_SPACE);
        let make = || RandomSearch::new(40, 2).unwrap();
        let (whole, _) = drive(&tiny, make(), make, 5, None);
        let (resumed, _) = drive(&tiny, make(), make, 5, Some(2));
        assert_eq!(resumed, whole);
    }

    #[test]
    fn refuses_foreign_state() {
        let mut s = RandomSearch::new(10, 1).unwrap();
        let saved = RandomSearch::new(11, 1).unwrap().save();
        assert!(matches!(s.restore(saved), Err(StrategyError::State(_))));
        let mut wrong = RandomSearch::new(10, 1).unwrap().save();
        wrong["strategy"] = "nsga2".into();
        assert!(matches!(s.restore(wrong), Err(StrategyError::State(_))));
        assert!(s.restore(serde_json::json!({"x": 1})).is_err());
        assert!(s.restore(RandomSearch::new(10, 1).unwrap().save()).is_ok());
    }
}
