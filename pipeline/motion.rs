//! Motion: decides whether a frame changed enough, where the rules look, to be
//! worth an object detector's time.
//!
//! Luma is sampled on a coarse grid (about 96 points across) straight from the
//! decoded picture, with no conversion: plane 0 of YUV and grey formats, green of
//! RGB ones. The grid is compared with the one kept from the last frame the
//! detectors ran on, not with the previous frame, so a slow walker still adds up
//! to a change. Only grid points inside the watched area count: the rule zones,
//! or the whole frame when a rule watches a line. Tracks are held where they were
//! while nothing moves, and the detectors run at least every `max_skip_s`.
//!
//! When the gate opens because something moved, [`MotionGate::moving`] gives
//! the boxes of the moving areas (changed grid points joined across gaps of up
//! to two points), for detectors that look only there (`regions = "motion"`).

use crate::geometry::{BBox, Point, Zone};
use crate::time::MediaTime;
use gstreamer as gst;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use serde::Deserialize;

/// `[cameras.motion]` in the config.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MotionConfig {
    /// Skip the object detectors on frames where nothing moved.
    pub enabled: bool,
    /// Luma difference (0..255) for a grid point to count as changed; compression
    /// noise on real CCTV stays below about 10.
    pub pixel_threshold: u8,
    /// Fraction of the watched grid points that must change: 0.002 is a person
    /// about 25 pixels wide and 60 high in a 768x576 frame.
    pub min_changed: f32,
    /// Run the detectors at least this often (seconds) even when nothing moves,
    /// so a lighting change or a stopped object is re-examined.
    pub max_skip_s: f32,
}

impl Default for MotionConfig {
    fn default() -> Self {
        MotionConfig {
            enabled: true,
            pixel_threshold: 20,
            min_changed: 0.002,
            max_skip_s: 2.0,
        }
    }
}

/// Grid points across the frame's width.
const GRID_COLUMNS: u32 = 96;

/// One camera's motion state.
pub struct MotionGate {
    config: MotionConfig,
    /// Size, step and mask of the grid, rebuilt if the frame size changes.
    layout: Option<GridLayout>,
    reference: Vec<u8>,
    current: Vec<u8>,
    last_run: Option<MediaTime>,
    /// The moving areas of the last frame the gate let through because
    /// something moved; `None` when it let it through for a full look.
    moving: Option<Vec<BBox>>,
}

/// Changed grid points this close (in points) belong to one moving area.
const JOIN_GAP: usize = 2;

struct GridLayout {
    width: u32,
    height: u32,
    step: u32,
    /// Grid indices inside the watched area.
    watched: Vec<u32>,
}

impl MotionGate {
    pub fn new(config: MotionConfig) -> Self {
        MotionGate {
            config,
            layout: None,
            reference: Vec::new(),
            current: Vec::new(),
            last_run: None,
            moving: None,
        }
    }

    /// Where things moved on the last frame [`MotionGate::should_run`] let
    /// through for motion, in frame pixels; `None` if it let the frame through
    /// for a full look (the first frame, `max_skip_s` reached, no motion
    /// gating, a picture it cannot sample).
    pub fn moving(&self) -> Option<&[BBox]> {
        self.moving.as_deref()
    }

    /// True if the detectors should run on this frame. `zones`: the watched
    /// polygons in pixels, or `None` for the whole frame. A picture whose format
    /// cannot be sampled always runs.
    pub fn should_run(
        &mut self,
        picture: &gst::Sample,
        pts: MediaTime,
        zones: Option<&[Zone]>,
    ) -> bool {
        self.moving = None;
        if !self.config.enabled {
            return true;
        }
        let Some(info) = picture
            .caps()
            .and_then(|c| gst_video::VideoInfo::from_caps(c).ok())
        else {
            return true;
        };
        let Some(buffer) = picture.buffer() else {
            return true;
        };
        let Ok(frame) = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info) else {
            return true;
        };
        let (width, height) = (frame.width(), frame.height());
        if self
            .layout
            .as_ref()
            .is_none_or(|l| (l.width, l.height) != (width, height))
        {
            self.layout = Some(GridLayout::new(width, height, zones));
            self.reference.clear();
        }
        let layout = self.layout.as_ref().expect("set above");
        if !sample_luma(&frame, layout, &mut self.current) {
            return true;
        }
        let overdue = self.last_run.is_none_or(|last| {
            pts.since(last).as_secs_f32() >= self.config.max_skip_s || pts < last
        });
        if overdue || self.reference.len() != self.current.len() {
            return true;
        }
        let needed =
            ((layout.watched.len() as f32 * self.config.min_changed).ceil() as usize).max(1);
        let threshold = self.config.pixel_threshold;
        let changed =
            |i: u32| self.current[i as usize].abs_diff(self.reference[i as usize]) > threshold;
        let moved = layout
            .watched
            .iter()
            .filter(|&&i| changed(i))
            .take(needed)
            .count()
            >= needed;
        if moved {
            let cells: Vec<u32> = layout
                .watched
                .iter()
                .copied()
                .filter(|&i| changed(i))
                .collect();
            self.moving = Some(layout.areas(&cells));
        }
        moved
    }

    /// The detectors ran on the frame last given to `should_run`: it becomes the
    /// reference.
    pub fn ran(&mut self, pts: MediaTime) {
        self.last_run = Some(pts);
        std::mem::swap(&mut self.reference, &mut self.current);
    }
}

impl GridLayout {
    /// Bounding boxes (frame pixels) of groups of `cells` (grid indices) that
    /// lie within [`JOIN_GAP`] points of each other.
    fn areas(&self, cells: &[u32]) -> Vec<BBox> {
        let step = self.step as usize;
        let (columns, rows) = (self.width as usize / step, self.height as usize / step);
        let mut mark = vec![false; columns * rows];
        for &i in cells {
            if let Some(m) = mark.get_mut(i as usize) {
                *m = true;
            }
        }
        let mut seen = vec![false; columns * rows];
        let mut areas = Vec::new();
        let mut stack = Vec::new();
        for &start in cells {
            let start = start as usize;
            if start >= mark.len() || seen[start] {
                continue;
            }
            seen[start] = true;
            stack.push(start);
            let (mut c0, mut r0, mut c1, mut r1) = (usize::MAX, usize::MAX, 0, 0);
            while let Some(i) = stack.pop() {
                let (r, c) = (i / columns, i % columns);
                (c0, r0, c1, r1) = (c0.min(c), r0.min(r), c1.max(c), r1.max(r));
                let rs = r.saturating_sub(JOIN_GAP)..=(r + JOIN_GAP).min(rows - 1);
                for rr in rs {
                    let cs = c.saturating_sub(JOIN_GAP)..=(c + JOIN_GAP).min(columns - 1);
                    for cc in cs {
                        let j = rr * columns + cc;
                        if mark[j] && !seen[j] {
                            seen[j] = true;
                            stack.push(j);
                        }
                    }
                }
            }
            areas.push(BBox {
                x1: (c0 * step) as f32,
                y1: (r0 * step) as f32,
                x2: ((c1 + 1) * step).min(self.width as usize) as f32,
                y2: ((r1 + 1) * step).min(self.height as usize) as f32,
            });
        }
        areas
    }

    fn new(width: u32, height: u32, zones: Option<&[Zone]>) -> Self {
        let step = (width / GRID_COLUMNS).max(1);
        let (columns, rows) = (width / step, height / step);
        let watched = (0..rows)
            .flat_map(|r| (0..columns).map(move |c| (r, c)))
            .filter(|&(r, c)| {
                let centre = Point {
                    x: (c * step + step / 2) as f32,
                    y: (r * step + step / 2) as f32,
                };
                zones.is_none_or(|zones| zones.iter().any(|z| z.contains(centre)))
            })
            .map(|(r, c)| r * columns + c)
            .collect();
        GridLayout {
            width,
            height,
            step,
            watched,
        }
    }
}

/// Fills `grid` with one luma value per grid cell (the mean of two diagonal
/// pixels, which halves sensor noise at no real cost); false if the format has
/// no 8-bit luma or green component to read.
fn sample_luma(
    frame: &gst_video::VideoFrameRef<&gst::BufferRef>,
    layout: &GridLayout,
    grid: &mut Vec<u8>,
) -> bool {
    let format = frame.format_info();
    let component = if format.is_yuv() || format.is_gray() {
        0
    } else if format.is_rgb() && format.n_components() >= 3 {
        1
    } else {
        return false;
    };
    if format.depth()[component] != 8 {
        return false;
    }
    let plane = format.plane()[component] as usize;
    let offset = format.poffset()[component] as usize;
    let pixel_stride = format.pixel_stride()[component] as usize;
    let Ok(data) = frame.plane_data(plane as u32) else {
        return false;
    };
    let stride = frame.plane_stride()[plane] as usize;
    let step = layout.step as usize;
    let (columns, rows) = (layout.width as usize / step, layout.height as usize / step);
    grid.clear();
    grid.reserve(columns * rows);
    let half = step / 2;
    let at = |x: usize, y: usize| -> u16 {
        data.get(y * stride + x * pixel_stride + offset)
            .copied()
            .unwrap_or(0) as u16
    };
    for r in 0..rows {
        let y = r * step;
        for c in 0..columns {
            let x = c * step;
            grid.push(((at(x, y) + at(x + half, y + half)) / 2) as u8);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(width: u32, height: u32, pixels: Vec<u8>) -> gst::Sample {
        gst::init().unwrap();
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Gray8, width, height)
            .build()
            .unwrap();
        let mut data = vec![0u8; info.size()];
        let stride = info.stride()[0] as usize;
        for y in 0..height as usize {
            let row = &pixels[y * width as usize..(y + 1) * width as usize];
            data[y * stride..y * stride + width as usize].copy_from_slice(row);
        }
        gst::Sample::builder()
            .buffer(&gst::Buffer::from_mut_slice(data))
            .caps(&info.to_caps().unwrap())
            .build()
    }

    #[test]
    fn runs_on_change_inside_the_zone_only() {
        let (w, h) = (192u32, 108u32);
        let still = vec![100u8; (w * h) as usize];
        // A 30x30 bright patch on the left (outside the zone), then on the right.
        let patch = |x0: u32| {
            let mut p = still.clone();
            for y in 40..70 {
                for x in x0..x0 + 30 {
                    p[(y * w + x) as usize] = 200;
                }
            }
            p
        };
        let right_half = [Zone::from_normalised(
            &[[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]],
            w,
            h,
        )];
        let mut gate = MotionGate::new(MotionConfig::default());
        let t = |s: f64| MediaTime::from_secs_f64(s);
        assert!(gate.should_run(&gray(w, h, still.clone()), t(0.0), Some(&right_half)));
        gate.ran(t(0.0));
        assert!(!gate.should_run(&gray(w, h, still.clone()), t(0.1), Some(&right_half)));
        assert!(!gate.should_run(&gray(w, h, patch(10)), t(0.2), Some(&right_half)));
        assert!(gate.should_run(&gray(w, h, patch(140)), t(0.3), Some(&right_half)));
        gate.ran(t(0.3));
        // Nothing moves, but max_skip_s forces a fresh look.
        assert!(!gate.should_run(&gray(w, h, patch(140)), t(1.0), Some(&right_half)));
        assert!(gate.should_run(&gray(w, h, patch(140)), t(2.4), Some(&right_half)));
        assert_eq!(gate.moving(), None, "a full look, not motion");
    }

    #[test]
    fn moving_areas_are_boxes_around_each_group_of_changes() {
        let (w, h) = (384u32, 216u32);
        let still = vec![100u8; (w * h) as usize];
        let mut two = still.clone();
        for (x0, y0) in [(20u32, 30u32), (300, 150)] {
            for y in y0..y0 + 40 {
                for x in x0..x0 + 20 {
                    two[(y * w + x) as usize] = 220;
                }
            }
        }
        let mut gate = MotionGate::new(MotionConfig::default());
        let t = |s: f64| MediaTime::from_secs_f64(s);
        assert!(gate.should_run(&gray(w, h, still), t(0.0), None));
        assert_eq!(gate.moving(), None, "the first frame is a full look");
        gate.ran(t(0.0));
        assert!(gate.should_run(&gray(w, h, two), t(0.1), None));
        let mut areas = gate.moving().expect("opened for motion").to_vec();
        areas.sort_by(|a, b| a.x1.total_cmp(&b.x1));
        assert_eq!(areas.len(), 2, "{areas:?}");
        let step = (w / GRID_COLUMNS) as f32;
        for (area, (x0, y0)) in areas.iter().zip([(20.0, 30.0), (300.0, 150.0)]) {
            assert!(area.x1 <= x0 + step && area.x1 >= x0 - step, "{area:?}");
            assert!(area.y1 <= y0 + step && area.y1 >= y0 - step, "{area:?}");
            assert!(
                area.x2 >= x0 + 20.0 - step && area.x2 <= x0 + 20.0 + step,
                "{area:?}"
            );
            assert!(
                area.y2 >= y0 + 40.0 - step && area.y2 <= y0 + 40.0 + step,
                "{area:?}"
            );
        }
    }
}
