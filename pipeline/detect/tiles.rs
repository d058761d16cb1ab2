//! Tiles: the whole frame at the model's resolution.
//!
//! A 416-pixel model shrinks a 1920x1080 frame 4.6 times; people far away become
//! a few pixels. Cutting the frame (or the detector's `roi`) into overlapping
//! tiles, each fitted to the model on its own, keeps them big enough. Each tile
//! is one more view of the decoder (GStreamer crops and scales it, as for an
//! `roi`), so tiles cost inference, not copies. A person cut by a tile edge is
//! found whole in the neighbouring tile and as a part in this one: [`merge`]
//! joins boxes of one class from different tiles when one mostly lies inside the
//! other, so the person is one box, not two halves.

use super::Detection;
use crate::geometry::BBox;
use serde::Deserialize;

/// `tiles = { cols = 2, rows = 1, overlap = 0.2 }` on a camera's detector.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tiles {
    /// Tiles across (1 to 8).
    pub cols: u32,
    /// Tiles down (1 to 8).
    pub rows: u32,
    /// Fraction of a tile shared with its neighbour, in [0, 0.9); default 0.2.
    /// Make it at least as wide as the largest object you expect to be cut.
    #[serde(default = "default_overlap")]
    pub overlap: f32,
    /// Also run the whole frame (or `roi`) once, for objects larger than a tile.
    #[serde(default)]
    pub whole: bool,
}

fn default_overlap() -> f32 {
    0.2
}

/// A box of one tile is merged into another tile's box of the same class when
/// this much of the smaller one lies inside the larger.
const CONTAINED: f32 = 0.6;

impl Tiles {
    /// What is wrong with these numbers, if anything.
    pub fn problem(&self) -> Option<String> {
        if !(1..=8).contains(&self.cols) || !(1..=8).contains(&self.rows) {
            return Some(format!(
                "cols and rows must be 1 to 8, got {}x{}",
                self.cols, self.rows
            ));
        }
        if self.cols * self.rows < 2 {
            return Some("1x1 is the whole frame: remove `tiles`, or use more".into());
        }
        if !(0.0..0.9).contains(&self.overlap) {
            return Some(format!("overlap must be in [0, 0.9), got {}", self.overlap));
        }
        None
    }

    /// Each tile's rectangle `[x1, y1, x2, y2]` in frame fractions, inside `roi`,
    /// row by row; the whole `roi` first when `whole` is set.
    pub fn regions(&self, roi: [f32; 4]) -> Vec<[f32; 4]> {
        let span = |lo: f32, hi: f32, n: u32| -> Vec<(f32, f32)> {
            let n = n.max(1) as f32;
            let size = (hi - lo) / (n - (n - 1.0) * self.overlap);
            let step = size * (1.0 - self.overlap);
            (0..n as u32)
                .map(|i| {
                    let a = lo + i as f32 * step;
                    (a, (a + size).min(hi))
                })
                .collect()
        };
        let mut out = Vec::new();
        if self.whole {
            out.push(roi);
        }
        for (y1, y2) in span(roi[1], roi[3], self.rows) {
            for (x1, x2) in span(roi[0], roi[2], self.cols) {
                out.push([x1, y1, x2, y2]);
            }
        }
        out
    }
}

/// Joins the detections of several tiles (`tile[i]` is where `found[i]` came
/// from; `regions[t]` is tile `t`'s rectangle in frame pixels) in place, highest
/// score first:
/// - a box *cut* by an inner tile edge (it reaches an edge another tile lies
///   beyond) absorbs, or is absorbed by, a box of its class from another tile
///   that mostly contains it, and the kept box grows to cover both: the half
///   person and the whole one are one person;
/// - otherwise boxes of different tiles are one only when they overlap by
///   `iou`, as the model's own NMS would judge them; boxes of one tile were
///   already separated by it and stay apart (two people side by side are two).
pub fn merge(found: &mut Vec<Detection>, tile: &mut Vec<u16>, regions: &[BBox], iou: f32) {
    let outer = regions.iter().fold(None::<BBox>, |acc, r| {
        Some(match acc {
            None => *r,
            Some(a) => BBox {
                x1: a.x1.min(r.x1),
                y1: a.y1.min(r.y1),
                x2: a.x2.max(r.x2),
                y2: a.y2.max(r.y2),
            },
        })
    });
    let cut = |d: &Detection, t: u16| -> bool {
        let (Some(r), Some(o)) = (regions.get(t as usize), outer) else {
            return false;
        };
        const NEAR: f32 = 2.0;
        let b = &d.bbox;
        (b.x1 - r.x1 < NEAR && r.x1 - o.x1 > NEAR)
            || (r.x2 - b.x2 < NEAR && o.x2 - r.x2 > NEAR)
            || (b.y1 - r.y1 < NEAR && r.y1 - o.y1 > NEAR)
            || (r.y2 - b.y2 < NEAR && o.y2 - r.y2 > NEAR)
    };
    let mut order: Vec<usize> = (0..found.len()).collect();
    order.sort_by(|&a, &b| found[b].score.total_cmp(&found[a].score));
    let mut absorbed = vec![false; found.len()];
    let mut kept: Vec<(Detection, u16)> = Vec::with_capacity(found.len());
    for (rank, &i) in order.iter().enumerate() {
        if absorbed[i] {
            continue;
        }
        let mut keep = found[i].clone();
        let keep_cut = cut(&found[i], tile[i]);
        for &j in &order[rank + 1..] {
            if absorbed[j] || found[j].class_id != keep.class_id || tile[j] == tile[i] {
                continue;
            }
            let other = &found[j].bbox;
            if keep.bbox.iou(other) >= iou {
                absorbed[j] = true;
                continue;
            }
            if !(keep_cut || cut(&found[j], tile[j])) {
                continue;
            }
            let smaller = keep.bbox.area().min(other.area()).max(1e-6);
            if intersection(&keep.bbox, other) / smaller >= CONTAINED {
                keep.bbox.x1 = keep.bbox.x1.min(other.x1);
                keep.bbox.y1 = keep.bbox.y1.min(other.y1);
                keep.bbox.x2 = keep.bbox.x2.max(other.x2);
                keep.bbox.y2 = keep.bbox.y2.max(other.y2);
                absorbed[j] = true;
            }
        }
        kept.push((keep, tile[i]));
    }
    found.clear();
    tile.clear();
    for (d, t) in kept {
        found.push(d);
        tile.push(t);
    }
}

fn intersection(a: &BBox, b: &BBox) -> f32 {
    let w = (a.x2.min(b.x2) - a.x1.max(b.x1)).max(0.0);
    let h = (a.y2.min(b.y2) - a.y1.max(b.y1)).max(0.0);
    w * h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(class_id: u32, score: f32, x1: f32, y1: f32, x2: f32, y2: f32) -> Detection {
        Detection {
            class_id,
            label: "person".into(),
            score,
            bbox: BBox { x1, y1, x2, y2 },
        }
    }

    #[test]
    fn tiles_cover_the_roi_with_the_overlap() {
        let t = Tiles {
            cols: 2,
            rows: 1,
            overlap: 0.2,
            whole: false,
        };
        let r = t.regions([0.0, 0.0, 1.0, 1.0]);
        assert_eq!(r.len(), 2);
        // Two tiles of 1/1.8 each, the second starting at 0.8 of the first.
        assert!((r[0][2] - 1.0 / 1.8).abs() < 1e-5, "{r:?}");
        assert!((r[1][0] - 0.8 / 1.8).abs() < 1e-5, "{r:?}");
        assert!((r[1][2] - 1.0).abs() < 1e-5);
        let shared = (r[0][2] - r[1][0]) / (r[0][2] - r[0][0]);
        assert!((shared - 0.2).abs() < 1e-5);
        let roi = Tiles {
            cols: 3,
            rows: 2,
            overlap: 0.0,
            whole: true,
        }
        .regions([0.5, 0.5, 1.0, 1.0]);
        assert_eq!(roi.len(), 7);
        assert_eq!(roi[0], [0.5, 0.5, 1.0, 1.0]);
        assert!(roi[1..].iter().all(|r| r[0] >= 0.5 && r[3] <= 1.0));
    }

    #[test]
    fn bad_tiles_are_named() {
        let t = |cols, rows, overlap| Tiles {
            cols,
            rows,
            overlap,
            whole: false,
        };
        assert!(t(2, 1, 0.2).problem().is_none());
        assert!(t(0, 1, 0.2).problem().is_some());
        assert!(t(1, 1, 0.2).problem().is_some());
        assert!(t(9, 1, 0.2).problem().is_some());
        assert!(t(2, 1, 0.9).problem().is_some());
        assert!(t(2, 1, -0.1).problem().is_some());
    }

    #[test]
    fn a_person_cut_by_the_tile_edge_is_one_box() {
        // Two tiles: 0..161 and 120..300 wide. A person whole in tile 1 and its
        // left part in tile 0, cut at x = 161: one box. A second person in tile 0
        // only, overlapping the first a little: stays separate.
        let regions = [
            BBox {
                x1: 0.0,
                y1: 0.0,
                x2: 161.0,
                y2: 300.0,
            },
            BBox {
                x1: 120.0,
                y1: 0.0,
                x2: 300.0,
                y2: 300.0,
            },
        ];
        let mut found = vec![
            det(0, 0.8, 130.0, 50.0, 190.0, 200.0),
            det(0, 0.6, 131.0, 52.0, 160.5, 198.0),
            det(0, 0.7, 100.0, 60.0, 140.0, 210.0),
        ];
        let mut tile = vec![1, 0, 0];
        merge(&mut found, &mut tile, &regions, 0.45);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!((found[0].score, found[0].bbox.x1), (0.8, 130.0));
        // A small person inside a large box of another tile, neither cut by an
        // edge (a child in front of an adult): two people.
        let mut found = vec![
            det(0, 0.8, 140.0, 20.0, 220.0, 280.0),
            det(0, 0.6, 20.0, 30.0, 60.0, 100.0),
            det(0, 0.5, 150.0, 150.0, 158.0, 200.0),
        ];
        let mut tile = vec![1, 0, 0];
        merge(&mut found, &mut tile, &regions, 0.45);
        assert_eq!(found.len(), 3, "{found:?}");
        // Other classes never merge.
        let mut found = vec![
            det(0, 0.8, 0.0, 0.0, 10.0, 10.0),
            det(1, 0.7, 0.0, 0.0, 10.0, 10.0),
        ];
        let mut tile = vec![0, 1];
        merge(&mut found, &mut tile, &regions, 0.45);
        assert_eq!(found.len(), 2);
    }
}
