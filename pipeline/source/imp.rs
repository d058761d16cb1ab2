//! GStreamer plumbing behind [`CameraSource`].
//!
//! `uridecodebin → tee` (frames over the detectors' rate dropped by timestamp at
//! the tee), then one branch per consumer:
//! `queue → appsink "full"` keeps the decoded picture, and per detector
//! `queue → videocrop → videoscale → videoconvert → capsfilter → appsink`. Crop and
//! output size depend on the stream's resolution, so they are set from a probe on
//! the first caps (and again if the camera changes resolution). A reader thread
//! pulls one sample from each appsink in turn (the tee feeds them in lockstep) and
//! puts the assembled [`Frame`] into the slot.

use super::{
    Frame, FrameSlot, Pacing, SlotMode, SourceEnd, SourceError, SourceOptions, SourceUri, View,
    ViewSpec,
};
use crate::detect::{InputSpec, LetterboxPlacement};
use crate::geometry::BBox;
use crate::record::CameraRecorder;
use crate::record::ring::Unit;
use crate::redact::redact;
use crate::shutdown::Shutdown;
use crate::time::{MediaTime, WallTime};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(100);

/// A running decode pipeline for one camera.
pub struct CameraSource {
    pipeline: gst::Pipeline,
    slot: Arc<FrameSlot>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

struct Branch {
    crop: gst::Element,
    caps: gst::Element,
    spec: ViewSpec,
}

/// Frame size and per-view regions, written by the caps probe, read by the reader.
#[derive(Default)]
struct Geometry {
    width: AtomicU32,
    height: AtomicU32,
    regions: std::sync::Mutex<Vec<BBox>>,
}

fn open_err(uri: &SourceUri, reason: impl ToString) -> SourceError {
    SourceError::Open {
        uri: redact(&uri.0),
        reason: redact(&reason.to_string()),
    }
}

impl CameraSource {
    pub fn open(
        camera: &str,
        uri: &SourceUri,
        fps: Option<f32>,
        views: &[ViewSpec],
        pacing: Pacing,
        options: SourceOptions,
    ) -> Result<Self, SourceError> {
        let SourceOptions {
            recorder,
            shutdown,
            stall,
        } = options;
        super::init()?;
        let pipeline = gst::Pipeline::with_name(&format!("camera-{camera}"));
        let make = |factory: &str| {
            gst::ElementFactory::make(factory).build().map_err(|_| open_err(uri, format!("GStreamer element {factory} is missing (install the GStreamer plugin packages)")))
        };

        let decode = if let Some(description) = uri.pipeline() {
            // `gst:` sources: the integrator's own GStreamer pipeline, whose
            // unlinked src pad feeds vigil.
            super::source_bin(description)
                .map_err(|e| open_err(uri, format!("bad GStreamer pipeline: {e}")))?
                .upcast::<gst::Element>()
        } else {
            let decode = make("uridecodebin")?;
            decode.set_property("uri", &uri.0);
            // RTSP: 2 s of jitter buffer is the default; alerts want frames sooner.
            decode.connect("source-setup", false, |args| {
                if let Ok(src) = args[1].get::<gst::Element>()
                    && src.has_property("latency")
                {
                    src.set_property("latency", 200u32);
                }
                None
            });
            decode
        };
        let tee = make("tee")?;
        let sync = pacing == Pacing::Live && !uri.is_live();
        let appsink = |name: &str| {
            gst_app::AppSink::builder()
                .name(name)
                .sync(sync)
                .max_buffers(2)
                .drop(false)
                .build()
        };
        let queue = || -> Result<gst::Element, SourceError> {
            let q = make("queue")?;
            q.set_property("max-size-buffers", 2u32);
            q.set_property("max-size-bytes", 0u32);
            q.set_property("max-size-time", 0u64);
            Ok(q)
        };
        pipeline
            .add_many([&decode, &tee])
            .map_err(|e| open_err(uri, e))?;

        let full_queue = queue()?;
        let full_sink = appsink("full");
        pipeline
            .add_many([&full_queue, full_sink.upcast_ref()])
            .map_err(|e| open_err(uri, e))?;
        gst::Element::link_many([&tee, &full_queue, full_sink.upcast_ref()])
            .map_err(|e| open_err(uri, e))?;

        if let Some(recorder) = &recorder {
            // Recording is evidence, detection is the alarm: a recorder that
            // cannot be built costs the clips, never the camera.
            match add_encoder_branch(&pipeline, &tee, recorder.clone(), pacing, &make) {
                Ok(valve) => tap_compressed(&pipeline, &decode, recorder.clone(), Some(valve)),
                Err(e) => {
                    tracing::warn!(camera, "no clips from raw video: {e}");
                    tap_compressed(&pipeline, &decode, recorder.clone(), None);
                }
            }
            // Added before the rate limiter's probe: clips keep every frame.
            tap_decoded(&tee, recorder.clone(), pacing);
        }

        let mut branches = Vec::new();
        let mut sinks = Vec::new();
        for (i, spec) in views.iter().enumerate() {
            let q = queue()?;
            let crop = make("videocrop")?;
            let scale = make("videoscale")?;
            let convert = make("videoconvert")?;
            let caps = make("capsfilter")?;
            let sink = appsink(&format!("view{i}"));
            pipeline
                .add_many([&q, &crop, &scale, &convert, &caps, sink.upcast_ref()])
                .map_err(|e| open_err(uri, e))?;
            gst::Element::link_many([&tee, &q, &crop, &scale, &convert, &caps, sink.upcast_ref()])
                .map_err(|e| open_err(uri, e))?;
            branches.push(Branch {
                crop,
                caps,
                spec: spec.clone(),
            });
            sinks.push(sink);
        }

        // Link only the video stream; audio and data pads stay unlinked.
        let rate_sink = tee.static_pad("sink").expect("tee has a sink pad");
        if let Some(src) = decode.static_pad("src") {
            src.link(&rate_sink).map_err(|e| open_err(uri, e))?;
        }
        decode.connect_pad_added(move |_, pad| {
            let is_video = pad
                .current_caps()
                .or_else(|| Some(pad.query_caps(None)))
                .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/")))
                .unwrap_or(false);
            if is_video && !rate_sink.is_linked() {
                let _ = pad.link(&rate_sink);
            }
        });

        if let Some(bus) = pipeline.bus() {
            // Streaming threads post ENTER from themselves as they start a
            // task: tagged with the camera, a crash in one names it.
            let camera: Arc<str> = camera.into();
            bus.set_sync_handler(move |_, message| {
                if let gst::MessageView::StreamStatus(status) = message.view() {
                    match status.get().0 {
                        gst::StreamStatusType::Enter => crate::watchdog::mark_thread(&camera),
                        gst::StreamStatusType::Leave => crate::watchdog::unmark_thread(),
                        _ => {}
                    }
                }
                gst::BusSyncReply::Pass
            });
        }

        let geometry = Arc::new(Geometry::default());
        {
            let geometry = geometry.clone();
            // Frames over the camera's `fps` are dropped by timestamp here, not
            // by `videorate`: videorate asserts (aborting the whole process) on
            // streams whose buffers carry no duration, which ordinary MP4s with
            // an audio track or an edit list produce.
            let limiter = fps
                .filter(|f| *f > 0.0)
                .map(|f| std::sync::Mutex::new(RateLimiter::new(f)));
            let tee_sink = tee.static_pad("sink").expect("tee has a sink pad");
            tee_sink.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
                move |_, info| {
                    match &info.data {
                        Some(gst::PadProbeData::Buffer(buffer)) => {
                            let pts = buffer.pts().map(|t| t.nseconds());
                            let keep = |l: &std::sync::Mutex<RateLimiter>| {
                                l.lock().unwrap_or_else(|e| e.into_inner()).keep(pts)
                            };
                            if limiter.as_ref().is_some_and(|l| !keep(l)) {
                                // Taken and released here (`Handled`), not
                                // `Drop`: with gstreamer-rs 0.25 on GStreamer
                                // 1.22, `Drop` logs a CRITICAL per frame.
                                info.data = None;
                                return gst::PadProbeReturn::Handled;
                            }
                        }
                        Some(gst::PadProbeData::Event(ev)) => {
                            if let gst::EventView::Caps(c) = ev.view()
                                && let Ok(vi) = gst_video::VideoInfo::from_caps(c.caps())
                            {
                                configure_branches(&branches, &geometry, vi.width(), vi.height());
                            }
                        }
                        _ => {}
                    }
                    gst::PadProbeReturn::Ok
                },
            );
        }

        let mode = match pacing {
            Pacing::Live => SlotMode::Latest,
            Pacing::AsFastAsPossible => SlotMode::Block,
        };
        let slot = Arc::new(FrameSlot::new(mode));
        let stop = Arc::new(AtomicBool::new(false));
        if let Err(e) = pipeline.set_state(gst::State::Playing) {
            let reason = bus_error(&pipeline).unwrap_or_else(|| e.to_string());
            let _ = pipeline.set_state(gst::State::Null);
            return Err(open_err(uri, reason));
        }
        let reader = {
            let (pipeline, slot) = (pipeline.clone(), slot.clone());
            let watch = Watch {
                stop: stop.clone(),
                shutdown,
                stall,
            };
            let camera = camera.to_string();
            std::thread::Builder::new()
                .name(format!("decode-{camera}"))
                .spawn(move || {
                    crate::watchdog::mark_thread(&camera);
                    let end = read_frames(&pipeline, &full_sink, &sinks, &geometry, &slot, &watch);
                    slot.close(end);
                })
                .map_err(|e| open_err(uri, e))?
        };
        Ok(CameraSource {
            pipeline,
            slot,
            stop,
            reader: Some(reader),
        })
    }

    /// Length of the stream, once GStreamer knows it (files only).
    pub fn duration(&self) -> Option<MediaTime> {
        self.pipeline
            .query_duration::<gst::ClockTime>()
            .map(|d| MediaTime::from_nanos(d.nseconds()))
    }

    pub fn slot(&self) -> &Arc<FrameSlot> {
        &self.slot
    }

    /// Stops decoding; frames already in the slot can still be taken.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Drop for CameraSource {
    fn drop(&mut self) {
        self.stop();
        self.slot.close(SourceEnd::Stopped);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        // GStreamer warns (CRITICAL) if a playing pipeline is dropped.
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// For raw sources (nothing compressed to tap): `valve → queue → videocrop →
/// videoconvert → x264enc → h264parse → appsink` feeds the recorder encoded
/// frames. Returns the valve, which [`tap_compressed`] closes as soon as the
/// source turns out to decode something (then the camera's own compressed
/// units are recorded and nothing is encoded here).
fn add_encoder_branch(
    pipeline: &gst::Pipeline,
    tee: &gst::Element,
    recorder: Arc<CameraRecorder>,
    pacing: Pacing,
    make: &dyn Fn(&str) -> Result<gst::Element, SourceError>,
) -> Result<gst::Element, String> {
    let named = |f: &str| make(f).map_err(|e| e.to_string());
    let valve = named("valve")?;
    // Named for its thread (`rec-encode:src`), which runs the encoder.
    let queue = gst::ElementFactory::make("queue")
        .name("rec-encode")
        .build()
        .map_err(|_| "GStreamer element queue is missing".to_string())?;
    queue.set_property("max-size-buffers", 4u32);
    queue.set_property("max-size-bytes", 0u32);
    queue.set_property("max-size-time", 0u64);
    if pacing == Pacing::Live {
        // A live camera never waits for the recorder: an overloaded encoder
        // loses clip frames, not detection frames.
        queue.set_property_from_str("leaky", "downstream");
    }
    if let Some(pad) = queue.static_pad("src") {
        // Detection comes first: the encoder gets the cores when inference
        // does not need them.
        let lowered = AtomicBool::new(false);
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            if !lowered.swap(true, Ordering::Relaxed) {
                crate::record::lower_thread_priority();
            }
            gst::PadProbeReturn::Ok
        });
        crate::record::meter_recording_thread(&pad);
    }
    let [crop, convert, raw_caps, encoder] = crate::record::h264_encoder()?;
    let parse = named("h264parse")?;
    let out_caps = named("capsfilter")?;
    out_caps.set_property("caps", crate::record::avc_caps());
    let sink = gst_app::AppSink::builder()
        .name("encoded")
        .sync(false)
        .build();
    // Not part of preroll: when the valve is closed this sink never gets a
    // buffer, and the other sinks must not wait for it.
    sink.set_async(false);
    let mut last_caps: Option<gst::Caps> = None;
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(caps) = sample.caps()
                    && last_caps.as_ref().is_none_or(|c| c.as_ref() != caps)
                {
                    last_caps = Some(caps.to_owned());
                    recorder.set_caps(caps.to_owned());
                }
                if let Some(unit) = crate::record::unit_from_encoder(&sample) {
                    recorder.count_encoded();
                    recorder.push(unit);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let elements = [
        &valve,
        &queue,
        &crop,
        &convert,
        &raw_caps,
        &encoder,
        &parse,
        &out_caps,
        sink.upcast_ref(),
    ];
    pipeline.add_many(elements).map_err(|e| e.to_string())?;
    gst::Element::link_many(elements).map_err(|e| e.to_string())?;
    tee.link(&valve).map_err(|e| e.to_string())?;
    Ok(valve)
}

/// A tapped compressed buffer to the recorder.
fn push_unit(recorder: &CameraRecorder, buffer: gst::Buffer) {
    // Some demuxers stamp only the decode time of codecs without reordering.
    let Some(pts) = buffer.pts().or(buffer.dts()) else {
        return;
    };
    recorder.push(Unit {
        pts: pts.nseconds(),
        dts: buffer.dts().map(|d| d.nseconds()),
        duration: buffer.duration().map(|d| d.nseconds()),
        keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
        buffer,
    });
}

/// Hands the decoded frames to the recorder, whose transcoder (when clips of
/// a non-H.264 camera are open) encodes them rather than decode the camera's
/// video a second time. Buffers are shared, not copied.
fn tap_decoded(tee: &gst::Element, recorder: Arc<CameraRecorder>, pacing: Pacing) {
    let Some(pad) = tee.static_pad("sink") else {
        return;
    };
    recorder.set_replay(pacing == Pacing::AsFastAsPossible);
    let caps = std::sync::Mutex::new(None::<gst::Caps>);
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            let mut caps = caps.lock().unwrap_or_else(|e| e.into_inner());
            match &info.data {
                Some(gst::PadProbeData::Buffer(buffer)) => {
                    if let Some(caps) = caps.as_ref() {
                        recorder.push_picture(buffer, caps);
                    }
                }
                Some(gst::PadProbeData::Event(ev)) => {
                    if let gst::EventView::Caps(c) = ev.view() {
                        *caps = Some(c.caps_owned());
                    }
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
}

/// Taps the compressed video the source decodes, for the recorder's ring: the
/// first H.264/H.265 parser's access units (muxed into clips as they are), or
/// for any other codec what enters the first video decoder (transcoded only
/// when a clip needs it). Either closes the encoder branch, which is left only
/// for raw sources.
fn tap_compressed(
    pipeline: &gst::Pipeline,
    decode: &gst::Element,
    recorder: Arc<CameraRecorder>,
    valve: Option<gst::Element>,
) {
    let tapped = Arc::new(AtomicBool::new(false));
    let tap = move |element: &gst::Element| {
        let Some(factory) = element.factory() else {
            return;
        };
        let is_parser = matches!(factory.name().as_str(), "h264parse" | "h265parse");
        // MJPEG's decoder (`jpegdec`) calls itself an image decoder.
        let is_video_decoder = factory
            .metadata(gst::ELEMENT_METADATA_KLASS)
            .is_some_and(|k| k.contains("Decoder") && (k.contains("Video") || k.contains("Image")));
        let pad = match (is_parser, is_video_decoder) {
            (true, _) => element.static_pad("src"),
            (false, true) => element.static_pad("sink"),
            _ => None,
        };
        let Some(pad) = pad else { return };
        let (recorder, tapped, valve) = (recorder.clone(), tapped.clone(), valve.clone());
        // Decided at the first caps: H.264/H.265 reaching a decoder were
        // already taken at their parser.
        let active = AtomicBool::new(false);
        pad.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, info| {
                match &info.data {
                    Some(gst::PadProbeData::Event(ev)) => {
                        if let gst::EventView::Caps(c) = ev.view() {
                            let caps = c.caps_owned();
                            let codec = caps.structure(0).map(|s| s.name().to_string());
                            let passed_through = !is_parser
                                && matches!(
                                    codec.as_deref(),
                                    Some("video/x-h264" | "video/x-h265")
                                );
                            if !active.load(Ordering::Relaxed)
                                && !passed_through
                                && !tapped.swap(true, Ordering::SeqCst)
                            {
                                active.store(true, Ordering::Relaxed);
                                if let Some(valve) = &valve {
                                    valve.set_property("drop", true);
                                }
                            }
                            if active.load(Ordering::Relaxed) {
                                recorder.set_caps(caps);
                            }
                        }
                    }
                    Some(gst::PadProbeData::Buffer(buffer)) if active.load(Ordering::Relaxed) => {
                        push_unit(&recorder, buffer.clone())
                    }
                    _ => {}
                }
                gst::PadProbeReturn::Ok
            },
        );
    };
    if let Some(bin) = decode.downcast_ref::<gst::Bin>() {
        for element in bin.iterate_recurse().into_iter().flatten() {
            tap(&element);
        }
    }
    pipeline.connect_deep_element_added(move |_, _, element| tap(element));
}

fn configure_branches(branches: &[Branch], geometry: &Geometry, width: u32, height: u32) {
    geometry.width.store(width, Ordering::SeqCst);
    geometry.height.store(height, Ordering::SeqCst);
    let mut regions = Vec::new();
    for b in branches {
        let roi = b.spec.roi.unwrap_or([0.0, 0.0, 1.0, 1.0]);
        let (w, h) = (width as f32, height as f32);
        let left = (roi[0].clamp(0.0, 1.0) * w).round() as u32;
        let top = (roi[1].clamp(0.0, 1.0) * h).round() as u32;
        let right = ((roi[2].clamp(0.0, 1.0) * w).round() as u32)
            .max(left + 2)
            .min(width);
        let bottom = ((roi[3].clamp(0.0, 1.0) * h).round() as u32)
            .max(top + 2)
            .min(height);
        b.crop.set_property("left", left as i32);
        b.crop.set_property("top", top as i32);
        b.crop.set_property("right", (width - right) as i32);
        b.crop.set_property("bottom", (height - bottom) as i32);
        let spec = InputSpec {
            width: b.spec.width,
            height: b.spec.height,
            channels: b.spec.channels,
            scale: 1.0,
            mean: [0.0; 3],
            std: [1.0; 3],
            placement: LetterboxPlacement::TopLeft,
            pad: 0,
        };
        let (fw, fh) = spec.fitted_size(right - left, bottom - top);
        let caps = gst::Caps::builder("video/x-raw")
            .field("format", b.spec.channels.gst_format())
            .field("width", fw as i32)
            .field("height", fh as i32)
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build();
        b.caps.set_property("caps", &caps);
        regions.push(BBox {
            x1: left as f32,
            y1: top as f32,
            x2: right as f32,
            y2: bottom as f32,
        });
    }
    *geometry.regions.lock().unwrap_or_else(|e| e.into_inner()) = regions;
}

/// The first error message on the bus, if any, with GStreamer's debug detail
/// (passwords in URIs masked: GStreamer repeats the location).
fn bus_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(e) = msg.view() {
            let detail = e.debug().map(|d| format!(" ({d})")).unwrap_or_default();
            return Some(redact(&format!("{}{detail}", e.error())));
        }
    }
    None
}

enum Pulled {
    Sample(gst::Sample),
    End(SourceEnd),
}

/// What makes a reader stop waiting for GStreamer.
struct Watch {
    /// This source was asked to stop.
    stop: Arc<AtomicBool>,
    /// The whole process is stopping.
    shutdown: Shutdown,
    /// No sample for this long: the source is declared stalled.
    stall: Option<Duration>,
}

impl Watch {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || self.shutdown.is_triggered()
    }
}

fn pull(pipeline: &gst::Pipeline, sink: &gst_app::AppSink, watch: &Watch) -> Pulled {
    let started = Instant::now();
    loop {
        if watch.stopped() {
            return Pulled::End(SourceEnd::Stopped);
        }
        if let Some(s) = sink.try_pull_sample(gst::ClockTime::from_nseconds(POLL.as_nanos() as u64))
        {
            return Pulled::Sample(s);
        }
        if let Some(e) = bus_error(pipeline) {
            return Pulled::End(SourceEnd::Failed(e));
        }
        if sink.is_eos() {
            return Pulled::End(SourceEnd::Finished);
        }
        if let Some(stall) = watch.stall
            && started.elapsed() > stall
        {
            return Pulled::End(SourceEnd::Failed(format!(
                "stalled: no frame for {:.0} s",
                stall.as_secs_f64()
            )));
        }
    }
}

/// A file that ends well before the duration its container announced was cut
/// short (a truncated upload, a full disk): not a normal end of stream.
fn truncated(pipeline: &gst::Pipeline, last_pts: Option<u64>) -> Option<String> {
    let duration = pipeline.query_duration::<gst::ClockTime>()?.nseconds();
    let reached = last_pts.unwrap_or(0);
    const SLACK_NS: u64 = 1_000_000_000;
    (reached + SLACK_NS < duration).then(|| {
        format!(
            "truncated: the stream ends at {:.1} s of its {:.1} s",
            reached as f64 / 1e9,
            duration as f64 / 1e9
        )
    })
}

fn read_frames(
    pipeline: &gst::Pipeline,
    full_sink: &gst_app::AppSink,
    sinks: &[gst_app::AppSink],
    geometry: &Geometry,
    slot: &FrameSlot,
    watch: &Watch,
) -> SourceEnd {
    let mut seq = 0;
    let mut last_pts = None;
    loop {
        let full = match pull(pipeline, full_sink, watch) {
            Pulled::Sample(s) => s,
            Pulled::End(SourceEnd::Finished) => {
                return match truncated(pipeline, last_pts) {
                    Some(reason) => SourceEnd::Failed(reason),
                    None => SourceEnd::Finished,
                };
            }
            Pulled::End(end) => return end,
        };
        let received = WallTime::now();
        let regions = geometry
            .regions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut views = Vec::with_capacity(sinks.len());
        for (i, sink) in sinks.iter().enumerate() {
            let sample = match pull(pipeline, sink, watch) {
                Pulled::Sample(s) => s,
                Pulled::End(end) => return end,
            };
            let Some(info) = sample
                .caps()
                .and_then(|c| gst_video::VideoInfo::from_caps(c).ok())
            else {
                return SourceEnd::Failed("a scaled frame arrived without video caps".into());
            };
            let region = regions.get(i).copied().unwrap_or_default();
            views.push(View {
                sample,
                info,
                region,
            });
        }
        let pts = full
            .buffer()
            .and_then(|b| b.pts())
            .map(|t| t.nseconds())
            .unwrap_or(0);
        last_pts = Some(pts);
        let frame = Frame {
            seq,
            pts: MediaTime::from_nanos(pts),
            received,
            width: geometry.width.load(Ordering::SeqCst),
            height: geometry.height.load(Ordering::SeqCst),
            full,
            views,
        };
        seq += 1;
        if !slot.put(frame) {
            return SourceEnd::Stopped;
        }
    }
}

/// Keeps `fps` frames per second of media time, by timestamp: time is cut into
/// slots of `1/fps` and the first frame of each slot is kept. Counting from
/// the last kept frame instead would round every gap up to whole source
/// frames: 5 fps from a 12.5 fps camera would become 4.2. Frames without a
/// timestamp, and streams whose time jumps back, are kept and restart the
/// count: dropping is an optimisation, never a loss of the stream.
struct RateLimiter {
    interval_ns: u64,
    last: Option<(u64, u64)>,
}

impl RateLimiter {
    fn new(fps: f32) -> Self {
        RateLimiter {
            interval_ns: ((1e9 / fps.max(1e-3) as f64) as u64).max(1),
            last: None,
        }
    }

    fn keep(&mut self, pts_ns: Option<u64>) -> bool {
        let Some(pts) = pts_ns else {
            return true;
        };
        let slot = pts / self.interval_ns;
        match self.last {
            Some((last_pts, last_slot)) if pts >= last_pts && slot <= last_slot => false,
            _ => {
                self.last = Some((pts, slot));
                true
            }
        }
    }
}

#[cfg(test)]
mod rate_tests {
    use super::RateLimiter;

    #[test]
    fn keeps_the_rate_by_timestamp_and_survives_odd_time() {
        let mut two = RateLimiter::new(2.0);
        let kept: Vec<u64> = (0..20u64)
            .map(|i| i * 100_000_000)
            .filter(|&t| two.keep(Some(t)))
            .collect();
        assert_eq!(kept, [0, 500_000_000, 1_000_000_000, 1_500_000_000]);
        // 5 fps from a 12.5 fps camera: five a second, not every third frame.
        let mut five = RateLimiter::new(5.0);
        let kept = (0..125u64)
            .filter(|i| five.keep(Some(i * 80_000_000)))
            .count();
        assert_eq!(kept, 50, "10 s of 12.5 fps at 5 fps");
        assert!(two.keep(None), "no timestamp: kept");
        assert!(
            two.keep(Some(100)),
            "time jumped back: kept, count restarts"
        );
        assert!(!two.keep(Some(200)));
    }
}
