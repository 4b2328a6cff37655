//! The scatter plot of `qnas correlate` (`correlate.svg`, `correlate.png`): each member's
//! stand-alone accuracy (x) against the accuracy the weight-sharing supernet gave it
//! (y), with both 95% intervals as error bars, and the diagonal y = x (points below it: the
//! supernet under-rates the member). A square data region with the same percent range on both
//! axes, the legend to its right.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::labels::{self, Bounds};
use super::{
    Axis, BASELINE, FRAME, FRONT, Figure, INK, PlotError, chart, clamped_interval, draw_title,
    lighter, mesh, percent_with, text,
};

/// Width and height in pixels.
pub const SIZE: (u32, u32) = (660, 500);
/// The side of the square data region.
pub const SIDE: u32 = 380;
/// Width of the part left of the legend: margin, tick labels, the data region, margin.
const PLOT_WIDTH: u32 = 8 + 66 + SIDE + 16;
/// Space under the data region for tick labels and the axis title.
const BELOW: u32 = 44 + 6;

/// One member in the scatter plot.
#[derive(Clone, Debug, PartialEq)]
pub struct ScatterPoint {
    /// Stand-alone accuracy in [0, 1] (x axis).
    pub standalone: f64,
    /// Its 95% interval (lo, hi), drawn as a horizontal error bar.
    pub standalone_ci: (f64, f64),
    /// Supernet accuracy in [0, 1] (y axis).
    pub supernet: f64,
    /// Its 95% interval (lo, hi), a vertical error bar.
    pub supernet_ci: (f64, f64),
    /// Member of the search's Pareto front (drawn red and larger; others blue).
    pub front: bool,
    /// Short label drawn next to the point (e.g. "3" for the 3rd member); may be empty.
    pub label: String,
}

/// Colour and radius of a front member's point, and of the others'.
const FRONT_DOT: (RGBColor, u32) = (FRONT, 4);
const OTHER_DOT: (RGBColor, u32) = (BASELINE, 3);

/// Colour and radius of a point.
fn style(p: &ScatterPoint) -> (RGBColor, u32) {
    if p.front { FRONT_DOT } else { OTHER_DOT }
}

/// The points that can be placed (both accuracies finite), those off the front first so that
/// front members are drawn on top.
fn drawable(points: &[ScatterPoint]) -> Vec<&ScatterPoint> {
    let mut kept: Vec<&ScatterPoint> = points
        .iter()
        .filter(|p| p.standalone.is_finite() && p.supernet.is_finite())
        .collect();
    kept.sort_by_key(|p| p.front);
    kept
}

/// The common range of both axes in whole percent, from `lo` (a multiple of 5) to 100, with
/// a tick every `step` percent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range {
    lo: i64,
    step: i64,
}

impl Range {
    /// `lo` is the smallest accuracy or interval end of the drawable points rounded down to
    /// 5% (0 with nothing to draw, at most 95); ticks every 5 points over a range of at most
    /// 40 points, else every 10.
    fn new(points: &[&ScatterPoint]) -> Self {
        let min = points
            .iter()
            .flat_map(|p| {
                let (sa, sb) = clamped_interval(p.standalone_ci).unwrap_or((1.0, 1.0));
                let (ya, yb) = clamped_interval(p.supernet_ci).unwrap_or((1.0, 1.0));
                [
                    p.standalone.clamp(0.0, 1.0),
                    p.supernet.clamp(0.0, 1.0),
                    sa,
                    sb,
                    ya,
                    yb,
                ]
            })
            .fold(f64::INFINITY, f64::min);
        // the epsilon keeps 0.7 (13.999.. twentieths) at 70%
        let lo = if min.is_finite() {
            ((min * 20.0 + 1e-9).floor() as i64 * 5).clamp(0, 95)
        } else {
            0
        };
        let step = if 100 - lo <= 40 { 5 } else { 10 };
        Range { lo, step }
    }

    /// Tick values in percent: the multiples of `step` from `lo` to 100.
    fn ticks(self) -> impl Iterator<Item = i64> {
        (self.lo..=100).filter(move |t| t % self.step == 0)
    }

    /// The axis, both ways.
    fn axis(self) -> Axis {
        Axis {
            lo: self.lo as f64 / 100.0,
            hi: 1.0,
            ticks: self.ticks().map(|t| t as f64 / 100.0).collect(),
            minor: Vec::new(),
        }
    }
}

/// The scatter plot.
#[derive(Clone, Copy, Debug)]
pub struct ScatterPlot<'a> {
    /// The members.
    pub points: &'a [ScatterPoint],
    /// The title.
    pub title: &'a str,
    /// The line under it.
    pub subtitle: &'a str,
    /// The images both accuracies were measured on (`test`, `validation`), named on the axes.
    pub split: &'a str,
}

impl Figure for ScatterPlot<'_> {
    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        root.fill(&WHITE)?;
        draw_title(root, self.title, self.subtitle, 80)?;
        let kept = drawable(self.points);
        let range = Range::new(&kept);
        let axis = range.axis();
        let (left, right) = root.split_horizontally(PLOT_WIDTH);
        let top = SIZE.1 - BELOW - SIDE;
        let mut c = chart(&left, (&axis, &axis), (44, 66), (top, 16))?;
        let label = percent_with(axis.spacing());
        let (x_title, y_title) = (
            format!("stand-alone {} accuracy", self.split),
            format!("supernet {} accuracy", self.split),
        );
        mesh(&mut c, (x_title.as_str(), y_title.as_str()), &label, &label)?;
        let (lo, hi) = (axis.lo, axis.hi);
        c.draw_series(std::iter::once(DashedPathElement::new(
            vec![(lo, lo), (hi, hi)],
            4,
            3,
            FRAME,
        )))?;
        let clamp = |v: f64| v.clamp(0.0, 1.0);
        for p in &kept {
            let tone = lighter(style(p).0);
            let (x, y) = (clamp(p.standalone), clamp(p.supernet));
            if let Some((a, b)) = clamped_interval(p.standalone_ci) {
                c.draw_series(std::iter::once(ErrorBar::new_horizontal(
                    y, a, x, b, tone, 6,
                )))?;
            }
            if let Some((a, b)) = clamped_interval(p.supernet_ci) {
                c.draw_series(std::iter::once(ErrorBar::new_vertical(x, a, y, b, tone, 6)))?;
            }
        }
        for p in &kept {
            let (color, r) = style(p);
            let at = (clamp(p.standalone), clamp(p.supernet));
            c.draw_series(std::iter::once(Circle::new(at, r, color.filled())))?;
        }
        // labels next to their points, off each other and, where they can be, off the marks
        let px = |x: f64, y: f64| c.backend_coord(&(clamp(x), clamp(y)));
        let mut marks: Vec<Bounds> = Vec::new();
        for p in &kept {
            let at = px(p.standalone, p.supernet);
            marks.push(labels::mark(at, at, style(p).1 as i32 + 1));
            if let Some((a, b)) = clamped_interval(p.standalone_ci) {
                marks.push(labels::mark(px(a, p.supernet), px(b, p.supernet), 3));
            }
            if let Some((a, b)) = clamped_interval(p.supernet_ci) {
                marks.push(labels::mark(px(p.standalone, a), px(p.standalone, b), 3));
            }
        }
        let named: Vec<&&ScatterPoint> = kept.iter().filter(|p| !p.label.is_empty()).collect();
        let anchors: Vec<(i32, i32)> = named.iter().map(|p| px(p.standalone, p.supernet)).collect();
        let sizes: Vec<(u32, u32)> = named
            .iter()
            .map(|p| root.estimate_text_size(&p.label, &text(13.0, INK)))
            .collect::<Result<_, _>>()?;
        let (xr, yr) = c.plotting_area().get_pixel_range();
        let area = (xr.start, yr.start, xr.end, yr.end);
        let spots = labels::place(&anchors, &sizes, &marks, area);
        for (i, (p, &pos)) in named.iter().zip(&spots).enumerate() {
            let (color, r) = style(p);
            if let Some((a, b)) = labels::leader(anchors[i], pos, sizes[i], r as i32 + 2) {
                root.draw(&PathElement::new(vec![a, b], lighter(color)))?;
            }
            root.draw(&Text::new(p.label.as_str(), pos, text(13.0, color)))?;
        }

        // the legend, right of the data region
        let (x0, y0) = (10, top as i32 + 6);
        let entries: [(&str, Option<(RGBColor, u32)>); 3] = [
            ("front member", Some(FRONT_DOT)),
            ("other member", Some(OTHER_DOT)),
            ("y = x", None),
        ];
        for (i, (name, swatch)) in entries.iter().enumerate() {
            let y = y0 + 22 * i as i32;
            match swatch {
                Some((color, r)) => {
                    right.draw(&Circle::new((x0 + 6, y + 8), *r, color.filled()))?
                }
                None => right.draw(&DashedPathElement::new(
                    vec![(x0, y + 14), (x0 + 12, y + 2)],
                    3,
                    2,
                    FRAME,
                ))?,
            }
            right.draw(&Text::new(*name, (x0 + 20, y), text(14.0, INK)))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::render;
    use super::super::testing::{Element, centres, check_png, count_near, of, parse, pixel, texts};
    use super::*;

    fn point(standalone: f64, supernet: f64, front: bool, label: &str) -> ScatterPoint {
        ScatterPoint {
            standalone,
            standalone_ci: (standalone - 0.02, standalone + 0.02),
            supernet,
            supernet_ci: (supernet - 0.02, supernet + 0.02),
            front,
            label: label.into(),
        }
    }

    fn sample() -> Vec<ScatterPoint> {
        vec![
            ScatterPoint {
                standalone: 0.90,
                standalone_ci: (0.84, 0.95),
                supernet: 0.85,
                supernet_ci: (0.79, 0.91),
                front: true,
                label: "1".into(),
            },
            ScatterPoint {
                standalone: 0.72,
                standalone_ci: (0.68, 0.80),
                supernet: 0.78,
                supernet_ci: (0.71, 0.83),
                front: false,
                label: "2".into(),
            },
        ]
    }

    #[test]
    fn range_floors_to_five_percent_and_picks_the_tick_step() {
        let range = |pts: &[ScatterPoint]| Range::new(&drawable(pts));
        // the smallest value is the interval end 0.68: 65% .. 100%, 35 points, ticks every 5
        let a = range(&sample());
        assert_eq!(a, Range { lo: 65, step: 5 });
        assert_eq!(
            a.ticks().collect::<Vec<_>>(),
            [65, 70, 75, 80, 85, 90, 95, 100]
        );
        // 0.42 - 0.02: 40% .. 100%, ticks every 10
        let a = range(&[point(0.42, 0.9, false, "")]);
        assert_eq!(a, Range { lo: 40, step: 10 });
        // 35% .. 100%: ticks at the multiples of 10 inside
        let a = range(&[point(0.37, 0.9, false, "")]);
        assert_eq!(a.lo, 35);
        assert_eq!(a.ticks().next(), Some(40));
        // exact multiples stay: 0.7 - 0.0 is 70%, not 65%
        let mut p = point(0.7, 0.8, true, "");
        p.standalone_ci = (0.7, 0.75);
        p.supernet_ci = (0.75, 0.85);
        assert_eq!(range(&[p]).lo, 70);
        // clamped at 0; everything at 100% still leaves 95% .. 100%
        assert_eq!(range(&[point(0.01, 0.5, false, "")]).lo, 0);
        let mut top = point(1.0, 1.0, true, "");
        top.standalone_ci = (1.0, 1.0);
        top.supernet_ci = (1.0, 1.0);
        assert_eq!(range(&[top]), Range { lo: 95, step: 5 });
        // nothing to draw: 0 .. 100%
        assert_eq!(range(&[]), Range { lo: 0, step: 10 });
        assert_eq!(range(&[point(f64::NAN, 0.5, false, "")]).lo, 0);
        // a non-finite interval end drops that bar from the range (not 0%), not the point
        let mut p = point(0.9, 0.93, false, "");
        p.standalone_ci = (f64::NEG_INFINITY, 0.85);
        assert_eq!(range(&[p]).lo, 90);
    }

    /// The data region's frame: the bounds of the mesh's grid lines (there is one at each
    /// end of both axes).
    fn frame(svg: &[Element]) -> (i32, i32, i32, i32) {
        let ends: Vec<(i32, i32)> = of(svg, "line", super::super::GRID)
            .into_iter()
            .flat_map(|l| {
                [
                    (l.num("x1") as i32, l.num("y1") as i32),
                    (l.num("x2") as i32, l.num("y2") as i32),
                ]
            })
            .collect();
        let xs = ends.iter().map(|p| p.0);
        let ys = ends.iter().map(|p| p.1);
        (
            xs.clone().min().unwrap(),
            ys.clone().min().unwrap(),
            xs.max().unwrap(),
            ys.max().unwrap(),
        )
    }

    #[test]
    fn svg_and_png_draw_points_bars_diagonal_and_legend_in_place() {
        let mut points = sample();
        points.push(point(0.8, 0.75, false, "<a&b>"));
        points.push(point(f64::NAN, 0.75, true, "lost"));
        let r = render(&ScatterPlot {
            points: &points,
            title: "tau & <rho>",
            subtitle: "\"quoted\" 'subtitle'",
            split: "validation",
        })
        .unwrap();
        let svg = parse(&r.svg);
        // the data region is square
        let (x0, y0, x1, y1) = frame(&svg);
        assert_eq!(x1 - x0, y1 - y0);
        assert!((x1 - x0 - SIDE as i32).abs() <= 1, "{:?}", (x0, y0, x1, y1));
        // front red and larger, others blue; the point with a NaN is left out; a dot each in
        // the legend
        let reds = centres(&svg, FRONT, 4);
        let blues = centres(&svg, BASELINE, 3);
        assert_eq!((reds.len(), blues.len()), (1 + 1, 2 + 1));
        // at their accuracies: 65% .. 100% on both axes
        let side = f64::from(x1 - x0);
        let at = |x: f64, y: f64| {
            (
                x0 + ((x - 0.65) / 0.35 * side) as i32,
                y1 - ((y - 0.65) / 0.35 * side).ceil() as i32,
            )
        };
        let near = |a: (i32, i32), b: (i32, i32)| (a.0 - b.0).abs() <= 1 && (a.1 - b.1).abs() <= 1;
        assert!(
            near(reds[0], at(0.90, 0.85)),
            "{:?} {:?}",
            reds[0],
            at(0.90, 0.85)
        );
        assert!(blues.iter().any(|&b| near(b, at(0.72, 0.78))));
        // error bars in the lighter tones: horizontal and vertical, through the point
        let bars = |c: RGBColor| of(&svg, "line", lighter(c));
        assert_eq!(bars(FRONT).len(), 2 * 3);
        assert_eq!(bars(BASELINE).len(), 2 * 2 * 3);
        let long = |l: &&Element| {
            let (a, b) = ((l.num("x1"), l.num("y1")), (l.num("x2"), l.num("y2")));
            (a.0 - b.0).abs() + (a.1 - b.1).abs() > 8.0
        };
        let red_bars: Vec<_> = bars(FRONT).into_iter().filter(long).collect();
        assert_eq!(red_bars.len(), 2);
        assert!(
            red_bars
                .iter()
                .any(|l| l.num("y1") == l.num("y2") && l.num("y1") == f64::from(reds[0].1))
        );
        assert!(
            red_bars
                .iter()
                .any(|l| l.num("x1") == l.num("x2") && l.num("x1") == f64::from(reds[0].0))
        );
        // the diagonal: dashes from the (lo, lo) corner to the (100%, 100%) corner
        let dashes: Vec<(i32, i32)> = of(&svg, "polyline", FRAME)
            .into_iter()
            .flat_map(|l| l.points())
            .filter(|p| p.0 > x0 + 1 && p.0 < x1 - 1 && p.1 > y0 + 1 && p.1 < y1 - 1)
            .collect();
        assert!(dashes.len() > 20);
        for p in &dashes {
            assert!(
                ((p.0 - x0) - (y1 - p.1)).abs() <= 1,
                "{p:?} off the diagonal"
            );
        }
        // escaped text: the SVG reads back as written
        assert!(r.svg.contains("tau &amp; &lt;rho&gt;"));
        assert!(!r.svg.contains("<a&b>"));
        let words = texts(&svg);
        for w in [
            "tau & <rho>",
            "\"quoted\" 'subtitle'",
            "<a&b>",
            "1",
            "2",
            "stand-alone validation accuracy",
            "supernet validation accuracy",
            "65%",
            "100%",
            "front member",
            "other member",
            "y = x",
        ] {
            assert!(words.iter().any(|t| t == w), "{w} not in {words:?}");
        }
        assert!(!words.iter().any(|t| t == "lost" || t == "60%"));
        assert!(!r.svg.contains("NaN"));

        let rgb = check_png(&r, SIZE);
        let w = SIZE.0;
        assert_eq!(pixel(&rgb, w, reds[0]), FRONT);
        for &b in &blues {
            assert_eq!(pixel(&rgb, w, b), BASELINE);
        }
        // the red point's label next to it, in red
        let (fx, fy) = reds[0];
        let label = svg
            .iter()
            .find(|e| e.tag == "text" && e.text == "1")
            .unwrap();
        let (lx, ly) = (label.num("x") as i32, label.num("y") as i32);
        assert!(
            (lx - fx).abs() < 40 && (ly - fy).abs() < 40,
            "{lx},{ly} far from {fx},{fy}"
        );
        assert!(count_near(&rgb, w, FRONT, 60, (lx, ly), (lx + 10, ly + 14)) > 3);
        // the legend right of the data region has ink
        assert!(count_near(&rgb, w, INK, 60, (x1 + 20, y0), (w as i32 - 1, y0 + 80)) > 100);
    }

    #[test]
    fn degenerate_inputs_draw() {
        let r = render(&ScatterPlot {
            points: &[],
            title: "",
            subtitle: "",
            split: "test",
        })
        .unwrap();
        let svg = parse(&r.svg);
        assert_eq!(svg.iter().filter(|e| e.tag == "circle").count(), 2);
        let words = texts(&svg);
        assert!(words.iter().any(|t| t == "0%") && words.iter().any(|t| t == "100%"));

        let mut inf_ci = point(0.5, 0.5, true, "ok");
        inf_ci.standalone_ci = (f64::NAN, 0.6);
        inf_ci.supernet_ci = (0.4, f64::INFINITY);
        let odd = vec![
            point(f64::NAN, 0.5, true, "a"),
            point(0.5, f64::INFINITY, true, "b"),
            point(f64::NEG_INFINITY, f64::NAN, false, "c"),
            inf_ci,
        ];
        let r = render(&ScatterPlot {
            points: &odd,
            title: "odd",
            subtitle: "NaN",
            split: "test",
        })
        .unwrap();
        let svg = parse(&r.svg);
        assert_eq!(centres(&svg, FRONT, 4).len(), 1 + 1);
        assert!(of(&svg, "line", lighter(FRONT)).is_empty());

        // labels of points at one place do not cover one another
        let same: Vec<ScatterPoint> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|l| point(0.8, 0.8, true, l))
            .collect();
        let r = render(&ScatterPlot {
            points: &same,
            title: "same",
            subtitle: "",
            split: "test",
        })
        .unwrap();
        let svg = parse(&r.svg);
        let at: Vec<(i32, i32)> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|l| {
                let e = svg
                    .iter()
                    .find(|e| e.tag == "text" && e.text == *l)
                    .unwrap();
                (e.num("x") as i32, e.num("y") as i32)
            })
            .collect();
        for i in 0..at.len() {
            for j in i + 1..at.len() {
                let (a, b) = (at[i], at[j]);
                assert!(
                    (a.0 - b.0).abs() >= 8 || (a.1 - b.1).abs() >= 12,
                    "{a:?} {b:?}"
                );
            }
        }

        // values at 0 and 1, a reversed interval, a value past 100%, a long title
        let mut edges = vec![
            point(0.0, 0.0, false, "zero"),
            point(1.0, 1.0, true, "one"),
            point(1.2, -0.1, false, ""),
        ];
        edges[1].supernet_ci = (1.0, 0.97);
        let r = render(&ScatterPlot {
            points: &edges,
            title: &"long title ".repeat(30),
            subtitle: "",
            split: "test",
        })
        .unwrap();
        let svg = parse(&r.svg);
        let (x0, y0, x1, y1) = frame(&svg);
        let blues = centres(&svg, BASELINE, 3);
        // 0% at the (lo, lo) corner; the value past 100% and the negative one at the frame
        assert!(blues.contains(&(x0, y1)), "{blues:?}");
        assert!(blues.contains(&(x1, y1)), "{blues:?}");
        assert!(centres(&svg, FRONT, 4).contains(&(x1, y0)));
    }
}
