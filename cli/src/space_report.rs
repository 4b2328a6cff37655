//! The reports of `qnas space check` and `qnas space sample`, as data: the binary prints them
//! as text or as JSON. The JSON schemas are documented in `docs/json.md`.

use serde::Serialize;
use spaces::{Arch, Cost, Decision, LayerCost, Rng, Space, SpaceError};

/// Schema tag of [`CheckReport`].
pub const CHECK_SCHEMA: &str = "qnas.space.check/1";
/// Schema tag of [`SampleReport`].
pub const SAMPLE_SCHEMA: &str = "qnas.space.sample/1";

/// An arch with its costs.
#[derive(Clone, Debug, Serialize)]
pub struct CostedArch {
    /// The arch.
    pub arch: Arch,
    /// Its cost.
    pub cost: Cost,
    /// Per-layer costs.
    pub layers: Vec<LayerCost>,
}

/// The size of a space in JSON: exact as a decimal string (it may exceed 2^53), and log10.
#[derive(Clone, Debug, Serialize)]
pub struct SizeJson {
    /// Exact count, when it fits 128 bits.
    pub exact: Option<String>,
    /// log10 of the count.
    pub log10: f64,
}

/// What `qnas space check` reports.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    /// [`CHECK_SCHEMA`].
    pub schema: &'static str,
    /// The file checked.
    pub file: String,
    /// The space's name.
    pub name: String,
    /// Fingerprint, 16 hex digits.
    pub fingerprint: String,
    /// The validated space.
    pub space: Space,
    /// Every decision with its choices.
    pub decisions: Vec<Decision>,
    /// Every layer name the space can produce.
    pub layers: Vec<String>,
    /// Number of distinct members.
    pub size: SizeJson,
    /// The smallest member.
    pub smallest: CostedArch,
    /// The largest member.
    pub largest: CostedArch,
}

/// What `qnas space sample` reports.
#[derive(Clone, Debug, Serialize)]
pub struct SampleReport {
    /// [`SAMPLE_SCHEMA`].
    pub schema: &'static str,
    /// The file sampled.
    pub file: String,
    /// The seed.
    pub seed: u64,
    /// The samples.
    pub archs: Vec<CostedArch>,
}

/// How to draw samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum SampleMode {
    /// A uniform choice per decision.
    Uniform,
    /// The smallest member.
    Smallest,
    /// The largest member.
    Largest,
}

impl SampleMode {
    /// Every mode, in the order the command line lists them.
    pub const ALL: [SampleMode; 3] = [
        SampleMode::Uniform,
        SampleMode::Smallest,
        SampleMode::Largest,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            SampleMode::Uniform => "uniform",
            SampleMode::Smallest => "smallest",
            SampleMode::Largest => "largest",
        }
    }
}

impl std::fmt::Display for SampleMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An arch of `space` with its costs.
pub fn costed(space: &Space, arch: Arch) -> CostedArch {
    let plan = space
        .plan(&arch)
        .expect("archs made by the space are valid");
    CostedArch {
        cost: spaces::cost::plan_cost(&plan),
        layers: spaces::cost::layer_costs(&plan),
        arch,
    }
}

/// Loads and checks a space file.
pub fn check(path: &std::path::Path) -> Result<CheckReport, SpaceError> {
    let space = Space::load(path)?;
    let size = space.size();
    Ok(CheckReport {
        schema: CHECK_SCHEMA,
        file: path.display().to_string(),
        name: space.name.clone(),
        fingerprint: format!("{:016x}", space.fingerprint()),
        decisions: space.decisions(),
        layers: spaces::plan::all_layer_names(&space),
        size: SizeJson {
            exact: size.exact.map(|n| n.to_string()),
            log10: size.log10,
        },
        smallest: costed(&space, space.smallest()),
        largest: costed(&space, space.largest()),
        space,
    })
}

/// Loads a space file and draws `n` members.
pub fn sample(
    path: &std::path::Path,
    n: usize,
    seed: u64,
    mode: SampleMode,
) -> Result<SampleReport, SpaceError> {
    let space = Space::load(path)?;
    let mut rng = Rng::new(seed);
    let archs = (0..n)
        .map(|_| {
            let arch = match mode {
                SampleMode::Uniform => space.sample_uniform(&mut rng),
                SampleMode::Smallest => space.smallest(),
                SampleMode::Largest => space.largest(),
            };
            costed(&space, arch)
        })
        .collect();
    Ok(SampleReport {
        schema: SAMPLE_SCHEMA,
        file: path.display().to_string(),
        seed,
        archs,
    })
}
