//! Tools for integrators, on real data: `vigil eval` on real CCTV fire frames,
//! checked against pycocotools.

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;

/// Runs the CLI; (exit ok, stdout, stderr).
fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("vigil runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn eval_on_fire8_agrees_with_pycocotools() {
    let (Some(data), Some(_), Some(python)) = (
        dataset("fire-8/data.yaml"),
        model("fire_smoke_yolov8_640.onnx"),
        pycocotools_python(),
    ) else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().to_str().unwrap();
    let (ok, table, stderr) = cli(&[
        "eval",
        "-c",
        "config/fire-evaluation.toml",
        "--data",
        data.to_str().unwrap(),
        "--split",
        "valid",
        "--resize",
        "640x480",
        "--out",
        out_dir,
    ]);
    assert!(ok, "{table}{stderr}");
    assert!(
        table.contains("frames (any box)") && table.contains("confusion"),
        "{table}"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["images"], 47);
    let svg = std::fs::read_to_string(out.path().join("pr.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("<polyline"),
        "{svg}"
    );

    let independent = Command::new(&python)
        .arg(repo().join("tests/helpers/coco_ap.py"))
        .arg(out.path().join("coco_truth.json"))
        .arg(out.path().join("coco_detections.json"))
        .output()
        .unwrap();
    assert!(
        independent.status.success(),
        "{}",
        String::from_utf8_lossy(&independent.stderr)
    );
    let theirs: Value = serde_json::from_slice(&independent.stdout).unwrap();
    for class in report["classes"].as_array().unwrap() {
        let name = class["class"].as_str().unwrap();
        let ours = class["boxes"]["ap50_coco"].as_f64().unwrap();
        let pycocotools = theirs[name].as_f64().unwrap();
        eprintln!("{name}: AP50 vigil {ours:.4}, pycocotools {pycocotools:.4}");
        assert!(
            (ours - pycocotools).abs() <= 0.01,
            "{name}: vigil {ours} vs pycocotools {pycocotools}"
        );
        // Real fire and smoke are in these frames: the detector must see some.
        assert!(class["frames"]["ap50"].as_f64().unwrap() > 0.3, "{class}");
    }
}

#[test]
fn eval_names_the_problem_with_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("valid/images")).unwrap();
    std::fs::create_dir_all(root.join("valid/labels")).unwrap();
    std::fs::write(root.join("data.yaml"), "names: [Fire, smoke]\n").unwrap();
    std::fs::write(root.join("valid/images/broken.jpg"), b"not a jpeg").unwrap();
    let data = root.to_str().unwrap();
    let (ok, _, err) = cli(&[
        "eval",
        "-c",
        "config/fire-evaluation.toml",
        "--data",
        data,
        "--map",
        "Fyre=fire",
    ]);
    assert!(!ok && err.contains("no class \"Fyre\""), "{err}");
    if model("fire_smoke_yolov8_640.onnx").is_none() {
        return;
    }
    let (ok, _, err) = cli(&["eval", "-c", "config/fire-evaluation.toml", "--data", data]);
    assert!(
        !ok && err.contains("broken.jpg") && err.contains("cannot decode"),
        "{err}"
    );
}

/// Every frame of a video file, decoded by GStreamer: (count, RGB of frame `keep`).
fn decode_frames(path: &std::path::Path, keep: usize) -> (usize, Option<(u32, u32, Vec<u8>)>) {
    use gstreamer as gst;
    use gstreamer::prelude::*;
    gst::init().unwrap();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! decodebin ! videoconvert ! video/x-raw,format=RGB ! appsink name=out sync=false",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline
        .by_name("out")
        .unwrap()
        .downcast::<gstreamer_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut count = 0;
    let mut kept = None;
    while let Ok(sample) = sink.pull_sample() {
        if count == keep {
            let caps = sample.caps().unwrap().structure(0).unwrap().to_owned();
            let (w, h) = (
                caps.get::<i32>("width").unwrap(),
                caps.get::<i32>("height").unwrap(),
            );
            let map = sample.buffer().unwrap().map_readable().unwrap();
            // Rows are padded to 4 bytes; keep them packed.
            let stride = map.len() / h as usize;
            let mut rgb = Vec::with_capacity((w * h * 3) as usize);
            for row in 0..h as usize {
                rgb.extend_from_slice(&map[row * stride..row * stride + 3 * w as usize]);
            }
            kept = Some((w as u32, h as u32, rgb));
        }
        count += 1;
    }
    pipeline.set_state(gst::State::Null).unwrap();
    (count, kept)
}

/// `vigil replay --annotate --detections` on the one-by-one clip: the annotated
/// MP4 has every frame of the source and differs from it inside the zone (boxes,
/// dwell labels drawn); the detection log has a line per frame, with dwell times.
#[test]
fn annotated_replay_shows_what_the_detector_saw() {
    let (Some(video), Some(model)) = (
        media("people/intel_one-by-one-person-detection.mp4"),
        model("yolox_nano_416.onnx"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The zone: the middle of the room, where people stand.
    let zone = [0.25f32, 0.15, 0.85, 0.98];
    let config = write_config(
        dir.path(),
        &format!(
            r#"{}
[[cameras]]
id = "room"
source = "{}"
detectors = [{{ name = "coco" }}]
[[cameras.zones]]
name = "middle"
polygon = [[{x1}, {y1}], [{x2}, {y1}], [{x2}, {y2}], [{x1}, {y2}]]
[[cameras.rules]]
kind = "loitering"
zone = "middle"
classes = ["person"]
dwell_s = 18
[storage]
enabled = false
"#,
            yolox_detector(&model),
            video.display(),
            x1 = zone[0],
            y1 = zone[1],
            x2 = zone[2],
            y2 = zone[3],
        ),
    );
    let annotated = dir.path().join("room.mp4");
    let log = dir.path().join("detections.jsonl");
    let (ok, _, stderr) = cli(&[
        "replay",
        "-c",
        config.to_str().unwrap(),
        "--events",
        dir.path().join("events.jsonl").to_str().unwrap(),
        "--annotate",
        annotated.to_str().unwrap(),
        "--detections",
        log.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");

    // 40 s in: the first person has stood in the zone since 23.8 s.
    let at = 400;
    let (source_frames, source_frame) = decode_frames(&video, at);
    let (_, annotated_frame) = decode_frames(&annotated, at);
    assert!(
        source_frames > 1000,
        "source decoded: {source_frames} frames"
    );
    // What a browser needs: H.264 High (not 4:4:4), 4:2:0, a keyframe first.
    let clip = inspect_clip(&annotated);
    assert_eq!(
        clip.frames, source_frames,
        "the annotated replay keeps every frame"
    );
    assert_eq!(clip.profile, "high", "{clip:?}");
    assert_eq!(clip.decoded_format, "I420", "{clip:?}");
    assert!(clip.first_is_keyframe, "{clip:?}");
    let ((w, h, a), (_, _, b)) = (source_frame.unwrap(), annotated_frame.unwrap());
    let (zx1, zy1, zx2, zy2) = (
        (zone[0] * w as f32) as usize + 4,
        (zone[1] * h as f32) as usize + 4,
        (zone[2] * w as f32) as usize - 4,
        (zone[3] * h as f32) as usize - 4,
    );
    let mut changed = 0;
    let mut total = 0;
    for y in zy1..zy2 {
        for x in zx1..zx2 {
            let i = 3 * (y * w as usize + x);
            total += 1;
            if (0..3).any(|c| a[i + c].abs_diff(b[i + c]) > 60) {
                changed += 1;
            }
        }
    }
    let share = changed as f64 / total as f64;
    eprintln!(
        "frame {at}: {:.2}% of the zone's pixels drawn over",
        share * 100.0
    );
    assert!(share > 0.005, "annotations inside the zone: {share}");

    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), source_frames, "one detection line per frame");
    let line = &lines[at];
    assert!(
        (line["time_s"].as_f64().unwrap() - 40.0).abs() < 0.2,
        "{line}"
    );
    let dwell = lines[at..at + 10]
        .iter()
        .flat_map(|l| l["tracks"].as_array().unwrap().clone())
        .filter_map(|t| t["dwell_s"]["middle"].as_f64())
        .fold(0.0, f64::max);
    assert!(
        dwell > 15.0,
        "a person stood in the zone for ~20 s at 45 s: {dwell}"
    );
}

/// Every `config/*.toml`, sorted.
fn example_configs() -> Vec<std::path::PathBuf> {
    let mut configs: Vec<_> = std::fs::read_dir(repo().join("config"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    configs.sort();
    assert!(configs.len() >= 5, "{configs:?}");
    configs
}

/// `vigil schema` describes every shipped config, and rejects a misspelt key, as
/// an independent validator (Python `jsonschema`) reads it.
#[test]
fn every_example_config_validates_against_the_schema() {
    let Some(python) = pycocotools_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (ok, schema, stderr) = cli(&["schema"]);
    assert!(ok, "{stderr}");
    let schema_file = dir.path().join("vigil.schema.json");
    std::fs::write(&schema_file, &schema).unwrap();

    let mut documents = Vec::new();
    let configs = example_configs();
    for config in &configs {
        let value: serde_json::Value =
            toml::from_str(&std::fs::read_to_string(config).unwrap()).unwrap();
        let json = dir
            .path()
            .join(config.file_name().unwrap())
            .with_extension("json");
        std::fs::write(&json, value.to_string()).unwrap();
        documents.push(json);
    }
    // The demo with a typo in a loitering rule.
    let demo = std::fs::read_to_string(repo().join("config/demo.toml")).unwrap();
    let typo: serde_json::Value = toml::from_str(&demo.replace("dwell_s", "dwel_s")).unwrap();
    let typo_file = dir.path().join("typo.json");
    std::fs::write(&typo_file, typo.to_string()).unwrap();
    documents.push(typo_file.clone());

    let out = Command::new(&python)
        .arg(repo().join("tests/helpers/validate_schema.py"))
        .arg(&schema_file)
        .args(&documents)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in report.lines() {
        if line.contains("typo.json") {
            assert!(
                line.starts_with("invalid"),
                "a misspelt key must fail: {line}"
            );
        } else {
            assert!(line.starts_with("ok "), "{line}");
        }
    }
    assert_eq!(report.lines().count(), documents.len(), "{report}");
}

/// Every shipped config passes `vigil check`, not only the schema: detector
/// classes a rule names, models that load, sources that open. (A default that
/// named a class no detector of compound.toml emits once passed the schema.)
#[test]
fn every_example_config_passes_vigil_check() {
    let configs = example_configs();
    for config in &configs {
        let (ok, stdout, stderr) = cli(&["check", "-c", &config.display().to_string()]);
        if !ok && stderr.contains("not found") && std::env::var("CI").as_deref() != Ok("true") {
            eprintln!(
                "SKIP {}: a file it names is missing here: {stderr}",
                config.display()
            );
            continue;
        }
        assert!(ok, "{}: {stdout}{stderr}", config.display());
    }
}

/// The shipped alert truth files pass; a truth file that expects an alert the
/// clip does not have reports the miss (and the alert it did not expect).
#[test]
fn alert_truth_files_pass_and_a_wrong_one_reports_the_miss() {
    let (Some(_), Some(_), Some(_), Some(_)) = (
        media("people/intel_one-by-one-person-detection.mp4"),
        model("yolox_nano_416.onnx"),
        media("fire_smoke/robmarkcole_pan-fire.jpg"),
        model("fire_smoke_yolov8_640.onnx"),
    ) else {
        return;
    };
    let (ok, out, err) = cli(&[
        "eval",
        "--alerts",
        "config/truth/one-by-one.toml",
        "--alerts",
        "config/truth/fire-evaluation.toml",
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("3 hit(s), 0 miss(es), 0 false alarm(s)"),
        "{out}"
    );
    assert!(
        out.contains("1 hit(s), 0 miss(es), 0 false alarm(s)"),
        "{out}"
    );

    // Wrong on purpose: the fire expected 3 s late (the short clip: the
    // matching itself is unit-tested in eval::alerts).
    let dir = tempfile::tempdir().unwrap();
    let truth = std::fs::read_to_string(repo().join("config/truth/fire-evaluation.toml"))
        .unwrap()
        .replace(
            "config = \"../fire-evaluation.toml\"",
            &format!(
                "config = \"{}\"",
                repo().join("config/fire-evaluation.toml").display()
            ),
        )
        .replace("start_s = 2.0", "start_s = 5.0");
    let wrong = dir.path().join("wrong.toml");
    std::fs::write(&wrong, truth).unwrap();
    let (ok, out, err) = cli(&["eval", "--alerts", wrong.to_str().unwrap(), "--json"]);
    assert!(!ok, "a miss fails: {out}{err}");
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["hits"].as_array().unwrap().len(), 0, "{report}");
    assert_eq!(report["misses"][0]["start_s"], 5.0, "{report}");
    let early = report["false_alarms"][0]["start_s"].as_f64().unwrap();
    assert!((early - 2.0).abs() < 1.0, "{report}");
}

/// Copies the first `n` images of a YOLO split (labels too) into `dir`, each
/// resized by `fit` (or linked as they are).
fn subset(
    data: &std::path::Path,
    dir: &std::path::Path,
    n: usize,
    fit: Option<(u32, u32)>,
) -> Vec<std::path::PathBuf> {
    let root = data.parent().unwrap();
    std::fs::create_dir_all(dir.join("train/images")).unwrap();
    std::fs::create_dir_all(dir.join("train/labels")).unwrap();
    std::fs::copy(data, dir.join("data.yaml")).unwrap();
    let mut images: Vec<_> = std::fs::read_dir(root.join("train/images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    images.sort();
    images.truncate(n);
    let mut out = Vec::new();
    for image in images {
        let name = image.file_name().unwrap();
        let label = root
            .join("train/labels")
            .join(image.with_extension("txt").file_name().unwrap());
        std::fs::copy(
            &label,
            dir.join("train/labels").join(label.file_name().unwrap()),
        )
        .unwrap();
        let target = dir.join("train/images").join(name);
        match fit {
            None => std::os::unix::fs::symlink(&image, &target).unwrap(),
            // Fitted by GStreamer's own scaler, as a camera's frames are, and kept
            // lossless (PNG under the .jpg name: decoders go by content).
            Some((w, h)) => {
                let target = target.with_extension("png");
                let ok = Command::new("gst-launch-1.0")
                    .args(["-q", "filesrc"])
                    .arg(format!("location={}", image.display()))
                    .args(["!", "jpegdec", "!", "videoscale", "!"])
                    .arg(format!("video/x-raw,width={w},height={h}"))
                    .args("! videoconvert ! video/x-raw,format=RGB ! pngenc ! filesink".split(' '))
                    .arg(format!("location={}", target.display()))
                    .status()
                    .expect("gst-launch-1.0 runs")
                    .success();
                assert!(ok, "fitting {}", image.display());
                out.push(target);
                continue;
            }
        }
        out.push(target);
    }
    out
}

fn person_ap(report_dir: &std::path::Path) -> f64 {
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(report_dir.join("report.json")).unwrap())
            .unwrap();
    report["classes"][0]["boxes"]["ap50"].as_f64().unwrap()
}

/// `vigil eval` sees what a camera sees: 1080p CCTV people at their native size
/// score what the same pictures fitted to the model beforehand do (before the
/// fix, the model saw only their top-left corner: AP 0.000), and its boxes on a
/// picture are the ones `vigil replay --detections` finds on that picture
/// streamed as a camera, for 1080p pictures and for ones smaller than the model.
#[test]
fn eval_measures_what_a_camera_sees() {
    let (Some(data), Some(model)) = (
        dataset("cctv-people/data.yaml"),
        model("yolox_nano_416.onnx"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let native = subset(&data, &dir.path().join("native"), 16, None);
    subset(&data, &dir.path().join("fitted"), 16, Some((416, 234)));
    let small = subset(&data, &dir.path().join("small"), 16, Some((320, 180)));
    let mut aps = Vec::new();
    for set in ["native", "fitted", "small"] {
        let config = write_config(
            &dir.path().join(set),
            &format!(
                "{}\n[[cameras]]\nid = \"lobby\"\nsource = \"{}\"\ndetectors = [{{ name = \"coco\" }}]\n",
                yolox_detector(&model),
                still_stream(&native[0], 1)
            ),
        );
        let out = dir.path().join(set).join("eval");
        let (ok, table, err) = cli(&[
            "eval",
            "-c",
            config.to_str().unwrap(),
            "--data",
            dir.path().join(set).to_str().unwrap(),
            "--map",
            "person=person",
            "--min-score",
            "0.3",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(ok, "{set}: {table}{err}");
        aps.push(person_ap(&out));
    }
    eprintln!(
        "person AP@0.5 on 16 cctv-people frames: native {:.3}, pre-fitted {:.3}, 320x180 {:.3}",
        aps[0], aps[1], aps[2]
    );
    assert!(aps[0] > 0.3, "1080p frames are seen whole: AP {}", aps[0]);
    assert!(
        (aps[0] - aps[1]).abs() <= 0.01,
        "native {} vs pre-fitted {}",
        aps[0],
        aps[1]
    );

    // The same pictures streamed through `vigil replay --detections` as cameras.
    for (set, images) in [("native", &native), ("small", &small)] {
        let eval: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(set).join("eval/coco_detections.json"))
                .unwrap(),
        )
        .unwrap();
        for (index, image) in images.iter().enumerate().take(3) {
            let first = first_frame_seen(&dir.path().join(set), &model, image, "");
            let replayed: Vec<([f64; 4], f64)> = first["detections"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["label"] == "person")
                .map(|d| {
                    let b = &d["bbox"];
                    let c = |i: usize| b[i].as_f64().unwrap();
                    ([c(0), c(1), c(2), c(3)], d["score"].as_f64().unwrap())
                })
                .collect();
            let evaluated: Vec<([f64; 4], f64)> = eval
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["image_id"] == index + 1)
                .map(|d| {
                    let b = &d["bbox"];
                    let c = |i: usize| b[i].as_f64().unwrap();
                    (
                        [c(0), c(1), c(0) + c(2), c(1) + c(3)],
                        d["score"].as_f64().unwrap(),
                    )
                })
                .collect();
            assert!(!replayed.is_empty(), "{set} {index}: people found");
            assert_eq!(
                replayed.len(),
                evaluated.len(),
                "{set} {index}: {replayed:?} vs {evaluated:?}"
            );
            for (b, score) in &replayed {
                let (iou, other) = evaluated
                    .iter()
                    .map(|(e, s)| (box_iou(b, e), *s))
                    .fold((0.0, 0.0), |best, x| if x.0 > best.0 { x } else { best });
                assert!(
                    iou >= 0.95 && (score - other).abs() <= 0.02,
                    "{set} {index}: replay box {b:?} {score:.3}: best eval match IoU {iou:.3} score {other:.3}"
                );
            }
        }
    }
}

fn box_iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |x: &[f64; 4]| (x[2] - x[0]) * (x[3] - x[1]);
    inter / (area(a) + area(b) - inter).max(1e-9)
}

/// A 1080p waiting-room frame streamed as a camera: with 2x1 tiles the model runs
/// twice per frame on the tiles it reports, and finds at least as many people as
/// on the whole frame at the same threshold, each once (no half-person doubles:
/// no two person boxes overlap by more than half of the smaller one).
#[test]
fn tiles_run_at_full_resolution_and_join_cut_people() {
    let (Some(data), Some(model)) = (
        dataset("cctv-people/data.yaml"),
        model("yolox_nano_416.onnx"),
    ) else {
        return;
    };
    let image = std::fs::read_dir(data.parent().unwrap().join("train/images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut people = Vec::new();
    for tiles in ["", ", tiles = { cols = 2, rows = 1, overlap = 0.2 }"] {
        let first = first_frame_seen(dir.path(), &model, &image, tiles);
        let boxes: Vec<[f64; 4]> = first["detections"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["label"] == "person")
            .map(|d| {
                let b = &d["bbox"];
                [0, 1, 2, 3].map(|i| b[i].as_f64().unwrap())
            })
            .collect();
        if !tiles.is_empty() {
            let regions = first["regions"].as_array().expect("tiles reported");
            assert_eq!(regions.len(), 2, "{first}");
            assert!(regions[0][2].as_f64().unwrap() > 1000.0, "{regions:?}");
            // A half person is a box ending at an inner tile edge; it must have
            // been joined to the whole one found by the other tile.
            let edges = [
                regions[0][2].as_f64().unwrap(),
                regions[1][0].as_f64().unwrap(),
            ];
            let cut = |b: &[f64; 4]| {
                edges
                    .iter()
                    .any(|e| (b[2] - e).abs() < 2.0 || (b[0] - e).abs() < 2.0)
            };
            for (i, a) in boxes.iter().enumerate() {
                for b in &boxes[i + 1..] {
                    if !(cut(a) || cut(b)) {
                        continue;
                    }
                    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
                    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
                    let smaller =
                        ((a[2] - a[0]) * (a[3] - a[1])).min((b[2] - b[0]) * (b[3] - b[1]));
                    assert!(w * h <= 0.6 * smaller, "a person twice: {a:?} {b:?}");
                }
            }
        }
        people.push(boxes.len());
    }
    eprintln!(
        "people on a 1080p frame: whole {}, 2x1 tiles {}",
        people[0], people[1]
    );
    assert!(people[1] >= people[0], "{people:?}");
}

/// The training tool's Python: `third_party/train` (made by `models/train/setup`,
/// which scripts/test runs). Skips loudly when absent; under `CI=true` it fails.
fn training_python() -> Option<std::path::PathBuf> {
    let python = repo().join("third_party/train/bin/python");
    if python.is_file() {
        return Some(python);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "third_party/train is missing: run models/train/setup"
    );
    eprintln!("SKIP: third_party/train is missing (run models/train/setup)");
    None
}

/// The training tool starts from the YOLOX-Nano vigil ships: its transplanted
/// torch model gives onnxruntime's scores within 1e-4, and one training step on
/// four fire-8 frames exports an ONNX that `vigil check` loads with the YOLOX
/// decoder and `vigil eval` runs, with the same input and output contract.
#[test]
fn training_tool_transplants_trains_one_step_and_exports_for_vigil() {
    let (Some(python), Some(model), Some(dog), Some(data)) = (
        training_python(),
        model("yolox_nano_416.onnx"),
        media("misc/dog.jpg"),
        dataset("fire-8/data.yaml"),
    ) else {
        return;
    };
    let train = repo().join("models/train/train.py");
    let out = Command::new(&python)
        .arg(&train)
        .args(["transplant-check", "--onnx"])
        .arg(&model)
        .arg("--image")
        .arg(&dog)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let check: Value = serde_json::from_str(report.trim()).unwrap();
    eprintln!("transplant: {check}");
    assert!(check["score_max_abs_diff"].as_f64().unwrap() <= 1e-4);
    assert_eq!(check["top_class"], 16, "the dog photo's top class is dog");

    let dir = tempfile::tempdir().unwrap();
    let four = dir.path().join("four");
    let images = subset_split(&data, &four, "valid", 4);
    assert_eq!(images, 4);
    let run = dir.path().join("run");
    let onnx = dir.path().join("fire_smoke.onnx");
    train_one_step(
        &python,
        &model,
        &format!("{}:train", four.display()),
        &[
            "--classes",
            "fire,smoke",
            "--map",
            "Fire=fire",
            "--aspect",
            "640x480",
            "--export",
            onnx.to_str().unwrap(),
        ],
        &run,
    );
    for file in ["last.pt", "run.json", "data.json", "log.jsonl"] {
        assert!(
            run.join(file).is_file(),
            "{file} written next to the weights"
        );
    }
    let config = write_config(
        dir.path(),
        &format!(
            "{}\n[[cameras]]\nid = \"shop\"\nsource = \"{}\"\ndetectors = [{{ name = \"fire\" }}]\n",
            yolox_detector_as("fire", r#"["fire", "smoke"]"#, 0.01, &onnx),
            still_stream(&dog, 1)
        ),
    );
    let (ok, out, err) = cli(&["check", "-c", config.to_str().unwrap()]);
    assert!(ok, "vigil loads the exported model: {out}{err}");
    let (ok, out, err) = cli(&[
        "eval",
        "-c",
        config.to_str().unwrap(),
        "--data",
        four.to_str().unwrap(),
        "--map",
        "Fire=fire",
        "--json",
    ]);
    assert!(ok, "vigil eval runs the exported model: {out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["images"], 4);
}

/// One training step of the training tool (batch 2, backbone frozen) on
/// `data` (`folder:split`) with `args` (classes, maps, export), into `run`;
/// fails the test with the tool's output if it fails.
fn train_one_step(
    python: &std::path::Path,
    model: &std::path::Path,
    data: &str,
    args: &[&str],
    run: &std::path::Path,
) {
    let out = Command::new(python)
        .arg(repo().join("models/train/train.py"))
        .arg("train")
        .arg("--onnx")
        .arg(model)
        .args(["--data", data])
        .args(args)
        .args([
            "--epochs",
            "1",
            "--batch",
            "2",
            "--max-steps",
            "1",
            "--freeze-backbone",
        ])
        .arg("--out")
        .arg(run)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The first `n` images of one split of a YOLO set, as the `train` split of a new
/// set in `dir` (labels and data.yaml copied); returns how many.
fn subset_split(data: &std::path::Path, dir: &std::path::Path, split: &str, n: usize) -> usize {
    let root = data.parent().unwrap();
    std::fs::create_dir_all(dir.join("train/images")).unwrap();
    std::fs::create_dir_all(dir.join("train/labels")).unwrap();
    std::fs::copy(data, dir.join("data.yaml")).unwrap();
    let mut images: Vec<_> = std::fs::read_dir(root.join(split).join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    images.sort();
    images.truncate(n);
    for image in &images {
        let label = root
            .join(split)
            .join("labels")
            .join(image.with_extension("txt").file_name().unwrap());
        std::fs::copy(
            &label,
            dir.join("train/labels").join(label.file_name().unwrap()),
        )
        .unwrap();
        std::os::unix::fs::symlink(
            image,
            dir.join("train/images").join(image.file_name().unwrap()),
        )
        .unwrap();
    }
    images.len()
}

/// `vigil replay --detections` of one still picture streamed as a camera (the
/// COCO detector, with `extra` added to its camera use, e.g. tiles): the first
/// frame's line.
fn first_frame_seen(
    dir: &std::path::Path,
    model: &std::path::Path,
    image: &std::path::Path,
    extra: &str,
) -> Value {
    let config = write_config(
        dir,
        &format!(
            "{}\n[[cameras]]\nid = \"still\"\nsource = \"{}\"\ndetectors = [{{ name = \"coco\"{extra} }}]\n[storage]\nenabled = false\n",
            yolox_detector(model),
            still_stream(image, 1)
        ),
    );
    let lines = dir.join("detections.jsonl");
    let (ok, out, err) = cli(&[
        "replay",
        "-c",
        config.to_str().unwrap(),
        "--events",
        "/dev/null",
        "--detections",
        lines.to_str().unwrap(),
    ]);
    assert!(ok, "{out}{err}");
    let text = std::fs::read_to_string(&lines).unwrap();
    serde_json::from_str(text.lines().next().expect("a frame was seen")).unwrap()
}

/// `vigil dataset export` on the one-by-one clip writes a YOLO folder to label:
/// each frame once (no two with the same picture and the same objects in the
/// same places), each pre-label where `vigil replay --detections` saw that
/// object at that media time, and a folder `vigil eval` and the training tool
/// both read (eval of the same detector against its own pre-labels: AP 1).
#[test]
fn dataset_export_writes_prelabelled_frames_that_eval_and_the_trainer_read() {
    let (Some(model), Some(clip)) = (
        model("yolox_nano_416.onnx"),
        media("people/intel_one-by-one-person-detection.mp4"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "{}\n[[cameras]]\nid = \"room\"\nsource = \"{}\"\nfps = 4\ndetectors = [{{ name = \"coco\" }}]\n",
            yolox_detector(&model),
            clip.display()
        ),
    );
    let out = dir.path().join("export");
    let (ok, stdout, stderr) = cli(&[
        "dataset",
        "export",
        "-c",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}{stderr}");
    eprintln!("{}", stdout.trim());
    let listing: Vec<Value> = std::fs::read_to_string(out.join("export.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(listing.len() >= 5, "{} frames", listing.len());
    let yaml = std::fs::read_to_string(out.join("data.yaml")).unwrap();
    assert!(yaml.contains("\"person\""), "{yaml}");
    let names: Vec<String> = yaml
        .lines()
        .find_map(|l| l.strip_prefix("names: "))
        .map(|n| serde_json::from_str(n).unwrap())
        .unwrap();
    let person = names.iter().position(|n| n == "person").unwrap();

    // Every pre-label is a box the detector reported on that frame.
    let detections = dir.path().join("detections.jsonl");
    let (ok, _, stderr) = cli(&[
        "replay",
        "-c",
        config.to_str().unwrap(),
        "--no-record",
        "--events",
        "/dev/null",
        "--detections",
        detections.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let frames: Vec<Value> = std::fs::read_to_string(&detections)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut kept: Vec<(image::GrayImage, Vec<[f64; 4]>)> = Vec::new();
    let mut people = 0;
    for entry in &listing {
        let image_path = out.join(entry["image"].as_str().unwrap());
        let picture = image::open(&image_path).unwrap();
        let (w, h) = (picture.width() as f64, picture.height() as f64);
        assert_eq!((w, h), (768.0, 432.0), "the camera's own size and aspect");
        let labels = std::fs::read_to_string(
            image_path
                .to_str()
                .unwrap()
                .replace("/images/", "/labels/")
                .replace(".jpg", ".txt"),
        )
        .unwrap();
        let time = entry["time_s"].as_f64().unwrap();
        let seen = frames
            .iter()
            .find(|f| (f["time_s"].as_f64().unwrap() - time).abs() < 1e-6)
            .expect("the replay processed the same frame");
        let mut boxes = Vec::new();
        for line in labels.lines() {
            let v: Vec<f64> = line.split(' ').map(|f| f.parse().unwrap()).collect();
            let b = [
                (v[1] - v[3] / 2.0) * w,
                (v[2] - v[4] / 2.0) * h,
                (v[1] + v[3] / 2.0) * w,
                (v[2] + v[4] / 2.0) * h,
            ];
            let class = &names[v[0] as usize];
            let matched = seen["detections"].as_array().unwrap().iter().any(|d| {
                let d_box: Vec<f64> = d["bbox"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect();
                d["label"] == class.as_str()
                    && d["score"].as_f64().unwrap() >= 0.3
                    && box_iou(&b, &[d_box[0], d_box[1], d_box[2], d_box[3]]) > 0.98
            });
            assert!(
                matched,
                "{class} {b:?} at {time} s: not what the detector saw: {seen}"
            );
            people += usize::from(v[0] as usize == person);
            boxes.push(b);
        }
        // No duplicates: a frame repeats a kept one only if its picture is
        // nearly the same and its boxes sit in the same places.
        let thumb = image::imageops::resize(
            &picture.to_luma8(),
            32,
            18,
            image::imageops::FilterType::Triangle,
        );
        for (other, other_boxes) in &kept {
            let change: f64 = thumb
                .pixels()
                .zip(other.pixels())
                .map(|(a, b)| (a[0] as f64 - b[0] as f64).abs())
                .sum::<f64>()
                / (32.0 * 18.0);
            let same_boxes = boxes.len() == other_boxes.len()
                && boxes
                    .iter()
                    .all(|b| other_boxes.iter().any(|o| box_iou(b, o) >= 0.7));
            assert!(
                change > 2.0 || !same_boxes,
                "{} repeats a kept frame",
                entry["image"]
            );
        }
        kept.push((thumb, boxes));
    }
    assert!(people >= 4, "{people} people pre-labelled");

    // vigil eval reads it: the same detector against its own pre-labels.
    let (ok, stdout, stderr) = cli(&[
        "eval",
        "-c",
        config.to_str().unwrap(),
        "--data",
        out.to_str().unwrap(),
        "--map",
        "person=person",
        "--json",
    ]);
    assert!(ok, "{stdout}{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["images"], listing.len());
    let person_class = report["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["class"] == "person")
        .unwrap_or_else(|| panic!("{report}"));
    let ap = person_class["boxes"]["ap50"].as_f64().unwrap();
    assert!(ap >= 0.95, "person AP@0.5 against its own pre-labels: {ap}");

    // And a refused second export into the same folder names it.
    let (ok, _, stderr) = cli(&[
        "dataset",
        "export",
        "-c",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        !ok && stderr.contains("already holds an export"),
        "{stderr}"
    );

    // The training tool reads it too (one step, no real training).
    let Some(python) = training_python() else {
        return;
    };
    let run = dir.path().join("run");
    train_one_step(
        &python,
        &model,
        &format!("{}:train", out.display()),
        &["--classes", "person", "--init-from", "person=person"],
        &run,
    );
    let data: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("data.json")).unwrap()).unwrap();
    let train = data["train"].as_array().unwrap();
    assert_eq!(train.len(), listing.len());
    let boxes: usize = train
        .iter()
        .map(|i| i["boxes"].as_array().unwrap().len())
        .sum();
    assert_eq!(boxes, people, "the trainer reads every person pre-label");
}
