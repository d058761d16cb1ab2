//! Health: each camera's state, how many frames it processed, and its latest
//! picture, shared with whoever shows them (the console's camera list).
//!
//! The supervisor writes it: a state on every change, a frame count and, every
//! couple of seconds, a reference to the latest decoded picture (a shared
//! buffer, no copy). Readers turn the picture into a thumbnail on their own
//! threads, so showing cameras costs the camera workers nothing but a counter.

use crate::events::CameraState;
use crate::source::{Frame, Picture};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a camera's latest picture is kept for its thumbnail.
const PICTURE_EVERY: Duration = Duration::from_secs(2);

/// One camera's health.
pub struct CameraHealth {
    frames: AtomicU64,
    state: Mutex<StateNow>,
    picture: Mutex<Option<(Instant, Picture)>>,
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
        }
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

/// Every camera's health, by camera id.
#[derive(Clone, Default)]
pub struct HealthBoard(Arc<BTreeMap<String, Arc<CameraHealth>>>);

impl HealthBoard {
    pub fn new<'a>(cameras: impl IntoIterator<Item = &'a str>) -> Self {
        HealthBoard(Arc::new(
            cameras
                .into_iter()
                .map(|id| (id.to_string(), Arc::new(CameraHealth::new())))
                .collect(),
        ))
    }

    pub fn camera(&self, id: &str) -> Option<Arc<CameraHealth>> {
        self.0.get(id).cloned()
    }
}
