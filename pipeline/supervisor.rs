//! Supervisor: keeps one camera watched for as long as vigil runs.
//!
//! It opens the camera's source, runs its [`CameraWorker`] on it, and when the
//! source fails, stalls (no frame for `stall_s`) or a network stream ends, opens
//! it again after a capped exponential backoff (every 1 s ten times, then growing by half to 30 s, reset by
//! the first frame). A worker that panics is replaced by a fresh one and its
//! camera goes on. Files are not retried: a file that ends is `stopped` (or
//! played again with `loop = true`), a file that is missing or cut short is
//! `failed`. `vigil replay` retries nothing: a replay ends when its sources do.
//! Every change of state is sent as a [`CameraStatus`] (logged,
//! published retained, counted in `/metrics`). The shutdown signal ends the
//! backoff and the source at once.

use crate::camera::{CameraConfig, CameraWorker};
use crate::events::{CameraState, CameraStatus, Event};
use crate::record::CameraRecorder;
use crate::shutdown::{Backoff, Shutdown};
use crate::source::{CameraSource, Pacing, SourceEnd, SourceOptions, SourceUri, ViewSpec};
use crate::stats::StageStats;
use crate::time::MediaTime;
use crossbeam_channel::Sender;
use indicatif::ProgressBar;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// How each camera ended and what it measured.
pub struct CameraReport {
    pub id: String,
    pub end: SourceEnd,
    pub stats: StageStats,
    pub events: usize,
    pub elapsed: Duration,
    /// Process resident memory when this camera ended, its pipeline still up.
    pub rss_at_end_mb: f64,
    /// Compressed video held in the camera's recording ring at the end (0
    /// without a store).
    pub ring_bytes: usize,
    /// Frames encoded for clips by the camera's end (none while no alert
    /// was open, unless the source is raw video).
    pub frames_encoded: u64,
}

/// Everything one camera's supervisor needs.
pub struct Supervisor<'a> {
    pub camera: &'a CameraConfig,
    /// The config's directory (relative file sources).
    pub base: PathBuf,
    pub views: Vec<ViewSpec>,
    pub pacing: Pacing,
    pub recorder: Option<Arc<CameraRecorder>>,
    pub shutdown: Shutdown,
    /// Stop at this instant; files play again until then.
    pub run_until: Option<Instant>,
    pub events: Sender<Event>,
    pub statuses: Sender<CameraStatus>,
    pub progress: ProgressBar,
    /// State, frame count and latest picture for the console.
    pub health: Option<Arc<crate::health::CameraHealth>>,
    /// On a compound node: set when the camera went to another node, whose
    /// `up` this node's `stopped` must not overwrite.
    pub handed_over: Option<Arc<std::sync::atomic::AtomicBool>>,
}

/// Announces state changes once each: log, `/metrics`, MQTT.
struct StatusBoard<'a> {
    camera: &'a str,
    /// The source as logged (password masked).
    source: String,
    statuses: &'a Sender<CameraStatus>,
    health: Option<&'a crate::health::CameraHealth>,
    last: Option<(CameraState, Option<String>)>,
    handed_over: Option<&'a std::sync::atomic::AtomicBool>,
}

impl StatusBoard<'_> {
    fn set(&mut self, state: CameraState, reason: Option<String>) {
        // State changes only: a camera that keeps failing is announced once,
        // not at every retry, even when each retry words its error differently
        // (element names carry counters); a flood would bury the one alert that
        // matters. The retries are in the debug log.
        if self.last.as_ref().is_some_and(|(s, _)| *s == state) {
            tracing::debug!(camera = %self.camera, "camera {} still {state:?}: {}", self.camera, reason.as_deref().unwrap_or(""));
            return;
        }
        let (id, source) = (self.camera, &self.source);
        if self
            .handed_over
            .is_some_and(|h| h.load(std::sync::atomic::Ordering::Relaxed))
        {
            tracing::info!(camera = %id, "camera {id} stopped here: this node lost its lease (another node may run it now)");
            return;
        }
        let why = reason.as_deref().unwrap_or("");
        match state {
            CameraState::Up => tracing::info!(camera = %id, "camera {id} is up"),
            CameraState::Reconnecting => {
                tracing::error!(camera = %id, "camera {id} ({source}) lost: {why}; reconnecting")
            }
            CameraState::Failed => {
                tracing::error!(camera = %id, "camera {id} ({source}) failed: {why}")
            }
            CameraState::Stopped if why.is_empty() => {
                tracing::info!(camera = %id, "camera {id} stopped")
            }
            CameraState::Stopped => tracing::info!(camera = %id, "camera {id} stopped: {why}"),
        }
        crate::telemetry::camera_state(self.camera, state);
        if let Some(h) = self.health {
            h.set_state(state, reason.clone());
        }
        let _ = self
            .statuses
            .send(CameraStatus::new(self.camera, state, reason.clone()));
        self.last = Some((state, reason));
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl Supervisor<'_> {
    fn out_of_time(&self) -> bool {
        self.shutdown.is_triggered() || self.run_until.is_some_and(|t| Instant::now() >= t)
    }

    /// Watches the camera until shutdown (or, for a file, its end); `new_worker`
    /// builds the camera's chain (again after a panic).
    pub fn run(self, new_worker: impl Fn() -> CameraWorker) -> CameraReport {
        let started = Instant::now();
        let cam = self.camera;
        let mut board = StatusBoard {
            camera: &cam.id,
            source: crate::redact::redact(&cam.source),
            statuses: &self.statuses,
            health: self.health.as_deref(),
            last: None,
            handed_over: self.handed_over.as_deref(),
        };
        let mut worker = new_worker();
        let mut totals = StageStats::default();
        let mut backoff = Backoff::new(FIRST_RETRY, MAX_RETRY);
        let mut pts_offset = MediaTime::ZERO;
        let mut rss_at_end_mb = 0.0;
        let mut ring_bytes = 0;
        let mut frames_encoded = 0;
        let mut opened_before = false;
        if let Some((left, reason)) = crate::watchdog::held(&cam.id) {
            // It crashed the last worker: the other cameras go on meanwhile.
            board.set(CameraState::Reconnecting, Some(reason));
            self.shutdown.wait(left);
        }
        let end = loop {
            if self.out_of_time() {
                break SourceEnd::Stopped;
            }
            let uri = match SourceUri::resolve(&cam.source, &self.base) {
                Ok(uri) => uri,
                Err(e) => break SourceEnd::Failed(e.to_string()),
            };
            // Network cameras and `gst:` pipelines come back; files do not. A
            // replay is a batch: it ends when its sources do, so it retries nothing.
            let retried =
                self.pacing == Pacing::Live && (uri.is_live() || uri.pipeline().is_some());
            if opened_before && let Some(r) = &self.recorder {
                r.source_restarted(pts_offset);
            }
            let options = SourceOptions {
                recorder: self.recorder.clone(),
                shutdown: self.shutdown.clone(),
                // Files always end; a `gst:` pipeline may neither deliver nor
                // end (a valve shut, a source that waits): a replay of one
                // fails after `stall_s` instead of waiting for ever.
                stall: (self.pacing == Pacing::Live || uri.is_live() || uri.pipeline().is_some())
                    .then(|| Duration::from_secs_f64(cam.stall_s)),
            };
            let opened =
                CameraSource::open(&cam.id, &uri, cam.fps, &self.views, self.pacing, options);
            opened_before = true;
            let source = match opened {
                Ok(source) => source,
                Err(e) if retried => {
                    board.set(CameraState::Reconnecting, Some(e.to_string()));
                    if self.shutdown.wait(backoff.next_delay()) {
                        break SourceEnd::Stopped;
                    }
                    continue;
                }
                Err(e) => break SourceEnd::Failed(e.to_string()),
            };
            let mut up = false;
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                worker.run(source.slot(), pts_offset, &self.events, |frame| {
                    if !up {
                        up = true;
                        board.set(CameraState::Up, None);
                        backoff.reset();
                    }
                    if let Some(h) = &self.health {
                        h.frame(frame);
                    }
                    if self.run_until.is_some_and(|t| Instant::now() >= t) {
                        source.stop();
                    }
                    if self.progress.length() == Some(0)
                        && let Some(d) = source.duration()
                    {
                        self.progress.set_length(d.as_secs_f64().ceil() as u64);
                    }
                    self.progress.set_position(frame.pts.as_secs_f64() as u64);
                    self.progress
                        .set_message(format!("{} frames", frame.seq + 1));
                })
            }));
            rss_at_end_mb = crate::stats::resident_mb();
            if let Some(r) = &self.recorder {
                ring_bytes = r.ring_bytes();
                frames_encoded = r.frames_encoded();
                r.source_ended();
            }
            let end = match run {
                Ok(end) => end,
                Err(panic) => {
                    let message = panic_message(panic.as_ref());
                    tracing::error!(camera = %cam.id, "camera {}: its worker panicked ({message}); starting a fresh one", cam.id);
                    metrics::counter!("vigil_camera_restarts_total", "camera" => cam.id.clone(), "reason" => "panic").increment(1);
                    totals.merge(&std::mem::take(&mut worker.stats));
                    let floor = worker.media_end().max(pts_offset);
                    worker = new_worker();
                    pts_offset = floor;
                    SourceEnd::Failed(format!("worker panicked: {message}"))
                }
            };
            pts_offset = pts_offset.max(worker.media_end());
            drop(source);
            match end {
                SourceEnd::Stopped => break SourceEnd::Stopped,
                SourceEnd::Finished if !uri.is_live() => {
                    let again = cam.repeat || self.run_until.is_some();
                    if !again || self.out_of_time() {
                        break SourceEnd::Finished;
                    }
                }
                SourceEnd::Failed(reason) if !retried && !reason.starts_with("worker panicked") => {
                    break SourceEnd::Failed(reason);
                }
                other => {
                    let reason = match other {
                        SourceEnd::Failed(r) => r,
                        _ => "the stream ended".into(),
                    };
                    metrics::counter!("vigil_camera_restarts_total", "camera" => cam.id.clone(), "reason" => "source").increment(1);
                    board.set(CameraState::Reconnecting, Some(reason));
                    if self.shutdown.wait(backoff.next_delay()) {
                        break SourceEnd::Stopped;
                    }
                }
            }
        };
        self.progress.finish();
        match &end {
            SourceEnd::Failed(reason) => board.set(CameraState::Failed, Some(reason.clone())),
            SourceEnd::Finished => board.set(CameraState::Stopped, Some("end of file".into())),
            SourceEnd::Stopped => board.set(CameraState::Stopped, None),
        }
        totals.merge(&worker.stats);
        CameraReport {
            id: cam.id.clone(),
            end,
            events: totals.events as usize,
            stats: totals,
            elapsed: started.elapsed(),
            rss_at_end_mb,
            ring_bytes,
            frames_encoded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reconnecting_camera_is_announced_once_per_state_change() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut board = StatusBoard {
            camera: "gate",
            source: "rtsp://gate".into(),
            statuses: &tx,
            health: None,
            last: None,
            handed_over: None,
        };
        board.set(CameraState::Up, None);
        for i in 0..19 {
            board.set(
                CameraState::Reconnecting,
                Some(format!("Could not open resource (rtspsrc{i})")),
            );
        }
        board.set(CameraState::Up, None);
        let states: Vec<CameraState> = rx.try_iter().map(|s| s.state).collect();
        assert_eq!(
            states,
            [CameraState::Up, CameraState::Reconnecting, CameraState::Up]
        );
    }
}
