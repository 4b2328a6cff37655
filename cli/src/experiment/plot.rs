//! An experiment's plot as SVG: each search's front (its own members) as a coloured step line,
//! the uniform baselines' front in black, accuracy against BitOps on a log axis, with a
//! legend. (The run's single-search plot is the search crate's `svg_plot`.)

use search::Row;
use search::svg_plot::{log_decades, xml};

const COLOURS: [&str; 8] = [
    "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
];

/// The plot of `series` (label, front rows) and the `uniform` front.
pub fn fronts_svg(title: &str, series: &[(String, Vec<Row>)], uniform: &[Row]) -> String {
    let (w, h, ml, mr, mt, mb) = (760.0, 500.0, 70.0, 200.0, 40.0, 50.0);
    let all: Vec<&Row> = series
        .iter()
        .flat_map(|(_, r)| r.iter())
        .chain(uniform.iter())
        .filter(|r| r.accuracy.is_finite())
        .collect();
    let (x0, x1) = log_decades(all.iter().map(|r| r.bitops));
    let lowest = all.iter().map(|r| r.accuracy).fold(1.0, f64::min);
    let y0 = ((lowest * 50.0).floor() / 50.0).clamp(0.0, 0.96);
    let y1 = 1.0;
    let px = |b: u64| ml + ((b.max(1) as f64).log10() - x0) / (x1 - x0) * (w - ml - mr);
    let py = |a: f64| mt + (1.0 - (a - y0) / (y1 - y0)) * (h - mt - mb);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{ml}\" y=\"22\" font-size=\"15\">{}</text>\n",
        xml(title)
    );
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
    let step = if y1 - y0 > 0.3 {
        0.1
    } else if y1 - y0 > 0.08 {
        0.02
    } else {
        0.01
    };
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
        a += step;
    }
    s += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">BitOps (log scale)</text>\n<text transform=\"translate(16 {}) rotate(-90)\" text-anchor=\"middle\">validation accuracy</text>\n",
        (w - mr + ml) / 2.0,
        h - 10.0,
        (h + mt - mb) / 2.0
    );
    // a front as a step line: flat until the next member's BitOps, then up
    let steps = |rows: &[Row]| -> String {
        let mut pts = Vec::new();
        let mut sorted: Vec<&Row> = rows.iter().filter(|r| r.accuracy.is_finite()).collect();
        sorted.sort_by_key(|r| r.bitops);
        for (i, r) in sorted.iter().enumerate() {
            if i > 0 {
                pts.push(format!(
                    "{:.1},{:.1}",
                    px(r.bitops),
                    py(sorted[i - 1].accuracy)
                ));
            }
            pts.push(format!("{:.1},{:.1}", px(r.bitops), py(r.accuracy)));
        }
        pts.join(" ")
    };
    let mut legend: Vec<(String, &str, bool)> = Vec::new();
    for (i, (label, rows)) in series.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        s += &format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"2\"/>\n",
            steps(rows)
        );
        for r in rows.iter().filter(|r| r.accuracy.is_finite()) {
            s += &format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{c}\"/>\n",
                px(r.bitops),
                py(r.accuracy)
            );
        }
        legend.push((label.clone(), c, false));
    }
    if !uniform.is_empty() {
        s += &format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"black\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\"/>\n",
            steps(uniform)
        );
        for r in uniform.iter().filter(|r| r.accuracy.is_finite()) {
            s += &format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"7\" height=\"7\" fill=\"black\"/>\n",
                px(r.bitops) - 3.5,
                py(r.accuracy) - 3.5
            );
        }
        legend.push(("uniform baselines".into(), "black", true));
    }
    for (i, (label, c, square)) in legend.iter().enumerate() {
        let (x, y) = (w - mr + 16.0, mt + 10.0 + 20.0 * i as f64);
        s += &if *square {
            format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"8\" height=\"8\" fill=\"{c}\"/>",
                x - 4.0,
                y - 4.0
            )
        } else {
            format!("<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{c}\"/>")
        };
        s += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            x + 10.0,
            y + 4.0,
            xml(label)
        );
    }
    s += "</svg>\n";
    s
}
