//! The hypervolume of the front against the number of members evaluated
//! (`hypervolume.svg`, `hypervolume.png`): after each member, in the order the search measured
//! them, the hypervolume of the front of the members so far, with the function and reference
//! the search reports its hypervolume with ([`crate::pareto`]). The uniform baselines come
//! first; a dashed line marks where the strategy's members begin.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::{
    Axis, FRAME, Figure, PALETTE, PlotError, SUBTLE, chart, draw_title, legend, mesh, number_with,
    step_line, text,
};
use crate::pareto::{HvReference, Point, dominates, hypervolume};
use crate::row::Row;

/// Width and height in pixels.
pub const SIZE: (u32, u32) = (800, 480);

/// The curve's colour (tab10 blue).
pub const CURVE: RGBColor = PALETTE[1];

/// After each of `rows` (in the order they were evaluated), the hypervolume of the front of
/// the rows so far. The front is kept as the rows go (a row joins unless a front member
/// dominates it, and removes those it dominates), so each value is the hypervolume of exactly
/// the front [`crate::row::front_of`] gives for the rows so far: the last is the search's.
pub fn hypervolume_curve(rows: &[Row], reference: &HvReference) -> Vec<f64> {
    let mut front: Vec<Point> = Vec::new();
    rows.iter()
        .map(|r| {
            let p = Point::new(r.accuracy, r.bitops);
            if !front.iter().any(|q| dominates(q, &p)) {
                front.retain(|q| !dominates(&p, q));
                front.push(p);
            }
            hypervolume(&front, reference)
        })
        .collect()
}

/// The plot of a hypervolume curve.
#[derive(Clone, Copy, Debug)]
pub struct HypervolumePlot<'a> {
    /// The hypervolume after each member evaluated ([`hypervolume_curve`]); `None` when the
    /// space has no hypervolume reference (its smallest and largest members cost the same).
    pub curve: Option<&'a [f64]>,
    /// How many members at the start are uniform baselines.
    pub baselines: usize,
    /// The title.
    pub title: &'a str,
}

impl Figure for HypervolumePlot<'_> {
    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        root.fill(&WHITE)?;
        let curve = self.curve.unwrap_or(&[]);
        let last = curve.last().copied();
        let subtitle = match (self.curve, last) {
            (None, _) => {
                "no hypervolume: the space's smallest and largest members cost the same".to_string()
            }
            (Some(_), None) => "no member evaluated".to_string(),
            (Some(_), Some(h)) => format!(
                "{h:.4} after {} members (reference: the space's smallest and largest BitOps, accuracy 0)",
                curve.len()
            ),
        };
        draw_title(root, self.title, &subtitle, 74)?;
        let n = curve.len().max(1) as f64;
        // room right of the last member
        let x = Axis::linear(0.0, n + 0.5, 10);
        let finite = curve.iter().copied().filter(|v| v.is_finite());
        let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
        // from a round value under the lowest to a little over the highest, within [0, 1]
        let y = if lo.is_finite() {
            let pad = ((hi - lo) * 0.1).max(0.01);
            let step = super::nice_step((hi - lo + 2.0 * pad) / 8.0);
            let lo = ((lo - pad) / step).floor() * step;
            Axis::linear(lo.max(0.0), (hi + pad).min(1.0).max(lo + step), 8)
        } else {
            Axis::linear(0.0, 1.0, 5)
        };
        let mut c = chart(root, (&x, &y), (44, 66), (58, 24))?;
        mesh(
            &mut c,
            ("members evaluated", "hypervolume of the front"),
            &number_with(x.spacing()),
            &number_with(y.spacing()),
        )?;
        if self.baselines > 0 && self.baselines < curve.len() {
            let b = self.baselines as f64 + 0.5;
            c.draw_series(std::iter::once(DashedPathElement::new(
                vec![(b, y.lo), (b, y.hi)],
                5,
                4,
                FRAME.stroke_width(1),
            )))?;
            let (px, py) = c.backend_coord(&(b, y.hi));
            root.draw(&Text::new(
                "baselines | search",
                (px + 4, py + 4),
                text(13.0, SUBTLE),
            ))?;
        }
        // member k (1-based) at x = k
        let points: Vec<(f64, f64)> = curve
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, &v)| ((i + 1) as f64, v))
            .collect();
        c.draw_series(std::iter::once(PathElement::new(
            step_line(&points),
            CURVE.stroke_width(2),
        )))?
        .label("hypervolume")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], CURVE.stroke_width(2)));
        // a dot where a member raised it
        let raised: Vec<(f64, f64)> = points
            .iter()
            .enumerate()
            .filter(|&(i, p)| i == 0 || p.1 > points[i - 1].1)
            .map(|(_, &p)| p)
            .collect();
        c.draw_series(raised.iter().map(|&p| Circle::new(p, 3, CURVE.filled())))?
            .label("a member raised it")
            .legend(|(x, y)| Circle::new((x + 8, y), 3, CURVE.filled()));
        legend(&mut c, SeriesLabelPosition::LowerRight)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    use spaces::Space;

    use super::super::render;
    use super::super::testing::{self, centres, check_png, of, parse, pixel, texts};
    use super::*;
    use crate::row::front_of;

    fn space() -> Space {
        testing::preset("digits")
    }

    fn row(space: &Space, origin: &str, accuracy: f64, bitops: u64) -> Row {
        testing::row(origin, space.largest(), accuracy, bitops)
    }

    #[test]
    fn the_curve_is_the_hypervolume_of_each_prefix_front() {
        let space = space();
        let reference = HvReference::for_space(&space).unwrap();
        let (lo, hi) = (reference.min_bitops(), reference.max_bitops());
        let mid = ((lo as f64) * (hi as f64)).sqrt() as u64;
        let rows = vec![
            row(&space, "baseline int8 largest", 0.9, hi),
            row(&space, "baseline int4 smallest", 0.5, lo),
            row(&space, "random", 0.4, mid),
            row(&space, "random", 0.8, mid),
            row(&space, "random", 0.8, mid),
            row(&space, "random", f64::NAN, lo),
            row(&space, "random", 0.95, lo * 2),
            row(&space, "random", 0.6, mid / 2),
        ];
        let curve = hypervolume_curve(&rows, &reference);
        assert_eq!(curve.len(), rows.len());
        for (k, v) in curve.iter().enumerate() {
            let front: Vec<Point> = front_of(&rows[..=k])
                .iter()
                .map(|r| Point::new(r.accuracy, r.bitops))
                .collect();
            // the same front, so the same number to the bit
            assert_eq!(*v, hypervolume(&front, &reference), "after {}", k + 1);
        }
        // a member at the largest BitOps adds nothing; the cheapest at 50% adds half
        assert_eq!(curve[0], 0.0);
        assert_eq!(curve[1], 0.5);
        // dominated (0.4 at mid), equal (0.8 twice), unmeasured: no rise
        assert_eq!(curve[2], curve[1]);
        assert!(curve[3] > curve[2]);
        assert_eq!(curve[4], curve[3]);
        assert_eq!(curve[5], curve[4]);
        assert!(curve[6] > curve[5]);
        // never falls
        assert!(curve.windows(2).all(|w| w[1] >= w[0]));
    }

    #[test]
    fn svg_and_png_show_the_curve_and_the_baselines_mark() {
        let curve = [0.0, 0.5, 0.5, 0.62, 0.62, 0.62, 0.71, 0.72];
        let plot = HypervolumePlot {
            curve: Some(&curve),
            baselines: 2,
            title: "digits: hypervolume",
        };
        let r = render(&plot).unwrap();
        let svg = parse(&r.svg);
        // dots where it rose: the first member, then 0.5, 0.62, 0.71, 0.72; one in the legend
        let dots = centres(&svg, CURVE, 3);
        assert_eq!(dots.len(), 5 + 1);
        let dots = &dots[..5];
        for w in dots.windows(2) {
            assert!(w[0].0 < w[1].0 && w[0].1 > w[1].1, "{dots:?}");
        }
        // the step line passes through every dot
        let line: Vec<_> = of(&svg, "polyline", CURVE)
            .into_iter()
            .filter(|l| l.points().len() > 2)
            .collect();
        assert_eq!(line.len(), 1);
        let pts = line[0].points();
        assert_eq!(pts.len(), 2 * curve.len() - 1);
        for d in dots {
            assert!(pts.contains(d), "{d:?}");
        }
        // the baselines mark between members 2 and 3, dashed: many short grey lines at one x
        let between = (pts[2].0 + pts[4].0) / 2;
        let dashes = of(&svg, "polyline", FRAME)
            .into_iter()
            .filter(|l| l.points().iter().all(|p| (p.0 - between).abs() <= 1))
            .count();
        assert!(dashes > 5, "{dashes} dashes at x = {between}");
        let words = texts(&svg);
        for w in [
            "digits: hypervolume",
            "members evaluated",
            "hypervolume of the front",
            "baselines | search",
        ] {
            assert!(words.iter().any(|t| t == w), "{w} not in {words:?}");
        }
        assert!(
            words
                .iter()
                .any(|t| t.starts_with("0.7200 after 8 members"))
        );
        let rgb = check_png(&r, SIZE);
        for &d in dots {
            assert_eq!(pixel(&rgb, SIZE.0, d), CURVE);
        }
    }

    #[test]
    fn without_a_reference_or_members_it_says_so() {
        for (curve, note) in [
            (None, "no hypervolume"),
            (Some(&[][..]), "no member evaluated"),
        ] {
            let r = render(&HypervolumePlot {
                curve,
                baselines: 0,
                title: "t",
            })
            .unwrap();
            let words = texts(&parse(&r.svg));
            assert!(words.iter().any(|t| t.starts_with(note)), "{words:?}");
            check_png(&r, SIZE);
        }
    }
}
