//! The worker's side: a crash handler that names the camera whose thread died,
//! thread tags that make that possible, the holds the watchdog passed on, and
//! the control pipe that carries stop signals.

use super::{HOLDS_ENV, Hold, Holds, WORKER_ENV};
use crate::shutdown::Shutdown;
use std::cell::Cell;
use std::io::BufRead;
use std::os::fd::IntoRawFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::SystemTime;

const TAG_LEN: usize = 64;
const FATAL: [libc::c_int; 5] = [
    libc::SIGABRT,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
];

thread_local! {
    // Fixed-size and const-initialised: read from a signal handler, so no
    // lazy initialisation and no destructor.
    static CAMERA: Cell<([u8; TAG_LEN], u8)> = const { Cell::new(([0; TAG_LEN], 0)) };
}

static CRASH_FD: AtomicI32 = AtomicI32::new(-1);
static HOLDS: OnceLock<Vec<Hold>> = OnceLock::new();
// The handlers that were there before ours (Rust's stack-overflow report on
// SIGSEGV/SIGBUS), restored before the signal is delivered again.
static mut PREVIOUS: [Option<libc::sigaction>; FATAL.len()] = [None; FATAL.len()];

/// Tags the calling thread as working for `camera` (named if it crashes).
pub fn mark_thread(camera: &str) {
    let bytes = camera.as_bytes();
    let len = bytes.len().min(TAG_LEN);
    let mut tag = [0u8; TAG_LEN];
    tag[..len].copy_from_slice(&bytes[..len]);
    CAMERA.with(|c| c.set((tag, len as u8)));
}

pub fn unmark_thread() {
    CAMERA.with(|c| c.set(([0; TAG_LEN], 0)));
}

/// Why `camera` must not be opened yet, and for how long, if the watchdog
/// holds it after it crashed an earlier worker.
pub fn held(camera: &str) -> Option<(std::time::Duration, String)> {
    let now = SystemTime::now();
    HOLDS
        .get_or_init(|| {
            std::env::var(HOLDS_ENV)
                .map(|t| Holds::from_env(&t))
                .unwrap_or_default()
        })
        .iter()
        .find(|h| h.camera == camera)
        .and_then(|h| Some((h.remaining(now)?, h.reason(now))))
}

/// In a worker: installs the crash handler and follows the control pipe,
/// which stops `shutdown` ("stop", or the watchdog gone) or exits ("now").
/// Does nothing outside a worker.
pub fn install(shutdown: &Shutdown) {
    let Some(path) = std::env::var_os(WORKER_ENV) else {
        return;
    };
    match std::fs::OpenOptions::new().append(true).open(&path) {
        Ok(file) => CRASH_FD.store(file.into_raw_fd(), Ordering::SeqCst),
        Err(e) => tracing::warn!(
            "crash file {}: {e}; a crash will not name its camera",
            path.to_string_lossy()
        ),
    }
    for (i, signal) in FATAL.iter().enumerate() {
        // SAFETY: a plain sigaction with a handler that only calls write(2)
        // and sigaction(2); PREVIOUS is written here, before any crash, and
        // read only by that handler.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_fatal_signal as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            let mut previous: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(*signal, &action, &mut previous) == 0 {
                (*std::ptr::addr_of_mut!(PREVIOUS))[i] = Some(previous);
            }
        }
    }
    let shutdown = shutdown.clone();
    let _ = std::thread::Builder::new()
        .name("watchdog-pipe".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                match line.as_deref().map(str::trim) {
                    Ok("now") => {
                        eprintln!("second stop signal: exiting now");
                        std::process::exit(130);
                    }
                    Ok("stop") => stop(&shutdown),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            // The watchdog is gone: nobody would restart or stop this worker.
            stop(&shutdown);
        });
}

fn stop(shutdown: &Shutdown) {
    if !shutdown.trigger() {
        eprintln!("stopping: closing open alerts and their clips (again to exit at once)");
    }
}

extern "C" fn on_fatal_signal(signal: libc::c_int) {
    let fd = CRASH_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // "<signal> <camera>\n", built on the stack: nothing here may allocate.
        let mut line = [0u8; TAG_LEN + 8];
        let mut n = 0;
        let mut digits = [0u8; 4];
        let mut d = 0;
        let mut s = signal.unsigned_abs();
        loop {
            digits[d] = b'0' + (s % 10) as u8;
            d += 1;
            s /= 10;
            if s == 0 || d == digits.len() {
                break;
            }
        }
        while d > 0 {
            d -= 1;
            line[n] = digits[d];
            n += 1;
        }
        line[n] = b' ';
        n += 1;
        let (tag, len) = CAMERA.with(|c| c.get());
        let len = len as usize;
        line[n..n + len].copy_from_slice(&tag[..len]);
        n += len;
        line[n] = b'\n';
        n += 1;
        // SAFETY: write(2) is async-signal-safe; the buffer is ours.
        unsafe {
            libc::write(fd, line.as_ptr().cast(), n);
        }
    }
    // Put the earlier handler (or the default) back and raise the signal
    // again: it is delivered as this handler returns, handled as before ours
    // (a `kill -ABRT` ends the process as it always did; a real fault repeats).
    if let Some(i) = FATAL.iter().position(|s| *s == signal) {
        // SAFETY: restoring a sigaction saved by `install`; raise(3) is
        // async-signal-safe.
        unsafe {
            match (*std::ptr::addr_of!(PREVIOUS))[i] {
                Some(previous) => libc::sigaction(signal, &previous, std::ptr::null_mut()),
                None => {
                    libc::signal(signal, libc::SIG_DFL);
                    0
                }
            };
            libc::raise(signal);
        }
    }
}
