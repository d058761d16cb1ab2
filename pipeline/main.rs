//! The `vigil` command line: run, replay, check, bench.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use vigil::app::{self, RunOptions};
use vigil::config::LoadedConfig;
use vigil::source::{Pacing, SourceEnd};

/// Video analytics for a residential compound: raises alerts for battery carts
/// (e-bikes, bicycles, motorcycles) entering buildings, fire and smoke, and
/// loitering, and publishes them over MQTT to the patrol and the police.
#[derive(Parser)]
#[command(version, about, long_about = None, after_help = "Configs: see config/README.md. Example: vigil run --config config/demo.toml")]
struct Cli {
    /// Log filter, e.g. `info`, `debug`, `vigil=debug` (or set RUST_LOG).
    #[arg(long, global = true, default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Watch the cameras live and publish alerts to MQTT until Ctrl-C.
    ///
    /// Files play at their own frame rate, as a camera would deliver them; if
    /// processing falls behind, stale frames are dropped (and counted), never
    /// queued. Without `[alerts] broker` an embedded MQTT broker is started on
    /// `[alerts] embedded_listen` (default 127.0.0.1:1883).
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Also append every event as a JSON line to this file.
        #[arg(long)]
        events: Option<String>,
    },
    /// Process recorded files as fast as the machine allows, every frame.
    ///
    /// All rule timing uses media time, so a replay raises the same alerts as
    /// the live run would, deterministically. Events go to `--events` as JSON
    /// lines (default: stdout), and to MQTT if the config names a broker.
    Replay {
        #[arg(long, short)]
        config: PathBuf,
        /// JSON-lines output, `-` for stdout.
        #[arg(long, default_value = "-")]
        events: String,
        /// Do not publish to MQTT even if the config names a broker.
        #[arg(long)]
        no_mqtt: bool,
    },
    /// Validate a config: fields, files, zones, classes and the models' tensors.
    ///
    /// Prints every problem with its field path and line; exits non-zero if
    /// any is an error.
    Check {
        #[arg(long, short)]
        config: PathBuf,
        /// Skip loading the models in ONNX Runtime (faster, shallower).
        #[arg(long)]
        no_models: bool,
    },
    /// Measure decode, inference, per-stage and alert latency, fps and memory.
    ///
    /// Decode alone and inference alone are measured before and after a run of
    /// the config's cameras, which publishes to the config's broker or to an
    /// embedded one on a free port. Prints per-stage p50/p95/p99, end-to-end
    /// latency, capture→PUBACK alert latency, frames skipped by motion gating and
    /// dropped, per-camera fps and latency, resident memory, and the overhead and
    /// throughput ratios. See README "Performance".
    Bench {
        #[arg(long, short)]
        config: PathBuf,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Play files at their own frame rate, as live cameras (default: as fast
        /// as possible, every frame).
        #[arg(long)]
        realtime: bool,
        /// Replay the files in a loop for this many seconds (memory soak).
        #[arg(long, value_name = "SECONDS")]
        duration: Option<u64>,
    },
}

/// Decoded frames (0.5 to 6 MB each) are allocated and freed every frame from
/// many GStreamer threads. glibc raises its mmap threshold after the first such
/// free, so later frames land in per-thread arenas that fragment and keep growing.
/// A fixed threshold keeps big buffers in mmap (returned to the system on free)
/// and two arenas bound the rest. Measured, 8 cameras at 5 fps: RSS after 10 min
/// 420 MB (+46% from one minute in) without, 250 MB (+5%) with.
fn bound_malloc_growth() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator tunables; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    // Pages freed inside the heap stay resident until trimmed; a trim every 30 s
    // costs a few milliseconds. Measured, 8 cameras for 10 min: RSS growth from
    // one minute in +5.1% without, +3.1% with (and slowing).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    let _ = std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(|| {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(30));
                // SAFETY: malloc_trim only returns free memory to the system.
                unsafe {
                    libc::malloc_trim(0);
                }
            }
        });
}

fn main() -> std::process::ExitCode {
    bound_malloc_growth();
    let cli = Cli::parse();
    // The embedded broker logs every client disconnect as an error; its real
    // failures (the port taken) are reported by vigil itself.
    let filter = std::env::var("RUST_LOG")
        .unwrap_or_else(|_| format!("{},rumqttd=off,rumqttc=warn", cli.log));
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    match execute(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn execute(command: Command) -> Result<std::process::ExitCode> {
    match command {
        Command::Check { config, no_models } => {
            let loaded = LoadedConfig::load(&config)?;
            let problems = loaded.check(!no_models);
            for p in &problems {
                println!("{}: {p}", config.display());
            }
            let errors = problems.iter().filter(|p| !p.warning).count();
            if errors > 0 {
                println!("{}: {errors} error(s)", config.display());
                return Ok(std::process::ExitCode::FAILURE);
            }
            println!(
                "{}: ok ({} camera(s), {} detector(s))",
                config.display(),
                loaded.config.cameras.len(),
                loaded.config.detectors.len()
            );
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Run { config, events } => {
            let loaded = LoadedConfig::load_checked(&config, false)?;
            let stop = Arc::new(AtomicBool::new(false));
            {
                let stop = stop.clone();
                ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
                    .context("installing the Ctrl-C handler")?;
            }
            let options = RunOptions {
                pacing: Pacing::Live,
                events_file: events,
                embedded_broker: true,
                mqtt: true,
                progress: false,
                stop,
                run_until: None,
            };
            let report = app::run(&loaded, &options)?;
            summarise(&report);
            Ok(exit_code(&report))
        }
        Command::Replay {
            config,
            events,
            no_mqtt,
        } => {
            let loaded = LoadedConfig::load_checked(&config, false)?;
            let options = RunOptions {
                pacing: Pacing::AsFastAsPossible,
                events_file: Some(events),
                embedded_broker: false,
                mqtt: !no_mqtt && loaded.config.alerts.broker.is_some(),
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
                stop: Arc::new(AtomicBool::new(false)),
                run_until: None,
            };
            let report = app::run(&loaded, &options)?;
            summarise(&report);
            Ok(exit_code(&report))
        }
        Command::Bench {
            config,
            json,
            realtime,
            duration,
        } => {
            let loaded = LoadedConfig::load_checked(&config, false)?;
            let options = vigil::bench::BenchOptions {
                realtime,
                duration: duration.map(std::time::Duration::from_secs),
            };
            let report = vigil::bench::run(&loaded, &options)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
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

fn exit_code(report: &app::RunReport) -> std::process::ExitCode {
    if report.failed().is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
