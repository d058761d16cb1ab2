//! `vigil eval`: how good is a detector on labelled images, in the numbers an
//! integrator tunes by.
//!
//! Reads a labelled set ([`dataset`]), runs one of the config's detectors on every
//! image exactly as a camera would (same preprocessing, decoder and NMS, with its
//! floor lowered so the whole precision–recall curve is seen), and scores the
//! boxes ([`metrics`]) per class at box level and at image level, where a frame
//! "has fire" if any box says so, which is what an alarm acts on. [`report`]
//! prints the table and writes the JSON, the plot and COCO files for other tools.

pub mod alerts;
pub mod dataset;
pub mod metrics;
pub mod report;

use crate::config::LoadedConfig;
use crate::detect::{DetectScratch, Detection, Detector, ModelError};
use crate::geometry::BBox;
use crate::rules::RuleConfig;
use dataset::{DatasetError, LabelledSet};
use indicatif::{ProgressBar, ProgressStyle};
use metrics::{Prediction, Truth};
use std::collections::BTreeMap;
use std::path::PathBuf;

pub use report::EvalReport;

/// COCO keeps at most this many boxes per image and class; so does `vigil eval`,
/// so its AP and pycocotools' agree.
pub const MAX_PER_IMAGE: usize = 100;

/// Which source groups to evaluate (see [`dataset::source_group`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    All,
    /// Every other source group (sorted by name), starting with the first: pick
    /// thresholds here ...
    Tune,
    /// ... and confirm them on the rest, which shares no video with `tune`.
    Holdout,
}

impl Part {
    pub fn name(self) -> &'static str {
        match self {
            Part::All => "all",
            Part::Tune => "tune",
            Part::Holdout => "holdout",
        }
    }
}

#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub data: PathBuf,
    pub splits: Vec<String>,
    /// Detector name in the config; `None` when the config has exactly one.
    pub detector: Option<String>,
    /// Dataset class → model class; unlisted classes match by name, ignoring case.
    pub class_map: BTreeMap<String, String>,
    /// Model class → operating floor, overriding the config's.
    pub floors: BTreeMap<String, f32>,
    /// Report the threshold that reaches this precision.
    pub precision: f64,
    /// Resize every image to this size first (e.g. back to the camera's aspect).
    pub resize: Option<(u32, u32)>,
    pub part: Part,
    /// Run the detector on tiles, as a camera's `tiles` does.
    pub tiles: Option<crate::detect::Tiles>,
    /// Score below which detections are not kept at all (the curve's end).
    pub min_score: f32,
    pub progress: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("{path}: cannot decode image")]
    Image {
        path: PathBuf,
        #[source]
        source: crate::source::SourceError,
    },
    #[error("detector {detector:?}")]
    Model {
        detector: String,
        #[source]
        source: ModelError,
    },
    #[error("{0}")]
    Usage(String),
}

/// Runs the evaluation; the caller prints or writes the report.
pub fn run(loaded: &LoadedConfig, options: &EvalOptions) -> Result<EvalReport, EvalError> {
    let config = &loaded.config;
    let detector_config = match &options.detector {
        Some(name) => config.detectors.iter().find(|d| &d.name == name),
        None if config.detectors.len() == 1 => config.detectors.first(),
        None => None,
    }
    .ok_or_else(|| {
        let names: Vec<&str> = config.detectors.iter().map(|d| d.name.as_str()).collect();
        EvalError::Usage(format!(
            "{}: choose a detector with --detector ({})",
            loaded.path.display(),
            names.join(", ")
        ))
    })?;
    let model_classes = detector_config
        .classes
        .resolve()
        .map_err(EvalError::Usage)?;

    let mut set = dataset::load(&options.data, &options.splits)?;
    let groups = select_part(&mut set, options.part);
    let mapping = map_classes(&set, &model_classes, &options.class_map)?;

    // Every model class a dataset class maps to is evaluated, in model order.
    let mut evaluated: Vec<usize> = mapping.iter().flatten().copied().collect();
    evaluated.sort_unstable();
    evaluated.dedup();
    let eval_index = |model_class: usize| evaluated.iter().position(|&c| c == model_class);
    let class_names: Vec<String> = evaluated
        .iter()
        .map(|&c| model_classes[c].clone())
        .collect();
    let floors: Vec<f32> = class_names
        .iter()
        .map(|name| floor_for(loaded, detector_config, name, &options.floors))
        .collect();

    let mut lowered = detector_config.clone();
    lowered.score_threshold = options.min_score;
    lowered.class_thresholds.clear();
    let model_path = loaded.model_path(detector_config);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let detector =
        Detector::load(&lowered, &model_path, 1, threads).map_err(|source| EvalError::Model {
            detector: detector_config.name.clone(),
            source,
        })?;

    crate::source::init().map_err(|source| EvalError::Image {
        path: options.data.clone(),
        source,
    })?;
    // The detector as a camera would use it, tiles included.
    let views = crate::camera::DetectorUse {
        name: detector_config.name.clone(),
        fps: None,
        roi: None,
        tiles: options.tiles,
        regions: None,
    }
    .views(&detector);
    let mut tiles = crate::camera::TileScratch::default();
    let bar = if options.progress {
        ProgressBar::new(set.images.len() as u64).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} images  {per_sec}  eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
    } else {
        ProgressBar::hidden()
    };
    let mut truths = Vec::new();
    let mut predictions = Vec::new();
    let mut sizes = Vec::new();
    let mut dropped_boxes: BTreeMap<String, usize> = BTreeMap::new();
    let mut scratch = DetectScratch::default();
    let mut found: Vec<Detection> = Vec::new();
    let mut inference_ms = Vec::new();
    for (index, labelled) in set.images.iter().enumerate() {
        // The camera path itself fits the picture: a one-frame camera.
        let frame = crate::source::still_frame(&labelled.path, options.resize, &views).map_err(
            |source| EvalError::Image {
                path: labelled.path.clone(),
                source,
            },
        )?;
        let (w, h) = (frame.width, frame.height);
        sizes.push((w, h));
        for b in &labelled.boxes {
            match mapping[b.class].and_then(eval_index) {
                Some(class) => truths.push(Truth {
                    image: index,
                    class,
                    bbox: BBox {
                        x1: b.corners[0] * w as f32,
                        y1: b.corners[1] * h as f32,
                        x2: b.corners[2] * w as f32,
                        y2: b.corners[3] * h as f32,
                    },
                }),
                None => {
                    *dropped_boxes
                        .entry(set.classes[b.class].clone())
                        .or_default() += 1
                }
            }
        }
        found.clear();
        let timings = crate::camera::detect_views(
            &detector,
            &mut scratch,
            &mut tiles,
            &frame.views,
            &mut found,
        )
        .ok_or_else(|| EvalError::Image {
            path: labelled.path.clone(),
            source: crate::source::SourceError::Stream {
                uri: labelled.path.display().to_string(),
                reason: "the fitted picture could not be mapped".into(),
            },
        })?
        .map_err(|source| EvalError::Model {
            detector: detector_config.name.clone(),
            source,
        })?;
        inference_ms.push(timings.inference.as_secs_f64() * 1e3);
        let mut per_class: BTreeMap<usize, Vec<Prediction>> = BTreeMap::new();
        for d in &found {
            if let Some(class) = eval_index(d.class_id as usize) {
                per_class.entry(class).or_default().push(Prediction {
                    image: index,
                    class,
                    score: d.score,
                    bbox: d.bbox,
                });
            }
        }
        for (_, mut boxes) in per_class {
            boxes.sort_by(|a, b| b.score.total_cmp(&a.score));
            boxes.truncate(MAX_PER_IMAGE);
            predictions.extend(boxes);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();

    Ok(report::build(report::Inputs {
        loaded,
        options,
        detector: &detector_config.name,
        set: &set,
        groups,
        class_names,
        floors,
        truths,
        predictions,
        sizes,
        dropped_boxes,
        inference_ms,
    }))
}

/// Keeps the images of the requested part; returns the groups kept.
fn select_part(set: &mut LabelledSet, part: Part) -> Vec<String> {
    let mut groups: Vec<String> = set.images.iter().map(|i| i.group.clone()).collect();
    groups.sort();
    groups.dedup();
    let kept: Vec<String> = groups
        .into_iter()
        .enumerate()
        .filter(|(i, _)| match part {
            Part::All => true,
            Part::Tune => i % 2 == 0,
            Part::Holdout => i % 2 == 1,
        })
        .map(|(_, g)| g)
        .collect();
    set.images.retain(|i| kept.binary_search(&i.group).is_ok());
    kept
}

/// For each dataset class, the model class it is scored as (or `None`: dropped).
fn map_classes(
    set: &LabelledSet,
    model_classes: &[String],
    explicit: &BTreeMap<String, String>,
) -> Result<Vec<Option<usize>>, EvalError> {
    for (from, to) in explicit {
        if !set.classes.contains(from) {
            return Err(EvalError::Usage(format!(
                "--map {from}={to}: the dataset has no class {from:?} (it has {})",
                set.classes.join(", ")
            )));
        }
        if !to.is_empty() && !model_classes.contains(to) {
            return Err(EvalError::Usage(format!(
                "--map {from}={to}: the detector has no class {to:?}"
            )));
        }
    }
    let mapping: Vec<Option<usize>> = set
        .classes
        .iter()
        .map(|name| match explicit.get(name) {
            Some(to) => model_classes.iter().position(|c| c == to),
            None => model_classes
                .iter()
                .position(|c| c.eq_ignore_ascii_case(name)),
        })
        .collect();
    if mapping.iter().all(Option::is_none) {
        return Err(EvalError::Usage(format!(
            "no dataset class ({}) matches a detector class; map them with --map DATASET=MODEL",
            set.classes.join(", ")
        )));
    }
    Ok(mapping)
}

/// The floor a class is judged at: `--floor`, else the config's fire/smoke rule
/// floor for it, else the detector's own threshold.
fn floor_for(
    loaded: &LoadedConfig,
    detector: &crate::detect::DetectorConfig,
    class: &str,
    overrides: &BTreeMap<String, f32>,
) -> f32 {
    if let Some(f) = overrides.get(class) {
        return *f;
    }
    let rule_floor = loaded
        .config
        .cameras
        .iter()
        .filter(|c| c.detectors.iter().any(|d| d.name == detector.name))
        .flat_map(|c| &c.rules)
        .find_map(|r| match r {
            RuleConfig::FireSmoke(f) if f.classes.iter().any(|c| c == class) => {
                Some(f.floor(class))
            }
            _ => None,
        });
    rule_floor.unwrap_or_else(|| {
        *detector
            .class_thresholds
            .get(class)
            .unwrap_or(&detector.score_threshold)
    })
}
