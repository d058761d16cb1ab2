//! Transcode: a camera's compressed video (MJPEG, MPEG-4 Part 2, ...) to the
//! H.264 that clips hold, only while a clip needs it.
//!
//! One transcoder per camera serves every clip open on it, so overlapping
//! alerts cost one encode, not one each: `decodebin ! videocrop ! videoconvert
//! ! x264enc ! h264parse ! appsink`, driven by a thread of its own at lowered
//! priority, its access units handed back to the recorder as they come out. It
//! starts at an alert's pre-roll keyframe and stops when the camera's last clip
//! has finished.

use super::clip::make;
use super::ring::Unit;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// `videocrop → videoconvert → capsfilter → x264enc`: raw video of any size
/// and format to H.264 that browsers play (4:2:0, so sizes are cropped to even
/// numbers, which x264 requires), cheap enough to run beside the detectors.
pub(crate) fn h264_encoder() -> Result<[gst::Element; 4], String> {
    let crop = make("videocrop")?;
    if let Some(pad) = crop.static_pad("sink") {
        let weak = crop.downgrade();
        pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            if let Some(gst::PadProbeData::Event(ev)) = &info.data
                && let gst::EventView::Caps(c) = ev.view()
                && let Ok(vi) = gstreamer_video::VideoInfo::from_caps(c.caps())
                && let Some(crop) = weak.upgrade()
            {
                crop.set_property("right", (vi.width() % 2) as i32);
                crop.set_property("bottom", (vi.height() % 2) as i32);
            }
            gst::PadProbeReturn::Ok
        });
    }
    let convert = make("videoconvert")?;
    let raw = make("capsfilter")?;
    // From RGB x264 would pick 4:4:4, which browsers cannot play.
    raw.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .build(),
    );
    let encoder = make("x264enc")?;
    encoder.set_property_from_str("speed-preset", "ultrafast");
    encoder.set_property_from_str("tune", "zerolatency");
    encoder.set_property("key-int-max", 15u32);
    encoder.set_property("threads", 1u32);
    // Constant quantiser 20 instead of x264enc's 2 Mbit/s target. On vtest.avi
    // (768x576, 10 fps) it matches that target's mean PSNR against the source
    // (40.2 against 40.3 dB) with a better worst frame (38.2 against 36.9),
    // in 72% of the bytes and about 75% of the CPU: the bits x264 spent on
    // small frames were the cost. Quality no longer depends on frame size.
    encoder.set_property_from_str("pass", "quant");
    encoder.set_property("quantizer", 20u32);
    Ok([crop, convert, raw, encoder])
}

/// H.264 the way clips and the recorder's ring want it: whole access units.
pub(crate) fn avc_caps() -> gst::Caps {
    gst::Caps::builder("video/x-h264")
        .field("stream-format", "avc")
        .field("alignment", "au")
        .build()
}

/// Units from an encoder's appsink, with the encoder's timestamp shift undone,
/// so they line up with the source's.
pub(crate) fn unit_from_encoder(sample: &gst::Sample) -> Option<Unit> {
    // x264enc moves its output 1000 hours up (room for negative DTS) and says
    // so in its segment.
    let shift = sample
        .segment()
        .and_then(|s| s.downcast_ref::<gst::ClockTime>())
        .and_then(|s| s.start())
        .map(|t| t.nseconds())
        .unwrap_or(0);
    let buffer = sample.buffer_owned()?;
    let pts = buffer.pts().or(buffer.dts())?.nseconds();
    Some(Unit {
        pts: pts.saturating_sub(shift),
        dts: buffer.dts().map(|d| d.nseconds().saturating_sub(shift)),
        duration: buffer.duration().map(|d| d.nseconds()),
        keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
        buffer,
    })
}

/// libav decoders write straight into GStreamer's frames ("direct rendering")
/// and keep some as reference pictures. Here x264enc holds its input frames
/// too, so each decoded frame is shared when the decoder finishes it, and
/// GStreamer copies it into a fresh buffer: 0.66 MB for 768x576, mapped,
/// faulted in and unmapped again for every frame (vigil's fixed mmap
/// threshold), 1,036 times in one replay of `bench-vtest.toml`. Decoding into
/// libav's own pictures costs one copy into a pooled, reused frame instead.
fn decode_into_pooled_frames(element: &gst::Element) {
    let is_libav = element
        .factory()
        .is_some_and(|f| f.name().starts_with("avdec_"));
    if is_libav && element.find_property("direct-rendering").is_some() {
        element.set_property("direct-rendering", false);
    }
}

/// Nice 10 for the calling thread only (Linux threads have their own nice
/// value): detection comes first, the encoder gets the cores when inference
/// does not need them. Only for threads vigil owns, or that live as long as
/// their pipeline: GStreamer hands pooled threads to other pipelines later.
pub(crate) fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on this thread's own id changes only its scheduling.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10);
    }
}

enum Feed {
    Unit(Unit),
    End,
}

/// A running transcoder: its own thread (`rec-<camera>`, nice 10) pushes the
/// camera's units through `decodebin → … → appsink`, so decoding and encoding
/// run there and nowhere else.
pub(super) struct Transcoder {
    feed: crossbeam_channel::Sender<Feed>,
    /// Bytes sent and not yet transcoded; over the cap, units are dropped up
    /// to the next keyframe (the clip skips) rather than memory growing.
    queued: Arc<AtomicUsize>,
    cap_bytes: usize,
    skipping: bool,
    dropped: u64,
    /// No clip wants the rest: the thread skips what is still queued.
    cancelled: Arc<AtomicBool>,
    camera: String,
}

impl Transcoder {
    /// `caps`: the camera's compressed stream. Every H.264 unit produced goes
    /// to `out` with its caps, on the transcoder's thread.
    /// `out` gets `None` once, after the last unit, when the input has ended.
    pub fn start(
        camera: &str,
        caps: &gst::Caps,
        cap_bytes: usize,
        out: impl Fn(Option<(Unit, &gst::CapsRef)>) + Send + Sync + 'static,
    ) -> Result<Transcoder, String> {
        let pipeline = gst::Pipeline::with_name(&format!("transcode-{camera}"));
        let decode = make("decodebin")?;
        if let Some(bin) = decode.downcast_ref::<gst::Bin>() {
            bin.connect_deep_element_added(|_, _, element| decode_into_pooled_frames(element));
        }
        let [crop, convert, raw, encoder] = h264_encoder()?;
        let parse = make("h264parse")?;
        let avc = make("capsfilter")?;
        avc.set_property("caps", avc_caps());
        let sink = gst_app::AppSink::builder().sync(false).build();
        let out = Arc::new(out);
        let out_units = out.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let (Some(caps), Some(unit)) = (sample.caps(), unit_from_encoder(&sample)) {
                        out_units(Some((unit, caps)));
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let encode = [
            &crop,
            &convert,
            &raw,
            &encoder,
            &parse,
            &avc,
            sink.upcast_ref(),
        ];
        pipeline
            .add(&decode)
            .and_then(|_| pipeline.add_many(encode))
            .map_err(|e| e.to_string())?;
        gst::Element::link_many(encode).map_err(|e| e.to_string())?;
        let crop_sink = crop.static_pad("sink").ok_or("videocrop has no sink pad")?;
        decode.connect_pad_added(move |_, pad| {
            let is_video = pad
                .current_caps()
                .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/")))
                .unwrap_or(false);
            if is_video && !crop_sink.is_linked() {
                let _ = pad.link(&crop_sink);
            }
        });
        // Units go in through a pad of our own, pushed from our own thread.
        let input = gst::Pad::builder(gst::PadDirection::Src)
            .name("feed")
            .build();
        let decode_sink = decode
            .static_pad("sink")
            .ok_or("decodebin has no sink pad")?;
        input.link(&decode_sink).map_err(|e| e.to_string())?;
        if let Err(e) = pipeline.set_state(gst::State::Playing) {
            let _ = pipeline.set_state(gst::State::Null);
            return Err(format!("cannot start the transcoder: {e}"));
        }
        input
            .set_active(true)
            .map_err(|e| format!("cannot start the transcoder: {e}"))?;
        let (feed, units) = crossbeam_channel::unbounded::<Feed>();
        let queued = Arc::new(AtomicUsize::new(0));
        let caps = caps.clone();
        let in_flight = queued.clone();
        let cancelled = Arc::new(AtomicBool::new(false));
        let cancel = cancelled.clone();
        std::thread::Builder::new()
            .name(format!("rec-{camera}"))
            .spawn(move || {
                lower_thread_priority();
                input.push_event(gst::event::StreamStart::new("transcode"));
                input.push_event(gst::event::Caps::new(&caps));
                input.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
                    gst::ClockTime,
                >::new()));
                super::RECORDING_CPU.charge();
                for feed in units {
                    match feed {
                        Feed::Unit(unit) => {
                            in_flight.fetch_sub(unit.size(), Ordering::Relaxed);
                            if cancel.load(Ordering::Relaxed) {
                                continue;
                            }
                            let mut buffer = unit.buffer.copy();
                            {
                                let b = buffer.make_mut();
                                b.set_pts(gst::ClockTime::from_nseconds(unit.pts));
                                b.set_dts(unit.dts.map(gst::ClockTime::from_nseconds));
                            }
                            let flow = input.push(buffer);
                            super::RECORDING_CPU.charge();
                            if flow.is_err() {
                                break;
                            }
                        }
                        Feed::End => {
                            input.push_event(gst::event::Eos::new());
                            break;
                        }
                    }
                }
                super::RECORDING_CPU.release();
                let _ = pipeline.set_state(gst::State::Null);
                out(None);
            })
            .map_err(|e| format!("cannot start the transcoder thread: {e}"))?;
        Ok(Transcoder {
            feed,
            queued,
            cap_bytes,
            skipping: false,
            dropped: 0,
            cancelled,
            camera: camera.to_string(),
        })
    }

    /// Queues a unit; never blocks (the camera's decoder must not wait on the
    /// recorder).
    pub fn push(&mut self, unit: &Unit) {
        let over = self.queued.load(Ordering::Relaxed) + unit.size() > self.cap_bytes;
        if over || (self.skipping && !unit.keyframe) {
            self.skipping = true;
            self.dropped += 1;
            return;
        }
        self.skipping = false;
        self.queued.fetch_add(unit.size(), Ordering::Relaxed);
        let _ = self.feed.send(Feed::Unit(unit.clone()));
    }

    /// No more input: what is queued is still transcoded, then `out(None)`.
    pub fn end_input(&self) {
        let _ = self.feed.send(Feed::End);
    }
}

impl Drop for Transcoder {
    fn drop(&mut self) {
        // The thread stops the pipeline itself: this may run in its output
        // callback, where a pipeline cannot be stopped in place.
        self.cancelled.store(true, Ordering::Relaxed);
        let _ = self.feed.send(Feed::End);
        if self.dropped > 0 {
            tracing::warn!(
                camera = %self.camera,
                "the clip encoder fell behind: {} frame(s) left out of clips",
                self.dropped
            );
        }
    }
}
