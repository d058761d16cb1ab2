//! Decode: raw model outputs → candidate boxes in model-input pixels, then
//! per-class non-maximum suppression.
//!
//! None of the supported graphs contain NMS. Each format's decoder reads the
//! output tensors as ONNX Runtime hands them over (no copies), keeps rows whose
//! best class beats that class's threshold, and pushes into a reused vector.

use super::InputSpec;
use crate::geometry::BBox;
use serde::Deserialize;

/// Layout of a model's output tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// One tensor `[1, N, 5 + C]` of grid rows `x, y, w, h, obj, cls...` over
    /// strides 8/16/32, sigmoids already applied. `N` may be a whole multiple
    /// of the grid: a model with stacked heads (models/train, `--keep-coco`)
    /// repeats the three grids once per head.
    Yolox,
    /// Per stride 8/16/32: class scores `[1, N, C]` and box distributions
    /// `[1, N, 32]` (4 sides x 8 bins).
    Nanodet,
    /// One tensor `[1, 4 + C, N]`: `cx, cy, w, h` in input pixels then class scores.
    Yolov8,
}

const STRIDES: [u32; 3] = [8, 16, 32];
const NANODET_BINS: usize = 8;
/// More grids than this in one YOLOX output is a wrong input size, not heads.
const MAX_STACKED_HEADS: i64 = 4;

/// One raw output tensor, borrowed from the inference session.
pub struct OutputView<'a> {
    pub shape: &'a [i64],
    pub data: &'a [f32],
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub class_id: u32,
    pub score: f32,
    pub bbox: BBox,
}

fn grid_cells(spec: &InputSpec, stride: u32) -> (usize, usize) {
    (
        spec.width.div_ceil(stride) as usize,
        spec.height.div_ceil(stride) as usize,
    )
}

/// Rows of one head's three grids, strides 8/16/32.
fn grid_rows(spec: &InputSpec) -> usize {
    STRIDES
        .iter()
        .map(|s| {
            let (w, h) = grid_cells(spec, *s);
            w * h
        })
        .sum()
}

fn dims_match(actual: &[i64], expected: &[i64]) -> bool {
    actual.len() == expected.len() && actual.iter().zip(expected).all(|(a, e)| *a < 0 || a == e)
}

/// Checks the model's output shapes against what `format` needs; `Err` says what
/// was expected and what the model has.
pub fn check_outputs(
    format: OutputFormat,
    shapes: &[Vec<i64>],
    spec: &InputSpec,
    classes: usize,
) -> Result<(), String> {
    let c = classes as i64;
    let rows = grid_rows(spec) as i64;
    match format {
        OutputFormat::Yolox => {
            let want = [1, rows, 5 + c];
            let stacked = shapes.len() == 1
                && shapes[0].len() == 3
                && shapes[0][1] > rows
                && shapes[0][1] % rows == 0
                && shapes[0][1] / rows <= MAX_STACKED_HEADS
                && dims_match(&shapes[0], &[1, shapes[0][1], 5 + c]);
            if !stacked && (shapes.len() != 1 || !dims_match(&shapes[0], &want)) {
                return Err(format!(
                    "format yolox with {classes} classes at {}x{} needs one output {want:?}, the model has {shapes:?}",
                    spec.width, spec.height
                ));
            }
        }
        OutputFormat::Yolov8 => {
            let ok = shapes.len() == 1
                && shapes[0].len() == 3
                && (shapes[0][1] < 0 || shapes[0][1] == 4 + c);
            if !ok {
                return Err(format!(
                    "format yolov8 with {classes} classes needs one output [1, {}, N], the model has {shapes:?}",
                    4 + c
                ));
            }
        }
        OutputFormat::Nanodet => {
            let mut want = Vec::new();
            for s in STRIDES {
                let (w, h) = grid_cells(spec, s);
                want.push(vec![1, (w * h) as i64, c]);
                want.push(vec![1, (w * h) as i64, 4 * NANODET_BINS as i64]);
            }
            let all_found = want.iter().all(|w| shapes.iter().any(|s| dims_match(s, w)));
            if shapes.len() != 6 || !all_found {
                return Err(format!(
                    "format nanodet with {classes} classes at {}x{} needs six outputs {want:?}, the model has {shapes:?}",
                    spec.width, spec.height
                ));
            }
        }
    }
    Ok(())
}

/// Decodes `outputs` (in the model's output order) into `out`.
pub fn decode(
    format: OutputFormat,
    outputs: &[OutputView<'_>],
    spec: &InputSpec,
    thresholds: &[f32],
    out: &mut Vec<Candidate>,
) -> Result<(), String> {
    if thresholds.is_empty() {
        return Err("the detector has no classes".into());
    }
    let first = || outputs.first().ok_or("the model returned no output");
    match format {
        OutputFormat::Yolox => decode_yolox(first()?, spec, thresholds, out),
        OutputFormat::Yolov8 => decode_yolov8(first()?, thresholds, out),
        OutputFormat::Nanodet => decode_nanodet(outputs, spec, thresholds, out),
    }
}

/// Best class of a row of scores, if it beats its threshold.
#[inline]
fn best_class(
    scores: impl Iterator<Item = f32>,
    factor: f32,
    thresholds: &[f32],
) -> Option<(u32, f32)> {
    let (mut best, mut best_score) = (0usize, f32::MIN);
    for (i, s) in scores.enumerate() {
        if s > best_score {
            best = i;
            best_score = s;
        }
    }
    let score = best_score * factor;
    (score >= thresholds[best]).then_some((best as u32, score))
}

fn decode_yolox(
    out: &OutputView<'_>,
    spec: &InputSpec,
    thresholds: &[f32],
    cands: &mut Vec<Candidate>,
) -> Result<(), String> {
    let width = thresholds.len() + 5;
    let min_threshold = thresholds.iter().copied().fold(f32::MAX, f32::min);
    let head_len = grid_rows(spec) * width;
    if out.data.len() < head_len {
        return Err("yolox output has fewer rows than the grid".into());
    }
    // Stacked heads (see `OutputFormat::Yolox`) are whole grids one after
    // the other; a partial grid at the end is not a head.
    for head in out.data.chunks_exact(head_len) {
        let mut rows = head.chunks_exact(width);
        for stride in STRIDES {
            let (gw, gh) = grid_cells(spec, stride);
            let s = stride as f32;
            for gy in 0..gh {
                for gx in 0..gw {
                    let row = rows
                        .next()
                        .ok_or("yolox output has fewer rows than the grid")?;
                    let obj = row[4];
                    // Scores are obj * cls with cls <= 1: most rows end here.
                    if obj < min_threshold {
                        continue;
                    }
                    let Some((class_id, score)) =
                        best_class(row[5..].iter().copied(), obj, thresholds)
                    else {
                        continue;
                    };
                    let cx = (row[0] + gx as f32) * s;
                    let cy = (row[1] + gy as f32) * s;
                    let w = row[2].exp() * s;
                    let h = row[3].exp() * s;
                    cands.push(Candidate {
                        class_id,
                        score,
                        bbox: BBox::centered(cx, cy, w, h),
                    });
                }
            }
        }
    }
    Ok(())
}

fn decode_yolov8(
    out: &OutputView<'_>,
    thresholds: &[f32],
    cands: &mut Vec<Candidate>,
) -> Result<(), String> {
    let n = out
        .shape
        .get(2)
        .ok_or("yolov8 output is not 3-dimensional")?;
    let n = usize::try_from(*n).map_err(|_| "yolov8 output has a negative size")?;
    let classes = thresholds.len();
    if (4 + classes)
        .checked_mul(n)
        .is_none_or(|needed| out.data.len() < needed)
    {
        return Err("yolov8 output is smaller than its shape".into());
    }
    let d = out.data;
    for i in 0..n {
        let scores = (0..classes).map(|c| d[(4 + c) * n + i]);
        let Some((class_id, score)) = best_class(scores, 1.0, thresholds) else {
            continue;
        };
        let (cx, cy, w, h) = (d[i], d[n + i], d[2 * n + i], d[3 * n + i]);
        cands.push(Candidate {
            class_id,
            score,
            bbox: BBox::centered(cx, cy, w, h),
        });
    }
    Ok(())
}

fn decode_nanodet(
    outputs: &[OutputView<'_>],
    spec: &InputSpec,
    thresholds: &[f32],
    cands: &mut Vec<Candidate>,
) -> Result<(), String> {
    let classes = thresholds.len();
    let box_width = 4 * NANODET_BINS;
    for stride in STRIDES {
        let (gw, gh) = grid_cells(spec, stride);
        let points = gw * gh;
        // The data must hold what the shape claims: a model that lies about
        // its shape is refused, not indexed past its end.
        let is = |o: &&OutputView<'_>, last: usize| {
            o.shape.len() == 3
                && usize::try_from(o.shape[1]) == Ok(points)
                && usize::try_from(o.shape[2]) == Ok(last)
                && o.data.len() >= points * last
        };
        let cls = outputs
            .iter()
            .find(|o| is(o, classes))
            .ok_or("nanodet class output missing")?;
        let reg = outputs
            .iter()
            .filter(|o| is(o, box_width))
            .find(|o| !std::ptr::eq(o.data, cls.data))
            .ok_or("nanodet box output missing")?;
        let s = stride as f32;
        for p in 0..points {
            let scores = &cls.data[p * classes..(p + 1) * classes];
            let Some((class_id, score)) = best_class(scores.iter().copied(), 1.0, thresholds)
            else {
                continue;
            };
            let dist = &reg.data[p * box_width..(p + 1) * box_width];
            let mut sides = [0.0f32; 4];
            for (side, bins) in sides.iter_mut().zip(dist.chunks_exact(NANODET_BINS)) {
                let max = bins.iter().copied().fold(f32::MIN, f32::max);
                let (mut sum, mut expect) = (0.0, 0.0);
                for (k, b) in bins.iter().enumerate() {
                    let e = (b - max).exp();
                    sum += e;
                    expect += e * k as f32;
                }
                *side = expect / sum * s;
            }
            let cx = (p % gw) as f32 * s + 0.5 * (s - 1.0);
            let cy = (p / gw) as f32 * s + 0.5 * (s - 1.0);
            cands.push(Candidate {
                class_id,
                score,
                bbox: BBox {
                    x1: cx - sides[0],
                    y1: cy - sides[1],
                    x2: cx + sides[2],
                    y2: cy + sides[3],
                },
            });
        }
    }
    Ok(())
}

/// Greedy per-class NMS in place: keeps the highest-scored box of each cluster,
/// ordered by score. Allocates nothing.
pub fn nms_per_class(cands: &mut Vec<Candidate>, iou_threshold: f32) {
    cands.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept = 0;
    for i in 0..cands.len() {
        let c = cands[i];
        let suppressed = cands[..kept]
            .iter()
            .any(|k| k.class_id == c.class_id && k.bbox.iou(&c.bbox) > iou_threshold);
        if !suppressed {
            cands[kept] = c;
            kept += 1;
        }
    }
    cands.truncate(kept);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(class_id: u32, score: f32, x: f32) -> Candidate {
        Candidate {
            class_id,
            score,
            bbox: BBox {
                x1: x,
                y1: 0.0,
                x2: x + 10.0,
                y2: 10.0,
            },
        }
    }

    #[test]
    fn nms_suppresses_within_class_only() {
        let mut c = vec![
            cand(0, 0.5, 1.0),
            cand(0, 0.9, 0.0),
            cand(1, 0.8, 0.0),
            cand(0, 0.7, 50.0),
        ];
        nms_per_class(&mut c, 0.45);
        let kept: Vec<(u32, f32)> = c.iter().map(|c| (c.class_id, c.score)).collect();
        assert_eq!(kept, vec![(0, 0.9), (1, 0.8), (0, 0.7)]);
    }

    fn square_spec(size: u32) -> InputSpec {
        InputSpec {
            width: size,
            height: size,
            channels: crate::detect::ChannelOrder::Bgr,
            scale: 1.0,
            mean: [0.0; 3],
            std: [1.0; 3],
            placement: crate::detect::LetterboxPlacement::TopLeft,
            pad: 114,
        }
    }

    /// Two heads stacked (the COCO head for person, a trained head for the
    /// cart): the second grid's rows decode at the same cells as the first's.
    #[test]
    fn a_yolox_output_with_stacked_heads_decodes_every_grid() {
        let spec = square_spec(32);
        let rows = 16 + 4 + 1;
        let classes = 2;
        let width = 5 + classes;
        let mut data = vec![0.0f32; 2 * rows * width];
        // Head 1, stride 8, cell (1, 0): a person. Head 2, stride 32, the
        // one cell: a cart.
        data[width..2 * width].copy_from_slice(&[0.5, 0.5, 0.0, 0.0, 0.9, 0.9, 0.0]);
        let last = (2 * rows - 1) * width;
        data[last..last + width].copy_from_slice(&[0.5, 0.5, 0.0, 0.0, 0.8, 0.0, 0.9]);
        let shape = [1, 2 * rows as i64, width as i64];
        check_outputs(OutputFormat::Yolox, &[shape.to_vec()], &spec, classes).unwrap();
        let mut cands = Vec::new();
        let view = OutputView {
            shape: &shape,
            data: &data,
        };
        decode(OutputFormat::Yolox, &[view], &spec, &[0.3, 0.3], &mut cands).unwrap();
        assert_eq!(cands.len(), 2);
        assert_eq!((cands[0].class_id, cands[0].bbox.x1), (0, 8.0));
        assert_eq!((cands[1].class_id, cands[1].bbox.x1), (1, 0.0));
        // Rows that are not a whole number of grids are a wrong model.
        let odd = [1, 2 * rows as i64 + 1, width as i64];
        assert!(check_outputs(OutputFormat::Yolox, &[odd.to_vec()], &spec, classes).is_err());
    }

    use proptest::prelude::*;

    fn any_value() -> impl Strategy<Value = f32> {
        prop_oneof![
            4 => -10.0f32..10.0,
            1 => Just(f32::NAN),
            1 => Just(f32::INFINITY),
            1 => Just(f32::NEG_INFINITY),
            1 => any::<f32>(),
        ]
    }

    /// A shape near the declared one (or anything), and data that may be
    /// shorter or longer than it claims.
    fn any_output(rows: i64, last: i64) -> impl Strategy<Value = (Vec<i64>, Vec<f32>)> {
        let shape = prop_oneof![
            4 => Just(vec![1, rows, last]),
            1 => Just(vec![1, last, rows]),
            1 => proptest::collection::vec(-3i64..5000, 0..4),
            1 => Just(vec![1, -1, i64::MAX]),
        ];
        (shape, 0usize..4000).prop_flat_map(|(shape, len)| {
            (Just(shape), proptest::collection::vec(any_value(), len))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// No tensor, of the declared shape or not, makes a decoder panic.
        #[test]
        fn decoders_never_panic(
            format in prop_oneof![Just(OutputFormat::Yolox), Just(OutputFormat::Yolov8), Just(OutputFormat::Nanodet)],
            classes in 0usize..4,
            size in prop_oneof![Just(32u32), Just(64), 1u32..80],
            outputs in proptest::collection::vec(any_output(21, 7), 0..7),
            threshold in any_value(),
            iou in any_value(),
        ) {
            let spec = square_spec(size);
            let views: Vec<OutputView<'_>> = outputs
                .iter()
                .map(|(shape, data)| OutputView { shape, data })
                .collect();
            let thresholds = vec![threshold; classes];
            let mut cands = Vec::new();
            let _ = decode(format, &views, &spec, &thresholds, &mut cands);
            nms_per_class(&mut cands, iou);
        }
    }
}
