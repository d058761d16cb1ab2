//! `vigil dataset export`: a compound's own footage as a YOLO folder to label,
//! pre-labelled by the config's detectors, for training a model on its cameras.

use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use vigil::app::{self, RunOptions};
use vigil::config::LoadedConfig;
use vigil::labelling::{Export, ExportOptions};
use vigil::source::Pacing;
use vigil::store::{AlertFilter, EvidenceKind, Store};

#[derive(clap::Subcommand)]
pub enum DatasetCommand {
    Export(ExportArgs),
}

/// Write frames of the config's cameras (or of stored alert clips) for
/// labelling: a YOLO folder with pre-labels, near-duplicates dropped.
///
/// Frames are chosen by time (`--every`), by motion (`--motion`), and/or where
/// the detectors saw chosen classes (`--classes`, down to `--floor`, so the
/// model's unsure sightings, the useful mistakes, are included). Each frame is
/// written at the camera's full resolution with the detectors' boxes at their
/// configured floors as labels, so a person only corrects them.
///
/// Out: `data.yaml`, `train/images/*.jpg`, `train/labels/*.txt`, and
/// `export.jsonl` (each frame's camera, source, media time and every
/// sighting with its score). Open the folder in Label Studio or CVAT (YOLO
/// import), correct, export as YOLO again, then train with
/// `models/train/train.py` and compare with `vigil eval` (README "Train a model
/// for your cameras").
#[derive(clap::Args)]
pub struct ExportArgs {
    #[arg(long, short)]
    pub config: PathBuf,
    /// The folder to write (created; must not hold an export already).
    #[arg(long)]
    pub out: PathBuf,
    /// Take frames from the clips of stored alerts instead of the cameras.
    #[arg(long)]
    pub alerts: bool,
    /// Only these cameras (repeatable; default all).
    #[arg(long = "camera", value_name = "ID")]
    pub cameras: Vec<String>,
    /// With `--alerts`: only alerts of this kind (loitering, battery_cart,
    /// fire_smoke).
    #[arg(long)]
    pub kind: Option<String>,
    /// How long to watch live cameras (e.g. 600 for ten minutes); files play
    /// to their end.
    #[arg(long = "for", value_name = "SECONDS")]
    pub watch_s: Option<u64>,
    /// At most one frame per camera per this many seconds of video.
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub every: f64,
    /// Only frames where a detector saw one of these classes (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<String>,
    /// The lowest score that counts as seen for `--classes`; detectors run
    /// down to it. Labels still use the config's floors.
    #[arg(long, default_value_t = 0.1)]
    pub floor: f32,
    /// Only frames whose picture changed since the camera's previous candidate.
    #[arg(long)]
    pub motion: bool,
    /// Frames whose 64-bit difference hash is this close (in bits) to one
    /// already taken from the camera are near-duplicates and dropped.
    #[arg(long, default_value_t = 6)]
    pub similar: u32,
    /// At most this many frames per camera.
    #[arg(long, default_value_t = 1000)]
    pub max_frames: usize,
}

pub fn execute(command: DatasetCommand) -> Result<ExitCode> {
    match command {
        DatasetCommand::Export(args) => export(args),
    }
}

fn export(args: ExportArgs) -> Result<ExitCode> {
    if args.every.is_nan() || args.every < 0.0 {
        bail!("--every {}: give seconds, 0 or more", args.every);
    }
    if !(0.0..=1.0).contains(&args.floor) {
        bail!("--floor {}: give a score between 0 and 1", args.floor);
    }
    let mut loaded = LoadedConfig::load_checked(&args.config, false)?;
    for id in &args.cameras {
        if !loaded.config.cameras.iter().any(|c| c.id == *id) {
            bail!(
                "--camera {id}: {} has no such camera",
                args.config.display()
            );
        }
    }
    if !args.cameras.is_empty() {
        loaded
            .config
            .cameras
            .retain(|c| args.cameras.contains(&c.id));
    }
    // Labels keep the floors the cameras run at; the detectors run lower so a
    // frame with an unsure sighting of a chosen class can be picked.
    let mut label_floors: HashMap<String, f32> = HashMap::new();
    for d in &mut loaded.config.detectors {
        let classes = d
            .classes
            .resolve()
            .map_err(|e| anyhow::anyhow!("detector {}: {e}", d.name))?;
        for (class, floor) in classes.iter().zip(d.thresholds(&classes)) {
            let entry = label_floors.entry(class.clone()).or_insert(floor);
            *entry = entry.min(floor);
        }
        d.score_threshold = d.score_threshold.min(args.floor);
        for v in d.class_thresholds.values_mut() {
            *v = v.min(args.floor);
        }
    }
    // A tool run beside the live service: no evidence, no /metrics port.
    loaded.config.storage.enabled = false;
    loaded.config.metrics.listen = None;
    let export = Arc::new(Export::create(ExportOptions {
        out: args.out.clone(),
        every_s: args.every,
        classes: args.classes.clone(),
        floor: args.floor,
        motion: args.motion,
        similar_bits: args.similar,
        max_per_camera: args.max_frames,
        label_floors,
    })?);
    let shutdown = super::run::shutdown_on_signals()?;
    let base = loaded.base_dir();
    let is_live =
        |source: &str| vigil::source::SourceUri::resolve(source, &base).is_ok_and(|u| u.is_live());
    let run = |loaded: &LoadedConfig, source: Option<String>, until| -> Result<()> {
        let live = loaded.config.cameras.iter().any(|c| is_live(&c.source));
        let options = RunOptions {
            pacing: if live {
                Pacing::Live
            } else {
                Pacing::AsFastAsPossible
            },
            events_file: None,
            embedded_broker: false,
            mqtt: false,
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            shutdown: shutdown.clone(),
            run_until: until,
            inspect: vigil::inspect::InspectOptions {
                export: Some(export.clone()),
                export_source: source,
                ..Default::default()
            },
            console: app::ConsoleUse::Off,
            node: None,
        };
        app::run(loaded, &options)?;
        Ok(())
    };
    if args.alerts {
        let clips = alert_clips(&args, &loaded)?;
        eprintln!("{} stored alert clips to read", clips.len());
        for (n, (alert, camera, clip)) in clips.into_iter().enumerate() {
            if shutdown.is_triggered() {
                break;
            }
            let mut one = loaded.clone();
            one.config.cameras.retain(|c| c.id == camera);
            let Some(cam) = one.config.cameras.first_mut() else {
                eprintln!("alert {alert}: camera {camera} is no longer in the config; skipped");
                continue;
            };
            cam.source = clip.display().to_string();
            cam.repeat = false;
            eprintln!("[{}] alert {alert} ({camera}): {}", n + 1, clip.display());
            run(&one, Some(alert), None)?;
        }
    } else {
        let live: Vec<&str> = loaded
            .config
            .cameras
            .iter()
            .filter(|c| is_live(&c.source))
            .map(|c| c.id.as_str())
            .collect();
        let until = match (live.is_empty(), args.watch_s) {
            (true, _) => None,
            (false, Some(s)) => Some(std::time::Instant::now() + std::time::Duration::from_secs(s)),
            (false, None) => bail!(
                "cameras {} are live: say how long to watch them with --for SECONDS",
                live.join(", ")
            ),
        };
        run(&loaded, None, until)?;
    }
    let summary = export.finish()?;
    println!(
        "{}: {} frames, {} boxes ({}), {} near-duplicates dropped",
        args.out.display(),
        summary.frames,
        summary.boxes,
        if summary.classes.is_empty() {
            "no classes".to_string()
        } else {
            summary.classes.join(", ")
        },
        summary.near_duplicates
    );
    Ok(ExitCode::SUCCESS)
}

/// (alert id, camera, clip file) of every stored alert that still has a clip,
/// oldest first.
fn alert_clips(args: &ExportArgs, loaded: &LoadedConfig) -> Result<Vec<(String, String, PathBuf)>> {
    let store = Store::open_reader(&loaded.config.storage, &loaded.base_dir())
        .context("--alerts reads the config's store")?;
    let mut out = Vec::new();
    let cameras: Vec<Option<String>> = if args.cameras.is_empty() {
        vec![None]
    } else {
        args.cameras.iter().cloned().map(Some).collect()
    };
    for camera in cameras {
        let filter = AlertFilter {
            camera,
            kind: args.kind.clone(),
            ..Default::default()
        };
        for alert in store.alerts(&filter)?.into_iter().rev() {
            for file in store.evidence(&alert.id)? {
                if file.kind == EvidenceKind::Clip && file.deleted_ms.is_none() {
                    out.push((
                        alert.id.clone(),
                        alert.camera.clone(),
                        store.dir().join(&file.path),
                    ));
                }
            }
        }
    }
    Ok(out)
}
