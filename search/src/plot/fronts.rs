//! An experiment's plot (`fronts.svg`, `fronts.png`): each search's front (its own members)
//! as a coloured step line with its members, the uniform baselines' front as a dashed black
//! step line with squares, accuracy against log10 BitOps, and a legend to the right.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::{
    Axis, Figure, INK, PALETTE, PlotError, chart, decade_label, draw_title, log_bitops, mesh,
    percent_with, step_line, text,
};
use crate::row::Row;

/// Width and height in pixels.
pub const SIZE: (u32, u32) = (880, 520);
/// Width of the legend's column at the right.
const LEGEND: u32 = 230;
/// The uniform baselines' colour.
pub const UNIFORM: RGBColor = RGBColor(0x22, 0x22, 0x22);

/// The fronts of an experiment's searches.
#[derive(Clone, Copy, Debug)]
pub struct FrontsPlot<'a> {
    /// Each search's label and front.
    pub series: &'a [(String, Vec<Row>)],
    /// The uniform baselines' front.
    pub uniform: &'a [Row],
    /// The title.
    pub title: &'a str,
}

/// The colour of series `i`.
pub fn series_color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// `(log10 BitOps, accuracy)` of the rows with a finite accuracy, cheapest first.
fn points(rows: &[Row]) -> Vec<(f64, f64)> {
    let mut kept: Vec<&Row> = rows.iter().filter(|r| r.accuracy.is_finite()).collect();
    kept.sort_by_key(|r| r.bitops);
    kept.iter()
        .map(|r| (log_bitops(r.bitops), r.accuracy))
        .collect()
}

impl Figure for FrontsPlot<'_> {
    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        root.fill(&WHITE)?;
        draw_title(root, self.title, "", 74)?;
        let all = || {
            self.series
                .iter()
                .flat_map(|(_, r)| r.iter())
                .chain(self.uniform)
                .filter(|r| r.accuracy.is_finite())
        };
        let x = Axis::bitops(all().map(|r| r.bitops));
        let lowest = all().map(|r| r.accuracy).fold(1.0, f64::min);
        let y = Axis::accuracy(lowest.min(0.96), 0.02);
        let (left, right) = root.split_horizontally(SIZE.0 - LEGEND);
        let mut c = chart(&left, (&x, &y), (44, 62), (42, 16))?;
        mesh(
            &mut c,
            ("BitOps (log scale)", "validation accuracy"),
            &|v| decade_label(*v),
            &percent_with(y.spacing()),
        )?;
        let mut legend: Vec<(String, RGBColor, bool)> = Vec::new();
        for (i, (label, rows)) in self.series.iter().enumerate() {
            let color = series_color(i);
            let pts = points(rows);
            c.draw_series(std::iter::once(PathElement::new(
                step_line(&pts),
                color.stroke_width(2),
            )))?;
            c.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
            legend.push((label.clone(), color, false));
        }
        if !self.uniform.is_empty() {
            let pts = points(self.uniform);
            c.draw_series(std::iter::once(DashedPathElement::new(
                step_line(&pts),
                5,
                3,
                UNIFORM.stroke_width(1),
            )))?;
            c.draw_series(pts.iter().map(|&p| {
                EmptyElement::at(p) + Rectangle::new([(-4, -4), (4, 4)], UNIFORM.filled())
            }))?;
            legend.push(("uniform baselines".into(), UNIFORM, true));
        }
        for (i, (label, color, square)) in legend.iter().enumerate() {
            let (x, y) = (14, 52 + 24 * i as i32);
            if *square {
                right.draw(&Rectangle::new(
                    [(x - 4, y - 4), (x + 4, y + 4)],
                    color.filled(),
                ))?;
            } else {
                right.draw(&Circle::new((x, y), 4, color.filled()))?;
            }
            let style = text(14.0, INK).pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Left,
                plotters::style::text_anchor::VPos::Center,
            ));
            right.draw(&Text::new(label.as_str(), (x + 12, y), style))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    use super::super::render;
    use super::super::testing::{self, centres, check_png, of, parse, pixel, texts};
    use super::*;

    fn row(accuracy: f64, bitops: u64) -> Row {
        testing::row(
            "nsga2",
            testing::preset("digits").largest(),
            accuracy,
            bitops,
        )
    }

    #[test]
    fn each_front_is_a_step_line_through_its_members_with_a_legend() {
        let series = vec![
            (
                "nsga2 (seed 0)".to_string(),
                vec![row(0.95, 9_000_000), row(0.9, 2_000_000), row(f64::NAN, 1)],
            ),
            (
                "random (seed 0)".to_string(),
                vec![
                    row(0.85, 1_500_000),
                    row(0.93, 8_000_000),
                    row(0.96, 30_000_000),
                ],
            ),
        ];
        let uniform = vec![row(0.97, 60_000_000), row(0.8, 3_000_000)];
        let r = render(&FrontsPlot {
            series: &series,
            uniform: &uniform,
            title: "mixed-vs-uniform <&>",
        })
        .unwrap();
        let svg = parse(&r.svg);
        let rgb = check_png(&r, SIZE);
        for (i, (_, rows)) in series.iter().enumerate() {
            let color = series_color(i);
            // the members with an accuracy, and one in the legend
            let dots = centres(&svg, color, 4);
            let finite = rows.iter().filter(|r| r.accuracy.is_finite()).count();
            assert_eq!(dots.len(), finite + 1, "series {i}");
            let lines: Vec<_> = of(&svg, "polyline", color)
                .into_iter()
                .filter(|l| l.attrs["stroke-width"] == "2")
                .collect();
            assert_eq!(lines.len(), 1);
            let pts = lines[0].points();
            assert_eq!(pts.len(), 2 * finite - 1);
            for d in &dots[..finite] {
                assert!(pts.contains(d), "{d:?} not on {pts:?}");
                assert_eq!(pixel(&rgb, SIZE.0, *d), color);
            }
            // cheapest first, left to right
            assert!(pts.windows(2).all(|w| w[0].0 <= w[1].0));
        }
        // the uniform front: squares (and one in the legend) and a dashed line
        assert_eq!(of(&svg, "rect", UNIFORM).len(), uniform.len() + 1);
        assert!(of(&svg, "polyline", UNIFORM).len() > 5);
        let words = texts(&svg);
        for w in [
            "mixed-vs-uniform <&>",
            "nsga2 (seed 0)",
            "random (seed 0)",
            "uniform baselines",
            "BitOps (log scale)",
            "validation accuracy",
            "10⁶",
            "10⁸",
            "80%",
            "100%",
        ] {
            assert!(words.iter().any(|t| t == w), "{w} not in {words:?}");
        }
    }

    #[test]
    fn nothing_to_draw_draws_the_axes() {
        let r = render(&FrontsPlot {
            series: &[],
            uniform: &[],
            title: "empty",
        })
        .unwrap();
        let words = texts(&parse(&r.svg));
        assert!(!words.iter().any(|t| t == "uniform baselines"));
        assert!(words.iter().any(|t| t == "BitOps (log scale)"));
    }
}
