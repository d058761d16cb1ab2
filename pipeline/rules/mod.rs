//! Rules: tracks and detections of one frame → alert [`Event`]s.
//!
//! Each rule kind lives in its own file with its config type: [`loitering`],
//! [`battery_cart`], [`fire_smoke`]. Rules read only an [`Observation`] and write
//! only to an [`EventSink`]; all their timing is media time, so a replay raises
//! what the live camera raised. A new rule kind is a new file implementing
//! [`Rule`], a variant of [`RuleConfig`], and a line in [`build`].

pub mod battery_cart;
pub mod fire_smoke;
pub mod loitering;

use crate::detect::Detection;
use crate::events::{EventSink, RuleKind};
use crate::geometry::{Tripwire, Zone};
use crate::time::{MediaTime, Timestamp};
use crate::track::Track;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A named polygon, points as fractions of frame width and height.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    pub name: String,
    pub polygon: Vec<[f32; 2]>,
}

/// A named tripwire: a segment `from → to` plus any point on the inside
/// (the building side), all as fractions of frame width and height.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    pub name: String,
    pub from: [f32; 2],
    pub to: [f32; 2],
    pub inside: [f32; 2],
}

/// `[[cameras.rules]]`: one rule, its `kind` picks the variant.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RuleConfig {
    Loitering(loitering::LoiteringConfig),
    BatteryCart(battery_cart::BatteryCartConfig),
    FireSmoke(fire_smoke::FireSmokeConfig),
}

impl RuleConfig {
    pub fn kind(&self) -> RuleKind {
        match self {
            RuleConfig::Loitering(_) => RuleKind::Loitering,
            RuleConfig::BatteryCart(_) => RuleKind::BatteryCart,
            RuleConfig::FireSmoke(_) => RuleKind::FireSmoke,
        }
    }

    pub fn classes(&self) -> &[String] {
        match self {
            RuleConfig::Loitering(c) => &c.classes,
            RuleConfig::BatteryCart(c) => &c.classes,
            RuleConfig::FireSmoke(c) => &c.classes,
        }
    }

    /// Rules that follow objects across frames need the tracker; fire does not.
    pub fn needs_tracks(&self) -> bool {
        !matches!(self, RuleConfig::FireSmoke(_))
    }

    pub fn zones(&self) -> Vec<&str> {
        match self {
            RuleConfig::Loitering(c) => vec![c.zone.as_str()],
            RuleConfig::BatteryCart(c) => c.zone.iter().map(String::as_str).collect(),
            RuleConfig::FireSmoke(_) => vec![],
        }
    }

    pub fn lines(&self) -> Vec<&str> {
        match self {
            RuleConfig::BatteryCart(c) => c.line.iter().map(String::as_str).collect(),
            _ => vec![],
        }
    }

    /// The rule's name: its `name`, else `kind` and position.
    pub fn display_name(&self, index: usize) -> String {
        let name = match self {
            RuleConfig::Loitering(c) => &c.name,
            RuleConfig::BatteryCart(c) => &c.name,
            RuleConfig::FireSmoke(c) => &c.name,
        };
        name.clone()
            .unwrap_or_else(|| format!("{}-{index}", self.kind().as_str()))
    }
}

/// What rules see of one frame.
pub struct Observation<'a> {
    pub time: MediaTime,
    pub at: Timestamp,
    pub width: u32,
    pub height: u32,
    /// Tracks alive in this frame; `None` if the tracker was not run on it (its
    /// detector skipped the frame), so "absent" is not mistaken for "gone".
    pub tracks: Option<&'a [Track]>,
    pub detections: &'a [Detection],
    /// Names of the detectors that ran on this frame.
    pub detectors_run: &'a [Arc<str>],
}

pub trait Rule: Send {
    fn observe(&mut self, obs: &Observation<'_>, sink: &mut EventSink);
    /// The stream ended: close every open alert.
    fn finish(&mut self, at: Timestamp, sink: &mut EventSink);
    /// For the annotated replay: seconds each track has spent in this rule's
    /// zone, if it is inside at `now`. Rules without a dwell clock add nothing.
    fn dwell(&self, _now: MediaTime, _out: &mut Vec<Dwell>) {}
}

/// A track's time inside a zone so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Dwell {
    pub track: u64,
    pub zone: Arc<str>,
    pub seconds: f64,
}

/// Everything rules are built from besides their own config.
pub struct RuleContext<'a> {
    pub zones: &'a [ZoneConfig],
    pub lines: &'a [LineConfig],
    pub routes: &'a BTreeMap<RuleKind, Vec<String>>,
    /// Detector name → class names it emits.
    pub detector_classes: &'a [(Arc<str>, Vec<String>)],
    pub width: u32,
    pub height: u32,
}

impl RuleContext<'_> {
    fn zone(&self, name: &str) -> Option<Zone> {
        self.zones
            .iter()
            .find(|z| z.name == name)
            .map(|z| Zone::from_normalised(&z.polygon, self.width, self.height))
    }

    fn line(&self, name: &str) -> Option<Tripwire> {
        self.lines
            .iter()
            .find(|l| l.name == name)
            .map(|l| Tripwire::from_normalised(l.from, l.to, l.inside, self.width, self.height))
    }

    fn recipients(&self, kind: RuleKind) -> Arc<[String]> {
        self.routes.get(&kind).cloned().unwrap_or_default().into()
    }
}

/// Builds a camera's rules for a `width` x `height` stream. Names were checked by
/// `config::validate`; a dangling one here is skipped with a log line, not a panic.
pub fn build(configs: &[RuleConfig], ctx: &RuleContext<'_>) -> Vec<Box<dyn Rule>> {
    let mut rules: Vec<Box<dyn Rule>> = Vec::new();
    for (i, config) in configs.iter().enumerate() {
        let name: Arc<str> = config.display_name(i).into();
        let rule: Option<Box<dyn Rule>> = match config {
            RuleConfig::Loitering(c) => {
                loitering::Loitering::new(c, name.clone(), ctx).map(|r| Box::new(r) as _)
            }
            RuleConfig::BatteryCart(c) => {
                battery_cart::BatteryCart::new(c, name.clone(), ctx).map(|r| Box::new(r) as _)
            }
            RuleConfig::FireSmoke(c) => {
                Some(Box::new(fire_smoke::FireSmoke::new(c, name.clone(), ctx)))
            }
        };
        match rule {
            Some(r) => rules.push(r),
            None => {
                tracing::error!(rule = %name, "rule refers to a zone or line that does not exist; skipped")
            }
        }
    }
    rules
}

fn default_leave_after() -> f32 {
    2.0
}

fn has_label(classes: &[String], label: &str) -> bool {
    classes.iter().any(|c| c == label)
}
