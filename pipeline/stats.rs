//! Per-stage latency statistics: a small struct per camera, merged for reports,
//! and mirrored into Prometheus histograms when `/metrics` is served.
//!
//! Each stage keeps its most recent samples only (a fixed ring), so a camera
//! that runs for months holds the same memory as one that ran a minute.

use serde::Serialize;
use std::time::Duration;

/// Samples kept per stage: 16 384 frames, half an hour at 10 fps.
const RECENT_SAMPLES: usize = 16_384;

/// Samples of one stage's latency, in milliseconds.
#[derive(Clone, Default)]
pub struct Latency {
    recent_ms: Vec<f32>,
    /// Where the next sample goes once the ring is full.
    next: usize,
    total: u64,
    histogram: Option<metrics::Histogram>,
}

impl std::fmt::Debug for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Latency")
            .field("total", &self.total)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub mean: f64,
    /// Samples ever recorded (percentiles cover the most recent ones).
    pub count: u64,
}

impl Latency {
    /// A latency also exported as `vigil_stage_seconds{camera, stage}`.
    pub fn exported(camera: &str, stage: &'static str) -> Self {
        Latency {
            histogram: Some(metrics::histogram!(
                "vigil_stage_seconds",
                "camera" => camera.to_string(),
                "stage" => stage
            )),
            ..Latency::default()
        }
    }

    pub fn record(&mut self, d: Duration) {
        if let Some(h) = &self.histogram {
            h.record(d.as_secs_f64());
        }
        self.push(d.as_secs_f32() * 1000.0);
    }

    fn push(&mut self, ms: f32) {
        self.total += 1;
        if self.recent_ms.len() < RECENT_SAMPLES {
            self.recent_ms.push(ms);
        } else {
            self.recent_ms[self.next] = ms;
            self.next = (self.next + 1) % RECENT_SAMPLES;
        }
    }

    pub fn merge(&mut self, other: &Latency) {
        for &ms in &other.recent_ms {
            self.push(ms);
        }
        self.total += other.total - other.recent_ms.len() as u64;
    }

    pub fn percentiles(&self) -> Percentiles {
        if self.recent_ms.is_empty() {
            return Percentiles::default();
        }
        let mut s = self.recent_ms.clone();
        s.sort_by(f32::total_cmp);
        let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize] as f64;
        let r = |v: f64| (v * 1000.0).round() / 1000.0;
        Percentiles {
            p50: r(at(0.50)),
            p95: r(at(0.95)),
            p99: r(at(0.99)),
            mean: r(s.iter().map(|v| *v as f64).sum::<f64>() / s.len() as f64),
            count: self.total,
        }
    }
}

/// What a camera's worker measured.
#[derive(Debug, Clone, Default)]
pub struct StageStats {
    pub preprocess: Latency,
    pub inference: Latency,
    pub postprocess: Latency,
    pub track: Latency,
    pub rules: Latency,
    /// Worker idle, waiting for the decoder's next frame: high means decode-bound.
    pub source_wait: Latency,
    /// From the frame reaching the worker (replay) or vigil (live) to its events
    /// being handed to publish.
    pub end_to_end: Latency,
    pub frames: u64,
    pub inferences: u64,
    /// Frames on which motion gating skipped the object detectors.
    pub motion_skipped: u64,
    pub dropped: u64,
    pub events: u64,
}

impl StageStats {
    /// Stats whose latencies are also exported for this camera.
    pub fn exported(camera: &str) -> Self {
        StageStats {
            preprocess: Latency::exported(camera, "preprocess"),
            inference: Latency::exported(camera, "inference"),
            postprocess: Latency::exported(camera, "postprocess"),
            track: Latency::exported(camera, "track"),
            rules: Latency::exported(camera, "rules"),
            source_wait: Latency::exported(camera, "source_wait"),
            end_to_end: Latency::exported(camera, "end_to_end"),
            ..StageStats::default()
        }
    }

    pub fn merge(&mut self, o: &StageStats) {
        self.preprocess.merge(&o.preprocess);
        self.inference.merge(&o.inference);
        self.postprocess.merge(&o.postprocess);
        self.track.merge(&o.track);
        self.rules.merge(&o.rules);
        self.source_wait.merge(&o.source_wait);
        self.end_to_end.merge(&o.end_to_end);
        self.frames += o.frames;
        self.inferences += o.inferences;
        self.motion_skipped += o.motion_skipped;
        self.dropped += o.dropped;
        self.events += o.events;
    }
}

/// Resident memory of this process in MB (Linux `/proc/self/status`), 0 if unknown.
pub fn resident_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| (kb / 1024.0 * 10.0).round() / 10.0)
        .unwrap_or(0.0)
}
