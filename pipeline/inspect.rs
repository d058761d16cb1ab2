//! Inspect: what the detector saw, for integrators tuning a camera. Off the alert
//! path; only `vigil replay --annotate / --detections` turns it on.
//!
//! A camera worker hands each processed frame's [`FrameTrace`] (detections,
//! tracks with their dwell per zone, whether motion gating skipped the frame, the
//! events it raised) to its [`Inspector`], which writes it as one JSON line and/or
//! draws it on the frame and encodes the result as browser-playable H.264 MP4.

use crate::events::{Event, Lifecycle};
use crate::geometry::BBox;
use crate::labelling::{Export, Sighting};
use crate::record::snapshot::{draw_label, draw_line, find_font};
use crate::rules::{LineConfig, ZoneConfig};
use crate::source::Frame;
use ab_glyph::FontVec;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use image::{Rgb, RgbImage};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// One processed frame, as `--detections` writes it.
#[derive(Debug, Clone, Serialize)]
pub struct FrameTrace {
    pub camera: Arc<str>,
    pub frame: u64,
    /// Media time of the frame, seconds.
    pub time_s: f64,
    pub width: u32,
    pub height: u32,
    /// Motion gating judged the frame still: tracking detectors did not run.
    pub motion_skipped: bool,
    /// Detectors that ran on this frame (none: no inference, tracks carried over).
    pub detectors: Vec<Arc<str>>,
    /// Crops the detectors ran on when not the whole frame (`roi`, tiles),
    /// `[x1, y1, x2, y2]` in frame pixels.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<[f32; 4]>,
    pub detections: Vec<DetectionTrace>,
    pub tracks: Vec<TrackTrace>,
    pub events: Vec<EventTrace>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DetectionTrace {
    pub label: Arc<str>,
    pub score: f32,
    /// `[x1, y1, x2, y2]` in frame pixels.
    pub bbox: [f32; 4],
}

#[derive(Debug, Clone, Serialize)]
pub struct TrackTrace {
    pub id: u64,
    pub label: Arc<str>,
    pub score: f32,
    pub bbox: [f32; 4],
    /// Seconds inside each loitering zone it is in now.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub dwell_s: BTreeMap<Arc<str>, f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventTrace {
    pub event_id: String,
    pub lifecycle: Lifecycle,
    pub summary: String,
}

impl EventTrace {
    pub fn of(e: &Event) -> Self {
        EventTrace {
            event_id: e.event_id.clone(),
            lifecycle: e.lifecycle,
            summary: e.after.summary.clone(),
        }
    }
}

pub fn corners(b: &BBox) -> [f32; 4] {
    [b.x1, b.y1, b.x2, b.y2]
}

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("{path}: cannot create")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--annotate {path}: {message}")]
    Video { path: PathBuf, message: String },
}

/// Where a replay's inspection goes.
#[derive(Debug, Clone, Default)]
pub struct InspectOptions {
    /// An `.mp4` file (one camera) or a directory (`<camera>.mp4` each).
    pub annotate: Option<PathBuf>,
    /// JSON lines, one per processed frame of every camera.
    pub detections: Option<PathBuf>,
    /// Frames chosen and pre-labelled for a dataset (`vigil dataset export`).
    pub export: Option<Arc<Export>>,
    /// Where the frames come from when not the camera itself (an alert's clip).
    pub export_source: Option<String>,
}

impl InspectOptions {
    pub fn is_on(&self) -> bool {
        self.annotate.is_some() || self.detections.is_some() || self.export.is_some()
    }
}

/// What every camera's inspector shares: the JSON-lines file and the font.
pub struct InspectOutputs {
    options: InspectOptions,
    cameras: usize,
    log: Option<Arc<Mutex<std::io::BufWriter<std::fs::File>>>>,
    font: Option<Arc<FontVec>>,
}

impl InspectOutputs {
    pub fn open(options: &InspectOptions, cameras: usize) -> Result<Self, InspectError> {
        let log = match &options.detections {
            Some(path) => {
                let file = std::fs::File::create(path).map_err(|source| InspectError::Create {
                    path: path.clone(),
                    source,
                })?;
                Some(Arc::new(Mutex::new(std::io::BufWriter::new(file))))
            }
            None => None,
        };
        if let Some(path) = &options.annotate {
            let is_file = path.extension().is_some_and(|e| e == "mp4");
            if is_file && cameras > 1 {
                return Err(InspectError::Video {
                    path: path.clone(),
                    message: format!("{cameras} cameras: give a directory (one <camera>.mp4 each)"),
                });
            }
            // Refused now, naming the file, rather than by the encoder later.
            if is_file {
                std::fs::File::create(path).map_err(|source| InspectError::Create {
                    path: path.clone(),
                    source,
                })?;
            } else {
                std::fs::create_dir_all(path).map_err(|source| InspectError::Create {
                    path: path.clone(),
                    source,
                })?;
            }
        }
        Ok(InspectOutputs {
            options: options.clone(),
            cameras,
            log,
            font: options
                .annotate
                .is_some()
                .then(find_font)
                .flatten()
                .map(Arc::new),
        })
    }

    /// The inspector for one camera.
    pub fn inspector(&self, camera: &str, zones: &[ZoneConfig], lines: &[LineConfig]) -> Inspector {
        let video = self.options.annotate.as_ref().map(|p| {
            if p.extension().is_some_and(|e| e == "mp4") && self.cameras <= 1 {
                p.clone()
            } else {
                p.join(format!("{camera}.mp4"))
            }
        });
        Inspector {
            camera: camera.into(),
            export: self.options.export.clone(),
            export_source: self
                .options
                .export_source
                .clone()
                .unwrap_or_else(|| camera.to_string()),
            log: self.log.clone(),
            video_path: video,
            video: None,
            failed: false,
            font: self.font.clone(),
            zones: zones.to_vec(),
            lines: lines.to_vec(),
            trails: HashMap::new(),
            open_alerts: BTreeMap::new(),
        }
    }
}

/// How many past positions a track's trail shows.
const TRAIL: usize = 20;

/// One camera's inspection: the shared log plus its own annotated video.
pub struct Inspector {
    camera: String,
    export: Option<Arc<Export>>,
    export_source: String,
    log: Option<Arc<Mutex<std::io::BufWriter<std::fs::File>>>>,
    video_path: Option<PathBuf>,
    video: Option<AnnotatedVideo>,
    failed: bool,
    font: Option<Arc<FontVec>>,
    zones: Vec<ZoneConfig>,
    lines: Vec<LineConfig>,
    trails: HashMap<u64, VecDeque<(f32, f32)>>,
    /// Alert id → its summary, while open, for the banner.
    open_alerts: BTreeMap<String, String>,
}

impl Inspector {
    pub fn frame(&mut self, frame: &Frame, trace: &FrameTrace) {
        if let Some(export) = &self.export {
            let sightings: Vec<Sighting> = trace
                .detections
                .iter()
                .map(|d| Sighting {
                    label: d.label.to_string(),
                    score: d.score,
                    bbox: d.bbox,
                })
                .collect();
            let ran = !trace.detectors.is_empty();
            export.frame(&self.camera, &self.export_source, frame, ran, &sightings);
        }
        if let Some(log) = &self.log
            && let Ok(line) = serde_json::to_string(trace)
            && let Ok(mut w) = log.lock()
        {
            let _ = writeln!(w, "{line}");
        }
        for t in &trace.tracks {
            let trail = self.trails.entry(t.id).or_default();
            trail.push_back(((t.bbox[0] + t.bbox[2]) / 2.0, t.bbox[3]));
            if trail.len() > TRAIL {
                trail.pop_front();
            }
        }
        let alive: Vec<u64> = trace.tracks.iter().map(|t| t.id).collect();
        if !trace.detectors.is_empty() {
            self.trails.retain(|id, _| alive.contains(id));
        }
        let Some(path) = self.video_path.clone() else {
            return;
        };
        if self.failed {
            return;
        }
        let picture = match frame.picture().to_rgb() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(camera = %trace.camera, "--annotate: frame {}: {e}", trace.frame);
                return;
            }
        };
        let drawn = self.draw(picture, trace);
        if self.video.is_none() {
            match AnnotatedVideo::start(
                &path,
                drawn.width(),
                drawn.height(),
                frame.frame_rate().unwrap_or((10, 1)),
            ) {
                Ok(v) => self.video = Some(v),
                Err(message) => {
                    tracing::error!(camera = %trace.camera, "--annotate {}: {message}", path.display());
                    self.failed = true;
                    return;
                }
            }
        }
        if let Some(video) = &mut self.video
            && let Err(message) = video.push(&drawn, frame.pts.as_nanos())
        {
            tracing::error!(camera = %trace.camera, "--annotate {}: {message}", path.display());
            self.failed = true;
        }
    }

    fn draw(&mut self, mut img: RgbImage, trace: &FrameTrace) -> RgbImage {
        let (w, h) = (img.width() as f32, img.height() as f32);
        let px = |p: [f32; 2]| (p[0] * w, p[1] * h);
        let thick = ((w.min(h) / 300.0).round() as i32).max(1);
        let font = self.font.as_deref();
        let zone_colour = Rgb([0, 200, 255]);
        for z in &self.zones {
            for i in 0..z.polygon.len() {
                let j = (i + 1) % z.polygon.len();
                draw_line(
                    &mut img,
                    px(z.polygon[i]),
                    px(z.polygon[j]),
                    zone_colour,
                    thick,
                );
            }
            if let (Some(f), Some(first)) = (font, z.polygon.first()) {
                let (x, y) = px(*first);
                draw_label(&mut img, f, x, y, &z.name, zone_colour, 0.6);
            }
        }
        for l in &self.lines {
            draw_line(&mut img, px(l.from), px(l.to), zone_colour, thick + 1);
            if let Some(f) = font {
                let (x, y) = px(l.inside);
                draw_label(
                    &mut img,
                    f,
                    x,
                    y,
                    &format!("{} IN", l.name),
                    zone_colour,
                    0.6,
                );
            }
        }
        // Tiles and crops the model ran on, thin and white: where it looked.
        for r in &trace.regions {
            rectangle(&mut img, *r, Rgb([235, 235, 235]), thick);
        }
        // Raw detections thin and grey-yellow; tracks thick in their own colour.
        for d in &trace.detections {
            let colour = Rgb([230, 220, 90]);
            rectangle(&mut img, d.bbox, colour, 1);
            if let Some(f) = font {
                let text = format!("{} {:.2}", d.label, d.score);
                draw_label(&mut img, f, d.bbox[0], d.bbox[3], &text, colour, 0.5);
            }
        }
        for t in &trace.tracks {
            let colour = track_colour(t.id);
            rectangle(&mut img, t.bbox, colour, thick + 1);
            if let Some(trail) = self.trails.get(&t.id) {
                for (a, b) in trail.iter().zip(trail.iter().skip(1)) {
                    draw_line(&mut img, *a, *b, colour, thick);
                }
            }
            if let Some(f) = font {
                let mut text = format!("#{} {} {:.2}", t.id, t.label, t.score);
                for (zone, s) in &t.dwell_s {
                    text.push_str(&format!("  {zone} {s:.1}s"));
                }
                let y = (t.bbox[1] - h / 40.0).max(0.0);
                draw_label(&mut img, f, t.bbox[0], y, &text, colour, 0.6);
            }
        }
        for e in &trace.events {
            let id = e
                .event_id
                .rsplit_once('/')
                .map_or(e.event_id.as_str(), |(a, _)| a);
            match e.lifecycle {
                Lifecycle::End => {
                    self.open_alerts.remove(id);
                }
                _ => {
                    self.open_alerts.insert(id.to_string(), e.summary.clone());
                }
            }
        }
        if let Some(f) = font {
            let title = format!(
                "{}  {:.1}s  frame {}{}",
                trace.camera,
                trace.time_s,
                trace.frame,
                if trace.detectors.is_empty() {
                    "  (no inference)"
                } else {
                    ""
                }
            );
            draw_label(&mut img, f, 4.0, 4.0, &title, Rgb([255, 255, 255]), 0.7);
            if trace.motion_skipped {
                draw_label(
                    &mut img,
                    f,
                    w * 0.7,
                    4.0,
                    "motion: still",
                    Rgb([255, 160, 0]),
                    0.7,
                );
            }
            let mut y = h / 14.0;
            for summary in self.open_alerts.values() {
                draw_label(
                    &mut img,
                    f,
                    4.0,
                    y,
                    &format!("ALERT {summary}"),
                    Rgb([255, 60, 60]),
                    0.7,
                );
                y += h / 20.0;
            }
            for e in trace
                .events
                .iter()
                .filter(|e| e.lifecycle == Lifecycle::End)
            {
                draw_label(
                    &mut img,
                    f,
                    4.0,
                    y,
                    &format!("ended: {}", e.summary),
                    Rgb([160, 255, 160]),
                    0.7,
                );
                y += h / 20.0;
            }
        }
        img
    }
}

fn rectangle(img: &mut RgbImage, b: [f32; 4], colour: Rgb<u8>, thick: i32) {
    let [x1, y1, x2, y2] = b;
    for (p, q) in [
        ((x1, y1), (x2, y1)),
        ((x2, y1), (x2, y2)),
        ((x2, y2), (x1, y2)),
        ((x1, y2), (x1, y1)),
    ] {
        draw_line(img, p, q, colour, thick);
    }
}

/// A stable, distinct colour per track id.
fn track_colour(id: u64) -> Rgb<u8> {
    const PALETTE: [[u8; 3]; 8] = [
        [255, 80, 80],
        [80, 220, 80],
        [80, 160, 255],
        [255, 180, 0],
        [220, 80, 255],
        [0, 230, 210],
        [255, 120, 200],
        [180, 255, 80],
    ];
    Rgb(PALETTE[(id % PALETTE.len() as u64) as usize])
}

/// `appsrc (RGB) → videoconvert → I420 → x264enc → mp4mux → filesink`.
struct AnnotatedVideo {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    first_pts: Option<u64>,
    last_pts: Option<u64>,
    path: PathBuf,
}

impl AnnotatedVideo {
    /// `rate` is nominal (timestamps come from the frames) but must not be
    /// `0/1`: with a variable rate mp4mux gives the last frame no duration and
    /// players drop it.
    fn start(path: &Path, width: u32, height: u32, rate: (i32, i32)) -> Result<Self, String> {
        // x264 needs even sizes in 4:2:0; frames are cropped by a pixel if not.
        let description = format!(
            "appsrc name=src format=time is-live=false block=true max-bytes={} \
             caps=video/x-raw,format=RGB,width={width},height={height},framerate={}/{} \
             ! videoconvert ! videocrop right={} bottom={} ! video/x-raw,format=I420 \
             ! x264enc speed-preset=veryfast key-int-max=30 bframes=0 \
             ! video/x-h264,profile=high ! h264parse ! mp4mux faststart=true \
             ! filesink name=sink",
            (width * height * 3 * 4) as u64,
            rate.0,
            rate.1,
            width % 2,
            height % 2
        );
        let pipeline = gst::parse::launch(&description)
            .map_err(|e| {
                format!("cannot build the encoder ({e}); is gstreamer1.0-plugins-ugly installed?")
            })?
            .downcast::<gst::Pipeline>()
            .map_err(|_| "not a pipeline".to_string())?;
        let sink = pipeline.by_name("sink").ok_or("no sink")?;
        sink.set_property("location", path.to_string_lossy().to_string());
        let src = pipeline
            .by_name("src")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or("no appsrc")?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| format!("cannot start the encoder: {e}"))?;
        Ok(AnnotatedVideo {
            pipeline,
            src,
            first_pts: None,
            last_pts: None,
            path: path.to_path_buf(),
        })
    }

    fn push(&mut self, img: &RgbImage, pts_ns: u64) -> Result<(), String> {
        let first = *self.first_pts.get_or_insert(pts_ns);
        // Without a duration the muxer gives the last frame none, and players
        // drop it: each frame lasts as long as the gap before it.
        let duration = self
            .last_pts
            .map(|last| pts_ns.saturating_sub(last))
            .filter(|d| *d > 0)
            .unwrap_or(100_000_000);
        self.last_pts = Some(pts_ns);
        let mut buffer = gst::Buffer::from_slice(img.as_raw().clone());
        if let Some(b) = buffer.get_mut() {
            b.set_pts(gst::ClockTime::from_nseconds(pts_ns.saturating_sub(first)));
            b.set_duration(gst::ClockTime::from_nseconds(duration));
        }
        self.src
            .push_buffer(buffer)
            .map(|_| ())
            .map_err(|e| format!("the encoder refused a frame: {e:?}"))
    }
}

impl Drop for AnnotatedVideo {
    /// Ends the stream and waits (bounded) for the muxer to write the index.
    fn drop(&mut self) {
        let _ = self.src.end_of_stream();
        if let Some(bus) = self.pipeline.bus() {
            let msg = bus.timed_pop_filtered(
                gst::ClockTime::from_seconds(30),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            );
            if let Some(gst::MessageView::Error(e)) = msg.as_ref().map(|m| m.view()) {
                tracing::error!("--annotate {}: {}", self.path.display(), e.error());
            }
        }
        let _ = self.pipeline.set_state(gst::State::Null);
        tracing::info!("annotated video written to {}", self.path.display());
    }
}
