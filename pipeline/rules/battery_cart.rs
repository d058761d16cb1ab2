//! Battery cart: an e-bike, bicycle or motorcycle heading into a building.
//!
//! Two triggers, either or both per rule: the track's ground point crosses the
//! entrance `line` in the inward direction, or it stays in a lobby/elevator `zone`
//! for `dwell_s`. Crossing outward raises nothing and closes an inward alert of the
//! same track (the cart was taken back out). One open alert per track.

use super::{Observation, Rule, RuleContext, has_label};
use crate::events::{Alert, EventSink, NewAlert, RuleKind};
use crate::geometry::{Crossing, Point, Tripwire, Zone};
use crate::time::{MediaTime, Timestamp};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatteryCartConfig {
    pub name: Option<String>,
    /// Entrance tripwire; crossing it inward raises the alert.
    pub line: Option<String>,
    /// Lobby or elevator zone; staying in it `dwell_s` raises the alert.
    pub zone: Option<String>,
    /// Classes that count as battery carts; add your model's e-bike class here
    /// (e.g. `battery_cart`, see models/train/runs/battery-cart-neck).
    #[serde(default = "default_classes")]
    pub classes: Vec<String>,
    #[serde(default = "default_dwell")]
    pub dwell_s: f32,
    #[serde(default = "super::default_leave_after")]
    pub leave_after_s: f32,
}

fn default_classes() -> Vec<String> {
    vec!["bicycle".into(), "motorcycle".into()]
}

fn default_dwell() -> f32 {
    1.0
}

struct Seen {
    last_point: Point,
    last_seen: MediaTime,
    in_zone_since: Option<MediaTime>,
    alert: Option<Alert>,
}

pub struct BatteryCart {
    name: Arc<str>,
    line: Option<(Arc<str>, Tripwire)>,
    zone: Option<(Arc<str>, Zone)>,
    classes: Vec<String>,
    dwell_s: f64,
    leave_after_s: f64,
    recipients: Arc<[String]>,
    tracks: HashMap<u64, Seen>,
}

impl BatteryCart {
    pub fn new(c: &BatteryCartConfig, name: Arc<str>, ctx: &RuleContext<'_>) -> Option<Self> {
        let line = match &c.line {
            Some(n) => Some((Arc::from(n.as_str()), ctx.line(n)?)),
            None => None,
        };
        let zone = match &c.zone {
            Some(n) => Some((Arc::from(n.as_str()), ctx.zone(n)?)),
            None => None,
        };
        Some(BatteryCart {
            name,
            line,
            zone,
            classes: c.classes.clone(),
            dwell_s: c.dwell_s as f64,
            leave_after_s: c.leave_after_s as f64,
            recipients: ctx.recipients(RuleKind::BatteryCart),
            tracks: HashMap::new(),
        })
    }
}

impl Rule for BatteryCart {
    fn observe(&mut self, obs: &Observation<'_>, sink: &mut EventSink) {
        let Some(tracks) = obs.tracks else { return };
        for t in tracks.iter().filter(|t| has_label(&self.classes, &t.label)) {
            let point = t.bbox.anchor();
            let bbox = t.bbox.normalised(obs.width, obs.height);
            let seen = self.tracks.entry(t.id).or_insert(Seen {
                last_point: point,
                last_seen: obs.time,
                in_zone_since: None,
                alert: None,
            });
            let crossing = self
                .line
                .as_ref()
                .and_then(|(_, wire)| wire.crossing(seen.last_point, point));
            seen.last_point = point;
            seen.last_seen = obs.time;
            let in_zone = self.zone.as_ref().is_some_and(|(_, z)| z.contains(point));
            seen.in_zone_since = if in_zone {
                seen.in_zone_since.or(Some(obs.time))
            } else {
                None
            };

            if let Some(alert) = &mut seen.alert {
                if crossing == Some(Crossing::Outward) && alert.direction == Some(Crossing::Inward)
                {
                    let a = seen.alert.take().expect("checked above");
                    sink.close(a, obs.at);
                } else {
                    sink.refresh(alert, t.score, bbox);
                }
                continue;
            }
            let dwelt = seen
                .in_zone_since
                .is_some_and(|since| obs.time.since(since).as_secs_f64() >= self.dwell_s);
            let (line, zone, direction, summary) = if crossing == Some(Crossing::Inward) {
                let (name, _) = self.line.as_ref().expect("crossing implies a line");
                (
                    Some(name.clone()),
                    None,
                    crossing,
                    format!("{} #{} crossed {} inward", t.label, t.id, name),
                )
            } else if dwelt {
                let (name, _) = self.zone.as_ref().expect("dwell implies a zone");
                (
                    None,
                    Some(name.clone()),
                    None,
                    format!("{} #{} standing in {}", t.label, t.id, name),
                )
            } else {
                continue;
            };
            seen.alert = Some(sink.open(
                NewAlert {
                    kind: RuleKind::BatteryCart,
                    rule: self.name.clone(),
                    recipients: self.recipients.clone(),
                    zone,
                    line,
                    direction,
                    label: t.label.clone(),
                    score: t.score,
                    bbox,
                    track_id: Some(t.id),
                    summary,
                },
                obs.at,
            ));
        }
        let now = obs.time;
        let leave_after = self.leave_after_s;
        let mut gone: Vec<u64> = self
            .tracks
            .iter()
            .filter(|(_, s)| now.since(s.last_seen).as_secs_f64() > leave_after)
            .map(|(id, _)| *id)
            .collect();
        gone.sort_unstable();
        for id in gone {
            if let Some(Seen { alert: Some(a), .. }) = self.tracks.remove(&id) {
                sink.close(a, obs.at);
            }
        }
    }

    fn finish(&mut self, at: Timestamp, sink: &mut EventSink) {
        let mut open: Vec<Alert> = self.tracks.drain().filter_map(|(_, s)| s.alert).collect();
        open.sort_by(|a, b| a.id.cmp(&b.id));
        for a in open {
            sink.close(a, at);
        }
    }
}
