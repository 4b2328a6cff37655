//! The PNG's backend: plotters' `BitMapBackend` with text drawn here. plotters' own
//! ab_glyph text drawing places each glyph at its pen position without the glyph's left side
//! bearing (uneven gaps: `mem bers`) and its baseline half a size below the anchor; here each
//! glyph is outlined at its pen position and the text is set as the SVG backend sets it:
//! `font-size` of a style's size / 1.24, baseline 0.76 em below a top anchor, 0.5 ex below a
//! centre one, 0.5 ex above a bottom one, rotations about the anchor. Text widths are those
//! plotters lays out with (advances and kerning), so both backends place labels alike.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use plotters::prelude::*;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind, FontStyle,
    FontTransform,
};

/// SVG's `font-size` of a plotters text size.
const EM_PER_SIZE: f64 = 1.0 / 1.24;

/// A bitmap backend drawing text with DejaVu Sans.
pub(super) struct Raster<'a> {
    inner: BitMapBackend<'a>,
    regular: FontRef<'static>,
    bold: FontRef<'static>,
}

impl<'a> Raster<'a> {
    /// The backend over an RGB buffer of `size`; `None` if the font cannot be read.
    pub(super) fn new(buf: &'a mut [u8], size: (u32, u32)) -> Option<Self> {
        Some(Raster {
            inner: BitMapBackend::with_buffer(buf, size),
            regular: FontRef::try_from_slice(dejavu::sans::regular()).ok()?,
            bold: FontRef::try_from_slice(dejavu::sans::bold()).ok()?,
        })
    }
}

/// Where a glyph pixel `(dx, dy)` from the anchor lands after `t` (about the anchor).
fn turn(t: &FontTransform, dx: i32, dy: i32) -> (i32, i32) {
    match t {
        FontTransform::Rotate90 => (-dy, dx),
        FontTransform::Rotate180 => (-dx, -dy),
        FontTransform::Rotate270 => (dy, -dx),
        FontTransform::None => (dx, dy),
    }
}

type Error<'a> = DrawingErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>;

impl<'a> DrawingBackend for Raster<'a> {
    type ErrorType = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), Error<'a>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), Error<'a>> {
        self.inner.present()
    }

    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Result<(), Error<'a>> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), Error<'a>> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), Error<'a>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), Error<'a>> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), Error<'a>> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), Error<'a>> {
        self.inner.fill_polygon(vert, style)
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), Error<'a>> {
        let color = style.color();
        if color.alpha == 0.0 || text.is_empty() {
            return Ok(());
        }
        let font = match style.style() {
            FontStyle::Bold => &self.bold,
            _ => &self.regular,
        };
        let em = (style.size() * EM_PER_SIZE) as f32;
        let units = font.units_per_em().unwrap_or(2048.0);
        let height = font.height_unscaled();
        let scaled = font.as_scaled(PxScale::from(em * height / units));
        let x_height = 0.55 * em;
        let ids: Vec<_> = text.chars().map(|c| scaled.glyph_id(c)).collect();
        let width: f32 = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| {
                let kern = if i > 0 {
                    scaled.kern(ids[i - 1], id)
                } else {
                    0.0
                };
                scaled.h_advance(id) + kern
            })
            .sum();
        let anchor = style.anchor();
        let x0 = match anchor.h_pos {
            HPos::Left => 0.0,
            HPos::Center => -width / 2.0,
            HPos::Right => -width,
        };
        let baseline = match anchor.v_pos {
            VPos::Top => 0.76 * em,
            VPos::Center => 0.5 * x_height,
            VPos::Bottom => -0.5 * x_height,
        };
        let transform = style.transform();
        let mut pixels = Vec::new();
        let mut pen = x0;
        for (i, &id) in ids.iter().enumerate() {
            if i > 0 {
                pen += scaled.kern(ids[i - 1], id);
            }
            let glyph = id.with_scale_and_position(scaled.scale(), point(pen, baseline));
            if let Some(outline) = font.outline_glyph(glyph) {
                let b = outline.px_bounds();
                outline.draw(|x, y, coverage| {
                    let dx = b.min.x as i32 + x as i32;
                    let dy = b.min.y as i32 + y as i32;
                    pixels.push((turn(&transform, dx, dy), coverage));
                });
            }
            pen += scaled.h_advance(id);
        }
        for ((dx, dy), coverage) in pixels {
            let c = BackendColor {
                alpha: color.alpha * f64::from(coverage.min(1.0)),
                rgb: color.rgb,
            };
            self.inner.draw_pixel((pos.0 + dx, pos.1 + dy), c)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotations_turn_about_the_anchor() {
        // a pixel right of the anchor goes up for text reading upwards (SVG's rotate(270))
        assert_eq!(turn(&FontTransform::Rotate270, 5, 0), (0, -5));
        assert_eq!(turn(&FontTransform::Rotate90, 5, 0), (0, 5));
        assert_eq!(turn(&FontTransform::Rotate180, 5, 1), (-5, -1));
        assert_eq!(turn(&FontTransform::None, 5, 1), (5, 1));
    }
}
