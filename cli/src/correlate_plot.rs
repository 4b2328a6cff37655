//! The scatter plot of `qnas correlate`: each member's stand-alone validation accuracy (x)
//! against the accuracy the weight-sharing supernet gave it (y), with 95% intervals as error
//! bars and the diagonal y = x (points below it: the supernet under-rates the member).
//!
//! Two renderings of one layout, like the search's Pareto plot: [`scatter_svg`] and
//! [`scatter_png`] (through [`scatter_canvas`], on the [`png_plot`](search::png_plot) canvas).
//! 720 x 480, a square data region with the same percent range on both axes, the legend to its
//! right.

use search::png_plot::{BLACK, BLUE, Canvas, GREY, GRID, RED, Rgb, WHITE, text_width};

/// One member in the scatter plot.
#[derive(Clone, Debug, PartialEq)]
pub struct ScatterPoint {
    /// Stand-alone validation accuracy in [0, 1] (x axis).
    pub standalone: f64,
    /// Its 95% interval (lo, hi), drawn as a horizontal error bar.
    pub standalone_ci: (f64, f64),
    /// Supernet validation accuracy in [0, 1] (y axis).
    pub supernet: f64,
    /// Its 95% interval (lo, hi), a vertical error bar.
    pub supernet_ci: (f64, f64),
    /// Member of the search's Pareto front (drawn red and larger; others blue).
    pub front: bool,
    /// Short label drawn next to the point (e.g. "3" for the 3rd member); may be empty.
    pub label: String,
}

/// Canvas size, as the Pareto plot.
const W: i64 = 720;
const H: i64 = 480;
/// The square data region: left and top edges and side, in pixels.
const LEFT: i64 = 70;
const TOP: i64 = 50;
const SIDE: i64 = 380;
const RIGHT: i64 = LEFT + SIDE;
const BOTTOM: i64 = TOP + SIDE;
/// Left edge of the legend, right of the data region.
const LEGEND_X: i64 = RIGHT + 30;
/// Half the length of an error bar's end cap.
const CAP: i64 = 3;
/// The subtitle's colour (`#444`).
const SUBTLE: Rgb = [0x44, 0x44, 0x44];

/// Halfway from `c` to white: the tone of error bars.
const fn lighter(c: Rgb) -> Rgb {
    [
        ((c[0] as u16 + 255) / 2) as u8,
        ((c[1] as u16 + 255) / 2) as u8,
        ((c[2] as u16 + 255) / 2) as u8,
    ]
}

/// Colour and radius of a front member's point, and of the others'.
const FRONT: (Rgb, f64) = (RED, 4.0);
const OTHER: (Rgb, f64) = (BLUE, 3.0);

/// Colour and radius of a point.
fn style(p: &ScatterPoint) -> (Rgb, f64) {
    if p.front { FRONT } else { OTHER }
}

/// The legend's entries: a dot of the given colour and radius, or (`None`) a diagonal stroke.
const LEGEND: [(&str, Option<(Rgb, f64)>); 3] = [
    ("front member", Some(FRONT)),
    ("other member", Some(OTHER)),
    ("y = x", None),
];

/// An interval's ends in order and clamped to [0, 1], or `None` if an end is not finite.
fn interval((a, b): (f64, f64)) -> Option<(f64, f64)> {
    (a.is_finite() && b.is_finite()).then(|| (a.min(b).clamp(0.0, 1.0), a.max(b).clamp(0.0, 1.0)))
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

/// The common range of both axes, in whole percent: from `lo` (a multiple of 5) to 100, with
/// a tick every `step` percent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Axes {
    lo: i64,
    step: i64,
}

impl Axes {
    /// `lo` is the smallest accuracy or interval end of the drawable points rounded down to
    /// 5% (0 with nothing to draw, at most 95); ticks every 5 points over a range of at most
    /// 40 points, else every 10.
    fn new(points: &[&ScatterPoint]) -> Self {
        let min = points
            .iter()
            .flat_map(|p| {
                let (sa, sb) = interval(p.standalone_ci).unwrap_or((1.0, 1.0));
                let (ya, yb) = interval(p.supernet_ci).unwrap_or((1.0, 1.0));
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
        Axes { lo, step }
    }

    /// Tick values in percent: the multiples of `step` from `lo` to 100.
    fn ticks(self) -> impl Iterator<Item = i64> {
        (self.lo..=100).filter(move |t| t % self.step == 0)
    }

    /// Where accuracy `v` lies along an axis, 0 at `lo` and 1 at 100%.
    fn frac(self, v: f64) -> f64 {
        (v.clamp(0.0, 1.0) * 100.0 - self.lo as f64) / (100 - self.lo) as f64
    }

    /// Continuous coordinates (SVG) of the accuracies (`x`, `y`).
    fn xy(self, x: f64, y: f64) -> (f64, f64) {
        let side = SIDE as f64;
        (
            LEFT as f64 + self.frac(x) * side,
            BOTTOM as f64 - self.frac(y) * side,
        )
    }

    /// The pixel (PNG) of the accuracies (`x`, `y`): rounded the same way on both axes, so a
    /// point with `x == y` lies on the pixels of the diagonal.
    fn pixel(self, x: f64, y: f64) -> (i64, i64) {
        let off = |v: f64| (self.frac(v) * SIDE as f64).round() as i64;
        (LEFT + off(x), BOTTOM - off(y))
    }
}

/// A line with a perpendicular cap at each end (an error bar), in pixels.
fn capped_bar(c: &mut Canvas, (xa, ya): (i64, i64), (xb, yb): (i64, i64), color: Rgb) {
    c.line(xa, ya, xb, yb, 1, color);
    let (dx, dy) = if ya == yb { (0, CAP) } else { (CAP, 0) };
    for (x, y) in [(xa, ya), (xb, yb)] {
        c.line(x - dx, y - dy, x + dx, y + dy, 1, color);
    }
}

/// A filled disc centred on the pixel (`x`, `y`).
fn dot(c: &mut Canvas, (x, y): (i64, i64), r: f64, color: Rgb) {
    c.fill_circle(x as f64 + 0.5, y as f64 + 0.5, r, color);
}

/// A PNG of the scatter plot; see [`scatter_canvas`].
pub fn scatter_png(points: &[ScatterPoint], title: &str, subtitle: &str) -> Vec<u8> {
    scatter_canvas(points, title, subtitle).to_png()
}

/// The canvas behind [`scatter_png`], 720 x 480: title and subtitle, the square data region
/// with grid, percent ticks and the grey diagonal, error bars in a lighter tone of each
/// point's colour, the points (front red radius 4, others blue radius 3) with their labels to
/// the upper right, and the legend. Points whose accuracies are not finite are left out, as
/// are error bars with a non-finite end.
pub fn scatter_canvas(points: &[ScatterPoint], title: &str, subtitle: &str) -> Canvas {
    let kept = drawable(points);
    let axes = Axes::new(&kept);
    let mut c = Canvas::new(W as usize, H as usize, WHITE);

    let big = text_width(title, 2) as i64 <= W - LEFT - 20;
    let scale = if big { 2 } else { 1 };
    c.text(LEFT, 22 - 7 * scale as i64, title, scale, BLACK);
    c.text(LEFT, 32, subtitle, 1, SUBTLE);

    for t in axes.ticks() {
        let v = t as f64 / 100.0;
        let (x, y) = axes.pixel(v, v);
        c.line(x, TOP, x, BOTTOM, 1, GRID);
        c.line(LEFT, y, RIGHT, y, 1, GRID);
        let label = format!("{t}%");
        let tw = text_width(&label, 1) as i64;
        c.text(x - tw / 2, BOTTOM + 6, &label, 1, BLACK);
        c.text(LEFT - 6 - tw, y - 3, &label, 1, BLACK);
    }
    let corners = [(LEFT, TOP), (RIGHT, TOP), (RIGHT, BOTTOM), (LEFT, BOTTOM)];
    for (i, &(xa, ya)) in corners.iter().enumerate() {
        let (xb, yb) = corners[(i + 1) % corners.len()];
        c.line(xa, ya, xb, yb, 1, GREY);
    }
    c.line(LEFT, BOTTOM, RIGHT, TOP, 1, GREY);

    let xl = "stand-alone validation accuracy";
    c.text(
        LEFT + SIDE / 2 - text_width(xl, 1) as i64 / 2,
        BOTTOM + 26,
        xl,
        1,
        BLACK,
    );
    let yl = "supernet validation accuracy";
    let yl_bottom = TOP + SIDE / 2 + text_width(yl, 1) as i64 / 2;
    c.text_up(12, yl_bottom, yl, 1, BLACK);

    for p in &kept {
        let tone = lighter(style(p).0);
        if let Some((a, b)) = interval(p.standalone_ci) {
            capped_bar(
                &mut c,
                axes.pixel(a, p.supernet),
                axes.pixel(b, p.supernet),
                tone,
            );
        }
        if let Some((a, b)) = interval(p.supernet_ci) {
            capped_bar(
                &mut c,
                axes.pixel(p.standalone, a),
                axes.pixel(p.standalone, b),
                tone,
            );
        }
    }
    for p in &kept {
        let (color, r) = style(p);
        dot(&mut c, axes.pixel(p.standalone, p.supernet), r, color);
    }
    for p in &kept {
        let (x, y) = axes.pixel(p.standalone, p.supernet);
        c.text(x + 5, y - 12, &p.label, 1, style(p).0);
    }

    for (i, (name, swatch)) in LEGEND.iter().enumerate() {
        let y = TOP + 10 + 18 * i as i64;
        match swatch {
            Some((color, r)) => dot(&mut c, (LEGEND_X + 5, y + 3), *r, *color),
            None => c.line(LEGEND_X, y + 8, LEGEND_X + 10, y - 2, 1, GREY),
        }
        c.text(LEGEND_X + 16, y, name, 1, BLACK);
    }
    c
}

/// `s` with the XML special characters escaped, for text and attribute values.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(ch),
        }
    }
    out
}

/// `#rrggbb`.
fn hex(c: Rgb) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

/// An SVG path of an error bar from (`xa`, `ya`) to (`xb`, `yb`) with its end caps.
fn bar_path((xa, ya): (f64, f64), (xb, yb): (f64, f64)) -> String {
    let cap = CAP as f64;
    let (dx, dy) = if ya == yb { (0.0, cap) } else { (cap, 0.0) };
    format!(
        "M{xa:.1} {ya:.1}L{xb:.1} {yb:.1}M{:.1} {:.1}L{:.1} {:.1}M{:.1} {:.1}L{:.1} {:.1}",
        xa - dx,
        ya - dy,
        xa + dx,
        ya + dy,
        xb - dx,
        yb - dy,
        xb + dx,
        yb + dy
    )
}

/// The scatter plot as SVG, the same layout as [`scatter_canvas`]; the diagonal is dashed and
/// every point carries a tooltip with its label and both accuracies.
pub fn scatter_svg(points: &[ScatterPoint], title: &str, subtitle: &str) -> String {
    let kept = drawable(points);
    let axes = Axes::new(&kept);
    let (left, top, right, bottom, side) = (LEFT as f64, TOP as f64, RIGHT, BOTTOM, SIDE);
    let mut out = vec![
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">"
        ),
        "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>".to_string(),
        format!(
            "<text x=\"{left}\" y=\"22\" font-size=\"15\">{}</text>",
            xml_escape(title)
        ),
        format!(
            "<text x=\"{left}\" y=\"40\" font-size=\"11\" fill=\"{}\">{}</text>",
            hex(SUBTLE),
            xml_escape(subtitle)
        ),
    ];
    for t in axes.ticks() {
        let v = t as f64 / 100.0;
        let (x, y) = axes.xy(v, v);
        out.push(format!(
            "<path d=\"M{x:.1} {top}V{bottom}M{left} {y:.1}H{right}\" stroke=\"{}\"/>",
            hex(GRID)
        ));
        out.push(format!(
            "<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{t}%</text><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{t}%</text>",
            bottom + 16,
            left - 6.0,
            y + 4.0
        ));
    }
    let grey = hex(GREY);
    out.push(format!(
        "<rect x=\"{left}\" y=\"{top}\" width=\"{side}\" height=\"{side}\" fill=\"none\" stroke=\"{grey}\"/>"
    ));
    out.push(format!(
        "<line class=\"diagonal\" x1=\"{left}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{top}\" stroke=\"{grey}\" stroke-dasharray=\"4 3\"/>"
    ));
    out.push(format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">stand-alone validation accuracy</text>",
        left + side as f64 / 2.0,
        H - 12
    ));
    out.push(format!(
        "<text transform=\"translate(18 {}) rotate(-90)\" text-anchor=\"middle\">supernet validation accuracy</text>",
        top + side as f64 / 2.0
    ));

    for p in &kept {
        let mut d = String::new();
        if let Some((a, b)) = interval(p.standalone_ci) {
            d += &bar_path(axes.xy(a, p.supernet), axes.xy(b, p.supernet));
        }
        if let Some((a, b)) = interval(p.supernet_ci) {
            d += &bar_path(axes.xy(p.standalone, a), axes.xy(p.standalone, b));
        }
        if !d.is_empty() {
            let tone = hex(lighter(style(p).0));
            out.push(format!("<path d=\"{d}\" fill=\"none\" stroke=\"{tone}\"/>"));
        }
    }
    for p in &kept {
        let (color, r) = style(p);
        let (x, y) = axes.xy(p.standalone, p.supernet);
        let tip = format!(
            "{}stand-alone {:.1}%, supernet {:.1}%",
            if p.label.is_empty() {
                String::new()
            } else {
                format!("{}: ", p.label)
            },
            p.standalone * 100.0,
            p.supernet * 100.0
        );
        out.push(format!(
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{r}\" fill=\"{}\"><title>{}</title></circle>",
            hex(color),
            xml_escape(&tip)
        ));
    }
    for p in kept.iter().filter(|p| !p.label.is_empty()) {
        let (x, y) = axes.xy(p.standalone, p.supernet);
        out.push(format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"{}\">{}</text>",
            x + 5.0,
            y - 5.0,
            hex(style(p).0),
            xml_escape(&p.label)
        ));
    }

    for (i, (name, swatch)) in LEGEND.iter().enumerate() {
        let (x, y) = (LEGEND_X as f64, (TOP + 10 + 18 * i as i64) as f64);
        out.push(match swatch {
            Some((color, r)) => format!(
                "<circle cx=\"{}\" cy=\"{}\" r=\"{r}\" fill=\"{}\"/>",
                x + 5.5,
                y + 3.5,
                hex(*color)
            ),
            None => format!(
                "<line x1=\"{x}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{grey}\" stroke-dasharray=\"4 3\"/>",
                y + 8.5,
                x + 10.0,
                y - 1.5
            ),
        });
        out.push(format!(
            "<text x=\"{}\" y=\"{}\">{name}</text>",
            x + 16.0,
            y + 8.0
        ));
    }
    out.push("</svg>\n".to_string());
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

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

    /// Decodes a PNG with the `png` crate: (width, height, RGB bytes).
    fn decode(bytes: &[u8]) -> (usize, usize, Vec<u8>) {
        let mut reader = png::Decoder::new(Cursor::new(bytes)).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        buf.truncate(info.buffer_size());
        (info.width as usize, info.height as usize, buf)
    }

    /// How many pixels in the inclusive box (`x0`, `y0`)..(`x1`, `y1`) are `color`.
    fn ink(c: &Canvas, color: Rgb, (x0, y0): (i64, i64), (x1, y1): (i64, i64)) -> usize {
        let mut n = 0;
        for y in y0..=y1 {
            n += (x0..=x1).filter(|&x| c.get(x, y) == Some(color)).count();
        }
        n
    }

    /// The expected pixel of accuracies (x, y) on axes from `lo` to 1, computed independently
    /// of `Axes`.
    fn expect_px(lo: f64, x: f64, y: f64) -> (i64, i64) {
        let off = |v: f64| ((v - lo) / (1.0 - lo) * 380.0).round() as i64;
        (70 + off(x), 430 - off(y))
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
    fn png_decodes_to_the_canvas() {
        let points = sample();
        let png = scatter_png(&points, "digits: correlation", "Kendall tau-b 1.00");
        let c = scatter_canvas(&points, "digits: correlation", "Kendall tau-b 1.00");
        let (w, h, rgb) = decode(&png);
        assert_eq!((w, h), (720, 480));
        assert_eq!((c.w, c.h), (720, 480));
        assert_eq!(rgb, c.pixels);
    }

    #[test]
    fn range_floors_to_five_percent_and_picks_the_tick_step() {
        let axes = |pts: &[ScatterPoint]| Axes::new(&drawable(pts));
        // the smallest value is the interval end 0.68: 65% .. 100%, 35 points, ticks every 5
        let a = axes(&sample());
        assert_eq!(a, Axes { lo: 65, step: 5 });
        assert_eq!(
            a.ticks().collect::<Vec<_>>(),
            [65, 70, 75, 80, 85, 90, 95, 100]
        );
        // 0.42 - 0.02: 40% .. 100%, ticks every 10
        let a = axes(&[point(0.42, 0.9, false, "")]);
        assert_eq!(a, Axes { lo: 40, step: 10 });
        assert_eq!(a.ticks().collect::<Vec<_>>(), [40, 50, 60, 70, 80, 90, 100]);
        // 35% .. 100%: ticks at the multiples of 10 inside
        let a = axes(&[point(0.37, 0.9, false, "")]);
        assert_eq!(a.lo, 35);
        assert_eq!(a.ticks().next(), Some(40));
        // exact multiples stay: 0.7 - 0.0 is 70%, not 65%
        let mut p = point(0.7, 0.8, true, "");
        p.standalone_ci = (0.7, 0.75);
        p.supernet_ci = (0.75, 0.85);
        assert_eq!(axes(&[p]).lo, 70);
        // the range is clamped at 0; everything at 100% still leaves 95% .. 100%
        assert_eq!(axes(&[point(0.01, 0.5, false, "")]).lo, 0);
        let mut top = point(1.0, 1.0, true, "");
        top.standalone_ci = (1.0, 1.0);
        top.supernet_ci = (1.0, 1.0);
        assert_eq!(axes(&[top]), Axes { lo: 95, step: 5 });
        // nothing to draw: 0 .. 100%
        assert_eq!(axes(&[]), Axes { lo: 0, step: 10 });
        assert_eq!(axes(&[point(f64::NAN, 0.5, false, "")]).lo, 0);
        // a non-finite interval end drops that bar from the range (not 0%), not the point
        let mut p = point(0.9, 0.93, false, "");
        p.standalone_ci = (f64::NEG_INFINITY, 0.85);
        assert_eq!(axes(&[p]).lo, 90);
        // the pixel mapping: both ends of both axes on the frame, equal values on the diagonal
        let a = Axes { lo: 60, step: 10 };
        assert_eq!(a.pixel(0.6, 0.6), (LEFT, BOTTOM));
        assert_eq!(a.pixel(1.0, 1.0), (RIGHT, TOP));
        for v in [0.61, 0.777, 0.93] {
            let (x, y) = a.pixel(v, v);
            assert_eq!(x - LEFT, BOTTOM - y, "{v}");
        }
    }

    #[test]
    fn png_draws_points_bars_diagonal_and_legend_in_place() {
        let points = sample();
        let c = scatter_canvas(&points, "digits", "Kendall tau-b 1.00, 2 members");
        let lo = 0.65;
        let px = |x: f64, y: f64| expect_px(lo, x, y);

        // the front member is red at its centre, the other blue
        let (fx, fy) = px(0.90, 0.85);
        assert_eq!(c.get(fx, fy), Some(RED));
        let (ox, oy) = px(0.72, 0.78);
        assert_eq!(c.get(ox, oy), Some(BLUE));
        // the front point is the larger: red 3 pixels away, blue not
        assert_eq!(c.get(fx + 3, fy), Some(RED));
        assert_ne!(c.get(ox + 3, oy), Some(BLUE));

        // error bars in the lighter tones, with caps at their ends
        let (light_red, light_blue) = (lighter(RED), lighter(BLUE));
        assert_eq!(light_red, [0xea, 0x93, 0x93]);
        let (hx, hy) = px(0.95, 0.85);
        assert_eq!(hy, fy);
        assert_eq!(c.get(hx, hy), Some(light_red));
        assert_eq!(c.get(hx, hy - CAP), Some(light_red));
        assert_eq!(c.get(hx, hy + CAP), Some(light_red));
        assert_eq!(c.get(hx + 1, hy - CAP), Some(WHITE));
        assert_eq!(c.get((hx + fx) / 2, hy), Some(light_red));
        let (vx, vy) = px(0.90, 0.79);
        assert_eq!((vx, c.get(vx, vy)), (fx, Some(light_red)));
        assert_eq!(c.get(vx - CAP, vy), Some(light_red));
        let (bx, by) = px(0.72, 0.83);
        assert_eq!(c.get(bx, by), Some(light_blue));
        assert_eq!(c.get(bx + CAP, by), Some(light_blue));
        let (bx, by) = px(0.68, 0.78);
        assert_eq!(c.get(bx, by), Some(light_blue));

        // the diagonal runs from the (lo, lo) corner to the (100%, 100%) corner, in grey
        assert_eq!(px(lo, lo), (70, 430));
        assert_eq!(px(1.0, 1.0), (450, 50));
        for k in [1, 2, 3, 100, 377, 378, 379] {
            assert_eq!(c.get(70 + k, 430 - k), Some(GREY), "{k}");
        }
        assert_eq!(c.get(70 + 100 + 2, 430 - 100), Some(WHITE));
        // a point on the diagonal sits on its pixels
        let (dx, dy) = px(0.8, 0.8);
        assert_eq!(dx - 70, 430 - dy);
        assert_eq!(c.get(dx, dy), Some(GREY));

        // the grid: the 70% line, vertical and horizontal, away from anything else
        let (gx, gy) = px(0.70, 0.70);
        assert_eq!(c.get(gx, 60), Some(GRID));
        assert_eq!(c.get(440, gy), Some(GRID));
        // the frame
        assert_eq!(c.get(70, 200), Some(GREY));
        assert_eq!(c.get(450, 200), Some(GREY));

        // labels to the upper right, in the point's colour
        assert!(ink(&c, RED, (fx + 5, fy - 12), (fx + 10, fy - 4)) >= 5);
        assert!(ink(&c, BLUE, (ox + 5, oy - 12), (ox + 10, oy - 4)) >= 5);

        // the legend: red and blue dots, a grey stroke and text, right of the data region
        let legend = |color| ink(&c, color, (LEGEND_X, TOP), (W - 1, TOP + 70));
        assert!(legend(RED) >= 20, "{}", legend(RED));
        assert!(legend(BLUE) >= 10);
        assert!(legend(GREY) >= 10);
        assert!(legend(BLACK) >= 100);
        // title (large), subtitle in its own tone, tick labels and axis titles have ink
        assert!(ink(&c, BLACK, (70, 0), (719, 27)) > 50);
        assert!(ink(&c, SUBTLE, (70, 30), (719, 42)) > 50);
        assert!(ink(&c, BLACK, (30, 40), (66, 440)) > 50);
        assert!(ink(&c, BLACK, (60, 434), (460, 479)) > 100);
        assert!(ink(&c, BLACK, (0, 60), (25, 420)) > 50);
    }

    #[test]
    fn svg_has_a_circle_per_point_the_diagonal_and_escaped_text() {
        let mut points = sample();
        points.push(point(0.8, 0.75, false, "<a&b>"));
        points.push(point(f64::NAN, 0.75, true, "lost"));
        let svg = scatter_svg(&points, "tau & <rho>", "\"quoted\" 'subtitle'");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>\n"));
        // one tooltip circle per drawable point, two more in the legend
        assert_eq!(svg.matches("<title>").count(), 3);
        assert_eq!(svg.matches("<circle").count(), 5);
        assert!(!svg.contains("lost"));
        assert!(!svg.contains("NaN"));
        // front red, others blue, at their coordinates (65% .. 100%)
        let (x, y) = (70.0 + 0.25 / 0.35 * 380.0, 430.0 - 0.2 / 0.35 * 380.0);
        assert!(svg.contains(&format!(
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"#d62728\">"
        )));
        assert_eq!(svg.matches("r=\"3\" fill=\"#1f77b4\"><title>").count(), 2);
        assert_eq!(svg.matches("stroke=\"#ea9393\"").count(), 1);
        assert_eq!(svg.matches("stroke=\"#8fbbd9\"").count(), 2);
        // the diagonal from the (lo, lo) corner to the (100%, 100%) corner
        assert!(svg.contains(
            "<line class=\"diagonal\" x1=\"70\" y1=\"430\" x2=\"450\" y2=\"50\" stroke=\"#999999\""
        ));
        // escaped text
        assert!(svg.contains(">tau &amp; &lt;rho&gt;</text>"));
        assert!(svg.contains(">&quot;quoted&quot; &apos;subtitle&apos;</text>"));
        assert!(svg.contains(">&lt;a&amp;b&gt;</text>"));
        assert!(svg.contains("<title>&lt;a&amp;b&gt;: stand-alone 80.0%, supernet 75.0%</title>"));
        assert!(!svg.contains("<a&b>"));
        // axes, ticks and legend
        for s in [
            "stand-alone validation accuracy",
            "supernet validation accuracy",
            ">65%</text>",
            ">100%</text>",
            ">front member</text>",
            ">other member</text>",
            ">y = x</text>",
        ] {
            assert!(svg.contains(s), "{s}");
        }
        assert!(!svg.contains(">60%</text>"));
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        // empty: axes from 0 to 100% with frame and diagonal, no members
        let c = scatter_canvas(&[], "", "");
        assert_eq!(decode(&c.to_png()).2, c.pixels);
        assert_eq!(c.get(70 + 190, 430 - 190), Some(GREY));
        assert_eq!(ink(&c, RED, (0, 0), (LEGEND_X - 1, 479)), 0);
        let svg = scatter_svg(&[], "", "");
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains(">0%</text>") && svg.contains(">100%</text>"));

        // non-finite accuracies are skipped, non-finite interval ends drop only the bar
        let mut inf_ci = point(0.5, 0.5, true, "ok");
        inf_ci.standalone_ci = (f64::NAN, 0.6);
        inf_ci.supernet_ci = (0.4, f64::INFINITY);
        let odd = vec![
            point(f64::NAN, 0.5, true, "a"),
            point(0.5, f64::INFINITY, true, "b"),
            point(f64::NEG_INFINITY, f64::NAN, false, "c"),
            inf_ci,
        ];
        let c = scatter_canvas(&odd, "odd", "NaN");
        let (x, y) = expect_px(0.5, 0.5, 0.5);
        assert_eq!(c.get(x, y), Some(RED));
        assert_eq!(ink(&c, lighter(RED), (0, 0), (719, 479)), 0);
        assert_eq!(ink(&c, BLUE, (0, 0), (LEGEND_X - 1, 479)), 0);
        let svg = scatter_svg(&odd, "odd", "NaN");
        assert_eq!(svg.matches("<title>").count(), 1);
        assert!(!svg.contains("=\"NaN") && !svg.contains("=\"inf"));

        // all values equal
        let same = vec![point(0.8, 0.8, true, "x"); 5];
        let c = scatter_canvas(&same, "same", "");
        let (x, y) = expect_px(0.75, 0.8, 0.8);
        assert_eq!(c.get(x, y), Some(RED));
        assert_eq!(scatter_svg(&same, "", "").matches("<title>").count(), 5);

        // values at 0 and 1 (intervals reaching past them are clamped), a reversed interval,
        // a value past 100%, a title too long for the large font
        let mut edges = vec![
            point(0.0, 0.0, false, "zero"),
            point(1.0, 1.0, true, "one"),
            point(1.2, -0.1, false, ""),
        ];
        edges[1].supernet_ci = (1.0, 0.97);
        let c = scatter_canvas(&edges, &"long title ".repeat(30), "");
        assert_eq!(c.get(70, 430), Some(BLUE));
        assert_eq!(c.get(450, 50), Some(RED));
        // the reversed interval is drawn from 97% to 100%
        let (x, y) = expect_px(0.0, 1.0, 0.97);
        assert_eq!(c.get(x, y), Some(lighter(RED)));
        let png = scatter_png(&edges, "edges", "");
        assert_eq!(decode(&png).0, 720);
        let svg = scatter_svg(&edges, "edges", "");
        assert_eq!(svg.matches("<title>").count(), 3);
        // the value past 100% and the negative one are drawn at the frame
        assert!(svg.contains("<circle cx=\"450.0\" cy=\"430.0\" r=\"3\""));
        assert_eq!(c.get(450, 430), Some(BLUE));
    }
}
