//! The plots of a search, a training, `qnas correlate` and `qnas experiment`, drawn with
//! `plotters`. Each figure is one type implementing [`Figure`], whose `draw` is generic over
//! plotters' `DrawingBackend`: [`render`] runs it once on the SVG backend and once on an RGB
//! bitmap, which the `png` crate encodes, so the SVG and the PNG of a figure cannot disagree.
//! [`write`] writes both files atomically (`NAME.svg`, `NAME.png`).
//!
//! Text is laid out by plotters with DejaVu Sans from the `dejavu` crate, registered as its
//! `sans-serif` family on first use (no system font is read), and drawn into the PNG by
//! the `raster` backend with `ab_glyph`; the SVG names `sans-serif` for the viewer's own.
//!
//! - [`pareto`]: accuracy against log BitOps, the front as a step line with its intervals;
//! - [`hypervolume`]: the front's hypervolume against the members evaluated;
//! - [`formats`]: the format of every decision of every front member, as a heat map;
//! - [`training`]: loss, batch accuracies and learning rate of a training, per step;
//! - [`scatter`]: `qnas correlate`'s supernet against stand-alone accuracy;
//! - [`fronts`]: an experiment's fronts, one per search, and the uniform baselines'.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::*;
use plotters::style::{FontStyle, RGBColor, register_font};

use crate::fsio::{IoError, write_atomic};
use crate::origin::Origin;

pub mod formats;
pub mod fronts;
pub mod hypervolume;
mod labels;
pub mod pareto;
pub mod scatter;
pub mod training;

mod raster;
#[cfg(test)]
mod testing;

/// The font family every text of the figures uses (DejaVu Sans in the PNG).
pub const FAMILY: &str = "sans-serif";

/// Why a figure could not be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The embedded font could not be read (a broken build).
    #[error("the plots' font (DejaVu Sans) could not be read")]
    Font,
    /// plotters failed to draw.
    #[error("drawing a plot failed: {message}")]
    Draw {
        /// plotters' message.
        message: String,
    },
    /// Encoding the PNG failed.
    #[error("encoding a plot as PNG failed: {0}")]
    Png(#[from] png::EncodingError),
    /// Writing a file failed.
    #[error(transparent)]
    Io(#[from] IoError),
}

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for PlotError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        PlotError::Draw {
            message: e.to_string(),
        }
    }
}

/// A figure: its size and one drawing, for any plotters backend.
pub trait Figure {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);

    /// Draws the whole figure on `root`, the canvas of [`Figure::size`].
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError>;
}

/// A figure drawn on both backends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// The SVG document.
    pub svg: String,
    /// The PNG file (8-bit RGB).
    pub png: Vec<u8>,
    /// The raw RGB pixels behind the PNG, row-major, 3 bytes a pixel.
    pub rgb: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Registers the font once per process.
fn fonts() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        register_font(FAMILY, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && register_font(FAMILY, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok { Ok(()) } else { Err(PlotError::Font) }
}

/// Draws `figure` as SVG and as PNG.
pub fn render(figure: &impl Figure) -> Result<Rendered, PlotError> {
    fonts()?;
    let (width, height) = figure.size();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        figure.draw(&root)?;
        root.present()?;
    }
    let mut rgb = vec![0u8; width as usize * height as usize * 3];
    {
        let backend = raster::Raster::new(&mut rgb, (width, height)).ok_or(PlotError::Font)?;
        let root = backend.into_drawing_area();
        figure.draw(&root)?;
        root.present()?;
    }
    let png = encode_png(width, height, &rgb)?;
    Ok(Rendered {
        svg,
        png,
        rgb,
        width,
        height,
    })
}

/// `width` x `height` RGB pixels as a PNG file.
fn encode_png(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>, PlotError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

/// Draws `figure` and writes `dir/NAME.svg` and `dir/NAME.png`, each atomically.
pub fn write(dir: &Path, name: &str, figure: &impl Figure) -> Result<(), PlotError> {
    let r = render(figure)?;
    write_atomic(&dir.join(format!("{name}.svg")), r.svg.as_bytes())?;
    write_atomic(&dir.join(format!("{name}.png")), &r.png)?;
    Ok(())
}

/// Black.
pub const INK: RGBColor = RGBColor(0x22, 0x22, 0x22);
/// Secondary text (`#555`).
pub const SUBTLE: RGBColor = RGBColor(0x55, 0x55, 0x55);
/// Grid lines (`#e4e4e4`).
pub const GRID: RGBColor = RGBColor(0xe4, 0xe4, 0xe4);
/// Frames and diagonals (`#999`).
pub const FRAME: RGBColor = RGBColor(0x99, 0x99, 0x99);
/// Evaluated members off the front (`#bbb`).
pub const LIGHT: RGBColor = RGBColor(0xbb, 0xbb, 0xbb);
/// The tab10 palette: series colours, the first (red) for fronts.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x17, 0xbe, 0xcf),
];
/// The front (tab10 red).
pub const FRONT: RGBColor = PALETTE[0];
/// Baselines (tab10 blue).
pub const BASELINE: RGBColor = PALETTE[1];

/// Halfway from `c` to white: the tone of error bars.
pub const fn lighter(c: RGBColor) -> RGBColor {
    RGBColor(
        ((c.0 as u16 + 255) / 2) as u8,
        ((c.1 as u16 + 255) / 2) as u8,
        ((c.2 as u16 + 255) / 2) as u8,
    )
}

/// The text style of `size` pixels in `color`.
fn text(size: f64, color: RGBColor) -> TextStyle<'static> {
    let mut style = TextStyle::from((FAMILY, size).into_font());
    style.color = color.to_backend_color();
    style
}

/// The title's text style: size 20, or smaller until `title` fits `width` pixels (at least 12).
fn title_style<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    width: u32,
) -> TextStyle<'static> {
    let mut size = 20.0;
    while size > 12.0 {
        let fits = area
            .estimate_text_size(title, &text(size, INK))
            .is_ok_and(|(w, _)| w <= width);
        if fits {
            break;
        }
        size -= 1.0;
    }
    text(size, INK)
}

/// Draws `title` (and `subtitle`, when not empty) at the top left of `root`, `left` pixels in.
fn draw_title<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: &str,
    left: i32,
) -> Result<(), PlotError> {
    let width = root.dim_in_pixel().0.saturating_sub(left as u32 + 10);
    root.draw_text(title, &title_style(root, title, width), (left, 10))?;
    if !subtitle.is_empty() {
        root.draw_text(subtitle, &text(14.0, SUBTLE), (left, 32))?;
    }
    Ok(())
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

/// log10 of a BitOps count (0 counts as 1).
pub fn log_bitops(bitops: u64) -> f64 {
    (bitops.max(1) as f64).log10()
}

/// A decade's tick label, `10⁶` for 6.
pub fn decade_label(exponent: f64) -> String {
    const SUPER: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    let e = exponent.round() as i64;
    let digits: String = e
        .unsigned_abs()
        .to_string()
        .chars()
        .map(|d| SUPER[d.to_digit(10).unwrap_or(0) as usize])
        .collect();
    format!("10{}{digits}", if e < 0 { "⁻" } else { "" })
}

/// The integer decades from `x0` to `x1` (log10 values), the BitOps axis's labelled ticks.
fn decades(x0: f64, x1: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut e = x0.ceil();
    while e <= x1 + 1e-9 {
        out.push(e);
        e += 1.0;
    }
    out
}

/// log10 of 2..9 times each decade from `x0` to `x1`: the BitOps axis's light grid lines.
fn decade_minors(x0: f64, x1: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut e = x0.floor();
    while e < x1 {
        for k in 2..10 {
            let v = e + (k as f64).log10();
            if v > x0 && v < x1 {
                out.push(v);
            }
        }
        e += 1.0;
    }
    out
}

/// The chart type of every figure: two f64 axes with chosen ticks.
type Plane = Cartesian2d<Axis, Axis>;

/// One axis of a chart: its range, its labelled ticks (grid lines) and light grid lines.
#[derive(Clone, Debug, PartialEq)]
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    minor: Vec<f64>,
}

impl Axis {
    /// log10 BitOps over whole decades ([`log_decades`]) and 3% more either side (so that
    /// points at a decade are not cut by the frame), ticks at the decades and light lines at
    /// 2..9 times each.
    fn bitops(bitops: impl IntoIterator<Item = u64>) -> Axis {
        let (lo, hi) = log_decades(bitops);
        let pad = 0.03 * (hi - lo);
        Axis {
            lo: lo - pad,
            hi: hi + pad,
            ticks: decades(lo, hi),
            minor: decade_minors(lo, hi),
        }
    }

    /// From `lo` to `hi` with ticks at multiples of a round step (1, 2 or 5 times a power of
    /// ten) of which at most `max_ticks` fit; `hi` is raised above `lo` when they are equal.
    fn linear(lo: f64, hi: f64, max_ticks: usize) -> Axis {
        let (lo, hi) = if lo.is_finite() && hi.is_finite() {
            (lo.min(hi), lo.max(hi))
        } else {
            (0.0, 1.0)
        };
        let hi = if hi > lo { hi } else { lo + 1.0 };
        let step = nice_step((hi - lo) / max_ticks.max(1) as f64);
        let mut ticks = Vec::new();
        let mut k = (lo / step - 1e-9).ceil();
        while k * step <= hi + step * 1e-9 {
            // `+ 0.0`: no tick at -0
            ticks.push(k * step + 0.0);
            k += 1.0;
        }
        Axis {
            lo,
            hi,
            ticks,
            minor: Vec::new(),
        }
    }

    /// Accuracy from `lowest` rounded down to a multiple of `round` (at most `1 - round`) to
    /// 100%; not finite gives 0..100%.
    fn accuracy(lowest: f64, round: f64) -> Axis {
        // divided by a whole number, so that 0.7 stays 0.7
        let per = (1.0 / round).round();
        let lo = if lowest.is_finite() {
            ((lowest * per + 1e-9).floor() / per).clamp(0.0, 1.0 - 1.0 / per)
        } else {
            0.0
        };
        Axis::linear(lo, 1.0, 10)
    }

    /// The spacing of the ticks (1 with fewer than two).
    fn spacing(&self) -> f64 {
        match self.ticks.as_slice() {
            [a, b, ..] => b - a,
            _ => 1.0,
        }
    }
}

/// A linear axis whose grid lines are its ticks (bold) and its minor lines (light).
impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let frac = (v - self.lo) / (self.hi - self.lo);
        let len = f64::from(limit.1 - limit.0);
        // as plotters' own f64 axis: floor towards the start, a hair of tolerance
        if len >= 0.0 {
            limit.0 + (len * frac + 1e-3).floor() as i32
        } else {
            limit.0 + (len * frac - 1e-3).ceil() as i32
        }
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.minor.clone()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// The smallest of 1, 2, 5 times a power of ten that is at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * p)
}

/// A percent label with as many decimals as ticks `step` apart need: `97%`, `97.5%`.
fn percent_with(step: f64) -> impl Fn(&f64) -> String {
    let decimals = if step * 100.0 >= 1.0 - 1e-9 {
        0
    } else {
        (-(step * 100.0).log10()).ceil() as usize
    };
    move |v| format!("{:.*}%", decimals, v * 100.0)
}

/// A number label with as many decimals as ticks `step` apart need; in scientific notation
/// (`2.0e-4`) for steps under 0.001.
fn number_with(step: f64) -> impl Fn(&f64) -> String {
    let scientific = step < 1e-3;
    let decimals = if step >= 1.0 - 1e-9 {
        0
    } else {
        (-step.log10() - 1e-9).ceil() as usize
    };
    move |v| {
        if scientific && *v != 0.0 {
            format!("{v:.1e}")
        } else if scientific {
            "0".to_string()
        } else {
            format!("{:.*}", decimals, v)
        }
    }
}

/// A chart on `area` with the given axes, label areas and margins (top, right).
fn chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    (x, y): (&Axis, &Axis),
    (x_labels, y_labels): (u32, u32),
    (top, right): (u32, u32),
) -> Result<ChartContext<'a, DB, Plane>, PlotError> {
    Ok(ChartBuilder::on(area)
        .margin_top(top)
        .margin_right(right)
        .margin_left(8)
        .margin_bottom(6)
        .x_label_area_size(x_labels)
        .y_label_area_size(y_labels)
        .build_cartesian_2d(x.clone(), y.clone())?)
}

/// Draws the grid, the axes with their tick labels and the axis titles.
fn mesh<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Plane>,
    (x_desc, y_desc): (&str, &str),
    x_label: &dyn Fn(&f64) -> String,
    y_label: &dyn Fn(&f64) -> String,
) -> Result<(), PlotError> {
    chart
        .configure_mesh()
        .bold_line_style(GRID)
        .light_line_style(GRID.mix(0.45))
        .axis_style(FRAME)
        .label_style(text(14.0, INK))
        .axis_desc_style(text(15.0, INK))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(x_label)
        .y_label_formatter(y_label)
        .draw()?;
    Ok(())
}

/// The legend of the series drawn with labels, in the `pos` corner of the chart.
fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Plane>,
    pos: SeriesLabelPosition,
) -> Result<(), PlotError> {
    chart
        .configure_series_labels()
        .position(pos)
        .margin(8)
        .legend_area_size(22)
        .label_font(text(14.0, INK))
        .background_style(WHITE.mix(0.85))
        .border_style(FRAME)
        .draw()?;
    Ok(())
}

/// A fraction as a whole percent, `97%`.
pub fn percent(v: &f64) -> String {
    format!("{:.0}%", v * 100.0)
}

/// A BitOps count in short form: `3.2e6`.
pub fn short_bitops(bitops: u64) -> String {
    if bitops == 0 {
        return "0".into();
    }
    let e = (bitops as f64).log10().floor();
    let m = bitops as f64 / 10f64.powf(e);
    // 9.96e6 rounds to 10.0e6: write it as 1.0e7
    let (m, e) = if (m * 10.0).round() >= 100.0 {
        (1.0, e + 1.0)
    } else {
        (m, e)
    };
    format!("{m:.1}e{e}")
}

/// A baseline's label in plots: its format and size (`int8 largest`).
pub fn baseline_label(origin: &Origin) -> String {
    match origin {
        Origin::Baseline { format, size } => format!("{format} {}", size.as_str()),
        other => other.to_string(),
    }
}

/// A step line through `points` (x ascending): flat from each point to the next one's x, then
/// up or down to it, so that it passes through every point.
pub fn step_line(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(points.len() * 2);
    for (i, &(x, y)) in points.iter().enumerate() {
        if i > 0 {
            out.push((x, points[i - 1].1));
        }
        out.push((x, y));
    }
    out
}

/// An interval's ends in order and clamped to [0, 1], or `None` if an end is not finite.
fn clamped_interval((a, b): (f64, f64)) -> Option<(f64, f64)> {
    (a.is_finite() && b.is_finite()).then(|| (a.min(b).clamp(0.0, 1.0), a.max(b).clamp(0.0, 1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decades_and_labels() {
        assert_eq!(log_decades([1_000_000u64, 50_000_000]), (6.0, 8.0));
        assert_eq!(log_decades([1000u64]), (2.0, 4.0));
        assert_eq!(log_decades(std::iter::empty()), (0.0, 1.0));
        assert_eq!(decades(6.0, 8.0), [6.0, 7.0, 8.0]);
        assert_eq!(decade_label(6.0), "10⁶");
        assert_eq!(decade_label(12.0), "10¹²");
        assert_eq!(decade_label(-3.0), "10⁻³");
        let minors = decade_minors(6.0, 7.0);
        assert_eq!(minors.len(), 8);
        assert!((minors[0] - 2f64.log10() - 6.0).abs() < 1e-12);
        assert_eq!(short_bitops(3_210_000), "3.2e6");
        assert_eq!(short_bitops(9_960_000), "1.0e7");
        assert_eq!(short_bitops(7), "7.0e0");
        assert_eq!(percent(&0.974), "97%");
        assert_eq!(percent_with(0.005)(&0.975), "97.5%");
        assert_eq!(percent_with(0.1)(&0.9), "90%");
        assert_eq!(number_with(0.02)(&0.04), "0.04");
        assert_eq!(number_with(5.0)(&15.0), "15");
        assert_eq!(number_with(0.0002)(&0.0004), "4.0e-4");
        assert_eq!(nice_step(0.13), 0.2);
        assert_eq!(nice_step(0.05), 0.05);
        assert_eq!(nice_step(7.0), 10.0);
        let a = Axis::linear(0.0, 0.35, 8);
        assert_eq!(a.ticks.len(), 8);
        assert!((a.spacing() - 0.05).abs() < 1e-12);
        assert!(a.ticks[0] == 0.0 && a.ticks[0].is_sign_positive());
        assert_eq!(Axis::accuracy(0.734, 0.1).lo, 0.7);
        assert_eq!(Axis::accuracy(0.7, 0.1).lo, 0.7);
        assert_eq!(Axis::accuracy(1.0, 0.1).lo, 0.9);
        assert_eq!(Axis::accuracy(f64::NAN, 0.1).lo, 0.0);
    }

    #[test]
    fn step_line_passes_through_every_point() {
        let pts = [(1.0, 0.5), (2.0, 0.7), (4.0, 0.9)];
        let line = step_line(&pts);
        assert_eq!(
            line,
            [(1.0, 0.5), (2.0, 0.5), (2.0, 0.7), (4.0, 0.7), (4.0, 0.9)]
        );
        assert!(step_line(&[]).is_empty());
    }

    #[test]
    fn png_encodes_the_pixels() {
        let rgb: Vec<u8> = (0..4 * 3 * 3).map(|i| i as u8).collect();
        let png = encode_png(4, 3, &rgb).unwrap();
        let (w, h, back) = testing::decode(&png);
        assert_eq!((w, h), (4, 3));
        assert_eq!(back, rgb);
    }
}
