//! `vigil eval`: a detector measured on labelled images as a camera would run it,
//! or a config's alerts checked against truth files (`--alerts`).

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use vigil::config::LoadedConfig;

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
#[derive(clap::Args)]
pub struct EvalArgs {
    #[arg(long, short, required_unless_present = "alerts")]
    pub config: Option<PathBuf>,
    /// The labelled set: a YOLO folder or data.yaml, or a COCO .json.
    #[arg(long, required_unless_present = "alerts")]
    pub data: Option<PathBuf>,
    /// Alert truth files to check instead (repeatable); see config/truth/.
    #[arg(long, conflicts_with_all = ["config", "data"])]
    pub alerts: Vec<PathBuf>,
    /// YOLO split folders to use (repeatable; default: all that exist).
    #[arg(long = "split")]
    pub splits: Vec<String>,
    /// Which detector of the config (default: the only one).
    #[arg(long)]
    pub detector: Option<String>,
    /// DATASET=MODEL class mapping, repeatable (e.g. `Fire=fire`); `NAME=`
    /// drops a class.
    #[arg(long = "map", value_parser = parse_pair::<String>)]
    pub map: Vec<(String, String)>,
    /// CLASS=SCORE operating floor, repeatable (default: from the config).
    #[arg(long = "floor", value_parser = parse_pair::<f32>)]
    pub floors: Vec<(String, f32)>,
    /// Report the threshold that reaches this precision.
    #[arg(long, default_value_t = 0.9)]
    pub precision: f64,
    /// Resize every image to WxH before detection (e.g. undo a square stretch).
    #[arg(long, value_parser = parse_size)]
    pub resize: Option<(u32, u32)>,
    /// Run the detector on tiles, exactly as a camera's `tiles` setting does, e.g.
    /// `--tiles '{ cols = 2, rows = 1, overlap = 0.2 }'`.
    #[arg(long, value_parser = parse_tiles, value_name = "TOML")]
    pub tiles: Option<vigil::detect::Tiles>,
    /// Evaluate all source videos, or one of two halves that share none.
    #[arg(long, value_enum, default_value = "all")]
    pub part: vigil::eval::Part,
    /// Detections below this score are not kept (the end of the curve).
    #[arg(long, default_value_t = 0.01)]
    pub min_score: f32,
    /// Directory for report.json, pr.svg, coco_truth.json, coco_detections.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the JSON report instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn eval(args: EvalArgs) -> Result<ExitCode> {
    let EvalArgs {
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
        tiles,
        min_score,
        out,
        json,
    } = args;
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
        tiles,
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
    Ok(ExitCode::SUCCESS)
}

/// `vigil eval --alerts`: one report per truth file; failure if any missed or
/// raised a false alarm.
fn alert_eval(truths: &[PathBuf], json: bool) -> Result<ExitCode> {
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
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
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

/// `{ cols = 2, rows = 1, overlap = 0.2 }`: the camera's `tiles` value, checked
/// the same way.
fn parse_tiles(text: &str) -> Result<vigil::detect::Tiles, String> {
    #[derive(serde::Deserialize)]
    struct Value {
        tiles: vigil::detect::Tiles,
    }
    let tiles = toml::from_str::<Value>(&format!("tiles = {text}"))
        .map_err(|e| {
            format!(
                "expected {{ cols = 2, rows = 1, overlap = 0.2 }}: {}",
                e.message()
            )
        })?
        .tiles;
    match tiles.problem() {
        Some(problem) => Err(problem),
        None => Ok(tiles),
    }
}
