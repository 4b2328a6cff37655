//! Image files given to `qnas predict`: PNG pictures and IDX image files, converted to the
//! CHW `u8` layout and the [`ImageShape`] a trained network expects (see [`load_images`]).

use std::io::Cursor;
use std::path::Path;

use super::dataset::ImageShape;
use super::error::{DataError, DataResult};
use super::files::read_maybe_gz;
use super::idx::parse_idx_images;

/// The first four bytes of every PNG file.
const PNG_MAGIC: [u8; 4] = [0x89, b'P', b'N', b'G'];

/// The first two bytes of every IDX file (the magic number's two high bytes are zero).
const IDX_MAGIC_PREFIX: [u8; 2] = [0, 0];

/// Largest number of bytes the PNG decoder may allocate (the `png` crate's default is 64 MiB).
const PNG_DECODE_LIMIT: usize = 256 * 1024 * 1024;

/// One image read from a file, ready for the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputImage {
    /// Where the image came from: the file path for a PNG, `path[i]` for image `i` (counted from
    /// 0) of an IDX file.
    pub source: String,
    /// The pixels in CHW order, exactly `shape.len()` bytes of the requested [`ImageShape`].
    pub pixels: Vec<u8>,
}

/// Reads the images of one file (a PNG or an IDX image file, possibly gzip-compressed) and
/// converts each to `shape`, whose `channels` must be 1 or 3.
///
/// The file's kind is decided by its content, never by its name:
///
/// * a file that starts with the gzip magic (`1f 8b`) is decompressed first;
/// * a PNG (it starts with `89 50 4e 47`, "\x89PNG") gives one image;
/// * an IDX image file (the MNIST layout: magic `0x00000803`, `u8` data, dimensions
///   `[n, h, w]`) gives its `n` images, in order.
///
/// Each image then goes through the same steps; every intermediate value is rounded to the
/// nearest integer (halves up):
///
/// 1. **Decoding.** Every PNG colour type and bit depth the `png` crate decodes is accepted:
///    grey, grey + alpha, RGB, RGBA and palette images, 1, 2, 4, 8 or 16 bits per sample,
///    interlaced or not (of an animated PNG only the first frame is read). Palettes and
///    low-bit-depth grey are expanded to 8 bits, `tRNS` transparency becomes an alpha channel
///    and 16-bit samples keep their high byte. The whole file must decode, up to its end
///    marker, and the decoded pixels may need at most 256 MiB.
/// 2. **Transparency.** Alpha is composited onto **black**: each colour value becomes
///    `value * alpha / 255`, so a fully transparent pixel is 0 whatever its colour.
/// 3. **Channels.** One channel from a colour image is the ITU-R BT.601 luma
///    `0.299 R + 0.587 G + 0.114 B`; three channels from a grey image repeat the grey value.
///    IDX images are grey. Other channel counts are refused.
/// 4. **Size.** An image whose height or width differs from the shape's is resized, each axis
///    separately: an axis that shrinks is **area-averaged** (each output pixel is the mean of
///    the input area it covers, partly covered pixels weighted by the covered fraction); an
///    axis that grows is **bilinearly interpolated** with pixel centres aligned
///    (`align_corners = false`: output pixel `j` samples input position
///    `(j + 0.5) * in / out - 0.5`, clamped to the border). The method is deterministic.
///
/// Nothing else is done to the pictures: no cropping, centring, inversion or contrast change.
/// Inputs should look like the training data. For MNIST that means a white (bright) digit on a
/// black background, roughly centred and filling most of a square picture; a black digit drawn
/// on white paper has to be inverted before it is given to the network.
///
/// # Errors
///
/// Every error names `path`: the file is missing or unreadable ([`DataError::Missing`],
/// [`DataError::Io`]), its gzip data is corrupt ([`DataError::Gzip`]), it is neither PNG nor
/// IDX ([`DataError::UnknownImageFormat`]), the PNG does not decode ([`DataError::Png`]), the
/// IDX file has the wrong magic number, a bad header or a wrong length
/// ([`DataError::BadMagic`], [`DataError::BadHeader`], [`DataError::Truncated`],
/// [`DataError::TrailingBytes`]) or holds no image ([`DataError::Empty`]), the shape asks for
/// another channel count than 1 or 3 ([`DataError::UnsupportedChannels`]) or has no pixels
/// ([`DataError::Invalid`]). No input bytes make it panic.
pub fn load_images(path: &Path, shape: ImageShape) -> DataResult<Vec<InputImage>> {
    check_shape(path, shape)?;
    let bytes = read_maybe_gz(path)?;
    if bytes.starts_with(&PNG_MAGIC) {
        let pixels = png_image(path, &bytes, shape)?;
        Ok(vec![InputImage {
            source: path.display().to_string(),
            pixels,
        }])
    } else if bytes.starts_with(&IDX_MAGIC_PREFIX) {
        idx_images(path, bytes, shape)
    } else {
        Err(DataError::UnknownImageFormat {
            path: path.to_path_buf(),
            start: bytes.iter().take(8).copied().collect(),
        })
    }
}

/// Refuses shapes this module cannot produce.
fn check_shape(path: &Path, shape: ImageShape) -> DataResult<()> {
    if shape.channels != 1 && shape.channels != 3 {
        return Err(DataError::UnsupportedChannels {
            path: path.to_path_buf(),
            channels: shape.channels,
        });
    }
    let len = shape
        .height
        .checked_mul(shape.width)
        .and_then(|plane| plane.checked_mul(shape.channels));
    if !matches!(len, Some(n) if n > 0) {
        return Err(DataError::Invalid(format!(
            "{}: cannot convert images to shape {:?}: it has no pixels or too many",
            path.display(),
            shape.dims()
        )));
    }
    Ok(())
}

/// Every image of an IDX image file (already decompressed), converted to `shape`.
fn idx_images(path: &Path, bytes: Vec<u8>, shape: ImageShape) -> DataResult<Vec<InputImage>> {
    let idx = parse_idx_images(path, bytes)?;
    if idx.count == 0 {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    let size = idx.rows * idx.cols;
    Ok(idx
        .pixels
        .chunks_exact(size)
        .enumerate()
        .map(|(i, grey)| {
            let plane = resize(grey, 1, (idx.rows, idx.cols), (shape.height, shape.width));
            InputImage {
                source: format!("{}[{i}]", path.display()),
                pixels: plane.repeat(shape.channels),
            }
        })
        .collect())
}

/// Decodes a PNG and converts it to `shape`.
fn png_image(path: &Path, bytes: &[u8], shape: ImageShape) -> DataResult<Vec<u8>> {
    let png_error = |reason: String| DataError::Png {
        path: path.to_path_buf(),
        reason,
    };
    let limits = png::Limits {
        bytes: PNG_DECODE_LIMIT,
    };
    let mut decoder = png::Decoder::new_with_limits(Cursor::new(bytes), limits);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| png_error(e.to_string()))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| png_error("the decoded image does not fit in memory".into()))?;
    if size > PNG_DECODE_LIMIT {
        return Err(png_error(format!(
            "the decoded image needs {size} bytes, more than the limit of {PNG_DECODE_LIMIT}"
        )));
    }
    let mut buf = vec![0u8; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| png_error(e.to_string()))?;
    // Read up to the end marker, so that a file cut short after its pixel data is refused too.
    reader.finish().map_err(|e| png_error(e.to_string()))?;
    let samples = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => {
            return Err(png_error("palette was not expanded by the decoder".into()));
        }
    };
    if info.bit_depth != png::BitDepth::Eight {
        return Err(png_error(format!(
            "decoder produced {:?}-bit samples, expected 8",
            info.bit_depth
        )));
    }
    let (height, width) = (info.height as usize, info.width as usize);
    let row_bytes = width
        .checked_mul(samples)
        .filter(|&r| r > 0 && r <= info.line_size && height > 0)
        .ok_or_else(|| {
            png_error(format!(
                "bad decoded layout: {width}x{height} pixels, {} bytes per row",
                info.line_size
            ))
        })?;
    let needed = info.line_size.checked_mul(height);
    if !matches!(needed, Some(n) if n <= buf.len()) {
        return Err(png_error(format!(
            "decoded frame of {width}x{height} pixels does not fit the output buffer"
        )));
    }

    let plane = height * width;
    let mut chw = vec![0u8; plane * shape.channels];
    for (y, row) in buf.chunks(info.line_size).take(height).enumerate() {
        for (x, px) in row[..row_bytes].chunks_exact(samples).enumerate() {
            let at = y * width + x;
            match (samples, shape.channels) {
                (1 | 2, _) => {
                    let alpha = px.get(1).copied().unwrap_or(255);
                    let grey = composite(px[0], alpha);
                    for c in 0..shape.channels {
                        chw[c * plane + at] = grey;
                    }
                }
                (_, 1) => {
                    let alpha = px.get(3).copied().unwrap_or(255);
                    chw[at] = luma(px[0], px[1], px[2], alpha);
                }
                _ => {
                    let alpha = px.get(3).copied().unwrap_or(255);
                    for c in 0..3 {
                        chw[c * plane + at] = composite(px[c], alpha);
                    }
                }
            }
        }
    }
    Ok(resize(
        &chw,
        shape.channels,
        (height, width),
        (shape.height, shape.width),
    ))
}

/// `value * alpha / 255`, rounded to nearest: the value composited onto black.
fn composite(value: u8, alpha: u8) -> u8 {
    // value * alpha / 255 never ends in exactly one half (255 is odd), so +127 rounds to nearest.
    ((u32::from(value) * u32::from(alpha) + 127) / 255) as u8
}

/// ITU-R BT.601 luma `0.299 R + 0.587 G + 0.114 B` of a colour composited onto black with
/// `alpha`, rounded to nearest (halves up) in one step.
fn luma(r: u8, g: u8, b: u8, alpha: u8) -> u8 {
    let y1000 = 299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b);
    ((y1000 * u32::from(alpha) + 127_500) / 255_000) as u8
}

/// For each output index along one axis, the input indices and weights (summing to 1) that
/// make it: area averaging when `output < input`, bilinear interpolation with aligned pixel
/// centres when `output > input`, the identity when equal. `input` and `output` are non-zero.
fn axis_weights(input: usize, output: usize) -> Vec<Vec<(usize, f64)>> {
    let scale = input as f64 / output as f64;
    (0..output)
        .map(|j| {
            if output == input {
                vec![(j, 1.0)]
            } else if output < input {
                let (start, end) = (j as f64 * scale, (j + 1) as f64 * scale);
                let first = start.floor() as usize;
                let last = (end.ceil() as usize).min(input);
                (first..last)
                    .filter_map(|i| {
                        let overlap = end.min((i + 1) as f64) - start.max(i as f64);
                        (overlap > 0.0).then_some((i, overlap / scale))
                    })
                    .collect()
            } else {
                let at = ((j as f64 + 0.5) * scale - 0.5).clamp(0.0, (input - 1) as f64);
                let lo = at.floor() as usize;
                let hi = (lo + 1).min(input - 1);
                let frac = at - lo as f64;
                if frac > 0.0 && hi != lo {
                    vec![(lo, 1.0 - frac), (hi, frac)]
                } else {
                    vec![(lo, 1.0)]
                }
            }
        })
        .collect()
}

/// Resizes `channels` planes of `from = (height, width)` pixels (CHW) to `to`, each axis by
/// [`axis_weights`], rounding once at the end. All sizes are non-zero.
fn resize(src: &[u8], channels: usize, from: (usize, usize), to: (usize, usize)) -> Vec<u8> {
    if from == to {
        return src.to_vec();
    }
    let (ih, iw) = from;
    let (oh, ow) = to;
    let rows = axis_weights(ih, oh);
    let cols = axis_weights(iw, ow);
    let mut out = Vec::with_capacity(channels * oh * ow);
    let mut across = vec![0.0f64; ih * ow];
    for plane in src.chunks_exact(ih * iw).take(channels) {
        // First along each row (width), then down each column (height).
        for (y, line) in plane.chunks_exact(iw).enumerate() {
            for (x, weights) in cols.iter().enumerate() {
                across[y * ow + x] = weights.iter().map(|&(i, w)| w * f64::from(line[i])).sum();
            }
        }
        for weights in &rows {
            for x in 0..ow {
                let v: f64 = weights.iter().map(|&(i, w)| w * across[i * ow + x]).sum();
                out.push(v.round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::{TempDir, gz, idx_images as idx_file};
    use super::*;

    /// A PNG of `width x height` pixels; `setup` sets colour type, depth, palette...
    fn encode_png(
        width: u32,
        height: u32,
        setup: impl FnOnce(&mut png::Encoder<'_, &mut Vec<u8>>),
        data: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, width, height);
            setup(&mut enc);
            let mut writer = enc.write_header().unwrap();
            writer.write_image_data(data).unwrap();
            writer.finish().unwrap();
        }
        out
    }

    fn grey8(width: u32, height: u32, data: &[u8]) -> Vec<u8> {
        encode_png(
            width,
            height,
            |e| {
                e.set_color(png::ColorType::Grayscale);
                e.set_depth(png::BitDepth::Eight);
            },
            data,
        )
    }

    fn one(path: &Path, shape: ImageShape) -> InputImage {
        let mut images = load_images(path, shape).unwrap();
        assert_eq!(images.len(), 1);
        images.remove(0)
    }

    #[test]
    fn grey_png_is_read_exactly_and_replicated_to_rgb() {
        let dir = TempDir::new("grey");
        let data = [0, 1, 2, 127, 128, 200, 254, 255];
        let path = dir.write("digit.png", &grey8(4, 2, &data));
        let img = one(&path, ImageShape::new(1, 2, 4));
        assert_eq!(img.source, path.display().to_string());
        assert_eq!(img.pixels, data);
        let rgb = one(&path, ImageShape::new(3, 2, 4));
        assert_eq!(rgb.pixels, [data, data, data].concat());
    }

    #[test]
    fn rgb_png_gives_chw_or_luma() {
        let dir = TempDir::new("rgb");
        // Red, green, blue, white, (10, 20, 30), black.
        let data = [
            255, 0, 0, 0, 255, 0, 0, 0, 255, //
            255, 255, 255, 10, 20, 30, 0, 0, 0,
        ];
        let png = encode_png(
            3,
            2,
            |e| {
                e.set_color(png::ColorType::Rgb);
                e.set_depth(png::BitDepth::Eight);
            },
            &data,
        );
        // No extension and a misleading one: the content decides.
        let path = dir.write("picture.idx", &png);
        let rgb = one(&path, ImageShape::new(3, 2, 3));
        assert_eq!(
            rgb.pixels,
            [
                255, 0, 0, 255, 10, 0, // R plane
                0, 255, 0, 255, 20, 0, // G plane
                0, 0, 255, 255, 30, 0, // B plane
            ]
        );
        // 0.299*255 = 76.245, 0.587*255 = 149.685, 0.114*255 = 29.07,
        // 0.299*10 + 0.587*20 + 0.114*30 = 18.15.
        let grey = one(&path, ImageShape::new(1, 2, 3));
        assert_eq!(grey.pixels, [76, 150, 29, 255, 18, 0]);
    }

    #[test]
    fn luma_and_compositing_values() {
        assert_eq!(luma(255, 0, 0, 255), 76);
        assert_eq!(luma(0, 255, 0, 255), 150);
        assert_eq!(luma(0, 0, 255, 255), 29);
        assert_eq!(luma(255, 255, 255, 255), 255);
        assert_eq!(luma(0, 0, 0, 255), 0);
        // 0.299*100 + 0.587*50 + 0.114*200 = 82.05
        assert_eq!(luma(100, 50, 200, 255), 82);
        // Half transparent white on black: 255 * 128 / 255 = 128.
        assert_eq!(luma(255, 255, 255, 128), 128);
        // 0.114 * 250 = 28.5: a half rounds up.
        assert_eq!(luma(0, 0, 250, 255), 29);
        assert_eq!(luma(255, 255, 255, 0), 0);
        assert_eq!(composite(200, 255), 200);
        assert_eq!(composite(200, 0), 0);
        // 200 * 100 / 255 = 78.43
        assert_eq!(composite(200, 100), 78);
        // 255 * 128 / 255 = 128
        assert_eq!(composite(255, 128), 128);
    }

    #[test]
    fn rgba_png_is_composited_onto_black() {
        let dir = TempDir::new("rgba");
        let data = [
            255, 255, 255, 255, // opaque white
            255, 255, 255, 0, // transparent white
            200, 100, 50, 100, // partly transparent
            0, 0, 0, 255, // opaque black
        ];
        let png = encode_png(
            2,
            2,
            |e| {
                e.set_color(png::ColorType::Rgba);
                e.set_depth(png::BitDepth::Eight);
            },
            &data,
        );
        let path = dir.write("a.png", &png);
        let rgb = one(&path, ImageShape::new(3, 2, 2));
        // 200*100/255 = 78.43, 100*100/255 = 39.22, 50*100/255 = 19.61
        assert_eq!(rgb.pixels, [255, 0, 78, 0, 255, 0, 39, 0, 255, 0, 20, 0]);
        // (0.299*200 + 0.587*100 + 0.114*50) * 100/255 = 124.2 * 0.39216 = 48.71
        let grey = one(&path, ImageShape::new(1, 2, 2));
        assert_eq!(grey.pixels, [255, 0, 49, 0]);
    }

    #[test]
    fn grey_alpha_png_is_composited_onto_black() {
        let dir = TempDir::new("greya");
        let data = [200, 255, 200, 0, 200, 100, 10, 128];
        let png = encode_png(
            4,
            1,
            |e| {
                e.set_color(png::ColorType::GrayscaleAlpha);
                e.set_depth(png::BitDepth::Eight);
            },
            &data,
        );
        let path = dir.write("ga.png", &png);
        // 10 * 128 / 255 = 5.02
        assert_eq!(one(&path, ImageShape::new(1, 1, 4)).pixels, [200, 0, 78, 5]);
    }

    #[test]
    fn sixteen_bit_grey_keeps_the_high_byte() {
        let dir = TempDir::new("g16");
        let values: [u16; 4] = [0x0000, 0x12ff, 0x8001, 0xffff];
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
        let png = encode_png(
            2,
            2,
            |e| {
                e.set_color(png::ColorType::Grayscale);
                e.set_depth(png::BitDepth::Sixteen);
            },
            &data,
        );
        let path = dir.write("g16.png", &png);
        assert_eq!(
            one(&path, ImageShape::new(1, 2, 2)).pixels,
            [0x00, 0x12, 0x80, 0xff]
        );
    }

    #[test]
    fn low_bit_depth_grey_is_scaled_to_eight_bits() {
        let dir = TempDir::new("g1");
        // 1-bit, 8 pixels in one byte: 1 0 1 1 0 0 0 1.
        let png = encode_png(
            8,
            1,
            |e| {
                e.set_color(png::ColorType::Grayscale);
                e.set_depth(png::BitDepth::One);
            },
            &[0b1011_0001],
        );
        let path = dir.write("g1.png", &png);
        assert_eq!(
            one(&path, ImageShape::new(1, 1, 8)).pixels,
            [255, 0, 255, 255, 0, 0, 0, 255]
        );
    }

    #[test]
    fn palette_png_is_expanded_with_its_transparency() {
        let dir = TempDir::new("pal");
        let palette = [255, 0, 0, 0, 0, 255, 255, 255, 255, 100, 100, 100];
        // Entry 3 is fully transparent, entry 2 is half transparent.
        let trns = [255, 255, 128, 0];
        // 2-bit indices: 0 1 2 3 | 3 2 1 0
        let data = [0b0001_1011, 0b1110_0100];
        let png = encode_png(
            4,
            2,
            |e| {
                e.set_color(png::ColorType::Indexed);
                e.set_depth(png::BitDepth::Two);
                e.set_palette(palette.to_vec());
                e.set_trns(trns.to_vec());
            },
            &data,
        );
        let path = dir.write("pal.png", &png);
        let rgb = one(&path, ImageShape::new(3, 2, 4));
        assert_eq!(
            rgb.pixels,
            [
                255, 0, 128, 0, 0, 128, 0, 255, // R
                0, 0, 128, 0, 0, 128, 0, 0, // G
                0, 255, 128, 0, 0, 128, 255, 0, // B
            ]
        );
        let grey = one(&path, ImageShape::new(1, 2, 4));
        assert_eq!(grey.pixels, [76, 29, 128, 0, 0, 128, 29, 76]);

        // Without tRNS the palette expands to plain RGB.
        let opaque = encode_png(
            4,
            1,
            |e| {
                e.set_color(png::ColorType::Indexed);
                e.set_depth(png::BitDepth::Eight);
                e.set_palette(palette.to_vec());
            },
            &[3, 2, 1, 0],
        );
        let path = dir.write("opaque.png", &opaque);
        assert_eq!(
            one(&path, ImageShape::new(1, 1, 4)).pixels,
            [100, 255, 29, 76]
        );
    }

    #[test]
    fn png_is_resized_to_the_shape() {
        let dir = TempDir::new("resize");
        let path = dir.write("big.png", &grey8(4, 4, &[90; 16]));
        let img = one(&path, ImageShape::new(1, 28, 28));
        assert_eq!(img.pixels, vec![90; 28 * 28]);
        let img = one(&path, ImageShape::new(3, 2, 3));
        assert_eq!(img.pixels, vec![90; 18]);
    }

    #[test]
    fn resizing_a_constant_image_keeps_it_constant() {
        for &(from, to) in &[
            ((28, 28), (5, 7)),
            ((3, 3), (28, 28)),
            ((7, 5), (3, 11)),
            ((1, 1), (4, 6)),
            ((13, 2), (1, 1)),
        ] {
            for value in [0u8, 1, 77, 254, 255] {
                let src = vec![value; 2 * from.0 * from.1];
                let out = resize(&src, 2, from, to);
                assert_eq!(out, vec![value; 2 * to.0 * to.1], "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn resizing_two_by_two_to_four_by_four_is_bilinear() {
        // Along each axis [a, b] becomes [a, 0.75a + 0.25b, 0.25a + 0.75b, b].
        let out = resize(&[0, 80, 160, 240], 1, (2, 2), (4, 4));
        assert_eq!(
            out,
            [
                0, 20, 60, 80, //
                40, 60, 100, 120, //
                120, 140, 180, 200, //
                160, 180, 220, 240,
            ]
        );
    }

    #[test]
    fn resizing_four_by_four_to_two_by_two_averages_areas() {
        let src = [
            1, 2, 10, 10, //
            3, 4, 20, 30, //
            0, 0, 255, 255, //
            0, 1, 255, 254,
        ];
        // Block means: 2.5 -> 3, 17.5 -> 18, 0.25 -> 0, 254.75 -> 255.
        assert_eq!(resize(&src, 1, (4, 4), (2, 2)), [3, 18, 0, 255]);
    }

    #[test]
    fn shrinking_by_a_fraction_weights_partial_pixels() {
        // 3 -> 2: output 0 covers pixels [0, 1.5), output 1 covers [1.5, 3).
        // (0 + 0.5*30) / 1.5 = 10, (0.5*30 + 60) / 1.5 = 50.
        assert_eq!(resize(&[0, 30, 60], 1, (1, 3), (1, 2)), [10, 50]);
        // One axis shrinks while the other grows.
        let out = resize(&[0, 30, 60, 0, 30, 60], 1, (2, 3), (4, 2));
        assert_eq!(out, [10, 50, 10, 50, 10, 50, 10, 50]);
    }

    #[test]
    fn idx_file_gives_every_image_raw_or_gzip() {
        let dir = TempDir::new("idx");
        let pixels: Vec<u8> = (0..3 * 2 * 2).map(|v| v as u8 * 10).collect();
        let raw = idx_file(3, 2, 2, &pixels);
        for (name, bytes) in [("imgs", raw.clone()), ("imgs.gz", gz(&raw))] {
            let path = dir.write(name, &bytes);
            let images = load_images(&path, ImageShape::new(1, 2, 2)).unwrap();
            assert_eq!(images.len(), 3);
            for (i, img) in images.iter().enumerate() {
                assert_eq!(img.source, format!("{}[{i}]", path.display()));
                assert_eq!(img.pixels, pixels[i * 4..(i + 1) * 4]);
            }
            // Three channels repeat the grey plane; a bigger shape is resized.
            let images = load_images(&path, ImageShape::new(3, 4, 4)).unwrap();
            assert_eq!(images.len(), 3);
            let first = resize(&pixels[..4], 1, (2, 2), (4, 4));
            assert_eq!(images[0].pixels, [&first[..], &first, &first].concat());
        }
    }

    #[test]
    fn malformed_idx_files_are_errors() {
        let dir = TempDir::new("badidx");
        let shape = ImageShape::new(1, 2, 2);
        let short = dir.write("short", &idx_file(3, 2, 2, &[0; 11]));
        let err = load_images(&short, shape).unwrap_err();
        assert!(matches!(err, DataError::Truncated { .. }), "{err:?}");
        assert!(err.to_string().contains("short"), "{err}");

        let long = dir.write("long", &idx_file(1, 2, 2, &[0; 5]));
        let err = load_images(&long, shape).unwrap_err();
        assert!(matches!(err, DataError::TrailingBytes { .. }), "{err:?}");

        let mut labels = idx_file(1, 2, 2, &[0; 4]);
        labels[3] = 0x01;
        let labels = dir.write("labels", &labels);
        let err = load_images(&labels, shape).unwrap_err();
        assert!(
            matches!(err, DataError::BadMagic { found: 0x801, .. }),
            "{err:?}"
        );

        let empty = dir.write("empty", &idx_file(0, 2, 2, &[]));
        let err = load_images(&empty, shape).unwrap_err();
        assert!(matches!(err, DataError::Empty { .. }), "{err:?}");

        let zero = dir.write("zero", &idx_file(2, 0, 2, &[]));
        let err = load_images(&zero, shape).unwrap_err();
        assert!(matches!(err, DataError::BadHeader { .. }), "{err:?}");

        let bad_gz = dir.write("bad.gz", &[0x1f, 0x8b, 1, 2, 3]);
        let err = load_images(&bad_gz, shape).unwrap_err();
        assert!(matches!(err, DataError::Gzip { .. }), "{err:?}");
    }

    #[test]
    fn truncated_or_corrupt_png_is_an_error() {
        let dir = TempDir::new("badpng");
        let shape = ImageShape::new(1, 2, 2);
        let good = grey8(2, 2, &[1, 2, 3, 4]);
        for cut in [
            4,
            8,
            16,
            33,
            good.len() / 2,
            good.len() - 12,
            good.len() - 1,
        ] {
            let path = dir.write(&format!("cut{cut}.png"), &good[..cut]);
            let err = load_images(&path, shape).unwrap_err();
            assert!(
                matches!(err, DataError::Png { .. }),
                "cut at {cut}: {err:?}"
            );
            assert!(err.to_string().contains(&format!("cut{cut}.png")), "{err}");
        }
        // A flipped byte in the image data breaks its checksum.
        let mut corrupt = good.clone();
        let at = corrupt.len() - 16;
        corrupt[at] ^= 0x55;
        let path = dir.write("corrupt.png", &corrupt);
        assert!(load_images(&path, shape).is_err());
    }

    #[test]
    fn every_prefix_of_a_file_is_an_error() {
        let dir = TempDir::new("prefix");
        let shape = ImageShape::new(1, 3, 3);
        let png = grey8(3, 3, &[9; 9]);
        let idx = idx_file(2, 3, 3, &[9; 18]);
        for (name, bytes) in [("p.png", png), ("i.idx", idx)] {
            let full = dir.write(name, &bytes);
            assert!(load_images(&full, shape).is_ok());
            for cut in 0..bytes.len() {
                let path = dir.write(name, &bytes[..cut]);
                assert!(load_images(&path, shape).is_err(), "{name} cut at {cut}");
            }
        }
    }

    #[test]
    fn a_png_announcing_a_huge_image_is_refused() {
        let dir = TempDir::new("huge");
        let mut png = grey8(1, 1, &[0]);
        // IHDR: length at 8, type at 12, width at 16, height at 20, CRC of 12..29 at 29.
        png[16..20].copy_from_slice(&60_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&60_000u32.to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(&png[12..29]);
        png[29..33].copy_from_slice(&crc.sum().to_be_bytes());
        let path = dir.write("huge.png", &png);
        let err = load_images(&path, ImageShape::new(1, 28, 28)).unwrap_err();
        assert!(matches!(err, DataError::Png { .. }), "{err:?}");
    }

    #[test]
    fn other_content_is_an_error_not_a_panic() {
        let dir = TempDir::new("junk");
        let shape = ImageShape::new(1, 28, 28);
        let text = dir.write("note.png", b"hello, world");
        let err = load_images(&text, shape).unwrap_err();
        assert!(
            matches!(err, DataError::UnknownImageFormat { .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("note.png") && msg.contains("68 65 6c 6c"),
            "{msg}"
        );

        let empty = dir.write("empty.png", b"");
        let err = load_images(&empty, shape).unwrap_err();
        assert!(err.to_string().contains("the file is empty"), "{err}");

        let missing = dir.path().join("missing.png");
        let err = load_images(&missing, shape).unwrap_err();
        assert!(matches!(err, DataError::Missing { .. }), "{err:?}");

        // Pseudo-random bytes, alone and behind each magic prefix, never panic.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for round in 0..300 {
            let len = (round * 7) % 200;
            let mut bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 24) as u8
                })
                .collect();
            let prefix: &[u8] = match round % 4 {
                1 => &[0x89, b'P', b'N', b'G', 13, 10, 26, 10],
                2 => &[0, 0, 8, 3],
                3 => &[0x1f, 0x8b],
                _ => &[],
            };
            bytes.splice(0..0, prefix.iter().copied());
            let path = dir.write("random", &bytes);
            let _ = load_images(&path, shape);
        }
    }

    #[test]
    fn unsupported_shapes_are_errors() {
        let dir = TempDir::new("shape");
        let path = dir.write("g.png", &grey8(1, 1, &[7]));
        let err = load_images(&path, ImageShape::new(2, 4, 4)).unwrap_err();
        assert!(
            matches!(err, DataError::UnsupportedChannels { channels: 2, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("g.png"), "{err}");
        let err = load_images(&path, ImageShape::new(4, 4, 4)).unwrap_err();
        assert!(
            matches!(err, DataError::UnsupportedChannels { .. }),
            "{err:?}"
        );
        let err = load_images(&path, ImageShape::new(1, 0, 4)).unwrap_err();
        assert!(matches!(err, DataError::Invalid(_)), "{err:?}");
    }
}
