//! Loitering: an object of a watched class stays inside a zone longer than allowed.
//!
//! A visit starts when the track's ground point enters the zone and ends when it
//! has been outside (or unseen) for `leave_after_s`, so detector jitter at the zone
//! edge or a short occlusion does not restart the clock. One alert per visit.

use super::{Observation, Rule, RuleContext, has_label};
use crate::events::{Alert, EventSink, NewAlert, RuleKind};
use crate::geometry::Zone;
use crate::time::{MediaTime, Timestamp};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoiteringConfig {
    pub name: Option<String>,
    /// Zone the object must stay in.
    pub zone: String,
    /// Class names to watch, e.g. `["person"]`.
    pub classes: Vec<String>,
    /// Seconds inside the zone before the alert.
    pub dwell_s: f32,
    /// Seconds outside or unseen before a visit counts as over.
    #[serde(default = "super::default_leave_after")]
    pub leave_after_s: f32,
}

struct Visit {
    entered: MediaTime,
    last_inside: MediaTime,
    alert: Option<Alert>,
}

pub struct Loitering {
    name: Arc<str>,
    zone_name: Arc<str>,
    zone: Zone,
    classes: Vec<String>,
    dwell_s: f64,
    leave_after_s: f64,
    recipients: Arc<[String]>,
    visits: HashMap<u64, Visit>,
}

impl Loitering {
    pub fn new(c: &LoiteringConfig, name: Arc<str>, ctx: &RuleContext<'_>) -> Option<Self> {
        Some(Loitering {
            name,
            zone_name: c.zone.as_str().into(),
            zone: ctx.zone(&c.zone)?,
            classes: c.classes.clone(),
            dwell_s: c.dwell_s as f64,
            leave_after_s: c.leave_after_s as f64,
            recipients: ctx.recipients(RuleKind::Loitering),
            visits: HashMap::new(),
        })
    }
}

impl Rule for Loitering {
    fn observe(&mut self, obs: &Observation<'_>, sink: &mut EventSink) {
        let Some(tracks) = obs.tracks else { return };
        for t in tracks.iter().filter(|t| has_label(&self.classes, &t.label)) {
            if !self.zone.contains(t.bbox.anchor()) {
                continue;
            }
            let visit = self.visits.entry(t.id).or_insert(Visit {
                entered: obs.time,
                last_inside: obs.time,
                alert: None,
            });
            visit.last_inside = obs.time;
            let bbox = t.bbox.normalised(obs.width, obs.height);
            let dwell = obs.time.since(visit.entered).as_secs_f64();
            match &mut visit.alert {
                Some(alert) => sink.refresh(alert, t.score, bbox),
                None if dwell >= self.dwell_s => {
                    visit.alert = Some(sink.open(
                        NewAlert {
                            kind: RuleKind::Loitering,
                            rule: self.name.clone(),
                            recipients: self.recipients.clone(),
                            zone: Some(self.zone_name.clone()),
                            line: None,
                            direction: None,
                            label: t.label.clone(),
                            score: t.score,
                            bbox,
                            track_id: Some(t.id),
                            summary: format!(
                                "{} #{} in zone {} for {:.0} s",
                                t.label, t.id, self.zone_name, dwell
                            ),
                        },
                        obs.at,
                    ));
                }
                None => {}
            }
        }
        let leave_after = self.leave_after_s;
        let now = obs.time;
        let mut over: Vec<u64> = self
            .visits
            .iter()
            .filter(|(_, v)| now.since(v.last_inside).as_secs_f64() > leave_after)
            .map(|(id, _)| *id)
            .collect();
        over.sort_unstable();
        for id in over {
            if let Some(Visit { alert: Some(a), .. }) = self.visits.remove(&id) {
                sink.close(a, obs.at);
            }
        }
    }

    fn dwell(&self, now: MediaTime, out: &mut Vec<super::Dwell>) {
        for (id, v) in &self.visits {
            if v.last_inside == now {
                out.push(super::Dwell {
                    track: *id,
                    zone: self.zone_name.clone(),
                    seconds: now.since(v.entered).as_secs_f64(),
                });
            }
        }
    }

    fn finish(&mut self, at: Timestamp, sink: &mut EventSink) {
        let mut open: Vec<Alert> = self.visits.drain().filter_map(|(_, v)| v.alert).collect();
        open.sort_by(|a, b| a.id.cmp(&b.id));
        for a in open {
            sink.close(a, at);
        }
    }
}
