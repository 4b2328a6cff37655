//! The formats of the front members as a heat map (`formats.svg`, `formats.png`): one row per
//! format decision of the space (a layer, block, stage or `all`, following its `tie`), in
//! network order, one column per front member, cheapest first (column k is row k of
//! `pareto.csv`), in two panels, weights and activations. A cell's colour is its format:
//! integers in blues and floating-point formats in oranges, darker with more bits; the bits are
//! written in cells large enough, and the legend names each format.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use spaces::{Format, FormatPair, Space};

use super::{Figure, GRID, INK, PlotError, SUBTLE, draw_title, short_bitops, text};
use crate::row::Row;

/// A decision inactive in a member (a block it does not have).
pub const INACTIVE: RGBColor = RGBColor(0xf2, 0xf2, 0xf2);

/// The formats of a front, decision by decision.
#[derive(Clone, Debug, PartialEq)]
pub struct FormatGrid {
    /// The format decisions (rows), in network order.
    pub groups: Vec<String>,
    /// The members (columns), cheapest first.
    pub columns: Vec<FormatColumn>,
}

/// One member's column.
#[derive(Clone, Debug, PartialEq)]
pub struct FormatColumn {
    /// Its BitOps.
    pub bitops: u64,
    /// Its validation accuracy.
    pub accuracy: f64,
    /// Its formats, one per group of the grid; `None` where the decision is inactive.
    pub formats: Vec<Option<FormatPair>>,
}

impl FormatGrid {
    /// The grid of `front`: the space's format decisions that any member has (network order;
    /// names the space does not list, if any, after them), members sorted by BitOps.
    pub fn of(space: &Space, front: &[Row]) -> FormatGrid {
        let held = |g: &String| front.iter().any(|r| r.arch.formats.contains_key(g));
        let mut groups: Vec<String> = spaces::plan::all_groups(space)
            .into_iter()
            .filter(held)
            .collect();
        for r in front {
            for g in r.arch.formats.keys() {
                if !groups.contains(g) {
                    groups.push(g.clone());
                }
            }
        }
        let mut members: Vec<&Row> = front.iter().collect();
        members.sort_by_key(|r| r.bitops);
        let columns = members
            .into_iter()
            .map(|r| FormatColumn {
                bitops: r.bitops,
                accuracy: r.accuracy,
                formats: groups
                    .iter()
                    .map(|g| r.arch.formats.get(g).copied())
                    .collect(),
            })
            .collect();
        FormatGrid { groups, columns }
    }

    /// Every format of the grid, integers first, then by bits and name.
    pub fn formats(&self) -> Vec<Format> {
        let mut out: Vec<Format> = self
            .columns
            .iter()
            .flat_map(|c| c.formats.iter().flatten())
            .flat_map(|p| [p.weights, p.activations])
            .collect();
        out.sort_by_key(|f| (f.is_float(), f.bits(), f.to_string()));
        out.dedup();
        out
    }

    /// Whether some decision is inactive in some member.
    fn has_inactive(&self) -> bool {
        self.columns
            .iter()
            .any(|c| c.formats.iter().any(Option::is_none))
    }
}

/// Colour ramps, light to dark: integers (blues) and floating-point formats (oranges).
const INT_RAMP: [RGBColor; 4] = [
    RGBColor(0xc6, 0xdb, 0xef),
    RGBColor(0x6b, 0xae, 0xd6),
    RGBColor(0x21, 0x71, 0xb5),
    RGBColor(0x08, 0x30, 0x6b),
];
const FLOAT_RAMP: [RGBColor; 4] = [
    RGBColor(0xfd, 0xd0, 0xa2),
    RGBColor(0xfd, 0x8d, 0x3c),
    RGBColor(0xd9, 0x48, 0x01),
    RGBColor(0x7f, 0x27, 0x04),
];

/// A format's colour: its family's ramp at log2(bits), 2 bits lightest and 32 darkest.
pub fn format_color(f: Format) -> RGBColor {
    let ramp = if f.is_float() { FLOAT_RAMP } else { INT_RAMP };
    let t = ((f64::from(f.bits().max(1)).log2() - 1.0) / 4.0).clamp(0.0, 1.0) * 3.0;
    let i = (t.floor() as usize).min(2);
    let u = t - i as f64;
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * u).round() as u8;
    let (a, b) = (ramp[i], ramp[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Ink that reads on `c`: white on dark colours.
fn ink_on(c: RGBColor) -> RGBColor {
    let luma = 0.299 * f64::from(c.0) + 0.587 * f64::from(c.1) + 0.114 * f64::from(c.2);
    if luma < 140.0 { WHITE } else { INK }
}

/// Where the cells go, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Width and height of the figure.
    pub size: (u32, u32),
    /// Width and height of a cell.
    pub cell: (i32, i32),
    /// Top-left corner of the weights panel's first cell.
    pub weights: (i32, i32),
    /// Top-left corner of the activations panel's first cell.
    pub activations: (i32, i32),
    /// Left edge of the legend.
    pub legend_x: i32,
}

/// Width of the decision names' column.
const NAMES: i32 = 120;
/// Width of the legend's column.
const LEGEND: i32 = 150;
/// Width of a panel's cells together, at most.
const PANEL: i32 = 330;
/// Gap between the panels.
const GAP: i32 = 24;
/// Top of the panels (below title, subtitle and panel titles).
const TOP: i32 = 84;

impl Layout {
    /// The layout for `rows` decisions and `cols` members.
    pub fn new(rows: usize, cols: usize) -> Layout {
        let (rows, cols) = (rows.max(1) as i32, cols.max(1) as i32);
        let w = (PANEL / cols).clamp(2, 40);
        let h = if rows <= 16 { 26 } else { (520 / rows).max(8) };
        let weights = (NAMES + 16, TOP);
        let activations = (weights.0 + cols * w + GAP, TOP);
        let legend_x = activations.0 + cols * w + 30;
        let width = (legend_x + LEGEND).max(640);
        let height = (TOP + rows * h + 56).max(240);
        Layout {
            size: (width as u32, height as u32),
            cell: (w, h),
            weights,
            activations,
            legend_x,
        }
    }

    /// Top-left corner of the cell of decision `row` and member `col` in a panel at `origin`.
    pub fn cell_at(&self, origin: (i32, i32), row: usize, col: usize) -> (i32, i32) {
        (
            origin.0 + col as i32 * self.cell.0,
            origin.1 + row as i32 * self.cell.1,
        )
    }
}

/// The heat map of a front's formats.
#[derive(Clone, Copy, Debug)]
pub struct FormatsPlot<'a> {
    /// The formats.
    pub grid: &'a FormatGrid,
    /// The title.
    pub title: &'a str,
}

impl FormatsPlot<'_> {
    /// Where the cells go.
    pub fn layout(&self) -> Layout {
        Layout::new(self.grid.groups.len(), self.grid.columns.len())
    }

    /// One panel: its title, the cells of `side` (weights or activations) and the member
    /// numbers under it.
    fn panel<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        origin: (i32, i32),
        name: &str,
        side: fn(&FormatPair) -> Format,
    ) -> Result<(), PlotError> {
        let l = self.layout();
        let (w, h) = l.cell;
        root.draw(&Text::new(name, (origin.0, origin.1 - 20), text(15.0, INK)))?;
        let show_bits = w >= 18 && h >= 14;
        for (j, col) in self.grid.columns.iter().enumerate() {
            for (i, f) in col.formats.iter().enumerate() {
                let (x, y) = l.cell_at(origin, i, j);
                let color = f.as_ref().map_or(INACTIVE, |p| format_color(side(p)));
                root.draw(&Rectangle::new([(x, y), (x + w, y + h)], color.filled()))?;
                if show_bits && let Some(p) = f {
                    let style = text(12.0, ink_on(color)).pos(Pos::new(HPos::Center, VPos::Center));
                    let bits = side(p).bits().to_string();
                    root.draw(&Text::new(bits, (x + w / 2, y + h / 2), style))?;
                }
            }
        }
        // white lines between the cells, a frame around them
        let (cols, rows) = (
            self.grid.columns.len() as i32,
            self.grid.groups.len() as i32,
        );
        let (x1, y1) = (origin.0 + cols * w, origin.1 + rows * h);
        for j in 1..cols {
            let x = origin.0 + j * w;
            root.draw(&PathElement::new(vec![(x, origin.1), (x, y1)], WHITE))?;
        }
        for i in 1..rows {
            let y = origin.1 + i * h;
            root.draw(&PathElement::new(vec![(origin.0, y), (x1, y)], WHITE))?;
        }
        root.draw(&Rectangle::new([origin, (x1, y1)], GRID))?;
        // member numbers: every one where they fit, else every k-th
        let every = (24 / w.max(1)).max(1) as usize;
        let style = text(12.0, SUBTLE).pos(Pos::new(HPos::Center, VPos::Top));
        for j in (0..self.grid.columns.len()).filter(|j| (j + 1) % every == 0 || *j == 0) {
            let x = origin.0 + j as i32 * w + w / 2;
            root.draw(&Text::new((j + 1).to_string(), (x, y1 + 4), style.clone()))?;
        }
        Ok(())
    }
}

impl Figure for FormatsPlot<'_> {
    fn size(&self) -> (u32, u32) {
        self.layout().size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        root.fill(&WHITE)?;
        let g = self.grid;
        let l = self.layout();
        let subtitle = match (g.columns.first(), g.columns.last()) {
            (Some(a), Some(b)) => format!(
                "{} front members by BitOps, {} to {} (column k is row k of pareto.csv)",
                g.columns.len(),
                short_bitops(a.bitops),
                short_bitops(b.bitops)
            ),
            _ => "no front member".to_string(),
        };
        draw_title(root, self.title, &subtitle, 16)?;
        let right = Pos::new(HPos::Right, VPos::Center);
        for (i, name) in g.groups.iter().enumerate() {
            let y = l.weights.1 + i as i32 * l.cell.1 + l.cell.1 / 2;
            let size = if l.cell.1 >= 14 { 13.0 } else { 10.0 };
            root.draw(&Text::new(
                name.as_str(),
                (l.weights.0 - 8, y),
                text(size, INK).pos(right),
            ))?;
        }
        self.panel(root, l.weights, "weights", |p| p.weights)?;
        self.panel(root, l.activations, "activations", |p| p.activations)?;
        let bottom = l.weights.1 + g.groups.len().max(1) as i32 * l.cell.1;
        root.draw(&Text::new(
            "front member (cheapest first)",
            (l.weights.0, bottom + 24),
            text(13.0, SUBTLE),
        ))?;

        // the legend: a swatch per format
        let mut y = l.weights.1;
        root.draw(&Text::new(
            "format (bits)",
            (l.legend_x, y - 20),
            text(14.0, INK),
        ))?;
        let entry = |color: RGBColor, label: String, y: i32| {
            root.draw(&Rectangle::new(
                [(l.legend_x, y), (l.legend_x + 16, y + 14)],
                color.filled(),
            ))?;
            root.draw(&Text::new(label, (l.legend_x + 22, y), text(13.0, INK)))
        };
        for f in g.formats() {
            entry(format_color(f), format!("{f} ({})", f.bits()), y)?;
            y += 20;
        }
        if g.has_inactive() {
            entry(INACTIVE, "inactive".to_string(), y)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    use spaces::Arch;

    use super::super::render;
    use super::super::testing::{self, check_png, parse, pixel, texts};
    use super::*;

    fn space() -> Space {
        testing::preset("mnist")
    }

    fn row(arch: Arch, accuracy: f64, bitops: u64) -> Row {
        testing::row("random", arch, accuracy, bitops)
    }

    /// Three members of the mnist space: the largest at int8/e4m3, the smallest at int2/int4
    /// (one block per stage: s0.b1 and s1.b1 inactive), the largest at fp32.
    fn front(space: &Space) -> Vec<Row> {
        let big = space.largest();
        let mixed = space
            .with_uniform_formats(&big, Format::Int(8), Format::E4M3)
            .unwrap();
        let small = space
            .with_uniform_formats(&space.smallest(), Format::Int(2), Format::Int(4))
            .unwrap();
        let full = space
            .with_uniform_formats(&big, Format::FP32, Format::FP32)
            .unwrap();
        // given out of BitOps order: the grid sorts them
        vec![
            row(mixed, 0.97, 2_000_000),
            row(small, 0.8, 100_000),
            row(full, 0.98, 90_000_000),
        ]
    }

    #[test]
    fn the_grid_has_a_row_per_decision_in_network_order_and_members_by_bitops() {
        let space = space();
        let grid = FormatGrid::of(&space, &front(&space));
        assert_eq!(
            grid.groups,
            ["stem", "s0.b0", "s0.b1", "s1.b0", "s1.b1", "head"]
        );
        let bitops: Vec<u64> = grid.columns.iter().map(|c| c.bitops).collect();
        assert_eq!(bitops, [100_000, 2_000_000, 90_000_000]);
        let small = &grid.columns[0].formats;
        assert_eq!(small[0].unwrap().weights, Format::Int(2));
        assert_eq!(small[0].unwrap().activations, Format::Int(4));
        assert_eq!((small[2], small[4]), (None, None));
        assert_eq!(
            grid.columns[1].formats[2].unwrap().activations,
            Format::E4M3
        );
        assert_eq!(
            grid.formats(),
            [
                Format::Int(2),
                Format::Int(4),
                Format::Int(8),
                Format::E4M3,
                Format::FP32
            ]
        );
        assert!(grid.has_inactive());
        assert_eq!(FormatGrid::of(&space, &[]).groups.len(), 0);
    }

    #[test]
    fn colours_darken_with_bits_and_tell_integers_from_floats() {
        let luma = |c: RGBColor| u32::from(c.0) + u32::from(c.1) + u32::from(c.2);
        let ints: Vec<u32> = [2, 4, 8, 16]
            .iter()
            .map(|&b| luma(format_color(Format::Int(b))))
            .collect();
        assert!(ints.windows(2).all(|w| w[0] > w[1]), "{ints:?}");
        let floats =
            [Format::E2M1, Format::E4M3, Format::BF16, Format::FP32].map(|f| luma(format_color(f)));
        assert!(floats.windows(2).all(|w| w[0] > w[1]), "{floats:?}");
        assert_eq!(format_color(Format::Int(2)), INT_RAMP[0]);
        assert_eq!(format_color(Format::FP32), FLOAT_RAMP[3]);
        // blue for integers, orange for floats at the same width
        let (i, f) = (format_color(Format::Int(8)), format_color(Format::E4M3));
        assert!(i.2 > i.0 && f.0 > f.2);
    }

    #[test]
    fn every_cell_has_its_formats_colour_in_both_panels() {
        let space = space();
        let grid = FormatGrid::of(&space, &front(&space));
        let plot = FormatsPlot {
            grid: &grid,
            title: "mnist: formats of the front",
        };
        let l = plot.layout();
        let r = render(&plot).unwrap();
        let svg = parse(&r.svg);
        let rgb = check_png(&r, l.size);
        let (w, h) = l.cell;
        let cells = |origin: (i32, i32)| {
            svg.iter()
                .filter(|e| {
                    e.tag == "rect"
                        && e.num("width") == f64::from(w)
                        && e.num("height") == f64::from(h)
                })
                .filter(|e| {
                    let (x, y) = (e.num("x") as i32, e.num("y") as i32);
                    x >= origin.0 && y >= origin.1 && x < origin.0 + 3 * w && y < origin.1 + 6 * h
                })
                .count()
        };
        assert_eq!(cells(l.weights), 6 * 3);
        assert_eq!(cells(l.activations), 6 * 3);
        for (origin, side) in [
            (
                l.weights,
                (|p: &FormatPair| p.weights) as fn(&FormatPair) -> Format,
            ),
            (l.activations, |p: &FormatPair| p.activations),
        ] {
            for (j, col) in grid.columns.iter().enumerate() {
                for (i, f) in col.formats.iter().enumerate() {
                    let expected = f.as_ref().map_or(INACTIVE, |p| format_color(side(p)));
                    let (x, y) = l.cell_at(origin, i, j);
                    // a corner inside the cell, away from the bits written in its middle
                    assert_eq!(pixel(&rgb, l.size.0, (x + 2, y + 2)), expected, "{i} {j}");
                    let hex = format!("#{:02X}{:02X}{:02X}", expected.0, expected.1, expected.2);
                    let rect = svg.iter().find(|e| {
                        e.tag == "rect"
                            && e.num("x") as i32 == x
                            && e.num("y") as i32 == y
                            && e.num("width") == f64::from(w)
                    });
                    assert_eq!(rect.map(|e| e.attrs["fill"].clone()), Some(hex), "{i} {j}");
                }
            }
        }
        let words = texts(&svg);
        for w in [
            "weights",
            "activations",
            "stem",
            "s1.b1",
            "head",
            "int2 (2)",
            "e4m3 (8)",
            "fp32 (32)",
            "inactive",
            "1",
            "3",
            "32",
        ] {
            assert!(words.iter().any(|t| t == w), "{w} not in {words:?}");
        }
        assert!(
            words
                .iter()
                .any(|t| t.starts_with("3 front members by BitOps, 1.0e5 to 9.0e7"))
        );
    }

    #[test]
    fn layouts_fit_many_members_and_decisions() {
        let l = Layout::new(40, 80);
        assert_eq!(l.cell, (4, 13));
        assert!(l.activations.0 + 80 * 4 < l.legend_x);
        assert!(l.size.0 as i32 >= l.legend_x + LEGEND);
        assert!(l.size.1 as i32 >= TOP + 40 * 13 + 40);
        let empty = render(&FormatsPlot {
            grid: &FormatGrid {
                groups: Vec::new(),
                columns: Vec::new(),
            },
            title: "none",
        })
        .unwrap();
        assert!(
            texts(&parse(&empty.svg))
                .iter()
                .any(|t| t == "no front member")
        );
    }
}
