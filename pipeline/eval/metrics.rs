//! Detection quality from matched boxes: precision, recall, AP@0.5 (all-point, as
//! the VOC tools compute it since 2010, and COCO's 101-point), the threshold that
//! reaches a wanted precision, a class confusion table and image-level results.
//!
//! Pure: boxes in, numbers out, no model and no files, so every figure here is
//! unit-tested on sets small enough to work out by hand. Matching follows
//! pycocotools (each prediction, best score first, takes the best still-unmatched
//! truth of its class with IoU ≥ 0.5), so the AP can be cross-checked against it.

use crate::geometry::BBox;
use serde::Serialize;

/// IoU a prediction needs with a truth box to count as found.
pub const MATCH_IOU: f32 = 0.5;

/// A labelled box. `class` indexes the evaluated classes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Truth {
    pub image: usize,
    pub class: usize,
    pub bbox: BBox,
}

/// A detector's box on an evaluated image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    pub image: usize,
    pub class: usize,
    pub score: f32,
    pub bbox: BBox,
}

/// One class's predictions in descending score, each marked found or not.
#[derive(Debug, Clone, Default)]
pub struct RankedPredictions {
    /// (score, true positive), best score first.
    pub ranked: Vec<(f32, bool)>,
    /// Number of truth boxes (or positive images) of the class.
    pub positives: usize,
}

/// Precision and recall of a class when everything scoring ≥ `threshold` counts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OperatingPoint {
    pub threshold: f32,
    pub precision: f64,
    pub recall: f64,
    pub true_positives: usize,
    pub false_positives: usize,
}

/// Everything reported for one class at one level (boxes or images).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassQuality {
    pub positives: usize,
    pub predictions: usize,
    /// At the configured floor.
    pub at_floor: OperatingPoint,
    /// All-point interpolated AP at IoU 0.5 (VOC 2010+).
    pub ap50: f64,
    /// COCO's 101-point interpolated AP at IoU 0.5 (what pycocotools prints as AP50).
    pub ap50_coco: f64,
    /// Lowest threshold whose precision is at least the wanted one (the most
    /// recall at that precision); `None` if no threshold reaches it.
    pub for_precision: Option<OperatingPoint>,
    /// The precision–recall curve, one point per distinct score.
    #[serde(skip)]
    pub curve: Vec<(f64, f64)>,
}

/// Marks each prediction of `class` as found or not, COCO-style.
pub fn rank_boxes(truths: &[Truth], predictions: &[Prediction], class: usize) -> RankedPredictions {
    let mut preds: Vec<&Prediction> = predictions.iter().filter(|p| p.class == class).collect();
    // Stable: equal scores keep image order, as pycocotools' mergesort does.
    preds.sort_by(|a, b| b.score.total_cmp(&a.score));
    let class_truths: Vec<&Truth> = truths.iter().filter(|t| t.class == class).collect();
    let mut used = vec![false; class_truths.len()];
    let ranked = preds
        .iter()
        .map(|p| {
            let mut best: Option<(usize, f32)> = None;
            for (i, t) in class_truths.iter().enumerate() {
                if used[i] || t.image != p.image {
                    continue;
                }
                let iou = p.bbox.iou(&t.bbox);
                if iou >= MATCH_IOU && best.is_none_or(|(_, b)| iou > b) {
                    best = Some((i, iou));
                }
            }
            if let Some((i, _)) = best {
                used[i] = true;
            }
            (p.score, best.is_some())
        })
        .collect();
    RankedPredictions {
        ranked,
        positives: class_truths.len(),
    }
}

/// Image level for alarm-style classes: an image is positive if it has any truth
/// box of the class, and scores the best prediction of the class on it.
pub fn rank_images(
    truths: &[Truth],
    predictions: &[Prediction],
    class: usize,
    images: usize,
) -> RankedPredictions {
    let mut positive = vec![false; images];
    for t in truths.iter().filter(|t| t.class == class) {
        positive[t.image] = true;
    }
    let mut best: Vec<Option<f32>> = vec![None; images];
    for p in predictions.iter().filter(|p| p.class == class) {
        let b = &mut best[p.image];
        *b = Some(b.map_or(p.score, |s| s.max(p.score)));
    }
    let mut ranked: Vec<(f32, bool)> = best
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.map(|s| (s, positive[i])))
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    RankedPredictions {
        ranked,
        positives: positive.iter().filter(|p| **p).count(),
    }
}

impl RankedPredictions {
    /// Precision and recall at `threshold`.
    pub fn at(&self, threshold: f32) -> OperatingPoint {
        let kept = self.ranked.iter().take_while(|(s, _)| *s >= threshold);
        let (tp, fp) = kept.fold(
            (0, 0),
            |(tp, fp), (_, hit)| {
                if *hit { (tp + 1, fp) } else { (tp, fp + 1) }
            },
        );
        point(threshold, tp, fp, self.positives)
    }

    /// Cumulative (recall, precision) after each prediction.
    fn cumulative(&self) -> Vec<(f64, f64)> {
        let mut tp = 0usize;
        self.ranked
            .iter()
            .enumerate()
            .map(|(i, (_, hit))| {
                tp += usize::from(*hit);
                let n = self.positives.max(1) as f64;
                (tp as f64 / n, tp as f64 / (i + 1) as f64)
            })
            .collect()
    }

    /// The curve, one point per distinct score (ties cannot be split by a threshold).
    pub fn curve(&self) -> Vec<(f64, f64)> {
        let cumulative = self.cumulative();
        (0..self.ranked.len())
            .filter(|&i| i + 1 == self.ranked.len() || self.ranked[i + 1].0 != self.ranked[i].0)
            .map(|i| cumulative[i])
            .collect()
    }

    /// All-point interpolated average precision (VOC 2010 and later).
    pub fn ap_all_points(&self) -> f64 {
        if self.positives == 0 {
            return 0.0;
        }
        let cumulative = self.cumulative();
        let mut recall = vec![0.0];
        let mut precision = vec![0.0];
        for (r, p) in cumulative {
            recall.push(r);
            precision.push(p);
        }
        recall.push(1.0);
        precision.push(0.0);
        for i in (0..precision.len() - 1).rev() {
            precision[i] = precision[i].max(precision[i + 1]);
        }
        (1..recall.len())
            .filter(|&i| recall[i] != recall[i - 1])
            .map(|i| (recall[i] - recall[i - 1]) * precision[i])
            .sum()
    }

    /// COCO's AP: precision made non-increasing, read at recall 0, 0.01, …, 1.
    pub fn ap_coco_101(&self) -> f64 {
        if self.positives == 0 {
            return 0.0;
        }
        let cumulative = self.cumulative();
        let recall: Vec<f64> = cumulative.iter().map(|c| c.0).collect();
        let mut precision: Vec<f64> = cumulative.iter().map(|c| c.1).collect();
        for i in (0..precision.len().saturating_sub(1)).rev() {
            precision[i] = precision[i].max(precision[i + 1]);
        }
        let sum: f64 = (0..=100)
            .map(|k| {
                // pycocotools: np.linspace(0, 1, 101), searchsorted(side='left').
                let wanted = k as f64 / 100.0;
                let at = recall.partition_point(|r| *r < wanted);
                precision.get(at).copied().unwrap_or(0.0)
            })
            .sum();
        sum / 101.0
    }

    /// The lowest threshold with precision ≥ `wanted`: the most recall at that precision.
    pub fn threshold_for_precision(&self, wanted: f64) -> Option<OperatingPoint> {
        let mut tp = 0;
        let mut best = None;
        for (i, (score, hit)) in self.ranked.iter().enumerate() {
            tp += usize::from(*hit);
            let tie_follows = self.ranked.get(i + 1).is_some_and(|n| n.0 == *score);
            if tie_follows {
                continue;
            }
            let p = point(*score, tp, i + 1 - tp, self.positives);
            if p.precision >= wanted && p.true_positives > 0 {
                best = Some(p);
            }
        }
        best
    }

    pub fn quality(&self, floor: f32, wanted_precision: f64) -> ClassQuality {
        ClassQuality {
            positives: self.positives,
            predictions: self.ranked.len(),
            at_floor: self.at(floor),
            ap50: self.ap_all_points(),
            ap50_coco: self.ap_coco_101(),
            for_precision: self.threshold_for_precision(wanted_precision),
            curve: self.curve(),
        }
    }
}

fn point(threshold: f32, tp: usize, fp: usize, positives: usize) -> OperatingPoint {
    OperatingPoint {
        threshold,
        precision: if tp + fp == 0 {
            1.0
        } else {
            tp as f64 / (tp + fp) as f64
        },
        recall: if positives == 0 {
            0.0
        } else {
            tp as f64 / positives as f64
        },
        true_positives: tp,
        false_positives: fp,
    }
}

/// Confusion at the floors: rows are truth classes plus "background" (a
/// prediction that matched no truth), columns predicted classes plus "missed".
/// Any class may match any truth here, so a fire box on smoke shows up as such.
pub fn confusion(
    truths: &[Truth],
    predictions: &[Prediction],
    floors: &[f32],
    classes: usize,
) -> Vec<Vec<usize>> {
    let background = classes;
    let missed = classes;
    let mut table = vec![vec![0usize; classes + 1]; classes + 1];
    let mut kept: Vec<&Prediction> = predictions
        .iter()
        .filter(|p| p.score >= floors[p.class])
        .collect();
    kept.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut used = vec![false; truths.len()];
    for p in kept {
        let mut best: Option<(usize, f32)> = None;
        for (i, t) in truths.iter().enumerate() {
            if used[i] || t.image != p.image {
                continue;
            }
            let iou = p.bbox.iou(&t.bbox);
            // Prefer a truth of the predicted class when one overlaps enough.
            let rank = iou + if t.class == p.class { 1.0 } else { 0.0 };
            if iou >= MATCH_IOU && best.is_none_or(|(_, b)| rank > b) {
                best = Some((i, rank));
            }
        }
        match best {
            Some((i, _)) => {
                used[i] = true;
                table[truths[i].class][p.class] += 1;
            }
            None => table[background][p.class] += 1,
        }
    }
    for (i, t) in truths.iter().enumerate() {
        if !used[i] {
            table[t.class][missed] += 1;
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x: f32, y: f32) -> BBox {
        BBox {
            x1: x,
            y1: y,
            x2: x + 10.0,
            y2: y + 10.0,
        }
    }
    fn truth(image: usize, x: f32) -> Truth {
        Truth {
            image,
            class: 0,
            bbox: b(x, 0.0),
        }
    }
    fn pred(image: usize, x: f32, score: f32) -> Prediction {
        Prediction {
            image,
            class: 0,
            score,
            bbox: b(x, 0.0),
        }
    }

    /// Worked by hand: 3 truths; ranked hits T F T F (scores .9 .8 .7 .6); the
    /// third truth is never found.
    fn hand_set() -> (Vec<Truth>, Vec<Prediction>) {
        let truths = vec![truth(0, 0.0), truth(1, 0.0), truth(1, 100.0)];
        let preds = vec![
            pred(0, 0.0, 0.9),
            pred(0, 50.0, 0.8),
            pred(1, 1.0, 0.7),
            pred(2, 0.0, 0.6),
        ];
        (truths, preds)
    }

    #[test]
    fn average_precision_matches_the_hand_computation() {
        let (t, p) = hand_set();
        let r = rank_boxes(&t, &p, 0);
        assert_eq!(
            r.ranked.iter().map(|x| x.1).collect::<Vec<_>>(),
            [true, false, true, false]
        );
        // recall 1/3 at precision 1, 2/3 at precision 2/3:
        // AP = 1/3·1 + 1/3·2/3 = 5/9.
        assert!((r.ap_all_points() - 5.0 / 9.0).abs() < 1e-9);
        // 101-point: recall thresholds 0..=0.33 (34 of them) read 1, 0.34..=0.66
        // (33) read 2/3, the rest 0: (34 + 22) / 101.
        assert!((r.ap_coco_101() - 56.0 / 101.0).abs() < 1e-9);
    }

    #[test]
    fn operating_points_and_the_threshold_for_a_precision() {
        let (t, p) = hand_set();
        let r = rank_boxes(&t, &p, 0);
        let at = r.at(0.75);
        assert_eq!((at.true_positives, at.false_positives), (1, 1));
        assert!((at.precision - 0.5).abs() < 1e-9 && (at.recall - 1.0 / 3.0).abs() < 1e-9);
        let best = r.threshold_for_precision(0.6).unwrap();
        assert_eq!(best.threshold, 0.7);
        assert!((best.recall - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(r.threshold_for_precision(1.0).unwrap().threshold, 0.9);
        assert!(
            rank_boxes(&t, &[], 0)
                .threshold_for_precision(0.5)
                .is_none()
        );
    }

    #[test]
    fn a_truth_is_found_once_and_by_the_best_overlap() {
        let truths = vec![truth(0, 0.0), truth(0, 4.0)];
        // Two boxes on the same truth pair: the second takes the one left over.
        let preds = vec![pred(0, 4.0, 0.9), pred(0, 1.0, 0.8), pred(0, 2.0, 0.7)];
        let r = rank_boxes(&truths, &preds, 0);
        assert_eq!(
            r.ranked.iter().map(|x| x.1).collect::<Vec<_>>(),
            [true, true, false]
        );
    }

    #[test]
    fn ties_form_one_point_of_the_curve() {
        let truths = vec![truth(0, 0.0), truth(1, 0.0)];
        let preds = vec![pred(0, 0.0, 0.5), pred(1, 50.0, 0.5)];
        let r = rank_boxes(&truths, &preds, 0);
        assert_eq!(r.curve(), vec![(0.5, 0.5)]);
    }

    #[test]
    fn image_level_counts_frames_not_boxes() {
        // Image 0: fire, found twice; image 1: fire, not found; image 2: no fire, a
        // false box; image 3: nothing at all.
        let truths = vec![truth(0, 0.0), truth(0, 50.0), truth(1, 0.0)];
        let preds = vec![pred(0, 0.0, 0.9), pred(0, 50.0, 0.4), pred(2, 0.0, 0.7)];
        let r = rank_images(&truths, &preds, 0, 4);
        assert_eq!(r.positives, 2);
        assert_eq!(r.ranked, vec![(0.9, true), (0.7, false)]);
        let at = r.at(0.5);
        assert_eq!((at.true_positives, at.false_positives), (1, 1));
        assert_eq!(at.recall, 0.5);
    }

    #[test]
    fn confusion_separates_wrong_class_background_and_missed() {
        let truths = vec![
            truth(0, 0.0),
            Truth {
                image: 0,
                class: 1,
                bbox: b(100.0, 0.0),
            },
            truth(1, 0.0),
        ];
        let preds = vec![
            pred(0, 0.0, 0.9),
            Prediction {
                image: 0,
                class: 0,
                score: 0.8,
                bbox: b(100.0, 0.0),
            },
            pred(2, 0.0, 0.9),
            pred(1, 0.0, 0.1),
        ];
        let table = confusion(&truths, &preds, &[0.5, 0.5], 2);
        assert_eq!(table[0], vec![1, 0, 1]); // one found, one missed (under the floor)
        assert_eq!(table[1], vec![1, 0, 0]); // class 1 called class 0
        assert_eq!(table[2], vec![1, 0, 0]); // background called class 0
    }

    #[test]
    fn no_truth_and_no_prediction_are_zero_not_nan() {
        let r = rank_boxes(&[], &[], 0);
        assert_eq!(r.ap_all_points(), 0.0);
        assert_eq!(r.ap_coco_101(), 0.0);
        assert_eq!(r.at(0.5).precision, 1.0);
    }
}
