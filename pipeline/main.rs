//! The `vigil` command line: run, replay, check, bench; the police tools over the
//! evidence store (alerts, evidence, keygen).

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::io::Write as _;
use std::path::PathBuf;
use vigil::app::{self, RunOptions};
use vigil::config::LoadedConfig;
use vigil::source::{Pacing, SourceEnd};
use vigil::store::{AlertFilter, Store};

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
    /// `[alerts] embedded_listen` (default 127.0.0.1:1883); subscribers log in as
    /// `reader` with the password in `<store dir>/mqtt-reader.password`.
    ///
    /// Cameras that fail or stall are reopened by themselves; alerts wait in the
    /// store's outbox while the broker is down. Exit status: 0 all delivered,
    /// 1 a camera failed, 75 messages still queued (sent at the next start), 130
    /// after a second Ctrl-C.
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
        /// Write the replay with what vigil saw drawn on it: detections (class,
        /// score), tracks (id, trail, dwell in each zone), zones and lines, frames
        /// motion gating skipped, alerts as they open and end. H.264 MP4 that plays
        /// in a browser: a `.mp4` file for one camera, else a directory with
        /// `<camera>.mp4` each.
        #[arg(long, value_name = "OUT")]
        annotate: Option<PathBuf>,
        /// Write every processed frame's detections and tracks, with media time,
        /// as JSON lines (all cameras in one file, each line names its camera).
        #[arg(long, value_name = "FILE.jsonl")]
        detections: Option<PathBuf>,
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
        /// Turn evidence recording (store, snapshots, clips) off for this run,
        /// to measure what recording costs.
        #[arg(long)]
        no_record: bool,
    },
    /// Search and annotate stored alerts: list, show, tag, hold.
    ///
    /// Alerts live in the evidence store (`[storage] dir` of the config), with
    /// their events, snapshots and clips. Works while vigil runs.
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// Check and export evidence: verify the signed manifest, export a bundle.
    Evidence {
        #[command(subcommand)]
        command: EvidenceCommand,
    },
    /// Measure a detector on labelled images: precision, recall, AP@0.5 per class.
    ///
    /// Takes a YOLO dataset (its folder or data.yaml: `<split>/images`,
    /// `<split>/labels`) or a COCO JSON file, runs the config's detector on every
    /// image as a camera would, and reports per class, at box level (IoU ≥ 0.5)
    /// and frame level (a frame has fire if any box does): precision and recall at
    /// the floor (the config's fire/smoke `min_score`, else the detector's
    /// threshold, or --floor), AP@0.5 (all-point and COCO 101-point), the threshold
    /// that reaches --precision, and the class confusion. Dataset classes match
    /// model classes by name (ignoring case) unless --map says otherwise; the rest
    /// are dropped and their frames count as negatives. --out writes report.json,
    /// pr.svg and the truth and detections as COCO JSON.
    ///
    /// Example: vigil eval -c config/fire-evaluation.toml --data
    /// ../shared/datasets/fire-8 --resize 640x480 --part tune --out eval/
    ///
    /// With --alerts TRUTH.toml instead: replays the truth file's config and
    /// compares the alerts raised with the expected ones (camera, kind, start ±
    /// tolerance): hits, misses, false alarms, start error. Exits 1 on any miss
    /// or false alarm. Example: vigil eval --alerts config/truth/one-by-one.toml
    Eval {
        #[arg(long, short, required_unless_present = "alerts")]
        config: Option<PathBuf>,
        /// The labelled set: a YOLO folder or data.yaml, or a COCO .json.
        #[arg(long, required_unless_present = "alerts")]
        data: Option<PathBuf>,
        /// Alert truth files to check instead (repeatable); see config/truth/.
        #[arg(long, conflicts_with_all = ["config", "data"])]
        alerts: Vec<PathBuf>,
        /// YOLO split folders to use (repeatable; default: all that exist).
        #[arg(long = "split")]
        splits: Vec<String>,
        /// Which detector of the config (default: the only one).
        #[arg(long)]
        detector: Option<String>,
        /// DATASET=MODEL class mapping, repeatable (e.g. `Fire=fire`); `NAME=`
        /// drops a class.
        #[arg(long = "map", value_parser = parse_pair::<String>)]
        map: Vec<(String, String)>,
        /// CLASS=SCORE operating floor, repeatable (default: from the config).
        #[arg(long = "floor", value_parser = parse_pair::<f32>)]
        floors: Vec<(String, f32)>,
        /// Report the threshold that reaches this precision.
        #[arg(long, default_value_t = 0.9)]
        precision: f64,
        /// Resize every image to WxH before detection (e.g. undo a square stretch).
        #[arg(long, value_parser = parse_size)]
        resize: Option<(u32, u32)>,
        /// Evaluate all source videos, or one of two halves that share none.
        #[arg(long, value_enum, default_value = "all")]
        part: vigil::eval::Part,
        /// Detections below this score are not kept (the end of the curve).
        #[arg(long, default_value_t = 0.01)]
        min_score: f32,
        /// Directory for report.json, pr.svg, coco_truth.json, coco_detections.json.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the JSON report instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Print the config's JSON Schema, for editors that complete and check TOML.
    ///
    /// Save it (e.g. `vigil schema > vigil.schema.json`) and put
    /// `#:schema ./vigil.schema.json` on the first line of a config: Taplo and
    /// VS Code's Even Better TOML then complete keys and flag misspelt ones.
    Schema,
    /// Create an ed25519 key that signs the evidence manifest.
    ///
    /// Writes the private key (mode 0600) and prints the public key: give the
    /// public key to the police, who pin it with `vigil evidence verify
    /// --public-key`. Point `[storage] signing_key` at the file.
    Keygen {
        /// Where to write the private key; refuses to overwrite.
        #[arg(long)]
        out: PathBuf,
    },
    /// Console users: who may log in to the web console, and as what.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user to `[console] users`, or reset an existing user's password
    /// and role. Prompts for the password (twice) on a terminal; otherwise
    /// reads it from the first line of stdin.
    ///
    /// Roles: `operator` (alert wall, acknowledge, cameras), `police` (also
    /// search, tags, holds, evidence export), `admin` (everything).
    Add {
        /// Login name: letters, digits, '.', '_', '-'.
        name: String,
        #[arg(long, value_enum)]
        role: vigil::console::Role,
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum AlertsCommand {
    /// Alerts, newest first, filtered; a table, or JSON lines with --json.
    List {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        camera: Option<String>,
        /// loitering, battery_cart or fire_smoke.
        #[arg(long)]
        kind: Option<String>,
        /// Started at or after: `2026-11-28`, `2026-11-28T14:30`, an RFC 3339
        /// time, or a span back from now such as `2h`, `3d` (local time zone).
        #[arg(long)]
        since: Option<String>,
        /// Started before (same forms as --since).
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        /// open or ended.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 200)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// One alert: its events, evidence files with their hashes, tags, hold.
    Show {
        #[arg(long, short)]
        config: PathBuf,
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Tag an alert (e.g. a case number); `--remove` takes a tag off.
    Tag {
        #[arg(long, short)]
        config: PathBuf,
        id: String,
        text: String,
        /// Who tags (default: the login name).
        #[arg(long)]
        by: Option<String>,
        #[arg(long)]
        remove: bool,
    },
    /// Place a legal hold: retention never deletes this alert's evidence.
    Hold {
        #[arg(long, short)]
        config: PathBuf,
        id: String,
        #[arg(long, default_value = "legal hold")]
        reason: String,
        #[arg(long)]
        by: Option<String>,
        /// Lift the hold instead.
        #[arg(long)]
        release: bool,
    },
}

#[derive(Subcommand)]
enum EvidenceCommand {
    /// Check files against the manifest, its hash chain and its signatures.
    ///
    /// Names exactly what fails: a changed file, a missing file, a deleted or
    /// reordered manifest entry, a bad signature. Files removed by retention are
    /// recorded as deletions and pass. Exits non-zero on any failure.
    Verify {
        /// The store to check (with ALERT_ID: only that alert's files).
        #[arg(long, short, required_unless_present = "bundle")]
        config: Option<PathBuf>,
        alert_id: Option<String>,
        /// Check an exported bundle instead of the store.
        #[arg(long, conflicts_with = "config")]
        bundle: Option<PathBuf>,
        /// The public key you trust (hex, from `vigil keygen`); default: the
        /// store's `signing.pub` or the bundle's `public_key.txt`.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Write one alert's evidence bundle: clip(s), snapshots, events, manifest
    /// entries, public key, SHA256SUMS and a README on how to check it.
    Export {
        #[arg(long, short)]
        config: PathBuf,
        id: String,
        #[arg(long)]
        out: PathBuf,
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

/// `vigil eval --alerts`: one report per truth file; failure if any missed or
/// raised a false alarm.
fn alert_eval(truths: &[PathBuf], json: bool) -> Result<std::process::ExitCode> {
    let mut passed = true;
    // Each replay runs in its config's folder: fix the paths first.
    let truths: Vec<PathBuf> = truths
        .iter()
        .map(|t| std::path::absolute(t).with_context(|| t.display().to_string()))
        .collect::<Result<_>>()?;
    for truth in &truths {
        let report = vigil::eval::alerts::evaluate(truth)?;
        passed &= report.passed();
        if json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print!("{}", report.table());
        }
    }
    Ok(if passed {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

/// `KEY=VALUE` for --map and --floor.
fn parse_pair<T: std::str::FromStr>(text: &str) -> Result<(String, T), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))?;
    let value = value
        .parse()
        .map_err(|_| format!("{value:?} is not a valid value for {key}"))?;
    Ok((key.to_string(), value))
}

/// `WxH`, e.g. `640x480`.
fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let parsed = text
        .split_once(['x', 'X'])
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .filter(|&(w, h): &(u32, u32)| w > 0 && h > 0 && w <= 8192 && h <= 8192);
    parsed.ok_or_else(|| format!("expected WxH such as 640x480, got {text:?}"))
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
        Command::Alerts { command } => alerts_command(command),
        Command::Evidence { command } => evidence_command(command),
        Command::Eval {
            alerts,
            config,
            data,
            splits,
            detector,
            map,
            floors,
            precision,
            resize,
            part,
            min_score,
            out,
            json,
        } => {
            if !alerts.is_empty() {
                return alert_eval(&alerts, json);
            }
            let (Some(config), Some(data)) = (config, data) else {
                anyhow::bail!("--config and --data are required (or --alerts)");
            };
            let loaded = LoadedConfig::load(&config)?;
            let options = vigil::eval::EvalOptions {
                data,
                splits,
                detector,
                class_map: map.into_iter().collect(),
                floors: floors.into_iter().collect(),
                precision,
                resize,
                part,
                min_score,
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            };
            let report = vigil::eval::run(&loaded, &options)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
            if let Some(dir) = out {
                for file in report
                    .write(&dir)
                    .with_context(|| format!("writing the report to {}", dir.display()))?
                {
                    eprintln!("wrote {}", file.display());
                }
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Schema => {
            // `vigil schema | head` must not panic on the closed pipe.
            let _ = writeln!(std::io::stdout(), "{}", vigil::config::json_schema());
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::User(UserCommand::Add { name, role, config }) => {
            let loaded = LoadedConfig::load(&config)?;
            let console = loaded.config.console.clone().ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: no [console] section; add one (see config/README.md) to use the console",
                    config.display()
                )
            })?;
            let path = console.users_path(&loaded.base_dir());
            let password = if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                let first = rpassword::prompt_password(format!("password for {name}: "))?;
                let again = rpassword::prompt_password("again: ")?;
                anyhow::ensure!(first == again, "the passwords differ; nothing changed");
                first
            } else {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                line.trim_end_matches(['\r', '\n']).to_string()
            };
            let existed = vigil::console::users::add(&path, &name, role, &password)?;
            eprintln!(
                "{} {name} ({}) in {}",
                if existed { "updated" } else { "added" },
                role.as_str(),
                path.display()
            );
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Keygen { out } => {
            let key = vigil::store::generate_key(&out)?;
            eprintln!(
                "private key written to {} (mode 0600); set [storage] signing_key to it",
                out.display()
            );
            println!("{}", vigil::store::public_hex(&key.verifying_key()));
            Ok(std::process::ExitCode::SUCCESS)
        }
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
            let shutdown = shutdown_on_signals()?;
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
            };
            let report = app::run(&loaded, &options)?;
            summarise(&report);
            Ok(exit_code(&report))
        }
        Command::Replay {
            config,
            events,
            no_mqtt,
            annotate,
            detections,
        } => {
            let loaded = LoadedConfig::load_checked(&config, false)?;
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
                },
                console: app::ConsoleUse::Off,
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
            no_record,
        } => {
            let mut loaded = LoadedConfig::load_checked(&config, false)?;
            if no_record {
                loaded.config.storage.enabled = false;
            }
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

fn open_store(config: &std::path::Path) -> Result<Store> {
    let loaded = LoadedConfig::load(config)?;
    Ok(Store::open_reader(
        &loaded.config.storage,
        &loaded.base_dir(),
    )?)
}

fn who(by: Option<String>) -> String {
    by.or_else(|| std::env::var("SUDO_USER").ok())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// `2026-11-28`, `2026-11-28T14:30[:00]`, RFC 3339, or `90m`/`2h`/`3d` ago → Unix ms.
fn parse_time(text: &str) -> Result<i64> {
    let t = text.trim();
    if let Some((n, unit)) = t
        .find(|c: char| !c.is_ascii_digit())
        .filter(|&i| i > 0)
        .map(|i| t.split_at(i))
        && let Ok(n) = n.parse::<i64>()
    {
        let secs = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => 0,
        };
        if secs > 0 {
            return Ok(jiff::Timestamp::now().as_millisecond() - n * secs * 1000);
        }
    }
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    let tz = jiff::tz::TimeZone::system();
    if let Ok(dt) = t.parse::<jiff::civil::DateTime>() {
        return Ok(dt.to_zoned(tz)?.timestamp().as_millisecond());
    }
    if let Ok(d) = t.parse::<jiff::civil::Date>() {
        return Ok(d.to_zoned(tz)?.timestamp().as_millisecond());
    }
    anyhow::bail!("time {text:?}: use 2026-11-28, 2026-11-28T14:30, an RFC 3339 time, or 2h / 3d")
}

fn local(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(jiff::tz::TimeZone::system())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| ms.to_string())
}

fn alerts_command(command: AlertsCommand) -> Result<std::process::ExitCode> {
    match command {
        AlertsCommand::List {
            config,
            camera,
            kind,
            since,
            until,
            tag,
            state,
            limit,
            json,
        } => {
            let store = open_store(&config)?;
            let filter = AlertFilter {
                camera,
                kind,
                since_ms: since.as_deref().map(parse_time).transpose()?,
                until_ms: until.as_deref().map(parse_time).transpose()?,
                tag,
                state,
                limit: Some(limit),
                before: None,
            };
            let alerts = store.alerts(&filter)?;
            if json {
                for a in &alerts {
                    println!("{}", serde_json::to_string(a)?);
                }
                return Ok(std::process::ExitCode::SUCCESS);
            }
            println!(
                "{:<28} {:<10} {:<13} {:<8} {:<19} {:>7}  {:<6} tags",
                "id", "camera", "kind", "severity", "started", "length", "state"
            );
            for a in &alerts {
                let length = a
                    .end_media_s
                    .map(|e| format!("{:.0} s", e - a.start_media_s))
                    .unwrap_or_else(|| "-".into());
                let mut tags = a.tags.join(",");
                if a.held {
                    tags = format!("[HOLD] {tags}");
                }
                println!(
                    "{:<28} {:<10} {:<13} {:<8} {:<19} {:>7}  {:<6} {tags}",
                    a.id,
                    a.camera,
                    a.kind,
                    a.severity,
                    local(a.start_wall_ms),
                    length,
                    a.state
                );
            }
            eprintln!("{} alert(s)", alerts.len());
            Ok(std::process::ExitCode::SUCCESS)
        }
        AlertsCommand::Show { config, id, json } => {
            let store = open_store(&config)?;
            let d = store.alert(&id)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
                return Ok(std::process::ExitCode::SUCCESS);
            }
            let a = &d.alert;
            println!("alert    {}", a.id);
            println!(
                "camera   {}   kind {} ({})   rule {}",
                a.camera, a.kind, a.severity, a.rule
            );
            println!("what     {}", a.summary);
            if let Some(z) = a.zone.as_ref().or(a.line.as_ref()) {
                println!("where    {z}");
            }
            println!(
                "started  {} (media {:.1} s)",
                local(a.start_wall_ms),
                a.start_media_s
            );
            if let (Some(w), Some(m)) = (a.end_wall_ms, a.end_media_s) {
                println!("ended    {} (media {m:.1} s)", local(w));
            }
            println!("state    {}", a.state);
            println!("events");
            for e in &d.events {
                println!(
                    "  {:<6} score {:.2}",
                    e["type"].as_str().unwrap_or("?"),
                    e["after"]["score"].as_f64().unwrap_or(0.0)
                );
            }
            println!("evidence ({})", store.dir().display());
            for f in &d.evidence {
                let deleted = f
                    .deleted_ms
                    .map(|t| format!("  DELETED by retention {}", local(t as i64)))
                    .unwrap_or_default();
                println!(
                    "  {:<9} {}  {} bytes  sha256 {}{deleted}",
                    format!("{:?}", f.kind).to_lowercase(),
                    f.path,
                    f.bytes,
                    f.sha256
                );
            }
            for t in &d.tags {
                println!("tag      {} (by {}, {})", t.text, t.who, local(t.at_ms));
            }
            if let Some(h) = &d.hold {
                println!("HOLD     {} (by {}, {})", h.reason, h.who, local(h.at_ms));
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        AlertsCommand::Tag {
            config,
            id,
            text,
            by,
            remove,
        } => {
            let store = open_store(&config)?;
            if remove {
                if !store.untag(&id, &text)? {
                    eprintln!("alert {id} had no tag {text:?}");
                }
            } else {
                store.tag(&id, &text, &who(by))?;
            }
            println!("{id}: tags {:?}", store.alert(&id)?.alert.tags);
            Ok(std::process::ExitCode::SUCCESS)
        }
        AlertsCommand::Hold {
            config,
            id,
            reason,
            by,
            release,
        } => {
            let store = open_store(&config)?;
            if release {
                store.release(&id)?;
                println!("{id}: hold lifted; retention applies again");
            } else {
                store.hold(&id, &who(by), &reason)?;
                println!("{id}: on hold ({reason}); retention will keep its evidence");
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

fn evidence_command(command: EvidenceCommand) -> Result<std::process::ExitCode> {
    match command {
        EvidenceCommand::Verify {
            config,
            alert_id,
            bundle,
            public_key,
        } => {
            let pinned = public_key
                .as_deref()
                .map(vigil::store::parse_public)
                .transpose()?;
            let (what, v) = match (bundle, config) {
                (Some(bundle), _) => (
                    bundle.display().to_string(),
                    vigil::store::verify_bundle(&bundle, pinned.as_ref())?,
                ),
                (None, Some(config)) => {
                    let store = open_store(&config)?;
                    let key = match pinned {
                        Some(k) => k,
                        None => store.public_key()?,
                    };
                    let v = store.verify(alert_id.as_deref(), &key)?;
                    (store.dir().display().to_string(), v)
                }
                (None, None) => anyhow::bail!("give --config or --bundle"),
            };
            for f in &v.failures {
                println!("FAIL {f}");
            }
            if v.failures.is_empty() {
                println!(
                    "OK {what}: {} manifest entries, chain and signatures intact; {} file(s) match",
                    v.entries, v.files_ok
                );
                Ok(std::process::ExitCode::SUCCESS)
            } else {
                println!("{what}: {} failure(s)", v.failures.len());
                Ok(std::process::ExitCode::FAILURE)
            }
        }
        EvidenceCommand::Export { config, id, out } => {
            let store = open_store(&config)?;
            let files = store.export(&id, &out)?;
            println!(
                "{}: alert {id}, {files} evidence file(s), events, signed manifest entries, public key, SHA256SUMS, README.txt",
                out.display()
            );
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

/// Exit status of `run` and `replay`: 1 if a camera failed, 75 (EX_TEMPFAIL)
/// if alerts are still waiting in the outbox for the broker, else 0.
fn exit_code(report: &app::RunReport) -> std::process::ExitCode {
    if !report.failed().is_empty() {
        std::process::ExitCode::FAILURE
    } else if report.queued_at_exit > 0 {
        eprintln!(
            "{} MQTT message(s) are still queued for the broker; they are sent at the next start (exit status 75)",
            report.queued_at_exit
        );
        std::process::ExitCode::from(75)
    } else {
        std::process::ExitCode::SUCCESS
    }
}

/// SIGINT and SIGTERM (what a service manager sends) stop the cameras, end
/// their alerts and flush; a second signal exits at once.
fn shutdown_on_signals() -> anyhow::Result<vigil::shutdown::Shutdown> {
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
