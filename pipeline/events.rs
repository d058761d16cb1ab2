//! Events: what rules raise, with a lifecycle `new → update* → end`.
//!
//! An [`Alert`] is the state of one incident (a person loitering, a cart crossing
//! the door, a fire). Every change of it is published as an [`Event`] carrying the
//! state before and after, Frigate-style, so a consumer that missed one message
//! still has the full picture. Ids are stable for the life of an alert and unique
//! across runs and replays (they embed the run's start in Unix milliseconds), so
//! the alerts of every run can live in one evidence store.

use crate::geometry::Crossing;
use crate::source::Picture;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

/// The alarms vigil raises.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    Loitering,
    BatteryCart,
    FireSmoke,
}

impl RuleKind {
    pub fn severity(self) -> Severity {
        match self {
            RuleKind::FireSmoke => Severity::Critical,
            RuleKind::BatteryCart => Severity::High,
            RuleKind::Loitering => Severity::Warning,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Loitering => "loitering",
            RuleKind::BatteryCart => "battery_cart",
            RuleKind::FireSmoke => "fire_smoke",
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    High,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    New,
    Update,
    End,
}

/// One incident's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub id: String,
    pub camera: Arc<str>,
    pub kind: RuleKind,
    /// Name of the rule in the camera's config.
    pub rule: Arc<str>,
    pub severity: Severity,
    pub recipients: Arc<[String]>,
    pub zone: Option<Arc<str>>,
    pub line: Option<Arc<str>>,
    pub direction: Option<Crossing>,
    pub label: Arc<str>,
    /// Highest score seen during the alert.
    pub score: f32,
    /// Latest box, `[x1, y1, x2, y2]` as fractions of the frame size.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    pub track_id: Option<u64>,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
    /// One line for a human.
    pub summary: String,
    /// Events raised for this alert so far: the next one's `seq` follows.
    #[serde(skip)]
    pub events_raised: u32,
}

/// A message about an alert.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub lifecycle: Lifecycle,
    /// `<alert id>/<seq>`: the same on a redelivered copy, so subscribers can
    /// drop duplicates.
    pub event_id: String,
    /// 1 for `new`, counting up through the alert's updates and its `end`.
    pub seq: u32,
    pub before: Option<Alert>,
    pub after: Alert,
    /// When the frame that caused this event reached vigil: alert latency is
    /// measured from here to the broker's acknowledgement.
    #[serde(skip)]
    pub captured: Option<Instant>,
    /// `new`: the alert's snapshots, written, synced and hashed before the event
    /// is published. Absent when the store could not take them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotRef>,
    /// `end`: the alert's clip (a list when it was split), closed and hashed
    /// before the event is published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip: Option<ClipRefs>,
    /// `end` not caused by the subject leaving: the camera was lost, vigil was
    /// stopped, or the recorded stream ended. Absent when the rule ended it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<EndReason>,
    /// `new`: the full-resolution frame that confirmed the alert, for the snapshot.
    #[serde(skip)]
    pub picture: Option<Picture>,
}

/// Why an alert ended when its rule did not end it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The camera failed or stalled: the subject may still be there.
    CameraLost,
    /// vigil was stopped (Ctrl-C, SIGTERM).
    Stopped,
    /// A recorded file ended.
    StreamEnded,
    /// vigil was killed while the alert was open; announced at its next start.
    Interrupted,
    /// The compound node running the camera was lost (killed, powered off, cut
    /// off); announced by the node that took the camera over.
    NodeLost,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::CameraLost => "camera_lost",
            EndReason::Stopped => "stopped",
            EndReason::StreamEnded => "stream_ended",
            EndReason::Interrupted => "interrupted",
            EndReason::NodeLost => "node_lost",
        }
    }
}

/// A camera's health, for the operators: published retained on
/// `<prefix>/cameras/<id>/status` at every change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CameraStatus {
    pub camera: String,
    pub state: CameraState,
    /// Why it is not up (or why it stopped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `high` while the camera is not watching: operators must act.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    pub wall_ms: u64,
    /// The compound node running the camera (`[alerts] node_id` or `--node`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraState {
    /// Frames are flowing.
    Up,
    /// The source failed or stalled; vigil is reopening it.
    Reconnecting,
    /// The source failed and will not be retried (a file that is missing or broken).
    Failed,
    /// Stopped on purpose, or a file ended.
    Stopped,
}

impl CameraState {
    /// The state `as_str` names (as another node reported it).
    pub fn parse(s: &str) -> Option<CameraState> {
        [
            CameraState::Up,
            CameraState::Reconnecting,
            CameraState::Failed,
            CameraState::Stopped,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CameraState::Up => "up",
            CameraState::Reconnecting => "reconnecting",
            CameraState::Failed => "failed",
            CameraState::Stopped => "stopped",
        }
    }
}

impl CameraStatus {
    pub fn new(camera: &str, state: CameraState, reason: Option<String>) -> Self {
        let watching = matches!(state, CameraState::Up | CameraState::Stopped);
        CameraStatus {
            camera: camera.into(),
            state,
            reason,
            severity: (!watching).then_some(Severity::High),
            wall_ms: crate::time::WallTime::now().unix_ms(),
            node: None,
        }
    }
}

impl Event {
    /// The alert's next event; `alert` counts it.
    fn of(lifecycle: Lifecycle, before: Option<Alert>, alert: &mut Alert) -> Self {
        alert.events_raised += 1;
        let seq = alert.events_raised;
        let after = alert.clone();
        Event {
            lifecycle,
            event_id: format!("{}/{seq}", after.id),
            seq,
            before,
            after,
            captured: None,
            snapshot: None,
            clip: None,
            reason: None,
            picture: None,
        }
    }

    pub fn alert(&self) -> &Alert {
        &self.after
    }
}

/// A stored evidence file: path relative to the store directory, and its sha256.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileRef {
    pub path: String,
    pub sha256: String,
}

/// The clean snapshot, and the annotated one (box, label, zone or line drawn).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotRef {
    pub path: String,
    pub sha256: String,
    pub annotated: FileRef,
}

/// One clip file of an alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClipRef {
    pub path: String,
    pub sha256: String,
    /// Media time of the clip's first frame (a keyframe at or before
    /// `start - pre_roll`).
    pub start_media_s: f64,
    pub duration_s: f64,
}

/// One clip, or consecutive clips when the alert outlasted `max_clip_s`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ClipRefs {
    One(ClipRef),
    Split(Vec<ClipRef>),
}

/// Hands out alert ids for one camera and collects the events of one frame.
pub struct EventSink {
    camera: Arc<str>,
    epoch: u64,
    seq: u64,
    pub events: Vec<Event>,
}

/// What a rule knows when it opens an alert; the sink adds id, camera and timing.
pub struct NewAlert {
    pub kind: RuleKind,
    pub rule: Arc<str>,
    pub recipients: Arc<[String]>,
    pub zone: Option<Arc<str>>,
    pub line: Option<Arc<str>>,
    pub direction: Option<Crossing>,
    pub label: Arc<str>,
    pub score: f32,
    pub bbox: [f32; 4],
    pub track_id: Option<u64>,
    pub summary: String,
}

impl EventSink {
    /// `epoch`: the run's start, Unix milliseconds.
    pub fn new(camera: Arc<str>, epoch: u64) -> Self {
        EventSink {
            camera,
            epoch,
            seq: 0,
            events: Vec::new(),
        }
    }

    pub fn open(&mut self, new: NewAlert, at: Timestamp) -> Alert {
        self.seq += 1;
        let mut alert = Alert {
            id: format!("{}-{}-{:05}", self.camera, self.epoch, self.seq),
            camera: self.camera.clone(),
            kind: new.kind,
            rule: new.rule,
            severity: new.kind.severity(),
            recipients: new.recipients,
            zone: new.zone,
            line: new.line,
            direction: new.direction,
            label: new.label,
            score: new.score,
            bbox: new.bbox,
            track_id: new.track_id,
            start: at,
            end: None,
            summary: new.summary,
            events_raised: 0,
        };
        self.events
            .push(Event::of(Lifecycle::New, None, &mut alert));
        alert
    }

    /// Publishes an update if the score rose meaningfully; keeps the box current.
    pub fn refresh(&mut self, alert: &mut Alert, score: f32, bbox: [f32; 4]) {
        const MEANINGFUL_RISE: f32 = 0.05;
        let rose = score >= alert.score + MEANINGFUL_RISE;
        let before = rose.then(|| alert.clone());
        alert.bbox = bbox;
        if score > alert.score {
            alert.score = score;
        }
        if let Some(before) = before {
            self.events
                .push(Event::of(Lifecycle::Update, Some(before), alert));
        }
    }

    pub fn close(&mut self, mut alert: Alert, at: Timestamp) {
        let before = alert.clone();
        alert.end = Some(at);
        self.events
            .push(Event::of(Lifecycle::End, Some(before), &mut alert));
    }
}
