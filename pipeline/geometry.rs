//! Plane geometry shared by the stages: boxes from the detector, zones and
//! tripwire lines from the config.
//!
//! Config coordinates are *normalised* (0..1 of frame width and height) so a zone
//! survives a change of stream resolution; boxes are in frame pixels. A rule turns
//! its zones into pixels once it knows the frame size.

use geo::{Contains, Coord, LineString, Polygon};
use serde::Serialize;

/// Axis-aligned box in pixels: `x1,y1` top-left, `x2,y2` bottom-right.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct BBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl BBox {
    /// The box of centre `(cx, cy)` and size `w` x `h`, as detectors give it.
    #[inline]
    pub fn centered(cx: f32, cy: f32, w: f32, h: f32) -> Self {
        BBox {
            x1: cx - w * 0.5,
            y1: cy - h * 0.5,
            x2: cx + w * 0.5,
            y2: cy + h * 0.5,
        }
    }

    pub fn width(&self) -> f32 {
        (self.x2 - self.x1).max(0.0)
    }

    pub fn height(&self) -> f32 {
        (self.y2 - self.y1).max(0.0)
    }

    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    pub fn intersection_area(&self, other: &BBox) -> f32 {
        let ix = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let iy = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        ix * iy
    }

    /// The smallest box holding both.
    pub fn union(&self, other: &BBox) -> BBox {
        BBox {
            x1: self.x1.min(other.x1),
            y1: self.y1.min(other.y1),
            x2: self.x2.max(other.x2),
            y2: self.y2.max(other.y2),
        }
    }

    pub fn centre(&self) -> Point {
        Point {
            x: (self.x1 + self.x2) * 0.5,
            y: (self.y1 + self.y2) * 0.5,
        }
    }

    pub fn contains(&self, p: Point) -> bool {
        p.x >= self.x1 && p.x <= self.x2 && p.y >= self.y1 && p.y <= self.y2
    }

    pub fn iou(&self, other: &BBox) -> f32 {
        let inter = self.intersection_area(other);
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }

    /// Where an object touches the ground: the point zones and lines test.
    /// Feet for a person, wheels for a bike.
    pub fn anchor(&self) -> Point {
        Point {
            x: (self.x1 + self.x2) * 0.5,
            y: self.y2,
        }
    }

    /// The box in 0..1 coordinates of a `width` x `height` frame.
    pub fn normalised(&self, width: u32, height: u32) -> [f32; 4] {
        let (w, h) = (width.max(1) as f32, height.max(1) as f32);
        let r = |v: f32| (v * 10_000.0).round() / 10_000.0;
        [
            r(self.x1 / w),
            r(self.y1 / h),
            r(self.x2 / w),
            r(self.y2 / h),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

/// A closed polygon in pixels.
#[derive(Debug, Clone)]
pub struct Zone {
    polygon: Polygon<f32>,
}

impl Zone {
    /// `points` normalised (0..1), scaled to a `width` x `height` frame.
    pub fn from_normalised(points: &[[f32; 2]], width: u32, height: u32) -> Self {
        let ring: Vec<Coord<f32>> = points
            .iter()
            .map(|p| Coord {
                x: p[0] * width as f32,
                y: p[1] * height as f32,
            })
            .collect();
        Zone {
            polygon: Polygon::new(LineString::from(ring), vec![]),
        }
    }

    pub fn contains(&self, p: Point) -> bool {
        self.polygon.contains(&Coord { x: p.x, y: p.y })
    }
}

/// A directed tripwire: a segment plus which side of it is "inside".
#[derive(Debug, Clone, Copy)]
pub struct Tripwire {
    a: Point,
    b: Point,
    /// Sign of `side()` for points on the inside.
    inside_sign: f32,
}

/// Which way a track crossed a tripwire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Crossing {
    Inward,
    Outward,
}

impl Tripwire {
    /// Normalised endpoints and a normalised reference point on the inside.
    pub fn from_normalised(a: [f32; 2], b: [f32; 2], inside: [f32; 2], w: u32, h: u32) -> Self {
        let px = |p: [f32; 2]| Point {
            x: p[0] * w as f32,
            y: p[1] * h as f32,
        };
        let mut wire = Tripwire {
            a: px(a),
            b: px(b),
            inside_sign: 1.0,
        };
        wire.inside_sign = wire.side(px(inside)).signum();
        wire
    }

    /// Cross product sign: which side of the line `a→b` the point is on.
    fn side(&self, p: Point) -> f32 {
        (self.b.x - self.a.x) * (p.y - self.a.y) - (self.b.y - self.a.y) * (p.x - self.a.x)
    }

    /// Did the move `from → to` cross the segment, and which way?
    pub fn crossing(&self, from: Point, to: Point) -> Option<Crossing> {
        let s_from = self.side(from);
        let s_to = self.side(to);
        if s_from == 0.0 || s_from.signum() == s_to.signum() || s_to == 0.0 {
            return None;
        }
        // The move crosses the infinite line; it must also pass between a and b.
        let move_side =
            |p: Point| (to.x - from.x) * (p.y - from.y) - (to.y - from.y) * (p.x - from.x);
        if move_side(self.a).signum() == move_side(self.b).signum() {
            return None;
        }
        if s_to.signum() == self.inside_sign {
            Some(Crossing::Inward)
        } else {
            Some(Crossing::Outward)
        }
    }
}

/// Does a closed ring of normalised points cross itself? (Config validation.)
pub fn ring_self_intersects(points: &[[f32; 2]]) -> bool {
    let n = points.len();
    let seg = |i: usize| (points[i], points[(i + 1) % n]);
    for i in 0..n {
        for j in i + 1..n {
            // Neighbouring edges share a vertex; that is not a crossing.
            if j == i + 1 || (i == 0 && j == n - 1) {
                continue;
            }
            let (p1, p2) = seg(i);
            let (q1, q2) = seg(j);
            if segments_cross(p1, p2, q1, q2) {
                return true;
            }
        }
    }
    false
}

fn segments_cross(p1: [f32; 2], p2: [f32; 2], q1: [f32; 2], q2: [f32; 2]) -> bool {
    let orient = |a: [f32; 2], b: [f32; 2], c: [f32; 2]| {
        ((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])).signum()
    };
    let d1 = orient(q1, q2, p1);
    let d2 = orient(q1, q2, p2);
    let d3 = orient(p1, p2, q1);
    let d4 = orient(p1, p2, q2);
    d1 * d2 < 0.0 && d3 * d4 < 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tripwire_direction_follows_inside_point() {
        // Vertical door line at x=0.5; the building is to the right.
        let wire = Tripwire::from_normalised([0.5, 0.0], [0.5, 1.0], [0.9, 0.5], 100, 100);
        let left = Point { x: 40.0, y: 50.0 };
        let right = Point { x: 60.0, y: 50.0 };
        assert_eq!(wire.crossing(left, right), Some(Crossing::Inward));
        assert_eq!(wire.crossing(right, left), Some(Crossing::Outward));
        assert_eq!(wire.crossing(left, left), None);
        // Passing beyond the segment's end is not a crossing.
        let wire = Tripwire::from_normalised([0.5, 0.0], [0.5, 0.3], [0.9, 0.1], 100, 100);
        assert_eq!(wire.crossing(left, right), None);
    }

    #[test]
    fn bowtie_is_self_intersecting() {
        assert!(ring_self_intersects(&[
            [0.0, 0.0],
            [1.0, 1.0],
            [1.0, 0.0],
            [0.0, 1.0]
        ]));
        assert!(!ring_self_intersects(&[
            [0.0, 0.0],
            [1.0, 0.0],
            [1.0, 1.0],
            [0.0, 1.0]
        ]));
    }
}
