//! Exhaustive search: every member of a small space, in the space's enumeration order
//! ([`Space::enumerate`]), each asked exactly once. Finished when every member has been told.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use spaces::{Arch, Space};

use super::{Strategy, StrategyError, Trial};

/// Enumerates a space and asks its members in order (see the module docs).
#[derive(Clone, Debug)]
pub struct Exhaustive {
    members: Vec<Arch>,
    /// Key → position in `members` (derived).
    index: HashMap<String, usize>,
    state: State,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct State {
    strategy: String,
    version: u32,
    /// [`Space::fingerprint`] of the enumerated space.
    fingerprint: u64,
    /// Number of members.
    members: usize,
    /// Members asked so far: `members[..next]`.
    next: usize,
    /// Positions asked and not yet told.
    pending: BTreeSet<usize>,
}

const NAME: &str = "exhaustive";
const VERSION: u32 = 1;

impl Exhaustive {
    /// The default largest number of members enumerated.
    pub const DEFAULT_LIMIT: usize = 100_000;

    /// Enumerates `space`; [`StrategyError::TooLarge`] when it has more than `limit` members.
    pub fn new(space: &Space, limit: usize) -> Result<Self, StrategyError> {
        let members = space.enumerate(limit)?;
        let index = members
            .iter()
            .enumerate()
            .map(|(i, a)| (a.key(), i))
            .collect();
        Ok(Exhaustive {
            state: State {
                strategy: NAME.into(),
                version: VERSION,
                fingerprint: space.fingerprint(),
                members: members.len(),
                next: 0,
                pending: BTreeSet::new(),
            },
            members,
            index,
        })
    }

    /// Every member, in the order they are asked.
    pub fn members(&self) -> &[Arch] {
        &self.members
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the space has no member (never: a space has at least its smallest member).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Members asked so far.
    pub fn asked(&self) -> usize {
        self.state.next
    }
}

impl Strategy for Exhaustive {
    fn name(&self) -> &'static str {
        NAME
    }

    fn ask(&mut self, _space: &Space, n: usize) -> Vec<Arch> {
        let st = &mut self.state;
        let end = (st.next + n).min(self.members.len());
        let out = self.members[st.next..end].to_vec();
        st.pending.extend(st.next..end);
        st.next = end;
        out
    }

    /// Marks the trials' members as evaluated; members that are not awaited are ignored.
    fn tell(&mut self, _space: &Space, trials: &[Trial]) {
        for t in trials {
            if let Some(i) = self.index.get(&t.arch.key()) {
                self.state.pending.remove(i);
            }
        }
    }

    fn finished(&self) -> bool {
        self.state.next == self.members.len() && self.state.pending.is_empty()
    }

    fn save(&self) -> serde_json::Value {
        serde_json::to_value(&self.state).unwrap_or_default()
    }

    /// Restores a saved state; it must come from an exhaustive search of the same space.
    fn restore(&mut self, state: serde_json::Value) -> Result<(), StrategyError> {
        let st: State =
            serde_json::from_value(state).map_err(|e| StrategyError::State(e.to_string()))?;
        if st.strategy != NAME || st.version != VERSION {
            return Err(StrategyError::State(format!(
                "it is the state of strategy `{}` version {}, not `{NAME}` version {VERSION}",
                st.strategy, st.version
            )));
        }
        if st.fingerprint != self.state.fingerprint || st.members != self.members.len() {
            return Err(StrategyError::State(format!(
                "it was saved for another space (fingerprint {:016x}, {} members; this one is \
                 {:016x}, {} members)",
                st.fingerprint,
                st.members,
                self.state.fingerprint,
                self.members.len()
            )));
        }
        if st.next > st.members || st.pending.iter().any(|&i| i >= st.next) {
            return Err(StrategyError::State(
                "pending members that were never asked".into(),
            ));
        }
        self.state = st;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::random::tests::{SMALL_SPACE, TINY_SPACE, drive, space};

    #[test]
    fn visits_every_member_exactly_once_in_order() {
        let space = space(SMALL_SPACE);
        let size = space.size().exact.unwrap() as usize;
        let s = Exhaustive::new(&space, 10_000).unwrap();
        assert_eq!(s.len(), size);
        let expected: Vec<String> = space
            .enumerate(10_000)
            .unwrap()
            .iter()
            .map(Arch::key)
            .collect();
        let (asks, s) = drive(&space, s, || unreachable!(), 500, None);
        let keys: Vec<String> = asks.concat();
        assert_eq!(keys, expected);
        assert_eq!(keys.iter().collect::<BTreeSet<_>>().len(), size);
        assert!(asks.iter().all(|a| a.len() == 500 || a.len() == size % 500));
        assert_eq!(s.asked(), size);
        for arch in s.members() {
            space.validate(arch).unwrap();
        }
    }

    #[test]
    fn finished_only_when_all_are_told() {
        let space = space(TINY_SPACE);
        let mut s = Exhaustive::new(&space, 100).unwrap();
        let all = s.ask(&space, 100);
        assert_eq!(all.len(), 12);
        assert!(s.ask(&space, 5).is_empty());
        assert!(!s.finished());
        let trial = |arch: &Arch| Trial {
            arch: arch.clone(),
            eval: crate::strategy::random::tests::synthetic(&space, arch),
        };
        let trials: Vec<Trial> = all.iter().map(trial).collect();
        s.tell(&space, &trials[1..]);
        s.tell(&space, &trials[1..]);
        assert!(!s.finished(), "member 0 is still outstanding");
        s.tell(&space, &trials[..1]);
        assert!(s.finished());
    }

    #[test]
    fn refuses_large_spaces() {
        let space = space(SMALL_SPACE);
        match Exhaustive::new(&space, 1_000) {
            Err(StrategyError::TooLarge(e)) => assert_eq!(e.limit, 1_000),
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn resumes_exactly() {
        let space = space(SMALL_SPACE);
        let make = || Exhaustive::new(&space, 10_000).unwrap();
        let (whole, _) = drive(&space, make(), make, 300, None);
        for k in [1, 5, 12] {
            let (resumed, s) = drive(&space, make(), make, 300, Some(k));
            assert_eq!(resumed, whole, "interrupted after tell {k}");
            assert!(s.finished());
        }
        // a state of another space is refused
        let tiny = self::space(TINY_SPACE);
        let mut other = Exhaustive::new(&tiny, 100).unwrap();
        assert!(matches!(
            other.restore(make().save()),
            Err(StrategyError::State(_))
        ));
    }
}
