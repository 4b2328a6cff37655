//! Where an evaluated member came from. Reports and model folders keep the text form
//! (`baseline int8 largest`, `nsga2`, `fliqs target 0.25 (trained with the policy)`, ...);
//! code matches on the variants and never parses those strings itself.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use spaces::{Format, SearchStrategy};

/// Which end of the space a uniform-precision baseline sits at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BaselineSize {
    /// The largest architecture.
    Largest,
    /// The smallest architecture.
    Smallest,
}

impl BaselineSize {
    /// `largest` or `smallest`.
    pub fn as_str(self) -> &'static str {
        match self {
            BaselineSize::Largest => "largest",
            BaselineSize::Smallest => "smallest",
        }
    }
}

/// How a FLIQS member was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FliqsMember {
    /// Sampled by the policy while it learned (`fliqs target T`).
    Sampled,
    /// The policy's final argmax, measured on the trained supernet
    /// (`fliqs target T (policy argmax)`).
    Argmax,
    /// The policy's final argmax with the weights of FLIQS training mode, the supernet copy
    /// trained on the policy's samples (`fliqs target T (trained with the policy)`).
    TrainedWithPolicy,
}

/// Where a member of a search (or an export) came from.
#[derive(Clone, Debug, PartialEq)]
pub enum Origin {
    /// A uniform-precision member: every weight and activation in `format`.
    Baseline {
        /// The one format.
        format: Format,
        /// Largest or smallest architecture.
        size: BaselineSize,
    },
    /// Proposed by a strategy other than FLIQS (`random`, `nsga2`, `exhaustive`).
    Strategy(SearchStrategy),
    /// From the FLIQS policy of one cost target.
    Fliqs {
        /// The cost target as given (a fraction of the largest member's BitOps, or BitOps).
        target: f64,
        /// How the member was obtained.
        member: FliqsMember,
    },
    /// Given by the user as an arch file (`qnas export --arch FILE`): `arch FILE`.
    ArchFile(String),
}

impl Origin {
    /// Whether the member is a uniform-precision baseline.
    pub fn is_baseline(&self) -> bool {
        matches!(self, Origin::Baseline { .. })
    }

    /// The FLIQS target whose training-mode weights the member needs, if it was trained with
    /// the policy.
    pub fn trained_with_policy(&self) -> Option<f64> {
        match self {
            Origin::Fliqs {
                target,
                member: FliqsMember::TrainedWithPolicy,
            } => Some(*target),
            _ => None,
        }
    }
}

/// Every strategy, in the order the command line lists them.
pub const STRATEGIES: [SearchStrategy; 5] = [
    SearchStrategy::Random,
    SearchStrategy::Nsga2,
    SearchStrategy::Exhaustive,
    SearchStrategy::Fliqs,
    SearchStrategy::Hawq,
];

/// The strategy of a name given by [`strategy_name`] (`random`, `nsga2`, ...).
pub fn strategy_named(name: &str) -> Option<SearchStrategy> {
    STRATEGIES.into_iter().find(|s| strategy_name(*s) == name)
}

/// The name of a strategy in origins, reports and on the command line.
pub fn strategy_name(s: SearchStrategy) -> &'static str {
    match s {
        SearchStrategy::Random => "random",
        SearchStrategy::Nsga2 => "nsga2",
        SearchStrategy::Exhaustive => "exhaustive",
        SearchStrategy::Fliqs => "fliqs",
        SearchStrategy::Hawq => "hawq",
    }
}

const ARGMAX: &str = " (policy argmax)";
const TRAINED: &str = " (trained with the policy)";

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Baseline { format, size } => write!(f, "baseline {format} {}", size.as_str()),
            Origin::Strategy(s) => f.write_str(strategy_name(*s)),
            Origin::Fliqs { target, member } => {
                write!(f, "fliqs target {target}")?;
                match member {
                    FliqsMember::Sampled => Ok(()),
                    FliqsMember::Argmax => f.write_str(ARGMAX),
                    FliqsMember::TrainedWithPolicy => f.write_str(TRAINED),
                }
            }
            Origin::ArchFile(path) => write!(f, "arch {path}"),
        }
    }
}

/// An origin text that names no known origin.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown member origin {0:?} (expected e.g. \"nsga2\", \"baseline int8 largest\" or \"fliqs target 0.25\")"
)]
pub struct UnknownOrigin(pub String);

impl FromStr for Origin {
    type Err = UnknownOrigin;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownOrigin(s.to_string());
        if let Some(path) = s.strip_prefix("arch ") {
            return Ok(Origin::ArchFile(path.to_string()));
        }
        if let Some(rest) = s.strip_prefix("baseline ") {
            let (format, size) = rest.rsplit_once(' ').ok_or_else(unknown)?;
            let size = match size {
                "largest" => BaselineSize::Largest,
                "smallest" => BaselineSize::Smallest,
                _ => return Err(unknown()),
            };
            let format = format.parse::<Format>().map_err(|_| unknown())?;
            return Ok(Origin::Baseline { format, size });
        }
        if let Some(rest) = s.strip_prefix("fliqs target ") {
            let (number, member) = if let Some(t) = rest.strip_suffix(ARGMAX) {
                (t, FliqsMember::Argmax)
            } else if let Some(t) = rest.strip_suffix(TRAINED) {
                (t, FliqsMember::TrainedWithPolicy)
            } else {
                (rest, FliqsMember::Sampled)
            };
            let target = number.parse::<f64>().map_err(|_| unknown())?;
            return Ok(Origin::Fliqs { target, member });
        }
        // FLIQS members always name their target
        strategy_named(s)
            .filter(|k| *k != SearchStrategy::Fliqs)
            .map(Origin::Strategy)
            .ok_or_else(unknown)
    }
}

impl Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Origin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_form_reads_back_as_itself() {
        let origins = [
            Origin::Baseline {
                format: Format::Int(8),
                size: BaselineSize::Largest,
            },
            Origin::Baseline {
                format: Format::E2M1,
                size: BaselineSize::Smallest,
            },
            Origin::Baseline {
                format: Format::FP32,
                size: BaselineSize::Largest,
            },
            Origin::Strategy(SearchStrategy::Nsga2),
            Origin::Strategy(SearchStrategy::Random),
            Origin::Strategy(SearchStrategy::Exhaustive),
            Origin::Strategy(SearchStrategy::Hawq),
            Origin::Fliqs {
                target: 0.25,
                member: FliqsMember::Sampled,
            },
            Origin::Fliqs {
                target: 0.1,
                member: FliqsMember::Argmax,
            },
            Origin::Fliqs {
                target: 3.5e9,
                member: FliqsMember::TrainedWithPolicy,
            },
            Origin::ArchFile("members/a b.ron".into()),
        ];
        for o in origins {
            let text = o.to_string();
            assert_eq!(text.parse::<Origin>().unwrap(), o, "{text}");
            let json = serde_json::to_string(&o).unwrap();
            assert_eq!(serde_json::from_str::<Origin>(&json).unwrap(), o);
        }
    }

    #[test]
    fn the_text_forms_are_the_ones_reports_always_had() {
        let o = Origin::Baseline {
            format: Format::E4M3,
            size: BaselineSize::Smallest,
        };
        assert_eq!(o.to_string(), "baseline e4m3 smallest");
        let o = Origin::Fliqs {
            target: 0.25,
            member: FliqsMember::TrainedWithPolicy,
        };
        assert_eq!(o.to_string(), "fliqs target 0.25 (trained with the policy)");
        assert_eq!(o.trained_with_policy(), Some(0.25));
        assert_eq!(
            Origin::Fliqs {
                target: 0.5,
                member: FliqsMember::Argmax
            }
            .to_string(),
            "fliqs target 0.5 (policy argmax)"
        );
    }

    #[test]
    fn unknown_texts_are_errors() {
        for bad in [
            "",
            "baseline",
            "baseline int8",
            "baseline int8 medium",
            "baseline int99x largest",
            "fliqs target x",
            "fliqs",
            "genetic",
        ] {
            assert!(bad.parse::<Origin>().is_err(), "{bad:?}");
        }
    }
}
