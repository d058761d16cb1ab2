//! What `vigil eval` says: a table for the terminal, a JSON report, a
//! precision–recall plot (SVG), and the ground truth and detections as COCO JSON
//! so any other tool (pycocotools, for one) can check the numbers.

use super::metrics::{self, ClassQuality, Prediction, Truth, rank_boxes, rank_images};
use super::{EvalOptions, Part, dataset::LabelledSet};
use crate::config::LoadedConfig;
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub config: PathBuf,
    pub detector: String,
    pub dataset: PathBuf,
    pub splits: Vec<String>,
    pub part: Part,
    /// Source groups (videos) in this part.
    pub groups: Vec<String>,
    pub images: usize,
    /// `[w, h]` every image was resized to before detection, if any.
    pub resized_to: Option<[u32; 2]>,
    pub min_score: f32,
    pub wanted_precision: f64,
    /// Dataset classes not scored, with their box counts: their frames count as
    /// negatives.
    pub dropped_boxes: BTreeMap<String, usize>,
    pub inference_ms_p50: f64,
    pub classes: Vec<ClassReport>,
    /// `confusion[truth][predicted]`; the last row is background (a box on
    /// nothing), the last column missed (truth never found), at the floors.
    pub confusion: Vec<Vec<usize>>,
    #[serde(skip)]
    coco_truth: serde_json::Value,
    #[serde(skip)]
    coco_detections: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassReport {
    pub class: String,
    pub floor: f32,
    pub boxes: ClassQuality,
    /// A frame is positive if any box of the class is.
    pub frames: ClassQuality,
}

pub(super) struct Inputs<'a> {
    pub loaded: &'a LoadedConfig,
    pub options: &'a EvalOptions,
    pub detector: &'a str,
    pub set: &'a LabelledSet,
    pub groups: Vec<String>,
    pub class_names: Vec<String>,
    pub floors: Vec<f32>,
    pub truths: Vec<Truth>,
    pub predictions: Vec<Prediction>,
    pub sizes: Vec<(u32, u32)>,
    pub dropped_boxes: BTreeMap<String, usize>,
    pub inference_ms: Vec<f64>,
}

pub(super) fn build(i: Inputs<'_>) -> EvalReport {
    let images = i.set.images.len();
    let classes = i
        .class_names
        .iter()
        .enumerate()
        .map(|(c, name)| ClassReport {
            class: name.clone(),
            floor: i.floors[c],
            boxes: rank_boxes(&i.truths, &i.predictions, c)
                .quality(i.floors[c], i.options.precision),
            frames: rank_images(&i.truths, &i.predictions, c, images)
                .quality(i.floors[c], i.options.precision),
        })
        .collect();
    let confusion = metrics::confusion(&i.truths, &i.predictions, &i.floors, i.class_names.len());
    let mut ms = i.inference_ms.clone();
    ms.sort_by(f64::total_cmp);
    let (coco_truth, coco_detections) = coco(&i);
    EvalReport {
        config: i.loaded.path.clone(),
        detector: i.detector.to_string(),
        dataset: i.set.origin.clone(),
        splits: i.options.splits.clone(),
        part: i.options.part,
        groups: i.groups,
        images,
        resized_to: i.options.resize.map(|(w, h)| [w, h]),
        min_score: i.options.min_score,
        wanted_precision: i.options.precision,
        dropped_boxes: i.dropped_boxes,
        inference_ms_p50: ms.get(ms.len() / 2).copied().unwrap_or(0.0),
        classes,
        confusion,
        coco_truth,
        coco_detections,
    }
}

fn coco(i: &Inputs<'_>) -> (serde_json::Value, serde_json::Value) {
    let xywh = |b: &crate::geometry::BBox| [b.x1, b.y1, b.width(), b.height()];
    let images: Vec<_> = i
        .set
        .images
        .iter()
        .enumerate()
        .map(|(n, im)| {
            json!({"id": n + 1, "file_name": im.path.display().to_string(),
                   "width": i.sizes[n].0, "height": i.sizes[n].1})
        })
        .collect();
    let categories: Vec<_> = i
        .class_names
        .iter()
        .enumerate()
        .map(|(c, name)| json!({"id": c + 1, "name": name}))
        .collect();
    let annotations: Vec<_> = i
        .truths
        .iter()
        .enumerate()
        .map(|(n, t)| {
            json!({"id": n + 1, "image_id": t.image + 1, "category_id": t.class + 1,
                   "bbox": xywh(&t.bbox), "area": t.bbox.area(), "iscrowd": 0})
        })
        .collect();
    let detections: Vec<_> = i
        .predictions
        .iter()
        .map(|p| {
            json!({"image_id": p.image + 1, "category_id": p.class + 1,
                   "bbox": xywh(&p.bbox), "score": p.score})
        })
        .collect();
    (
        json!({"images": images, "annotations": annotations, "categories": categories}),
        serde_json::Value::Array(detections),
    )
}

impl EvalReport {
    /// The terminal table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let resized = self
            .resized_to
            .map_or("at their own size".to_string(), |[w, h]| {
                format!("resized to {w}x{h}")
            });
        let _ = writeln!(
            s,
            "detector {:?} on {} ({} images, part {}, {} source groups), {resized}",
            self.detector,
            self.dataset.display(),
            self.images,
            self.part.name(),
            self.groups.len()
        );
        for (class, n) in &self.dropped_boxes {
            let _ = writeln!(
                s,
                "  dataset class {class:?}: {n} boxes not scored (their frames count as negatives)"
            );
        }
        let p = self.wanted_precision;
        for (level, pick) in [
            (
                "boxes (IoU ≥ 0.5)",
                (|c: &ClassReport| &c.boxes) as fn(&ClassReport) -> &ClassQuality,
            ),
            ("frames (any box)", |c: &ClassReport| &c.frames),
        ] {
            let _ = writeln!(
                s,
                "\n{level}\n{:<10} {:>6} {:>6} {:>9} {:>9} {:>7} {:>10}   for precision {p:.2}",
                "class", "truth", "floor", "precision", "recall", "AP50", "AP50 coco"
            );
            for c in &self.classes {
                let q = pick(c);
                let target = q.for_precision.map_or("not reached".to_string(), |t| {
                    format!("threshold {:.2} → recall {:.3}", t.threshold, t.recall)
                });
                let _ = writeln!(
                    s,
                    "{:<10} {:>6} {:>6.2} {:>9.3} {:>9.3} {:>7.3} {:>10.3}   {target}",
                    c.class,
                    q.positives,
                    c.floor,
                    q.at_floor.precision,
                    q.at_floor.recall,
                    q.ap50,
                    q.ap50_coco
                );
            }
        }
        let names: Vec<&str> = self.classes.iter().map(|c| c.class.as_str()).collect();
        let _ = write!(
            s,
            "\nconfusion at the floors (rows: truth, columns: predicted)\n{:<12}",
            ""
        );
        for n in names.iter().chain(["missed"].iter()) {
            let _ = write!(s, "{n:>10}");
        }
        s.push('\n');
        for (r, row) in self.confusion.iter().enumerate() {
            let _ = write!(s, "{:<12}", names.get(r).copied().unwrap_or("background"));
            for v in row {
                let _ = write!(s, "{v:>10}");
            }
            s.push('\n');
        }
        let _ = writeln!(
            s,
            "\ninference p50 {:.1} ms per image",
            self.inference_ms_p50
        );
        s
    }

    /// The dataset's folder for a YOLO `data.yaml`, else its file name.
    fn dataset_name(&self) -> String {
        let path = match self.dataset.file_name() {
            Some(f) if f == "data.yaml" => self.dataset.parent().unwrap_or(&self.dataset),
            _ => &self.dataset,
        };
        path.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into()
    }

    /// Writes `report.json`, `pr.svg`, `coco_truth.json`, `coco_detections.json`.
    pub fn write(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let files = [
            ("report.json", serde_json::to_string_pretty(self)?),
            ("pr.svg", self.svg()),
            ("coco_truth.json", self.coco_truth.to_string()),
            ("coco_detections.json", self.coco_detections.to_string()),
        ];
        let mut written = Vec::new();
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::write(&path, text)?;
            written.push(path);
        }
        Ok(written)
    }

    /// Precision–recall curves: boxes solid, frames dashed, the floor a dot.
    pub fn svg(&self) -> String {
        const W: f64 = 640.0;
        const H: f64 = 480.0;
        const M: f64 = 50.0;
        const COLOURS: [&str; 6] = [
            "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
        ];
        let x = |r: f64| M + r * (W - 2.0 * M);
        let y = |p: f64| H - M - p * (H - 2.0 * M);
        let mut s = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="20" text-anchor="middle" font-size="14">{} on {} ({} images)</text>
"#,
            W / 2.0,
            xml(&self.detector),
            xml(&self.dataset_name()),
            self.images
        );
        for k in 0..=10 {
            let v = k as f64 / 10.0;
            let _ = writeln!(
                s,
                r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#ddd"/><line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="middle">{v:.1}</text><text x="{}" y="{}" text-anchor="end">{v:.1}</text>"##,
                x(v),
                y(0.0),
                x(v),
                y(1.0),
                x(0.0),
                y(v),
                x(1.0),
                y(v),
                x(v),
                H - M + 16.0,
                M - 6.0,
                y(v) + 4.0
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">recall</text><text x="14" y="{}" transform="rotate(-90 14 {})" text-anchor="middle">precision</text>"#,
            W / 2.0,
            H - 12.0,
            H / 2.0,
            H / 2.0
        );
        for (n, c) in self.classes.iter().enumerate() {
            let colour = COLOURS[n % COLOURS.len()];
            for (q, dash, label) in [
                (&c.boxes, "", "boxes"),
                (&c.frames, r#" stroke-dasharray="6 4""#, "frames"),
            ] {
                let points: Vec<String> = q
                    .curve
                    .iter()
                    .map(|(r, p)| format!("{:.1},{:.1}", x(*r), y(*p)))
                    .collect();
                let _ = writeln!(
                    s,
                    r#"<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="{}"/><circle cx="{:.1}" cy="{:.1}" r="5" fill="{colour}"><title>{} {label} at floor {:.2}</title></circle>"#,
                    points.join(" "),
                    x(q.at_floor.recall),
                    y(q.at_floor.precision),
                    xml(&c.class),
                    c.floor
                );
            }
            let ly = M + 10.0 + 36.0 * n as f64;
            let _ = writeln!(
                s,
                r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}">{} boxes AP50 {:.3}</text><line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{colour}" stroke-width="2" stroke-dasharray="6 4"/><text x="{}" y="{}">{} frames AP {:.3}</text>"#,
                W - M - 200.0,
                W - M - 175.0,
                W - M - 170.0,
                ly + 4.0,
                xml(&c.class),
                c.boxes.ap50,
                W - M - 200.0,
                ly + 16.0,
                W - M - 175.0,
                ly + 16.0,
                W - M - 170.0,
                ly + 20.0,
                xml(&c.class),
                c.frames.ap50
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
