//! Transcode: a camera's compressed video (MJPEG, MPEG-4 Part 2, ...) to the
//! H.264 that clips hold, only while a clip needs it.
//!
//! One transcoder per camera serves every clip open on it, so overlapping
//! alerts cost one encode, not one each: `videocrop ! videoconvert ! x264enc !
//! h264parse ! appsink`, driven by a thread of its own at lowered priority, its
//! access units handed back to the recorder as they come out. It starts at an
//! alert's pre-roll keyframe and stops when the camera's last clip has
//! finished.
//!
//! Only the pre-roll, which the camera's decoder has already passed, is decoded
//! here (from the ring's compressed units, `decodebin ! appsink`). From there
//! on the encoder takes the frames the camera's own decoder made, so a
//! recorded frame is decoded once, not twice. What may queue for the encoder is
//! bounded by the camera's `ring_bytes`: over it, a live camera's frames are
//! left out of the clip (never out of detection); a replay waits at a quarter
//! of it.

use super::clip::make;
use super::ring::Unit;
use super::seam::Seam;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

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
///
/// And one thread: libav's frame threads would be created by the transcoder's
/// thread and keep the `SCHED_IDLE` it had then, out of reach of the boost a
/// waiting replay gives that thread (they showed as `rec-<camera>` in a hung
/// replay's stacks). Decoding in the transcoder's own thread, the boost
/// reaches it.
fn decode_in_this_thread_into_pooled_frames(element: &gst::Element) {
    let is_libav = element
        .factory()
        .is_some_and(|f| f.name().starts_with("avdec_"));
    if !is_libav {
        return;
    }
    if element.find_property("direct-rendering").is_some() {
        element.set_property("direct-rendering", false);
    }
    if element.find_property("max-threads").is_some() {
        element.set_property("max-threads", 1i32);
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

/// A replay's transcoder thread: `SCHED_IDLE` (it runs only on cores nothing
/// else wants) until the source waits for it, then nice 10 until its queue is
/// nearly drained. A replay waits for its encoder, so the encoder need not
/// take its share of a core mid-inference, as it does at nice 10 (`vigil
/// bench`, e2e p50 over recording off, median of 14 rounds: +6% at nice 10,
/// +2% idle). But an encoder that only ran on idle cores would crawl beside a
/// busy neighbour, with the source waiting on it (the MJPEG replay test beside
/// two CPU hogs: 125 s idle all the time, 48 s like this).
#[derive(Default)]
struct ReplayPriority {
    /// The thread's id, 0 until it has started.
    tid: std::sync::atomic::AtomicI32,
    boosted: AtomicBool,
    /// The source has ended: nothing runs beside the encoder's last frames
    /// but what else shares the machine, so it stays at nice 10.
    ended: AtomicBool,
}

impl ReplayPriority {
    /// On the transcoder's thread, first.
    fn start(&self) {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            self.tid.store(tid, Ordering::Relaxed);
            set_thread_nice_10(tid);
            if !self.boosted.load(Ordering::Relaxed) {
                set_thread_idle(tid);
            }
        }
    }

    /// The source has ended: nice 10 for good.
    fn end(&self) {
        self.ended.store(true, Ordering::Relaxed);
        self.boost();
    }

    /// The source waits for the encoder: nice 10.
    fn boost(&self) {
        self.boosted.store(true, Ordering::Relaxed);
        let tid = self.tid.load(Ordering::Relaxed);
        if tid != 0 {
            set_thread_nice_10(tid);
        }
    }

    /// On the transcoder's thread: its queue is nearly drained, idle again.
    fn relax(&self) {
        if !self.ended.load(Ordering::Relaxed) && self.boosted.swap(false, Ordering::Relaxed) {
            set_thread_idle(self.tid.load(Ordering::Relaxed));
        }
    }
}

#[cfg(target_os = "linux")]
fn set_thread_idle(tid: libc::pid_t) {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: changes only the scheduling of a thread of this process; the
    // parameter lives for the call.
    unsafe {
        libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param);
    }
}

/// Normal scheduling at nice 10: lowering a thread's priority needs no
/// privilege, and from `SCHED_IDLE` back to it neither (its nice stays 10).
#[cfg(target_os = "linux")]
fn set_thread_nice_10(tid: libc::pid_t) {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: as above.
    unsafe {
        libc::sched_setscheduler(tid, libc::SCHED_OTHER, &param);
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
    }
}

#[cfg(not(target_os = "linux"))]
fn set_thread_idle(_tid: i32) {}

#[cfg(not(target_os = "linux"))]
fn set_thread_nice_10(_tid: i32) {}

/// A decoded frame of the camera's, as the source's decoder made it, for the
/// clip encoder.
pub struct Picture {
    pub buffer: gst::Buffer,
    pub caps: gst::Caps,
    /// Stream time, with the recorder's offset (a looped file) applied.
    pub pts: u64,
}

enum Feed {
    Picture(Picture),
    End,
}

/// Bytes of decoded frames queued for the encoder and not yet encoded,
/// bounded (see `PictureFeed::send`).
#[derive(Default)]
struct Queue {
    queued: Mutex<usize>,
    freed: Condvar,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, usize> {
        self.queued.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn release(&self, bytes: usize) {
        let mut queued = self.lock();
        *queued = queued.saturating_sub(bytes);
        self.freed.notify_all();
    }
}

/// The camera's side of a running transcoder: hands it decoded frames.
/// Cloned out of the recorder's lock, so a replay's source can wait on it
/// without holding up the transcoder's output.
#[derive(Clone)]
pub(super) struct PictureFeed {
    feed: crossbeam_channel::Sender<Feed>,
    queue: Arc<Queue>,
    cap_bytes: usize,
    /// A replay: the source waits for the encoder rather than lose frames.
    replay: bool,
    cancelled: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    priority: Arc<ReplayPriority>,
    /// The encoder made no progress for [`STALLED_AFTER`] while the replay
    /// waited: from then on the replay drops frames like a live camera.
    stalled: Arc<AtomicBool>,
    camera: Arc<str>,
}

/// How long a replay waits on a transcoder that takes nothing from its queue
/// (or the ring) before it stops waiting: a frame's wait is normally a
/// fraction of a second, even on a loaded machine.
pub(super) const STALLED_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// A replay waiting on its transcoder: has the transcoder moved (its queue
/// shrunk, its ring position advanced) in the last [`STALLED_AFTER`]? A stuck
/// one must not hold up detection, nor a shutdown, which waits for the
/// source's thread.
pub(super) struct StallWatch {
    seen: u64,
    since: std::time::Instant,
}

impl StallWatch {
    pub fn new(position: u64) -> Self {
        StallWatch {
            seen: position,
            since: std::time::Instant::now(),
        }
    }

    /// `position`: where the transcoder is now.
    pub fn stalled(&mut self, position: u64) -> bool {
        if position != self.seen {
            *self = StallWatch::new(position);
            return false;
        }
        self.since.elapsed() > STALLED_AFTER
    }
}

impl PictureFeed {
    /// Queues `picture`. Over the byte cap a replay waits for the encoder; a
    /// live camera, whose decoder must never wait on the recorder, leaves the
    /// frame out of the clip.
    pub fn send(&self, picture: Picture) {
        let size = picture.buffer.size();
        {
            let mut queued = self.queue.lock();
            let over = |queued: usize| queued > 0 && queued + size > self.cap_bytes;
            if self.replay && !self.stalled.load(Ordering::Relaxed) {
                let mut watch = StallWatch::new(*queued as u64);
                while over(*queued) && !self.cancelled.load(Ordering::Relaxed) {
                    self.priority.boost();
                    queued = self
                        .queue
                        .freed
                        .wait_timeout(queued, std::time::Duration::from_millis(100))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    if watch.stalled(*queued as u64) {
                        self.stalled.store(true, Ordering::Relaxed);
                        tracing::warn!(camera = %self.camera, "the clip encoder made no progress for {} s: its frames are left out of clips from here on", STALLED_AFTER.as_secs());
                        break;
                    }
                }
            }
            if over(*queued) && (!self.replay || self.stalled.load(Ordering::Relaxed)) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            *queued += size;
        }
        if self.feed.send(Feed::Picture(picture)).is_err() {
            self.queue.release(size);
        }
    }
}

/// A running transcoder: its own thread (`rec-<camera>`, nice 10 for a live
/// camera, SCHED_IDLE for a replay) decodes the pre-roll from the camera's
/// ring, then encodes the frames the camera's own decoder made, so no frame
/// is decoded twice.
pub(super) struct Transcoder {
    feed: PictureFeed,
    camera: String,
}

impl Transcoder {
    /// `caps`: the camera's compressed stream; `backlog`: its units from the
    /// pre-roll's keyframe to the newest, decoded here, and then each batch of
    /// newer units `catch_up` returns, until it returns `None`: from then on
    /// the camera sends its decoded frames. Frames before `encode_from` (the
    /// pre-roll's start) are decoded, not encoded: a camera's keyframes may be
    /// many seconds apart, and the clip's first frame becomes the encoder's
    /// first keyframe. `replay`: the camera is a file played as fast as
    /// possible, which waits for the encoder rather than lose frames. Every
    /// H.264 unit produced goes to `out` with its caps, on the transcoder's
    /// thread. `out` gets `None` once, after the last unit, when the input has
    /// ended.
    pub fn start(
        camera: &str,
        caps: &gst::Caps,
        (backlog, encode_from): (Vec<Unit>, u64),
        catch_up: impl FnMut() -> Option<Vec<Unit>> + Send + 'static,
        cap_bytes: usize,
        replay: bool,
        out: impl Fn(Option<(Unit, &gst::CapsRef)>) + Send + Sync + 'static,
    ) -> Result<Transcoder, String> {
        let pipeline = gst::Pipeline::with_name(&format!("transcode-{camera}"));
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
        pipeline.add_many(encode).map_err(|e| e.to_string())?;
        gst::Element::link_many(encode).map_err(|e| e.to_string())?;
        // Frames go in through a pad of our own, pushed from our own thread.
        let input = gst::Pad::builder(gst::PadDirection::Src)
            .name("frames")
            .build();
        let crop_sink = crop.static_pad("sink").ok_or("videocrop has no sink pad")?;
        input.link(&crop_sink).map_err(|e| e.to_string())?;
        let pre_roll = PreRollDecoder::new(camera, caps)?;
        if let Err(e) = pipeline.set_state(gst::State::Playing) {
            let _ = pipeline.set_state(gst::State::Null);
            return Err(format!("cannot start the transcoder: {e}"));
        }
        input
            .set_active(true)
            .map_err(|e| format!("cannot start the transcoder: {e}"))?;
        let (feed, frames) = crossbeam_channel::unbounded::<Feed>();
        let feed = PictureFeed {
            feed,
            queue: Arc::default(),
            cap_bytes,
            replay,
            cancelled: Arc::default(),
            dropped: Arc::default(),
            priority: Arc::default(),
            stalled: Arc::default(),
            camera: camera.into(),
        };
        let (queue, cancelled) = (feed.queue.clone(), feed.cancelled.clone());
        let priority = feed.priority.clone();
        let camera_name = camera.to_string();
        std::thread::Builder::new()
            .name(format!("rec-{camera}"))
            .spawn(move || {
                if replay {
                    priority.start();
                } else {
                    lower_thread_priority();
                }
                super::RECORDING_CPU.charge();
                let mut encoder = EncoderInput::new(input);
                let mut seam = Seam::new(encode_from);
                pre_roll.decode(backlog, catch_up, &mut seam, &mut encoder, &cancelled);
                if !seam.decoded_any() {
                    tracing::warn!(camera = %camera_name, "the clip's pre-roll could not be decoded; the clip starts at the live frames");
                }
                super::RECORDING_CPU.charge();
                for feed in frames {
                    match feed {
                        Feed::Picture(picture) => {
                            queue.release(picture.buffer.size());
                            if *queue.lock() < cap_bytes / 4 {
                                priority.relax();
                            }
                            if cancelled.load(Ordering::Relaxed) {
                                continue;
                            }
                            // Frames decoded from the ring already (the
                            // camera's decoder was behind its input when the
                            // clip opened) are skipped here.
                            let ready = seam.offer(picture.pts, (picture.caps, picture.buffer));
                            let flow = encoder.push_all(ready);
                            super::RECORDING_CPU.charge();
                            if flow.is_err() {
                                break;
                            }
                        }
                        Feed::End => {
                            if !cancelled.load(Ordering::Relaxed) {
                                let _ = encoder.push_all(seam.finish());
                            }
                            encoder.end();
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
            camera: camera.to_string(),
        })
    }

    /// Where the camera's decoded frames go while this transcoder runs.
    pub fn feed(&self) -> PictureFeed {
        self.feed.clone()
    }

    /// No more input: what is queued is still transcoded, then `out(None)`.
    pub fn end_input(&self) {
        self.feed.priority.end();
        let _ = self.feed.feed.send(Feed::End);
    }

    /// A replay's source waits for this transcoder to read the ring.
    pub fn source_waits(&self) {
        self.feed.priority.boost();
    }
}

impl Drop for Transcoder {
    fn drop(&mut self) {
        // The thread stops the pipeline itself: this may run in its output
        // callback, where a pipeline cannot be stopped in place.
        self.feed.cancelled.store(true, Ordering::Relaxed);
        self.feed.queue.freed.notify_all();
        let _ = self.feed.feed.send(Feed::End);
        let dropped = self.feed.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                camera = %self.camera,
                "the clip encoder fell behind: {dropped} frame(s) left out of clips"
            );
        }
    }
}

/// The encoder pipeline's input pad, with the stream's sticky events sent
/// before the first frame and caps again when they change.
struct EncoderInput {
    pad: gst::Pad,
    caps: Option<gst::Caps>,
}

impl EncoderInput {
    fn new(pad: gst::Pad) -> Self {
        pad.push_event(gst::event::StreamStart::new("transcode"));
        EncoderInput { pad, caps: None }
    }

    fn push(
        &mut self,
        caps: &gst::Caps,
        buffer: gst::Buffer,
        pts: u64,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        if self.caps.as_ref() != Some(caps) {
            self.pad.push_event(gst::event::Caps::new(caps));
            if self.caps.is_none() {
                self.pad
                    .push_event(gst::event::Segment::new(&gst::FormattedSegment::<
                        gst::ClockTime,
                    >::new()));
            }
            self.caps = Some(caps.clone());
        }
        let mut buffer = buffer;
        if buffer.pts().map(|t| t.nseconds()) != Some(pts) {
            // A shallow copy: the frame's memory is shared, not copied.
            let mut copy = buffer.copy();
            copy.make_mut().set_pts(gst::ClockTime::from_nseconds(pts));
            buffer = copy;
        }
        self.pad.push(buffer)
    }

    /// Frames in order, as the seam releases them.
    fn push_all(
        &mut self,
        frames: Vec<(u64, (gst::Caps, gst::Buffer))>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut flow = Ok(gst::FlowSuccess::Ok);
        for (pts, (caps, buffer)) in frames {
            flow = self.push(&caps, buffer, pts);
            if flow.is_err() {
                break;
            }
        }
        flow
    }

    fn end(&self) {
        if self.caps.is_some() {
            self.pad.push_event(gst::event::Eos::new());
        }
    }
}

/// Decodes a clip's pre-roll, which the camera's decoder has already passed,
/// from the ring's compressed units (`decodebin → appsink`), and goes on
/// decoding the ring's newer units until the recorder hands the encoder over
/// to the camera's decoded frames (`catch_up` returns `None`). Frames
/// the camera decodes meanwhile are not queued for the encoder (it would have
/// to hold seconds of raw video while the pre-roll is encoded): the ring has
/// them, compressed. Where the two decoders meet, [`Seam`] orders their frames.
struct PreRollDecoder {
    pipeline: gst::Pipeline,
    input: gst::Pad,
    sink: gst_app::AppSink,
    caps: gst::Caps,
}

impl PreRollDecoder {
    fn new(camera: &str, caps: &gst::Caps) -> Result<Self, String> {
        let pipeline = gst::Pipeline::with_name(&format!("pre-roll-{camera}"));
        let decode = make("decodebin")?;
        if let Some(bin) = decode.downcast_ref::<gst::Bin>() {
            bin.connect_deep_element_added(|_, _, element| {
                decode_in_this_thread_into_pooled_frames(element)
            });
        }
        // Unbounded, but drained after every unit: it holds what one unit
        // (or the decoder's flush at the end) turns out. Not waiting on EOS:
        // the flush's frames are pulled only once EOS is in, on the thread
        // that pushed it, which waiting would hang (B-frames: the decoder
        // always holds one).
        let sink = gst_app::AppSink::builder()
            .sync(false)
            .wait_on_eos(false)
            .build();
        pipeline
            .add_many([&decode, sink.upcast_ref()])
            .map_err(|e| e.to_string())?;
        let sink_pad = sink.static_pad("sink").ok_or("appsink has no sink pad")?;
        decode.connect_pad_added(move |_, pad| {
            let is_video = pad
                .current_caps()
                .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/")))
                .unwrap_or(false);
            if is_video && !sink_pad.is_linked() {
                let _ = pad.link(&sink_pad);
            }
        });
        let input = gst::Pad::builder(gst::PadDirection::Src)
            .name("units")
            .build();
        let decode_sink = decode
            .static_pad("sink")
            .ok_or("decodebin has no sink pad")?;
        input.link(&decode_sink).map_err(|e| e.to_string())?;
        Ok(PreRollDecoder {
            pipeline,
            input,
            sink,
            caps: caps.clone(),
        })
    }

    /// Decodes `backlog`, then each batch `catch_up` returns, into `encoder`
    /// through `seam`; what the decoder still holds when `catch_up` returns
    /// `None` waits in `seam` for the camera's frames.
    fn decode(
        self,
        backlog: Vec<Unit>,
        mut catch_up: impl FnMut() -> Option<Vec<Unit>>,
        seam: &mut Seam<(gst::Caps, gst::Buffer)>,
        encoder: &mut EncoderInput,
        cancelled: &AtomicBool,
    ) {
        let frame = |sample: gst::Sample| {
            let (caps, buffer) = (sample.caps_owned()?, sample.buffer_owned()?);
            let pts = buffer.pts()?.nseconds();
            Some((pts, (caps, buffer)))
        };
        let started = self.pipeline.set_state(gst::State::Playing).is_ok()
            && self.input.set_active(true).is_ok();
        if !started {
            // Still caught up, so the camera's frames reach the encoder.
            while catch_up().is_some() {}
            let _ = self.pipeline.set_state(gst::State::Null);
            return;
        }
        self.input
            .push_event(gst::event::StreamStart::new("pre-roll"));
        self.input.push_event(gst::event::Caps::new(&self.caps));
        self.input
            .push_event(gst::event::Segment::new(&gst::FormattedSegment::<
                gst::ClockTime,
            >::new()));
        let mut batch = Some(backlog);
        let mut failed = false;
        while let Some(units) = batch {
            for unit in &units {
                if failed || cancelled.load(Ordering::Relaxed) {
                    continue;
                }
                let mut buffer = unit.buffer.copy();
                {
                    let b = buffer.make_mut();
                    b.set_pts(gst::ClockTime::from_nseconds(unit.pts));
                    b.set_dts(unit.dts.map(gst::ClockTime::from_nseconds));
                }
                failed = self.input.push(buffer).is_err();
                while let Some(sample) = self.sink.try_pull_sample(gst::ClockTime::ZERO) {
                    if let Some((pts, frame)) = frame(sample)
                        && encoder.push_all(seam.offer(pts, frame)).is_err()
                    {
                        failed = true;
                    }
                }
            }
            batch = catch_up();
        }
        self.input.push_event(gst::event::Eos::new());
        // What the decoder still holds (reordered frames) comes out now.
        while let Some(sample) = self.sink.try_pull_sample(gst::ClockTime::from_seconds(2)) {
            if let Some((pts, frame)) = frame(sample) {
                seam.hold(pts, frame);
            }
        }
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
