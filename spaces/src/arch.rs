//! `Arch`: one point of a space, every choice resolved: the architecture and a number format
//! for every format decision.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Problem, SpaceError};
use crate::format::Format;
use crate::raw::PoolOp;
use crate::space::{Space, ron_options};

/// Weight and activation (input) format of a layer or a format decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatPair {
    /// Weight format.
    pub weights: Format,
    /// Activation format (of the layer's input).
    pub activations: Format,
}

impl FormatPair {
    /// Both the same.
    pub fn uniform(f: Format) -> Self {
        FormatPair {
            weights: f,
            activations: f,
        }
    }
}

/// Stem choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StemArch {
    /// Output channels.
    pub width: u32,
    /// Kernel size.
    pub kernel: u32,
}

/// Choices of one block.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockArch {
    /// Kernel size.
    pub kernel: u32,
    /// Expand ratio (1 for block types without one).
    #[serde(default = "one")]
    pub expand: f64,
}

fn one() -> f64 {
    1.0
}

/// Choices of one stage; its depth is the number of blocks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageArch {
    /// Output channels.
    pub width: u32,
    /// The active blocks, in order.
    pub blocks: Vec<BlockArch>,
}

/// Head choices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadArch {
    /// Width of the 1x1 conv before pooling, when the space has one.
    #[serde(default)]
    pub conv_width: Option<u32>,
}

/// The chosen downsampling configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolingArch {
    /// Block positions carrying a downsampling step, ascending.
    pub positions: Vec<u32>,
    /// How they downsample.
    pub op: PoolOp,
}

/// One point of a space.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arch {
    /// Stem.
    pub stem: StemArch,
    /// Stages, one per stage of the space.
    pub stages: Vec<StageArch>,
    /// Head.
    #[serde(default)]
    pub head: HeadArch,
    /// Downsampling configuration, when the space has searchable downsampling.
    #[serde(default)]
    pub pooling: Option<PoolingArch>,
    /// Format of every active, unpinned format decision, keyed by decision name (a layer, a
    /// block, a stage or `all`, following the space's `tie`).
    pub formats: BTreeMap<String, FormatPair>,
}

/// Why an arch does not belong to its space.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("the architecture does not belong to space `{space}`: {}", problems.iter().map(|p| format!("{}: {}", p.path, p.message)).collect::<Vec<_>>().join("; "))]
pub struct ArchError {
    /// The space's name.
    pub space: String,
    /// Every problem, with the path of the offending field of the arch.
    pub problems: Vec<Problem>,
}

impl Arch {
    /// Depth of stage `s`.
    pub fn depth(&self, s: usize) -> u32 {
        self.stages[s].blocks.len() as u32
    }

    /// RON text (pretty).
    pub fn to_ron(&self) -> String {
        let cfg = ron::ser::PrettyConfig::new()
            .struct_names(false)
            .depth_limit(4);
        ron::ser::to_string_pretty(self, cfg).unwrap_or_default()
    }

    /// A canonical one-line key for caches.
    pub fn key(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses an arch from RON or JSON text (JSON when it starts with `{`) and validates it
    /// against `space`; errors name `file`, line and column.
    pub fn parse(src: &str, file: &str, space: &Space) -> Result<Arch, SpaceError> {
        let arch: Arch = if src.trim_start().starts_with('{') {
            serde_json::from_str(src).map_err(|e| json_syntax(file, src, &e))?
        } else {
            ron_options()
                .from_str(src)
                .map_err(|e| SpaceError::syntax(file, src, &e))?
        };
        space
            .validate(&arch)
            .map_err(|e| SpaceError::invalid(file, src, e.problems))?;
        Ok(arch)
    }

    /// Reads an arch file (RON or JSON) and validates it against `space`.
    pub fn load(path: &Path, space: &Space) -> Result<Arch, SpaceError> {
        let src = crate::error::read_source(path)?;
        Arch::parse(&src, &path.display().to_string(), space)
    }
}

fn json_syntax(file: &str, src: &str, e: &serde_json::Error) -> SpaceError {
    // serde_json counts columns in bytes; the diagnostic counts characters, as for RON
    let line_start: usize = src
        .split_inclusive('\n')
        .take(e.line().saturating_sub(1))
        .map(str::len)
        .sum();
    let mut offset = (line_start + e.column().saturating_sub(1)).min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let (line, column) = crate::error::line_col(src, offset);
    let (excerpt, span) = crate::source::Excerpt::new(file, src, offset, 0);
    SpaceError::Syntax(Box::new(crate::error::SyntaxError {
        file: file.to_string(),
        line,
        column,
        message: crate::error::shorten(&e.to_string(), 600),
        token: String::new(),
        src: excerpt,
        span,
    }))
}
