//! A PNG rendering of the Pareto plot, with no image or font dependencies: a small RGB
//! [`Canvas`] (lines, circles, rectangles, text in an embedded 5x7 bitmap font), a PNG encoder
//! ([`encode_png`], zlib through `flate2`), and [`plot_png`], the same plot as
//! [`plot_svg`](crate::svg_plot::plot_svg).

use std::io::Write;

use flate2::Compression;
use flate2::write::ZlibEncoder;

use crate::row::Row;
use crate::svg_plot::baseline_label;

/// An RGB colour.
pub type Rgb = [u8; 3];

/// White.
pub const WHITE: Rgb = [0xff, 0xff, 0xff];
/// Black.
pub const BLACK: Rgb = [0x00, 0x00, 0x00];
/// Grid lines (`#ddd`).
pub const GRID: Rgb = [0xdd, 0xdd, 0xdd];
/// Evaluated members (`#999`).
pub const GREY: Rgb = [0x99, 0x99, 0x99];
/// The front (`#d62728`).
pub const RED: Rgb = [0xd6, 0x27, 0x28];
/// Baselines (`#1f77b4`).
pub const BLUE: Rgb = [0x1f, 0x77, 0xb4];

/// Glyph width in font pixels; glyphs advance by one more.
pub const GLYPH_W: usize = 5;
/// Glyph height in font pixels: 7 rows for capitals and digits, 2 more for descenders.
pub const GLYPH_H: usize = 9;
/// Horizontal advance per character in font pixels.
pub const ADVANCE: usize = GLYPH_W + 1;

/// The font, printable ASCII 32..=126: one byte per row, top row first, bit 4 the leftmost
/// column. Capitals and digits use rows 0..7, lowercase x-height is rows 2..7, descenders go
/// into rows 7 and 8.
#[rustfmt::skip]
const FONT: [[u8; GLYPH_H]; 95] = [
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // ' '
    [0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04, 0x00, 0x00], // '!'
    [0x0A, 0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // '"'
    [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A, 0x00, 0x00], // '#'
    [0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04, 0x00, 0x00], // '$'
    [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, 0x00, 0x00], // '%'
    [0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D, 0x00, 0x00], // '&'
    [0x04, 0x04, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // '\''
    [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00, 0x00], // '('
    [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00, 0x00], // ')'
    [0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00, 0x00, 0x00], // '*'
    [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00, 0x00, 0x00], // '+'
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x06, 0x04, 0x08], // ','
    [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00, 0x00, 0x00], // '-'
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C, 0x00, 0x00], // '.'
    [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00, 0x00, 0x00], // '/'
    [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E, 0x00, 0x00], // '0'
    [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00], // '1'
    [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F, 0x00, 0x00], // '2'
    [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E, 0x00, 0x00], // '3'
    [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02, 0x00, 0x00], // '4'
    [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E, 0x00, 0x00], // '5'
    [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E, 0x00, 0x00], // '6'
    [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00, 0x00], // '7'
    [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E, 0x00, 0x00], // '8'
    [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C, 0x00, 0x00], // '9'
    [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00, 0x00, 0x00], // ':'
    [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x08, 0x00, 0x00], // ';'
    [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02, 0x00, 0x00], // '<'
    [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00, 0x00, 0x00], // '='
    [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08, 0x00, 0x00], // '>'
    [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00, 0x00], // '?'
    [0x0E, 0x11, 0x17, 0x15, 0x17, 0x10, 0x0F, 0x00, 0x00], // '@'
    [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11, 0x00, 0x00], // 'A'
    [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E, 0x00, 0x00], // 'B'
    [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E, 0x00, 0x00], // 'C'
    [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C, 0x00, 0x00], // 'D'
    [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F, 0x00, 0x00], // 'E'
    [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10, 0x00, 0x00], // 'F'
    [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F, 0x00, 0x00], // 'G'
    [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11, 0x00, 0x00], // 'H'
    [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00], // 'I'
    [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C, 0x00, 0x00], // 'J'
    [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11, 0x00, 0x00], // 'K'
    [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F, 0x00, 0x00], // 'L'
    [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11, 0x00, 0x00], // 'M'
    [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x00, 0x00], // 'N'
    [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00, 0x00], // 'O'
    [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10, 0x00, 0x00], // 'P'
    [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D, 0x00, 0x00], // 'Q'
    [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11, 0x00, 0x00], // 'R'
    [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E, 0x00, 0x00], // 'S'
    [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x00], // 'T'
    [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00, 0x00], // 'U'
    [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00, 0x00], // 'V'
    [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A, 0x00, 0x00], // 'W'
    [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11, 0x00, 0x00], // 'X'
    [0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x04, 0x00, 0x00], // 'Y'
    [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F, 0x00, 0x00], // 'Z'
    [0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E, 0x00, 0x00], // '['
    [0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00, 0x00, 0x00], // '\\'
    [0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E, 0x00, 0x00], // ']'
    [0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // '^'
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F, 0x00], // '_'
    [0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // '`'
    [0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F, 0x00, 0x00], // 'a'
    [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E, 0x00, 0x00], // 'b'
    [0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E, 0x00, 0x00], // 'c'
    [0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F, 0x00, 0x00], // 'd'
    [0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E, 0x00, 0x00], // 'e'
    [0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08, 0x00, 0x00], // 'f'
    [0x00, 0x00, 0x0F, 0x11, 0x11, 0x13, 0x0D, 0x01, 0x0E], // 'g'
    [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00], // 'h'
    [0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00], // 'i'
    [0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C], // 'j'
    [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00, 0x00], // 'k'
    [0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00], // 'l'
    [0x00, 0x00, 0x1A, 0x15, 0x15, 0x15, 0x15, 0x00, 0x00], // 'm'
    [0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00], // 'n'
    [0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E, 0x00, 0x00], // 'o'
    [0x00, 0x00, 0x1E, 0x11, 0x11, 0x19, 0x16, 0x10, 0x10], // 'p'
    [0x00, 0x00, 0x0F, 0x11, 0x11, 0x13, 0x0D, 0x01, 0x01], // 'q'
    [0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00, 0x00], // 'r'
    [0x00, 0x00, 0x0F, 0x10, 0x0E, 0x01, 0x1E, 0x00, 0x00], // 's'
    [0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06, 0x00, 0x00], // 't'
    [0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D, 0x00, 0x00], // 'u'
    [0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00, 0x00], // 'v'
    [0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A, 0x00, 0x00], // 'w'
    [0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x00, 0x00], // 'x'
    [0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D, 0x01, 0x0E], // 'y'
    [0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F, 0x00, 0x00], // 'z'
    [0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02, 0x00, 0x00], // '{'
    [0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x00], // '|'
    [0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08, 0x00, 0x00], // '}'
    [0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00, 0x00], // '~'
];

/// The glyph for `c`; characters outside printable ASCII draw as `?`.
fn glyph(c: char) -> &'static [u8; GLYPH_H] {
    let i = c as u32;
    if (32..127).contains(&i) {
        &FONT[(i - 32) as usize]
    } else {
        &FONT[('?' as u32 - 32) as usize]
    }
}

/// Width in pixels of `s` drawn at `scale` (no trailing gap).
pub fn text_width(s: &str, scale: usize) -> usize {
    let n = s.chars().count();
    if n == 0 { 0 } else { (n * ADVANCE - 1) * scale }
}

/// Height in pixels of a line of text at `scale`, descenders included.
pub fn text_height(scale: usize) -> usize {
    GLYPH_H * scale
}

/// An RGB raster, row-major, 3 bytes a pixel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canvas {
    /// Width in pixels.
    pub w: usize,
    /// Height in pixels.
    pub h: usize,
    /// `w * h * 3` bytes, top row first.
    pub pixels: Vec<u8>,
}

impl Canvas {
    /// A `w` x `h` canvas filled with `bg`.
    pub fn new(w: usize, h: usize, bg: Rgb) -> Self {
        let mut c = Canvas {
            w,
            h,
            pixels: vec![0; w * h * 3],
        };
        c.fill(bg);
        c
    }

    /// Paints every pixel `color`.
    pub fn fill(&mut self, color: Rgb) {
        for p in self.pixels.chunks_exact_mut(3) {
            p.copy_from_slice(&color);
        }
    }

    /// The pixel at (`x`, `y`), or `None` outside the canvas.
    pub fn get(&self, x: i64, y: i64) -> Option<Rgb> {
        self.index(x, y)
            .map(|i| [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]])
    }

    fn index(&self, x: i64, y: i64) -> Option<usize> {
        (x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h)
            .then(|| (y as usize * self.w + x as usize) * 3)
    }

    /// Sets the pixel at (`x`, `y`); pixels outside the canvas are ignored.
    pub fn set(&mut self, x: i64, y: i64, color: Rgb) {
        if let Some(i) = self.index(x, y) {
            self.pixels[i..i + 3].copy_from_slice(&color);
        }
    }

    /// Mixes `color` into the pixel at (`x`, `y`) with coverage `alpha` in 0..=1.
    pub fn blend(&mut self, x: i64, y: i64, color: Rgb, alpha: f64) {
        if alpha.is_nan() || alpha <= 0.0 {
            return;
        }
        if alpha >= 1.0 {
            return self.set(x, y, color);
        }
        if let Some(i) = self.index(x, y) {
            for (k, &c) in color.iter().enumerate() {
                let old = self.pixels[i + k] as f64;
                self.pixels[i + k] = (old + (c as f64 - old) * alpha).round() as u8;
            }
        }
    }

    /// Fills the rectangle with corners (`x0`, `y0`) and (`x1`, `y1`), both inclusive.
    pub fn fill_rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, color: Rgb) {
        let (xa, xb) = (x0.min(x1).max(0), x0.max(x1).min(self.w as i64 - 1));
        let (ya, yb) = (y0.min(y1).max(0), y0.max(y1).min(self.h as i64 - 1));
        for y in ya..=yb {
            for x in xa..=xb {
                self.set(x, y, color);
            }
        }
    }

    /// A disc of radius `r` centred on (`cx`, `cy`) in pixel coordinates (pixel centres at
    /// integer + 0.5), with an anti-aliased edge.
    pub fn fill_circle(&mut self, cx: f64, cy: f64, r: f64, color: Rgb) {
        if !(cx.is_finite() && cy.is_finite() && r > 0.0) {
            return;
        }
        let (xa, xb) = ((cx - r - 1.0).floor() as i64, (cx + r + 1.0).ceil() as i64);
        let (ya, yb) = ((cy - r - 1.0).floor() as i64, (cy + r + 1.0).ceil() as i64);
        for y in ya.max(0)..=yb.min(self.h as i64) {
            for x in xa.max(0)..=xb.min(self.w as i64) {
                let d = ((x as f64 + 0.5 - cx).powi(2) + (y as f64 + 0.5 - cy).powi(2)).sqrt();
                self.blend(x, y, color, (r + 0.5 - d).clamp(0.0, 1.0));
            }
        }
    }

    /// A one-pixel line from (`x0`, `y0`) to (`x1`, `y1`), both ends included (Bresenham),
    /// `thickness` pixels wide (1 or 2: the second pixel goes below or right of the first).
    pub fn line(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, thickness: u8, color: Rgb) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let steep = -dy > dx;
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.set(x, y, color);
            if thickness > 1 {
                if steep {
                    self.set(x + 1, y, color);
                } else {
                    self.set(x, y + 1, color);
                }
            }
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// An anti-aliased line `width` pixels wide between two points in pixel coordinates
    /// (pixel centres at integer + 0.5): each pixel is covered by how far its centre lies
    /// inside the stroke.
    pub fn line_aa(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, width: f64, color: Rgb) {
        if ![x0, y0, x1, y1, width].iter().all(|v| v.is_finite()) || width <= 0.0 {
            return;
        }
        let half = width / 2.0;
        let pad = half + 1.0;
        let (xa, xb) = ((x0.min(x1) - pad).floor(), (x0.max(x1) + pad).ceil());
        let (ya, yb) = ((y0.min(y1) - pad).floor(), (y0.max(y1) + pad).ceil());
        let (xa, xb) = ((xa.max(0.0)) as i64, xb.min(self.w as f64) as i64);
        let (ya, yb) = ((ya.max(0.0)) as i64, yb.min(self.h as f64) as i64);
        let (vx, vy) = (x1 - x0, y1 - y0);
        let len2 = vx * vx + vy * vy;
        for y in ya..=yb {
            for x in xa..=xb {
                let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
                let t = if len2 > 0.0 {
                    (((px - x0) * vx + (py - y0) * vy) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let d = ((px - x0 - t * vx).powi(2) + (py - y0 - t * vy).powi(2)).sqrt();
                self.blend(x, y, color, (half + 0.5 - d).clamp(0.0, 1.0));
            }
        }
    }

    /// Draws `s` with its top-left corner at (`x`, `y`), each font pixel a `scale` x `scale`
    /// block. Returns the width drawn ([`text_width`]).
    pub fn text(&mut self, x: i64, y: i64, s: &str, scale: usize, color: Rgb) -> usize {
        let sc = scale as i64;
        for (i, c) in s.chars().enumerate() {
            let gx = x + (i * ADVANCE) as i64 * sc;
            for (row, bits) in glyph(c).iter().enumerate() {
                for col in 0..GLYPH_W {
                    if bits & (0x10 >> col) != 0 {
                        let (px, py) = (gx + col as i64 * sc, y + row as i64 * sc);
                        self.fill_rect(px, py, px + sc - 1, py + sc - 1, color);
                    }
                }
            }
        }
        text_width(s, scale)
    }

    /// Draws `s` rotated a quarter turn anticlockwise, reading upwards: the text's left end is
    /// at the bottom, at (`x`, `y`), and the tops of the glyphs face left (`x` is the leftmost
    /// column).
    pub fn text_up(&mut self, x: i64, y: i64, s: &str, scale: usize, color: Rgb) {
        let sc = scale as i64;
        for (i, c) in s.chars().enumerate() {
            let gy = y - (i * ADVANCE) as i64 * sc;
            for (row, bits) in glyph(c).iter().enumerate() {
                for col in 0..GLYPH_W {
                    if bits & (0x10 >> col) != 0 {
                        let (px, py) = (x + row as i64 * sc, gy - (col as i64 + 1) * sc);
                        self.fill_rect(px, py, px + sc - 1, py + sc - 1, color);
                    }
                }
            }
        }
    }

    /// The canvas as a PNG file.
    pub fn to_png(&self) -> Vec<u8> {
        encode_png(self.w, self.h, &self.pixels)
    }
}

/// The PNG file signature.
pub const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// Encodes `w` x `h` 8-bit RGB pixels (row-major, `w * h * 3` bytes) as a PNG: IHDR, one
/// IDAT (zlib, filter type 0 on every row), IEND.
///
/// PNG requires both dimensions to be at least 1; a zero one is written as given.
///
/// # Panics
///
/// If `rgb` is not `w * h * 3` bytes long.
pub fn encode_png(w: usize, h: usize, rgb: &[u8]) -> Vec<u8> {
    assert_eq!(rgb.len(), w * h * 3, "encode_png: pixel buffer size");
    let mut out = PNG_SIGNATURE.to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&(w as u32).to_be_bytes());
    ihdr.extend_from_slice(&(h as u32).to_be_bytes());
    // bit depth 8, colour type 2 (RGB), compression 0, filter 0, no interlace
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    for y in 0..h {
        let row = &rgb[y * w * 3..(y + 1) * w * 3];
        // writing into a Vec cannot fail
        z.write_all(&[0]).expect("zlib into memory");
        z.write_all(row).expect("zlib into memory");
    }
    let idat = z.finish().expect("zlib into memory");
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// The plot's geometry: 720 x 480 with the same margins as the SVG.
const W: f64 = 720.0;
const H: f64 = 480.0;
const ML: f64 = 70.0;
const MR: f64 = 20.0;
const MT: f64 = 40.0;
const MB: f64 = 50.0;

/// Axis ranges as in [`plot_svg`](crate::svg_plot::plot_svg): log10 BitOps from the floor
/// of the smallest to the ceiling of the largest decade (one decade either side of a single
/// value), accuracy from `min(0.9, floor(10 * min) / 10)` to 1. With nothing to plot the
/// x range is 1e0..1e1.
fn ranges(rows: &[Row], front: &[Row], baselines: &[Row]) -> ((f64, f64), (f64, f64)) {
    let all = || rows.iter().chain(front).chain(baselines);
    let (x0, x1) = crate::svg_plot::log_decades(all().map(|r| r.bitops));
    let y0 = (all()
        .map(|r| r.accuracy)
        .filter(|a| a.is_finite())
        .fold(1.0, f64::min)
        * 10.0)
        .floor()
        / 10.0;
    ((x0, x1), (y0.min(0.9), 1.0))
}

/// A PNG of accuracy against BitOps (log x-axis), 720 x 480: every evaluated member as a grey
/// dot, the front as a red line with dots, baselines as labelled blue squares; the same layout
/// as [`plot_svg`](crate::svg_plot::plot_svg).
pub fn plot_png(rows: &[Row], front: &[Row], baselines: &[Row], title: &str) -> Vec<u8> {
    plot_canvas(rows, front, baselines, title).to_png()
}

/// The canvas behind [`plot_png`].
pub fn plot_canvas(rows: &[Row], front: &[Row], baselines: &[Row], title: &str) -> Canvas {
    let ((x0, x1), (y0, y1)) = ranges(rows, front, baselines);
    let px = |b: u64| ML + ((b.max(1) as f64).log10() - x0) / (x1 - x0) * (W - ML - MR);
    let py = |a: f64| MT + (1.0 - (a - y0) / (y1 - y0)) * (H - MT - MB);
    let mut c = Canvas::new(W as usize, H as usize, WHITE);
    let (left, right, top, bottom) = (ML as i64, (W - MR) as i64, MT as i64, (H - MB) as i64);

    // title: large when it fits
    let scale = if text_width(title, 2) as f64 <= W - ML - MR {
        2
    } else {
        1
    };
    c.text(left, 22 - 7 * scale as i64, title, scale, BLACK);

    // grid and ticks
    let mut e = x0 as i64;
    while e as f64 <= x1 {
        let x = (ML + (e as f64 - x0) / (x1 - x0) * (W - ML - MR)).round() as i64;
        c.line(x, top, x, bottom, 1, GRID);
        let label = format!("1e{e}");
        let tw = text_width(&label, 1) as i64;
        c.text(x - tw / 2, bottom + 6, &label, 1, BLACK);
        e += 1;
    }
    let step = if y1 - y0 > 0.3 { 0.1 } else { 0.02 };
    let mut a = y0;
    while a <= y1 + 1e-9 {
        let y = py(a).round() as i64;
        c.line(left, y, right, y, 1, GRID);
        let label = format!("{:.0}%", a * 100.0);
        let tw = text_width(&label, 1) as i64;
        c.text(left - 6 - tw, y - 3, &label, 1, BLACK);
        a += step;
    }
    // the plot area's frame
    for (xa, ya, xb, yb) in [
        (left, top, right, top),
        (left, bottom, right, bottom),
        (left, top, left, bottom),
        (right, top, right, bottom),
    ] {
        c.line(xa, ya, xb, yb, 1, GREY);
    }
    let xl = "BitOps (log scale)";
    c.text(
        ((W + ML) / 2.0) as i64 - text_width(xl, 1) as i64 / 2,
        (H - 18.0) as i64,
        xl,
        1,
        BLACK,
    );
    let yl = "validation accuracy";
    c.text_up(
        10,
        ((H + MT - MB) / 2.0) as i64 + text_width(yl, 1) as i64 / 2,
        yl,
        1,
        BLACK,
    );

    for r in rows {
        c.fill_circle(px(r.bitops), py(r.accuracy), 2.5, GREY);
    }
    for w in front.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        c.line_aa(
            px(a.bitops),
            py(a.accuracy),
            px(b.bitops),
            py(b.accuracy),
            2.0,
            RED,
        );
    }
    for r in front {
        c.fill_circle(px(r.bitops), py(r.accuracy), 4.0, RED);
    }
    // labels go to the upper right of their square, or, where that would cover an earlier
    // label (baselines often share a point), further up or below
    let mut placed: Vec<(i64, i64, i64, i64)> = Vec::new();
    for r in baselines {
        let (x, y) = (px(r.bitops), py(r.accuracy));
        if !(x.is_finite() && y.is_finite()) {
            continue;
        }
        let (xi, yi) = (x.round() as i64, y.round() as i64);
        c.fill_rect(xi - 3, yi - 3, xi + 3, yi + 3, BLUE);
        let label = baseline_label(&r.origin);
        let (lw, lh) = (text_width(&label, 1) as i64, 7);
        let free = |ly: i64| {
            placed
                .iter()
                .all(|&(a, b, cx, d)| xi + 6 > cx || xi + 6 + lw < a || ly > d || ly + lh < b)
        };
        let ly = (0..8)
            .map(|k| {
                let step = 11 * (k / 2 + 1);
                if k % 2 == 0 {
                    yi - 2 - step
                } else {
                    yi + step - 7
                }
            })
            .find(|&ly| free(ly))
            .unwrap_or(yi - 13);
        c.text(xi + 6, ly, &label, 1, BLUE);
        placed.push((xi + 6, ly, xi + 6 + lw, ly + lh));
    }
    c
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::path::Path;

    use flate2::read::ZlibDecoder;
    use spaces::Space;

    use super::*;

    /// A minimal PNG reader for what [`encode_png`] writes: checks the signature and every
    /// chunk's CRC, inflates the IDATs and undoes filter type 0. Returns (w, h, rgb).
    fn decode(png: &[u8]) -> (usize, usize, Vec<u8>) {
        assert_eq!(png[..8], PNG_SIGNATURE);
        let mut at = 8;
        let (mut w, mut h) = (0, 0);
        let mut idat = Vec::new();
        let mut kinds = Vec::new();
        while at < png.len() {
            let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
            let kind: [u8; 4] = png[at + 4..at + 8].try_into().unwrap();
            let data = &png[at + 8..at + 8 + len];
            let crc = u32::from_be_bytes(png[at + 8 + len..at + 12 + len].try_into().unwrap());
            assert_eq!(
                crc,
                crc32fast::hash(&png[at + 4..at + 8 + len]),
                "CRC of {kind:?}"
            );
            match &kind {
                b"IHDR" => {
                    w = u32::from_be_bytes(data[0..4].try_into().unwrap()) as usize;
                    h = u32::from_be_bytes(data[4..8].try_into().unwrap()) as usize;
                    assert_eq!(data[8..], [8, 2, 0, 0, 0]);
                }
                b"IDAT" => idat.extend_from_slice(data),
                _ => {}
            }
            kinds.push(kind);
            at += 12 + len;
        }
        assert_eq!(at, png.len());
        assert_eq!(kinds.first(), Some(b"IHDR"));
        assert_eq!(kinds.last(), Some(b"IEND"));
        let mut raw = Vec::new();
        ZlibDecoder::new(&idat[..]).read_to_end(&mut raw).unwrap();
        assert_eq!(raw.len(), h * (1 + w * 3));
        let mut rgb = Vec::with_capacity(w * h * 3);
        for row in raw.chunks_exact(1 + w * 3) {
            assert_eq!(row[0], 0, "filter type");
            rgb.extend_from_slice(&row[1..]);
        }
        (w, h, rgb)
    }

    fn row(origin: &str, accuracy: f64, bitops: u64) -> Row {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spaces/presets/digits.ron");
        let space = Space::load(&dir).unwrap();
        Row {
            origin: origin.parse().unwrap(),
            arch: space.largest(),
            accuracy,
            bitops,
            macs: 0,
            params: 0,
            weight_bits: 0,
            samples: 0,
            interval: None,
        }
    }

    fn count(c: &Canvas, color: Rgb, x0: i64, y0: i64, x1: i64, y1: i64) -> usize {
        (y0..=y1)
            .flat_map(|y| (x0..=x1).map(move |x| (x, y)))
            .filter(|&(x, y)| c.get(x, y) == Some(color))
            .count()
    }

    #[test]
    fn png_round_trips_pixels() {
        let mut c = Canvas::new(37, 23, WHITE);
        c.line(0, 0, 36, 22, 2, RED);
        c.fill_circle(10.0, 12.0, 5.0, BLUE);
        c.line_aa(2.0, 20.0, 30.0, 3.0, 1.5, GREY);
        c.text(1, 1, "Ag%", 1, BLACK);
        c.set(36, 0, [1, 2, 3]);
        let (w, h, rgb) = decode(&c.to_png());
        assert_eq!((w, h), (37, 23));
        assert_eq!(rgb, c.pixels);

        let empty = Canvas::new(1, 1, BLACK);
        assert_eq!(decode(&empty.to_png()), (1, 1, vec![0, 0, 0]));
    }

    #[test]
    fn crc_matches_png_iend() {
        // every PNG ends in the same IEND chunk
        let png = Canvas::new(2, 2, WHITE).to_png();
        assert_eq!(
            png[png.len() - 12..],
            [0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]
        );
    }

    #[test]
    fn text_inks_inside_its_box_only() {
        for scale in [1, 2] {
            let s = "Hello, 1e6 90% gyp";
            let mut c = Canvas::new(300, 40, WHITE);
            let (x, y) = (7, 5);
            let tw = c.text(x, y, s, scale, BLACK) as i64;
            assert_eq!(tw as usize, text_width(s, scale));
            let th = text_height(scale) as i64;
            let inside = count(&c, BLACK, x, y, x + tw - 1, y + th - 1);
            let all = count(&c, BLACK, 0, 0, 299, 39);
            assert!(inside > 20 * scale * scale, "{inside}");
            assert_eq!(inside, all);
            // descenders reach the last rows
            assert!(count(&c, BLACK, x, y + th - scale as i64, x + tw - 1, y + th - 1) > 0);
        }
        // every printable glyph but the space has ink, and they are all different
        for i in 33u8..127 {
            assert!(glyph(i as char).iter().any(|r| *r != 0), "{}", i as char);
            for j in i + 1..127 {
                assert_ne!(
                    glyph(i as char),
                    glyph(j as char),
                    "{} {}",
                    i as char,
                    j as char
                );
            }
        }
        assert_eq!(glyph('\u{e9}'), glyph('?'));
        // rotated text stays in its (rotated) box
        let mut c = Canvas::new(40, 200, WHITE);
        let s = "accuracy";
        c.text_up(10, 150, s, 1, BLACK);
        let tw = text_width(s, 1) as i64;
        let inside = count(&c, BLACK, 10, 150 - tw, 10 + text_height(1) as i64 - 1, 149);
        assert!(inside > 20);
        assert_eq!(inside, count(&c, BLACK, 0, 0, 39, 199));
    }

    #[test]
    fn plot_marks_front_and_baselines() {
        let rows = vec![
            row("random", 0.5, 1_000_000),
            row("random", 0.9, 50_000_000),
            row("random", 0.97, 800_000_000),
            row("random", 0.6, 300_000_000),
            row("baseline int8 largest", 0.8, 20_000_000),
        ];
        let front = vec![rows[0].clone(), rows[1].clone(), rows[2].clone()];
        let baselines = vec![rows[4].clone()];
        let png = plot_png(&rows, &front, &baselines, "digits: accuracy vs BitOps");
        let c = plot_canvas(&rows, &front, &baselines, "digits: accuracy vs BitOps");
        let (w, h, rgb) = decode(&png);
        assert_eq!((w, h), (720, 480));
        assert_eq!(rgb, c.pixels);

        // x from 1e6 to 1e9, y from 50% to 100%
        let px = |b: u64| ML + ((b as f64).log10() - 6.0) / 3.0 * (W - ML - MR);
        let py = |a: f64| MT + (1.0 - (a - 0.5) / 0.5) * (H - MT - MB);
        let at = |b: u64, a: f64| c.get(px(b) as i64, py(a) as i64);
        for r in &front {
            assert_eq!(at(r.bitops, r.accuracy), Some(RED), "{}", r.bitops);
        }
        // halfway along the segment between the first two front points
        let (mx, my) = (
            (px(1_000_000) + px(50_000_000)) / 2.0,
            (py(0.5) + py(0.9)) / 2.0,
        );
        assert_eq!(c.get(mx as i64, my as i64), Some(RED));
        assert_eq!(at(20_000_000, 0.8), Some(BLUE));
        assert_eq!(at(300_000_000, 0.6), Some(GREY));
        // the baseline's label is drawn in blue to its upper right
        let (bx, by) = (px(20_000_000) as i64, py(0.8) as i64);
        assert!(count(&c, BLUE, bx + 5, by - 16, bx + 80, by - 4) > 30);
        // title and tick labels have ink
        assert!(count(&c, BLACK, 70, 0, 700, 30) > 100);
        assert!(count(&c, BLACK, 0, 40, 69, 430) > 50);
        assert!(count(&c, BLACK, 60, 431, 719, 479) > 50);
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let png = plot_png(&[], &[], &[], "");
        assert_eq!(decode(&png).0, 720);
        let one = vec![row("random", 0.42, 12345)];
        let c = plot_canvas(&one, &one, &[], "one");
        assert_eq!(c.w * c.h * 3, c.pixels.len());
        assert!(count(&c, RED, 0, 0, 719, 479) > 10);
        let odd = vec![
            row("baseline int4 smallest", f64::NAN, 0),
            row("random", 1.0, u64::MAX),
            row("random", 0.0, 1),
        ];
        let _ = plot_png(&odd, &odd, &odd, &"long title ".repeat(40));
        let mut c = Canvas::new(0, 0, WHITE);
        c.line(-5, -5, 5, 5, 2, RED);
        c.fill_circle(1.0, 1.0, 3.0, RED);
        c.line_aa(f64::NAN, 0.0, 1.0, 1.0, 2.0, RED);
        c.text(-3, -3, "x", 2, RED);
        assert!(c.pixels.is_empty());
    }
}
