//! Track: detections of one frame → [`Track`]s with ids that persist across frames.
//!
//! The multi-object tracker is ByteTrack from `trackforge`, behind the small
//! [`Tracker`] trait so another algorithm can replace it. ByteTrack matches by IoU
//! alone, so a rider's `person` box could steal the `bicycle` track beneath it:
//! vigil runs one tracker per label and hands out its own ids, unique per camera.

use crate::detect::Detection;
use crate::geometry::BBox;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use trackforge::trackers::byte_track::{ByteTrack, ByteTrackParams};

/// An object followed across frames.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// Unique per camera for the life of the process.
    pub id: u64,
    pub label: Arc<str>,
    pub score: f32,
    pub bbox: BBox,
}

pub trait Tracker: Send {
    /// Feeds one frame's detections; returns the tracks alive in this frame.
    fn update(&mut self, detections: &[Detection]) -> &[Track];
    /// The tracks of the last update, unchanged: what a frame skipped by motion
    /// gating shows, since nothing moved.
    fn alive(&self) -> &[Track];
}

/// `[tracker]` in the config: ByteTrack's knobs, defaults from its paper.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TrackerConfig {
    /// Detections at or above this score are matched first.
    pub high_score: f32,
    /// Unmatched detections at or above this start a new track.
    pub new_track_score: f32,
    /// Inferences a lost track is kept for, to ride out occlusions.
    pub max_lost: usize,
    /// Maximum IoU distance (1 - IoU) for a match.
    pub match_distance: f32,
    /// Per label, other score levels: a model whose class scores lower than
    /// COCO's person (the trained battery-cart head finds a lift e-bike at
    /// 0.33) would otherwise never start a track at the defaults.
    pub labels: BTreeMap<String, LabelScores>,
}

/// `[tracker.labels.<label>]`: the score levels for one label; unset ones are
/// the tracker's.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelScores {
    pub high_score: Option<f32>,
    pub new_track_score: Option<f32>,
}

impl TrackerConfig {
    /// `(high_score, new_track_score)` for `label`.
    pub fn scores_for(&self, label: &str) -> (f32, f32) {
        let own = self.labels.get(label);
        (
            own.and_then(|l| l.high_score).unwrap_or(self.high_score),
            own.and_then(|l| l.new_track_score)
                .unwrap_or(self.new_track_score),
        )
    }
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            high_score: 0.5,
            new_track_score: 0.6,
            max_lost: 30,
            match_distance: 0.8,
            labels: BTreeMap::new(),
        }
    }
}

/// ByteTrack per label, with camera-wide ids.
pub struct ByteTracker {
    config: TrackerConfig,
    per_label: HashMap<Arc<str>, LabelTracker>,
    /// Keys of `per_label`, sorted: trackers step in a fixed order.
    labels: Vec<Arc<str>>,
    next_id: u64,
    alive: Vec<Track>,
}

struct LabelTracker {
    inner: ByteTrack,
    /// trackforge id → (vigil id, update step it was last returned).
    ids: HashMap<u64, (u64, u64)>,
    step: u64,
}

impl ByteTracker {
    pub fn new(config: TrackerConfig) -> Self {
        ByteTracker {
            config,
            per_label: HashMap::new(),
            labels: Vec::new(),
            next_id: 1,
            alive: Vec::new(),
        }
    }
}

impl Tracker for ByteTracker {
    fn update(&mut self, detections: &[Detection]) -> &[Track] {
        self.alive.clear();
        for d in detections {
            if !self.per_label.contains_key(&d.label) {
                let (high_score, new_track_score) = self.config.scores_for(&d.label);
                let params = ByteTrackParams {
                    track_thresh: high_score,
                    det_thresh: new_track_score,
                    match_thresh: self.config.match_distance,
                    common: trackforge::trackers::common::CommonParams {
                        max_age: self.config.max_lost,
                        min_hits: 1,
                    },
                    ..ByteTrackParams::default()
                };
                self.per_label.insert(
                    d.label.clone(),
                    LabelTracker {
                        inner: ByteTrack::from_params(params),
                        ids: HashMap::new(),
                        step: 0,
                    },
                );
                self.labels.push(d.label.clone());
                self.labels.sort();
            }
        }
        // Every label's tracker is stepped each frame, also with no detections,
        // so its lost tracks age in media order.
        for label in &self.labels {
            let lt = self.per_label.get_mut(label).expect("label inserted above");
            lt.step += 1;
            let step = lt.step;
            let input = detections
                .iter()
                .filter(|d| d.label == *label)
                .map(|d| {
                    let b = d.bbox;
                    (
                        [b.x1, b.y1, b.width(), b.height()],
                        d.score,
                        d.class_id as i64,
                    )
                })
                .collect();
            for s in lt.inner.update(input) {
                let entry = lt.ids.entry(s.track_id).or_insert_with(|| {
                    let id = self.next_id;
                    self.next_id += 1;
                    (id, step)
                });
                entry.1 = step;
                let [x, y, w, h] = s.tlwh;
                self.alive.push(Track {
                    id: entry.0,
                    label: label.clone(),
                    score: s.score,
                    bbox: BBox {
                        x1: x,
                        y1: y,
                        x2: x + w,
                        y2: y + h,
                    },
                });
            }
            // A track unseen for longer than ByteTrack keeps lost ones cannot return.
            let horizon = self.config.max_lost as u64 + 1;
            lt.ids.retain(|_, (_, seen)| step - *seen <= horizon);
        }
        &self.alive
    }

    fn alive(&self) -> &[Track] {
        &self.alive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detection(label: &str, score: f32, x: f32) -> Detection {
        Detection {
            class_id: 0,
            label: label.into(),
            score,
            bbox: BBox {
                x1: x,
                y1: 10.0,
                x2: x + 40.0,
                y2: 90.0,
            },
        }
    }

    /// A steady 0.35 starts no track at ByteTrack's defaults, and does for a
    /// label given its own levels; other labels keep the defaults.
    #[test]
    fn a_label_with_its_own_scores_starts_tracks_the_defaults_would_not() {
        let mut config = TrackerConfig::default();
        config.labels.insert(
            "battery_cart".into(),
            LabelScores {
                high_score: Some(0.3),
                new_track_score: Some(0.3),
            },
        );
        assert_eq!(config.scores_for("person"), (0.5, 0.6));
        let mut tracker = ByteTracker::new(config);
        let mut labels = Vec::new();
        for _ in 0..5 {
            let frame = [
                detection("battery_cart", 0.35, 0.0),
                detection("person", 0.35, 200.0),
            ];
            labels = tracker
                .update(&frame)
                .iter()
                .map(|t| t.label.to_string())
                .collect::<Vec<_>>();
        }
        assert_eq!(labels, ["battery_cart"]);
    }
}
