//! Detect: one model, one job. Turns a frame's scaled view into [`Detection`]s in
//! frame pixels.
//!
//! The stage is split the way the work is: [`preprocess`] fills the model's input
//! tensor in one pass (letterbox, normalisation, HWC→CHW), [`session`] runs ONNX
//! Runtime from a small pool of sessions (`Session::run` needs `&mut`), and
//! [`decode`] turns raw output rows into boxes and applies per-class NMS. A new
//! model format is a new [`OutputFormat`] variant plus a decoder in `decode.rs`.

pub mod decode;
pub mod preprocess;
pub mod regions;
pub mod session;
pub mod tiles;

use crate::geometry::BBox;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use decode::OutputFormat;
pub use preprocess::{ChannelOrder, InputSpec, Letterbox, LetterboxPlacement, ScaledImage};
pub use session::{ModelError, ModelPool};
pub use tiles::Tiles;

/// One object the model found, in full-frame pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Index into the detector's class list.
    pub class_id: u32,
    pub label: Arc<str>,
    pub score: f32,
    pub bbox: BBox,
}

/// How one model is fed and read; `[[detectors]]` in the config.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    /// Name cameras use to refer to this detector.
    pub name: String,
    /// ONNX file, relative to the config file.
    pub model: PathBuf,
    /// Layout of the model's output: `yolox`, `nanodet` or `yolov8`.
    pub format: OutputFormat,
    /// Model input `[width, height]` in pixels.
    pub input: [u32; 2],
    /// Channel order the model expects.
    #[serde(default)]
    pub channels: ChannelOrder,
    /// Each pixel value (0..255) is multiplied by `scale`, then `(v - mean) / std`.
    #[serde(default = "one")]
    pub scale: f32,
    #[serde(default)]
    pub mean: [f32; 3],
    #[serde(default = "ones")]
    pub std: [f32; 3],
    /// Where the resized picture sits in the input: `top_left` or `center`.
    #[serde(default)]
    pub letterbox: LetterboxPlacement,
    /// Value (0..255, before normalisation) of the letterbox border.
    #[serde(default = "default_pad")]
    pub pad: u8,
    /// Class names in model output order, or `"coco"` for the 80 COCO classes.
    pub classes: ClassList,
    /// Minimum score for a detection of any class.
    #[serde(default = "default_score")]
    pub score_threshold: f32,
    /// Per-class overrides of `score_threshold`, by class name.
    #[serde(default)]
    pub class_thresholds: BTreeMap<String, f32>,
    /// IoU above which a lower-scored box of the same class is suppressed.
    #[serde(default = "default_nms")]
    pub nms_iou: f32,
}

fn one() -> f32 {
    1.0
}
fn ones() -> [f32; 3] {
    [1.0; 3]
}
fn default_pad() -> u8 {
    114
}
fn default_score() -> f32 {
    0.3
}
fn default_nms() -> f32 {
    0.45
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ClassList {
    /// A named standard list, e.g. `"coco"`.
    Named(String),
    Explicit(Vec<String>),
}

impl ClassList {
    pub fn resolve(&self) -> Result<Vec<String>, String> {
        match self {
            ClassList::Explicit(v) => Ok(v.clone()),
            ClassList::Named(n) if n == "coco" => Ok(COCO.iter().map(|s| s.to_string()).collect()),
            ClassList::Named(n) => Err(format!(
                "unknown class list {n:?} (use \"coco\" or an explicit list)"
            )),
        }
    }
}

impl DetectorConfig {
    pub fn input_spec(&self) -> InputSpec {
        InputSpec {
            width: self.input[0],
            height: self.input[1],
            channels: self.channels,
            scale: self.scale,
            mean: self.mean,
            std: self.std,
            placement: self.letterbox,
            pad: self.pad,
        }
    }

    /// Score threshold per class index.
    pub fn thresholds(&self, classes: &[String]) -> Vec<f32> {
        classes
            .iter()
            .map(|c| {
                *self
                    .class_thresholds
                    .get(c)
                    .unwrap_or(&self.score_threshold)
            })
            .collect()
    }
}

/// A loaded, validated model with its decoding rules: shareable across cameras.
pub struct Detector {
    pub name: Arc<str>,
    pub spec: InputSpec,
    pub format: OutputFormat,
    pub labels: Vec<Arc<str>>,
    thresholds: Vec<f32>,
    pub nms_iou: f32,
    pool: ModelPool,
}

/// Per-camera buffers a detector reuses every frame, so the hot path allocates nothing.
#[derive(Default)]
pub struct DetectScratch {
    input: Vec<f32>,
    candidates: Vec<decode::Candidate>,
    /// Letterbox geometry the padding in `input` was written for.
    filled_for: Option<Letterbox>,
}

/// Time spent in each part of one detection, for the stage statistics.
#[derive(Debug, Clone, Copy, Default)]
pub struct DetectTimings {
    pub preprocess: std::time::Duration,
    pub inference: std::time::Duration,
    pub postprocess: std::time::Duration,
}

impl Detector {
    /// Loads the model and checks its inputs and outputs against the declared format.
    /// `sessions` is how many cameras may run it at once.
    pub fn load(
        config: &DetectorConfig,
        model_path: &std::path::Path,
        sessions: usize,
        threads_per_session: usize,
    ) -> Result<Self, ModelError> {
        let classes = config
            .classes
            .resolve()
            .map_err(|reason| ModelError::Contract {
                path: model_path.to_path_buf(),
                reason,
            })?;
        let spec = config.input_spec();
        let pool = ModelPool::load(model_path, sessions, threads_per_session)?;
        pool.check_contract(config.format, &spec, classes.len())?;
        Ok(Detector {
            name: config.name.as_str().into(),
            thresholds: config.thresholds(&classes),
            labels: classes.iter().map(|c| Arc::from(c.as_str())).collect(),
            spec,
            format: config.format,
            nms_iou: config.nms_iou,
            pool,
        })
    }

    /// The session pool, for benchmarks that time inference and decoding apart.
    pub fn pool(&self) -> &ModelPool {
        &self.pool
    }

    /// Decoding + NMS alone on outputs captured earlier (benchmarks).
    pub fn decode_outputs(
        &self,
        outputs: &[decode::OutputView<'_>],
        scratch: &mut DetectScratch,
    ) -> usize {
        scratch.candidates.clear();
        let _ = decode::decode(
            self.format,
            outputs,
            &self.spec,
            &self.thresholds,
            &mut scratch.candidates,
        );
        decode::nms_per_class(&mut scratch.candidates, self.nms_iou);
        scratch.candidates.len()
    }

    /// Runs the model on one scaled view; appends detections (frame pixels) to `out`.
    pub fn detect(
        &self,
        image: &ScaledImage<'_>,
        scratch: &mut DetectScratch,
        out: &mut Vec<Detection>,
    ) -> Result<DetectTimings, ModelError> {
        let t0 = std::time::Instant::now();
        let letterbox = Letterbox::fit(image.width, image.height, &self.spec);
        let len = (3 * self.spec.width * self.spec.height) as usize;
        if scratch.input.len() != len || scratch.filled_for != Some(letterbox) {
            scratch.input.resize(len, 0.0);
            preprocess::fill_padding(&mut scratch.input, &self.spec, &letterbox);
            scratch.filled_for = Some(letterbox);
        }
        preprocess::fill_picture(image, &self.spec, &letterbox, &mut scratch.input);
        let t1 = std::time::Instant::now();
        let mut postprocess = std::time::Duration::ZERO;
        self.pool.run(&scratch.input, &self.spec, |outputs| {
            let t2 = std::time::Instant::now();
            scratch.candidates.clear();
            decode::decode(
                self.format,
                outputs,
                &self.spec,
                &self.thresholds,
                &mut scratch.candidates,
            )?;
            decode::nms_per_class(&mut scratch.candidates, self.nms_iou);
            for c in &scratch.candidates {
                out.push(Detection {
                    class_id: c.class_id,
                    label: self.labels[c.class_id as usize].clone(),
                    score: c.score,
                    bbox: image.to_frame(letterbox.to_source(c.bbox)),
                });
            }
            postprocess = t2.elapsed();
            Ok(())
        })?;
        let inference = t1.elapsed() - postprocess;
        Ok(DetectTimings {
            preprocess: t1 - t0,
            inference,
            postprocess,
        })
    }
}

/// COCO-80 class names in the order the COCO models emit them.
pub const COCO: [&str; 80] = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
];
