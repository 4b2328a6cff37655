//! Test helpers for the figures: a small reader of the SVG that plotters writes (well-formed
//! nesting checked), the PNG decoded with the `png` crate, and pixel counts.

use std::collections::BTreeMap;
use std::io::Cursor;

use plotters::style::RGBColor;
use spaces::{Arch, Space};

use super::Rendered;
use crate::Row;

/// A preset space of the repository (`mnist`, `digits`).
pub fn preset(name: &str) -> Space {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../spaces/presets/{name}.ron"));
    Space::load(&path).unwrap()
}

/// A row of `arch` from `origin` with its accuracy and BitOps, the other costs 0 and no
/// interval.
pub fn row(origin: &str, arch: Arch, accuracy: f64, bitops: u64) -> Row {
    Row {
        origin: origin.parse().unwrap(),
        arch,
        accuracy,
        bitops,
        macs: 0,
        params: 0,
        weight_bits: 0,
        samples: 0,
        interval: None,
    }
}

/// One SVG element: its tag, attributes (unescaped) and text content.
#[derive(Clone, Debug, PartialEq)]
pub struct Element {
    pub tag: String,
    pub attrs: BTreeMap<String, String>,
    pub text: String,
}

impl Element {
    /// An attribute as a number.
    pub fn num(&self, name: &str) -> f64 {
        self.attrs[name]
            .parse()
            .unwrap_or_else(|e| panic!("{name} of {self:?}: {e}"))
    }

    /// The `points` of a polyline or polygon.
    pub fn points(&self) -> Vec<(i32, i32)> {
        self.attrs["points"]
            .split_whitespace()
            .map(|p| {
                let (x, y) = p.split_once(',').expect("x,y");
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect()
    }

    /// Whether its fill (or, for lines, its stroke) is `color`.
    pub fn is(&self, color: RGBColor) -> bool {
        let hex = format!("#{:02X}{:02X}{:02X}", color.0, color.1, color.2);
        let fill = self.attrs.get("fill").is_some_and(|f| *f == hex);
        let stroke = self.attrs.get("stroke").is_some_and(|s| *s == hex);
        fill || stroke
    }
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The elements of `svg` in document order. Panics unless it is one `<svg>` root element with
/// properly nested tags, ending in `</svg>\n`.
pub fn parse(svg: &str) -> Vec<Element> {
    assert!(svg.starts_with("<svg "), "{}", &svg[..svg.len().min(80)]);
    assert!(svg.ends_with("</svg>\n"));
    let mut out: Vec<Element> = Vec::new();
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut rest = svg;
    while let Some(open) = rest.find('<') {
        let text = &rest[..open];
        if let Some((_, at)) = stack.last()
            && !text.trim().is_empty()
        {
            out[*at].text += &unescape(text.trim());
        }
        let close = rest[open..].find('>').expect("an unclosed tag") + open;
        let tag = &rest[open + 1..close];
        rest = &rest[close + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let (top, _) = stack.pop().expect("a closing tag without an opening one");
            assert_eq!(top, name, "mismatched tags");
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let (name, mut attrs_text) = tag.split_once(' ').unwrap_or((tag, ""));
        let mut attrs = BTreeMap::new();
        while let Some(eq) = attrs_text.find("=\"") {
            let key = attrs_text[..eq].trim().to_string();
            let end = attrs_text[eq + 2..].find('"').expect("a closing quote") + eq + 2;
            attrs.insert(key, unescape(&attrs_text[eq + 2..end]));
            attrs_text = &attrs_text[end + 1..];
        }
        assert!(attrs_text.trim().is_empty(), "stray text in <{tag}>");
        out.push(Element {
            tag: name.to_string(),
            attrs,
            text: String::new(),
        });
        if !self_closing {
            stack.push((name.to_string(), out.len() - 1));
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    assert!(rest.trim().is_empty());
    assert_eq!(out[0].tag, "svg");
    out
}

/// The elements with tag `tag` whose fill or stroke is `color`.
pub fn of<'a>(elements: &'a [Element], tag: &str, color: RGBColor) -> Vec<&'a Element> {
    elements
        .iter()
        .filter(|e| e.tag == tag && e.is(color))
        .collect()
}

/// The texts of the `<text>` elements.
pub fn texts(elements: &[Element]) -> Vec<String> {
    elements
        .iter()
        .filter(|e| e.tag == "text")
        .map(|e| e.text.clone())
        .collect()
}

/// Decodes a PNG with the `png` crate: (width, height, RGB bytes).
pub fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut reader = png::Decoder::new(Cursor::new(bytes))
        .read_info()
        .expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a buffer size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

/// Checks the PNG against the pixels it was encoded from and the figure's size, and that it
/// is not blank: a good share of its pixels are not white. Returns the decoded pixels.
pub fn check_png(r: &Rendered, size: (u32, u32)) -> Vec<u8> {
    let (w, h, rgb) = decode(&r.png);
    assert_eq!((w, h), size);
    assert_eq!((r.width, r.height), size);
    assert_eq!(rgb, r.rgb);
    let inked = rgb
        .chunks_exact(3)
        .filter(|p| p.iter().any(|&c| c < 200))
        .count();
    assert!(
        inked > (w * h / 100) as usize,
        "a blank PNG: {inked} pixels"
    );
    rgb
}

/// The pixel at (`x`, `y`) of an RGB raster `w` pixels wide.
pub fn pixel(rgb: &[u8], w: u32, (x, y): (i32, i32)) -> RGBColor {
    let i = (y as usize * w as usize + x as usize) * 3;
    RGBColor(rgb[i], rgb[i + 1], rgb[i + 2])
}

/// How many pixels of `color` lie in the box from (`x0`, `y0`) to (`x1`, `y1`), inclusive.
pub fn count(
    rgb: &[u8],
    w: u32,
    color: RGBColor,
    (x0, y0): (i32, i32),
    (x1, y1): (i32, i32),
) -> usize {
    let h = (rgb.len() / 3) as i32 / w as i32;
    let mut n = 0;
    for y in y0.max(0)..=y1.min(h - 1) {
        for x in x0.max(0)..=x1.min(w as i32 - 1) {
            if pixel(rgb, w, (x, y)) == color {
                n += 1;
            }
        }
    }
    n
}

/// How many pixels in the box are within `tol` of `color` in every channel (anti-aliased
/// text has few pixels of exactly its colour).
pub fn count_near(
    rgb: &[u8],
    w: u32,
    color: RGBColor,
    tol: u8,
    (x0, y0): (i32, i32),
    (x1, y1): (i32, i32),
) -> usize {
    let h = (rgb.len() / 3) as i32 / w as i32;
    let near = |p: RGBColor| {
        p.0.abs_diff(color.0) <= tol && p.1.abs_diff(color.1) <= tol && p.2.abs_diff(color.2) <= tol
    };
    let mut n = 0;
    for y in y0.max(0)..=y1.min(h - 1) {
        for x in x0.max(0)..=x1.min(w as i32 - 1) {
            n += usize::from(near(pixel(rgb, w, (x, y))));
        }
    }
    n
}

/// The centres of the circles with fill `color` and radius `r`.
pub fn centres(elements: &[Element], color: RGBColor, r: u32) -> Vec<(i32, i32)> {
    of(elements, "circle", color)
        .into_iter()
        .filter(|c| c.num("r") == f64::from(r))
        .map(|c| (c.num("cx") as i32, c.num("cy") as i32))
        .collect()
}
