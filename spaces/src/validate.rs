//! `Space::validate`: whether an [`Arch`] is a member of its space (every choice one of the
//! space's, and formats for exactly the decisions its architecture activates).

use crate::arch::{Arch, ArchError};
use crate::error::Problem;
use crate::locate::FieldPath;
use crate::plan;
use crate::space::Space;

impl Space {
    /// Checks that `arch` is a point of this space: every choice is one the space offers, the
    /// formats cover exactly the active decisions, tied formats agree.
    pub fn validate(&self, arch: &Arch) -> Result<(), ArchError> {
        let mut problems = Vec::new();
        let root = FieldPath::root();
        let mut bad = |path: FieldPath, msg: String| problems.push(Problem::new(path, msg));
        let list = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");

        if !self.stem.widths.contains(&arch.stem.width) {
            bad(
                root.field("stem").field("width"),
                format!(
                    "stem width {} is not a choice ({})",
                    arch.stem.width,
                    list(&self.stem.widths)
                ),
            );
        }
        if !self.stem.kernels.contains(&arch.stem.kernel) {
            bad(
                root.field("stem").field("kernel"),
                format!(
                    "stem kernel {} is not a choice ({})",
                    arch.stem.kernel,
                    list(&self.stem.kernels)
                ),
            );
        }
        if arch.stages.len() != self.stages.len() {
            bad(
                root.field("stages"),
                format!(
                    "{} stages given, the space has {}",
                    arch.stages.len(),
                    self.stages.len()
                ),
            );
        }
        for (s, (sa, st)) in arch.stages.iter().zip(&self.stages).enumerate() {
            let p = root.field("stages").index(s);
            if !st.widths.contains(&sa.width) {
                bad(
                    p.field("width"),
                    format!("width {} is not a choice ({})", sa.width, list(&st.widths)),
                );
            }
            let depth = sa.blocks.len() as u32;
            if !st.depths.contains(&depth) {
                bad(
                    p.field("blocks"),
                    format!(
                        "{depth} blocks given, depth choices are {}",
                        list(&st.depths)
                    ),
                );
            }
            for (j, b) in sa.blocks.iter().enumerate() {
                let bp = p.field("blocks").index(j);
                if !st.kernels.contains(&b.kernel) {
                    bad(
                        bp.field("kernel"),
                        format!(
                            "kernel {} is not a choice ({})",
                            b.kernel,
                            list(&st.kernels)
                        ),
                    );
                }
                if !st.expands.contains(&b.expand) {
                    bad(
                        bp.field("expand"),
                        format!("expand {} is not a choice ({:?})", b.expand, st.expands),
                    );
                }
            }
        }
        match (arch.head.conv_width, self.head.conv_widths.is_empty()) {
            (None, true) => {}
            (Some(w), false) if self.head.conv_widths.contains(&w) => {}
            (Some(w), false) => bad(
                root.field("head").field("conv_width"),
                format!(
                    "head conv width {w} is not a choice ({})",
                    list(&self.head.conv_widths)
                ),
            ),
            (Some(_), true) => bad(
                root.field("head").field("conv_width"),
                "the space has no head conv".into(),
            ),
            (None, false) => bad(
                root.field("head").field("conv_width"),
                format!(
                    "a head conv width is required ({})",
                    list(&self.head.conv_widths)
                ),
            ),
        }
        match (&arch.pooling, &self.downsampling) {
            (None, None) => {}
            (Some(_), None) => bad(
                root.field("pooling"),
                "the space has no searchable downsampling".into(),
            ),
            (None, Some(_)) => bad(
                root.field("pooling"),
                "a pooling configuration is required".into(),
            ),
            (Some(pa), Some(ds)) => {
                if !ds.configs.contains(&pa.positions) {
                    bad(
                        root.field("pooling").field("positions"),
                        format!(
                            "positions {:?} are not one of the space's configurations",
                            pa.positions
                        ),
                    );
                }
                if !ds.ops.contains(&pa.op) {
                    bad(
                        root.field("pooling").field("op"),
                        format!("{:?} is not one of {:?}", pa.op, ds.ops),
                    );
                }
            }
        }
        if problems.is_empty() {
            // formats: exactly the active groups, each a valid choice
            let q = &self.quantization;
            let active = plan::active_groups(self, arch);
            let fp = root.field("formats");
            for g in &active {
                match arch.formats.get(g) {
                    None => problems.push(Problem::new(
                        fp.clone(),
                        format!("no format for decision `{g}`"),
                    )),
                    Some(pair) => {
                        if !q.weights.contains(&pair.weights) {
                            problems.push(Problem::new(
                                fp.key(g).field("weights"),
                                format!("weight format {} is not a choice", pair.weights),
                            ));
                        }
                        if !q.activations.contains(&pair.activations) {
                            problems.push(Problem::new(
                                fp.key(g).field("activations"),
                                format!("activation format {} is not a choice", pair.activations),
                            ));
                        }
                        if q.tie_weights_activations && pair.weights != pair.activations {
                            problems.push(Problem::new(
                                fp.key(g),
                                format!(
                                    "weights {} and activations {} differ, but the space ties them",
                                    pair.weights, pair.activations
                                ),
                            ));
                        }
                    }
                }
            }
            for g in arch.formats.keys() {
                if !active.contains(g) {
                    problems.push(Problem::new(
                        fp.key(g),
                        format!("`{g}` is not an active format decision of this arch"),
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ArchError {
                space: self.name.clone(),
                problems,
            })
        }
    }
}
