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
