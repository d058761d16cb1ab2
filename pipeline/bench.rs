//! Bench: the `vigil bench` report. Decode alone, inference alone on a fixed
//! frame, then a full replay with per-stage percentiles, all in one process so
//! the ratios compare like with like on a noisy machine.

use crate::app::{self, AppError, RunOptions};
use crate::camera::CameraWorker;
use crate::config::LoadedConfig;
use crate::detect::DetectScratch;
use crate::source::{CameraSource, Pacing, SourceUri};
use crate::stats::{Latency, Percentiles, StageStats};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// Frames per second over the whole replay (all cameras).
    pub fps: f64,
    /// Decoding + GStreamer resizing alone, ms per frame.
    pub decode_ms: f64,
    /// Median of one inference (all detectors of the first camera) on a fixed frame.
    pub inference_ms: f64,
    /// Per frame, from leaving the decoder to events handed to publish.
    pub e2e_ms: Percentiles,
    /// Target: e2e p50 / (decode + inference).
    pub overhead_ratio: f64,
    /// Target: fps / (1000 / inference_ms).
    pub throughput_ratio: f64,
    pub frames: u64,
    /// Frames on which motion gating skipped the object detectors.
    pub frames_skipped: u64,
    pub frames_dropped: u64,
    pub inferences: u64,
    pub rss_mb: f64,
    pub stages: BTreeMap<&'static str, Percentiles>,
}

fn rss_mb() -> f64 {
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

pub fn run(loaded: &LoadedConfig) -> Result<BenchReport, AppError> {
    let config = &loaded.config;
    let detectors = app::load_detectors(loaded)?;
    let base = loaded.base_dir();

    // Decode alone: same pipelines, frames taken and dropped.
    let mut decoded = 0u64;
    let t = Instant::now();
    for cam in &config.cameras {
        let views = CameraWorker::view_specs(cam, &detectors);
        let Ok(source) = SourceUri::resolve(&cam.source, &base).and_then(|u| {
            CameraSource::open(&cam.id, &u, cam.fps, &views, Pacing::AsFastAsPossible)
        }) else {
            continue;
        };
        while source.slot().take().is_ok() {
            decoded += 1;
        }
    }
    let decode_ms = t.elapsed().as_secs_f64() * 1000.0 / decoded.max(1) as f64;

    // Inference alone on the first camera's first frame.
    let mut inference = Latency::default();
    if let Some(cam) = config.cameras.first() {
        let views = CameraWorker::view_specs(cam, &detectors);
        if let Ok(source) = SourceUri::resolve(&cam.source, &base).and_then(|u| {
            CameraSource::open(&cam.id, &u, cam.fps, &views, Pacing::AsFastAsPossible)
        }) && let Ok(frame) = source.slot().take()
        {
            let bound: Vec<_> = cam
                .detectors
                .iter()
                .filter_map(|u| detectors.get(&u.name))
                .collect();
            let mut scratch: Vec<DetectScratch> =
                bound.iter().map(|_| DetectScratch::default()).collect();
            let mut out = Vec::new();
            for round in 0..40 {
                let mut total = std::time::Duration::ZERO;
                for (i, d) in bound.iter().enumerate() {
                    out.clear();
                    if let Some(Ok(t)) =
                        frame.views[i].with_image(|img| d.detect(img, &mut scratch[i], &mut out))
                    {
                        total += t.inference;
                    }
                }
                if round >= 5 {
                    inference.record(total);
                }
            }
        }
    }
    let inference_ms = inference.percentiles().p50;

    let options = RunOptions {
        pacing: Pacing::AsFastAsPossible,
        events_file: None,
        embedded_broker: false,
        mqtt: false,
        progress: false,
        stop: Arc::new(AtomicBool::new(false)),
    };
    let t = Instant::now();
    let report = app::run(loaded, &options)?;
    let elapsed = t.elapsed().as_secs_f64();
    let mut stats = StageStats::default();
    for c in &report.cameras {
        stats.merge(&c.stats);
    }
    let fps = stats.frames as f64 / elapsed.max(1e-9);
    let e2e = stats.end_to_end.percentiles();
    let r = |v: f64| (v * 1000.0).round() / 1000.0;
    let stages = BTreeMap::from([
        ("preprocess", stats.preprocess.percentiles()),
        ("inference", stats.inference.percentiles()),
        ("postprocess", stats.postprocess.percentiles()),
        ("track", stats.track.percentiles()),
        ("rules", stats.rules.percentiles()),
        ("source wait", stats.source_wait.percentiles()),
    ]);
    Ok(BenchReport {
        fps: r(fps),
        decode_ms: r(decode_ms),
        inference_ms,
        e2e_ms: e2e,
        overhead_ratio: r(e2e.p50 / (decode_ms + inference_ms).max(1e-9)),
        throughput_ratio: r(fps / (1000.0 / inference_ms.max(1e-9))),
        frames: stats.frames,
        frames_skipped: stats.motion_skipped,
        frames_dropped: stats.dropped,
        inferences: stats.inferences,
        rss_mb: rss_mb(),
        stages,
    })
}

impl BenchReport {
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<12} {:>8} {:>8} {:>8} {:>8}",
            "stage (ms)", "p50", "p95", "p99", "count"
        );
        let row = |s: &mut String, name: &str, p: &Percentiles| {
            let _ = writeln!(
                s,
                "{name:<12} {:>8.3} {:>8.3} {:>8.3} {:>8}",
                p.p50, p.p95, p.p99, p.count
            );
        };
        for (name, p) in &self.stages {
            row(&mut s, name, p);
        }
        row(&mut s, "end-to-end", &self.e2e_ms);
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "frames {}  ({} skipped by motion gating, {} dropped), {:.1} frames/s",
            self.frames, self.frames_skipped, self.frames_dropped, self.fps
        );
        let _ = writeln!(
            s,
            "decode alone {:.3} ms/frame, inference alone {:.3} ms (p50, fixed frame)",
            self.decode_ms, self.inference_ms
        );
        let _ = writeln!(
            s,
            "overhead ratio   e2e p50 / (decode + inference) = {:.3}",
            self.overhead_ratio
        );
        let _ = writeln!(
            s,
            "throughput ratio fps / inference-only rate      = {:.3}",
            self.throughput_ratio
        );
        let _ = writeln!(s, "resident memory {:.1} MB", self.rss_mb);
        s
    }
}
