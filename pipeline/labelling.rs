//! Labelling export: frames the cameras saw, chosen and pre-labelled, so a
//! person only corrects boxes before a model is trained on them.
//!
//! `vigil dataset export` replays a config's cameras (or its stored alert clips)
//! with this stage listening beside the inspector. Each frame a detector ran on
//! is a candidate; it is kept when its camera's sampling allows (at most one per
//! `every_s` of media time, only where chosen classes were seen, only where the
//! picture moved), and dropped when a perceptual hash finds a near-duplicate
//! among the camera's recent frames. Kept frames are written at the camera's full
//! resolution (its own aspect) as a YOLO folder that `vigil eval` and
//! `models/train/train.py` read: `data.yaml`, `train/images`, `train/labels`
//! (and `train/classes.txt` for Label Studio's YOLO import).
//! Labels are what the detectors found at their configured floors; lower-scored
//! sightings only choose frames (the useful mistakes) and are listed in
//! `export.jsonl` beside each image's source and media time.

use crate::source::Frame;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// How frames are chosen; `vigil dataset export`'s flags.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub out: PathBuf,
    /// At most one frame per camera per this many seconds of media time.
    pub every_s: f64,
    /// Only frames where a detector saw one of these classes (empty: any frame).
    pub classes: Vec<String>,
    /// The lowest score that counts as "seen" for `classes`.
    pub floor: f32,
    /// Only frames whose picture changed since the camera's last candidate.
    pub motion: bool,
    /// Hamming distance (of 64 bits) at or under which a frame is a near-duplicate.
    pub similar_bits: u32,
    /// Stop taking frames from a camera after this many.
    pub max_per_camera: usize,
    /// Score a detection needs to become a label, per class (the config's floors
    /// before the export lowered them to `floor`); missing: `floor`.
    pub label_floors: HashMap<String, f32>,
}

/// What a detector reported on one frame, as the exporter needs it.
#[derive(Debug, Clone, Serialize)]
pub struct Sighting {
    pub label: String,
    pub score: f32,
    /// `[x1, y1, x2, y2]` in frame pixels.
    pub bbox: [f32; 4],
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{path}: already holds an export (data.yaml); choose a new --out or delete it")]
    NotEmpty { path: PathBuf },
    #[error("{path}: cannot write")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What an export wrote, for the summary line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportSummary {
    pub frames: usize,
    pub near_duplicates: usize,
    pub boxes: usize,
    pub classes: Vec<String>,
}

/// Recent hashes compared against; older frames of a camera are far enough in
/// time that a repeat is worth a second look.
const RECENT_HASHES: usize = 512;
/// Mean absolute change (0..255) of a 32-pixel-wide grey thumbnail that counts
/// as motion: sensor noise and compression stay under 2.
const MOTION_LEVEL: f32 = 3.0;

pub struct Export {
    options: ExportOptions,
    state: Mutex<State>,
}

struct State {
    names: Vec<String>,
    cameras: HashMap<String, CameraState>,
    summary: ExportSummary,
    listing: std::io::BufWriter<std::fs::File>,
    error: Option<ExportError>,
}

#[derive(Default)]
struct CameraState {
    last_candidate_s: Option<f64>,
    last_thumbnail: Option<Vec<u8>>,
    recent: VecDeque<Taken>,
    taken: usize,
}

/// What a taken frame is compared on: its picture's hash and its labelled boxes.
struct Taken {
    hash: u64,
    boxes: Vec<(String, [f32; 4])>,
}

impl Taken {
    /// A fixed camera's background dominates a whole-frame hash, so two frames
    /// are near-duplicates only when the pictures are close *and* the same
    /// objects sit in the same places: a person who walked on is a new frame.
    fn repeats(&self, other: &Taken, similar_bits: u32) -> bool {
        (self.hash ^ other.hash).count_ones() <= similar_bits
            && self.boxes.len() == other.boxes.len()
            && self.boxes.iter().all(|(label, b)| {
                other
                    .boxes
                    .iter()
                    .any(|(l, o)| l == label && iou(b, o) >= SAME_PLACE_IOU)
            })
    }
}

/// Boxes this close are the same object standing still.
const SAME_PLACE_IOU: f32 = 0.7;

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

#[derive(Serialize)]
struct ListingLine<'a> {
    image: String,
    camera: &'a str,
    source: &'a str,
    time_s: f64,
    width: u32,
    height: u32,
    sightings: &'a [Sighting],
}

impl std::fmt::Debug for Export {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Export")
            .field("out", &self.options.out)
            .finish()
    }
}

impl Export {
    /// Creates the folder layout; refuses a folder that already holds an export.
    pub fn create(options: ExportOptions) -> Result<Self, ExportError> {
        let out = &options.out;
        if out.join("data.yaml").exists() {
            return Err(ExportError::NotEmpty { path: out.clone() });
        }
        for dir in ["train/images", "train/labels"] {
            let path = out.join(dir);
            std::fs::create_dir_all(&path).map_err(|source| ExportError::Write { path, source })?;
        }
        let path = out.join("export.jsonl");
        let file =
            std::fs::File::create(&path).map_err(|source| ExportError::Write { path, source })?;
        Ok(Export {
            state: Mutex::new(State {
                names: Vec::new(),
                cameras: HashMap::new(),
                summary: ExportSummary::default(),
                listing: std::io::BufWriter::new(file),
                error: None,
            }),
            options,
        })
    }

    /// One processed frame of `camera`. `source` names where it came from (the
    /// camera, or an alert's clip); `ran` is false when no detector ran on it
    /// (motion gating), whose boxes would be stale.
    pub fn frame(
        &self,
        camera: &str,
        source: &str,
        frame: &Frame,
        ran: bool,
        sightings: &[Sighting],
    ) {
        if !ran {
            return;
        }
        let time_s = frame.pts.as_secs_f64();
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.error.is_some() {
            return;
        }
        let options = &self.options;
        let cam = state.cameras.entry(camera.to_string()).or_default();
        if cam.taken >= options.max_per_camera
            || cam
                .last_candidate_s
                .is_some_and(|t| time_s >= t && time_s - t < options.every_s)
        {
            return;
        }
        if !options.classes.is_empty()
            && !sightings
                .iter()
                .any(|s| s.score >= options.floor && options.classes.contains(&s.label))
        {
            return;
        }
        cam.last_candidate_s = Some(time_s);
        let Ok(thumbnail) = frame.picture().to_rgb_within(64) else {
            return;
        };
        let grey = grey_thumbnail(&thumbnail);
        let moved = cam
            .last_thumbnail
            .as_ref()
            .is_none_or(|last| mean_change(last, &grey) >= MOTION_LEVEL);
        cam.last_thumbnail = Some(grey);
        if options.motion && !moved {
            return;
        }
        let taken = Taken {
            hash: difference_hash(&thumbnail),
            boxes: sightings
                .iter()
                .filter(|s| s.score >= self.label_floor(&s.label))
                .map(|s| (s.label.clone(), s.bbox))
                .collect(),
        };
        if cam
            .recent
            .iter()
            .any(|t| t.repeats(&taken, options.similar_bits))
        {
            state.summary.near_duplicates += 1;
            return;
        }
        if cam.recent.len() == RECENT_HASHES {
            cam.recent.pop_front();
        }
        cam.recent.push_back(taken);
        cam.taken += 1;
        if let Err(e) = self.write(&mut state, camera, source, frame, sightings) {
            tracing::error!("dataset export: {e}");
            state.error = Some(e);
        }
    }

    fn write(
        &self,
        state: &mut State,
        camera: &str,
        source: &str,
        frame: &Frame,
        sightings: &[Sighting],
    ) -> Result<(), ExportError> {
        let out = &self.options.out;
        let picture = frame.picture().to_rgb().map_err(|e| ExportError::Write {
            path: out.clone(),
            source: std::io::Error::other(e),
        })?;
        let (w, h) = (picture.width() as f32, picture.height() as f32);
        let ms = frame.pts.as_nanos() / 1_000_000;
        let stem = if source == camera {
            format!("{}-{ms:09}", file_safe(camera))
        } else {
            format!("{}-{}-{ms:09}", file_safe(camera), file_safe(source))
        };
        let mut labels = String::new();
        let mut new_name = false;
        for s in sightings {
            if s.score < self.label_floor(&s.label) {
                continue;
            }
            let class = match state.names.iter().position(|n| *n == s.label) {
                Some(i) => i,
                None => {
                    state.names.push(s.label.clone());
                    new_name = true;
                    state.names.len() - 1
                }
            };
            let [x1, y1, x2, y2] = s.bbox;
            let (x1, x2) = (x1.clamp(0.0, w), x2.clamp(0.0, w));
            let (y1, y2) = (y1.clamp(0.0, h), y2.clamp(0.0, h));
            if x2 - x1 < 1.0 || y2 - y1 < 1.0 {
                continue;
            }
            labels += &format!(
                "{class} {:.6} {:.6} {:.6} {:.6}\n",
                (x1 + x2) / 2.0 / w,
                (y1 + y2) / 2.0 / h,
                (x2 - x1) / w,
                (y2 - y1) / h
            );
            state.summary.boxes += 1;
        }
        let image_path = out.join("train/images").join(format!("{stem}.jpg"));
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ExportError::Write { path, source }
        };
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 92)
            .encode_image(&picture)
            .map_err(|e| ExportError::Write {
                path: image_path.clone(),
                source: std::io::Error::other(e),
            })?;
        std::fs::write(&image_path, jpeg).map_err(write_err(&image_path))?;
        let label_path = out.join("train/labels").join(format!("{stem}.txt"));
        std::fs::write(&label_path, labels).map_err(write_err(&label_path))?;
        if new_name {
            self.write_yaml(&state.names)?;
        }
        let line = ListingLine {
            image: format!("train/images/{stem}.jpg"),
            camera,
            source,
            time_s: frame.pts.as_secs_f64(),
            width: picture.width(),
            height: picture.height(),
            sightings,
        };
        let listing = out.join("export.jsonl");
        serde_json::to_writer(&mut state.listing, &line)
            .map_err(std::io::Error::from)
            .and_then(|_| state.listing.write_all(b"\n"))
            .map_err(write_err(&listing))?;
        state.summary.frames += 1;
        Ok(())
    }

    fn label_floor(&self, label: &str) -> f32 {
        self.options
            .label_floors
            .get(label)
            .copied()
            .unwrap_or(self.options.floor)
    }

    fn write_yaml(&self, names: &[String]) -> Result<(), ExportError> {
        let path = self.options.out.join("data.yaml");
        let quoted: Vec<String> = names
            .iter()
            .map(|n| serde_json::to_string(n).unwrap_or_default())
            .collect();
        let text = format!(
            "# Written by `vigil dataset export`: pre-labels to correct, then train.\ntrain: train/images\nval: train/images\nnc: {}\nnames: [{}]\n",
            names.len(),
            quoted.join(", ")
        );
        std::fs::write(&path, text).map_err(|source| ExportError::Write { path, source })?;
        // Label Studio's YOLO import (`label-studio-converter import yolo -i
        // OUT/train`) wants the names one per line beside images/ and labels/.
        let path = self.options.out.join("train/classes.txt");
        let lines: String = names.iter().map(|n| format!("{n}\n")).collect();
        std::fs::write(&path, lines).map_err(|source| ExportError::Write { path, source })
    }

    /// Flushes the listing and writes `data.yaml` (also when nothing was labelled).
    pub fn finish(&self) -> Result<ExportSummary, ExportError> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(e) = state.error.take() {
            return Err(e);
        }
        let listing = self.options.out.join("export.jsonl");
        state.listing.flush().map_err(|source| ExportError::Write {
            path: listing,
            source,
        })?;
        self.write_yaml(&state.names)?;
        state.summary.classes = state.names.clone();
        Ok(state.summary.clone())
    }
}

fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn grey(p: &image::Rgb<u8>) -> f32 {
    0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32
}

/// A 32x24 grey thumbnail for the motion test.
fn grey_thumbnail(img: &image::RgbImage) -> Vec<u8> {
    let small = image::imageops::resize(img, 32, 24, image::imageops::FilterType::Triangle);
    small.pixels().map(|p| grey(p) as u8).collect()
}

fn mean_change(a: &[u8], b: &[u8]) -> f32 {
    let total: u32 = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y) as u32).sum();
    total as f32 / a.len().max(1) as f32
}

/// The difference hash ("dHash"): a 9x8 grey thumbnail, one bit per pair of
/// neighbours in a row. Hand-written: the image-hash crates bring an FFT for
/// hashes this export does not use.
pub fn difference_hash(img: &image::RgbImage) -> u64 {
    let small = image::imageops::resize(img, 9, 8, image::imageops::FilterType::Triangle);
    let mut hash = 0u64;
    for y in 0..8 {
        for x in 0..8 {
            let left = grey(small.get_pixel(x, y));
            let right = grey(small.get_pixel(x + 1, y));
            hash = (hash << 1) | u64::from(left > right);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(shift: u32) -> image::RgbImage {
        image::RgbImage::from_fn(64, 48, |x, y| {
            let v = ((x * 4 + y * 2 + shift) % 256) as u8;
            image::Rgb([v, v / 2, 255 - v])
        })
    }

    #[test]
    fn near_duplicates_hash_close_and_other_scenes_far() {
        let a = difference_hash(&gradient(0));
        let mut noisy = gradient(0);
        noisy.put_pixel(10, 10, image::Rgb([0, 0, 0]));
        let b = difference_hash(&noisy);
        assert!((a ^ b).count_ones() <= 6, "{}", (a ^ b).count_ones());
        let other = image::RgbImage::from_fn(64, 48, |x, y| {
            let v = if (x / 8 + y / 8) % 2 == 0 { 30 } else { 220 };
            image::Rgb([v, v, v])
        });
        let c = difference_hash(&other);
        assert!((a ^ c).count_ones() > 12, "{}", (a ^ c).count_ones());
    }

    #[test]
    fn a_repeat_needs_the_same_picture_and_the_same_objects_in_place() {
        let person = |x: f32| ("person".to_string(), [x, 10.0, x + 50.0, 200.0]);
        let a = Taken {
            hash: 0b1011,
            boxes: vec![person(100.0)],
        };
        let same = Taken {
            hash: 0b1001,
            boxes: vec![person(102.0)],
        };
        assert!(a.repeats(&same, 6));
        let walked_on = Taken {
            hash: 0b1011,
            boxes: vec![person(300.0)],
        };
        assert!(!a.repeats(&walked_on, 6), "same room, the person moved");
        let another = Taken {
            hash: 0b1011,
            boxes: vec![person(100.0), person(300.0)],
        };
        assert!(!a.repeats(&another, 6), "someone came in");
        let other_scene = Taken {
            hash: !0b1011,
            boxes: vec![person(100.0)],
        };
        assert!(!a.repeats(&other_scene, 6));
    }

    #[test]
    fn motion_is_a_mean_change_of_the_thumbnail() {
        let still = grey_thumbnail(&gradient(0));
        assert_eq!(mean_change(&still, &still), 0.0);
        let moved = grey_thumbnail(&gradient(60));
        assert!(mean_change(&still, &moved) >= MOTION_LEVEL);
    }

    #[test]
    fn file_names_keep_only_safe_characters() {
        assert_eq!(file_safe("B2 栋/lift-1"), "B2___lift_1");
    }

    #[test]
    fn a_folder_with_an_export_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let options = ExportOptions {
            out: dir.path().into(),
            every_s: 1.0,
            classes: vec![],
            floor: 0.1,
            motion: false,
            similar_bits: 6,
            max_per_camera: 10,
            label_floors: HashMap::new(),
        };
        let export = Export::create(options.clone()).unwrap();
        let summary = export.finish().unwrap();
        assert_eq!(summary.frames, 0);
        let yaml = std::fs::read_to_string(dir.path().join("data.yaml")).unwrap();
        assert!(yaml.contains("nc: 0"), "{yaml}");
        let err = Export::create(options).unwrap_err().to_string();
        assert!(err.contains("already holds an export"), "{err}");
    }
}
