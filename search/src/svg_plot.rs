//! The search's plot as SVG: accuracy against BitOps (log x-axis), every evaluated member in
//! grey, the front as a line, baselines marked and labelled. [`crate::png_plot`] draws the
//! same plot as PNG.

use crate::origin::Origin;
use crate::row::Row;

/// An SVG plot of accuracy against BitOps (log x-axis), every evaluated member in grey, the
/// front as a line, baselines marked and labelled.
pub fn plot_svg(rows: &[Row], front: &[Row], baselines: &[Row], title: &str) -> String {
    let (w, h, ml, mr, mt, mb) = (720.0, 480.0, 70.0, 20.0, 40.0, 50.0);
    let (x0, x1) = log_decades(rows.iter().map(|r| r.bitops));
    let ys: Vec<f64> = rows.iter().map(|r| r.accuracy).collect();
    let y0 = (ys.iter().cloned().fold(1.0, f64::min) * 10.0).floor() / 10.0;
    let (y0, y1) = (y0.min(0.9), 1.0);
    let px = |b: u64| ml + ((b.max(1) as f64).log10() - x0) / (x1 - x0) * (w - ml - mr);
    let py = |a: f64| mt + (1.0 - (a - y0) / (y1 - y0)) * (h - mt - mb);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    s += &format!(
        "<text x=\"{}\" y=\"22\" font-size=\"15\">{}</text>\n",
        ml,
        xml(title)
    );
    // axes and grid
    let mut e = x0 as i64;
    while e as f64 <= x1 {
        let x = ml + (e as f64 - x0) / (x1 - x0) * (w - ml - mr);
        s += &format!(
            "<line x1=\"{x:.1}\" y1=\"{mt}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#ddd\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">1e{e}</text>\n",
            h - mb,
            h - mb + 16.0
        );
        e += 1;
    }
    let mut a = y0;
    while a <= y1 + 1e-9 {
        let y = py(a);
        s += &format!(
            "<line x1=\"{ml}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}%</text>\n",
            w - mr,
            ml - 6.0,
            y + 4.0,
            a * 100.0
        );
        a += if y1 - y0 > 0.3 { 0.1 } else { 0.02 };
    }
    s += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">BitOps (log scale)</text>\n",
        (w + ml) / 2.0,
        h - 10.0
    );
    s += &format!(
        "<text transform=\"translate(16 {}) rotate(-90)\" text-anchor=\"middle\">validation accuracy</text>\n",
        (h + mt - mb) / 2.0
    );
    for r in rows {
        s += &format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"#999\"/>\n",
            px(r.bitops),
            py(r.accuracy)
        );
    }
    let path: Vec<String> = front
        .iter()
        .map(|r| format!("{:.1},{:.1}", px(r.bitops), py(r.accuracy)))
        .collect();
    s += &format!(
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\"/>\n",
        path.join(" ")
    );
    for r in front {
        s += &format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#d62728\"/>\n",
            px(r.bitops),
            py(r.accuracy)
        );
    }
    for r in baselines {
        let (x, y) = (px(r.bitops), py(r.accuracy));
        s += &format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"7\" height=\"7\" fill=\"#1f77b4\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"#1f77b4\">{}</text>\n",
            x - 3.5,
            y - 3.5,
            x + 6.0,
            y - 6.0,
            xml(&baseline_label(&r.origin))
        );
    }
    s += "</svg>\n";
    s
}

/// The log10 BitOps axis of the plots: from the floor of the smallest to the ceiling of the
/// largest decade (one decade either side of a single value); 1e0..1e1 with nothing to plot.
pub fn log_decades(bitops: impl IntoIterator<Item = u64>) -> (f64, f64) {
    let (x0, x1) = bitops
        .into_iter()
        .map(|b| (b.max(1) as f64).log10())
        .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    if x1 < x0 {
        (0.0, 1.0)
    } else if x1 > x0 {
        (x0.floor(), x1.ceil())
    } else {
        (x0 - 1.0, x0 + 1.0)
    }
}

/// `s` with `&`, `<` and `>` escaped for SVG text.
pub fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A baseline's label in plots: its format and size (`int8 largest`).
pub fn baseline_label(origin: &Origin) -> String {
    match origin {
        Origin::Baseline { format, size } => format!("{format} {}", size.as_str()),
        other => other.to_string(),
    }
}
