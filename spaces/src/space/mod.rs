//! The validated search space.

pub mod names;

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use crate::error::{Problem, SpaceError};
use crate::format::{Format, RawFormat};
use crate::locate::FieldPath;
use crate::raw::{
    ActivationRange, BlockType, LayerRef, PoolOp, RawDownsampling, RawPoolConfigs, RawSpace,
    RawStemPool, SPACE_VERSION, TieMode, WeightRange,
};

/// Largest number of pooling configurations a space may list.
pub const MAX_POOL_CONFIGS: usize = 100_000;
/// The largest depth of a stage (the validator names every layer a space can have).
pub const MAX_DEPTH: u32 = 100;

/// Shape of one input image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Input {
    /// Channels.
    pub channels: u32,
    /// Height.
    pub height: u32,
    /// Width.
    pub width: u32,
}

/// A pooling layer after the stem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StemPool {
    /// Max (true) or average (false) pooling.
    pub max: bool,
    /// Window.
    pub kernel: u32,
    /// Stride.
    pub stride: u32,
}

/// The stem: conv-BN-ReLU.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stem {
    /// Width choices, ascending.
    pub widths: Vec<u32>,
    /// Kernel choices, ascending.
    pub kernels: Vec<u32>,
    /// Stride.
    pub stride: u32,
    /// Optional pooling after the stem.
    pub pool: Option<StemPool>,
}

/// One stage.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stage {
    /// Block type.
    pub block: BlockType,
    /// Depth choices, ascending.
    pub depths: Vec<u32>,
    /// Width choices, ascending.
    pub widths: Vec<u32>,
    /// Kernel choices, ascending.
    pub kernels: Vec<u32>,
    /// Expand-ratio choices, ascending; `[1.0]` for block types without one.
    pub expands: Vec<f64>,
    /// Stride of the first block.
    pub stride: u32,
}

impl Stage {
    /// Largest depth.
    pub fn max_depth(&self) -> u32 {
        *self.depths.last().unwrap_or(&1)
    }

    /// Smallest depth.
    pub fn min_depth(&self) -> u32 {
        *self.depths.first().unwrap_or(&1)
    }
}

/// The head.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Head {
    /// Width choices of the 1x1 conv before pooling; empty: no such conv.
    pub conv_widths: Vec<u32>,
    /// Dropout before the classifier (largest net only).
    pub dropout: f64,
}

/// Searchable downsampling.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Downsampling {
    /// The allowed position sets, each sorted ascending.
    pub configs: Vec<Vec<u32>>,
    /// The allowed ways to downsample.
    pub ops: Vec<PoolOp>,
}

/// A pinned layer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pin {
    /// Layer name.
    pub layer: String,
    /// Weight format.
    pub weights: Format,
    /// Activation format.
    pub activations: Format,
}

/// Number-format choices.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Quantization {
    /// Weight-format choices, cheapest first.
    pub weights: Vec<Format>,
    /// Activation-format choices, cheapest first.
    pub activations: Vec<Format>,
    /// Decision granularity.
    pub tie: TieMode,
    /// One decision for weights and activations.
    pub tie_weights_activations: bool,
    /// Fixed layers.
    pub pins: Vec<Pin>,
    /// How activation ranges are estimated (always serialized, so always in the space's
    /// fingerprint: a checkpoint trained under one range method is never read under another,
    /// whatever the language's default was when its space file was written).
    pub activation_range: ActivationRange,
    /// How weight ranges are chosen (always serialized, as `activation_range`).
    pub weight_range: WeightRange,
}

impl Quantization {
    /// The pin of a layer, if any.
    pub fn pin(&self, layer: &str) -> Option<&Pin> {
        self.pins.iter().find(|p| p.layer == layer)
    }
}

/// A validated search space.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Space {
    /// Language version.
    pub version: u32,
    /// Name for reports.
    pub name: String,
    /// Input shape.
    pub input: Input,
    /// Classes.
    pub classes: u32,
    /// Stem.
    pub stem: Stem,
    /// Stages.
    pub stages: Vec<Stage>,
    /// Head.
    pub head: Head,
    /// Searchable downsampling.
    pub downsampling: Option<Downsampling>,
    /// Number formats.
    pub quantization: Quantization,
    /// The data set, when the file names one.
    pub data: Option<crate::run::DataConfig>,
    /// Training settings.
    pub train: crate::run::TrainConfig,
    /// Search settings.
    pub search: crate::run::SearchConfig,
}

impl Space {
    /// Reads and validates a space file.
    pub fn load(path: &Path) -> Result<Space, SpaceError> {
        let src = crate::error::read_source(path)?;
        let default_name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("space");
        Space::parse(&src, &path.display().to_string(), default_name)
    }

    /// Parses and validates RON text; `file` names it in errors (and relative paths in it are
    /// relative to its folder), `default_name` is used when the file sets no `name`.
    pub fn parse(src: &str, file: &str, default_name: &str) -> Result<Space, SpaceError> {
        let base = Path::new(file).parent().unwrap_or(Path::new(""));
        Space::parse_in(src, file, default_name, base)
    }

    /// [`Space::parse`] with relative paths relative to `base` instead of the file's folder
    /// (for a copy of a space file kept away from its original place).
    pub fn parse_in(
        src: &str,
        file: &str,
        default_name: &str,
        base: &Path,
    ) -> Result<Space, SpaceError> {
        let raw: RawSpace = ron_options()
            .from_str(src)
            .map_err(|e| SpaceError::syntax(file, src, &e))?;
        Space::from_raw_in(raw, default_name, base)
            .map_err(|problems| SpaceError::invalid(file, src, problems))
    }

    /// Validates a raw space, collecting every problem.
    pub fn from_raw(raw: RawSpace, default_name: &str) -> Result<Space, Vec<Problem>> {
        Space::from_raw_in(raw, default_name, Path::new(""))
    }

    /// Validates a raw space whose relative paths are relative to `base`.
    pub fn from_raw_in(
        raw: RawSpace,
        default_name: &str,
        base: &Path,
    ) -> Result<Space, Vec<Problem>> {
        Validator {
            problems: Vec::new(),
            base: base.to_path_buf(),
        }
        .space(raw, default_name)
    }

    /// A stable 64-bit fingerprint of the space (FNV-1a over its canonical JSON), used to tie
    /// checkpoints and runs to the space they belong to.
    /// Covers what defines the network and its formats, not the data or training settings.
    pub fn fingerprint(&self) -> u64 {
        let net = (
            &self.input,
            self.classes,
            &self.stem,
            &self.stages,
            &self.head,
            &self.downsampling,
            &self.quantization,
        );
        let json = serde_json::to_string(&net).unwrap_or_default();
        fnv1a(json.as_bytes())
    }

    /// Total number of blocks at every stage's largest depth.
    pub fn max_blocks(&self) -> usize {
        self.stages.iter().map(|s| s.max_depth() as usize).sum()
    }

    /// (stage, block within stage) of a global block position.
    pub fn block_at(&self, position: u32) -> Option<(usize, u32)> {
        let mut p = position;
        for (s, stage) in self.stages.iter().enumerate() {
            if p < stage.max_depth() {
                return Some((s, p));
            }
            p -= stage.max_depth();
        }
        None
    }

    /// Global position of block `j` of stage `s`.
    pub fn position_of(&self, stage: usize, block: u32) -> u32 {
        self.stages[..stage]
            .iter()
            .map(Stage::max_depth)
            .sum::<u32>()
            + block
    }
}

/// FNV-1a, 64 bits.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The ron options used for every file qnas reads: `Some(..)` may be left out.
pub fn ron_options() -> ron::Options {
    ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
}

struct Validator {
    problems: Vec<Problem>,
    base: std::path::PathBuf,
}

impl Validator {
    fn err(&mut self, path: FieldPath, msg: impl Into<String>) {
        self.problems.push(Problem::new(path, msg));
    }

    fn err_help(&mut self, path: FieldPath, msg: impl Into<String>, help: impl Into<String>) {
        self.problems.push(Problem::new(path, msg).help(help));
    }

    /// A non-empty list of distinct positive integers, sorted ascending.
    fn positive_choices(&mut self, path: FieldPath, values: &[u32], what: &str) -> Vec<u32> {
        self.choices_up_to(path, values, what, u32::MAX)
    }

    /// [`Self::positive_choices`] of at most `max`.
    fn choices_up_to(&mut self, path: FieldPath, values: &[u32], what: &str, max: u32) -> Vec<u32> {
        if values.is_empty() {
            self.err_help(
                path.clone(),
                format!("the list of {what} choices is empty"),
                "give at least one choice",
            );
        }
        let mut seen = BTreeSet::new();
        for (i, &v) in values.iter().enumerate() {
            if v == 0 {
                self.err(path.index(i), format!("a {what} of 0 is not allowed"));
            } else if v > max {
                self.err(path.index(i), format!("a {what} of {v} is more than {max}"));
            } else if !seen.insert(v) {
                self.err(path.index(i), format!("{what} {v} is listed twice"));
            }
        }
        seen.into_iter().filter(|v| (1..=max).contains(v)).collect()
    }

    fn kernels(&mut self, path: FieldPath, values: &[u32]) -> Vec<u32> {
        let out = self.positive_choices(path.clone(), values, "kernel");
        for (i, &k) in values.iter().enumerate() {
            if k > 0 && k % 2 == 0 {
                self.err_help(
                    path.index(i),
                    format!("kernel size {k} is even"),
                    "kernel sizes must be odd (1, 3, 5, 7, ...) so that padding keeps the centre",
                );
            }
        }
        out
    }

    fn stride(&mut self, path: FieldPath, s: u32) {
        if s != 1 && s != 2 {
            self.err_help(
                path,
                format!("stride {s} is not allowed"),
                "expected 1 or 2",
            );
        }
    }

    fn format(&mut self, path: FieldPath, raw: RawFormat) -> Option<Format> {
        match Format::try_from(raw) {
            Ok(f) => Some(f),
            Err(e) => {
                self.err(path, e.to_string());
                None
            }
        }
    }

    fn formats(&mut self, path: FieldPath, raws: &[RawFormat], what: &str) -> Vec<Format> {
        if raws.is_empty() {
            self.err_help(
                path.clone(),
                format!("the list of {what} formats is empty"),
                "give at least one format, e.g. [Fp32]",
            );
        }
        let mut out: Vec<Format> = Vec::new();
        for (i, raw) in raws.iter().enumerate() {
            if let Some(f) = self.format(path.index(i), *raw) {
                if out.contains(&f) {
                    self.err(path.index(i), format!("format {f} is listed twice"));
                } else {
                    out.push(f);
                }
            }
        }
        out.sort_by_key(|f| (f.bits(), f.is_float(), *f));
        out
    }

    fn space(mut self, raw: RawSpace, default_name: &str) -> Result<Space, Vec<Problem>> {
        let root = FieldPath::root();
        if raw.version != SPACE_VERSION {
            self.err_help(
                root.field("version"),
                format!("unsupported version {}", raw.version),
                format!("this qnas reads version {SPACE_VERSION}"),
            );
        }
        let name = raw.name.clone().unwrap_or_else(|| default_name.to_string());
        if name.trim().is_empty() {
            self.err(root.field("name"), "the name is empty");
        }
        let ip = root.field("input");
        for (field, v) in [
            ("channels", raw.input.channels),
            ("height", raw.input.height),
            ("width", raw.input.width),
        ] {
            if v == 0 {
                self.err(ip.field(field), format!("input {field} must be at least 1"));
            }
        }
        let input = Input {
            channels: raw.input.channels,
            height: raw.input.height,
            width: raw.input.width,
        };
        if raw.classes < 2 {
            self.err(
                root.field("classes"),
                format!("a classifier needs at least 2 classes, got {}", raw.classes),
            );
        }

        // stem
        let sp = root.field("stem");
        let stem_widths = self.positive_choices(sp.field("width"), &raw.stem.width, "width");
        let stem_kernels = self.kernels(sp.field("kernel"), &raw.stem.kernel);
        self.stride(sp.field("stride"), raw.stem.stride);
        let pool = raw.stem.pool.map(|p| {
            let (max, kernel, stride) = match p {
                RawStemPool::MaxPool { kernel, stride } => (true, kernel, stride),
                RawStemPool::AvgPool { kernel, stride } => (false, kernel, stride),
            };
            let pp = sp.field("pool");
            if kernel == 0 {
                self.err(pp.field("kernel"), "a pooling window of 0 is not allowed");
            }
            if stride == 0 {
                self.err(pp.field("stride"), "a pooling stride of 0 is not allowed");
            }
            StemPool {
                max,
                kernel,
                stride,
            }
        });
        let stem = Stem {
            widths: stem_widths,
            kernels: stem_kernels,
            stride: raw.stem.stride,
            pool,
        };

        // stages
        let stp = root.field("stages");
        if raw.stages.is_empty() {
            self.err_help(
                stp.clone(),
                "the network has no stages",
                "give at least one stage",
            );
        }
        let mut stages = Vec::new();
        for (s, rs) in raw.stages.iter().enumerate() {
            let p = stp.index(s);
            let depths = self.choices_up_to(p.field("depth"), &rs.depth, "depth", MAX_DEPTH);
            let widths = self.positive_choices(p.field("width"), &rs.width, "width");
            let kernels = self.kernels(p.field("kernel"), &rs.kernel);
            self.stride(p.field("stride"), rs.stride);
            let expands = match (&rs.expand, rs.block.uses_expand()) {
                (None, true) => {
                    self.err_help(
                        p.field("block"),
                        format!("{:?} blocks need an `expand` list", rs.block),
                        "e.g. expand: [3.0, 6.0] for InvertedResidual, [0.25] for Bottleneck",
                    );
                    vec![1.0]
                }
                (Some(_), false) => {
                    self.err_help(
                        p.field("expand"),
                        format!("{:?} blocks have no expand ratio", rs.block),
                        "remove `expand`, or use Bottleneck or InvertedResidual",
                    );
                    vec![1.0]
                }
                (None, false) => vec![1.0],
                (Some(list), true) => {
                    let ep = p.field("expand");
                    if list.is_empty() {
                        self.err_help(
                            ep.clone(),
                            "the list of expand choices is empty",
                            "give at least one choice",
                        );
                    }
                    let mut out: Vec<f64> = Vec::new();
                    for (i, &e) in list.iter().enumerate() {
                        if !(e.is_finite() && e > 0.0 && e <= 64.0) {
                            self.err_help(
                                ep.index(i),
                                format!("expand ratio {e} is not allowed"),
                                "expected a positive ratio up to 64",
                            );
                        } else if out.contains(&e) {
                            self.err(ep.index(i), format!("expand ratio {e} is listed twice"));
                        } else {
                            out.push(e);
                        }
                    }
                    out.sort_by(f64::total_cmp);
                    out
                }
            };
            stages.push(Stage {
                block: rs.block,
                depths,
                widths,
                kernels,
                expands,
                stride: rs.stride,
            });
        }

        // head
        let hp = root.field("head");
        let conv_widths = if raw.head.conv_width.is_empty() {
            Vec::new()
        } else {
            self.positive_choices(hp.field("conv_width"), &raw.head.conv_width, "width")
        };
        if !(0.0..1.0).contains(&raw.head.dropout) {
            self.err_help(
                hp.field("dropout"),
                format!("dropout {} is not allowed", raw.head.dropout),
                "expected 0 <= dropout < 1",
            );
        }
        let head = Head {
            conv_widths,
            dropout: raw.head.dropout,
        };

        let mut space = Space {
            version: raw.version,
            name,
            input,
            classes: raw.classes,
            stem,
            stages,
            head,
            downsampling: None,
            quantization: Quantization {
                weights: vec![],
                activations: vec![],
                tie: TieMode::Layer,
                tie_weights_activations: false,
                pins: vec![],
                activation_range: ActivationRange::Max,
                weight_range: WeightRange::Max,
            },
            data: None,
            train: raw.train.clone(),
            search: raw.search.clone(),
        };
        let structure_ok = self.problems.is_empty();
        if let Some(d) = &raw.data {
            space.data = Some(crate::run::check_data(d, &self.base, &mut self.problems));
        }
        crate::run::check_train(&raw.train, &mut self.problems);
        crate::run::check_search(&raw.search, &mut self.problems);

        if let Some(ds) = &raw.downsampling {
            space.downsampling = self.downsampling(&space, ds, structure_ok);
        }
        if structure_ok {
            self.resolution(&space, &raw);
        }
        space.quantization = self.quantization(&space, &raw, structure_ok);

        if self.problems.is_empty() {
            Ok(space)
        } else {
            Err(self.problems)
        }
    }

    fn downsampling(
        &mut self,
        space: &Space,
        ds: &RawDownsampling,
        structure_ok: bool,
    ) -> Option<Downsampling> {
        let dp = FieldPath::root().field("downsampling");
        let cp = dp.field("configs");
        let total = space.max_blocks() as u32;
        let mut configs: Vec<Vec<u32>> = Vec::new();
        // checks one position; `path` points at it
        let check_pos = |this: &mut Validator, path: FieldPath, pos: u32| {
            if !structure_ok {
                return;
            }
            match space.block_at(pos) {
                None => this.err_help(
                    path,
                    format!("pooling position {pos} is outside the network"),
                    format!(
                        "the network has {total} blocks at its largest depth: positions 0..={}",
                        total.saturating_sub(1)
                    ),
                ),
                Some((s, j)) => {
                    let stage = &space.stages[s];
                    if j >= stage.min_depth() {
                        this.err_help(
                            path,
                            format!("pooling position {pos} is block {j} of stage {s}, which depth {} leaves out", stage.min_depth()),
                            "a pooling position must be a block that every depth choice keeps",
                        );
                    } else if j == 0 && stage.stride == 2 {
                        this.err_help(path, format!("pooling position {pos} is the first block of stage {s}, which already has stride 2"), "choose another position or set the stage's stride to 1");
                    }
                }
            }
        };
        match &ds.configs {
            RawPoolConfigs::Choose { count, from } => {
                let fp = cp.field("from");
                if from.is_empty() {
                    self.err(fp.clone(), "the list of candidate positions is empty");
                }
                let mut cands = BTreeSet::new();
                for (i, &pos) in from.iter().enumerate() {
                    check_pos(self, fp.index(i), pos);
                    if !cands.insert(pos) {
                        self.err(fp.index(i), format!("position {pos} is listed twice"));
                    }
                }
                let n = cands.len() as u32;
                if *count == 0 || *count > n {
                    self.err_help(
                        cp.field("count"),
                        format!("cannot choose {count} of {n} positions"),
                        format!("expected 1..={n}"),
                    );
                } else if binomial(n, *count) > MAX_POOL_CONFIGS as f64 {
                    self.err(
                        cp.clone(),
                        format!(
                            "{} pooling configurations is more than the {MAX_POOL_CONFIGS} allowed",
                            binomial(n, *count)
                        ),
                    );
                } else {
                    let cands: Vec<u32> = cands.into_iter().collect();
                    combinations(&cands, *count as usize, &mut configs);
                }
            }
            RawPoolConfigs::List(list) => {
                if list.is_empty() {
                    self.err(cp.clone(), "the list of pooling configurations is empty");
                }
                if list.len() > MAX_POOL_CONFIGS {
                    self.err(
                        cp.clone(),
                        format!(
                            "{} pooling configurations is more than the {MAX_POOL_CONFIGS} allowed",
                            list.len()
                        ),
                    );
                }
                for (c, config) in list.iter().enumerate() {
                    let mut set = BTreeSet::new();
                    for (i, &pos) in config.iter().enumerate() {
                        check_pos(self, cp.index(c).index(i), pos);
                        if !set.insert(pos) {
                            self.err(
                                cp.index(c).index(i),
                                format!("position {pos} is listed twice in one configuration"),
                            );
                        }
                    }
                    let sorted: Vec<u32> = set.into_iter().collect();
                    if configs.contains(&sorted) {
                        self.err(cp.index(c), "this configuration is listed twice");
                    } else {
                        configs.push(sorted);
                    }
                }
            }
        }
        let op = dp.field("ops");
        if ds.ops.is_empty() {
            self.err_help(
                op.clone(),
                "the list of downsampling ops is empty",
                "e.g. [StridedConv], [MaxPool, AvgPool]",
            );
        }
        let mut ops = Vec::new();
        for (i, o) in ds.ops.iter().enumerate() {
            if ops.contains(o) {
                self.err(op.index(i), format!("{o:?} is listed twice"));
            } else {
                ops.push(*o);
            }
        }
        Some(Downsampling { configs, ops })
    }

    /// Every downsampling step must find a feature map of at least its stride.
    fn resolution(&mut self, space: &Space, raw: &RawSpace) {
        let root = FieldPath::root();
        let pool_steps: Vec<&Vec<u32>> = match &space.downsampling {
            Some(d) => d.configs.iter().collect(),
            None => Vec::new(),
        };
        let empty = Vec::new();
        let configs: Vec<&Vec<u32>> = if pool_steps.is_empty() {
            vec![&empty]
        } else {
            pool_steps
        };
        for config in configs {
            let mut h = space.input.height.min(space.input.width);
            let fail = |h: u32, stride: u32, path: FieldPath, this: &mut Validator| -> bool {
                if h < stride {
                    this.err_help(
                        path,
                        format!("more downsampling steps than the {}x{} input allows: a stride-{stride} step meets a {h}x{h} feature map", space.input.height, space.input.width),
                        "remove a stride-2 step or use a larger input",
                    );
                    return true;
                }
                false
            };
            if fail(
                h,
                space.stem.stride,
                root.field("stem").field("stride"),
                self,
            ) {
                return;
            }
            h = (h - 1) / space.stem.stride + 1;
            if let Some(p) = space.stem.pool {
                if fail(h, p.stride, root.field("stem").field("pool"), self) {
                    return;
                }
                if h + 2 * (p.kernel / 2) < p.kernel {
                    self.err(
                        root.field("stem").field("pool"),
                        format!(
                            "a {}x{} pooling window does not fit a {h}x{h} feature map",
                            p.kernel, p.kernel
                        ),
                    );
                    return;
                }
                h = (h + 2 * (p.kernel / 2) - p.kernel) / p.stride + 1;
            }
            for (s, stage) in space.stages.iter().enumerate() {
                if fail(
                    h,
                    stage.stride,
                    root.field("stages").index(s).field("stride"),
                    self,
                ) {
                    return;
                }
                h = (h - 1) / stage.stride + 1;
                for j in 0..stage.min_depth() {
                    if config.contains(&space.position_of(s, j)) {
                        let path = if raw.downsampling.is_some() {
                            root.field("downsampling")
                        } else {
                            root.clone()
                        };
                        if fail(h, 2, path, self) {
                            return;
                        }
                        h /= 2;
                    }
                }
            }
        }
    }

    fn quantization(&mut self, space: &Space, raw: &RawSpace, structure_ok: bool) -> Quantization {
        let qp = FieldPath::root().field("quantization");
        let rq = &raw.quantization;
        let weights = self.formats(qp.field("weights"), &rq.weights, "weight");
        let activations = self.formats(qp.field("activations"), &rq.activations, "activation");
        if rq.tie_weights_activations
            && weights != activations
            && !weights.is_empty()
            && !activations.is_empty()
        {
            self.err_help(
                qp.field("activations"),
                "with tie_weights_activations one decision sets both formats, but the weight and activation lists differ",
                format!("list the same formats in both, e.g. [{}]", weights.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(", ")),
            );
        }
        let names: Vec<String> = if structure_ok {
            names::all_layer_names(space)
        } else {
            Vec::new()
        };
        let mut pins: Vec<Pin> = Vec::new();
        for (i, rp) in rq.pins.iter().enumerate() {
            let pp = qp.field("pins").index(i);
            let w = self.format(pp.field("weights"), rp.weights);
            let a = self.format(pp.field("activations"), rp.activations);
            let layer = match &rp.layer {
                LayerRef::First => names::STEM.to_string(),
                LayerRef::Last => names::FC.to_string(),
                LayerRef::Named(n) => n.clone(),
            };
            if structure_ok && !names.contains(&layer) {
                self.err_help(
                    pp.field("layer"),
                    format!("there is no layer named `{layer}`"),
                    format!("layers: {}", names.join(", ")),
                );
                continue;
            }
            if layer.ends_with(".shortcut") {
                self.err_help(
                    pp.field("layer"),
                    format!("`{layer}` cannot be pinned on its own"),
                    "a shortcut conv shares its block's first conv's formats; pin that conv",
                );
                continue;
            }
            let (Some(w), Some(a)) = (w, a) else { continue };
            if rq.tie_weights_activations && w != a {
                self.err_help(
                    pp.clone(),
                    format!("pin of `{layer}` sets weights {w} and activations {a}, which contradicts tie_weights_activations"),
                    "with tied weights and activations a pin must give both the same format",
                );
                continue;
            }
            if let Some(prev) = pins.iter().find(|p| p.layer == layer) {
                if prev.weights != w || prev.activations != a {
                    self.err(
                        pp.clone(),
                        format!(
                            "`{layer}` is pinned twice, to {}/{} and to {w}/{a}",
                            prev.weights, prev.activations
                        ),
                    );
                } else {
                    self.err(pp.clone(), format!("`{layer}` is pinned twice"));
                }
                continue;
            }
            pins.push(Pin {
                layer,
                weights: w,
                activations: a,
            });
        }
        Quantization {
            weights,
            activations,
            tie: rq.tie,
            tie_weights_activations: rq.tie_weights_activations,
            pins,
            activation_range: self.activation_range(&qp, rq.activation_range),
            weight_range: rq.weight_range,
        }
    }

    fn activation_range(&mut self, qp: &FieldPath, r: ActivationRange) -> ActivationRange {
        if let ActivationRange::Percentile(p) = r
            && !(p > 0.0 && p <= 100.0)
        {
            self.err_help(
                qp.field("activation_range"),
                format!("percentile {p}"),
                "expected a percentile in (0, 100], e.g. Percentile(99.9)".to_string(),
            );
        }
        r
    }
}

fn binomial(n: u32, k: u32) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * f64::from(n - i) / f64::from(i + 1))
}

fn combinations(items: &[u32], k: usize, out: &mut Vec<Vec<u32>>) {
    fn rec(items: &[u32], k: usize, start: usize, cur: &mut Vec<u32>, out: &mut Vec<Vec<u32>>) {
        if cur.len() == k {
            out.push(cur.clone());
            return;
        }
        for i in start..items.len() {
            cur.push(items[i]);
            rec(items, k, i + 1, cur, out);
            cur.pop();
        }
    }
    rec(items, k, 0, &mut Vec::new(), out);
}
