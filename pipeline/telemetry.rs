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
#[derive(Debug, Clone, Default, Deserialize)]
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
            let addr = crate::publish::broker::bindable(listen).map_err(fail)?;
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .with_http_listener(addr)
                .set_buckets(BUCKETS)
                .map_err(|e| fail(e.to_string()))?
                .install()
                .map_err(|e| fail(e.to_string()))?;
            Ok(addr)
        })
        .clone()
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
