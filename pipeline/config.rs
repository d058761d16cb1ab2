//! Config: the TOML file integrators write, loaded and checked as a whole.
//!
//! Each stage owns the types of its own section (`detect::DetectorConfig`,
//! `camera::CameraConfig`, `rules::RuleConfig`, `publish::AlertsConfig`,
//! `track::TrackerConfig`); this module only composes them, resolves paths against
//! the config file's directory, and runs [`check`], which reports every problem at
//! once with its field path and line, as `vigil check` prints them.

use crate::camera::CameraConfig;
use crate::detect::{ClassList, Detector, DetectorConfig};
use crate::geometry::ring_self_intersects;
use crate::publish::AlertsConfig;
use crate::rules::RuleConfig;
use crate::source::SourceUri;
use crate::store::StorageConfig;
use crate::telemetry::MetricsConfig;
use crate::track::TrackerConfig;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub detectors: Vec<DetectorConfig>,
    pub cameras: Vec<CameraConfig>,
    #[serde(default)]
    pub tracker: TrackerConfig,
    #[serde(default)]
    pub alerts: AlertsConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub storage: StorageConfig,
}

/// A parsed config and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    pub path: PathBuf,
    text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

/// One thing wrong with a config.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Field path, e.g. `cameras[0].zones[1].polygon`.
    pub field: String,
    pub line: Option<usize>,
    pub message: String,
    pub warning: bool,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.warning { "warning" } else { "error" };
        match self.line {
            Some(l) => write!(f, "{kind}: line {l}: {}: {}", self.field, self.message),
            None => write!(f, "{kind}: {}: {}", self.field, self.message),
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl LoadedConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.into(),
            reason: e.to_string(),
        })?;
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            line: e.span().map(|s| line_of(&text, s.start)).unwrap_or(1),
            message: e.message().to_string(),
        })?;
        Ok(LoadedConfig {
            config,
            path: path.into(),
            text,
        })
    }

    /// Loads and checks; any error-level problem fails.
    pub fn load_checked(path: &Path, deep: bool) -> Result<Self, ConfigError> {
        let loaded = Self::load(path)?;
        let problems: Vec<Problem> = loaded
            .check(deep)
            .into_iter()
            .filter(|p| !p.warning)
            .collect();
        if problems.is_empty() {
            Ok(loaded)
        } else {
            Err(ConfigError::Invalid {
                path: path.into(),
                problems,
            })
        }
    }

    /// Directory relative paths in the config are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    pub fn model_path(&self, d: &DetectorConfig) -> PathBuf {
        self.base_dir().join(&d.model)
    }

    /// Line of a field path like `cameras[0].zones[1]`, if the document has it.
    fn line_of_field(&self, field: &str) -> Option<usize> {
        let doc = toml_edit::Document::parse(self.text.as_str()).ok()?;
        let mut item = doc.as_item();
        let mut best = None;
        for part in field.split('.') {
            let (key, index) = match part.split_once('[') {
                Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
                None => (part, None),
            };
            item = match item.get(key) {
                Some(i) => i,
                None => break,
            };
            if let Some(i) = index {
                item = match item.get(i) {
                    Some(next) => next,
                    None => break,
                };
            }
            let span = item
                .span()
                .or_else(|| item.as_table().and_then(|t| t.span()));
            if let Some(s) = span {
                best = Some(line_of(&self.text, s.start));
            }
        }
        best
    }

    /// Every problem in the config. `deep` also loads each model in ONNX Runtime
    /// and checks its tensors against the declared format.
    pub fn check(&self, deep: bool) -> Vec<Problem> {
        let mut p = Checker {
            problems: Vec::new(),
        };
        let c = &self.config;
        let base = self.base_dir();

        let mut detector_classes: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (i, d) in c.detectors.iter().enumerate() {
            let f = format!("detectors[{i}]");
            if detector_classes.contains_key(d.name.as_str()) {
                p.error(
                    format!("{f}.name"),
                    format!("duplicate detector name {:?}", d.name),
                );
            }
            let classes = match d.classes.resolve() {
                Ok(c) => c,
                Err(e) => {
                    p.error(format!("{f}.classes"), e);
                    vec![]
                }
            };
            if matches!(&d.classes, ClassList::Explicit(v) if v.is_empty()) {
                p.error(format!("{f}.classes"), "is empty".into());
            }
            for (k, v) in &d.class_thresholds {
                if !classes.contains(k) {
                    p.error(
                        format!("{f}.class_thresholds.{k}"),
                        format!("{k:?} is not one of the detector's classes"),
                    );
                }
                if !(0.0..=1.0).contains(v) {
                    p.error(
                        format!("{f}.class_thresholds.{k}"),
                        "must be between 0 and 1".into(),
                    );
                }
            }
            if !(0.0..=1.0).contains(&d.score_threshold) {
                p.error(
                    format!("{f}.score_threshold"),
                    "must be between 0 and 1".into(),
                );
            }
            if d.input[0] < 32 || d.input[1] < 32 {
                p.error(
                    format!("{f}.input"),
                    "width and height must be at least 32".into(),
                );
            }
            if d.std.contains(&0.0) {
                p.error(format!("{f}.std"), "must not contain 0".into());
            }
            let model = base.join(&d.model);
            if !model.is_file() {
                p.error(
                    format!("{f}.model"),
                    format!("file {} not found (run models/fetch)", model.display()),
                );
            } else {
                if let Some(note) = crate::models::evaluation_only(&model) {
                    p.warning(format!("{f}.model"), note);
                }
                if deep
                    && !classes.is_empty()
                    && let Err(e) = Detector::load(d, &model, 1, 1)
                {
                    p.error(format!("{f}.model"), e.to_string());
                }
            }
            detector_classes.insert(d.name.as_str(), classes);
        }

        if let Some(listen) = &c.metrics.listen
            && listen.parse::<std::net::SocketAddr>().is_err()
        {
            p.error(
                "metrics.listen".into(),
                format!("{listen:?} is not an address like \"127.0.0.1:9464\""),
            );
        }

        let mut camera_ids = BTreeSet::new();
        if c.cameras.is_empty() {
            p.error("cameras".into(), "no camera configured".into());
        }
        for (ci, cam) in c.cameras.iter().enumerate() {
            let f = format!("cameras[{ci}]");
            if !camera_ids.insert(cam.id.as_str()) {
                p.error(
                    format!("{f}.id"),
                    format!("duplicate camera id {:?}", cam.id),
                );
            }
            if cam.id.is_empty()
                || !cam
                    .id
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            {
                p.error(format!("{f}.id"), "use letters, digits, '-' and '_' only (it is part of MQTT topics and alert ids)".into());
            }
            if let Err(e) = SourceUri::resolve(&cam.source, &base) {
                p.error(format!("{f}.source"), e.to_string());
            }
            if cam.fps.is_some_and(|v| v <= 0.0) {
                p.error(format!("{f}.fps"), "must be positive".into());
            }
            if !(0.0..=1.0).contains(&cam.motion.min_changed) {
                p.error(
                    format!("{f}.motion.min_changed"),
                    "must be a fraction between 0 and 1".into(),
                );
            }
            if cam.motion.max_skip_s <= 0.0 {
                p.error(format!("{f}.motion.max_skip_s"), "must be positive".into());
            }
            let r = &cam.record;
            for (name, v) in [("pre_roll_s", r.pre_roll_s), ("post_roll_s", r.post_roll_s)] {
                if !(0.0..=120.0).contains(&v) {
                    p.error(
                        format!("{f}.record.{name}"),
                        "must be between 0 and 120 seconds".into(),
                    );
                }
            }
            if !(r.max_clip_s.is_finite() && r.max_clip_s >= 10.0) {
                p.error(
                    format!("{f}.record.max_clip_s"),
                    "must be at least 10 seconds".into(),
                );
            }
            if r.ring_bytes < 1 << 20 {
                p.error(
                    format!("{f}.record.ring_bytes"),
                    "must be at least 1048576 (1 MiB): the ring must hold the pre-roll".into(),
                );
            }
            if cam.detectors.is_empty() {
                p.error(
                    format!("{f}.detectors"),
                    "no detector: the camera would see nothing".into(),
                );
            }
            let mut cam_classes: BTreeSet<&str> = BTreeSet::new();
            for (di, u) in cam.detectors.iter().enumerate() {
                let df = format!("{f}.detectors[{di}]");
                match detector_classes.get(u.name.as_str()) {
                    Some(classes) => cam_classes.extend(classes.iter().map(String::as_str)),
                    None => p.error(
                        format!("{df}.name"),
                        format!("no detector named {:?} in [[detectors]]", u.name),
                    ),
                }
                if u.fps.is_some_and(|v| v <= 0.0) {
                    p.error(format!("{df}.fps"), "must be positive".into());
                }
                if let Some(r) = u.roi
                    && (r.iter().any(|v| !(0.0..=1.0).contains(v)) || r[0] >= r[2] || r[1] >= r[3])
                {
                    p.error(
                        format!("{df}.roi"),
                        "must be [x1, y1, x2, y2] within 0..1 with x1 < x2 and y1 < y2".into(),
                    );
                }
            }
            let mut zone_names = BTreeSet::new();
            for (zi, z) in cam.zones.iter().enumerate() {
                let zf = format!("{f}.zones[{zi}]");
                if !zone_names.insert(z.name.as_str()) {
                    p.error(
                        format!("{zf}.name"),
                        format!("duplicate zone name {:?}", z.name),
                    );
                }
                if z.polygon.len() < 3 {
                    p.error(
                        format!("{zf}.polygon"),
                        format!("has {} point(s); a zone needs at least 3", z.polygon.len()),
                    );
                } else if ring_self_intersects(&z.polygon) {
                    p.error(
                        format!("{zf}.polygon"),
                        "crosses itself; list the points in order around the zone".into(),
                    );
                }
                if z.polygon.iter().flatten().any(|v| !(0.0..=1.0).contains(v)) {
                    p.error(
                        format!("{zf}.polygon"),
                        "points are fractions of the frame and must lie within 0..1".into(),
                    );
                }
            }
            let mut line_names = BTreeSet::new();
            for (li, l) in cam.lines.iter().enumerate() {
                let lf = format!("{f}.lines[{li}]");
                if !line_names.insert(l.name.as_str()) {
                    p.error(
                        format!("{lf}.name"),
                        format!("duplicate line name {:?}", l.name),
                    );
                }
                if [l.from, l.to, l.inside]
                    .iter()
                    .flatten()
                    .any(|v| !(0.0..=1.0).contains(v))
                {
                    p.error(
                        lf.clone(),
                        "points are fractions of the frame and must lie within 0..1".into(),
                    );
                }
                if l.from == l.to {
                    p.error(
                        format!("{lf}.to"),
                        "equals `from`: a line needs two distinct points".into(),
                    );
                }
                let cross = (l.to[0] - l.from[0]) * (l.inside[1] - l.from[1])
                    - (l.to[1] - l.from[1]) * (l.inside[0] - l.from[0]);
                if cross.abs() < 1e-6 {
                    p.error(
                        format!("{lf}.inside"),
                        "lies on the line; it must be a point on the inside (building) side".into(),
                    );
                }
            }
            for (ri, r) in cam.rules.iter().enumerate() {
                let rf = format!("{f}.rules[{ri}]");
                for z in r.zones() {
                    if !zone_names.contains(z) {
                        p.error(
                            format!("{rf}.zone"),
                            format!("no zone named {z:?} on this camera"),
                        );
                    }
                }
                for l in r.lines() {
                    if !line_names.contains(l) {
                        p.error(
                            format!("{rf}.line"),
                            format!("no line named {l:?} on this camera"),
                        );
                    }
                }
                if r.classes().is_empty() {
                    p.error(format!("{rf}.classes"), "is empty".into());
                }
                for class in r.classes() {
                    if !cam_classes.contains(class.as_str()) {
                        p.error(
                            format!("{rf}.classes"),
                            format!("class {class:?} is not emitted by any detector of this camera ({})", cam.detectors.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")),
                        );
                    }
                }
                match r {
                    RuleConfig::Loitering(l) if l.dwell_s <= 0.0 => {
                        p.error(format!("{rf}.dwell_s"), "must be positive".into())
                    }
                    RuleConfig::BatteryCart(b) if b.line.is_none() && b.zone.is_none() => p.error(
                        rf.clone(),
                        "needs a `line` (entrance) or a `zone` (lobby, elevator), or both".into(),
                    ),
                    RuleConfig::FireSmoke(fs) => {
                        if fs.hits == 0 || fs.hits > fs.window {
                            p.error(
                                format!("{rf}.hits"),
                                format!("must be between 1 and window ({})", fs.window),
                            );
                        }
                        for k in fs.min_score.keys() {
                            if !fs.classes.contains(k) {
                                p.error(
                                    format!("{rf}.min_score.{k}"),
                                    format!("{k:?} is not in the rule's classes"),
                                );
                            }
                        }
                    }
                    _ => {}
                }
            }
        }

        if let Some(url) = &c.alerts.broker
            && let Err(e) = crate::publish::parse_broker(url)
        {
            p.error("alerts.broker".into(), e.to_string());
        }
        if c.alerts.topic_prefix.is_empty() || c.alerts.topic_prefix.contains(['#', '+']) {
            p.error(
                "alerts.topic_prefix".into(),
                "must be non-empty and contain no MQTT wildcard".into(),
            );
        }
        for (kind, recipients) in &c.alerts.routes {
            for r in recipients {
                if r.is_empty()
                    || !r
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
                {
                    p.error(
                        format!("alerts.routes.{}", kind.as_str()),
                        format!("recipient {r:?}: use letters, digits, '-' and '_'"),
                    );
                }
            }
        }

        let st = &c.storage;
        if st.enabled {
            if let Some(reason) = st.unwritable(&base) {
                p.error("storage.dir".into(), reason);
            }
            if let Some(key) = &st.signing_key {
                let path = base.join(key);
                if !path.is_file() {
                    p.error(
                        "storage.signing_key".into(),
                        format!(
                            "file {} not found; create it with `vigil keygen --out {}`",
                            path.display(),
                            path.display()
                        ),
                    );
                } else if let Err(e) = crate::store::read_key(&path) {
                    p.error("storage.signing_key".into(), e.to_string());
                }
            }
            if st.max_age_days.is_some_and(|d| !(d.is_finite() && d > 0.0)) {
                p.error(
                    "storage.max_age_days".into(),
                    "must be a positive number of days".into(),
                );
            }
            if st.max_bytes == Some(0) {
                p.error(
                    "storage.max_bytes".into(),
                    "must be positive (leave it out for no size limit)".into(),
                );
            }
        }

        let mut problems = p.problems;
        for problem in &mut problems {
            problem.line = self.line_of_field(&problem.field);
        }
        problems
    }
}

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn error(&mut self, field: String, message: String) {
        self.problems.push(Problem {
            field,
            line: None,
            message,
            warning: false,
        });
    }

    fn warning(&mut self, field: String, message: String) {
        self.problems.push(Problem {
            field,
            line: None,
            message,
            warning: true,
        });
    }
}
