//! Preprocess: the model's input tensor from a scaled picture, in one pass.
//!
//! GStreamer has already resized the picture to fit the model input (aspect kept)
//! and converted it to the model's channel order, so what is left is placing it in
//! the letterbox, normalising and transposing HWC→CHW. The border is constant, so
//! it is written only when the geometry changes, not every frame.

use crate::geometry::BBox;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelOrder {
    #[default]
    Rgb,
    Bgr,
}

impl ChannelOrder {
    /// The GStreamer raw video format with this byte order.
    pub fn gst_format(self) -> &'static str {
        match self {
            ChannelOrder::Rgb => "RGB",
            ChannelOrder::Bgr => "BGR",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LetterboxPlacement {
    #[default]
    TopLeft,
    Center,
}

/// Everything about a model's input that preprocessing needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputSpec {
    pub width: u32,
    pub height: u32,
    pub channels: ChannelOrder,
    pub scale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub placement: LetterboxPlacement,
    pub pad: u8,
}

impl InputSpec {
    /// Size a `src_w` x `src_h` picture is resized to so it fits, aspect kept.
    pub fn fitted_size(&self, src_w: u32, src_h: u32) -> (u32, u32) {
        let scale =
            (self.width as f32 / src_w.max(1) as f32).min(self.height as f32 / src_h.max(1) as f32);
        let w = ((src_w as f32 * scale).round() as u32).clamp(1, self.width);
        let h = ((src_h as f32 * scale).round() as u32).clamp(1, self.height);
        (w, h)
    }
}

/// Where the picture sits inside the model input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub offset_x: u32,
    pub offset_y: u32,
    pub width: u32,
    pub height: u32,
}

impl Letterbox {
    pub fn fit(picture_w: u32, picture_h: u32, spec: &InputSpec) -> Self {
        let width = picture_w.min(spec.width);
        let height = picture_h.min(spec.height);
        let (offset_x, offset_y) = match spec.placement {
            LetterboxPlacement::TopLeft => (0, 0),
            LetterboxPlacement::Center => ((spec.width - width) / 2, (spec.height - height) / 2),
        };
        Letterbox {
            offset_x,
            offset_y,
            width,
            height,
        }
    }

    /// A box in model-input pixels → the same box in scaled-picture pixels.
    pub fn to_source(&self, b: BBox) -> BBox {
        let (ox, oy) = (self.offset_x as f32, self.offset_y as f32);
        let (w, h) = (self.width as f32, self.height as f32);
        BBox {
            x1: (b.x1 - ox).clamp(0.0, w),
            y1: (b.y1 - oy).clamp(0.0, h),
            x2: (b.x2 - ox).clamp(0.0, w),
            y2: (b.y2 - oy).clamp(0.0, h),
        }
    }
}

/// A packed 3-channel picture already in the model's channel order, and how its
/// pixels map back to the full frame (it may be a crop, and it is resized).
pub struct ScaledImage<'a> {
    pub data: &'a [u8],
    pub width: u32,
    pub height: u32,
    /// Bytes per row (GStreamer pads RGB rows to 4 bytes).
    pub stride: usize,
    /// Full-frame pixel rectangle this picture shows.
    pub region: BBox,
}

impl ScaledImage<'_> {
    /// A box in this picture's pixels → full-frame pixels.
    pub fn to_frame(&self, b: BBox) -> BBox {
        let sx = self.region.width() / self.width as f32;
        let sy = self.region.height() / self.height as f32;
        BBox {
            x1: self.region.x1 + b.x1 * sx,
            y1: self.region.y1 + b.y1 * sy,
            x2: self.region.x1 + b.x2 * sx,
            y2: self.region.y1 + b.y2 * sy,
        }
    }
}

fn norm(spec: &InputSpec) -> ([f32; 3], [f32; 3]) {
    // v' = (v * scale - mean) / std  ==  v * mul + add
    let mut mul = [0.0; 3];
    let mut add = [0.0; 3];
    for c in 0..3 {
        mul[c] = spec.scale / spec.std[c];
        add[c] = -spec.mean[c] / spec.std[c];
    }
    (mul, add)
}

/// Writes the normalised pad value everywhere (called when the geometry changes).
pub fn fill_padding(input: &mut [f32], spec: &InputSpec, _letterbox: &Letterbox) {
    let (mul, add) = norm(spec);
    let plane = (spec.width * spec.height) as usize;
    for c in 0..3 {
        let v = spec.pad as f32 * mul[c] + add[c];
        input[c * plane..(c + 1) * plane].fill(v);
    }
}

/// Copies the picture into the letterbox region: normalise and HWC→CHW in one pass.
pub fn fill_picture(image: &ScaledImage<'_>, spec: &InputSpec, lb: &Letterbox, input: &mut [f32]) {
    let (mul, add) = norm(spec);
    let plane = (spec.width * spec.height) as usize;
    let (r_plane, rest) = input.split_at_mut(plane);
    let (g_plane, b_plane) = rest.split_at_mut(plane);
    let w = lb.width as usize;
    for y in 0..lb.height as usize {
        let row = &image.data[y * image.stride..y * image.stride + w * 3];
        let start = (y + lb.offset_y as usize) * spec.width as usize + lb.offset_x as usize;
        let (p0, p1, p2) = (
            &mut r_plane[start..start + w],
            &mut g_plane[start..start + w],
            &mut b_plane[start..start + w],
        );
        for (x, px) in row.chunks_exact(3).enumerate() {
            p0[x] = px[0] as f32 * mul[0] + add[0];
            p1[x] = px[1] as f32 * mul[1] + add[1];
            p2[x] = px[2] as f32 * mul[2] + add[2];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_left_letterbox_places_picture_and_pads() {
        let spec = InputSpec {
            width: 4,
            height: 4,
            channels: ChannelOrder::Bgr,
            scale: 1.0,
            mean: [0.0; 3],
            std: [1.0; 3],
            placement: LetterboxPlacement::TopLeft,
            pad: 114,
        };
        let data = [10u8, 20, 30, 40, 50, 60, 0, 0]; // 2x1 picture, stride 8
        let img = ScaledImage {
            data: &data,
            width: 2,
            height: 1,
            stride: 8,
            region: BBox {
                x1: 0.0,
                y1: 0.0,
                x2: 2.0,
                y2: 1.0,
            },
        };
        let lb = Letterbox::fit(2, 1, &spec);
        let mut input = vec![0.0; 48];
        fill_padding(&mut input, &spec, &lb);
        fill_picture(&img, &spec, &lb, &mut input);
        assert_eq!(&input[0..3], &[10.0, 40.0, 114.0]);
        assert_eq!(input[16], 20.0);
        assert_eq!(input[32 + 1], 60.0);
    }
}
