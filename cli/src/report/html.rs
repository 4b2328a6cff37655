//! The report page's HTML: a small builder that escapes every text it is given and inlines
//! the plots' SVG, with its stylesheet in the page.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use search::{Row, SearchReport};
use stats::Interval;

use super::Exported;
use crate::run_dir::TrainSummary;

const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2rem auto;
       max-width: 1100px; padding: 0 1rem; color: #1b1b1b; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.2rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
table { border-collapse: collapse; font-size: .9rem; margin: .6rem 0; display: block; overflow-x: auto; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #e4e4e4; text-align: right; vertical-align: top; }
th { background: #f4f4f4; }
td { white-space: nowrap; }
td.f { white-space: normal; min-width: 12rem; }
td.l, th.l { text-align: left; }
.cards { display: flex; flex-wrap: wrap; gap: .8rem; margin: 1rem 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .6rem .9rem; min-width: 11rem; }
.card b { display: block; font-size: 1.25rem; }
.card span { color: #555; font-size: .85rem; }
figure { margin: 1rem 0; }
figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: .9rem; }
pre { background: #f7f7f7; padding: .8rem; overflow-x: auto; font-size: .8rem; }
code { font-size: .9em; }
.muted { color: #666; }
";

/// A check the page runs on itself once loaded, for people and for the headless-browser
/// test: every inlined plot must have been laid out with a size; the count of those that were
/// lands in `<body data-rendered>`, and any that was not is a console error. The page needs
/// no script to show.
const CHECK: &str = "
window.addEventListener('load', function () {
  var ok = 0;
  document.querySelectorAll('figure svg').forEach(function (svg, i) {
    var box = svg.getBoundingClientRect();
    if (box.width > 0 && box.height > 0 && svg.getBBox().width > 0) { ok += 1; }
    else { console.error('plot ' + i + ' has no size'); }
  });
  document.body.setAttribute('data-rendered', String(ok));
});
";

/// HTML-escapes `s` for text and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `12.34%`.
fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.2}%", x * 100.0)
    } else {
        "–".to_string()
    }
}

/// `[a%, b%]`, or a dash when unknown.
fn interval(i: Option<Interval>) -> String {
    i.map_or_else(
        || "–".to_string(),
        |i| format!("[{:.2}%, {:.2}%]", i.lo * 100.0, i.hi * 100.0),
    )
}

/// `1,234.5` millions.
fn millions(x: u64) -> String {
    let m = x as f64 / 1e6;
    if m >= 100.0 {
        group(format!("{m:.0}"))
    } else {
        format!("{m:.1}")
    }
}

/// Thousands separators on an integer string.
fn group(digits: String) -> String {
    let n = digits.len();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (n - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The formats of a member, counted: `W int4 ×3, int8 ×1 · A int8 ×4`.
fn formats(row: &Row) -> String {
    let mut w: BTreeMap<String, usize> = BTreeMap::new();
    let mut a: BTreeMap<String, usize> = BTreeMap::new();
    for f in row.arch.formats.values() {
        *w.entry(f.weights.to_string()).or_default() += 1;
        *a.entry(f.activations.to_string()).or_default() += 1;
    }
    let list = |m: &BTreeMap<String, usize>| {
        m.iter()
            .map(|(k, n)| format!("{k} ×{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if w.is_empty() {
        return "pinned".to_string();
    }
    format!("W {} · A {}", list(&w), list(&a))
}

/// The page being built.
#[derive(Debug)]
pub(crate) struct Page {
    body: String,
    title: String,
}

impl Page {
    pub(crate) fn new(title: &str) -> Page {
        Page {
            body: format!("<h1>{}</h1>\n", escape(title)),
            title: title.to_string(),
        }
    }

    /// A paragraph of (already escaped) HTML.
    pub(crate) fn para(&mut self, html: &str) {
        let _ = writeln!(self.body, "<p>{html}</p>");
    }

    fn h2(&mut self, text: &str, id: &str) {
        let _ = writeln!(self.body, "<h2 id=\"{id}\">{}</h2>", escape(text));
    }

    /// The headline figures, one card each.
    pub(crate) fn overview(
        &mut self,
        train: Option<&TrainSummary>,
        search: Option<&SearchReport>,
        models: usize,
        correlate: Option<&serde_json::Value>,
    ) {
        let mut cards: Vec<(String, String)> = Vec::new();
        if let Some(t) = train {
            cards.push((
                format!("{} steps", t.steps),
                format!("supernet trained, {:.0} img/s", t.images_per_second),
            ));
        }
        if let Some(s) = search {
            cards.push((
                format!("{} members", s.front.len()),
                format!("on the front, of {} evaluated", s.evaluated),
            ));
            cards.push((format!("{:.4}", s.hypervolume), "hypervolume".to_string()));
        }
        cards.push((models.to_string(), "exported models".to_string()));
        if let Some(tau) = correlate.and_then(|c| c.pointer("/analysis/kendall_tau_b/value")) {
            cards.push((
                format!("{:.2}", tau.as_f64().unwrap_or(f64::NAN)),
                "Kendall tau-b against training alone".to_string(),
            ));
        }
        self.body.push_str("<div class=\"cards\">\n");
        for (value, label) in cards {
            let _ = writeln!(
                self.body,
                "<div class=\"card\"><b>{}</b><span>{}</span></div>",
                escape(&value),
                escape(&label)
            );
        }
        self.body.push_str("</div>\n");
    }

    /// A plot, its SVG inlined (its XML declaration and doctype dropped).
    pub(crate) fn figure(&mut self, heading: &str, caption: &str, file: &str, svg: &str) {
        let start = svg.find("<svg").unwrap_or(0);
        let id = file.replace(['/', '.'], "-");
        self.h2(heading, &id);
        let _ = writeln!(
            self.body,
            "<figure>\n{}\n<figcaption>{} <span class=\"muted\">(<a href=\"{}\">{}</a>)</span></figcaption>\n</figure>",
            &svg[start..],
            escape(caption),
            escape(file),
            escape(file)
        );
    }

    /// The front, cheapest first, with links to the exported folders.
    pub(crate) fn front_table(&mut self, s: &SearchReport, models: &[Exported]) {
        self.h2("The front", "front");
        self.body.push_str(
            "<table>\n<tr><th>#</th><th class=\"l\">from</th><th>accuracy</th><th>95% interval</th>\
             <th>MBitOps</th><th>MMACs</th><th>parameters</th><th>weights, KiB</th>\
             <th class=\"l\">formats</th><th class=\"l\">exported</th></tr>\n",
        );
        for (i, r) in s.front.iter().enumerate() {
            let name = format!("front-{:02}", i + 1);
            let link = models.iter().find(|m| m.info.name == name).map_or_else(
                || "<span class=\"muted\">–</span>".to_string(),
                |m| {
                    format!(
                        "<a href=\"{}\">{}</a> (test {})",
                        escape(&m.link),
                        escape(&name),
                        pct(m.info.accuracy.test.accuracy)
                    )
                },
            );
            let _ = writeln!(
                self.body,
                "<tr><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{:.1}</td><td class=\"l f\">{}</td><td class=\"l\">{}</td></tr>",
                i + 1,
                escape(&r.origin.to_string()),
                pct(r.accuracy),
                interval(r.interval),
                millions(r.bitops),
                millions(r.macs),
                group(r.params.to_string()),
                r.weight_bits as f64 / 8.0 / 1024.0,
                escape(&formats(r)),
                link
            );
        }
        self.body.push_str("</table>\n");
    }

    /// The uniform-precision baselines.
    pub(crate) fn baseline_table(&mut self, s: &SearchReport) {
        if s.baselines.is_empty() {
            return;
        }
        self.h2("Uniform-precision baselines", "baselines");
        self.body.push_str(
            "<table>\n<tr><th class=\"l\">baseline</th><th>accuracy</th><th>95% interval</th>\
             <th>MBitOps</th><th>weights, KiB</th></tr>\n",
        );
        for r in &s.baselines {
            let _ = writeln!(
                self.body,
                "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td></tr>",
                escape(&search::plot::baseline_label(&r.origin)),
                pct(r.accuracy),
                interval(r.interval),
                millions(r.bitops),
                r.weight_bits as f64 / 8.0 / 1024.0
            );
        }
        self.body.push_str("</table>\n");
    }

    /// FLIQS's policies, when the search was FLIQS.
    pub(crate) fn policies(&mut self, s: &SearchReport) {
        if s.policies.is_empty() {
            return;
        }
        self.h2("FLIQS policies", "policies");
        self.body.push_str(
            "<table>\n<tr><th>target</th><th>argmax MBitOps</th><th>cost / target</th>\
             <th>entropy, nats</th><th>stable for</th><th class=\"l\">stable</th></tr>\n",
        );
        for p in &s.policies {
            let _ = writeln!(
                self.body,
                "<tr><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3} of {:.3}</td><td>{} of {} updates</td><td class=\"l\">{}</td></tr>",
                p.target,
                millions(p.argmax_bitops),
                p.cost_ratio,
                p.entropy,
                p.max_entropy,
                p.stable_steps,
                p.steps,
                if p.stable { "yes" } else { "no" }
            );
        }
        self.body.push_str("</table>\n");
    }

    /// The search's settings.
    pub(crate) fn search_settings(&mut self, s: &SearchReport) {
        self.h2("Search", "search");
        let settings = serde_json::to_string_pretty(&s.settings).unwrap_or_default();
        let _ = writeln!(
            self.body,
            "<p>{} members evaluated (baselines included), hypervolume {:.4}. Files: \
             <a href=\"search/pareto.csv\">pareto.csv</a>, <a href=\"search/pareto.json\">pareto.json</a>, \
             <a href=\"search/evaluated.csv\">evaluated.csv</a>.</p>\n<pre>{}</pre>",
            s.evaluated,
            s.hypervolume,
            escape(&settings)
        );
    }

    /// The exported model folders.
    pub(crate) fn models_table(&mut self, models: &[Exported]) {
        if models.is_empty() {
            return;
        }
        self.h2("Exported models", "models");
        self.body.push_str(
            "<table>\n<tr><th class=\"l\">folder</th><th class=\"l\">from</th><th>validation</th>\
             <th>test</th><th>test 95% interval</th><th>MBitOps</th><th>weights file, KiB</th>\
             <th class=\"l\">ONNX</th></tr>\n",
        );
        for m in models {
            let onnx = m.info.onnx.as_ref().map_or_else(
                || "–".to_string(),
                |o| {
                    format!(
                        "<a href=\"{}{}\">{}</a>",
                        escape(&m.link),
                        escape(&o.file),
                        escape(&o.file)
                    )
                },
            );
            let _ = writeln!(
                self.body,
                "<tr><td class=\"l\"><a href=\"{}\">{}</a></td><td class=\"l\">{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{:.1}</td><td class=\"l\">{}</td></tr>",
                escape(&m.link),
                escape(&m.info.name),
                escape(&m.info.origin.to_string()),
                pct(m.info.accuracy.validation.accuracy),
                pct(m.info.accuracy.test.accuracy),
                interval(Some(m.info.accuracy.test.interval)),
                millions(m.info.cost.bitops),
                m.info.size.weights_file_bytes as f64 / 1024.0,
                onnx
            );
        }
        self.body.push_str("</table>\n");
    }

    /// The training's summary and its reference members.
    pub(crate) fn training(&mut self, t: &TrainSummary) {
        self.h2("Training", "training");
        let _ = writeln!(
            self.body,
            "<p>{} steps ({} in the last invocation, {:.0} s, {:.0} images/s). \
             Files: <a href=\"train.json\">train.json</a>, <a href=\"metrics.jsonl\">metrics.jsonl</a>.</p>",
            t.steps,
            t.steps - t.resumed_from,
            t.seconds,
            t.images_per_second
        );
        self.body.push_str(
            "<table>\n<tr><th class=\"l\">reference member</th><th>validation accuracy</th>\
             <th>95% interval</th><th>images</th></tr>\n",
        );
        for m in &t.members {
            let _ = writeln!(
                self.body,
                "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&m.name),
                pct(m.validation.accuracy),
                interval(Some(m.validation.interval)),
                m.validation.total
            );
        }
        self.body.push_str("</table>\n");
    }

    /// `qnas correlate`'s figures (read as JSON, so that a report never fails on an older
    /// schema: a figure that is missing shows as a dash).
    pub(crate) fn correlate(&mut self, c: &serde_json::Value) {
        self.h2("Against stand-alone training", "correlate");
        let figure = |key: &str| {
            let v = c.pointer(&format!("/analysis/{key}/value"))?.as_f64()?;
            let lo = c
                .pointer(&format!("/analysis/{key}/interval/lo"))?
                .as_f64()?;
            let hi = c
                .pointer(&format!("/analysis/{key}/interval/hi"))?
                .as_f64()?;
            Some(format!("{v:.2} [{lo:.2}, {hi:.2}]"))
        };
        let floor = c
            .pointer("/seed_agreement/kendall_tau_b/value")
            .and_then(serde_json::Value::as_f64)
            .map_or_else(|| "–".to_string(), |v| format!("{v:.2}"));
        let get = |p: &str| {
            c.pointer(p)
                .map_or_else(|| "–".to_string(), |v| v.to_string())
        };
        let _ = writeln!(
            self.body,
            "<p>{} members, each trained alone {} time(s) for {} steps, measured on {} images of the {} split \
             (<a href=\"correlate/correlate.json\">correlate.json</a>, <a href=\"correlate/correlate.csv\">correlate.csv</a>).</p>\n\
             <table>\n<tr><th class=\"l\">figure</th><th>value [95% interval]</th></tr>\n\
             <tr><td class=\"l\">Kendall tau-b</td><td>{}</td></tr>\n\
             <tr><td class=\"l\">Spearman rho</td><td>{}</td></tr>\n\
             <tr><td class=\"l\">top-k overlap</td><td>{}</td></tr>\n\
             <tr><td class=\"l\">tau-b between two trainings alone (noise floor)</td><td>{}</td></tr>\n</table>",
            escape(&get("/members")),
            escape(&get("/seeds")),
            escape(&get("/steps")),
            escape(&get("/images")),
            escape(&get("/split").replace('"', "")),
            escape(&figure("kendall_tau_b").unwrap_or_else(|| "–".into())),
            escape(&figure("spearman_rho").unwrap_or_else(|| "–".into())),
            escape(&figure("top_k_overlap").unwrap_or_else(|| "–".into())),
            escape(&floor)
        );
    }

    /// A source file, folded.
    pub(crate) fn source(&mut self, heading: &str, file: &str, text: &str) {
        let _ = writeln!(
            self.body,
            "<details><summary>{} (<a href=\"{}\">{}</a>)</summary>\n<pre>{}</pre></details>",
            escape(heading),
            escape(file),
            escape(file),
            escape(text)
        );
    }

    /// The whole document.
    pub(crate) fn finish(self) -> String {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{}</title>\n<style>{STYLE}</style>\n<script>{CHECK}</script>\n</head>\n<body>\n{}</body>\n</html>\n",
            escape(&self.title),
            self.body
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(group("1234567".into()), "1,234,567");
        assert_eq!(group("123".into()), "123");
        assert_eq!(millions(977_850_368), "978");
        assert_eq!(millions(4_805_312), "4.8");
        assert_eq!(millions(15_646_000_000), "15,646");
    }

    #[test]
    fn a_figure_drops_the_xml_declaration() {
        let mut p = Page::new("t");
        p.figure(
            "h",
            "c",
            "search/pareto.svg",
            "<?xml version=\"1.0\"?>\n<svg width=\"1\"></svg>",
        );
        let html = p.finish();
        assert!(html.contains("<figure>\n<svg width=\"1\"></svg>"));
        assert!(!html.contains("<?xml"));
        assert!(html.contains("id=\"search-pareto-svg\""));
    }
}
