//! Shutdown: the one signal that reaches every thread.
//!
//! Ctrl-C, SIGTERM, `run_until` and a test's stop all trigger the same token.
//! Every loop that can wait (a source polling GStreamer, a supervisor backing off
//! before reconnecting, the publisher waiting for the broker) waits on it rather
//! than on its own timer, so a stalled camera or a dead broker never holds the
//! process up.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

#[derive(Clone, Default)]
pub struct Shutdown(Arc<Inner>);

#[derive(Default)]
struct Inner {
    triggered: Mutex<bool>,
    changed: Condvar,
    /// Tokens that stop with this one (a camera's tenure on a compound node
    /// stops on its own when the node loses the camera, and with the node).
    children: Mutex<Vec<Weak<Inner>>>,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, bool> {
        self.0.triggered.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks every holder to stop; returns true if it had been asked before.
    pub fn trigger(&self) -> bool {
        let before = {
            let mut t = self.lock();
            let before = *t;
            *t = true;
            self.0.changed.notify_all();
            before
        };
        let children =
            std::mem::take(&mut *self.0.children.lock().unwrap_or_else(|e| e.into_inner()));
        for child in children.iter().filter_map(Weak::upgrade) {
            Shutdown(child).trigger();
        }
        before
    }

    /// A token that stops when this one does, and can also stop alone.
    pub fn child(&self) -> Shutdown {
        let child = Shutdown::new();
        {
            let mut children = self.0.children.lock().unwrap_or_else(|e| e.into_inner());
            children.retain(|c| c.strong_count() > 0);
            children.push(Arc::downgrade(&child.0));
        }
        // Asked to stop before the child was registered: it stops at once.
        if self.is_triggered() {
            child.trigger();
        }
        child
    }

    pub fn is_triggered(&self) -> bool {
        *self.lock()
    }

    /// Sleeps up to `timeout`, waking at once on shutdown; true if shut down.
    pub fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut t = self.lock();
        while !*t {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            t = self
                .0
                .changed
                .wait_timeout(t, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *t
    }
}

/// Capped exponential backoff: the first [`Backoff::FAST_ATTEMPTS`] attempts
/// `first` apart (most outages are a reboot or a cable: short, and a camera
/// should be back within a second of its return), then growing by half each
/// time up to `cap`; reset on success.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    next: Duration,
    attempts: u32,
}

impl Backoff {
    pub const FAST_ATTEMPTS: u32 = 10;

    pub fn new(first: Duration, cap: Duration) -> Self {
        Backoff {
            first,
            cap,
            next: first,
            attempts: 0,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        self.attempts += 1;
        if self.attempts <= Self::FAST_ATTEMPTS {
            return self.first;
        }
        let d = self.next;
        self.next = (self.next * 3 / 2).min(self.cap);
        d
    }

    pub fn reset(&mut self) {
        self.next = self.first;
        self.attempts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_wakes_on_trigger_from_another_thread() {
        let s = Shutdown::new();
        let t = {
            let s = s.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                s.trigger()
            })
        };
        let started = Instant::now();
        assert!(s.wait(Duration::from_secs(30)));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(!t.join().unwrap(), "first trigger");
        assert!(s.trigger(), "second trigger is reported");
    }

    #[test]
    fn a_child_stops_with_its_parent_but_not_the_other_way() {
        let parent = Shutdown::new();
        let (a, b) = (parent.child(), parent.child());
        a.trigger();
        assert!(!parent.is_triggered() && !b.is_triggered());
        parent.trigger();
        assert!(b.is_triggered());
        assert!(parent.child().is_triggered(), "born after the stop");
    }

    #[test]
    fn wait_times_out_when_not_triggered() {
        assert!(!Shutdown::new().wait(Duration::from_millis(10)));
    }

    #[test]
    fn backoff_grows_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let delays: Vec<u128> = (0..21).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays[..10], [1000; 10], "ten quick attempts first");
        assert_eq!(
            delays[10..],
            [
                1000, 1500, 2250, 3375, 5062, 7593, 11390, 17085, 25628, 30000, 30000
            ]
        );
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }
}
