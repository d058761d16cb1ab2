//! Per-stage benchmarks on a real vtest.avi frame with the real YOLOX-Nano model:
//! preprocess, inference, decode + NMS, tracker update, the motion gate, and the
//! whole per-frame chain (detect → track → rules). A counting allocator reports
//! the heap allocations the chain makes per frame, so a new one on the hot path
//! shows. Skips, naming the file, if media or model are missing.
//! Run: `cargo bench --bench stages`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use vigil::camera::CameraWorker;
use vigil::config::LoadedConfig;
use vigil::detect::{DetectScratch, Letterbox, preprocess};
use vigil::motion::{MotionConfig, MotionGate};
use vigil::source::{CameraSource, Pacing, SourceUri};
use vigil::time::MediaTime;
use vigil::track::{ByteTracker, Tracker, TrackerConfig};

/// Counts Rust heap allocations (ONNX Runtime's own C++ allocations are not seen).
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn existing(candidates: &[&str]) -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    candidates
        .iter()
        .map(|c| root.join(c))
        .find(|p| p.is_file())
}

fn stages(c: &mut Criterion) {
    let video = existing(&["media/people/vtest.avi", "../shared/media/people/vtest.avi"]);
    let model = existing(&[
        "models/weights/yolox_nano_416.onnx",
        "../shared/models/yolox_nano_416.onnx",
    ]);
    let (Some(video), Some(model)) = (video, model) else {
        eprintln!(
            "*** SKIP benches: need people/vtest.avi and yolox_nano_416.onnx (run scripts/setup) ***"
        );
        return;
    };
    let dir = std::env::temp_dir().join("vigil-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("bench.toml");
    std::fs::write(
        &config,
        format!(
            r#"[[detectors]]
name = "coco"
model = "{}"
format = "yolox"
input = [416, 416]
channels = "bgr"
classes = "coco"
[[cameras]]
id = "plaza"
source = "{}"
detectors = [{{ name = "coco" }}]
motion = {{ enabled = false }}
[[cameras.zones]]
name = "plaza"
polygon = [[0.05, 0.35], [0.95, 0.35], [0.95, 0.98], [0.05, 0.98]]
[[cameras.lines]]
name = "entrance"
from = [0.5, 0.3]
to = [0.5, 1.0]
inside = [0.9, 0.6]
[[cameras.rules]]
kind = "loitering"
zone = "plaza"
classes = ["person"]
dwell_s = 15
[[cameras.rules]]
kind = "battery_cart"
line = "entrance"
classes = ["person"]
"#,
            model.display(),
            video.display()
        ),
    )
    .unwrap();
    let loaded = LoadedConfig::load_checked(&config, false).unwrap();
    let detectors: BTreeMap<String, Arc<vigil::detect::Detector>> =
        vigil::app::load_detectors(&loaded, vigil::source::Pacing::Live).unwrap();
    let detector = detectors["coco"].clone();
    let cam = &loaded.config.cameras[0];
    let views = CameraWorker::view_specs(cam, &detectors);
    let uri = SourceUri::resolve(&cam.source, &loaded.base_dir()).unwrap();
    let source = CameraSource::open(
        "plaza",
        &uri,
        None,
        &views,
        Pacing::AsFastAsPossible,
        Default::default(),
    )
    .unwrap();
    // Frame 100: several people in view.
    let mut frame = source.slot().take().unwrap();
    for _ in 0..100 {
        frame = source.slot().take().unwrap();
    }
    drop(source);

    let mut scratch = DetectScratch::default();
    let mut detections = Vec::new();
    frame.views[0]
        .with_image(|img| detector.detect(img, &mut scratch, &mut detections))
        .unwrap()
        .unwrap();

    c.bench_function("preprocess (letterbox + normalise + CHW, 416)", |b| {
        let mut input = vec![0.0f32; 3 * 416 * 416];
        frame.views[0].with_image(|img| {
            let lb = Letterbox::fit(img.width, img.height, &detector.spec);
            b.iter(|| preprocess::fill_picture(img, &detector.spec, &lb, &mut input));
        });
    });

    let mut input = vec![0.0f32; 3 * 416 * 416];
    frame.views[0].with_image(|img| {
        let lb = Letterbox::fit(img.width, img.height, &detector.spec);
        preprocess::fill_padding(&mut input, &detector.spec, &lb);
        preprocess::fill_picture(img, &detector.spec, &lb, &mut input);
    });
    c.bench_function("inference (YOLOX-Nano 416)", |b| {
        b.iter(|| {
            detector
                .pool()
                .run(&input, &detector.spec, |_| Ok(()))
                .unwrap()
        });
    });

    let outputs: Vec<(Vec<i64>, Vec<f32>)> = detector
        .pool()
        .run(&input, &detector.spec, |outs| {
            Ok(outs
                .iter()
                .map(|o| (o.shape.to_vec(), o.data.to_vec()))
                .collect())
        })
        .unwrap();
    c.bench_function("decode + per-class NMS (YOLOX grid)", |b| {
        let views: Vec<vigil::detect::decode::OutputView<'_>> = outputs
            .iter()
            .map(|(s, d)| vigil::detect::decode::OutputView { shape: s, data: d })
            .collect();
        b.iter(|| detector.decode_outputs(&views, &mut scratch));
    });

    c.bench_function("tracker update (ByteTrack)", |b| {
        let mut tracker = ByteTracker::new(TrackerConfig::default());
        b.iter(|| tracker.update(&detections).len());
    });

    c.bench_function("motion gate (luma grid vs reference, whole frame)", |b| {
        let mut gate = MotionGate::new(MotionConfig::default());
        let mut pts = 0u64;
        b.iter(|| {
            pts += 1;
            gate.should_run(&frame.full, MediaTime::from_nanos(pts), None)
        });
    });

    let mut worker = CameraWorker::new(
        cam,
        &detectors,
        &loaded.config.tracker,
        &loaded.config.alerts.routes,
        0,
    );
    for _ in 0..10 {
        worker.process(&frame);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let rounds = 50;
    for _ in 0..rounds {
        worker.process(&frame);
    }
    let per_frame = (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / rounds as f64;
    eprintln!("per-frame chain: {per_frame:.1} Rust heap allocations per frame");

    c.bench_function("per-frame chain (detect → track → rules)", |b| {
        b.iter(|| worker.process(&frame).len());
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = stages
}
criterion_main!(benches);
