//! Record: the footage behind every alert, written off the camera worker.
//!
//! Each camera keeps a [`ring`] of recent *encoded* video, whole GOPs from a
//! keyframe: for H.264/H.265 sources the parser's own access units (tapped before
//! the decoder, so clips are the camera's bits, never re-encoded); for other
//! codecs the source encodes its decoded frames to H.264 (`x264enc`, ultrafast,
//! one thread). When an alert opens, its clip starts from the last keyframe at or
//! before `start - pre_roll` and follows the live units; when it ends, the clip
//! runs on to `end + post_roll`, the muxer finishes on the `clip-writer` thread,
//! and the event stage hears of it through [`ClipsDone`]. An alert longer than
//! `max_clip_s` continues in a new file at the next keyframe.
//!
//! [`snapshot`] draws and encodes the JPEGs that go with `new`.

mod clip;
pub mod ring;
pub mod snapshot;

use crate::time::MediaTime;
use clip::{FinishJob, Segment};
use gstreamer as gst;
use ring::{Ring, Unit};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Mutex;

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
    /// Cap of the camera's ring of recent encoded video, in bytes.
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
    /// Stop after this stream time (set when the alert ends).
    until: Option<u64>,
}

impl Job {
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
    ring: Ring,
    caps: Option<gst::Caps>,
    jobs: Vec<Job>,
    /// The source stopped delivering: open clips end at what they have.
    ended: bool,
    /// Added to unit timestamps (a looped file continues where it was).
    offset: u64,
}

/// One camera's ring and clips; fed by the source, driven by the event stage.
pub struct CameraRecorder {
    pub camera: String,
    config: RecordConfig,
    state: Mutex<State>,
    writer: crossbeam_channel::Sender<FinishJob>,
}

impl CameraRecorder {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes of encoded video held for pre-roll.
    pub fn ring_bytes(&self) -> usize {
        self.lock().ring.bytes()
    }

    /// The encoded stream's caps (from the parser or the encoder).
    pub fn set_caps(&self, caps: gst::Caps) {
        self.lock().caps = Some(caps);
    }

    /// A new access unit from the source (a GStreamer streaming thread).
    pub fn push(&self, mut unit: Unit) {
        let mut s = self.lock();
        let offset = s.offset;
        unit.pts += offset;
        unit.dts = unit.dts.map(|d| d + offset);
        s.ring.push(unit.clone());
        let caps = s.caps.clone();
        let max_clip = (self.config.max_clip_s * 1e9) as u64;
        let mut finished = Vec::new();
        for (i, job) in s.jobs.iter_mut().enumerate() {
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
                let _ = self.writer.send(FinishJob {
                    alert_id: job.alert_id.clone(),
                    finishing: Some(seg.end()),
                    last: false,
                    at: std::time::Instant::now(),
                });
            }
            if job.segment.is_none() {
                if !unit.keyframe {
                    continue;
                }
                let Some(caps) = &caps else { continue };
                let (rel, abs) = job.paths();
                match Segment::start(caps, rel, abs, &unit) {
                    Ok(seg) => {
                        job.segment = Some(seg);
                        job.segments_started += 1;
                    }
                    Err(e) => {
                        tracing::error!(camera = %self.camera, "clip for alert {}: {e}", job.alert_id);
                        continue;
                    }
                }
            }
            if let Some(seg) = &mut job.segment {
                seg.push(&unit);
            }
        }
        for i in finished.into_iter().rev() {
            let job = s.jobs.remove(i);
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
            until: None,
        };
        if let Some(caps) = s.caps.clone() {
            let backlog: Vec<Unit> = s.ring.from_keyframe_before(from).cloned().collect();
            if let Some(first) = backlog.first() {
                let (rel, abs) = job.paths();
                match Segment::start(&caps, rel, abs, first) {
                    Ok(mut seg) => {
                        for u in &backlog {
                            seg.push(u);
                        }
                        job.segment = Some(seg);
                        job.segments_started = 1;
                    }
                    Err(e) => {
                        tracing::error!(camera = %self.camera, "clip for alert {alert_id}: {e}")
                    }
                }
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
        if s.ended || s.ring.newest_pts().is_some_and(|n| n > until) {
            let job = s.jobs.remove(i);
            self.finish(job);
        }
        true
    }

    /// The source stopped: clips of ended alerts finish with what they have.
    pub fn source_ended(&self) {
        let mut s = self.lock();
        s.ended = true;
        let (done, open): (Vec<Job>, Vec<Job>) = s.jobs.drain(..).partition(|j| j.until.is_some());
        s.jobs = open;
        for job in done {
            self.finish(job);
        }
    }

    /// The source is opened again; its timestamps are shifted by `offset` (a
    /// looped file continues where it stopped).
    pub fn source_restarted(&self, offset: MediaTime) {
        let mut s = self.lock();
        s.ended = false;
        s.ring.clear();
        s.offset = offset.as_nanos();
    }
}

/// The recorders of every camera and the thread that finishes their clips.
pub struct Recorders {
    writer: crossbeam_channel::Sender<FinishJob>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Recorders {
    /// Finished clips are reported on `done`.
    pub fn new(done: crossbeam_channel::Sender<ClipsDone>) -> Self {
        let (writer, handle) = clip::spawn_writer(done);
        Recorders {
            writer,
            handle: Some(handle),
        }
    }

    pub fn camera(&self, camera: &str, config: &RecordConfig) -> CameraRecorder {
        // Keep the pre-roll plus slack: units are tapped before the decoder,
        // which in a replay runs up to several seconds ahead of the worker
        // (demuxer queues), and the event stage opens the clip a little after
        // the confirming frame. The byte cap still bounds it.
        let keep = ((config.pre_roll_s + RING_SLACK_S) * 1e9) as u64;
        CameraRecorder {
            camera: camera.into(),
            config: config.clone(),
            state: Mutex::new(State {
                ring: Ring::new(config.ring_bytes, keep),
                caps: None,
                jobs: Vec::new(),
                ended: false,
                offset: 0,
            }),
            writer: self.writer.clone(),
        }
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
