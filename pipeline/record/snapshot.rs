//! Snapshots: the full-resolution frame that confirmed an alert, as a clean JPEG
//! and an annotated one (box, label, score, track id, the rule's zone or line).
//!
//! Text uses a TrueType font found at run time: a CJK one first (Debian's
//! `fonts-wqy-zenhei`), because camera names here are Chinese and a Latin-only
//! font burns them into evidence as empty boxes; else `fonts-dejavu-core`.
//! Without any, the annotated snapshot has shapes only.

use ab_glyph::{Font, FontVec, PxScale, ScaleFont, point};
use image::{Rgb, RgbImage};
use std::io::Write;
use std::path::Path;

const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSansBold.ttf",
];

/// The first usable font of the usual Debian ones, if any is installed.
pub fn find_font() -> Option<FontVec> {
    FONT_CANDIDATES
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .find_map(|bytes| FontVec::try_from_vec(bytes).ok())
}

/// An entrance line `from`, `to`, and a point on its inside, as fractions.
pub type LinePoints = ([f32; 2], [f32; 2], [f32; 2]);

/// What the annotated snapshot shows, in fractions of the frame.
pub struct Annotation<'a> {
    pub bbox: [f32; 4],
    /// e.g. `person #3 0.82`.
    pub caption: String,
    /// Loitering and battery-cart zones: a closed polygon.
    pub zone: Option<&'a [[f32; 2]]>,
    /// An entrance line, and a point on its inside.
    pub line: Option<LinePoints>,
    pub title: String,
    pub color: [u8; 3],
}

/// Draws the annotation on a copy of `clean`.
pub fn annotate(clean: &RgbImage, a: &Annotation<'_>, font: Option<&FontVec>) -> RgbImage {
    let mut img = clean.clone();
    let (w, h) = (img.width() as f32, img.height() as f32);
    let px = |p: [f32; 2]| (p[0] * w, p[1] * h);
    let thick = ((w.min(h) / 240.0).round() as i32).max(2);
    let zone_color = Rgb([0, 200, 255]);
    if let Some(poly) = a.zone {
        for i in 0..poly.len() {
            let j = (i + 1) % poly.len();
            draw_line(&mut img, px(poly[i]), px(poly[j]), zone_color, thick);
        }
    }
    if let Some((from, to, inside)) = a.line {
        draw_line(&mut img, px(from), px(to), zone_color, thick + 1);
        // An arrow from the line's middle toward the inside: which way is "in".
        let mid = ((from[0] + to[0]) / 2.0, (from[1] + to[1]) / 2.0);
        let dir = (inside[0] - mid.0, inside[1] - mid.1);
        let len = (dir.0 * dir.0 + dir.1 * dir.1).sqrt().max(1e-6);
        let tip = [mid.0 + dir.0 / len * 0.08, mid.1 + dir.1 / len * 0.08];
        draw_line(&mut img, px([mid.0, mid.1]), px(tip), zone_color, thick);
        if let Some(f) = font {
            let (x, y) = px(tip);
            draw_label(&mut img, f, x, y, "IN", zone_color, 0.8);
        }
    }
    let color = Rgb(a.color);
    let [x1, y1, x2, y2] = a.bbox;
    let (x1, y1) = px([x1, y1]);
    let (x2, y2) = px([x2, y2]);
    for (p, q) in [
        ((x1, y1), (x2, y1)),
        ((x2, y1), (x2, y2)),
        ((x2, y2), (x1, y2)),
        ((x1, y2), (x1, y1)),
    ] {
        draw_line(&mut img, p, q, color, thick);
    }
    if let Some(f) = font {
        let size = (h / 28.0).max(12.0);
        let above = (y1 - size * 1.3).max(0.0);
        draw_label(&mut img, f, x1, above, &a.caption, color, 1.0);
        draw_label(&mut img, f, 4.0, 4.0, &a.title, Rgb([255, 255, 255]), 1.0);
    }
    img
}

/// Text on a dark box, so it reads on any background.
pub(crate) fn draw_label(
    img: &mut RgbImage,
    font: &FontVec,
    x: f32,
    y: f32,
    text: &str,
    color: Rgb<u8>,
    rel: f32,
) {
    let size = (img.height() as f32 / 28.0).max(12.0) * rel;
    let scaled = font.as_scaled(PxScale::from(size));
    let width: f32 = text
        .chars()
        .map(|c| scaled.h_advance(scaled.glyph_id(c)))
        .sum();
    let pad = size * 0.15;
    let (bx, by) = (x.max(0.0), y.max(0.0));
    for yy in by as i32..(by + size * 1.2 + 2.0 * pad) as i32 {
        for xx in bx as i32..(bx + width + 2.0 * pad) as i32 {
            if let Some(p) = pixel(img, xx, yy) {
                for c in &mut p.0 {
                    *c /= 3;
                }
            }
        }
    }
    let mut caret = bx + pad;
    let baseline = by + pad + scaled.ascent();
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        let glyph = id.with_scale_and_position(size, point(caret, baseline));
        caret += scaled.h_advance(id);
        if let Some(outlined) = font.outline_glyph(glyph) {
            let bounds = outlined.px_bounds();
            outlined.draw(|gx, gy, coverage| {
                let (xx, yy) = (
                    bounds.min.x as i32 + gx as i32,
                    bounds.min.y as i32 + gy as i32,
                );
                if let Some(p) = pixel(img, xx, yy) {
                    for (dst, src) in p.0.iter_mut().zip(color.0) {
                        *dst = (*dst as f32 * (1.0 - coverage) + src as f32 * coverage) as u8;
                    }
                }
            });
        }
    }
}

fn pixel(img: &mut RgbImage, x: i32, y: i32) -> Option<&mut Rgb<u8>> {
    (x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height())
        .then(|| img.get_pixel_mut(x as u32, y as u32))
}

/// A line `thick` pixels wide (squares stamped along it).
pub(crate) fn draw_line(
    img: &mut RgbImage,
    from: (f32, f32),
    to: (f32, f32),
    color: Rgb<u8>,
    thick: i32,
) {
    let steps = (to.0 - from.0)
        .abs()
        .max((to.1 - from.1).abs())
        .ceil()
        .max(1.0) as i32;
    let half = thick / 2;
    for i in 0..=steps {
        let t = i as f32 / steps as f32;
        let x = (from.0 + (to.0 - from.0) * t).round() as i32;
        let y = (from.1 + (to.1 - from.1) * t).round() as i32;
        for dy in -half..thick - half {
            for dx in -half..thick - half {
                if let Some(p) = pixel(img, x + dx, y + dy) {
                    *p = color;
                }
            }
        }
    }
}

/// JPEG bytes of `img`, quality 90, through GStreamer's `jpegenc`
/// (libjpeg-turbo: about ten times faster than a pure-Rust encoder, and the
/// snapshot is on the path of every `new`).
pub fn encode_jpeg(img: &RgbImage) -> Result<Vec<u8>, String> {
    use gstreamer as gst;
    let (w, h) = img.dimensions();
    // GStreamer's packed RGB rows are padded to 4 bytes.
    let stride = (w as usize * 3 + 3) & !3;
    let mut data = vec![0u8; stride * h as usize];
    for (row, src) in img.as_raw().chunks_exact(w as usize * 3).enumerate() {
        data[row * stride..row * stride + src.len()].copy_from_slice(src);
    }
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "RGB")
        .field("width", w as i32)
        .field("height", h as i32)
        .field("framerate", gst::Fraction::new(0, 1))
        .build();
    let sample = gst::Sample::builder()
        .buffer(&gst::Buffer::from_mut_slice(data))
        .caps(&caps)
        .build();
    let jpeg = gst::Caps::builder("image/jpeg").build();
    let out =
        gstreamer_video::convert_sample(&sample, &jpeg, Some(gst::ClockTime::from_seconds(10)))
            .map_err(|e| format!("JPEG encoding: {e}"))?;
    let buffer = out.buffer().ok_or("JPEG encoding gave no buffer")?;
    let map = buffer.map_readable().map_err(|e| e.to_string())?;
    Ok(map.as_slice().to_vec())
}

/// Writes `bytes` to `path` via `.part`, synced, then renamed: a reader never
/// sees a half-written file.
pub fn write_synced(bytes: &[u8], path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut part = path.as_os_str().to_owned();
    part.push(".part");
    let mut file = std::fs::File::create(&part)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&part, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_changes_the_box_outline_and_keeps_the_size() {
        let clean = RgbImage::from_pixel(320, 240, Rgb([40, 80, 120]));
        let zone = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]];
        let a = Annotation {
            bbox: [0.25, 0.25, 0.5, 0.75],
            caption: "person #3 0.82".into(),
            zone: Some(&zone),
            line: None,
            title: "plaza · loitering".into(),
            color: [255, 160, 0],
        };
        let font = find_font();
        let out = annotate(&clean, &a, font.as_ref());
        assert_eq!(out.dimensions(), clean.dimensions());
        assert_eq!(out.get_pixel(80, 120), &Rgb([255, 160, 0]));
        assert_eq!(out.get_pixel(120, 120), clean.get_pixel(120, 120));
    }
}
