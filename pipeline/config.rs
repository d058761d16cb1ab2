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

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
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
    /// The web console for operators and police (`[console]`); served by
    /// `vigil run` when this section is present.
    pub console: Option<crate::console::ConsoleConfig>,
    /// Several nodes sharing these cameras through PostgreSQL (`[compound]`,
    /// used by `vigil run --node`).
    pub compound: Option<crate::compound::CompoundConfig>,
}

/// The config's JSON Schema, generated from these types (`vigil schema`).
pub fn json_schema() -> String {
    let mut schema = schemars::schema_for!(Config);
    schema.insert(
        "title".into(),
        "vigil config (TOML), see config/README.md".into(),
    );
    serde_json::to_string_pretty(&schema).unwrap_or_default()
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

/// Line of a field path like `cameras[0].zones[1]` in `text`, if it has it.
fn line_of_field(text: &str, field: &str) -> Option<usize> {
    let doc = toml_edit::Document::parse(text).ok()?;
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
            best = Some(line_of(text, s.start));
        }
    }
    best
}

/// Whether a TOML value deserialises as one config type.
type FitCheck = dyn Fn(&toml::Value) -> Result<(), Misfit>;

/// Where inside a value (`fps`, `detectors[0].fps`; empty for the value
/// itself) it failed to deserialise, and serde's message.
type Misfit = (String, String);

/// Deserialises `value` as `T`; on failure the key at fault and the message
/// (serde alone names the type it wanted, not the key: "invalid type: string
/// "five", expected f32").
fn fits<T: serde::de::DeserializeOwned>(value: &toml::Value) -> Result<(), Misfit> {
    serde_path_to_error::deserialize::<_, T>(value.clone())
        .map(|_| ())
        .map_err(|e| {
            let message = e.inner().message().to_string();
            let mut path = e.path().to_string();
            if path == "." {
                path.clear();
            }
            // A map key that is not one of the allowed ones shows as `?`:
            // the message names it (unknown variant `fire`).
            if let (Some(prefix), Some(key)) = (path.strip_suffix('?'), message.split('`').nth(1)) {
                path = format!("{prefix}{key}");
            }
            (path, with_suggestion(&message))
        })
}

/// A rule: `kind` picks the variant, and serde's tagged enums lose the key at
/// fault, so a failing rule is tried again as its kind's own config type.
fn fits_rule(value: &toml::Value) -> Result<(), Misfit> {
    let whole = fits::<RuleConfig>(value);
    let (Err((path, _)), Some(kind)) = (&whole, value.get("kind").and_then(|k| k.as_str())) else {
        return whole;
    };
    if !path.is_empty() {
        return whole;
    }
    let mut fields = value.clone();
    if let Some(t) = fields.as_table_mut() {
        t.remove("kind");
    }
    let variant = match kind {
        "loitering" => fits::<crate::rules::loitering::LoiteringConfig>(&fields),
        "battery_cart" => fits::<crate::rules::battery_cart::BatteryCartConfig>(&fields),
        "fire_smoke" => fits::<crate::rules::fire_smoke::FireSmokeConfig>(&fields),
        _ => return whole,
    };
    match variant {
        Err((path, message)) if !path.is_empty() => Err((path, message)),
        _ => whole,
    }
}

/// `field` and a path inside it: `cameras[0]` + `fps` → `cameras[0].fps`.
fn within(field: &str, path: &str) -> String {
    match path {
        "" => field.to_string(),
        p if p.starts_with('[') => format!("{field}{p}"),
        p => format!("{field}.{p}"),
    }
}

/// For valid TOML that does not deserialise: every section (and every camera's
/// rule, zone, line) that fails, each with its own field path and line.
fn section_problems(text: &str) -> Vec<Problem> {
    let Ok(table) = toml::from_str::<toml::Table>(text) else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = Vec::new();
    let each =
        |key: &str, value: &toml::Value, check: &FitCheck, out: &mut Vec<(String, String)>| {
            match value.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Err((path, m)) = check(item) {
                            out.push((within(&format!("{key}[{i}]"), &path), m));
                        }
                    }
                }
                None => out.push((key.into(), "must be an array of tables ([[...]])".into())),
            }
        };
    for (key, value) in &table {
        let field = key.as_str();
        let result = match field {
            "detectors" => {
                each(field, value, &fits::<DetectorConfig>, &mut out);
                Ok(())
            }
            "cameras" => {
                if let Some(cameras) = value.as_array() {
                    for (i, cam) in cameras.iter().enumerate() {
                        let f = format!("cameras[{i}]");
                        if fits::<CameraConfig>(cam).is_ok() {
                            continue;
                        }
                        // Narrow down to the rule, zone or line at fault.
                        let before = out.len();
                        let parts: [(&str, &FitCheck); 3] = [
                            ("rules", &fits_rule),
                            ("zones", &fits::<crate::rules::ZoneConfig>),
                            ("lines", &fits::<crate::rules::LineConfig>),
                        ];
                        for (part, check) in parts {
                            if let Some(v) = cam.get(part) {
                                each(&format!("{f}.{part}"), v, check, &mut out);
                            }
                        }
                        if out.len() == before {
                            let mut rest = cam.clone();
                            if let Some(t) = rest.as_table_mut() {
                                for part in ["rules", "zones", "lines"] {
                                    t.remove(part);
                                }
                            }
                            if let Err((path, m)) = fits::<CameraConfig>(&rest) {
                                out.push((within(&f, &path), m));
                            }
                        }
                    }
                } else {
                    out.push((
                        field.into(),
                        "must be an array of tables ([[cameras]])".into(),
                    ));
                }
                Ok(())
            }
            "tracker" => fits::<TrackerConfig>(value),
            "alerts" => fits::<AlertsConfig>(value),
            "metrics" => fits::<MetricsConfig>(value),
            "storage" => fits::<StorageConfig>(value),
            "console" => fits::<crate::console::ConsoleConfig>(value),
            "compound" => fits::<crate::compound::CompoundConfig>(value),
            other => Err((
                String::new(),
                with_suggestion(&format!(
                    "unknown section `{other}`, expected one of `detectors`, `cameras`, `tracker`, `alerts`, `metrics`, `storage`, `console`, `compound`"
                )),
            )),
        };
        if let Err((path, m)) = result {
            out.push((within(field, &path), m));
        }
    }
    if !table.contains_key("cameras") {
        out.push((
            "cameras".into(),
            "missing: at least one [[cameras]] is needed".into(),
        ));
    }
    out.into_iter()
        .map(|(field, message)| Problem {
            line: line_of_field(text, &field),
            field,
            message,
            warning: false,
        })
        .collect()
}

/// serde's "unknown field `dwel_s`, expected one of `a`, `b`" plus the nearest
/// valid name: "(did you mean `dwell_s`?)".
fn with_suggestion(message: &str) -> String {
    let message = message.trim_end().to_string();
    let ticked: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    let (Some(wrong), true) = (ticked.first(), message.contains("expected")) else {
        return message;
    };
    let nearest = ticked[1..]
        .iter()
        .map(|c| (edit_distance(wrong, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min();
    match nearest {
        Some((_, name)) => format!("{message} (did you mean `{name}`?)"),
        None => message,
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// `cameras[i].source`.
fn is_camera_source(field: &str) -> bool {
    field.starts_with("cameras[") && field.ends_with("].source")
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

/// A config larger than this is refused before parsing.
const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Points in one zone polygon at most (a drawn zone has a handful).
const MAX_POLYGON_POINTS: usize = 256;

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl LoadedConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        // Bounded before parsing: a 10 MB polygon once kept `vigil check`
        // busy for 205 s.
        if let Ok(meta) = std::fs::metadata(path)
            && meta.len() > MAX_CONFIG_BYTES
        {
            return Err(ConfigError::Read {
                path: path.into(),
                reason: format!(
                    "{} bytes; a config is at most {} KB (zones need a few points, not thousands)",
                    meta.len(),
                    MAX_CONFIG_BYTES / 1024
                ),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.into(),
            reason: e.to_string(),
        })?;
        let config: Config = match toml::from_str(&text) {
            Ok(c) => c,
            Err(e) => {
                // Valid TOML whose sections do not fit: name every section that
                // does not, not just the first.
                let problems = section_problems(&text);
                if problems.is_empty() {
                    return Err(ConfigError::Parse {
                        path: path.into(),
                        line: e.span().map(|s| line_of(&text, s.start)).unwrap_or(1),
                        message: with_suggestion(e.message()),
                    });
                }
                return Err(ConfigError::Invalid {
                    path: path.into(),
                    problems,
                });
            }
        };
        Ok(LoadedConfig {
            config,
            path: path.into(),
            text,
        })
    }

    /// Loads and checks; any error-level problem fails.
    pub fn load_checked(path: &Path, deep: bool) -> Result<Self, ConfigError> {
        let loaded = Self::load(path)?;
        let mut problems = Vec::new();
        for p in loaded.check(deep) {
            if p.warning {
                continue;
            }
            // One camera's missing source must not keep the others from
            // starting: its supervisor reports it failed.
            if is_camera_source(&p.field) {
                tracing::warn!("{}: {p}", path.display());
                continue;
            }
            problems.push(p);
        }
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
        line_of_field(&self.text, field)
    }

    /// The config as compound node `node` sees it: its own store
    /// (`<[storage] dir>/<node>`: its own evidence, signing key and outbox)
    /// and its own name on the broker.
    pub fn as_node(&mut self, node: &str) -> Result<(), crate::compound::CompoundError> {
        crate::compound::check_node_name(node)?;
        if self.config.compound.is_none() {
            return Err(crate::compound::CompoundError::NoCompound { node: node.into() });
        }
        let storage = &mut self.config.storage;
        storage.dir = storage.dir.join(node);
        self.config.alerts.node_id = Some(node.into());
        Ok(())
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
            if d.std.iter().any(|v| !v.is_finite() || *v == 0.0) {
                p.error(format!("{f}.std"), "must be finite and non-zero".into());
            }
            if d.mean.iter().any(|v| !v.is_finite()) {
                p.error(format!("{f}.mean"), "must be finite numbers".into());
            }
            if !(d.scale.is_finite() && d.scale > 0.0) {
                p.error(format!("{f}.scale"), "must be a positive number".into());
            }
            if !(d.nms_iou > 0.0 && d.nms_iou <= 1.0) {
                p.error(
                    format!("{f}.nms_iou"),
                    "must be in (0, 1]: the overlap above which boxes of one class merge".into(),
                );
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
            if let Err(e) = SourceUri::resolve(&cam.source, &base).and_then(|u| u.validate()) {
                p.error(format!("{f}.source"), e.to_string());
            }
            if cam.id.len() > 64 {
                p.error(format!("{f}.id"), "at most 64 characters".into());
            }
            if cam.fps.is_some_and(|v| !fps_ok(v)) {
                p.error(format!("{f}.fps"), FPS_RANGE.into());
            }
            if !(0.0..=1.0).contains(&cam.motion.min_changed) {
                p.error(
                    format!("{f}.motion.min_changed"),
                    "must be a fraction between 0 and 1".into(),
                );
            }
            if !(cam.motion.max_skip_s.is_finite() && cam.motion.max_skip_s > 0.0) {
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
            if !(cam.stall_s.is_finite() && (0.5..=600.0).contains(&cam.stall_s)) {
                p.error(
                    format!("{f}.stall_s"),
                    "must be between 0.5 and 600 seconds".into(),
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
                if u.fps.is_some_and(|v| !fps_ok(v)) {
                    p.error(format!("{df}.fps"), FPS_RANGE.into());
                }
                if let Some(r) = u.roi
                    && (r.iter().any(|v| !(0.0..=1.0).contains(v)) || r[0] >= r[2] || r[1] >= r[3])
                {
                    p.error(
                        format!("{df}.roi"),
                        "must be [x1, y1, x2, y2] within 0..1 with x1 < x2 and y1 < y2".into(),
                    );
                }
                if let Some(problem) = u.tiles.as_ref().and_then(|t| t.problem()) {
                    p.error(format!("{df}.tiles"), problem);
                }
                if u.regions.is_some() && !cam.motion.enabled {
                    p.error(
                        format!("{df}.regions"),
                        "\"motion\" needs motion gating: set motion = { enabled = true } on this camera, or drop regions".into(),
                    );
                }
                if u.regions.is_some() && u.roi.is_some() {
                    p.error(
                        format!("{df}.regions"),
                        "cannot be combined with roi: motion regions already look only where something moves".into(),
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
                } else if z.polygon.len() > MAX_POLYGON_POINTS {
                    // Checked before the crossing test, which is quadratic.
                    p.error(
                        format!("{zf}.polygon"),
                        format!(
                            "has {} points; a zone has at most {MAX_POLYGON_POINTS}",
                            z.polygon.len()
                        ),
                    );
                } else if ring_self_intersects(&z.polygon) {
                    p.error(
                        format!("{zf}.polygon"),
                        "crosses itself; list the points in order around the zone".into(),
                    );
                } else if polygon_area(&z.polygon) < 1e-6 {
                    p.error(
                        format!("{zf}.polygon"),
                        "has no area (its points lie on a line): nothing could ever be inside"
                            .into(),
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
                let seconds = |p: &mut Checker, name: &str, v: f32, positive: bool| {
                    if !(0.0..=86_400.0).contains(&v) || (positive && v <= 0.0) {
                        let what = if positive {
                            "a positive"
                        } else {
                            "a non-negative"
                        };
                        p.error(
                            format!("{rf}.{name}"),
                            format!("must be {what} number of seconds (at most a day)"),
                        );
                    }
                };
                match r {
                    RuleConfig::Loitering(l) => {
                        seconds(&mut p, "dwell_s", l.dwell_s, true);
                        seconds(&mut p, "leave_after_s", l.leave_after_s, false);
                    }
                    RuleConfig::BatteryCart(b) => {
                        seconds(&mut p, "dwell_s", b.dwell_s, false);
                        seconds(&mut p, "leave_after_s", b.leave_after_s, false);
                    }
                    _ => {}
                }
                match r {
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
                        seconds(&mut p, "min_s", fs.min_s, false);
                        for (key, scores) in
                            [("min_score", &fs.min_score), ("peak_score", &fs.peak_score)]
                        {
                            for (k, v) in scores {
                                if !(0.0..=1.0).contains(v) {
                                    p.error(
                                        format!("{rf}.{key}.{k}"),
                                        "must be between 0 and 1".into(),
                                    );
                                }
                                if !fs.classes.contains(k) {
                                    p.error(
                                        format!("{rf}.{key}.{k}"),
                                        format!("{k:?} is not in the rule's classes"),
                                    );
                                }
                            }
                        }
                        for k in &fs.classes {
                            if fs.peak(k) < fs.floor(k) {
                                p.warning(
                                    format!("{rf}.peak_score.{k}"),
                                    format!(
                                        "{} is under min_score {}: it confirms nothing the floor does not",
                                        fs.peak(k),
                                        fs.floor(k)
                                    ),
                                );
                            }
                        }
                    }
                    _ => {}
                }
            }
        }

        if let Some(url) = &c.alerts.broker {
            match crate::publish::parse_broker(url) {
                Err(e) => p.error("alerts.broker".into(), e.to_string()),
                Ok(address) if address.tls => {
                    if let Err(e) = c.alerts.tls_files(&base) {
                        let field = match &e {
                            crate::publish::MqttError::TlsFile { field, .. } => *field,
                            crate::publish::MqttError::HalfClientCert => "client_cert",
                            _ => "ca_file",
                        };
                        let cause = crate::errors::source_chain(&e);
                        let message = if cause.is_empty() {
                            e.to_string()
                        } else {
                            format!("{e}: {cause}")
                        };
                        p.error(format!("alerts.{field}"), message);
                    }
                }
                Ok(_) => {
                    // TLS settings with a plain broker would be ignored, and the
                    // alerts sent in clear text by someone who asked for TLS.
                    let a = &c.alerts;
                    for (field, set) in [
                        ("ca_file", a.ca_file.is_some()),
                        ("client_cert", a.client_cert.is_some()),
                        ("client_key", a.client_key.is_some()),
                    ] {
                        if set {
                            p.error(
                                format!("alerts.{field}"),
                                format!("set, but the broker {url} is plain mqtt://, so it would be ignored and alerts sent unencrypted; use mqtts:// (or remove {field})"),
                            );
                        }
                    }
                }
            }
        }
        match c.alerts.credentials(&base) {
            Ok(_) => {}
            Err(e @ crate::publish::MqttError::PasswordEnv { .. }) => {
                // The service's environment may differ from this shell's.
                p.warning("alerts.password_env".into(), e.to_string())
            }
            Err(crate::publish::MqttError::PasswordFile { path, source }) => p.error(
                "alerts.password_file".into(),
                format!("{}: {source}", path.display()),
            ),
            Err(e) => p.error("alerts.username".into(), e.to_string()),
        }
        if c.alerts.outbox_max < 100 {
            p.error(
                "alerts.outbox_max".into(),
                "must be at least 100 messages (a burst of alerts must fit while the broker is down)".into(),
            );
        }
        if let Some(node) = &c.alerts.node_id
            && (node.is_empty()
                || node.len() > 64
                || !node
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'))
        {
            p.error(
                "alerts.node_id".into(),
                "use 1 to 64 letters, digits, '-' and '_' (it is part of the client id and a topic)".into(),
            );
        }
        let prefix = &c.alerts.topic_prefix;
        if prefix.is_empty()
            || prefix.contains(['#', '+', '\0'])
            || prefix
                .split('/')
                .any(|level| matches!(level, "" | "." | ".."))
        {
            p.error(
                "alerts.topic_prefix".into(),
                "must be topic levels like \"vigil\" or \"compound/vigil\": no wildcard, no empty, `.` or `..` level, no leading or trailing `/`".into(),
            );
        }
        if c.alerts.broker.is_none() {
            match c.alerts.embedded_listen.parse::<std::net::SocketAddr>() {
                Err(_) => p.error(
                    "alerts.embedded_listen".into(),
                    format!(
                        "{:?} is not an address like \"127.0.0.1:1883\"",
                        c.alerts.embedded_listen
                    ),
                ),
                // The embedded broker speaks plain MQTT: off the machine that
                // would put logins and alerts on the wire in clear.
                Ok(addr) if !addr.ip().is_loopback() => p.error(
                    "alerts.embedded_listen".into(),
                    "the embedded broker has no TLS, so it listens on loopback only (127.0.0.1 or ::1); for other machines run mosquitto with TLS and set alerts.broker".into(),
                ),
                Ok(_) => {}
            }
        }
        let t = &c.tracker;
        let mut scores = vec![
            ("high_score".to_string(), Some(t.high_score)),
            ("new_track_score".to_string(), Some(t.new_track_score)),
        ];
        for (label, l) in &t.labels {
            if !detector_classes.values().flatten().any(|c| c == label) {
                p.error(
                    format!("tracker.labels.{label}"),
                    format!("no detector emits {label:?}"),
                );
            }
            scores.push((format!("labels.{label}.high_score"), l.high_score));
            scores.push((format!("labels.{label}.new_track_score"), l.new_track_score));
        }
        for (name, v) in scores {
            if v.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
                p.error(format!("tracker.{name}"), "must be between 0 and 1".into());
            }
        }
        if !(t.match_distance > 0.0 && t.match_distance <= 1.0) {
            p.error(
                "tracker.match_distance".into(),
                "must be in (0, 1] (1 - IoU)".into(),
            );
        }
        if t.max_lost == 0 {
            p.error("tracker.max_lost".into(), "must be at least 1 frame".into());
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

        match &c.compound {
            Some(compound) => {
                for (i, cam) in c.cameras.iter().enumerate() {
                    if let Some(node) = &cam.node
                        && let Err(e) = crate::compound::check_node_name(node)
                    {
                        p.error(format!("cameras[{i}].node"), e.to_string());
                    }
                }
                if !(2.0..=120.0).contains(&compound.lease_s) {
                    p.error(
                        "compound.lease_s".into(),
                        "must be between 2 and 120 seconds".into(),
                    );
                }
                // The other nodes' consoles fetch this node's evidence from its
                // console: it must exist and listen where they reach it.
                match &c.console {
                    None => p.warning(
                        "console".into(),
                        "unset on a compound's node: other nodes' consoles cannot open this node's alerts or cameras".into(),
                    ),
                    Some(console)
                        if console
                            .listen
                            .parse::<std::net::SocketAddr>()
                            .is_ok_and(|a| a.ip().is_loopback()) =>
                    {
                        p.warning(
                            "console.listen".into(),
                            format!(
                                "{} is loopback: only consoles on this machine can open this node's alerts and cameras",
                                console.listen
                            ),
                        )
                    }
                    Some(_) => {}
                }
                match &compound.secret_file {
                    Some(file) => {
                        if let Err(e) = crate::compound::Secret::read(&base.join(file)) {
                            p.error(
                                "compound.secret_file".into(),
                                crate::errors::with_causes(&e),
                            );
                        }
                    }
                    None => p.warning(
                        "compound.secret_file".into(),
                        "unset: each console lists the other nodes' alerts but cannot open their evidence".into(),
                    ),
                }
                match compound.pg_config(&base) {
                    Err(e @ crate::compound::CompoundError::PasswordFile { .. }) => p.error(
                        "compound.password_file".into(),
                        crate::errors::with_causes(&e),
                    ),
                    Err(e) => p.error("compound.database".into(), crate::errors::with_causes(&e)),
                    // Deep: the database must answer, as `vigil run --node` needs it.
                    Ok(pg) if deep => {
                        if let Err(e) = pg.connect(postgres::NoTls) {
                            p.error(
                                "compound.database".into(),
                                format!(
                                    "PostgreSQL {} does not answer: {}",
                                    compound.describe(),
                                    crate::errors::with_causes(&e)
                                ),
                            );
                        }
                    }
                    Ok(_) => {}
                }
            }
            None => {
                for (i, cam) in c.cameras.iter().enumerate() {
                    if cam.node.is_some() {
                        p.warning(
                            format!("cameras[{i}].node"),
                            "ignored without [compound]".into(),
                        );
                    }
                }
            }
        }
        if let Some(console) = &c.console {
            if !st.enabled {
                p.error(
                    "console".into(),
                    "the console shows the evidence store: enable [storage]".into(),
                );
            }
            if console.listen.parse::<std::net::SocketAddr>().is_err() {
                p.error(
                    "console.listen".into(),
                    format!("{:?} is not an address like 127.0.0.1:8080", console.listen),
                );
            } else if console
                .listen
                .parse::<std::net::SocketAddr>()
                .is_ok_and(|a| !a.ip().is_loopback())
                && console.tls_cert.is_none()
            {
                p.warning(
                    "console.listen".into(),
                    "not loopback and no tls_cert/tls_key: passwords and evidence would cross the network unencrypted".into(),
                );
            }
            if let Err(e) = console.zone() {
                p.error("console.time_zone".into(), e.to_string());
            }
            for (kind, text) in &console.instructions {
                let chars = text.chars().count();
                if chars > crate::console::MAX_INSTRUCTION_CHARS {
                    p.error(
                        format!("console.instructions.{}", kind.as_str()),
                        format!(
                            "{chars} characters; at most {} fit on a card",
                            crate::console::MAX_INSTRUCTION_CHARS
                        ),
                    );
                }
            }
            match (&console.tls_cert, &console.tls_key) {
                (Some(_), None) | (None, Some(_)) => p.error(
                    "console.tls_cert".into(),
                    "set both tls_cert and tls_key, or neither".into(),
                ),
                (Some(cert), Some(key)) => {
                    for (field, file) in [("console.tls_cert", cert), ("console.tls_key", key)] {
                        if !base.join(file).is_file() {
                            p.error(
                                field.into(),
                                format!("file {} not found", base.join(file).display()),
                            );
                        }
                    }
                }
                (None, None) => {}
            }
            let users = console.users_path(&base);
            match crate::console::users::count(&users) {
                Ok(0) => p.warning(
                    "console.users".into(),
                    format!(
                        "no users in {} yet: nobody can log in; add one with `vigil user add NAME --role admin -c {}`",
                        users.display(),
                        self.path.display()
                    ),
                ),
                Ok(_) => {}
                Err(e) => p.error("console.users".into(), e.to_string()),
            }
            if console.wall_max == 0 {
                p.error("console.wall_max".into(), "must be at least 1".into());
            }
            let escalate = console.escalate_after_s;
            if !(0.0..=86_400.0).contains(&escalate) {
                p.error(
                    "console.escalate_after_s".into(),
                    format!("{escalate} is not between 0 (never) and 86400 seconds"),
                );
            }
            let ids: Vec<&str> = c.cameras.iter().map(|cam| cam.id.as_str()).collect();
            for (i, plan) in console.plans.iter().enumerate() {
                for (field, problem) in plan.problems(i, &base, &ids) {
                    p.error(field, problem);
                }
            }
        }

        let mut problems = p.problems;
        for problem in &mut problems {
            problem.line = self.line_of_field(&problem.field);
        }
        problems
    }
}

const FPS_RANGE: &str = "must be a number of frames per second between 0 and 1000";

fn fps_ok(v: f32) -> bool {
    v > 0.0 && v <= 1000.0
}

/// Area of a polygon in normalised units (shoelace).
fn polygon_area(points: &[[f32; 2]]) -> f32 {
    let n = points.len();
    let twice: f32 = (0..n)
        .map(|i| {
            let (a, b) = (points[i], points[(i + 1) % n]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum();
    (twice / 2.0).abs()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(toml: &str) -> Vec<Problem> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vigil.toml");
        std::fs::write(&path, toml).unwrap();
        LoadedConfig::load(&path).unwrap().check(false)
    }

    #[test]
    fn a_compound_section_is_known_when_another_section_is_wrong() {
        let load = |text: &str| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("vigil.toml");
            std::fs::write(&path, text).unwrap();
            let Err(err) = LoadedConfig::load(&path) else {
                panic!("a config with no cameras loaded")
            };
            crate::errors::with_causes(&err)
        };
        let err = load("[compound]\ndatabase = \"postgres://vigil@db.local/vigil\"\n");
        assert!(err.contains("at least one [[cameras]]"), "{err}");
        assert!(!err.contains("unknown section"), "{err}");
        let err = load("[compund]\ndatabase = \"postgres://vigil@db.local/vigil\"\n");
        assert!(err.contains("did you mean `compound`"), "{err}");
    }

    #[test]
    fn unparsable_pipelines_and_unknown_schemes_are_named() {
        for (source, says) in [
            (
                "gst: videotestsrc ! nosuchelement",
                "bad GStreamer pipeline",
            ),
            ("gst: videotestsrc ! ! fakesink", "bad GStreamer pipeline"),
            ("ftp://admin:pw@cam/stream", "no GStreamer source handles"),
        ] {
            let p = problems(&BASE.replace("gst: videotestsrc", source));
            let hit = p.iter().find(|p| p.field == "cameras[0].source");
            assert!(
                hit.is_some_and(|p| p.message.contains(says) && !p.message.contains(":pw@")),
                "{source}: {p:?}"
            );
        }
        assert!(
            problems(BASE)
                .iter()
                .all(|p| p.field != "cameras[0].source")
        );
    }

    #[test]
    fn compound_fields_are_checked_where_they_are_written() {
        let pinned = BASE.replace(
            "detectors = [{ name = \"coco\" }]\n[[cameras.zones]]",
            "detectors = [{ name = \"coco\" }]\nnode = \"gate/1\"\n[[cameras.zones]]",
        );
        let ignored = problems(&pinned);
        let hit = ignored.iter().find(|p| p.field == "cameras[0].node");
        assert!(
            hit.is_some_and(|p| p.warning),
            "pin without [compound]: {ignored:?}"
        );
        let compound = format!(
            "{pinned}\n[compound]\ndatabase = \"postgres://vigil:pw@db/vigil\"\nlease_s = 1\nsecret_file = \"no-such.secret\"\n"
        );
        let p = problems(&compound);
        let field = |f: &str| p.iter().find(|p| p.field == f && !p.warning);
        assert!(
            field("cameras[0].node").is_some_and(|p| p.message.contains("gate/1")),
            "{p:?}"
        );
        assert!(field("compound.lease_s").is_some(), "{p:?}");
        assert!(
            field("compound.secret_file").is_some_and(|p| p.message.contains("no-such.secret")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|p| p.field == "console" && p.warning && p.message.contains("other nodes")),
            "a node without a console: {p:?}"
        );
        let url = field("compound.database").expect("a password in the URL");
        assert!(
            url.message.contains("password_file") && !url.message.contains(":pw@"),
            "{p:?}"
        );
    }

    #[test]
    fn huge_configs_and_polygons_are_refused_quickly() {
        let started = std::time::Instant::now();
        let ring: Vec<String> = (0..5000)
            .map(|i| {
                let a = i as f32 / 5000.0 * std::f32::consts::TAU;
                format!("[{:.4}, {:.4}]", 0.5 + 0.4 * a.cos(), 0.5 + 0.4 * a.sin())
            })
            .collect();
        let big = BASE.replace(
            "polygon = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]",
            &format!("polygon = [{}]", ring.join(", ")),
        );
        assert_ne!(big, BASE, "the base config has the zone this test grows");
        let p = problems(&big);
        assert!(
            p.iter()
                .any(|x| x.field == "cameras[0].zones[0].polygon"
                    && x.message.contains("at most 256")),
            "{p:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vigil.toml");
        std::fs::write(&path, format!("{BASE}\n# {}\n", "x".repeat(2 << 20))).unwrap();
        let Err(ConfigError::Read { reason, .. }) = LoadedConfig::load(&path) else {
            panic!("a 2 MB config is refused");
        };
        assert!(reason.contains("at most 1024 KB"), "{reason}");
        // Not a timing assertion: a hang here would be the bug.
        eprintln!("refused in {:?}", started.elapsed());
    }

    #[test]
    fn tls_files_with_a_plain_broker_are_an_error_not_ignored() {
        let p = problems(
            &(BASE.to_string()
                + "[alerts]\nbroker = \"mqtt://127.0.0.1:1883\"\nca_file = \"/etc/ssl/certs/ca-certificates.crt\"\n"),
        );
        let hit = p.iter().find(|x| x.field == "alerts.ca_file");
        assert!(
            hit.is_some_and(|x| x.message.contains("mqtts://") && x.message.contains("unencrypted")),
            "{p:?}"
        );
        let p = problems(&(BASE.to_string() + "[alerts]\nbroker = \"mqtt://127.0.0.1:1883\"\n"));
        assert!(p.iter().all(|x| !x.field.starts_with("alerts.")), "{p:?}");
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_key_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vigil.toml");
        for (wrong, right, field) in [
            (
                "dwell_s = 10",
                "dwell_s = \"long\"",
                "cameras[0].rules[0].dwell_s",
            ),
            (
                "input = [416, 416]",
                "input = [416, \"a\"]",
                "detectors[0].input[1]",
            ),
            (
                "detectors = [{ name = \"coco\" }]",
                "detectors = [{ name = \"coco\", fps = \"x\" }]",
                "cameras[0].detectors[0].fps",
            ),
            (
                "[0.9, 0.1]",
                "[0.9, true]",
                "cameras[0].zones[0].polygon[1][1]",
            ),
            (
                "id = \"a\"",
                "id = \"a\"\nmotion = { enabled = 1 }",
                "cameras[0].motion.enabled",
            ),
        ] {
            let text = BASE.replace(wrong, right) + "[storage]\nenabled = \"yes\"\n";
            std::fs::write(&path, &text).unwrap();
            let Err(ConfigError::Invalid { problems, .. }) = LoadedConfig::load(&path) else {
                panic!("{right} does not fit");
            };
            let line_with =
                |needle: &str| text.lines().position(|l| l.contains(needle)).map(|i| i + 1);
            for (field, on) in [
                (field, right.lines().last().unwrap()),
                ("storage.enabled", "\"yes\""),
            ] {
                let p = problems.iter().find(|p| p.field == field);
                assert!(
                    p.is_some_and(|p| p.message.contains("invalid type")),
                    "{field}: {problems:?}"
                );
                assert_eq!(p.unwrap().line, line_with(on), "{field}: {problems:?}");
            }
        }
    }

    #[test]
    fn console_section_is_checked_field_by_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vigil.toml");
        // A typo in [console] is named there, next to a camera's own problem.
        let text =
            BASE.replace("dwell_s = 10", "dwel_s = 10") + "[console]\nlistn = \"0.0.0.0:80\"\n";
        std::fs::write(&path, &text).unwrap();
        let Err(ConfigError::Invalid {
            problems: found, ..
        }) = LoadedConfig::load(&path)
        else {
            panic!("two sections do not fit");
        };
        assert!(
            found
                .iter()
                .any(|p| p.field == "console.listn" && p.message.contains("listen")),
            "{found:?}"
        );
        let p = problems(
            &(BASE.to_string()
                + "[console]\nlisten = \"0.0.0.0:8080\"\ntime_zone = \"Mars/Olympus\"\ntls_key = \"k.pem\"\n"),
        );
        let says = |field: &str, what: &str| {
            p.iter()
                .any(|x| x.field == field && x.message.contains(what))
        };
        assert!(says("console.time_zone", "Mars/Olympus"), "{p:?}");
        assert!(says("console.tls_cert", "both"), "{p:?}");
        assert!(says("console.users", "vigil user add"), "{p:?}");
        assert!(says("console.listen", "unencrypted"), "{p:?}");
        let p = problems(&(BASE.to_string() + "[console]\nescalate_after_s = -5\n"));
        assert!(
            p.iter().any(|x| x.field == "console.escalate_after_s"),
            "{p:?}"
        );
        let long = "很".repeat(501);
        let p = problems(
            &(BASE.to_string()
                + &format!(
                    "[console]\n[console.instructions]\nfire_smoke = \"{long}\"\nloitering = \"派巡逻\"\n"
                )),
        );
        let on = |field: &str| p.iter().filter(|x| x.field == field).count();
        assert_eq!(on("console.instructions.fire_smoke"), 1, "{p:?}");
        assert_eq!(on("console.instructions.loitering"), 0, "{p:?}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vigil.toml");
        std::fs::write(
            &path,
            BASE.to_string() + "[console.instructions]\nfire = \"119\"\n",
        )
        .unwrap();
        let Err(ConfigError::Invalid {
            problems: found, ..
        }) = LoadedConfig::load(&path)
        else {
            panic!("an unknown kind");
        };
        assert!(
            found.iter().any(|p| p.field == "console.instructions.fire"
                && p.message.contains("fire_smoke")),
            "{found:?}"
        );
    }

    #[test]
    fn every_section_that_does_not_fit_is_named_with_a_suggestion() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vigil.toml");
        let text = BASE.replace("dwell_s = 10", "dwel_s = 10")
            + "[[cameras]]\nid = \"b\"\nsource = \"x.mp4\"\ndetectors = [{ name = \"coco\" }]\nfsp = 5\n"
            + "[alerts]\nbrokr = \"mqtt://h:1\"\n[storag]\nenabled = false\n";
        std::fs::write(&path, &text).unwrap();
        let Err(ConfigError::Invalid { problems, .. }) = LoadedConfig::load(&path) else {
            panic!("four sections do not fit");
        };
        let named: Vec<(&str, Option<usize>)> = problems
            .iter()
            .map(|p| (p.field.as_str(), p.line))
            .collect();
        assert_eq!(
            named,
            [
                ("alerts.brokr", Some(26)),
                ("cameras[0].rules[0].dwel_s", Some(19)),
                ("cameras[1].fsp", Some(24)),
                ("storag", Some(27)),
            ],
            "{problems:#?}"
        );
        let text: Vec<String> = problems.iter().map(|p| p.message.clone()).collect();
        assert!(text[0].contains("did you mean `broker`?"), "{text:?}");
        assert!(text[1].contains("did you mean `dwell_s`?"), "{text:?}");
        assert!(text[2].contains("did you mean `fps`?"), "{text:?}");
        assert!(text[3].contains("did you mean `storage`?"), "{text:?}");
        // Broken TOML is one error at its line.
        std::fs::write(&path, "[[cameras]\nid = 1\n").unwrap();
        assert!(matches!(
            LoadedConfig::load(&path),
            Err(ConfigError::Parse { line: 1, .. })
        ));
    }

    use proptest::prelude::*;

    /// TOML spellings of numbers that break arithmetic.
    fn any_number() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("nan".to_string()),
            Just("inf".to_string()),
            Just("-inf".to_string()),
            Just("1e308".to_string()),
            Just("-0.0".to_string()),
            Just("0".to_string()),
            Just("-1".to_string()),
            Just("9223372036854775807".to_string()),
            any::<f64>().prop_map(|f| format!("{f:?}")),
            any::<i64>().prop_map(|i| i.to_string()),
            Just("\"x\"".to_string()),
            Just("[]".to_string()),
        ]
    }

    const NUMERIC_KEYS: &[(&str, &str)] = &[
        ("[[detectors]]", "score_threshold"),
        ("[[detectors]]", "nms_iou"),
        ("[[detectors]]", "scale"),
        ("[[detectors]]", "pad"),
        ("[[detectors]]", "mean"),
        ("[[cameras]]", "fps"),
        ("[[cameras]]", "stall_s"),
        ("[[cameras.rules]]", "dwell_s"),
        ("[[cameras.rules]]", "leave_after_s"),
        ("[[cameras.zones]]", "polygon"),
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Any text at all: an error or a config, never a panic.
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("vigil.toml");
            std::fs::write(&path, &text).unwrap();
            if let Ok(loaded) = LoadedConfig::load(&path) {
                let _ = loaded.check(false);
            }
        }

        /// A valid config with hostile numbers in its numeric keys: `check`
        /// names them, nothing panics.
        #[test]
        fn hostile_numbers_never_panic(
            picks in proptest::collection::vec((0..NUMERIC_KEYS.len(), any_number()), 1..4)
        ) {
            let mut text = BASE.to_string();
            for (i, value) in picks {
                let (table, key) = NUMERIC_KEYS[i];
                let line = format!("{key} = {value}");
                // Replace the key if the base has it, else add it to its table.
                let existing = text.lines().find(|l| l.starts_with(&format!("{key} ="))).map(String::from);
                text = match existing {
                    Some(old) => text.replacen(&old, &line, 1),
                    None => text.replacen(table, &format!("{table}\n{line}"), 1),
                };
            }
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("vigil.toml");
            std::fs::write(&path, &text).unwrap();
            if let Ok(loaded) = LoadedConfig::load(&path) {
                let _ = loaded.check(false);
            }
        }
    }

    const BASE: &str = r#"
[[detectors]]
name = "coco"
model = "m.onnx"
format = "yolox"
input = [416, 416]
classes = "coco"
[[cameras]]
id = "a"
source = "gst: videotestsrc"
detectors = [{ name = "coco" }]
[[cameras.zones]]
name = "z"
polygon = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]
[[cameras.rules]]
kind = "loitering"
zone = "z"
classes = ["person"]
dwell_s = 10
"#;

    fn fields(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|p| p.field.as_str()).collect()
    }

    #[test]
    fn numbers_that_blind_or_flood_a_camera_are_named() {
        let ok = problems(BASE);
        assert_eq!(
            fields(&ok),
            ["detectors[0].model"],
            "only the missing model: {ok:?}"
        );
        let bad = BASE
            .replace(
                "classes = \"coco\"\n",
                "classes = \"coco\"\nnms_iou = -1.0\nscale = 0.0\nmean = [nan, 0.0, 0.0]\n",
            )
            .replace(
                "source = \"gst: videotestsrc\"\n",
                "source = \"gst: videotestsrc\"\nfps = nan\n",
            )
            .replace(
                "detectors = [{ name = \"coco\" }]",
                "detectors = [{ name = \"coco\", fps = 1e30 }]",
            )
            .replace(
                "[[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]",
                "[[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]]",
            )
            .replace("dwell_s = 10", "dwell_s = inf")
            + "[tracker]\nhigh_score = 5.0\n[alerts]\ntopic_prefix = \"/../\"\nbroker = \"mqtt://127.0.0.1:0\"\n";
        let found = problems(&bad);
        let found = fields(&found);
        for field in [
            "detectors[0].nms_iou",
            "detectors[0].scale",
            "detectors[0].mean",
            "cameras[0].fps",
            "cameras[0].detectors[0].fps",
            "cameras[0].zones[0].polygon",
            "cameras[0].rules[0].dwell_s",
            "tracker.high_score",
            "alerts.topic_prefix",
            "alerts.broker",
        ] {
            assert!(found.contains(&field), "{field} not reported: {found:?}");
        }
        let nan_iou = problems(&BASE.replace(
            "classes = \"coco\"\n",
            "classes = \"coco\"\nnms_iou = nan\n",
        ));
        assert!(
            fields(&nan_iou).contains(&"detectors[0].nms_iou"),
            "{nan_iou:?}"
        );
    }
}
