//! Record: the footage behind every alert, written off the camera worker.
//!
//! Each camera keeps a [`ring`] of its recent *compressed* video, whole GOPs
//! from a keyframe, tapped before the decoder: for H.264/H.265 sources the
//! parser's access units, for other codecs (MJPEG, MPEG-4 Part 2, ...) what
//! enters the video decoder. Nothing is encoded to keep that ring: the camera
//! already compressed it. When an alert opens, its clip starts from the last
//! keyframe at or before `start - pre_roll` and follows the live units; H.264
//! and H.265 are muxed as they are, anything else is encoded to H.264 by the
//! camera's transcoder, which runs only while an alert is recorded: it decodes
//! the pre-roll from the ring, then encodes the frames the camera's decoder
//! makes for detection (see `transcode`), so no frame is decoded twice.
//! Only raw sources (a `gst:` test pattern) are encoded as they are decoded
//! (`x264enc` in the source, at lowered priority). When the alert ends, the
//! clip runs on to `end + post_roll`, the muxer finishes on the `clip-writer`
//! thread, and the event stage hears of it through [`ClipsDone`]. An alert
//! longer than `max_clip_s` continues in a new file at the next keyframe.
//!
//! [`RECORDING_CPU`] sums the CPU time of the threads that encode and mux, for
//! `vigil bench`. [`snapshot`] draws and encodes the JPEGs that go with `new`.

mod clip;
mod live;
pub mod ring;
mod seam;
pub mod snapshot;
mod transcode;

use crate::stats::CpuMeter;
use crate::time::MediaTime;
use clip::{FinishJob, Segment};
use gstreamer as gst;
use ring::{Ring, Unit};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, Weak};
use transcode::Transcoder;

pub use live::LiveStream;

pub(crate) use clip::meter_recording_thread;
pub(crate) use transcode::{avc_caps, h264_encoder, lower_thread_priority, unit_from_encoder};

/// CPU time spent encoding and muxing clips (and, for raw sources, encoding
/// every frame), all cameras.
pub static RECORDING_CPU: CpuMeter = CpuMeter::new();

/// A transcoder decoding the ring hands over to the camera's decoded frames
/// when a batch of units that came since its last is at most this long.
const HANDOVER_UNITS: usize = 10;

/// Seconds kept in the ring beyond the pre-roll.
const RING_SLACK_S: f64 = 20.0;

/// `[cameras.record]`: clips around each alert.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RecordConfig {
    /// Seconds of video before the alert starts.
    pub pre_roll_s: f64,
    /// Seconds of video after the alert ends.
    pub post_roll_s: f64,
    /// An alert longer than this continues in another clip file.
    pub max_clip_s: f64,
    /// Cap of the camera's ring of recent compressed video, in bytes; also of
    /// the decoded frames a clip's encoder may fall behind by (a non-H.264
    /// camera's clips), over which a live camera's frames are left out of the
    /// clip (a replay waits at a quarter of it).
    pub ring_bytes: usize,
}

impl Default for RecordConfig {
    fn default() -> Self {
        RecordConfig {
            pre_roll_s: 5.0,
            post_roll_s: 5.0,
            max_clip_s: 600.0,
            ring_bytes: 32 << 20,
        }
    }
}

/// A finished clip file.
#[derive(Debug, Clone)]
pub struct ClipFile {
    /// Relative to the store directory.
    pub rel_path: String,
    pub start_media_s: f64,
    pub duration_s: f64,
}

/// Every clip file of one alert, in order, once the last is finished.
pub struct ClipsDone {
    pub alert_id: String,
    pub files: Vec<Result<ClipFile, String>>,
    /// When the last unit the clip needed had arrived (the post-roll complete):
    /// `end`'s latency counts from here.
    pub complete_at: std::time::Instant,
}

struct Job {
    alert_id: String,
    /// Store-relative and absolute path without the `-clip.mp4` suffix.
    rel_base: String,
    abs_base: PathBuf,
    segment: Option<Segment>,
    segments_started: u32,
    /// The next file starts at the last keyframe at or before this stream
    /// time (`start - pre_roll`, then each rotation's keyframe).
    from: u64,
    /// Stop after this stream time (set when the alert ends).
    until: Option<u64>,
}

impl Job {
    /// Opens the next file with `units`, which must start on a keyframe
    /// (else nothing is started: a player could not decode it).
    fn start_segment<'a>(
        &mut self,
        camera: &str,
        caps: &gst::Caps,
        mut units: impl Iterator<Item = &'a Unit>,
        watched: bool,
    ) {
        let Some(first) = units.next().filter(|u| u.keyframe) else {
            return;
        };
        let (rel, abs) = self.paths();
        match Segment::start(caps, rel, abs, first, watched) {
            Ok(mut seg) => {
                seg.push(first);
                for u in units {
                    seg.push(u);
                }
                self.segment = Some(seg);
                self.segments_started += 1;
            }
            Err(e) => tracing::error!(camera, "clip for alert {}: {e}", self.alert_id),
        }
    }

    fn paths(&self) -> (String, PathBuf) {
        let suffix = match self.segments_started {
            0 => "clip.mp4".to_string(),
            n => format!("clip-{}.mp4", n + 1),
        };
        (
            format!("{}-{suffix}", self.rel_base),
            PathBuf::from(format!("{}-{suffix}", self.abs_base.display())),
        )
    }
}

struct State {
    /// What the source delivers, compressed as it came: the pre-roll.
    ring: Ring,
    caps: Option<gst::Caps>,
    /// For codecs a clip cannot hold as they are: H.264 made from `ring`
    /// while clips are open.
    transcode: Option<Transcode>,
    transcoders_started: u64,
    jobs: Vec<Job>,
    /// The source stopped delivering: open clips end at what they have.
    ended: bool,
    /// Added to unit timestamps (a looped file continues where it was).
    offset: u64,
    /// Browsers watching the camera's own H.264, live.
    viewers: Vec<live::LiveViewer>,
}

impl State {
    /// The source's codec has to be transcoded for clips (not H.264/H.265).
    fn needs_transcode(&self) -> bool {
        self.caps
            .as_ref()
            .and_then(|c| c.structure(0))
            .is_some_and(|s| !matches!(s.name().as_str(), "video/x-h264" | "video/x-h265"))
    }

    /// Where clips are cut from (H.264/H.265): the source's own ring, or
    /// the running transcoder's; `None` while a transcoder should run but
    /// does not.
    fn clip_ring(&self) -> Option<(&Ring, Option<&gst::Caps>)> {
        match (&self.transcode, self.needs_transcode()) {
            (Some(t), true) => Some((&t.ring, t.caps.as_ref())),
            (None, true) => None,
            (_, false) => Some((&self.ring, self.caps.as_ref())),
        }
    }
}

/// A camera's running transcoder and what it has made.
struct Transcode {
    /// Which of the camera's transcoders this is: one that was replaced may
    /// still be handing out its last units.
    id: u64,
    transcoder: Transcoder,
    /// Its output so far: the pre-roll of clips that open while it runs.
    ring: Ring,
    caps: Option<gst::Caps>,
    /// It has taken its last batch of units from the ring: the camera's
    /// decoded frames go to it from now on.
    caught_up: bool,
    /// Until then, the ring position of the next unit it takes.
    next: u64,
    /// A replay waited on it for [`transcode::STALLED_AFTER`] while it took
    /// nothing from the ring: the source no longer waits for it.
    stalled: bool,
}

/// One camera's ring and clips; fed by the source, driven by the event stage.
pub struct CameraRecorder {
    pub camera: String,
    config: RecordConfig,
    state: Mutex<State>,
    writer: crossbeam_channel::Sender<FinishJob>,
    /// Open clips get a fragmented copy a console can play (see `clip.rs`).
    watched: bool,
    /// For the transcoder's output callback.
    me: Weak<CameraRecorder>,
    frames_encoded: Arc<std::sync::atomic::AtomicU64>,
    /// See [`CameraRecorder::set_replay`].
    replay: std::sync::atomic::AtomicBool,
    /// A transcoder catching up took units from the ring: a replay's source
    /// waiting for room goes on.
    ring_read: Condvar,
}

impl CameraRecorder {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes of video held for pre-roll (compressed as it came, plus what a
    /// running transcoder made).
    pub fn ring_bytes(&self) -> usize {
        let s = self.lock();
        s.ring.bytes() + s.transcode.as_ref().map_or(0, |t| t.ring.bytes())
    }

    /// Frames encoded to H.264 for this camera's clips so far.
    pub fn frames_encoded(&self) -> u64 {
        self.frames_encoded
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The count behind [`CameraRecorder::frames_encoded`], which goes on
    /// after the recorder is dropped and its last clips finish.
    pub fn encoded_counter(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.frames_encoded.clone()
    }

    /// One more frame encoded (by the transcoder, or a raw source's encoder).
    pub fn count_encoded(&self) {
        self.frames_encoded
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The recorded stream's caps (from the parser, the decoder's input or the
    /// encoder).
    pub fn set_caps(&self, caps: gst::Caps) {
        self.lock().caps = Some(caps);
    }

    /// A new unit from the source (a GStreamer streaming thread). A replay
    /// waits here while a transcoder still decoding the ring could lose units
    /// it has not read.
    pub fn push(&self, mut unit: Unit) {
        let mut s = self.lock();
        if self.replay.load(std::sync::atomic::Ordering::Relaxed) {
            let mut watch: Option<transcode::StallWatch> = None;
            loop {
                let State {
                    ring, transcode, ..
                } = &mut *s;
                let Some(t) = transcode.as_mut().filter(|t| !t.caught_up && !t.stalled) else {
                    break;
                };
                if ring.has_room_after(t.next) {
                    break;
                }
                if watch
                    .get_or_insert_with(|| transcode::StallWatch::new(t.next))
                    .stalled(t.next)
                {
                    t.stalled = true;
                    tracing::warn!(camera = %self.camera, "the clip encoder read nothing for {} s: the replay no longer waits for it", transcode::STALLED_AFTER.as_secs());
                    break;
                }
                t.transcoder.source_waits();
                s = self
                    .ring_read
                    .wait_timeout(s, std::time::Duration::from_millis(100))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        let offset = s.offset;
        unit.pts += offset;
        unit.dts = unit.dts.map(|d| d + offset);
        s.ring.push(unit.clone());
        if !s.viewers.is_empty() {
            s.viewers.retain_mut(|v| v.push(&unit));
        }
        if !s.needs_transcode() {
            let caps = s.caps.clone();
            self.feed_jobs(&mut s, &unit, caps.as_ref());
            return;
        }
        // Clips open but no transcoder (the source restarted under them):
        // start one at this keyframe.
        let waiting = s.jobs.iter().any(|j| j.until.is_none_or(|u| unit.pts <= u));
        if s.transcode.is_none() && waiting && unit.keyframe {
            self.start_transcoder(&mut s, vec![unit.clone()], 0);
        }
        if s.transcode.is_none() {
            // Nothing to record into; clips past their end still finish.
            self.feed_jobs(&mut s, &unit, None);
        }
    }

    /// The source is a file played as fast as possible (`true`) or a live
    /// camera; set by the source when it opens.
    pub fn set_replay(&self, replay: bool) {
        self.replay
            .store(replay, std::sync::atomic::Ordering::Relaxed);
    }

    /// A frame the source decoded (a GStreamer streaming thread), with its
    /// caps: encoded for clips while a transcoder runs. In a replay the
    /// source waits for an encoder that is behind rather than lose the frame.
    pub fn push_picture(&self, buffer: &gst::Buffer, caps: &gst::Caps) {
        let Some(pts) = buffer.pts() else { return };
        let (feed, offset) = {
            let s = self.lock();
            match &s.transcode {
                Some(t) if t.caught_up => (t.transcoder.feed(), s.offset),
                // Still decoding the ring, which has this frame too.
                _ => return,
            }
        };
        let picture = transcode::Picture {
            buffer: buffer.clone(),
            caps: caps.clone(),
            pts: pts.nseconds() + offset,
        };
        feed.send(picture);
    }

    /// An H.264 unit from transcoder `id` (on its thread), or `None` when it
    /// has turned out everything it was given.
    fn on_transcoded(&self, id: u64, output: Option<(Unit, &gst::CapsRef)>) {
        let mut s = self.lock();
        if s.transcode.as_ref().is_none_or(|t| t.id != id) {
            return;
        }
        let Some((unit, caps)) = output else {
            s.transcode = None;
            if s.ended {
                self.finish_ended_jobs(&mut s);
            }
            return;
        };
        self.count_encoded();
        let Some(t) = s.transcode.as_mut() else {
            return;
        };
        t.ring.push(unit.clone());
        if t.caps.as_ref().map(|c| c.as_ref()) != Some(caps) {
            t.caps = Some(caps.to_owned());
        }
        let caps = t.caps.clone();
        self.feed_jobs(&mut s, &unit, caps.as_ref());
        if s.jobs.is_empty() {
            s.transcode = None;
        }
    }

    /// For transcoder `id`, decoding the ring: the units that came since it
    /// last asked, or `None` once it has caught up with the camera's decoder
    /// (the last batch it got was short, or the camera is a replay). From then
    /// on the camera's decoded frames go to it.
    fn catch_up(&self, id: u64) -> Option<Vec<Unit>> {
        let mut s = self.lock();
        let State {
            ring, transcode, ..
        } = &mut *s;
        let t = transcode.as_mut().filter(|t| t.id == id && !t.caught_up)?;
        let lost = ring.backlog(t.next).lost;
        if lost > 0 {
            // A live camera, whose decoder never waits for clips.
            tracing::warn!(camera = %self.camera, "the clip encoder fell behind: {lost} frame(s) left out of clips");
        }
        let units: Vec<Unit> = ring.since(t.next).cloned().collect();
        t.next = ring.end();
        self.ring_read.notify_all();
        if units.is_empty() {
            t.caught_up = true;
            return None;
        }
        // The camera's frames queue for the encoder while it decodes this last
        // batch (those it decoded here too are skipped): a live camera's only
        // when the batch is short, or they could fill the queue's cap and be
        // lost. A replay's source waits on a full queue instead, and would
        // otherwise stay ahead of the transcoder, which would decode the
        // whole clip a second time.
        let replay = self.replay.load(std::sync::atomic::Ordering::Relaxed);
        if units.len() <= HANDOVER_UNITS || replay {
            t.caught_up = true;
        }
        Some(units)
    }

    /// Starts transcoding from `backlog` (the source's units from the
    /// pre-roll's keyframe on; frames before `encode_from` are only decoded),
    /// then the source's decoded frames; logs and records nothing if it
    /// cannot.
    fn start_transcoder(&self, s: &mut State, backlog: Vec<Unit>, encode_from: u64) {
        let Some(caps) = s.caps.clone() else { return };
        s.transcoders_started += 1;
        let id = s.transcoders_started;
        let me = self.me.clone();
        let replay = self.replay.load(std::sync::atomic::Ordering::Relaxed);
        // A replay waits on a full queue and loses nothing: a quarter of the
        // cap holds it (about 12 frames of 768x576), and saves a saturated
        // replay the rest. A live camera's queue absorbs its encoder's lag.
        let cap_bytes = if replay {
            self.config.ring_bytes / 4
        } else {
            self.config.ring_bytes
        };
        let recorder = self.me.clone();
        let catch_up = move || recorder.upgrade()?.catch_up(id);
        let on_output = move |output: Option<(Unit, &gst::CapsRef)>| {
            if let Some(recorder) = me.upgrade() {
                recorder.on_transcoded(id, output);
            }
        };
        let started = Transcoder::start(
            &self.camera,
            &caps,
            (backlog, encode_from),
            catch_up,
            cap_bytes,
            replay,
            on_output,
        );
        match started {
            Ok(transcoder) => {
                if s.ended {
                    transcoder.end_input();
                }
                let keep = ((self.config.pre_roll_s + RING_SLACK_S) * 1e9) as u64;
                s.transcode = Some(Transcode {
                    id,
                    transcoder,
                    ring: Ring::new(self.config.ring_bytes, keep),
                    caps: None,
                    caught_up: false,
                    next: s.ring.end(),
                    stalled: false,
                });
            }
            Err(e) => {
                tracing::error!(camera = %self.camera, "clips of this camera cannot be encoded: {e}")
            }
        }
    }

    /// The source has ended: clips of ended alerts finish with what they have.
    fn finish_ended_jobs(&self, s: &mut State) {
        let (done, open): (Vec<Job>, Vec<Job>) = s.jobs.drain(..).partition(|j| j.until.is_some());
        s.jobs = open;
        for job in done {
            self.finish(job);
        }
    }

    /// Hands `unit` (H.264/H.265, already in the clip ring) to every open
    /// clip; starts, rotates and finishes their files.
    fn feed_jobs(&self, s: &mut State, unit: &Unit, caps: Option<&gst::Caps>) {
        let max_clip = (self.config.max_clip_s * 1e9) as u64;
        let State {
            ring,
            transcode,
            jobs,
            ..
        } = s;
        let ring = transcode.as_ref().map_or(&*ring, |t| &t.ring);
        let mut finished = Vec::new();
        for (i, job) in jobs.iter_mut().enumerate() {
            if job.until.is_some_and(|u| unit.pts > u) {
                finished.push(i);
                continue;
            }
            let rotate = unit.keyframe
                && job
                    .segment
                    .as_ref()
                    .is_some_and(|seg| unit.pts.saturating_sub(seg.first_pts) >= max_clip);
            if rotate && let Some(seg) = job.segment.take() {
                job.from = unit.pts;
                let _ = self.writer.send(FinishJob {
                    alert_id: job.alert_id.clone(),
                    finishing: Some(seg.end()),
                    last: false,
                    at: std::time::Instant::now(),
                });
            }
            match &mut job.segment {
                Some(seg) => seg.push(unit),
                // The pre-roll's first unit is still to come (a transcoder
                // behind the alert); the ring keeps what arrives meanwhile.
                None if unit.pts < job.from => {}
                None => {
                    if let Some(caps) = caps {
                        job.start_segment(
                            &self.camera,
                            caps,
                            ring.from_keyframe_before(job.from),
                            self.watched,
                        );
                    }
                }
            }
        }
        for i in finished.into_iter().rev() {
            let job = jobs.remove(i);
            self.finish(job);
        }
    }

    fn finish(&self, mut job: Job) {
        match job.segment.take() {
            Some(seg) => {
                let _ = self.writer.send(FinishJob {
                    alert_id: job.alert_id,
                    finishing: Some(seg.end()),
                    last: true,
                    at: std::time::Instant::now(),
                });
            }
            None => {
                // Nothing recorded (no keyframe yet): report an empty result so
                // the `end` event is not held back.
                let _ = self.writer.send(FinishJob {
                    alert_id: job.alert_id,
                    finishing: None,
                    last: true,
                    at: std::time::Instant::now(),
                });
            }
        }
    }

    /// Starts recording an alert's clip from `start - pre_roll`. Paths are
    /// without the `-clip.mp4` suffix.
    pub fn open(&self, alert_id: &str, start: MediaTime, rel_base: String, abs_base: PathBuf) {
        let mut s = self.lock();
        let from = start
            .as_nanos()
            .saturating_sub((self.config.pre_roll_s * 1e9) as u64);
        let mut job = Job {
            alert_id: alert_id.into(),
            rel_base,
            abs_base,
            segment: None,
            segments_started: 0,
            from,
            until: None,
        };
        match s.clip_ring() {
            Some((ring, Some(caps))) if ring.newest_pts().is_some_and(|n| n >= from) => {
                job.start_segment(
                    &self.camera,
                    caps,
                    ring.from_keyframe_before(from),
                    self.watched,
                );
            }
            // Started by the next unit at or after `from`.
            Some(_) => {}
            None => {
                let backlog = s.ring.from_keyframe_before(from).cloned().collect();
                self.start_transcoder(&mut s, backlog, from);
            }
        }
        s.jobs.push(job);
    }

    /// The alert ended: its clip runs to `end + post_roll`. Returns false if no
    /// clip was being recorded for it.
    pub fn close(&self, alert_id: &str, end: MediaTime) -> bool {
        let mut s = self.lock();
        let Some(i) = s.jobs.iter().position(|j| j.alert_id == alert_id) else {
            return false;
        };
        let until = end.as_nanos() + (self.config.post_roll_s * 1e9) as u64;
        s.jobs[i].until = Some(until);
        let newest = s.clip_ring().and_then(|(ring, _)| ring.newest_pts());
        // After the source's end a transcoder still at work finishes the
        // clip when it has turned everything out.
        let ended = s.ended && s.transcode.is_none();
        if ended || newest.is_some_and(|n| n > until) {
            let job = s.jobs.remove(i);
            self.finish(job);
            if s.jobs.is_empty() {
                s.transcode = None;
            }
        }
        true
    }

    /// The source stopped: clips of ended alerts finish with what they have
    /// (once a transcoder has turned out what it was given).
    pub fn source_ended(&self) {
        let mut s = self.lock();
        s.ended = true;
        s.viewers.clear();
        match &s.transcode {
            Some(t) => t.transcoder.end_input(),
            None => self.finish_ended_jobs(&mut s),
        }
    }

    /// The source is opened again; its timestamps are shifted by `offset` (a
    /// looped file continues where it stopped).
    pub fn source_restarted(&self, offset: MediaTime) {
        let mut s = self.lock();
        s.ended = false;
        s.ring.clear();
        s.transcode = None;
        s.viewers.clear();
        s.offset = offset.as_nanos();
    }

    /// A live view of the camera's own H.264, from its newest keyframe on;
    /// `None` for other codecs (the console shows them as JPEGs) or before
    /// the first keyframe.
    pub fn watch(&self) -> Option<Result<LiveStream, String>> {
        let caps = self
            .lock()
            .caps
            .clone()
            .filter(|c| c.structure(0).is_some_and(|s| s.name() == "video/x-h264"))?;
        // Started without the lock: the camera's thread must not wait on a
        // pipeline starting. The backlog and joining happen under one lock,
        // so no unit falls between them.
        let (mut viewer, stream) = match live::LiveViewer::start(&self.camera, &caps) {
            Ok(v) => v,
            Err(e) => return Some(Err(e)),
        };
        let mut s = self.lock();
        if s.caps.as_ref() != Some(&caps) {
            return None;
        }
        let newest = s.ring.newest_pts()?;
        for unit in s.ring.from_keyframe_before(newest) {
            viewer.push(unit);
        }
        s.viewers.push(viewer);
        Some(Ok(stream))
    }

    /// Whether a live view of the camera's own video is possible now.
    pub fn can_watch(&self) -> bool {
        let s = self.lock();
        !s.ended
            && s.caps
                .as_ref()
                .and_then(|c| c.structure(0))
                .is_some_and(|c| c.name() == "video/x-h264")
    }
}

/// The recorders of every camera and the thread that finishes their clips.
pub struct Recorders {
    writer: crossbeam_channel::Sender<FinishJob>,
    handle: Option<std::thread::JoinHandle<()>>,
    /// A console may watch open clips: write their fragmented copies.
    watched: bool,
}

impl Recorders {
    /// Finished clips are reported on `done`; `watched`: a console runs, so
    /// open clips also get the copy it plays before their end.
    pub fn new(done: crossbeam_channel::Sender<ClipsDone>, watched: bool) -> Self {
        let (writer, handle) = clip::spawn_writer(done);
        Recorders {
            writer,
            handle: Some(handle),
            watched,
        }
    }

    pub fn camera(&self, camera: &str, config: &RecordConfig) -> Arc<CameraRecorder> {
        // Keep the pre-roll plus slack: units are tapped before the decoder,
        // which in a replay runs up to several seconds ahead of the worker
        // (demuxer queues), and the event stage opens the clip a little after
        // the confirming frame. The byte cap still bounds it.
        let keep = ((config.pre_roll_s + RING_SLACK_S) * 1e9) as u64;
        Arc::new_cyclic(|me| CameraRecorder {
            camera: camera.into(),
            config: config.clone(),
            state: Mutex::new(State {
                ring: Ring::new(config.ring_bytes, keep),
                caps: None,
                transcode: None,
                transcoders_started: 0,
                jobs: Vec::new(),
                ended: false,
                offset: 0,
                viewers: Vec::new(),
            }),
            writer: self.writer.clone(),
            watched: self.watched,
            me: me.clone(),
            frames_encoded: Default::default(),
            replay: Default::default(),
            ring_read: Condvar::new(),
        })
    }

    /// Waits for the clip writer once every camera recorder is gone.
    pub fn join(mut self) {
        let (dead, _) = crossbeam_channel::bounded(0);
        drop(std::mem::replace(&mut self.writer, dead));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
