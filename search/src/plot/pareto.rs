//! The search's plot (`pareto.svg`, `pareto.png`): validation accuracy against log10 BitOps,
//! every evaluated member as a light point, the front as a step line through its members with
//! their 95% intervals as vertical error bars, the uniform baselines as labelled squares with
//! their intervals, and a legend.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::labels::{self, Bounds};
use super::{
    Axis, BASELINE, FRONT, Figure, LIGHT, PlotError, baseline_label, chart, decade_label,
    draw_title, legend, lighter, log_bitops, mesh, percent_with, step_line, text,
};
use crate::row::Row;

/// Width and height in pixels.
pub const SIZE: (u32, u32) = (800, 520);

/// The front's plot.
#[derive(Clone, Copy, Debug)]
pub struct ParetoPlot<'a> {
    /// Every evaluated member.
    pub rows: &'a [Row],
    /// The front, cheapest first.
    pub front: &'a [Row],
    /// The uniform baselines.
    pub baselines: &'a [Row],
    /// The title.
    pub title: &'a str,
}

/// Whether a row can be placed: a finite accuracy.
fn placed(r: &&Row) -> bool {
    r.accuracy.is_finite()
}

/// A row's 95% interval, when it has one with finite ends.
fn interval(r: &Row) -> Option<(f64, f64)> {
    r.interval
        .and_then(|i| super::clamped_interval((i.lo, i.hi)))
}

impl ParetoPlot<'_> {
    /// Every row drawn (members, front and baselines).
    fn all(&self) -> impl Iterator<Item = &Row> {
        self.rows
            .iter()
            .chain(self.front)
            .chain(self.baselines)
            .filter(placed)
    }

    /// The accuracy axis: from the lowest accuracy or interval end, rounded down to 10%.
    fn accuracy_axis(&self) -> Axis {
        let lowest = self
            .all()
            .flat_map(|r| [Some(r.accuracy), interval(r).map(|i| i.0)])
            .flatten()
            .fold(1.0, f64::min);
        Axis::accuracy(lowest.min(0.9), 0.1)
    }
}

impl Figure for ParetoPlot<'_> {
    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        root.fill(&WHITE)?;
        draw_title(root, self.title, "", 74)?;
        let x = Axis::bitops(self.all().map(|r| r.bitops));
        let y = self.accuracy_axis();
        let mut c = chart(root, (&x, &y), (44, 62), (42, 24))?;
        mesh(
            &mut c,
            ("BitOps (log scale)", "validation accuracy"),
            &|v| decade_label(*v),
            &percent_with(y.spacing()),
        )?;
        let at = |r: &Row| (log_bitops(r.bitops), r.accuracy);

        c.draw_series(
            self.rows
                .iter()
                .filter(placed)
                .map(|r| Circle::new(at(r), 2, LIGHT.filled())),
        )?
        .label("evaluated member")
        .legend(|(x, y)| Circle::new((x + 8, y), 2, LIGHT.filled()));

        // intervals first, so that the points are drawn over them
        let bars = |rows: &[Row], color: RGBColor| {
            rows.iter()
                .filter(placed)
                .filter_map(|r| {
                    let (lo, hi) = interval(r)?;
                    let x = log_bitops(r.bitops);
                    Some(ErrorBar::new_vertical(
                        x,
                        lo,
                        r.accuracy,
                        hi,
                        lighter(color),
                        6,
                    ))
                })
                .collect::<Vec<_>>()
        };
        c.draw_series(bars(self.baselines, BASELINE))?;
        c.draw_series(bars(self.front, FRONT))?;

        let front: Vec<(f64, f64)> = self.front.iter().filter(placed).map(at).collect();
        c.draw_series(std::iter::once(PathElement::new(
            step_line(&front),
            FRONT.stroke_width(2),
        )))?
        .label("Pareto front (95% intervals)")
        .legend(|(x, y)| {
            EmptyElement::at((x, y))
                + PathElement::new(vec![(0, 0), (16, 0)], FRONT.stroke_width(2))
                + Circle::new((8, 0), 4, FRONT.filled())
        });
        c.draw_series(front.iter().map(|&p| Circle::new(p, 4, FRONT.filled())))?;

        let squares: Vec<(f64, f64)> = self.baselines.iter().filter(placed).map(at).collect();
        c.draw_series(squares.iter().map(|&p| {
            EmptyElement::at(p) + Rectangle::new([(-4, -4), (4, 4)], BASELINE.filled())
        }))?
        .label("uniform baseline")
        .legend(|(x, y)| Rectangle::new([(x + 4, y - 4), (x + 12, y + 4)], BASELINE.filled()));

        // baseline labels, placed off each other and, where they can be, off the marks
        let style = text(13.0, BASELINE);
        let px = |p: &(f64, f64)| c.backend_coord(p);
        let mut marks: Vec<Bounds> = Vec::new();
        for r in self.rows.iter().filter(placed) {
            marks.push(labels::mark(px(&at(r)), px(&at(r)), 2));
        }
        for r in self.front.iter().chain(self.baselines).filter(placed) {
            marks.push(labels::mark(px(&at(r)), px(&at(r)), 5));
            if let Some((lo, hi)) = interval(r) {
                let x = log_bitops(r.bitops);
                marks.push(labels::mark(px(&(x, lo)), px(&(x, hi)), 3));
            }
        }
        let line = step_line(&front);
        for w in line.windows(2) {
            marks.push(labels::mark(px(&w[0]), px(&w[1]), 2));
        }
        let (xr, yr) = c.plotting_area().get_pixel_range();
        let area = (xr.start, yr.start, xr.end, yr.end);
        let names: Vec<String> = self
            .baselines
            .iter()
            .filter(placed)
            .map(|r| baseline_label(&r.origin))
            .collect();
        let anchors: Vec<(i32, i32)> = squares.iter().map(|p| c.backend_coord(p)).collect();
        let sizes: Vec<(u32, u32)> = names
            .iter()
            .map(|l| root.estimate_text_size(l, &style))
            .collect::<Result<_, _>>()?;
        let spots = labels::place(&anchors, &sizes, &marks, area);
        for (i, (label, &pos)) in names.iter().zip(&spots).enumerate() {
            if let Some((a, b)) = labels::leader(anchors[i], pos, sizes[i], 6) {
                root.draw(&PathElement::new(vec![a, b], lighter(BASELINE)))?;
            }
            root.draw(&Text::new(label.as_str(), pos, style.clone()))?;
        }
        legend(&mut c, SeriesLabelPosition::LowerRight)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    use stats::Accuracy;

    use super::super::testing::{
        self, centres, check_png, count, count_near, of, parse, pixel, texts,
    };
    use super::super::{GRID, render};
    use super::*;

    fn row(origin: &str, accuracy: f64, bitops: u64) -> Row {
        let correct = (accuracy * 1000.0).round() as usize;
        let arch = testing::preset("digits").largest();
        Row {
            samples: 1000,
            interval: Some(
                Accuracy {
                    correct,
                    total: 1000,
                }
                .interval(),
            ),
            ..testing::row(origin, arch, accuracy, bitops)
        }
    }

    fn sample() -> (Vec<Row>, Vec<Row>, Vec<Row>) {
        let rows = vec![
            row("baseline int8 largest", 0.8, 20_000_000),
            row("baseline int4 largest", 0.8, 20_000_000),
            row("random", 0.5, 1_000_000),
            row("random", 0.9, 50_000_000),
            row("random", 0.97, 800_000_000),
            row("random", 0.6, 300_000_000),
        ];
        let front = vec![rows[2].clone(), rows[3].clone(), rows[4].clone()];
        let baselines = rows[..2].to_vec();
        (rows, front, baselines)
    }

    #[test]
    fn svg_and_png_show_members_front_intervals_and_labelled_baselines() {
        let (rows, front, baselines) = sample();
        let title = "digits: accuracy vs BitOps (6 members, Random)";
        let plot = ParetoPlot {
            rows: &rows,
            front: &front,
            baselines: &baselines,
            title,
        };
        let r = render(&plot).unwrap();
        let svg = parse(&r.svg);

        // one light point per member and one in the legend
        let light = centres(&svg, LIGHT, 2);
        assert_eq!(light.len(), rows.len() + 1);
        // the front's points, and one in the legend
        let reds = centres(&svg, FRONT, 4);
        assert_eq!(reds.len(), front.len() + 1);
        let reds = &reds[..front.len()];
        // cheapest first: left to right, and up as accuracy rises
        for w in reds.windows(2) {
            assert!(w[0].0 < w[1].0 && w[0].1 > w[1].1, "{reds:?}");
        }
        // each front point is a light point too (every evaluated member is drawn)
        for p in reds {
            assert!(light.contains(p), "{p:?}");
        }
        // the step line passes through every front point, in steps
        let lines: Vec<_> = of(&svg, "polyline", FRONT)
            .into_iter()
            .filter(|l| l.attrs["stroke-width"] == "2" && l.points().len() > 2)
            .collect();
        assert_eq!(lines.len(), 1);
        let pts = lines[0].points();
        assert_eq!(pts.len(), 2 * front.len() - 1);
        for p in reds {
            assert!(pts.contains(p), "{p:?} not on {pts:?}");
        }
        for w in pts.windows(2) {
            assert!(
                w[0].0 == w[1].0 || w[0].1 == w[1].1,
                "a diagonal step {w:?}"
            );
        }
        // an error bar per front member: a vertical line through its point
        let bars = of(&svg, "line", lighter(FRONT));
        for &(x, y) in reds {
            let through = bars.iter().any(|l| {
                let (x1, y1, x2, y2) = (l.num("x1"), l.num("y1"), l.num("x2"), l.num("y2"));
                x1 == f64::from(x)
                    && x2 == x1
                    && y1.min(y2) < f64::from(y)
                    && y1.max(y2) > f64::from(y)
            });
            assert!(through, "no interval through {x},{y}");
        }
        // the two baselines at one point: two squares (and one in the legend), two labels
        assert_eq!(of(&svg, "rect", BASELINE).len(), 3);
        assert_eq!(of(&svg, "line", lighter(BASELINE)).len(), 2 * 3);
        let words = texts(&svg);
        for w in [
            "int8 largest",
            "int4 largest",
            title,
            "BitOps (log scale)",
            "validation accuracy",
            "10⁶",
            "10⁹",
            "50%",
            "100%",
            "evaluated member",
            "uniform baseline",
        ] {
            assert!(words.iter().any(|t| t == w), "{w} not in {words:?}");
        }
        let label_y = |l: &str| {
            svg.iter()
                .find(|e| e.tag == "text" && e.text == l)
                .map(|e| e.num("y"))
                .unwrap()
        };
        assert_ne!(label_y("int8 largest"), label_y("int4 largest"));

        // the PNG: the same drawing, in the same places
        let rgb = check_png(&r, SIZE);
        let w = SIZE.0;
        for &p in reds {
            assert_eq!(pixel(&rgb, w, p), FRONT, "{p:?}");
        }
        // the member at 60%, alone below the others
        let (x, y) = light[..rows.len()]
            .iter()
            .copied()
            .filter(|p| !reds.contains(p))
            .max_by_key(|p| p.1)
            .unwrap();
        assert_eq!(pixel(&rgb, w, (x, y)), LIGHT);
        let square = of(&svg, "rect", BASELINE)[0];
        let (sx, sy) = (square.num("x") as i32 + 4, square.num("y") as i32 + 4);
        assert_eq!(pixel(&rgb, w, (sx, sy)), BASELINE);
        // labels drawn in the baseline's colour (anti-aliased: some pixels exactly it)
        let label_ink = count_near(&rgb, w, BASELINE, 40, (sx + 6, sy - 30), (sx + 90, sy + 20));
        assert!(label_ink > 15, "{label_ink}");
        // grid lines and text
        assert!(count(&rgb, w, GRID, (0, 0), (799, 519)) > 500);
        assert!(count_near(&rgb, w, super::super::INK, 40, (0, 0), (799, 40)) > 100);
    }

    #[test]
    fn degenerate_inputs_draw() {
        let r = render(&ParetoPlot {
            rows: &[],
            front: &[],
            baselines: &[],
            title: "",
        })
        .unwrap();
        parse(&r.svg);
        assert_eq!(super::super::testing::decode(&r.png).0, SIZE.0);

        let mut odd = vec![
            row("baseline int4 smallest", 0.5, 0),
            row("random", 1.0, u64::MAX),
            row("random", 0.0, 1),
        ];
        odd[0].accuracy = f64::NAN;
        odd[1].interval = None;
        let r = render(&ParetoPlot {
            rows: &odd,
            front: &odd,
            baselines: &odd,
            title: &"long title ".repeat(40),
        })
        .unwrap();
        let svg = parse(&r.svg);
        // the NaN row is left out everywhere
        assert_eq!(centres(&svg, LIGHT, 2).len(), 2 + 1);
        assert!(!r.svg.contains("NaN"));
        let one = vec![row("random", 0.42, 12345)];
        let r = render(&ParetoPlot {
            rows: &one,
            front: &one,
            baselines: &[],
            title: "one",
        })
        .unwrap();
        assert_eq!(centres(&parse(&r.svg), FRONT, 4).len(), 2);
    }
}
