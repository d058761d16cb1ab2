//! The watchdog's side: starts the worker (this same command line), passes stop
//! signals on, and starts a new worker when one dies by a signal.

use super::{HOLDS_ENV, Holds, RESTARTS_ENV, WORKER_ENV, signal_name};
use anyhow::{Context, Result};
use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{ChildStdin, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// A worker that dies sooner than this after its start counts toward a crash
/// loop (and waits before the next start).
const QUICK_DEATH: Duration = Duration::from_secs(60);
const MAX_PAUSE: Duration = Duration::from_secs(30);

/// Runs this process's own command line as a worker until it exits by itself
/// or after a stop signal; returns its exit status. Workers that die by a
/// signal are replaced.
pub fn supervise() -> Result<ExitCode> {
    let exe = std::env::current_exe().context("finding the vigil executable")?;
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let crash_file = tempfile::Builder::new()
        .prefix("vigil-crash-")
        .tempfile()
        .context("creating the worker's crash file")?;
    let control: Arc<Mutex<Option<ChildStdin>>> = Arc::default();
    let stops = Arc::new(AtomicU32::new(0));
    {
        let (control, stops) = (control.clone(), stops.clone());
        ctrlc::set_handler(move || {
            let n = stops.fetch_add(1, Ordering::SeqCst) + 1;
            tell(&control, if n == 1 { "stop" } else { "now" });
        })
        .context("installing the Ctrl-C / SIGTERM handler")?;
    }
    let parent = std::process::id() as libc::pid_t;
    let mut holds = Holds::default();
    let mut restarts = 0u32;
    let mut quick_deaths = 0u32;
    loop {
        let started = Instant::now();
        let mut command = Command::new(&exe);
        command
            .args(&args)
            .env(WORKER_ENV, crash_file.path())
            .env(HOLDS_ENV, holds.to_env(SystemTime::now()))
            .env(RESTARTS_ENV, restarts.to_string())
            .stdin(Stdio::piped());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                // The worker must not outlive the watchdog (a SIGKILLed
                // watchdog would leave it holding the ports and the store).
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let mut child = command.spawn().context("starting the vigil worker")?;
        *lock(&control) = child.stdin.take();
        if stops.load(Ordering::SeqCst) > 0 {
            tell(&control, "stop");
        }
        let status = child.wait().context("waiting for the vigil worker")?;
        *lock(&control) = None;
        let Some(signal) = status.signal() else {
            return Ok(ExitCode::from(
                status.code().unwrap_or(1).clamp(0, 255) as u8
            ));
        };
        if stops.load(Ordering::SeqCst) > 0 {
            return Ok(ExitCode::from((128 + signal).clamp(0, 255) as u8));
        }
        restarts += 1;
        let name = signal_name(signal);
        let culprit = take_culprit(crash_file.path());
        let pause = match &culprit {
            Some(camera) => {
                let hold = holds.crashed(camera, &name, SystemTime::now());
                tracing::error!(
                    camera = %camera,
                    "the vigil worker died by {name} in camera {camera}'s decoding; restarting it now, with camera {camera} held for {} s (restart {restarts})",
                    hold.as_secs()
                );
                Duration::ZERO
            }
            None => {
                quick_deaths = if started.elapsed() < QUICK_DEATH {
                    quick_deaths + 1
                } else {
                    0
                };
                let pause = match quick_deaths {
                    0 | 1 => Duration::ZERO,
                    n => Duration::from_secs(1 << (n - 2).min(5)).min(MAX_PAUSE),
                };
                tracing::error!(
                    "the vigil worker died by {name}; restarting it in {} s (restart {restarts})",
                    pause.as_secs()
                );
                pause
            }
        };
        let resume = Instant::now() + pause;
        while Instant::now() < resume {
            if stops.load(Ordering::SeqCst) > 0 {
                return Ok(ExitCode::from((128 + signal).clamp(0, 255) as u8));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn lock(control: &Mutex<Option<ChildStdin>>) -> std::sync::MutexGuard<'_, Option<ChildStdin>> {
    control.lock().unwrap_or_else(|e| e.into_inner())
}

/// One line to the worker's control pipe; a worker already gone is no error.
fn tell(control: &Mutex<Option<ChildStdin>>, line: &str) {
    if let Some(stdin) = lock(control).as_mut() {
        let _ = writeln!(stdin, "{line}").and_then(|_| stdin.flush());
    }
}

/// The camera the dead worker's crash handler named (`<signal> <camera>`
/// lines: the last is the death; an earlier one is a signal the worker
/// survived, such as a `kill -SEGV`), and the file emptied for the next.
fn take_culprit(path: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let _ = std::fs::write(path, b"");
    let last = text.lines().next_back()?;
    let (_, camera) = last.split_once(' ')?;
    Some(camera.trim().to_string()).filter(|c| !c.is_empty())
}
