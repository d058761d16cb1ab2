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

/// Bytes available to an unprivileged writer on the filesystem holding `dir`.
pub fn available_bytes(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a struct statvfs of our own.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    Some(stat.f_bavail as u64 * stat.f_frsize as u64)
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

/// CPU time this thread has used (`CLOCK_THREAD_CPUTIME_ID`), nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    cpu_clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time the whole process has used, all threads, nanoseconds.
pub fn process_cpu_ns() -> u64 {
    cpu_clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn cpu_clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only into the timespec it is given.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time spent on one kind of side work (recording, say), summed over the
/// threads that do it, so a report can say what share of the process it costs.
///
/// A thread calls [`CpuMeter::charge`] after each piece of work: what it used
/// since its previous charge is added (its first charge only starts the
/// count). GStreamer reuses streaming threads across pipelines, so a thread
/// ends its stint with [`CpuMeter::release`]. A thread works for one meter at a
/// time.
pub struct CpuMeter {
    total_ns: std::sync::atomic::AtomicU64,
}

thread_local! {
    /// This thread's CPU clock at its last charge, while it works for a meter.
    static CHARGED_AT: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

impl CpuMeter {
    pub const fn new() -> Self {
        CpuMeter {
            total_ns: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Adds what this thread used since its last charge.
    pub fn charge(&self) {
        let now = thread_cpu_ns();
        if let Some(before) = CHARGED_AT.with(|c| c.replace(Some(now))) {
            self.total_ns.fetch_add(
                now.saturating_sub(before),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
    }

    /// Charges, then stops counting this thread.
    pub fn release(&self) {
        self.charge();
        CHARGED_AT.with(|c| c.set(None));
    }

    pub fn total(&self) -> Duration {
        Duration::from_nanos(self.total_ns.load(std::sync::atomic::Ordering::Relaxed))
    }
}

impl Default for CpuMeter {
    fn default() -> Self {
        Self::new()
    }
}
