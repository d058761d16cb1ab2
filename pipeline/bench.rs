//! Bench: the `vigil bench` report.
//!
//! Decode alone and inference alone (on a fixed frame) are measured before and
//! after a full run of the config, and pooled, so the two ratios compare like
//! with like on a noisy shared machine. The run itself publishes to a real
//! broker (the config's, or an embedded one on a free port) so alert latency is
//! capture → PUBACK. `--realtime` plays files at their own pace, as cameras
//! would deliver them; `--duration` replays them in a loop for a memory soak.

use crate::app::{self, AppError, RunOptions};
use crate::camera::CameraWorker;
use crate::config::LoadedConfig;
use crate::detect::{DetectScratch, Detector};
use crate::record::RECORDING_CPU;
use crate::source::{CameraSource, Pacing, SourceUri};
use crate::stats::{Latency, Percentiles, StageStats, process_cpu_ns, resident_mb};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How `vigil bench` runs the config.
#[derive(Debug, Clone, Default)]
pub struct BenchOptions {
    /// Files at their own frame rate (and each camera's `fps` cap), stale frames
    /// dropped, as live cameras; otherwise as fast as possible, every frame.
    pub realtime: bool,
    /// Replay the files in a loop for this long (memory soak); once otherwise.
    pub duration: Option<Duration>,
    /// Run as this node of the config's compound (PostgreSQL beside the
    /// cameras) until `duration` has passed.
    pub node: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub pacing: &'static str,
    pub elapsed_s: f64,
    /// Frames per second over the whole run (all cameras).
    pub fps: f64,
    /// Decoding + GStreamer resizing alone, ms per frame.
    pub decode_ms: f64,
    /// Median of one inference (all detectors of the first camera) on a fixed
    /// frame, with as many running at once as the cameras run.
    pub inference_ms: f64,
    /// Per frame, from the worker getting it (replay) or its arrival (real time)
    /// to its events handed to publish.
    pub e2e_ms: Percentiles,
    /// Target ≤ 1.10: e2e p50 / (decode + inference).
    pub overhead_ratio: f64,
    /// Target ≥ 0.9 (as-fast-as-possible runs): fps / the frames per second
    /// the model alone manages, on as many threads as inferences may run at once.
    pub throughput_ratio: f64,
    /// fps × mean in-run inference time / sessions: the share of the
    /// sessions' wall time spent in the model. Same idea as `throughput_ratio`, but both terms come from the same
    /// seconds, so a noisy neighbour cannot tilt it.
    pub inference_share: f64,
    pub frames: u64,
    /// Frames on which motion gating skipped the object detectors.
    pub frames_skipped: u64,
    /// Frames a live-paced camera lost because its worker was busy.
    pub frames_dropped: u64,
    pub inferences: u64,
    /// Model calls per frame: under 1 with motion gating or a detector `fps`,
    /// one per tile with `tiles`.
    pub inferences_per_frame: f64,
    /// Time in the model per frame (all its tiles), mean, ms.
    pub inference_per_frame_ms: f64,
    /// Capture of the confirming frame → broker PUBACK, per MQTT message.
    pub alert_latency_ms: Percentiles,
    /// Resident memory at the end of the run.
    pub rss_mb: f64,
    /// (RSS at the end − RSS before cameras started) / cameras.
    pub rss_per_camera_mb: f64,
    /// RSS growth from 10% into the run to its end, percent (soak target < 5).
    pub rss_growth_pct: f64,
    /// RSS at 10%, 25%, 50%, 75% and 100% of the run, MB: flat means no leak.
    pub rss_series_mb: Vec<f64>,
    /// Evidence recorded (`[storage] enabled`): snapshots, clips, the store.
    pub recording: bool,
    /// Compressed video held in all cameras' recording rings at the end, MB.
    pub ring_mb: f64,
    /// CPU time spent recording (clip encoding and muxing, snapshots, the
    /// store's writes) per processed frame, ms.
    pub recording_cpu_ms_per_frame: f64,
    /// Recording's share of the process's CPU time during the run.
    pub recording_cpu_share: f64,
    /// Process CPU time per processed frame, all threads, ms.
    pub cpu_ms_per_frame: f64,
    /// Slowest camera's fps / the median camera's (target ≥ 0.9: none starved).
    pub camera_fps_min_ratio: f64,
    pub cameras: Vec<CameraBench>,
    pub stages: BTreeMap<&'static str, Percentiles>,
}

#[derive(Debug, Serialize)]
pub struct CameraBench {
    pub id: String,
    pub frames: u64,
    pub fps: f64,
    pub e2e_ms: Percentiles,
    pub frames_skipped: u64,
    pub frames_dropped: u64,
    pub inferences: u64,
    /// Compressed video in the camera's recording ring at the end, MB.
    pub ring_mb: f64,
    /// Frames encoded for its clips (by the camera's end).
    pub frames_encoded: u64,
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Decodes every camera's source once, as fast as possible; returns
/// (frames, elapsed).
fn decode_alone(
    loaded: &LoadedConfig,
    detectors: &BTreeMap<String, Arc<Detector>>,
) -> (u64, Duration) {
    let mut decoded = 0u64;
    let t = Instant::now();
    for cam in &loaded.config.cameras {
        let views = CameraWorker::view_specs(cam, detectors);
        let Ok(source) = SourceUri::resolve(&cam.source, &loaded.base_dir()).and_then(|u| {
            CameraSource::open(
                &cam.id,
                &u,
                cam.fps,
                &views,
                Pacing::AsFastAsPossible,
                Default::default(),
            )
        }) else {
            continue;
        };
        while source.slot().take().is_ok() {
            decoded += 1;
        }
    }
    (decoded, t.elapsed())
}

/// Times all of the first camera's detectors on its first frame, `rounds` times
/// after a warm-up, on `parallel` threads at once (as many as inferences can
/// run at once, the way the cameras run them). Returns the rounds timed and the
/// wall time they took together, for the inference-only rate.
fn inference_alone(
    loaded: &LoadedConfig,
    detectors: &BTreeMap<String, Arc<Detector>>,
    rounds: usize,
    parallel: usize,
    into: &mut Latency,
) -> (u64, Duration) {
    let Some(cam) = loaded.config.cameras.first() else {
        return (0, Duration::ZERO);
    };
    let views = CameraWorker::view_specs(cam, detectors);
    let Ok(source) = SourceUri::resolve(&cam.source, &loaded.base_dir()).and_then(|u| {
        CameraSource::open(
            &cam.id,
            &u,
            cam.fps,
            &views,
            Pacing::AsFastAsPossible,
            Default::default(),
        )
    }) else {
        return (0, Duration::ZERO);
    };
    let Ok(frame) = source.slot().take() else {
        return (0, Duration::ZERO);
    };
    let bound: Vec<_> = cam
        .detectors
        .iter()
        .filter_map(|u| detectors.get(&u.name))
        .collect();
    let one_round = |scratch: &mut Vec<DetectScratch>, out: &mut Vec<_>| {
        let mut total = Duration::ZERO;
        for (i, d) in bound.iter().enumerate() {
            out.clear();
            if let Some(Ok(t)) =
                frame.views[i].with_image(|img| d.detect(img, &mut scratch[i], out))
            {
                total += t.inference;
            }
        }
        total
    };
    let warm_up = std::sync::Barrier::new(parallel.max(1));
    let started = std::sync::OnceLock::new();
    let timed: Vec<Latency> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..parallel.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut scratch: Vec<DetectScratch> =
                        bound.iter().map(|_| DetectScratch::default()).collect();
                    let mut out = Vec::new();
                    for _ in 0..5 {
                        one_round(&mut scratch, &mut out);
                    }
                    warm_up.wait();
                    started.get_or_init(Instant::now);
                    let mut timed = Latency::default();
                    for _ in 0..rounds {
                        timed.record(one_round(&mut scratch, &mut out));
                    }
                    timed
                })
            })
            .collect();
        threads.into_iter().filter_map(|t| t.join().ok()).collect()
    });
    let elapsed = started.get().map(|t| t.elapsed()).unwrap_or_default();
    for t in &timed {
        into.merge(t);
    }
    ((rounds * timed.len()) as u64, elapsed)
}

/// A free loopback port for the embedded broker.
fn free_loopback() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "127.0.0.1:18830".into())
}

pub fn run(loaded: &LoadedConfig, options: &BenchOptions) -> Result<BenchReport, AppError> {
    let pacing = if options.realtime {
        Pacing::Live
    } else {
        Pacing::AsFastAsPossible
    };
    let detectors = app::load_detectors(loaded, pacing)?;
    // Inferences that can run at once: the inference-only rate is this many
    // times one inference's.
    let parallel = detectors
        .values()
        .map(|d| d.pool().sessions())
        .min()
        .unwrap_or(1);

    let (mut decoded, mut decode_time) = decode_alone(loaded, &detectors);
    let mut inference = Latency::default();
    let (mut inferred_alone, mut inference_time) =
        inference_alone(loaded, &detectors, 30, parallel, &mut inference);
    drop(detectors);

    let mut loaded_for_run = loaded.clone();
    if loaded_for_run.config.alerts.broker.is_none() {
        loaded_for_run.config.alerts.embedded_listen = free_loopback();
    }
    // Metrics are for live runs; a bench must not collide with one on the port.
    loaded_for_run.config.metrics.listen = None;
    if let Some(console) = &mut loaded_for_run.config.console {
        console.listen = free_loopback();
    }
    let started = Instant::now();
    let shutdown = crate::shutdown::Shutdown::new();
    if let (Some(_), Some(duration)) = (&options.node, options.duration) {
        // A node also waits for cameras it may be given later, so its run
        // ends by the clock, not when its files do.
        let stop = shutdown.clone();
        std::thread::spawn(move || {
            std::thread::sleep(duration);
            stop.trigger();
        });
    }
    let run_options = RunOptions {
        pacing,
        events_file: None,
        embedded_broker: true,
        mqtt: true,
        progress: false,
        shutdown,
        run_until: options.duration.map(|d| started + d),
        inspect: Default::default(),
        console: crate::app::ConsoleUse::WhileCameras,
        node: options.node.clone().map(crate::app::NodeRole::Run),
    };
    // RSS sampled through the run, for the soak's growth figure.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while sampling.load(Ordering::SeqCst) {
                samples.push((started.elapsed(), resident_mb()));
                std::thread::sleep(Duration::from_millis(500));
            }
            samples
        })
    };
    let (cpu_before, recording_before) = (process_cpu_ns(), RECORDING_CPU.total());
    let report = app::run(&loaded_for_run, &run_options);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_ms = process_cpu_ns().saturating_sub(cpu_before) as f64 / 1e6;
    let recording_cpu_ms = (RECORDING_CPU.total() - recording_before).as_secs_f64() * 1e3;
    sampling.store(false, Ordering::SeqCst);
    let rss_samples = sampler.join().unwrap_or_default();
    let report = report?;
    // While the cameras still ran, not after they were torn down.
    let rss_end = report
        .cameras
        .iter()
        .map(|c| c.rss_at_end_mb)
        .fold(0.0, f64::max);

    // The baselines again, after the run: pooled with the first pass.
    let detectors = app::load_detectors(loaded, pacing)?;
    let (d2, t2) = decode_alone(loaded, &detectors);
    decoded += d2;
    decode_time += t2;
    let (n, t) = inference_alone(loaded, &detectors, 30, parallel, &mut inference);
    inferred_alone += n;
    inference_time += t;
    // Frames a second the model alone manages, run as the cameras run it.
    let inference_rate = inferred_alone as f64 / inference_time.as_secs_f64().max(1e-9);
    let decode_ms = decode_time.as_secs_f64() * 1000.0 / decoded.max(1) as f64;
    let inference_ms = inference.percentiles().p50;

    let mut stats = StageStats::default();
    let mut cameras = Vec::new();
    for c in &report.cameras {
        stats.merge(&c.stats);
        cameras.push(CameraBench {
            id: c.id.clone(),
            frames: c.stats.frames,
            fps: round3(c.stats.frames as f64 / c.elapsed.as_secs_f64().max(1e-9)),
            e2e_ms: c.stats.end_to_end.percentiles(),
            frames_skipped: c.stats.motion_skipped,
            ring_mb: round3(c.ring_bytes as f64 / 1e6),
            frames_encoded: c.frames_encoded,
            frames_dropped: c.stats.dropped,
            inferences: c.stats.inferences,
        });
    }
    let mut camera_fps: Vec<f64> = cameras.iter().map(|c| c.fps).collect();
    camera_fps.sort_by(f64::total_cmp);
    let camera_fps_min_ratio = match (camera_fps.first(), camera_fps.get(camera_fps.len() / 2)) {
        (Some(min), Some(median)) if *median > 0.0 => round3(min / median),
        _ => 0.0,
    };
    let rss_at = |fraction: f64| {
        rss_samples
            .iter()
            .find(|(t, _)| t.as_secs_f64() >= elapsed * fraction)
            .map(|(_, mb)| *mb)
    };
    let mut rss_series_mb: Vec<f64> = [0.1, 0.25, 0.5, 0.75]
        .iter()
        .filter_map(|f| rss_at(*f))
        .collect();
    rss_series_mb.push(rss_end);
    let rss_growth_pct = {
        match rss_at(0.1) {
            Some(start) if start > 0.0 => round3((rss_end - start) / start * 100.0),
            _ => 0.0,
        }
    };
    // Over the cameras' own running time: model loading and broker set-up are
    // not frames.
    let camera_time = report
        .cameras
        .iter()
        .map(|c| c.elapsed.as_secs_f64())
        .fold(0.0, f64::max);
    let fps = stats.frames as f64 / camera_time.max(1e-9);
    let e2e = stats.end_to_end.percentiles();
    let stages = BTreeMap::from([
        ("preprocess", stats.preprocess.percentiles()),
        ("inference", stats.inference.percentiles()),
        ("postprocess", stats.postprocess.percentiles()),
        ("track", stats.track.percentiles()),
        ("rules", stats.rules.percentiles()),
        ("source wait", stats.source_wait.percentiles()),
    ]);
    Ok(BenchReport {
        pacing: if options.realtime {
            "realtime"
        } else {
            "as_fast_as_possible"
        },
        elapsed_s: round3(elapsed),
        fps: round3(fps),
        decode_ms: round3(decode_ms),
        inference_ms,
        e2e_ms: e2e,
        overhead_ratio: round3(e2e.p50 / (decode_ms + inference_ms).max(1e-9)),
        throughput_ratio: round3(fps / inference_rate.max(1e-9)),
        inference_share: round3(
            fps * stats.inference.percentiles().mean / 1000.0 / parallel as f64,
        ),
        frames: stats.frames,
        frames_skipped: stats.motion_skipped,
        frames_dropped: stats.dropped,
        inferences: stats.inferences,
        inferences_per_frame: round3(stats.inferences as f64 / stats.frames.max(1) as f64),
        inference_per_frame_ms: round3(
            stats.inference.percentiles().mean * stats.inferences as f64
                / stats.frames.max(1) as f64,
        ),
        alert_latency_ms: report.alert_latency.percentiles(),
        rss_mb: rss_end,
        rss_per_camera_mb: round3(
            (rss_end - report.rss_before_cameras_mb).max(0.0) / report.cameras.len().max(1) as f64,
        ),
        rss_growth_pct,
        recording: loaded.config.storage.enabled,
        ring_mb: round3(
            report
                .cameras
                .iter()
                .map(|c| c.ring_bytes as f64)
                .sum::<f64>()
                / 1e6,
        ),
        recording_cpu_ms_per_frame: round3(recording_cpu_ms / stats.frames.max(1) as f64),
        recording_cpu_share: round3(recording_cpu_ms / cpu_ms.max(1e-9)),
        cpu_ms_per_frame: round3(cpu_ms / stats.frames.max(1) as f64),
        rss_series_mb,
        camera_fps_min_ratio,
        cameras,
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
        row(&mut s, "alert→PUBACK", &self.alert_latency_ms);
        let _ = writeln!(s);
        if self.cameras.len() > 1 {
            let _ = writeln!(
                s,
                "{:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
                "camera", "frames", "fps", "e2e p50", "e2e p99", "skipped", "dropped"
            );
            for c in &self.cameras {
                let _ = writeln!(
                    s,
                    "{:<12} {:>8} {:>8.2} {:>8.3} {:>8.3} {:>8} {:>8}",
                    c.id,
                    c.frames,
                    c.fps,
                    c.e2e_ms.p50,
                    c.e2e_ms.p99,
                    c.frames_skipped,
                    c.frames_dropped
                );
            }
            let _ = writeln!(
                s,
                "slowest camera / median camera fps = {:.3} (target >= 0.9)\n",
                self.camera_fps_min_ratio
            );
        }
        let _ = writeln!(
            s,
            "{} run, {:.1} s: frames {} ({} skipped by motion gating, {} dropped), {:.1} frames/s",
            self.pacing,
            self.elapsed_s,
            self.frames,
            self.frames_skipped,
            self.frames_dropped,
            self.fps
        );
        let _ = writeln!(
            s,
            "inferences {} ({:.2} per frame, tiles counted each), {:.3} ms in the model per frame (mean)",
            self.inferences, self.inferences_per_frame, self.inference_per_frame_ms
        );
        let _ = writeln!(
            s,
            "decode alone {:.3} ms/frame, inference alone {:.3} ms (p50, fixed frame; before and after the run)",
            self.decode_ms, self.inference_ms
        );
        let _ = writeln!(
            s,
            "overhead ratio   e2e p50 / (decode + inference) = {:.3} (target <= 1.10)",
            self.overhead_ratio
        );
        let _ = writeln!(
            s,
            "throughput ratio fps / inference-only rate      = {:.3} (target >= 0.90, as-fast-as-possible runs)",
            self.throughput_ratio
        );
        let _ = writeln!(
            s,
            "inference share  fps x in-run inference mean    = {:.3} (same seconds, noise-proof)",
            self.inference_share
        );
        let _ = writeln!(
            s,
            "resident memory {:.1} MB, {:.1} MB per camera, growth {:+.1}% from 10% into the run (at 10/25/50/75/100%: {:?} MB)",
            self.rss_mb, self.rss_per_camera_mb, self.rss_growth_pct, self.rss_series_mb
        );
        let _ = writeln!(
            s,
            "recording {}: {:.1} MB of compressed video in the cameras' rings; {:.3} ms CPU per frame, {:.1}% of the process's {:.3} ms",
            if self.recording { "on" } else { "off" },
            self.ring_mb,
            self.recording_cpu_ms_per_frame,
            self.recording_cpu_share * 100.0,
            self.cpu_ms_per_frame
        );
        s
    }
}
