//! A training's curves (`train.svg`, `train.png` in the run folder), from its metrics log, one
//! point per step: the loss (the largest member's label loss, and the mean over the step's
//! members of their losses, distillation included), the batch accuracies of the largest and
//! the smallest member (measured before the update), and the learning rate. Losses and
//! accuracies are drawn light at each step and bold as a centred moving average; the learning
//! rate as it was. Logs of more than [`MAX_POINTS`] steps are drawn as that many bucket means.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{
    Axis, Figure, PALETTE, PlotError, chart, draw_title, legend, lighter, mesh, number_with,
    percent_with,
};

/// Width and height in pixels.
pub const SIZE: (u32, u32) = (800, 780);

/// The most points a line is drawn with.
pub const MAX_POINTS: usize = 1000;

/// The largest member's lines (tab10 blue).
pub const LARGEST: RGBColor = PALETTE[1];
/// The smallest member's and the members' mean (tab10 orange).
pub const OTHER: RGBColor = PALETTE[4];
/// The learning rate (tab10 green).
pub const RATE: RGBColor = PALETTE[2];

/// One step of a training, as its metrics log has it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainPoint {
    /// The step (1-based).
    pub step: u64,
    /// Learning rate.
    pub lr: f64,
    /// Sum of the members' losses.
    pub loss: f64,
    /// Label loss of the largest member.
    pub largest_loss: f64,
    /// Batch accuracy of the largest member.
    pub largest_accuracy: f64,
    /// Batch accuracy of the smallest member.
    pub smallest_accuracy: f64,
    /// Members trained in the step.
    pub members: usize,
}

/// The centred moving average of `v` over `window` values (fewer at the ends); values that
/// are not finite are skipped.
pub fn moving_average(v: &[f64], window: usize) -> Vec<f64> {
    let half = window.max(1) / 2;
    (0..v.len())
        .map(|i| {
            let span = &v[i.saturating_sub(half)..(i + half + 1).min(v.len())];
            let (sum, n) = span
                .iter()
                .filter(|x| x.is_finite())
                .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
            if n == 0 { f64::NAN } else { sum / n as f64 }
        })
        .collect()
}

/// `(x, y)` points as at most `max` points: the means of consecutive buckets of equal size
/// (the last may be smaller); points that are not finite are left out.
pub fn decimate(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    let finite: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .collect();
    let size = finite.len().div_ceil(max.max(1)).max(1);
    finite
        .chunks(size)
        .map(|c| {
            let n = c.len() as f64;
            (
                c.iter().map(|p| p.0).sum::<f64>() / n,
                c.iter().map(|p| p.1).sum::<f64>() / n,
            )
        })
        .collect()
}

/// The points of a line.
type Polyline = Vec<(f64, f64)>;

/// A training's curves.
#[derive(Clone, Copy, Debug)]
pub struct TrainingPlot<'a> {
    /// The steps, in order.
    pub points: &'a [TrainPoint],
    /// The title.
    pub title: &'a str,
}

impl TrainingPlot<'_> {
    /// The moving average's window: a fortieth of the steps, odd, at least 1.
    pub fn window(&self) -> usize {
        (self.points.len() / 40) | 1
    }

    /// A quantity per step, light (each step, decimated) and bold (moving average, decimated).
    fn series(&self, f: &dyn Fn(&TrainPoint) -> f64) -> (Polyline, Polyline) {
        let v: Vec<f64> = self.points.iter().map(f).collect();
        let steps = self.points.iter().map(|p| p.step as f64);
        let raw: Vec<(f64, f64)> = steps.clone().zip(v.iter().copied()).collect();
        let smooth: Vec<(f64, f64)> = steps.zip(moving_average(&v, self.window())).collect();
        (decimate(&raw, MAX_POINTS), decimate(&smooth, MAX_POINTS))
    }

    /// One panel: `lines` against the step.
    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        y_desc: &str,
        y: &Axis,
        y_label: &dyn Fn(&f64) -> String,
        lines: &[Line<'_>],
        at: SeriesLabelPosition,
    ) -> Result<(), PlotError> {
        let last = self.points.last().map_or(1, |p| p.step.max(1)) as f64;
        let x = Axis::linear(0.0, last, 10);
        let mut c = chart(area, (&x, y), (40, 74), (6, 24))?;
        mesh(&mut c, ("step", y_desc), &number_with(x.spacing()), y_label)?;
        let drawn: Vec<_> = lines.iter().map(|l| self.series(l.value)).collect();
        for (l, (raw, _)) in lines.iter().zip(&drawn).filter(|(l, _)| l.smooth) {
            c.draw_series(std::iter::once(PathElement::new(
                raw.clone(),
                lighter(l.color),
            )))?;
        }
        for (l, (raw, smooth)) in lines.iter().zip(&drawn) {
            let color = l.color;
            let bold = if l.smooth { smooth } else { raw };
            c.draw_series(std::iter::once(PathElement::new(
                bold.clone(),
                color.stroke_width(2),
            )))?
            .label(l.label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
        }
        legend(&mut c, at)?;
        Ok(())
    }
}

/// One line of a panel.
struct Line<'a> {
    /// Its legend entry.
    label: &'a str,
    /// Its colour.
    color: RGBColor,
    /// Its value at a step.
    value: &'a dyn Fn(&TrainPoint) -> f64,
    /// Drawn light at each step and bold averaged (a noisy quantity), or bold at each step.
    smooth: bool,
}

/// The highest finite value of `f` over `points` (`0` with none).
fn highest(points: &[TrainPoint], f: impl Fn(&TrainPoint) -> f64) -> f64 {
    points
        .iter()
        .map(f)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
}

/// The mean loss of a step's members.
fn mean_loss(p: &TrainPoint) -> f64 {
    p.loss / p.members.max(1) as f64
}

impl Figure for TrainingPlot<'_> {
    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        root.fill(&WHITE)?;
        let subtitle = format!(
            "light: each step; bold: mean over {} step{} around it",
            self.window(),
            if self.window() == 1 { "" } else { "s" }
        );
        draw_title(root, self.title, &subtitle, 84)?;
        let (_, body) = root.split_vertically(54);
        let panels = body.split_evenly((3, 1));
        let loss = Axis::linear(
            0.0,
            highest(self.points, |p| p.largest_loss.max(mean_loss(p))) * 1.05,
            6,
        );
        self.panel(
            &panels[0],
            "loss",
            &loss,
            &number_with(loss.spacing()),
            &[
                Line {
                    label: "largest member (label loss)",
                    color: LARGEST,
                    value: &|p| p.largest_loss,
                    smooth: true,
                },
                Line {
                    label: "mean over the step's members",
                    color: OTHER,
                    value: &mean_loss,
                    smooth: true,
                },
            ],
            SeriesLabelPosition::UpperRight,
        )?;
        let acc = Axis::linear(0.0, 1.0, 5);
        self.panel(
            &panels[1],
            "batch accuracy",
            &acc,
            &percent_with(acc.spacing()),
            &[
                Line {
                    label: "largest member",
                    color: LARGEST,
                    value: &|p| p.largest_accuracy,
                    smooth: true,
                },
                Line {
                    label: "smallest member",
                    color: OTHER,
                    value: &|p| p.smallest_accuracy,
                    smooth: true,
                },
            ],
            SeriesLabelPosition::LowerRight,
        )?;
        let lr = Axis::linear(0.0, highest(self.points, |p| p.lr) * 1.05, 5);
        self.panel(
            &panels[2],
            "learning rate",
            &lr,
            &number_with(lr.spacing()),
            &[Line {
                label: "learning rate",
                color: RATE,
                value: &|p| p.lr,
                smooth: false,
            }],
            SeriesLabelPosition::UpperRight,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::render;
    use super::super::testing::{check_png, of, parse, texts};
    use super::*;

    /// `n` steps of a training whose loss falls and accuracy rises, with a wobble, under a
    /// warm-up then a cosine schedule.
    fn points(n: u64) -> Vec<TrainPoint> {
        (1..=n)
            .map(|s| {
                let t = s as f64 / n as f64;
                let wobble = 0.1 * (s as f64 * 1.7).sin();
                TrainPoint {
                    step: s,
                    lr: if s < n / 10 {
                        0.1 * s as f64 / (n / 10) as f64
                    } else {
                        0.05 * (1.0 + (std::f64::consts::PI * t).cos())
                    },
                    loss: 4.0 * (2.3 * (-3.0 * t).exp() + wobble),
                    largest_loss: 2.3 * (-4.0 * t).exp() + wobble,
                    largest_accuracy: (0.1 + 0.85 * t + wobble / 2.0).clamp(0.0, 1.0),
                    smallest_accuracy: (0.1 + 0.7 * t + wobble / 2.0).clamp(0.0, 1.0),
                    members: 4,
                }
            })
            .collect()
    }

    #[test]
    fn averages_and_buckets() {
        assert_eq!(
            moving_average(&[1.0, 2.0, 3.0, 4.0, 5.0], 3),
            [1.5, 2.0, 3.0, 4.0, 4.5]
        );
        assert_eq!(moving_average(&[1.0, f64::NAN, 3.0], 3), [1.0, 2.0, 3.0]);
        assert_eq!(moving_average(&[2.0, 4.0], 1), [2.0, 4.0]);
        let pts: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 2.0 * i as f64)).collect();
        assert_eq!(decimate(&pts, 20), pts);
        assert_eq!(
            decimate(&pts, 5),
            [(0.5, 1.0), (2.5, 5.0), (4.5, 9.0), (6.5, 13.0), (8.5, 17.0)]
        );
        assert_eq!(decimate(&pts, 4).len(), 4);
        assert_eq!(decimate(&[(1.0, f64::INFINITY)], 4), []);
    }

    #[test]
    fn three_panels_with_light_and_smoothed_lines() {
        let pts = points(400);
        let plot = TrainingPlot {
            points: &pts,
            title: "mnist: training (400 steps)",
        };
        assert_eq!(plot.window(), 11);
        let r = render(&plot).unwrap();
        let svg = parse(&r.svg);
        let long = |c: RGBColor, width: &str| -> Vec<Vec<(i32, i32)>> {
            of(&svg, "polyline", c)
                .into_iter()
                .filter(|l| l.attrs["stroke-width"] == width && l.points().len() > 100)
                .map(|l| l.points())
                .collect()
        };
        // bold: loss and accuracy of the largest member, mean loss and smallest's accuracy,
        // the learning rate; light: the losses and accuracies at each step
        assert_eq!(long(LARGEST, "2").len(), 2);
        assert_eq!(long(OTHER, "2").len(), 2);
        assert_eq!(long(RATE, "2").len(), 1);
        assert_eq!(long(lighter(LARGEST), "1").len(), 2);
        // the learning rate as it was: no light line, and the warm-up's peak is kept
        assert!(long(lighter(RATE), "1").is_empty());
        // one point per step, left to right
        let loss = &long(LARGEST, "2")[0];
        assert_eq!(loss.len(), 400);
        assert!(loss.windows(2).all(|w| w[0].0 <= w[1].0));
        // the loss falls (down the panel: larger y) and the accuracy rises
        assert!(loss[0].1 < loss[399].1 - 100);
        let acc = &long(LARGEST, "2")[1];
        assert!(acc[0].1 > acc[399].1 + 100);
        // the panels are stacked: the loss above the accuracy above the learning rate
        let rate = &long(RATE, "2")[0];
        let top = |l: &Vec<(i32, i32)>| l.iter().map(|p| p.1).min().unwrap();
        assert!(top(loss) < top(acc) && top(acc) < top(rate));
        // the smoothed line wobbles less than the steps
        let light = &long(lighter(LARGEST), "1")[0];
        let wiggle = |l: &[(i32, i32)]| l.windows(2).map(|w| (w[1].1 - w[0].1).abs()).sum::<i32>();
        assert!(
            wiggle(loss) * 3 < wiggle(light),
            "{} {}",
            wiggle(loss),
            wiggle(light)
        );
        let words = texts(&svg);
        for w in [
            "mnist: training (400 steps)",
            "loss",
            "batch accuracy",
            "learning rate",
            "step",
            "largest member (label loss)",
            "smallest member",
            "100%",
            "light: each step; bold: mean over 11 steps around it",
        ] {
            assert!(words.iter().any(|t| t == w), "{w} not in {words:?}");
        }
        check_png(&r, SIZE);
    }

    #[test]
    fn long_logs_are_drawn_with_at_most_max_points_and_short_ones_draw() {
        let pts = points(5000);
        let r = render(&TrainingPlot {
            points: &pts,
            title: "long",
        })
        .unwrap();
        let svg = parse(&r.svg);
        let most = svg
            .iter()
            .filter(|e| e.tag == "polyline")
            .map(|e| e.points().len())
            .max()
            .unwrap();
        assert_eq!(most, MAX_POINTS);
        for n in [0, 1, 2] {
            let r = render(&TrainingPlot {
                points: &points(n)[..n as usize],
                title: "short",
            })
            .unwrap();
            parse(&r.svg);
            assert_eq!(super::super::testing::decode(&r.png).0, SIZE.0);
        }
    }
}
