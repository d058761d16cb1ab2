//! Labelled images for `vigil eval`: YOLO txt (a `data.yaml` with class names and
//! `<split>/images`, `<split>/labels`) or one COCO JSON file.
//!
//! Boxes come out as fractions of the image, so the evaluator may resize the
//! picture to a camera-like aspect first. Each image also gets its *source group*
//! (the video its frame came from), because neighbouring frames are
//! near-duplicates and a held-out part must not share a video with the tuned part.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One labelled box: dataset class index, corners as fractions of the image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelledBox {
    pub class: usize,
    pub corners: [f32; 4],
}

#[derive(Debug, Clone)]
pub struct LabelledImage {
    pub path: PathBuf,
    /// The video (or batch) the frame came from; see [`source_group`].
    pub group: String,
    pub boxes: Vec<LabelledBox>,
}

#[derive(Debug, Clone)]
pub struct LabelledSet {
    /// Where it was read from (the data.yaml or the JSON file).
    pub origin: PathBuf,
    pub classes: Vec<String>,
    pub images: Vec<LabelledImage>,
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: cannot read")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a YOLO data.yaml")]
    Yaml {
        path: PathBuf,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("{path}: not a COCO annotation file")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}:{line}: {message}")]
    Label {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Layout { path: PathBuf, message: String },
}

/// Reads a YOLO dataset (its folder or its `data.yaml`) or a COCO `.json`.
/// `splits` picks YOLO split folders (`train`, `valid`, …); empty means all.
pub fn load(path: &Path, splits: &[String]) -> Result<LabelledSet, DatasetError> {
    if path.extension().is_some_and(|e| e == "json") {
        return load_coco(path);
    }
    let yaml = if path.is_dir() {
        path.join("data.yaml")
    } else {
        path.to_path_buf()
    };
    load_yolo(&yaml, splits)
}

#[derive(Deserialize)]
struct DataYaml {
    names: ClassNames,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ClassNames {
    List(Vec<String>),
    Map(BTreeMap<usize, String>),
}

const YOLO_SPLITS: [&str; 4] = ["train", "valid", "val", "test"];

fn load_yolo(yaml: &Path, splits: &[String]) -> Result<LabelledSet, DatasetError> {
    let text = read(yaml)?;
    let data: DataYaml = serde_yaml_ng::from_str(&text).map_err(|source| DatasetError::Yaml {
        path: yaml.into(),
        source,
    })?;
    let classes = match data.names {
        ClassNames::List(v) => v,
        ClassNames::Map(m) => m.into_values().collect(),
    };
    let root = yaml.parent().unwrap_or(Path::new("."));
    let wanted: Vec<String> = if splits.is_empty() {
        YOLO_SPLITS.iter().map(|s| s.to_string()).collect()
    } else {
        splits.to_vec()
    };
    let mut images = Vec::new();
    for split in &wanted {
        let dir = root.join(split).join("images");
        if !dir.is_dir() {
            if !splits.is_empty() {
                return Err(DatasetError::Layout {
                    path: root.into(),
                    message: format!("no split {split:?} (expected {})", dir.display()),
                });
            }
            continue;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|source| DatasetError::Read {
                path: dir.clone(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_image(p))
            .collect();
        files.sort();
        for image in files {
            let stem = image.file_stem().unwrap_or_default().to_string_lossy();
            let label = root.join(split).join("labels").join(format!("{stem}.txt"));
            let boxes = if label.is_file() {
                yolo_labels(&label, classes.len())?
            } else {
                Vec::new()
            };
            images.push(LabelledImage {
                group: source_group(&image),
                path: image,
                boxes,
            });
        }
    }
    if images.is_empty() {
        return Err(DatasetError::Layout {
            path: root.into(),
            message: format!("no images under {}/images", wanted.join("|")),
        });
    }
    Ok(LabelledSet {
        origin: yaml.into(),
        classes,
        images,
    })
}

fn yolo_labels(path: &Path, classes: usize) -> Result<Vec<LabelledBox>, DatasetError> {
    let text = read(path)?;
    let mut boxes = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let bad = |message: String| DatasetError::Label {
            path: path.into(),
            line: i + 1,
            message,
        };
        let polygon = fields.len() >= 7 && fields.len() % 2 == 1;
        if fields.len() != 5 && !polygon {
            return Err(bad(format!(
                "expected `class cx cy w h` or a polygon `class x y x y x y …`, found {} fields",
                fields.len()
            )));
        }
        let class: usize = fields[0]
            .parse()
            .map_err(|_| bad(format!("class {:?} is not an index", fields[0])))?;
        if class >= classes {
            return Err(bad(format!("class {class} but data.yaml names {classes}")));
        }
        let mut values = Vec::with_capacity(fields.len() - 1);
        for f in &fields[1..] {
            values.push(
                f.parse()
                    .ok()
                    .filter(|x: &f32| x.is_finite())
                    .ok_or_else(|| bad(format!("{f:?} is not a number")))?,
            );
        }
        if polygon {
            // Segmentation exports (Roboflow mixes them into detection sets):
            // the box is the polygon's bounds.
            let (xs, ys): (Vec<f32>, Vec<f32>) = values.chunks(2).map(|p| (p[0], p[1])).unzip();
            let min = |v: &[f32]| v.iter().copied().fold(f32::INFINITY, f32::min);
            let max = |v: &[f32]| v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            boxes.push(LabelledBox {
                class,
                corners: [min(&xs), min(&ys), max(&xs), max(&ys)],
            });
            continue;
        }
        let [cx, cy, w, h] = [values[0], values[1], values[2], values[3]];
        boxes.push(LabelledBox {
            class,
            corners: [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0],
        });
    }
    Ok(boxes)
}

#[derive(Deserialize)]
struct CocoFile {
    images: Vec<CocoImage>,
    #[serde(default)]
    annotations: Vec<CocoAnnotation>,
    categories: Vec<CocoCategory>,
}
#[derive(Deserialize)]
struct CocoImage {
    id: u64,
    file_name: String,
    width: f32,
    height: f32,
}
#[derive(Deserialize)]
struct CocoAnnotation {
    image_id: u64,
    category_id: u64,
    bbox: [f32; 4],
}
#[derive(Deserialize)]
struct CocoCategory {
    id: u64,
    name: String,
}

fn load_coco(path: &Path) -> Result<LabelledSet, DatasetError> {
    let text = read(path)?;
    let coco: CocoFile = serde_json::from_str(&text).map_err(|source| DatasetError::Json {
        path: path.into(),
        source,
    })?;
    let root = path.parent().unwrap_or(Path::new("."));
    let classes: Vec<String> = coco.categories.iter().map(|c| c.name.clone()).collect();
    let class_of: BTreeMap<u64, usize> = coco
        .categories
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id, i))
        .collect();
    let mut index = BTreeMap::new();
    let mut images: Vec<LabelledImage> = Vec::new();
    for im in &coco.images {
        let mut file = root.join(&im.file_name);
        if !file.is_file() && root.join("images").join(&im.file_name).is_file() {
            file = root.join("images").join(&im.file_name);
        }
        index.insert(im.id, (images.len(), im.width, im.height));
        images.push(LabelledImage {
            group: source_group(&file),
            path: file,
            boxes: Vec::new(),
        });
    }
    for a in &coco.annotations {
        let layout = |message: String| DatasetError::Layout {
            path: path.into(),
            message,
        };
        let &(i, w, h) = index
            .get(&a.image_id)
            .ok_or_else(|| layout(format!("annotation for unknown image_id {}", a.image_id)))?;
        let class = *class_of.get(&a.category_id).ok_or_else(|| {
            layout(format!(
                "annotation with unknown category_id {}",
                a.category_id
            ))
        })?;
        let [x, y, bw, bh] = a.bbox;
        images[i].boxes.push(LabelledBox {
            class,
            corners: [x / w, y / h, (x + bw) / w, (y + bh) / h],
        });
    }
    Ok(LabelledSet {
        origin: path.into(),
        classes,
        images,
    })
}

fn read(path: &Path) -> Result<String, DatasetError> {
    std::fs::read_to_string(path).map_err(|source| DatasetError::Read {
        path: path.into(),
        source,
    })
}

fn is_image(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        matches!(
            e.to_ascii_lowercase().as_str(),
            "jpg" | "jpeg" | "png" | "bmp"
        )
    })
}

/// The source video of a frame, from its file name: Roboflow exports name frames
/// `<video>_mp4-<n>_jpg.rf.<hash>.jpg`; numbered stills (`img_417`) are grouped by
/// hundreds, since consecutive numbers were cut from the same footage.
pub fn source_group(path: &Path) -> String {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    if let Some(at) = name.find("_mp4") {
        return name[..at].to_string();
    }
    let stem = name.split("_jpg").next().unwrap_or(&name);
    let stem = stem.split('.').next().unwrap_or(stem);
    let Some(start) = stem.find(|c: char| c.is_ascii_digit()) else {
        return stem.to_string();
    };
    let digits: String = stem[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    match digits.parse::<u64>() {
        Ok(n) => format!("{}{}xx", &stem[..start], n / 100),
        Err(_) => stem.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_group_by_their_source_video() {
        let g = |s: &str| source_group(Path::new(s));
        assert_eq!(g("newsmoke2_mp4-12_jpg.rf.abc.jpg"), "newsmoke2");
        assert_eq!(g("img_417_jpg.rf.abc.jpg"), "img_4xx");
        assert_eq!(g("img_52--2_jpg.rf.abc.jpg"), "img_0xx");
        assert_eq!(g("img_2036_jpg.rf.x.jpg"), "img_20xx");
        assert_eq!(g("kitchen.jpg"), "kitchen");
    }

    #[test]
    fn yolo_and_coco_give_the_same_fractions() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("valid/images")).unwrap();
        std::fs::create_dir_all(root.join("valid/labels")).unwrap();
        std::fs::write(
            root.join("data.yaml"),
            "names:\n- Fire\n- default\n- smoke\nnc: 3\n",
        )
        .unwrap();
        std::fs::write(root.join("valid/images/a.jpg"), b"").unwrap();
        std::fs::write(root.join("valid/images/b.jpg"), b"").unwrap();
        std::fs::write(root.join("valid/labels/a.txt"), "2 0.5 0.5 0.2 0.4\n").unwrap();
        let yolo = load(root, &[]).unwrap();
        assert_eq!(yolo.classes, ["Fire", "default", "smoke"]);
        assert_eq!(yolo.images.len(), 2);
        assert!(yolo.images[1].boxes.is_empty(), "no label file: a negative");
        let c = yolo.images[0].boxes[0].corners;
        assert!((c[0] - 0.4).abs() < 1e-6 && (c[3] - 0.7).abs() < 1e-6);

        let json = root.join("coco.json");
        std::fs::write(
            &json,
            r#"{"images":[{"id":7,"file_name":"valid/images/a.jpg","width":200,"height":100}],
                "annotations":[{"image_id":7,"category_id":3,"bbox":[80,30,40,40]}],
                "categories":[{"id":3,"name":"smoke"}]}"#,
        )
        .unwrap();
        let coco = load(&json, &[]).unwrap();
        assert_eq!(coco.images[0].boxes[0].corners, c);
    }

    #[test]
    fn a_bad_label_names_its_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("train/images")).unwrap();
        std::fs::create_dir_all(root.join("train/labels")).unwrap();
        std::fs::write(root.join("data.yaml"), "names: [fire]\n").unwrap();
        std::fs::write(root.join("train/images/a.png"), b"").unwrap();
        std::fs::write(
            root.join("train/labels/a.txt"),
            "0 0.5 0.5 0.1 0.1\n3 0.5 0.5 0.1 0.1\n",
        )
        .unwrap();
        let err = load(&root.join("data.yaml"), &[]).unwrap_err().to_string();
        assert!(err.contains("a.txt:2") && err.contains("class 3"), "{err}");
        let err = load(root, &["valid".into()]).unwrap_err().to_string();
        assert!(err.contains("no split \"valid\""), "{err}");
        std::fs::write(root.join("train/labels/a.txt"), "0 0.5 0.5 0.1\n").unwrap();
        let err = load(root, &[]).unwrap_err().to_string();
        assert!(err.contains("a.txt:1") && err.contains("4 fields"), "{err}");
    }

    #[test]
    fn a_polygon_label_counts_as_its_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("valid/images")).unwrap();
        std::fs::create_dir_all(root.join("valid/labels")).unwrap();
        std::fs::write(root.join("data.yaml"), "names: ['bike', 'bus', 'car']\n").unwrap();
        std::fs::write(root.join("valid/images/a.jpg"), b"").unwrap();
        std::fs::write(
            root.join("valid/labels/a.txt"),
            "0 0.5 0.5 0.2 0.4\n0 0.3 0.6 0.5 0.2 0.4 0.9 0.3 0.6\n",
        )
        .unwrap();
        let set = load(root, &[]).unwrap();
        assert_eq!(set.images[0].boxes.len(), 2);
        let c = set.images[0].boxes[1].corners;
        assert_eq!(c, [0.3, 0.2, 0.5, 0.9]);
    }
}
