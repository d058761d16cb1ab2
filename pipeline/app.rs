//! App: runs a whole config, every camera on its own threads, events to one
//! publisher. Used by `vigil run`, `vigil replay` and `vigil bench`.
//!
//! Each camera runs under its [`Supervisor`], which reopens a failed or stalled
//! source; a camera that cannot start never holds up the others. On shutdown the
//! cameras stop first, then the evidence stage finishes their alerts, then the
//! publisher flushes what the broker takes in a few seconds; the rest stays in
//! the outbox for the next start.

use crate::camera::CameraWorker;
use crate::config::LoadedConfig;
use crate::detect::{Detector, ModelError};
use crate::evidence::EvidenceStage;
use crate::publish::{self, Connect, MqttPublisher, Outputs, Queueing};
use crate::shutdown::Shutdown;
use crate::source::{Pacing, SourceEnd};
use crate::stats::Latency;
use crate::store::{Outbox, Store};
use crate::supervisor::{CameraReport, Supervisor};
use crate::telemetry;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
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
    #[error(transparent)]
    Outbox(#[from] crate::store::OutboxError),
    #[error(transparent)]
    Inspect(#[from] crate::inspect::InspectError),
    #[error(transparent)]
    Console(#[from] crate::console::ConsoleError),
    #[error(transparent)]
    Compound(#[from] crate::compound::CompoundError),
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
    /// Triggered to stop the run (Ctrl-C, SIGTERM): reaches every thread.
    pub shutdown: Shutdown,
    /// Stop at this instant, playing files again from the start when they end
    /// before it (soak tests, `vigil bench --duration`); media time keeps
    /// counting up across repeats.
    pub run_until: Option<Instant>,
    /// Annotated video and per-frame detection log (replays, for integrators).
    pub inspect: crate::inspect::InspectOptions,
    /// Whether to serve the web console when the config has `[console]`.
    pub console: ConsoleUse,
    /// A part in the config's compound: a node running the cameras
    /// PostgreSQL gives it, or a console that runs none.
    pub node: Option<NodeRole>,
}

/// How a process takes part in a compound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeRole {
    /// `vigil run --node NAME`: runs the cameras PostgreSQL gives it.
    Run(String),
    /// `vigil console`: runs no camera and takes none; serves the console
    /// with every node's cameras and open alerts.
    Observe,
}

/// How long a run serves the console (when the config has `[console]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleUse {
    /// Replays, evaluations: none.
    Off,
    /// While the cameras run (`vigil bench`).
    WhileCameras,
    /// Until shutdown, also after every file ended, so the alerts can still
    /// be reviewed and acknowledged (`vigil run`).
    UntilShutdown,
}

pub struct RunReport {
    pub cameras: Vec<CameraReport>,
    /// Capture of the confirming frame → the broker's PUBACK, per MQTT message.
    pub alert_latency: Latency,
    /// Resident memory once models were loaded, before any camera started.
    pub rss_before_cameras_mb: f64,
    /// MQTT messages the broker had not acknowledged when vigil stopped: kept
    /// in the outbox, sent at the next start.
    pub queued_at_exit: usize,
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
/// Files played as fast as possible get one single-threaded session per core
/// whatever the camera count: a camera then infers two frames at once
/// ([`CameraWorker::run`](crate::camera::CameraWorker::run)).
pub fn load_detectors(
    loaded: &LoadedConfig,
    pacing: Pacing,
) -> Result<BTreeMap<String, Arc<Detector>>, AppError> {
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
        let sessions = match pacing {
            Pacing::AsFastAsPossible => cores,
            Pacing::Live => users.min(cores),
        };
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
    // A worker the watchdog restarted goes on with the file the dead one wrote.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .append(crate::watchdog::restarts() > 0)
        .truncate(crate::watchdog::restarts() == 0)
        .open(path)
        .map_err(|e| AppError::EventsFile {
            path: path.into(),
            reason: e.to_string(),
        })?;
    Ok(Box::new(std::io::BufWriter::new(file)))
}

/// How long, after a stop signal, the publisher keeps sending what the broker
/// takes: the whole stop stays within 2 s.
const FINAL_FLUSH_STOPPED: Duration = Duration::from_millis(1500);
/// How long it keeps sending when the sources ended by themselves (a replay's
/// burst of events at a healthy broker needs more than a stop signal allows).
const FINAL_FLUSH_ENDED: Duration = Duration::from_secs(10);

/// Claims the name of compound node `me` (see [`crate::compound::Node::claim`]).
fn claim_node(
    loaded: &LoadedConfig,
    me: &str,
    shutdown: &Shutdown,
) -> Result<crate::compound::Claim, AppError> {
    use crate::compound::{CompoundError, Node};
    let Some(compound) = &loaded.config.compound else {
        return Err(CompoundError::NoCompound { node: me.into() }.into());
    };
    crate::compound::check_node_name(me)?;
    let pg = compound.pg_config(&loaded.base_dir())?;
    tracing::info!(
        "compound node {me}: cameras leased through PostgreSQL {} ({} s leases)",
        compound.describe(),
        compound.lease_s
    );
    Ok(Node::claim(
        &pg,
        me,
        &compound.describe(),
        compound.lease(),
        shutdown,
    )?)
}

/// Starts this process as compound node `me` (or, `observer`, as a console
/// that runs no camera): its leases, the broker witness, and where the
/// `node_lost` ends of taken cameras' alerts go.
#[allow(clippy::too_many_arguments)]
fn start_node(
    loaded: &LoadedConfig,
    me: &str,
    observer: bool,
    claim: crate::compound::Claim,
    db_path: Option<&std::path::Path>,
    mqtt: Option<&MqttPublisher>,
    witness_connect: Option<Connect>,
    shutdown: &Shutdown,
    health: &crate::health::HealthBoard,
) -> Result<crate::compound::Node, AppError> {
    use crate::compound::{CompoundError, Node, NodeOptions, Witness};
    let config = &loaded.config;
    let Some(compound) = &config.compound else {
        return Err(CompoundError::NoCompound { node: me.into() }.into());
    };
    let pg = compound.pg_config(&loaded.base_dir())?;
    let witness = witness_connect.map(|c| {
        Witness::start(
            c,
            format!("{}-witness", config.alerts.client_id()),
            &config.alerts.topic_prefix,
            shutdown.clone(),
        )
    });
    // The ends of a lost node's alerts go out through this node's outbox.
    let outbox = match (db_path, mqtt) {
        (Some(path), Some(_)) => Some(Outbox::open(path)?),
        (None, Some(_)) => Some(Outbox::temporary()?),
        _ => None,
    };
    let outbox = std::sync::Mutex::new(outbox);
    let notify = mqtt.map(|m| m.notify());
    let alerts = config.alerts.clone();
    let lost: crate::compound::LostSink = Box::new(move |camera, alerts_lost| {
        for lost in alerts_lost {
            let Some(end) = crate::store::InterruptedEnd::from_last(
                lost.alert_id.clone(),
                &lost.payload,
                lost.wall_ms,
                crate::events::EndReason::NodeLost,
            ) else {
                tracing::error!(camera = %camera, "alert {}: its last event cannot be read; no node_lost end", lost.alert_id);
                continue;
            };
            tracing::warn!(camera = %camera, "alert {}: ended as node_lost", end.alert_id);
            let messages = alerts.alert_messages(&end.recipients, end.severity, &end.payload, None);
            if let Some(outbox) = outbox.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                publish::queue_counted(outbox, &messages, alerts.outbox_max);
            }
        }
        if let Some(n) = &notify {
            let _ = n.try_send(());
        }
    });
    Ok(Node::start(
        NodeOptions {
            me: me.into(),
            cameras: config
                .cameras
                .iter()
                .map(|c| (c.id.clone(), c.node.clone()))
                .collect(),
            pg,
            database: compound.describe(),
            lease: compound.lease(),
            witness,
            own_link: mqtt.map(|m| m.link()),
            lost,
            shutdown: shutdown.clone(),
            health: Some(health.clone()),
            observer,
            users_file: config.console.as_ref().map(
                |c| -> Box<dyn crate::compound::users::UsersFile> {
                    Box::new(crate::console::users::Mirrored(
                        c.users_path(&loaded.base_dir()),
                    ))
                },
            ),
            index: config
                .storage
                .enabled
                .then(|| crate::compound::IndexSource {
                    storage: config.storage.clone(),
                    base: loaded.base_dir(),
                    url: config.console.as_ref().map(|c| c.advertised_url()),
                    cert_sha256: config
                        .console
                        .as_ref()
                        .and_then(|c| c.cert_sha256(&loaded.base_dir())),
                    announce: mqtt.map(|m| (config.alerts.clone(), m.notify())),
                }),
        },
        claim,
    ))
}

/// Runs every camera of the config until its source ends (files) or shutdown.
pub fn run(loaded: &LoadedConfig, options: &RunOptions) -> Result<RunReport, AppError> {
    let config = &loaded.config;
    // The store first: a second process on the same store stops here, before
    // it loads models or touches the broker.
    let mut store = if config.storage.enabled {
        let store = Store::open_writer(&config.storage, &loaded.base_dir())?;
        tracing::info!("evidence store: {}", store.dir().display());
        Some(store)
    } else {
        None
    };
    // A compound node claims its name first: a second process with the same
    // `--node` stops here, before it touches the broker.
    let observing = options.node == Some(NodeRole::Observe);
    let claim = match &options.node {
        Some(NodeRole::Run(me)) => {
            let claim = claim_node(loaded, me, &options.shutdown)?;
            if let Some(store) = store.as_mut()
                && !claim.settled.is_empty()
            {
                tracing::info!(
                    "{} alert(s) the last run of this node left open were ended by another node as node_lost",
                    claim.settled.len()
                );
                store.settle_lost_elsewhere(&claim.settled)?;
            }
            Some((me.clone(), claim))
        }
        Some(NodeRole::Observe) => {
            if config.compound.is_none() {
                return Err(crate::compound::CompoundError::NoCompound {
                    node: "(console)".into(),
                }
                .into());
            }
            // Never a node's name (those are letters, digits, `-`, `_`).
            Some(("(console)".to_string(), crate::compound::Claim::observer()))
        }
        None => None,
    };
    // A console-only process loads no model: it may run where none is.
    let detectors = if observing {
        BTreeMap::new()
    } else {
        load_detectors(loaded, options.pacing)?
    };
    // Without metrics the cameras still alert: a taken port is only a warning.
    if let Some(listen) = &config.metrics.listen {
        match telemetry::serve(listen) {
            Ok(addr) => tracing::info!("metrics on http://{addr}/metrics"),
            Err(e) => tracing::warn!("{e}; running without /metrics"),
        }
    }

    let mut embedded_login = None;
    let mut witness_connect = None;
    let (mqtt, queueing) = if options.mqtt {
        let publish::BrokerAddress { host, port, tls } = match &config.alerts.broker {
            Some(url) => publish::parse_broker(url)?,
            None if options.embedded_broker => {
                let login = publish::broker::EmbeddedLogin::prepare(
                    &config.storage.dir(&loaded.base_dir()),
                    &config.alerts.client_id(),
                )?;
                let reader_file = login.reader_file.clone();
                embedded_login = Some(login.vigil.clone());
                let addr = publish::broker::start(&config.alerts.embedded_listen, login)?;
                tracing::info!(
                    "embedded MQTT broker listening on {addr} (set [alerts] broker to use your own); subscribers log in as `{}` with the password in {}",
                    publish::broker::READER,
                    reader_file.display()
                );
                publish::BrokerAddress {
                    host: addr.ip().to_string(),
                    port: addr.port(),
                    tls: false,
                }
            }
            None => {
                return Err(AppError::Mqtt(publish::MqttError::BadUrl {
                    url: String::new(),
                    reason: "no broker configured".into(),
                }));
            }
        };
        let tls = if tls {
            Some(config.alerts.tls_files(&loaded.base_dir())?)
        } else {
            None
        };
        tracing::info!(
            "alerts to {}://{host}:{port} on {}/alerts/<recipient> and {}",
            if tls.is_some() { "mqtts" } else { "mqtt" },
            config.alerts.topic_prefix,
            config.alerts.events_topic()
        );
        let credentials = if config.alerts.broker.is_some() {
            config.alerts.credentials(&loaded.base_dir())?
        } else {
            embedded_login.take()
        };
        // The outbox lives in the store; without one, in a temporary database
        // that rides out a broker outage but not a restart.
        let (drained, queued) = match &store {
            Some(store) => (
                Outbox::open(store.db_path())?,
                Outbox::open(store.db_path())?,
            ),
            None => {
                tracing::warn!(
                    "[storage] is disabled: MQTT messages queued while the broker is down are lost if vigil stops"
                );
                let temporary = Outbox::temporary()?;
                let second = Outbox::open(temporary.path())?;
                (temporary, second)
            }
        };
        let connect = Connect {
            host,
            port,
            credentials,
            tls,
        };
        witness_connect = Some(connect.clone());
        let publisher = MqttPublisher::start(&config.alerts, connect, drained);
        let mut queueing = Queueing {
            config: config.alerts.clone(),
            outbox: queued,
            notify: publisher.notify(),
            events_queued: store.is_some(),
            open_alerts: Default::default(),
        };
        if let Some(ha) = &config.alerts.homeassistant {
            let cameras: Vec<_> = config
                .cameras
                .iter()
                .map(|c| publish::homeassistant::CameraEntities {
                    id: c.id.clone(),
                    name: c.name.clone().unwrap_or_else(|| c.id.clone()),
                    kinds: c.rules.iter().map(|r| r.kind()).collect(),
                })
                .collect();
            let discovery = publish::homeassistant::discovery(ha, &config.alerts, &cameras);
            tracing::info!(
                "Home Assistant discovery: {} entities under {}/",
                discovery.len(),
                ha.discovery_prefix
            );
            queueing.queue(&discovery);
        }
        (Some(publisher), Some(queueing))
    } else {
        (None, None)
    };
    let health = crate::health::HealthBoard::new(config.cameras.iter().map(|c| c.id.as_str()));
    // What the console asks the compound: other nodes' alerts and consoles.
    let peers = match (&claim, &config.compound) {
        (Some((me, _)), Some(compound)) => Some(Arc::new(crate::compound::Peers::new(
            compound,
            &loaded.base_dir(),
            me,
        )?)),
        _ => None,
    };
    let node = match claim {
        Some((me, claim)) => Some(start_node(
            loaded,
            &me,
            observing,
            claim,
            store.as_ref().map(|s| s.db_path()),
            mqtt.as_ref(),
            witness_connect,
            &options.shutdown,
            &health,
        )?),
        None => None,
    };
    let evidence_queueing = queueing
        .as_ref()
        .map(|q| (q.config.clone(), q.notify.clone()));
    let evidence_queueing_for_console = evidence_queueing.clone();
    let outputs = Outputs {
        jsonl: options
            .events_file
            .as_deref()
            .map(open_events_file)
            .transpose()?,
        log: true,
        mqtt: queueing,
        compound: node.as_ref().map(|n| n.alert_changes()),
    };
    let (channels, publisher_thread) = publish::spawn(outputs);
    let (events_tx, evidence) = match store {
        Some(store) => {
            // Snapshots burn in the console's time zone (the host's without one).
            let zone = config
                .console
                .as_ref()
                .and_then(|c| c.zone().ok())
                .unwrap_or_else(jiff::tz::TimeZone::system);
            // Only a console watches open alerts' recordings: a replay or a
            // bench does not pay for the copy.
            let watched = config.console.is_some() && options.console != ConsoleUse::Off;
            let running = EvidenceStage::spawn(
                store,
                &config.cameras,
                zone,
                channels.events,
                evidence_queueing,
                watched,
            );
            (running.events.clone(), Some(running))
        }
        None => (channels.events, None),
    };
    let statuses_tx = channels.statuses;
    let console = match (&config.console, options.console) {
        (None, _) | (_, ConsoleUse::Off) => None,
        (Some(console), _) => {
            let running = crate::console::start(crate::console::ConsoleContext {
                config: console.clone(),
                base: loaded.base_dir(),
                storage: config.storage.clone(),
                cameras: config
                    .cameras
                    .iter()
                    .map(|c| (c.id.clone(), c.name.clone().unwrap_or_else(|| c.id.clone())))
                    .collect(),
                health: health.clone(),
                layouts: config
                    .cameras
                    .iter()
                    .map(|c| {
                        let layout = crate::console::CameraLayout {
                            zones: c.zones.clone(),
                            lines: c.lines.clone(),
                        };
                        (c.id.clone(), layout)
                    })
                    .collect(),
                recorders: evidence
                    .as_ref()
                    .map(|e| {
                        e.recorders
                            .iter()
                            .map(|(id, r)| (id.clone(), Arc::downgrade(r)))
                            .collect()
                    })
                    .unwrap_or_default(),
                alerts: evidence_queueing_for_console,
                shutdown: options.shutdown.clone(),
                compound: peers.clone(),
            })?;
            tracing::info!(
                "console on {}://{}/",
                if running.https { "https" } else { "http" },
                running.addr
            );
            Some(running)
        }
    };
    let recorder_of = |id: &str| evidence.as_ref().and_then(|r| r.recorders.get(id).cloned());

    // Alert ids embed the run's start, so alerts of successive runs (and
    // replays of the same file) never collide in the store.
    let epoch = crate::time::now_ms();
    let bars = MultiProgress::new();
    if !options.progress {
        bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let style =
        ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos:>5}/{len:5} s media  {msg}")
            .expect("static template")
            .progress_chars("=> ");

    let inspect = match options.inspect.is_on() {
        false => None,
        true => Some(crate::inspect::InspectOutputs::open(
            &options.inspect,
            config.cameras.len(),
        )?),
    };
    let rss_before_cameras_mb = crate::stats::resident_mb();
    let mut reports = Vec::new();
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for cam in config.cameras.iter().filter(|_| !observing) {
            let progress = bars.add(
                ProgressBar::new(0)
                    .with_style(style.clone())
                    .with_prefix(cam.id.clone()),
            );
            // Only a console, or a compound node reporting to the others'
            // consoles, reads health: otherwise cameras skip even the counter.
            let health = (console.is_some() || node.is_some())
                .then(|| health.camera(&cam.id))
                .flatten();
            let detectors = &detectors;
            let inspect = inspect.as_ref();
            let events_tx = &events_tx;
            let statuses_tx = &statuses_tx;
            let recorder = recorder_of(&cam.id);
            let base = loaded.base_dir();
            // One camera's watch for as long as `shutdown` lets it, its alert
            // ids counting from `epoch`.
            let watch =
                move |shutdown: Shutdown,
                      epoch: u64,
                      handed_over: Option<Arc<std::sync::atomic::AtomicBool>>| {
                    let supervisor = Supervisor {
                        camera: cam,
                        base: base.clone(),
                        views: CameraWorker::view_specs(cam, detectors),
                        pacing: options.pacing,
                        recorder: recorder.clone(),
                        shutdown,
                        run_until: options.run_until,
                        events: events_tx.clone(),
                        statuses: statuses_tx.clone(),
                        health: health.clone(),
                        progress: progress.clone(),
                        handed_over,
                    };
                    let live = supervisor.health.clone();
                    let new_worker = move || {
                        CameraWorker::new(
                            cam,
                            detectors,
                            &config.tracker,
                            &config.alerts.routes,
                            epoch,
                        )
                        .with_inspector(
                            inspect.map(|i| i.inspector(&cam.id, &cam.zones, &cam.lines)),
                        )
                        .with_live(live.clone())
                    };
                    supervisor.run(new_worker)
                };
            let node = node.as_ref();
            let recorder = recorder_of(&cam.id);
            let spawned = std::thread::Builder::new()
                .name(format!("camera-{}", cam.id))
                .spawn_scoped(scope, move || {
                    crate::watchdog::mark_thread(&cam.id);
                    let Some(node) = node else {
                        return Some(watch(options.shutdown.clone(), epoch, None));
                    };
                    // A compound node runs the camera for each tenure
                    // PostgreSQL gives it, with fresh tracks and alert ids each time.
                    let mut report = None;
                    while let Some(tenure) = node.wait_tenure(&cam.id, &options.shutdown) {
                        if report.is_some()
                            && let Some(r) = &recorder
                        {
                            r.source_restarted(crate::time::MediaTime::ZERO);
                        }
                        let ran = watch(
                            tenure.shutdown.clone(),
                            crate::time::now_ms(),
                            Some(tenure.handed_over.clone()),
                        );
                        node.tenure_ended(&cam.id, &tenure);
                        let ended_here = !tenure.shutdown.is_triggered();
                        report = Some(ran);
                        if ended_here {
                            break;
                        }
                    }
                    report
                });
            match spawned {
                Ok(h) => handles.push((cam.id.clone(), h)),
                Err(e) => {
                    tracing::error!(camera = %cam.id, "camera {}: cannot start its thread: {e}", cam.id)
                }
            }
        }
        for (id, h) in handles {
            match h.join() {
                Ok(Some(r)) => reports.push(r),
                Ok(None) => {}
                Err(_) => tracing::error!(camera = %id, "camera {id}: its supervisor panicked"),
            }
        }
    });
    drop(events_tx);
    drop(statuses_tx);
    if let Some(running) = evidence {
        drop(running.events);
        // Clips finish after their camera's source has ended: their frames
        // are counted once the evidence thread has seen them all.
        let encoded: Vec<_> = running
            .recorders
            .iter()
            .map(|(id, r)| (id.clone(), r.encoded_counter()))
            .collect();
        drop(running.recorders);
        if running.handle.join().is_err() {
            tracing::error!("the evidence thread panicked");
        }
        for report in &mut reports {
            if let Some((_, counter)) = encoded.iter().find(|(id, _)| *id == report.id) {
                report.frames_encoded = counter.load(std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
    if publisher_thread.join().is_err() {
        tracing::error!("the publish thread panicked");
    }
    // Every alert has ended and been mirrored: a node gives its cameras up
    // now, so the other nodes take them at their next round. A console-only
    // process keeps reading the compound for its console until the end.
    let node = match node {
        Some(node) if !observing => {
            node.finish(Duration::from_secs(3));
            None
        }
        other => other,
    };
    let flush = if options.shutdown.is_triggered() {
        FINAL_FLUSH_STOPPED
    } else {
        FINAL_FLUSH_ENDED
    };
    if let Some(console) = console {
        // Files end; the control room's review does not. The publisher stays
        // up too, so acknowledgements still reach MQTT.
        if options.console == ConsoleUse::UntilShutdown && !options.shutdown.is_triggered() {
            if !observing {
                tracing::info!(
                    "every camera has ended; the console stays up for review until Ctrl-C"
                );
            }
            while !options.shutdown.wait(Duration::from_secs(1)) {}
        } else {
            options.shutdown.trigger();
        }
        console.join();
    }
    if let Some(node) = node {
        node.finish(Duration::from_secs(3));
    }
    let delivery = mqtt.map(|p| p.finish(flush)).unwrap_or_default();
    Ok(RunReport {
        cameras: reports,
        alert_latency: delivery.latency,
        rss_before_cameras_mb,
        queued_at_exit: delivery.left,
    })
}
