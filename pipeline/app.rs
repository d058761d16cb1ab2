//! App: runs a whole config, every camera on its own threads, events to one
//! publisher. Used by `vigil run`, `vigil replay` and `vigil bench`.
//!
//! A camera that cannot start or fails mid-stream is reported with its id and
//! the reason; the other cameras keep running.

use crate::camera::CameraWorker;
use crate::config::LoadedConfig;
use crate::detect::{Detector, ModelError};
use crate::evidence::EvidenceStage;
use crate::publish::{self, MqttPublisher, Outputs};
use crate::redact::redact;
use crate::source::{CameraSource, Pacing, SourceEnd, SourceUri};
use crate::stats::{Latency, StageStats};
use crate::store::Store;
use crate::telemetry;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("detector {name:?}: {source}")]
    Detector { name: String, source: ModelError },
    #[error(transparent)]
    Broker(#[from] publish::broker::BrokerError),
    #[error(transparent)]
    Mqtt(#[from] publish::MqttError),
    #[error("events file {path}: {reason}")]
    EventsFile { path: String, reason: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// How a run treats time and where its events go.
pub struct RunOptions {
    pub pacing: Pacing,
    /// Write events as JSON lines here (`-` for stdout).
    pub events_file: Option<String>,
    /// Start the embedded broker when the config names none.
    pub embedded_broker: bool,
    /// Publish to MQTT at all (replays without a broker do not).
    pub mqtt: bool,
    pub progress: bool,
    /// Set to stop a live run (Ctrl-C).
    pub stop: Arc<AtomicBool>,
    /// Stop at this instant, playing files again from the start when they end
    /// before it (soak tests, `vigil bench --duration`); media time keeps
    /// counting up across repeats.
    pub run_until: Option<Instant>,
}

/// How each camera ended and what it measured.
pub struct CameraReport {
    pub id: String,
    pub end: SourceEnd,
    pub stats: StageStats,
    pub events: usize,
    pub elapsed: Duration,
    /// Process resident memory when this camera ended, its pipeline still up.
    pub rss_at_end_mb: f64,
    /// Encoded video held in the camera's recording ring at the end (0 without a store).
    pub ring_bytes: usize,
}

pub struct RunReport {
    pub cameras: Vec<CameraReport>,
    /// Capture of the confirming frame → the broker's PUBACK, per MQTT message.
    pub alert_latency: Latency,
    /// Resident memory once models were loaded, before any camera started.
    pub rss_before_cameras_mb: f64,
}

impl RunReport {
    pub fn failed(&self) -> Vec<&CameraReport> {
        self.cameras
            .iter()
            .filter(|c| matches!(c.end, SourceEnd::Failed(_)))
            .collect()
    }
}

/// Loads every detector some camera uses, with as many sessions as cameras
/// share it (at most the core count), splitting the cores between them.
pub fn load_detectors(loaded: &LoadedConfig) -> Result<BTreeMap<String, Arc<Detector>>, AppError> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let mut detectors = BTreeMap::new();
    for d in &loaded.config.detectors {
        let users = loaded
            .config
            .cameras
            .iter()
            .filter(|c| c.detectors.iter().any(|u| u.name == d.name))
            .count();
        if users == 0 {
            continue;
        }
        let sessions = users.min(cores);
        let threads = (cores / sessions).max(1);
        let detector =
            Detector::load(d, &loaded.model_path(d), sessions, threads).map_err(|source| {
                AppError::Detector {
                    name: d.name.clone(),
                    source,
                }
            })?;
        detectors.insert(d.name.clone(), Arc::new(detector));
    }
    Ok(detectors)
}

fn open_events_file(path: &str) -> Result<Box<dyn Write + Send>, AppError> {
    if path == "-" {
        return Ok(Box::new(std::io::stdout()));
    }
    let file = std::fs::File::create(path).map_err(|e| AppError::EventsFile {
        path: path.into(),
        reason: e.to_string(),
    })?;
    Ok(Box::new(std::io::BufWriter::new(file)))
}

/// Runs every camera of the config until its source ends (files) or `stop` is set.
pub fn run(loaded: &LoadedConfig, options: &RunOptions) -> Result<RunReport, AppError> {
    let config = &loaded.config;
    // The store first: a second process on the same store stops here, before
    // it loads models or touches the broker.
    let store = if config.storage.enabled {
        let store = Store::open_writer(&config.storage, &loaded.base_dir())?;
        tracing::info!("evidence store: {}", store.dir().display());
        Some(store)
    } else {
        None
    };
    let detectors = load_detectors(loaded)?;
    // Without metrics the cameras still alert: a taken port is only a warning.
    if let Some(listen) = &config.metrics.listen {
        match telemetry::serve(listen) {
            Ok(addr) => tracing::info!("metrics on http://{addr}/metrics"),
            Err(e) => tracing::warn!("{e}; running without /metrics"),
        }
    }

    let mqtt = if options.mqtt {
        let (host, port) = match &config.alerts.broker {
            Some(url) => publish::parse_broker(url)?,
            None if options.embedded_broker => {
                let addr = publish::broker::start(&config.alerts.embedded_listen)?;
                tracing::info!(
                    "embedded MQTT broker listening on {addr} (set [alerts] broker to use your own)"
                );
                (addr.ip().to_string(), addr.port())
            }
            None => {
                return Err(AppError::Mqtt(publish::MqttError::BadUrl {
                    url: String::new(),
                    reason: "no broker configured".into(),
                }));
            }
        };
        tracing::info!(
            "alerts to mqtt://{host}:{port} on {}/alerts/<recipient> and {}",
            config.alerts.topic_prefix,
            config.alerts.events_topic()
        );
        let credentials = if config.alerts.broker.is_some() {
            config.alerts.credentials(&loaded.base_dir())?
        } else {
            None
        };
        Some(MqttPublisher::connect(
            &config.alerts,
            &host,
            port,
            credentials,
        ))
    } else {
        None
    };
    let outputs = Outputs {
        mqtt,
        jsonl: options
            .events_file
            .as_deref()
            .map(open_events_file)
            .transpose()?,
        log: true,
    };
    let (publish_tx, publisher) = publish::spawn(outputs);
    let (events_tx, evidence) = match store {
        Some(store) => {
            let running = EvidenceStage::spawn(store, config, publish_tx);
            (running.events.clone(), Some(running))
        }
        None => (publish_tx, None),
    };
    let recorder_of = |id: &str| evidence.as_ref().and_then(|r| r.recorders.get(id).cloned());

    // Alert ids embed the run's start, so alerts of successive runs (and
    // replays of the same file) never collide in the store.
    let epoch = crate::store::now_ms();
    let bars = MultiProgress::new();
    if !options.progress {
        bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let style =
        ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos:>5}/{len:5} s media  {msg}")
            .expect("static template")
            .progress_chars("=> ");

    let rss_before_cameras_mb = crate::stats::resident_mb();
    let mut reports = Vec::new();
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for cam in &config.cameras {
            let views = CameraWorker::view_specs(cam, &detectors);
            let started = Instant::now();
            let recorder = recorder_of(&cam.id);
            let open = {
                let base = loaded.base_dir();
                let pacing = options.pacing;
                let recorder = recorder.clone();
                move || {
                    SourceUri::resolve(&cam.source, &base).and_then(|uri| {
                        CameraSource::open(&cam.id, &uri, cam.fps, &views, pacing, recorder.clone())
                    })
                }
            };
            let source = match open() {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(camera = %cam.id, "camera {} ({}) cannot start: {e}", cam.id, redact(&cam.source));
                    telemetry::CameraMetrics::new(&cam.id).down();
                    reports.push(CameraReport {
                        id: cam.id.clone(),
                        end: SourceEnd::Failed(e.to_string()),
                        stats: StageStats::default(),
                        events: 0,
                        elapsed: started.elapsed(),
                        rss_at_end_mb: 0.0,
                        ring_bytes: 0,
                    });
                    continue;
                }
            };
            let mut worker = CameraWorker::new(
                cam,
                &detectors,
                &config.tracker,
                &config.alerts.routes,
                epoch,
            );
            let bar = bars.add(
                ProgressBar::new(0)
                    .with_style(style.clone())
                    .with_prefix(cam.id.clone()),
            );
            let events_tx = events_tx.clone();
            let stop = options.stop.clone();
            let run_until = options.run_until;
            handles.push(scope.spawn(move || {
                let mut source = source;
                let mut pts_offset = crate::time::MediaTime::ZERO;
                let mut rss_at_end_mb;
                let mut ring_bytes = 0;
                let end = loop {
                    let end = worker.run(source.slot(), pts_offset, &events_tx, |frame| {
                        if stop.load(Ordering::SeqCst)
                            || run_until.is_some_and(|t| Instant::now() >= t)
                        {
                            source.stop();
                        }
                        if bar.length() == Some(0)
                            && let Some(d) = source.duration()
                        {
                            bar.set_length(d.as_secs_f64().ceil() as u64);
                        }
                        bar.set_position(frame.pts.as_secs_f64() as u64);
                        bar.set_message(format!("{} frames", frame.seq + 1));
                    });
                    rss_at_end_mb = crate::stats::resident_mb();
                    if let Some(r) = &recorder {
                        ring_bytes = r.ring_bytes();
                        r.source_ended();
                    }
                    let again = end == SourceEnd::Finished
                        && !stop.load(Ordering::SeqCst)
                        && run_until.is_some_and(|t| Instant::now() < t);
                    if !again {
                        break end;
                    }
                    pts_offset = worker.media_end();
                    drop(source);
                    if let Some(r) = &recorder {
                        r.source_restarted(pts_offset);
                    }
                    match open() {
                        Ok(s) => source = s,
                        Err(e) => break SourceEnd::Failed(e.to_string()),
                    }
                };
                bar.finish();
                match &end {
                    SourceEnd::Failed(reason) => tracing::error!(camera = %worker.id, "camera {} ({}) failed: {reason}", worker.id, redact(&cam.source)),
                    SourceEnd::Finished => tracing::info!(camera = %worker.id, "camera {}: end of stream", worker.id),
                    SourceEnd::Stopped => {}
                }
                CameraReport {
                    id: worker.id.to_string(),
                    end,
                    events: worker.stats.events as usize,
                    stats: std::mem::take(&mut worker.stats),
                    elapsed: started.elapsed(),
                    rss_at_end_mb,
                    ring_bytes,
                }
            }));
        }
        for h in handles {
            match h.join() {
                Ok(r) => reports.push(r),
                Err(_) => tracing::error!("a camera worker panicked"),
            }
        }
    });
    drop(events_tx);
    if let Some(running) = evidence {
        drop(running.events);
        drop(running.recorders);
        if running.handle.join().is_err() {
            tracing::error!("the evidence thread panicked");
        }
    }
    let mut alert_latency = Latency::default();
    if let Ok(outputs) = publisher.join()
        && let Some(mqtt) = &outputs.mqtt
    {
        if !mqtt.flush(Duration::from_secs(5)) {
            tracing::warn!(
                "MQTT: {} alert messages still unacknowledged after 5 s",
                mqtt.pending()
            );
        }
        alert_latency = mqtt.alert_latency();
    }
    Ok(RunReport {
        cameras: reports,
        alert_latency,
        rss_before_cameras_mb,
    })
}
