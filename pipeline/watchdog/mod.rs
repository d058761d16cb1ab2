//! Watchdog: `vigil run` as two processes, so that a crash Rust cannot catch
//! costs the other cameras seconds, not the night.
//!
//! A GStreamer element that asserts (`g_assert` → `abort()`) or a decoder that
//! segfaults on one camera's odd stream ends the whole process, and with it
//! every other camera, the console and the outbox flush. So `vigil run` runs
//! the cameras in a worker process and stays behind as its watchdog
//! ([`supervise`]):
//! - when the worker dies by a signal, a fresh one starts at once; the store's
//!   outbox sends what the dead worker had accepted, and its open alerts end as
//!   `interrupted`;
//! - the worker's crash handler names the camera whose thread died (GStreamer
//!   streaming threads are tagged with their camera as they start, see
//!   [`mark_thread`]), and that camera is held back, 30 s doubling on each
//!   repeat up to 15 min, so one bad stream cannot crash-loop the node;
//! - a death that names no camera restarts at once, and after a growing pause
//!   (1 s to 30 s) while deaths repeat within a minute of a start.
//!
//! Stop signals reach the worker over its stdin ("stop", then "now"), so a
//! service manager that signals both processes still stops the worker once,
//! gracefully. The worker dies with the watchdog (`PR_SET_PDEATHSIG`).
//!
//! Decoding is not split into a process per camera (Frigate's ffmpeg per
//! camera): vigil's recorder taps the camera's own compressed stream inside the
//! same GStreamer pipeline, and a process boundary would cost a frame copy and
//! a model session per camera. The watchdog costs nothing per frame.

mod holds;
mod parent;
mod worker;

pub use holds::{Hold, Holds};
pub use parent::supervise;
pub use worker::{held, install, mark_thread, unmark_thread};

/// Set in the worker's environment: the file its crash handler writes to.
const WORKER_ENV: &str = "VIGIL_WORKER_CRASH_FILE";
/// Set in the worker's environment: cameras held back, as JSON.
const HOLDS_ENV: &str = "VIGIL_WORKER_HOLDS";
/// Set in the worker's environment: how many workers died before this one.
const RESTARTS_ENV: &str = "VIGIL_WORKER_RESTARTS";

/// True in the worker process `vigil run` starts (and in nothing else).
pub fn is_worker() -> bool {
    std::env::var_os(WORKER_ENV).is_some()
}

/// How many workers died before this one (0 outside a worker).
pub fn restarts() -> u64 {
    std::env::var(RESTARTS_ENV)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The name of a fatal signal, for logs (`SIGABRT`), or its number.
pub fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGILL => "SIGILL".into(),
        libc::SIGFPE => "SIGFPE".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGINT => "SIGINT".into(),
        n => format!("signal {n}"),
    }
}
