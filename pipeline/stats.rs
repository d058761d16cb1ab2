//! Per-stage latency statistics: a small struct per camera, merged for reports.

use serde::Serialize;
use std::time::Duration;

/// Samples of one stage's latency, in milliseconds.
#[derive(Debug, Clone, Default)]
pub struct Latency {
    samples_ms: Vec<f32>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub mean: f64,
    pub count: usize,
}

impl Latency {
    pub fn record(&mut self, d: Duration) {
        self.samples_ms.push(d.as_secs_f32() * 1000.0);
    }

    pub fn merge(&mut self, other: &Latency) {
        self.samples_ms.extend_from_slice(&other.samples_ms);
    }

    pub fn percentiles(&self) -> Percentiles {
        if self.samples_ms.is_empty() {
            return Percentiles::default();
        }
        let mut s = self.samples_ms.clone();
        s.sort_by(f32::total_cmp);
        let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize] as f64;
        let r = |v: f64| (v * 1000.0).round() / 1000.0;
        Percentiles {
            p50: r(at(0.50)),
            p95: r(at(0.95)),
            p99: r(at(0.99)),
            mean: r(s.iter().map(|v| *v as f64).sum::<f64>() / s.len() as f64),
            count: s.len(),
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
    /// From the frame leaving the decoder to its events being handed to publish.
    pub end_to_end: Latency,
    pub frames: u64,
    pub inferences: u64,
    /// Frames on which motion gating skipped the object detectors.
    pub motion_skipped: u64,
    pub dropped: u64,
    pub events: u64,
}

impl StageStats {
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
