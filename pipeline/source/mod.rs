//! Source: a camera or a file → decoded [`Frame`]s with presentation timestamps.
//!
//! GStreamer decodes, drops frames above the camera's fps cap, and resizes each
//! frame once per detector to exactly the size that detector needs (aspect kept,
//! optionally cropped to a region of interest), in its channel order. The decoded
//! full-resolution picture rides along untouched for snapshots.
//!
//! Frames reach the worker through a one-frame [`FrameSlot`]: live sources overwrite
//! a frame the worker has not taken yet (counted as dropped, so a slow detector never
//! makes memory grow); replays block instead, so every frame is processed and the
//! result is deterministic. The GStreamer plumbing lives in `imp.rs`.

mod imp;
mod slot;

pub use imp::CameraSource;
pub use slot::{FrameSlot, SlotMode};

use crate::detect::{ChannelOrder, ScaledImage};
use crate::geometry::BBox;
use crate::time::{MediaTime, WallTime};
use gstreamer as gst;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use std::path::{Path, PathBuf};

/// One decoded frame and its per-detector views.
pub struct Frame {
    pub seq: u64,
    pub pts: MediaTime,
    pub received: WallTime,
    pub width: u32,
    pub height: u32,
    /// The decoded picture at full resolution, in the decoder's own format.
    pub full: gst::Sample,
    /// One view per [`ViewSpec`] the source was opened with, same order.
    pub views: Vec<View>,
}

impl Frame {
    /// The full-resolution picture, shared (no copy), for snapshots.
    pub fn picture(&self) -> Picture {
        Picture(self.full.clone())
    }

    /// The stream's nominal frame rate, if its caps state one (not `0/1`).
    pub fn frame_rate(&self) -> Option<(i32, i32)> {
        let caps = self.full.caps()?;
        let rate = caps.structure(0)?.get::<gst::Fraction>("framerate").ok()?;
        (rate.numer() > 0 && rate.denom() > 0).then(|| (rate.numer(), rate.denom()))
    }
}

/// A decoded full-resolution picture; cloning shares the buffer.
#[derive(Debug, Clone)]
pub struct Picture(gst::Sample);

impl Picture {
    /// Converts to packed RGB at full resolution (for JPEG snapshots); runs
    /// wherever it is called, so call it off the camera worker.
    pub fn to_rgb(&self) -> Result<image::RgbImage, String> {
        self.to_rgb_within(u32::MAX)
    }

    /// Packed RGB at most `max_width` wide (aspect kept), converted and scaled
    /// in one pass: thumbnails cost a fraction of a full conversion.
    pub fn to_rgb_within(&self, max_width: u32) -> Result<image::RgbImage, String> {
        let caps = self.0.caps().ok_or("the frame has no caps")?;
        let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| e.to_string())?;
        let buffer = self.0.buffer_owned().ok_or("the frame has no buffer")?;
        let (w, h) = if info.width() > max_width {
            let h = (info.height() as u64 * max_width as u64 / info.width() as u64).max(1);
            (max_width, h as u32)
        } else {
            (info.width(), info.height())
        };
        let src = gst_video::VideoFrame::from_buffer_readable(buffer, &info)
            .map_err(|_| "the frame cannot be mapped".to_string())?;
        let out_info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, w, h)
            .fps(info.fps())
            .build()
            .map_err(|e| e.to_string())?;
        let out = gst::Buffer::with_size(out_info.size()).map_err(|e| e.to_string())?;
        let mut dest = gst_video::VideoFrame::from_buffer_writable(out, &out_info)
            .map_err(|_| "cannot map the RGB buffer".to_string())?;
        gst_video::VideoConverter::new(&info, &out_info, None)
            .map_err(|e| e.to_string())?
            .frame(&src, &mut dest);
        let stride = dest.plane_stride()[0] as usize;
        let data = dest.plane_data(0).map_err(|e| e.to_string())?;
        let mut rgb = Vec::with_capacity((w * h * 3) as usize);
        for row in 0..h as usize {
            rgb.extend_from_slice(&data[row * stride..row * stride + w as usize * 3]);
        }
        image::RgbImage::from_raw(w, h, rgb).ok_or_else(|| "bad RGB size".to_string())
    }
}

/// A frame resized (and maybe cropped) for one detector.
pub struct View {
    sample: gst::Sample,
    info: gst_video::VideoInfo,
    region: BBox,
}

impl View {
    /// Lends the mapped pixels as a [`ScaledImage`]; `None` if the buffer cannot be
    /// mapped (GStreamer handed over something that is not packed RGB/BGR).
    pub fn with_image<R>(&self, f: impl FnOnce(&ScaledImage<'_>) -> R) -> Option<R> {
        let buffer = self.sample.buffer()?;
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &self.info).ok()?;
        let image = ScaledImage {
            data: frame.plane_data(0).ok()?,
            width: frame.width(),
            height: frame.height(),
            stride: frame.plane_stride()[0] as usize,
            region: self.region,
        };
        Some(f(&image))
    }

    /// The full-frame pixel rectangle this view shows (its `roi` or tile).
    pub fn region(&self) -> BBox {
        self.region
    }

    /// `region` of the full picture, fitted to `spec` as a decoder view would
    /// be (aspect kept, linear scaling), converted on the calling thread: for
    /// crops that change every frame (motion regions).
    pub fn crop(full: &gst::Sample, region: BBox, spec: &ViewSpec) -> Result<View, String> {
        let caps = full.caps().ok_or("the frame has no caps")?;
        let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| e.to_string())?;
        let buffer = full.buffer_owned().ok_or("the frame has no buffer")?;
        let x = (region.x1.max(0.0) as u32).min(info.width().saturating_sub(2));
        let y = (region.y1.max(0.0) as u32).min(info.height().saturating_sub(2));
        let w = (region.width() as u32).clamp(2, info.width() - x);
        let h = (region.height() as u32).clamp(2, info.height() - y);
        let fit = crate::detect::InputSpec {
            width: spec.width,
            height: spec.height,
            channels: spec.channels,
            scale: 1.0,
            mean: [0.0; 3],
            std: [1.0; 3],
            placement: crate::detect::LetterboxPlacement::TopLeft,
            pad: 0,
        };
        let (fw, fh) = fit.fitted_size(w, h);
        let format = match spec.channels {
            crate::detect::ChannelOrder::Rgb => gst_video::VideoFormat::Rgb,
            crate::detect::ChannelOrder::Bgr => gst_video::VideoFormat::Bgr,
        };
        let out_info = gst_video::VideoInfo::builder(format, fw, fh)
            .fps(info.fps())
            .build()
            .map_err(|e| e.to_string())?;
        let src = gst_video::VideoFrame::from_buffer_readable(buffer, &info)
            .map_err(|_| "the frame cannot be mapped".to_string())?;
        let out = gst::Buffer::with_size(out_info.size()).map_err(|e| e.to_string())?;
        let mut dest = gst_video::VideoFrame::from_buffer_writable(out, &out_info)
            .map_err(|_| "cannot map the crop's buffer".to_string())?;
        let mut config = gst_video::VideoConverterConfig::new();
        config.set_src_x(x as i32);
        config.set_src_y(y as i32);
        config.set_src_width(Some(w as i32));
        config.set_src_height(Some(h as i32));
        // videoscale's default, as the decoder views use.
        config.set_resampler_method(gst_video::VideoResamplerMethod::Linear);
        gst_video::VideoConverter::new(&info, &out_info, Some(config))
            .map_err(|e| e.to_string())?
            .frame(&src, &mut dest);
        let caps = out_info.to_caps().map_err(|e| e.to_string())?;
        let sample = gst::Sample::builder()
            .buffer(&dest.into_buffer())
            .caps(&caps)
            .build();
        Ok(View {
            sample,
            info: out_info,
            region: BBox {
                x1: x as f32,
                y1: y as f32,
                x2: (x + w) as f32,
                y2: (y + h) as f32,
            },
        })
    }
}

/// What one detector needs from the decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewSpec {
    /// Model input size; the view is the largest aspect-kept size that fits.
    pub width: u32,
    pub height: u32,
    pub channels: ChannelOrder,
    /// Region of interest `[x1, y1, x2, y2]`, normalised; whole frame if `None`.
    pub roi: Option<[f32; 4]>,
}

/// How a source is watched and what it feeds besides the worker.
#[derive(Default)]
pub struct SourceOptions {
    /// Receives the encoded video for clips.
    pub recorder: Option<std::sync::Arc<crate::record::CameraRecorder>>,
    /// The process-wide stop: the reader ends at once, even mid-stall.
    pub shutdown: crate::shutdown::Shutdown,
    /// Declare the source failed after this long without a frame.
    pub stall: Option<std::time::Duration>,
}

/// How frames are handed to the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// Live: files play at their own frame rate, a slow worker loses frames.
    Live,
    /// Replay: as fast as the worker goes, no frame lost.
    AsFastAsPossible,
}

/// `source` of a camera, resolved: a GStreamer URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceUri(pub String);

impl SourceUri {
    /// `source` as written in a config: a URI (`rtsp://`, `file://`, ...) or a file
    /// path relative to the config's directory.
    pub fn resolve(source: &str, base: &Path) -> Result<Self, SourceError> {
        if source.starts_with("gst:") || source.contains("://") {
            return Ok(SourceUri(source.to_string()));
        }
        let path = base.join(source);
        if !path.is_file() {
            return Err(SourceError::Missing { path });
        }
        let path = path
            .canonicalize()
            .map_err(|_| SourceError::Missing { path: path.clone() })?;
        let uri = gst::glib::filename_to_uri(&path, None).map_err(|e| SourceError::Open {
            uri: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(SourceUri(uri.to_string()))
    }

    /// Whether GStreamer can open this at all, without opening it: a `gst:`
    /// pipeline must parse, a URI must have a source element for its scheme.
    pub fn validate(&self) -> Result<(), SourceError> {
        init()?;
        let open = |reason: String| SourceError::Open {
            uri: crate::redact::redact(&self.0),
            reason: crate::redact::redact(&reason),
        };
        match self.pipeline() {
            Some(description) => source_bin(description)
                .map(|_| ())
                .map_err(|e| open(format!("bad GStreamer pipeline: {e}"))),
            None => gst::Element::make_from_uri(gst::URIType::Src, &self.0, None)
                .map(|_| ())
                .map_err(|e| {
                    open(format!(
                        "no GStreamer source handles this URI ({e}); use rtsp://, http(s)://, file://, a file path, or gst: <pipeline>"
                    ))
                }),
        }
    }

    /// A network camera: paced by the sender, may stall. Files and `gst:`
    /// pipelines are paced by vigil.
    pub fn is_live(&self) -> bool {
        !(self.0.starts_with("file://") || self.0.starts_with("gst:"))
    }

    /// The description of a `gst:` source: a GStreamer pipeline ending in an
    /// unlinked video src pad, e.g. `gst: videotestsrc num-buffers=100`.
    pub fn pipeline(&self) -> Option<&str> {
        self.0.strip_prefix("gst:").map(str::trim)
    }
}

/// A `gst:` description as a bin whose one pad, `src`, is its unlinked video
/// output. Only the src side is ghosted: GStreamer's own "ghost unlinked pads"
/// would also ghost the sink pad after a demuxer or `decodebin` (it waits for
/// a pad that appears at run time), and that pad's delayed link then fails
/// with "not-linked".
fn source_bin(description: &str) -> Result<gst::Bin, gst::glib::Error> {
    let bin = gst::parse::bin_from_description(description, false)?;
    if let Some(pad) = bin.find_unlinked_pad(gst::PadDirection::Src) {
        let ghost = gst::GhostPad::builder_with_target(&pad)
            .map_err(|e| gst::glib::Error::new(gst::CoreError::Pad, &e.to_string()))?
            .name("src")
            .build();
        bin.add_pad(&ghost)
            .map_err(|e| gst::glib::Error::new(gst::CoreError::Pad, &e.to_string()))?;
    }
    Ok(bin)
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("video file {path}: not found")]
    Missing { path: PathBuf },
    #[error("source {uri}: cannot start: {reason}")]
    Open { uri: String, reason: String },
    #[error("source {uri}: {reason}")]
    Stream { uri: String, reason: String },
}

/// Why a source stopped delivering frames.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceEnd {
    /// End of stream (a file finished).
    Finished,
    /// Asked to stop.
    Stopped,
    /// Decoding or the connection failed.
    Failed(String),
}

/// Initialises GStreamer once; a clear error if the libraries are missing.
pub fn init() -> Result<(), SourceError> {
    gst::init().map_err(|e| SourceError::Open {
        uri: "gstreamer".into(),
        reason: e.to_string(),
    })
}

/// One still image decoded and fitted exactly as a camera frame is: the same
/// GStreamer decode, crop, scaling filter, conversion and letterbox geometry as
/// [`CameraSource`], because it *is* a one-frame camera. `vigil eval` measures
/// through this, so its numbers are the camera path's, whatever the image size.
/// `resize` first stretches the picture to `WxH` (to undo a dataset's square
/// stretch), as a camera of that size would deliver it.
pub fn still_frame(
    path: &Path,
    resize: Option<(u32, u32)>,
    views: &[ViewSpec],
) -> Result<Frame, SourceError> {
    let location = path
        .to_string_lossy()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    let resize = resize
        .map(|(w, h)| {
            format!(
                " ! videoscale ! capsfilter caps=video/x-raw,width={w},height={h},pixel-aspect-ratio=1/1"
            )
        })
        .unwrap_or_default();
    // decodebin's pad appears late, after this one-buffer stream has already
    // failed as not-linked; still images have a decoder of their own.
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    let decoder = match extension.as_deref() {
        Some("jpg" | "jpeg") => "jpegdec",
        Some("png") => "pngdec",
        _ => "decodebin",
    };
    let uri = SourceUri(format!(
        "gst: filesrc location=\"{location}\" ! {decoder} ! videoconvert{resize} ! imagefreeze num-buffers=1"
    ));
    let source = CameraSource::open(
        &path.display().to_string(),
        &uri,
        None,
        views,
        Pacing::AsFastAsPossible,
        SourceOptions::default(),
    )?;
    let frame = source.slot().take();
    source.stop();
    frame.map_err(|end| SourceError::Stream {
        uri: path.display().to_string(),
        reason: match end {
            SourceEnd::Failed(reason) => reason,
            _ => "no picture decoded".into(),
        },
    })
}
