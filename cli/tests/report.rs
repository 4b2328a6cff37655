//! `qnas report` and the report `qnas run` writes at its end: the page lists the front with
//! links that resolve, inlines the plots, and renders in headless Chromium without a console
//! error (Debian's `chromium`; `.ci/run` installs it and sets `QNAS_REQUIRE_BROWSER`, under
//! which its absence fails the test).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{qnas, qnas_ok, tmp};

/// The browser, if installed.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("QNAS_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    path.exists().then_some(path)
}

/// Runs headless Chromium on `page` with `args`; returns its stdout and its log.
fn headless(browser: &Path, page: &Path, args: &[&str], profile: &Path) -> (String, String) {
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("start chromium");
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every `href="..."` of the page.
fn links(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .collect()
}

#[test]
#[allow(clippy::print_stderr)]
fn run_writes_a_report_that_renders_in_a_browser() {
    let dir = tmp("report");
    let run = dir.join("run");
    let r = run.to_str().unwrap();
    let out = qnas_ok(&["run", "spaces/presets/digits.ron", "--run", r]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let page = run.join("report.html");
    assert!(
        stdout
            .lines()
            .last()
            .is_some_and(|l| l == format!("report: {}", page.display())),
        "{stdout}"
    );
    let html = std::fs::read_to_string(&page).unwrap();

    // the front's members, each linked to its exported folder, and every link resolves
    let pareto: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("search/pareto.json")).unwrap()).unwrap();
    let front = pareto["front"].as_array().unwrap().len();
    assert!(front >= 2, "{front}");
    for i in 1..=front {
        assert!(
            html.contains(&format!(
                "<a href=\"export/front-{i:02}/\">front-{i:02}</a>"
            )),
            "front-{i:02} not linked"
        );
    }
    let hrefs = links(&html);
    assert!(hrefs.len() > 2 * front, "{hrefs:?}");
    for href in &hrefs {
        assert!(run.join(href).exists(), "{href} does not resolve");
    }
    // self-contained: nothing fetched from elsewhere
    for fetch in ["src=\"", "href=\"http", "url(", "@import"] {
        assert!(!html.contains(fetch), "external resource: {fetch}");
    }

    // `qnas report --json` makes the same page again and names its plots
    let json = qnas_ok(&["report", r, "--json"]);
    let summary: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(summary["schema"], "qnas.report/1");
    assert_eq!(summary["front"], front);
    assert_eq!(summary["correlate"], false);
    let plots = summary["plots"].as_array().unwrap().len();
    assert!(plots >= 4, "{summary}");
    assert_eq!(html.matches("<figure>").count(), plots);
    assert_eq!(std::fs::read_to_string(&page).unwrap(), html);

    // `qnas correlate` makes the page again, with its figures and its scatter
    // every front member and one more (correlate trains the whole front)
    let members = (front + 1).to_string();
    let corr = qnas_ok(&["correlate", r, "--members", &members, "--steps", "20"]);
    assert!(String::from_utf8_lossy(&corr.stderr).contains(&format!("report: {}", page.display())));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("Kendall tau-b"),
        "no correlation in the report"
    );
    assert_eq!(html.matches("<figure>").count(), plots + 1);
    let plots = plots + 1;

    // a folder that is not a run: exit 2, naming it
    let bad = qnas(&["report", dir.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a run folder"));

    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("QNAS_REQUIRE_BROWSER").is_none(),
            "chromium is missing and QNAS_REQUIRE_BROWSER is set (.ci/run installs it)"
        );
        eprintln!("skipped the browser check: /usr/bin/chromium is not installed");
        return;
    };
    // rendered: the page's own check finds every plot laid out with a size, and nothing was
    // logged to the console (a script error, a failed load)
    let profile = dir.join("profile");
    let (dom, log) = headless(&browser, &page, &["--dump-dom"], &profile);
    assert!(
        dom.contains(&format!("data-rendered=\"{plots}\"")),
        "{}",
        &dom[..dom.len().min(400)]
    );
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "{console:?}");
    // and drawn: a screenshot of the requested size that is not blank
    let shot = dir.join("report.png");
    headless(
        &browser,
        &page,
        &[
            "--window-size=1000,1400",
            &format!("--screenshot={}", shot.display()),
        ],
        &profile,
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1000, 1400));
    let px = info.color_type.samples();
    let dark = buf[..info.buffer_size()]
        .chunks(px)
        .filter(|p| p[..3].iter().all(|&c| c < 128))
        .count();
    let total = (info.width * info.height) as usize;
    assert!(
        dark * 200 > total && dark * 2 < total,
        "{dark} of {total} pixels dark"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
