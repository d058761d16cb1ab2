//! The one-frame hand-off between a camera's decoder and its worker.

use super::{Frame, SourceEnd};
use crate::time::WallTime;
use std::sync::{Condvar, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotMode {
    /// A new frame replaces one not yet taken (which is counted as dropped).
    Latest,
    /// The producer waits until the worker has taken the previous frame.
    Block,
}

struct State {
    frame: Option<Frame>,
    end: Option<SourceEnd>,
    dropped: u64,
}

pub struct FrameSlot {
    mode: SlotMode,
    state: Mutex<State>,
    changed: Condvar,
}

impl FrameSlot {
    pub fn new(mode: SlotMode) -> Self {
        FrameSlot {
            mode,
            state: Mutex::new(State {
                frame: None,
                end: None,
                dropped: 0,
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves only an Option behind: still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn mode(&self) -> SlotMode {
        self.mode
    }

    /// Offers a frame; returns false if the slot was closed (the worker stopped).
    pub fn put(&self, frame: Frame) -> bool {
        let mut s = self.lock();
        if self.mode == SlotMode::Block {
            while s.frame.is_some() && s.end.is_none() {
                s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
            }
        }
        if s.end.is_some() {
            return false;
        }
        if s.frame.replace(frame).is_some() {
            s.dropped += 1;
        }
        self.changed.notify_all();
        true
    }

    /// Waits for the next frame; `Err` with the reason once the source has ended
    /// and every delivered frame was taken.
    ///
    /// In [`SlotMode::Block`] a frame counts as received when the worker gets it: a
    /// replayed file has no capture instant, and the decoder working ahead of the
    /// worker is not latency a camera would add. Live frames keep their arrival
    /// time, so time spent waiting for the worker counts against them.
    pub fn take(&self) -> Result<Frame, SourceEnd> {
        let mut s = self.lock();
        loop {
            if let Some(mut f) = s.frame.take() {
                self.changed.notify_all();
                if self.mode == SlotMode::Block {
                    f.received = WallTime::now();
                }
                return Ok(f);
            }
            if let Some(end) = &s.end {
                return Err(end.clone());
            }
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Marks the end of the stream (first reason wins).
    pub fn close(&self, end: SourceEnd) {
        let mut s = self.lock();
        s.end.get_or_insert(end);
        self.changed.notify_all();
    }

    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}
