//! Regions: spend the model where something moves.
//!
//! With `regions = "motion"` a detector runs, on frames the motion gate let
//! through for motion, on crops around the moving areas instead of the whole
//! frame: each area grown to a square at least the model's input size (so a
//! 416-pixel model sees those pixels 1:1, as a tile would), squares that
//! overlap joined, all clamped inside the frame. A 1080p camera where one
//! person walks costs one inference at full resolution instead of six tiles.
//! [`plan`] gives up (`None`: run the usual full pass) when the squares would
//! cover most of the frame or be too many to pay.

use crate::geometry::BBox;
use serde::Deserialize;

/// `regions = "motion"` on a camera's detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Regions {
    /// Crops around what the motion gate saw move; the full view (whole
    /// frame, `roi` or tiles) whenever the gate takes a full look, at least
    /// every `motion.max_skip_s`.
    Motion,
}

/// Around a moving area, this fraction of its size is added on every side:
/// motion often shows only part of a person (legs, an arm).
const MARGIN: f32 = 0.25;

/// More crops than this, or crops covering more than [`MAX_COVER`] of the
/// frame, cost more than a full pass: run that instead.
pub const MAX_REGIONS: usize = 4;
const MAX_COVER: f32 = 0.6;

/// Squares (frame pixels) to run a detector with an `input`-sized model on,
/// covering every `moving` area of a `width` x `height` frame; `None` if a
/// full pass is the better buy. `moving` empty gives an empty plan.
pub fn plan(moving: &[BBox], width: u32, height: u32, input: (u32, u32)) -> Option<Vec<BBox>> {
    let (fw, fh) = (width as f32, height as f32);
    let min_side = input.0.min(input.1) as f32;
    let mut squares: Vec<BBox> = moving
        .iter()
        .map(|m| square_around(grow(*m), min_side, fw, fh))
        .collect();
    // Join squares that overlap until none do: two people side by side are
    // one crop, not two overlapping ones.
    loop {
        let mut joined = false;
        'outer: for i in 0..squares.len() {
            for j in i + 1..squares.len() {
                if squares[i].intersection_area(&squares[j]) > 0.0 {
                    let union = squares[i].union(&squares[j]);
                    squares[i] = square_around(union, min_side, fw, fh);
                    squares.swap_remove(j);
                    joined = true;
                    break 'outer;
                }
            }
        }
        if !joined {
            break;
        }
    }
    let covered: f32 = squares.iter().map(BBox::area).sum();
    (squares.len() <= MAX_REGIONS && covered <= MAX_COVER * fw * fh).then_some(squares)
}

fn grow(b: BBox) -> BBox {
    let (dx, dy) = (b.width() * MARGIN, b.height() * MARGIN);
    BBox {
        x1: b.x1 - dx,
        y1: b.y1 - dy,
        x2: b.x2 + dx,
        y2: b.y2 + dy,
    }
}

/// The square centred on `b`, at least `min_side` wide, moved (not cut) to lie
/// inside the frame; cut only where the frame is smaller than the square.
fn square_around(b: BBox, min_side: f32, fw: f32, fh: f32) -> BBox {
    let side = b.width().max(b.height()).max(min_side);
    let (w, h) = (side.min(fw), side.min(fh));
    let (cx, cy) = ((b.x1 + b.x2) / 2.0, (b.y1 + b.y2) / 2.0);
    let x1 = (cx - w / 2.0).clamp(0.0, fw - w).round();
    let y1 = (cy - h / 2.0).clamp(0.0, fh - h).round();
    BBox {
        x1,
        y1,
        x2: (x1 + w).min(fw),
        y2: (y1 + h).min(fh),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x1: f32, y1: f32, x2: f32, y2: f32) -> BBox {
        BBox { x1, y1, x2, y2 }
    }

    #[test]
    fn a_small_moving_area_becomes_one_model_sized_square_inside_the_frame() {
        let squares = plan(&[b(1800.0, 100.0, 1840.0, 200.0)], 1920, 1080, (416, 416)).unwrap();
        assert_eq!(
            squares,
            vec![b(1504.0, 0.0, 1920.0, 416.0)],
            "moved inside, not cut"
        );
    }

    #[test]
    fn overlapping_squares_join_and_far_ones_stay_apart() {
        let moving = [
            b(100.0, 500.0, 140.0, 600.0),
            b(300.0, 520.0, 340.0, 620.0),
            b(1500.0, 500.0, 1540.0, 600.0),
        ];
        let mut squares = plan(&moving, 1920, 1080, (416, 416)).unwrap();
        squares.sort_by(|a, b| a.x1.total_cmp(&b.x1));
        assert_eq!(squares.len(), 2, "{squares:?}");
        assert!(
            squares[0].x1 <= 90.0 && squares[0].x2 >= 350.0,
            "{squares:?}"
        );
        assert!((squares[0].width() - squares[0].height()).abs() < 1.0);
        for s in &squares {
            assert!(s.x1 >= 0.0 && s.y1 >= 0.0 && s.x2 <= 1920.0 && s.y2 <= 1080.0);
        }
    }

    #[test]
    fn motion_everywhere_or_in_too_many_places_means_a_full_pass() {
        assert_eq!(
            plan(&[b(0.0, 0.0, 1900.0, 1000.0)], 1920, 1080, (416, 416)),
            None
        );
        let many: Vec<BBox> = (0..5)
            .map(|i| {
                let x = 10.0 + i as f32 * 760.0;
                b(x, 900.0, x + 20.0, 950.0)
            })
            .collect();
        assert_eq!(plan(&many, 3840, 1080, (416, 416)), None, "five crops");
        assert_eq!(plan(&[], 1920, 1080, (416, 416)), Some(vec![]));
    }

    #[test]
    fn a_frame_smaller_than_the_model_is_one_crop_of_the_whole_frame() {
        let squares = plan(&[b(10.0, 10.0, 30.0, 60.0)], 320, 240, (416, 416));
        assert_eq!(squares, None, "the whole frame is more than 60% of itself");
    }
}
