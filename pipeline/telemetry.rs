//! Telemetry: Prometheus metrics on `/metrics` for operators and integrators.
//!
//! Per-stage latency histograms come from [`crate::stats`]; this module serves
//! them, and keeps the per-camera counters and gauges: frames, inferences, frames
//! skipped by motion gating, frames dropped by a slow worker, processed fps, and
//! whether the camera is up. Alert latency (capture → broker PUBACK) and the
//! number of alert messages awaiting the broker come from `publish`.

use crate::stats::StageStats;
use metrics::{Counter, Gauge};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `[metrics]` in the config.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve Prometheus metrics on `http://<listen>/metrics`, e.g.
    /// `"127.0.0.1:9464"`; unset serves none.
    pub listen: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("metrics.listen {listen:?}: {reason}")]
pub struct TelemetryError {
    pub listen: String,
    pub reason: String,
}

/// Histogram buckets (seconds): per-stage work is sub-millisecond to tens of
/// milliseconds, alert latency up to seconds when the broker is slow.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Starts the `/metrics` endpoint (once per process; later calls return the
/// first address).
pub fn serve(listen: &str) -> Result<SocketAddr, TelemetryError> {
    static SERVED: OnceLock<Result<SocketAddr, TelemetryError>> = OnceLock::new();
    SERVED
        .get_or_init(|| {
            let fail = |reason: String| TelemetryError {
                listen: listen.into(),
                reason,
            };
            let addr: SocketAddr = listen
                .parse()
                .map_err(|e| fail(format!("not an address: {e}")))?;
            let listener = std::net::TcpListener::bind(addr).map_err(|e| fail(e.to_string()))?;
            let addr = listener.local_addr().map_err(|e| fail(e.to_string()))?;
            let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .map_err(|e| fail(e.to_string()))?
                .install_recorder()
                .map_err(|e| fail(e.to_string()))?;
            // Workers the watchdog restarted after a crash (see `watchdog`).
            metrics::counter!("vigil_worker_restarts_total").absolute(crate::watchdog::restarts());
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .map_err(|e| fail(e.to_string()))?;
            std::thread::Builder::new()
                .name("metrics-http".into())
                .spawn(move || http::serve(listener, handle))
                .map_err(|e| fail(e.to_string()))?;
            Ok(addr)
        })
        .clone()
}

/// The `/metrics` HTTP listener, hardened: idle or slow connections are closed
/// after [`IO_TIMEOUT`](http::IO_TIMEOUT), at most [`MAX_CONNECTIONS`](http::MAX_CONNECTIONS)
/// are served at once (the rest are closed on accept, so a flood of idle
/// connections can neither exhaust file descriptors nor starve the cameras), and
/// errors are logged at most once per 10 s with a count of the ones suppressed.
mod http {
    use super::RateLimitedLog;
    use metrics_exporter_prometheus::PrometheusHandle;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    pub const MAX_CONNECTIONS: usize = 32;
    pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
    const MAX_REQUEST: usize = 8192;

    pub fn serve(listener: TcpListener, handle: PrometheusHandle) {
        let active = Arc::new(AtomicUsize::new(0));
        let errors = RateLimitedLog::new("metrics HTTP");
        let refused = RateLimitedLog::new("metrics HTTP");
        for stream in listener.incoming() {
            let stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    // Out of descriptors: back off instead of spinning on accept.
                    errors.warn(&format!("accept: {e}"));
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            if active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                metrics::counter!("vigil_http_refused_total").increment(1);
                refused.warn(&format!(
                    "{MAX_CONNECTIONS} connections already open; closing new ones"
                ));
                continue;
            }
            active.fetch_add(1, Ordering::SeqCst);
            let (active, handle) = (active.clone(), handle.clone());
            let spawned = std::thread::Builder::new()
                .name("metrics-conn".into())
                .spawn(move || {
                    let _ = respond(stream, &handle);
                    active.fetch_sub(1, Ordering::SeqCst);
                });
            if let Err(e) = spawned {
                errors.warn(&format!("cannot start a connection thread: {e}"));
            }
        }
    }

    fn respond(mut stream: TcpStream, handle: &PrometheusHandle) -> std::io::Result<()> {
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let mut request = Vec::with_capacity(512);
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf)?;
            if n == 0 || request.len() + n > MAX_REQUEST {
                return Ok(());
            }
            request.extend_from_slice(&buf[..n]);
        }
        let line = request.split(|b| *b == b'\r').next().unwrap_or_default();
        let (status, body) = if line.starts_with(b"GET /metrics ") {
            ("200 OK", handle.render())
        } else {
            ("404 Not Found", "not found: try /metrics\n".to_string())
        };
        write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        stream.flush()
    }
}

/// Logs a repeated warning at most once per 10 s, saying how many were
/// suppressed meanwhile: a flood of errors never fills the disk.
pub struct RateLimitedLog {
    what: &'static str,
    state: std::sync::Mutex<(Option<Instant>, u64)>,
}

impl RateLimitedLog {
    const EVERY: Duration = Duration::from_secs(10);

    pub fn new(what: &'static str) -> Self {
        RateLimitedLog {
            what,
            state: std::sync::Mutex::new((None, 0)),
        }
    }

    pub fn warn(&self, message: &str) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match s.0 {
            Some(at) if at.elapsed() < Self::EVERY => s.1 += 1,
            _ => {
                let suppressed = std::mem::take(&mut s.1);
                s.0 = Some(Instant::now());
                if suppressed > 0 {
                    tracing::warn!(
                        "{}: {message} ({suppressed} more like it in the last 10 s)",
                        self.what
                    );
                } else {
                    tracing::warn!("{}: {message}", self.what);
                }
            }
        }
    }
}

/// One camera's counters and gauges, synced from its [`StageStats`].
pub struct CameraMetrics {
    frames: Counter,
    inferences: Counter,
    motion_skipped: Counter,
    dropped: Counter,
    fps: Gauge,
    up: Gauge,
    window: (Instant, u64),
}

const FPS_WINDOW: Duration = Duration::from_secs(2);

impl CameraMetrics {
    pub fn new(camera: &str) -> Self {
        let label = || ("camera", camera.to_string());
        let up = metrics::gauge!("vigil_camera_up", &[label()]);
        up.set(1.0);
        CameraMetrics {
            frames: metrics::counter!("vigil_frames_total", &[label()]),
            inferences: metrics::counter!("vigil_inferences_total", &[label()]),
            motion_skipped: metrics::counter!("vigil_frames_skipped_total", &[label()]),
            dropped: metrics::counter!("vigil_frames_dropped_total", &[label()]),
            fps: metrics::gauge!("vigil_camera_fps", &[label()]),
            up,
            window: (Instant::now(), 0),
        }
    }

    pub fn sync(&mut self, stats: &StageStats, dropped: u64) {
        self.up.set(1.0);
        self.frames.absolute(stats.frames);
        self.inferences.absolute(stats.inferences);
        self.motion_skipped.absolute(stats.motion_skipped);
        self.dropped.absolute(dropped);
        let (since, frames_then) = self.window;
        let elapsed = since.elapsed();
        if elapsed >= FPS_WINDOW {
            let frames = stats.frames.saturating_sub(frames_then);
            self.fps.set(frames as f64 / elapsed.as_secs_f64());
            self.window = (Instant::now(), stats.frames);
        }
    }

    /// The camera's source ended or failed.
    pub fn down(&self) {
        self.up.set(0.0);
        self.fps.set(0.0);
    }
}

/// A camera's supervisor state: `vigil_camera_state{camera, state}` is 1 for the
/// current state and 0 for the others; `vigil_camera_up` follows it.
pub fn camera_state(camera: &str, state: crate::events::CameraState) {
    use crate::events::CameraState::*;
    for s in [Up, Reconnecting, Failed, Stopped] {
        metrics::gauge!("vigil_camera_state", "camera" => camera.to_string(), "state" => s.as_str())
            .set(if s == state { 1.0 } else { 0.0 });
    }
    if state != Up {
        metrics::gauge!("vigil_camera_up", "camera" => camera.to_string()).set(0.0);
        metrics::gauge!("vigil_camera_fps", "camera" => camera.to_string()).set(0.0);
    }
}
