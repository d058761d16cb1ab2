//! `vigil run`, `vigil replay` and `vigil bench`: the cameras through the whole
//! chain, live, as fast as possible, or measured; and how a run ends (exit status,
//! per-camera summary, stop signals).

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use vigil::app::{self, RunOptions};
use vigil::config::LoadedConfig;
use vigil::source::{Pacing, SourceEnd};

/// Watch the cameras live and publish alerts to MQTT until Ctrl-C.
///
/// Files play at their own frame rate, as a camera would deliver them; if
/// processing falls behind, stale frames are dropped (and counted), never
/// queued. Without `[alerts] broker` an embedded MQTT broker is started on
/// `[alerts] embedded_listen` (default 127.0.0.1:1883); subscribers log in as
/// `reader` with the password in `<store dir>/mqtt-reader.password`.
///
/// Cameras that fail or stall are reopened by themselves; alerts wait in the
/// store's outbox while the broker is down. The cameras run in a worker
/// process: a crash Rust cannot catch (a GStreamer assertion, a decoder's
/// segfault) ends only the worker, a new one starts at once, and the camera
/// whose stream crashed it is held back (30 s, doubling on repeats). Exit status: 0 all delivered,
/// 1 a camera failed, 75 messages still queued (sent at the next start), 130
/// after a second Ctrl-C.
#[derive(clap::Args)]
pub struct RunArgs {
    #[arg(long, short)]
    pub config: PathBuf,
    /// Also append every event as a JSON line to this file.
    #[arg(long)]
    pub events: Option<String>,
}

/// Serve the web console of a compound without running cameras.
///
/// For a control-room machine with no cameras: with `[compound]` and
/// `[console]` in the config, it shows every node of the compound (live or
/// down), each camera with the node running it and its state, and the alerts
/// open on every node, as the nodes report them through PostgreSQL. It loads
/// no model and takes no camera. Alerts are taken and resolved, and evidence
/// viewed, on the console of the node that recorded them.
#[derive(clap::Args)]
pub struct ConsoleArgs {
    #[arg(long, short)]
    pub config: PathBuf,
}

/// Process recorded files as fast as the machine allows, every frame.
///
/// All rule timing uses media time, so a replay raises the same alerts as
/// the live run would, deterministically. Events go to `--events` as JSON
/// lines (default: stdout), and to MQTT if the config names a broker.
#[derive(clap::Args)]
pub struct ReplayArgs {
    #[arg(long, short)]
    pub config: PathBuf,
    /// JSON-lines output, `-` for stdout.
    #[arg(long, default_value = "-")]
    pub events: String,
    /// Do not publish to MQTT even if the config names a broker.
    #[arg(long)]
    pub no_mqtt: bool,
    /// Write the replay with what vigil saw drawn on it: detections (class,
    /// score), tracks (id, trail, dwell in each zone), zones and lines, frames
    /// motion gating skipped, alerts as they open and end. H.264 MP4 that plays
    /// in a browser: a `.mp4` file for one camera, else a directory with
    /// `<camera>.mp4` each.
    #[arg(long, value_name = "OUT")]
    pub annotate: Option<PathBuf>,
    /// Write every processed frame's detections and tracks, with media time,
    /// as JSON lines (all cameras in one file, each line names its camera).
    #[arg(long, value_name = "FILE.jsonl")]
    pub detections: Option<PathBuf>,
    /// Store no evidence (alerts, snapshots, clips) for this run: for tuning
    /// a config on footage, where only the events matter.
    #[arg(long)]
    pub no_record: bool,
}

/// Measure decode, inference, per-stage and alert latency, fps and memory.
///
/// Decode alone and inference alone are measured before and after a run of
/// the config's cameras, which publishes to the config's broker or to an
/// embedded one on a free port. Prints per-stage p50/p95/p99, end-to-end
/// latency, capture→PUBACK alert latency, frames skipped by motion gating and
/// dropped, per-camera fps and latency, resident memory, and the overhead and
/// throughput ratios. See README "Performance".
#[derive(clap::Args)]
pub struct BenchArgs {
    #[arg(long, short)]
    pub config: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Play files at their own frame rate, as live cameras (default: as fast
    /// as possible, every frame).
    #[arg(long)]
    pub realtime: bool,
    /// Replay the files in a loop for this many seconds (memory soak).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<u64>,
    /// Turn evidence recording (store, snapshots, clips) off for this run,
    /// to measure what recording costs.
    #[arg(long)]
    pub no_record: bool,
}

pub fn console(args: ConsoleArgs) -> Result<ExitCode> {
    let loaded = LoadedConfig::load_checked(&args.config, false)?;
    if loaded.config.console.is_none() || loaded.config.compound.is_none() {
        anyhow::bail!(
            "{}: `vigil console` needs [console] and [compound] in the config (a single box's console is served by `vigil run`)",
            args.config.display()
        );
    }
    let mut loaded = loaded;
    // Its own store (sessions, the custody log of what it shows), beside the nodes'.
    let storage = &mut loaded.config.storage;
    storage.dir = storage.dir.join("console");
    // Its own name on the broker, never a node's.
    let alerts = &mut loaded.config.alerts;
    alerts.node_id = Some(format!("console-{}", alerts.node()));
    let options = RunOptions {
        pacing: Pacing::Live,
        events_file: None,
        embedded_broker: false,
        mqtt: loaded.config.alerts.broker.is_some(),
        progress: false,
        shutdown: shutdown_on_signals()?,
        run_until: None,
        inspect: Default::default(),
        console: app::ConsoleUse::UntilShutdown,
        node: Some(app::NodeRole::Observe),
    };
    app::run(&loaded, &options)?;
    Ok(ExitCode::SUCCESS)
}

/// `node` (`--node`): run as this node of the config's compound: only the
/// cameras pinned to it (`node = "…"`) and a share of the unpinned ones no live
/// node holds, taking over a lost node's within about 15 s. The node name is
/// its MQTT `node_id`, and its store is `<[storage] dir>/<node>`.
pub fn run(args: RunArgs, node: Option<String>) -> Result<ExitCode> {
    if !vigil::watchdog::is_worker() {
        // The cameras run in a worker process this one restarts if a crash
        // (a GStreamer assertion, a decoder's segfault) ends it.
        return vigil::watchdog::supervise();
    }
    let RunArgs { config, events } = args;
    let mut loaded = LoadedConfig::load_checked(&config, false)?;
    if let Some(node) = &node {
        loaded.as_node(node)?;
    }
    let shutdown = shutdown_on_signals()?;
    vigil::watchdog::install(&shutdown);
    let options = RunOptions {
        pacing: Pacing::Live,
        events_file: events,
        embedded_broker: true,
        mqtt: true,
        progress: false,
        shutdown,
        run_until: None,
        inspect: Default::default(),
        console: app::ConsoleUse::UntilShutdown,
        node: node.map(app::NodeRole::Run),
    };
    let report = app::run(&loaded, &options)?;
    summarise(&report);
    Ok(exit_code(&report))
}

pub fn replay(args: ReplayArgs) -> Result<ExitCode> {
    let ReplayArgs {
        config,
        events,
        no_mqtt,
        annotate,
        detections,
        no_record,
    } = args;
    let mut loaded = LoadedConfig::load_checked(&config, false)?;
    if no_record {
        loaded.config.storage.enabled = false;
    }
    let options = RunOptions {
        pacing: Pacing::AsFastAsPossible,
        events_file: Some(events),
        embedded_broker: false,
        mqtt: !no_mqtt && loaded.config.alerts.broker.is_some(),
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        shutdown: shutdown_on_signals()?,
        run_until: None,
        inspect: vigil::inspect::InspectOptions {
            annotate,
            detections,
            ..Default::default()
        },
        console: app::ConsoleUse::Off,
        node: None,
    };
    let report = app::run(&loaded, &options)?;
    summarise(&report);
    Ok(exit_code(&report))
}

/// `node` (`--node`): measure this node of the config's compound, with its
/// leases, mirror and alert index in PostgreSQL running beside the cameras.
pub fn bench(args: BenchArgs, node: Option<String>) -> Result<ExitCode> {
    let BenchArgs {
        config,
        json,
        realtime,
        duration,
        no_record,
    } = args;
    let mut loaded = LoadedConfig::load_checked(&config, false)?;
    if let Some(node) = &node {
        if duration.is_none() {
            anyhow::bail!(
                "bench --node {node}: give --duration too (a node keeps waiting for cameras other nodes may leave, so it does not end with its files)"
            );
        }
        loaded.as_node(node)?;
    }
    if no_record {
        loaded.config.storage.enabled = false;
    }
    let options = vigil::bench::BenchOptions {
        realtime,
        duration: duration.map(std::time::Duration::from_secs),
        node,
    };
    let report = vigil::bench::run(&loaded, &options)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(ExitCode::SUCCESS)
}

fn summarise(report: &app::RunReport) {
    for c in &report.cameras {
        let fps = c.stats.frames as f64 / c.elapsed.as_secs_f64().max(1e-9);
        let end = match &c.end {
            SourceEnd::Finished => "finished".to_string(),
            SourceEnd::Stopped => "stopped".to_string(),
            SourceEnd::Failed(r) => format!("FAILED: {r}"),
        };
        eprintln!(
            "camera {}: {} frames ({fps:.1} fps), {} dropped, {} inferences, {} events, {end}",
            c.id, c.stats.frames, c.stats.dropped, c.stats.inferences, c.stats.events
        );
    }
}

/// Exit status of `run` and `replay`: 1 if a camera failed, 75 (EX_TEMPFAIL)
/// if alerts are still waiting in the outbox for the broker, else 0.
fn exit_code(report: &app::RunReport) -> ExitCode {
    if !report.failed().is_empty() {
        ExitCode::FAILURE
    } else if report.queued_at_exit > 0 {
        eprintln!(
            "{} MQTT message(s) are still queued for the broker; they are sent at the next start (exit status 75)",
            report.queued_at_exit
        );
        ExitCode::from(75)
    } else {
        ExitCode::SUCCESS
    }
}

/// SIGINT and SIGTERM (what a service manager sends) stop the cameras, end
/// their alerts and flush; a second signal exits at once.
pub(super) fn shutdown_on_signals() -> anyhow::Result<vigil::shutdown::Shutdown> {
    let shutdown = vigil::shutdown::Shutdown::new();
    let trigger = shutdown.clone();
    ctrlc::set_handler(move || {
        if trigger.trigger() {
            eprintln!("second stop signal: exiting now");
            std::process::exit(130);
        }
        eprintln!("stopping: closing open alerts and their clips (again to exit at once)");
    })
    .context("installing the Ctrl-C / SIGTERM handler")?;
    Ok(shutdown)
}
