//! Health: each camera's state, how many frames it processed, and its latest
//! picture, shared with whoever shows them (the console's camera list).
//!
//! The supervisor writes it: a state on every change, a frame count and, every
//! couple of seconds, a reference to the latest decoded picture (a shared
//! buffer, no copy). Readers turn the picture into a thumbnail on their own
//! threads, so showing cameras costs the camera workers nothing but a counter.
//!
//! Live view works the same way, on demand: while a browser asks for a camera's
//! live picture (within [`LIVE_LINGER`]), its worker keeps the newest frame with
//! what the detector made of it ([`LiveFrame`]) up to every [`LIVE_EVERY`]. With
//! nobody watching, a frame costs one clock read more.

use crate::events::CameraState;
use crate::inspect::FrameTrace;
use crate::source::{Frame, Picture};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a camera's latest picture is kept for its thumbnail.
const PICTURE_EVERY: Duration = Duration::from_secs(2);

/// A live view keeps its camera's live frames coming this long after its
/// last request.
pub const LIVE_LINGER: Duration = Duration::from_secs(3);
/// At most this often a live frame is kept (10 fps).
pub const LIVE_EVERY: Duration = Duration::from_millis(100);

/// One camera's health.
pub struct CameraHealth {
    frames: AtomicU64,
    state: Mutex<StateNow>,
    picture: Mutex<Option<(Instant, Picture)>>,
    /// Offsets from `epoch` in nanoseconds, so the worker's check is one
    /// atomic load: live frames are wanted until `live_until`, the last one
    /// was kept at `live_kept`.
    epoch: Instant,
    live_until: AtomicU64,
    live_kept: AtomicU64,
    live: Mutex<Option<Arc<LiveFrame>>>,
    runner: Mutex<Option<Runner>>,
}

/// On a compound node: the node that holds the camera's lease now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runner {
    pub node: String,
    /// This node: its state here is the camera's state.
    pub here: bool,
    /// Elsewhere: the state its node last reported through PostgreSQL.
    pub state: Option<CameraState>,
    pub reason: Option<String>,
}

/// A node of the compound, as the last lease round saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub name: String,
    /// Heartbeat younger than a lease, and not stopped.
    pub live: bool,
    pub here: bool,
    /// Seconds since its last heartbeat.
    pub seen_ago_s: u64,
}

/// The newest frame of a watched camera and what the detector made of it.
pub struct LiveFrame {
    pub kept: Instant,
    pub picture: Picture,
    pub trace: FrameTrace,
}

/// A camera's state as last announced.
#[derive(Debug, Clone)]
pub struct StateNow {
    pub state: Option<CameraState>,
    pub reason: Option<String>,
    pub since_ms: u64,
}

impl CameraHealth {
    fn new() -> Self {
        CameraHealth {
            frames: AtomicU64::new(0),
            state: Mutex::new(StateNow {
                state: None,
                reason: None,
                since_ms: crate::time::now_ms(),
            }),
            picture: Mutex::new(None),
            epoch: Instant::now(),
            live_until: AtomicU64::new(0),
            live_kept: AtomicU64::new(0),
            live: Mutex::new(None),
            runner: Mutex::new(None),
        }
    }

    /// Which node runs the camera (a compound node's lease round says).
    pub fn set_runner(&self, runner: Option<Runner>) {
        *self.runner.lock().unwrap_or_else(|e| e.into_inner()) = runner;
    }

    pub fn runner(&self) -> Option<Runner> {
        self.runner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn since_epoch(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// A browser watches: keep live frames coming for [`LIVE_LINGER`].
    pub fn want_live(&self) {
        let until = self.since_epoch() + LIVE_LINGER.as_nanos() as u64;
        self.live_until.fetch_max(until, Ordering::Relaxed);
    }

    /// Whether the worker should hand over this frame: someone watches and
    /// the last live frame is [`LIVE_EVERY`] old.
    pub fn live_due(&self) -> bool {
        let now = self.since_epoch();
        let kept = self.live_kept.load(Ordering::Relaxed);
        // 0: none kept yet.
        now < self.live_until.load(Ordering::Relaxed)
            && (kept == 0 || now >= kept + LIVE_EVERY.as_nanos() as u64)
    }

    pub fn set_live(&self, picture: Picture, trace: FrameTrace) {
        self.live_kept
            .store(self.since_epoch().max(1), Ordering::Relaxed);
        let frame = Arc::new(LiveFrame {
            kept: Instant::now(),
            picture,
            trace,
        });
        *self.live.lock().unwrap_or_else(|e| e.into_inner()) = Some(frame);
    }

    /// The newest picture of either kind, with when it was kept: a live view
    /// shows the periodic one until its first live frame arrives.
    pub fn newest_picture(&self) -> Option<(Instant, Picture)> {
        let live = self.live().map(|f| (f.kept, f.picture.clone()));
        let kept = self
            .picture
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match (live, kept) {
            (Some(l), Some(k)) => Some(if l.0 >= k.0 { l } else { k }),
            (l, k) => l.or(k),
        }
    }

    /// The newest live frame, if one was kept since the camera was last watched.
    pub fn live(&self) -> Option<Arc<LiveFrame>> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.clone()
    }

    pub fn set_state(&self, state: CameraState, reason: Option<String>) {
        let mut now = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *now = StateNow {
            state: Some(state),
            reason,
            since_ms: crate::time::now_ms(),
        };
    }

    /// Called for every processed frame.
    pub fn frame(&self, frame: &Frame) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        let mut picture = self.picture.lock().unwrap_or_else(|e| e.into_inner());
        if picture
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= PICTURE_EVERY)
        {
            *picture = Some((Instant::now(), frame.picture()));
        }
    }

    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    pub fn state(&self) -> StateNow {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The latest kept picture and how old it is.
    pub fn picture(&self) -> Option<(Duration, Picture)> {
        let picture = self.picture.lock().unwrap_or_else(|e| e.into_inner());
        picture.as_ref().map(|(at, p)| (at.elapsed(), p.clone()))
    }
}

/// Another node's unresolved alert, as that node copied it to the compound's
/// alert index in PostgreSQL.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteAlert {
    pub node: String,
    pub row: crate::store::AlertRow,
}

/// What a compound node's console shows of the other nodes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompoundView {
    pub nodes: Vec<NodeView>,
    /// Other nodes' alerts nobody has resolved, newest first.
    pub unresolved_elsewhere: Vec<RemoteAlert>,
}

/// Every camera's health, by camera id, and on a compound node the others'.
/// The compound's view sits in a watch channel: the wall's live feed wakes
/// when another node's alert arrives or changes.
#[derive(Clone)]
pub struct HealthBoard(
    Arc<BTreeMap<String, Arc<CameraHealth>>>,
    Arc<tokio::sync::watch::Sender<CompoundView>>,
);

impl Default for HealthBoard {
    fn default() -> Self {
        HealthBoard::new([])
    }
}

impl HealthBoard {
    pub fn new<'a>(cameras: impl IntoIterator<Item = &'a str>) -> Self {
        HealthBoard(
            Arc::new(
                cameras
                    .into_iter()
                    .map(|id| (id.to_string(), Arc::new(CameraHealth::new())))
                    .collect(),
            ),
            Arc::new(tokio::sync::watch::Sender::new(CompoundView::default())),
        )
    }

    /// Replaces the compound's view; watchers wake only if it changed.
    pub fn set_compound(&self, view: CompoundView) {
        self.1.send_if_modified(|shown| {
            let changed = *shown != view;
            if changed {
                *shown = view;
            }
            changed
        });
    }

    /// The compound's nodes and other nodes' open alerts (empty outside a compound).
    pub fn compound(&self) -> CompoundView {
        self.1.borrow().clone()
    }

    /// Wakes whenever the compound's view changes.
    pub fn compound_changes(&self) -> tokio::sync::watch::Receiver<CompoundView> {
        self.1.subscribe()
    }

    pub fn camera(&self, id: &str) -> Option<Arc<CameraHealth>> {
        self.0.get(id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_frames_are_due_only_while_someone_watches() {
        let health = CameraHealth::new();
        assert!(!health.live_due(), "nobody watches yet");
        health.want_live();
        assert!(health.live_due());
        health
            .live_kept
            .store(health.since_epoch(), Ordering::Relaxed);
        assert!(!health.live_due(), "one was just kept");
        health.live_kept.store(0, Ordering::Relaxed);
        health
            .live_until
            .store(health.since_epoch(), Ordering::Relaxed);
        assert!(!health.live_due(), "the viewer left");
    }
}
