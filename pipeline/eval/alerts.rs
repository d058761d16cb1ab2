//! `vigil eval --alerts TRUTH.toml`: does a config raise the alerts a person
//! verified by eye on a clip, at the right time?
//!
//! A truth file names a config and the alerts expected from replaying it (camera,
//! kind, start in media seconds). The replay runs exactly as `vigil replay`
//! (no MQTT, no evidence store), and each expected alert is matched to the raised
//! alert of the same camera and kind whose start is nearest, within the
//! tolerance. What is left over on either side is a miss or a false alarm.

use crate::app::{self, RunOptions};
use crate::config::LoadedConfig;
use crate::source::Pacing;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A truth file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertTruth {
    /// The config to replay, relative to the truth file.
    pub config: PathBuf,
    /// How far (seconds) a raised alert's start may be from the expected one.
    #[serde(default = "default_tolerance")]
    pub tolerance_s: f64,
    /// How the expectations were checked (free text, kept in the report).
    #[serde(default)]
    pub verified: String,
    #[serde(default)]
    pub alerts: Vec<ExpectedAlert>,
}

fn default_tolerance() -> f64 {
    2.0
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExpectedAlert {
    pub camera: String,
    /// `loitering`, `battery_cart` or `fire_smoke`.
    pub kind: String,
    /// Media seconds at which the alert should open.
    pub start_s: f64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// An alert the replay raised.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RaisedAlert {
    pub id: String,
    pub camera: String,
    pub kind: String,
    pub start_s: f64,
    pub summary: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub expected: ExpectedAlert,
    pub raised: RaisedAlert,
    /// Raised minus expected start, seconds.
    pub start_error_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertReport {
    pub truth: PathBuf,
    pub config: PathBuf,
    pub tolerance_s: f64,
    pub hits: Vec<Hit>,
    pub misses: Vec<ExpectedAlert>,
    pub false_alarms: Vec<RaisedAlert>,
    pub mean_abs_start_error_s: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum AlertEvalError {
    #[error("{path}: cannot read")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a truth file")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("replaying {config}: camera {camera} failed: {reason}")]
    CameraFailed {
        config: PathBuf,
        camera: String,
        reason: String,
    },
    #[error("replaying {config}")]
    Replay {
        config: PathBuf,
        #[source]
        source: Box<app::AppError>,
    },
}

/// Replays the truth file's config and compares. The replay runs in the config's
/// folder, because `gst:` pipelines name their files relative to where vigil
/// runs (and the examples are written to run from `config/`).
pub fn evaluate(truth_path: &Path) -> Result<AlertReport, AlertEvalError> {
    let truth_path = &std::path::absolute(truth_path).map_err(|source| AlertEvalError::Read {
        path: truth_path.into(),
        source,
    })?;
    let text = std::fs::read_to_string(truth_path).map_err(|source| AlertEvalError::Read {
        path: truth_path.into(),
        source,
    })?;
    let truth: AlertTruth = toml::from_str(&text).map_err(|source| AlertEvalError::Parse {
        path: truth_path.into(),
        source,
    })?;
    let config_path = truth_path
        .parent()
        .unwrap_or(Path::new("."))
        .join(&truth.config);
    let mut loaded = LoadedConfig::load_checked(&config_path, false)?;
    let _ = std::env::set_current_dir(loaded.base_dir());
    // A measurement, not a watch: nothing stored, nothing published, and each
    // file played once even if the config loops it for a demo.
    loaded.config.storage.enabled = false;
    for camera in &mut loaded.config.cameras {
        camera.repeat = false;
    }
    let events_file = std::env::temp_dir().join(format!(
        "vigil-eval-alerts-{}-{}.jsonl",
        std::process::id(),
        crate::time::now_ms()
    ));
    let options = RunOptions {
        pacing: Pacing::AsFastAsPossible,
        events_file: Some(events_file.display().to_string()),
        embedded_broker: false,
        mqtt: false,
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        shutdown: Default::default(),
        run_until: None,
        inspect: Default::default(),
        console: crate::app::ConsoleUse::Off,
        node: None,
    };
    let replayed = app::run(&loaded, &options);
    let events = std::fs::read_to_string(&events_file).unwrap_or_default();
    let _ = std::fs::remove_file(&events_file);
    let report = replayed.map_err(|source| AlertEvalError::Replay {
        config: config_path.clone(),
        source: Box::new(source),
    })?;
    // A camera that never played would read as "missed everything".
    if let Some(failed) = report.cameras.iter().find_map(|c| match &c.end {
        crate::source::SourceEnd::Failed(reason) => Some((c.id.clone(), reason.clone())),
        _ => None,
    }) {
        return Err(AlertEvalError::CameraFailed {
            config: config_path,
            camera: failed.0,
            reason: failed.1,
        });
    }
    let raised = raised_alerts(&events);
    Ok(compare(truth_path, &config_path, &truth, raised))
}

/// The `new` events of a JSON-lines event log.
pub fn raised_alerts(jsonl: &str) -> Vec<RaisedAlert> {
    jsonl
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["type"] == "new")
        .map(|e| {
            let a = &e["after"];
            RaisedAlert {
                id: a["id"].as_str().unwrap_or_default().into(),
                camera: a["camera"].as_str().unwrap_or_default().into(),
                kind: a["kind"].as_str().unwrap_or_default().into(),
                start_s: a["start"]["media_s"].as_f64().unwrap_or(f64::NAN),
                summary: a["summary"].as_str().unwrap_or_default().into(),
            }
        })
        .collect()
}

/// Matches expected to raised alerts: each expected one, in order of start,
/// takes the nearest unmatched raised alert of its camera and kind within the
/// tolerance.
pub fn compare(
    truth_path: &Path,
    config_path: &Path,
    truth: &AlertTruth,
    raised: Vec<RaisedAlert>,
) -> AlertReport {
    let mut expected = truth.alerts.clone();
    expected.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    let mut left: Vec<Option<RaisedAlert>> = raised.into_iter().map(Some).collect();
    let mut hits = Vec::new();
    let mut misses = Vec::new();
    for e in expected {
        let nearest = left
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().map(|r| (i, r)))
            .filter(|(_, r)| r.camera == e.camera && r.kind == e.kind)
            .map(|(i, r)| (i, (r.start_s - e.start_s).abs()))
            .filter(|(_, d)| *d <= truth.tolerance_s)
            .min_by(|a, b| a.1.total_cmp(&b.1));
        match nearest.and_then(|(i, _)| left[i].take()) {
            Some(r) => hits.push(Hit {
                start_error_s: r.start_s - e.start_s,
                expected: e,
                raised: r,
            }),
            None => misses.push(e),
        }
    }
    let mean_abs_start_error_s = (!hits.is_empty())
        .then(|| hits.iter().map(|h| h.start_error_s.abs()).sum::<f64>() / hits.len() as f64);
    AlertReport {
        truth: truth_path.into(),
        config: config_path.into(),
        tolerance_s: truth.tolerance_s,
        hits,
        misses,
        false_alarms: left.into_iter().flatten().collect(),
        mean_abs_start_error_s,
    }
}

impl AlertReport {
    pub fn passed(&self) -> bool {
        self.misses.is_empty() && self.false_alarms.is_empty()
    }

    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: {} hit(s), {} miss(es), {} false alarm(s){}",
            self.truth.display(),
            self.hits.len(),
            self.misses.len(),
            self.false_alarms.len(),
            self.mean_abs_start_error_s
                .map(|e| format!(", mean |start error| {e:.2} s"))
                .unwrap_or_default()
        );
        for h in &self.hits {
            let _ = writeln!(
                s,
                "  hit    {} {} expected {:.1} s, raised {:.1} s ({:+.2} s)  {}",
                h.expected.camera,
                h.expected.kind,
                h.expected.start_s,
                h.raised.start_s,
                h.start_error_s,
                h.expected.note
            );
        }
        for m in &self.misses {
            let _ = writeln!(
                s,
                "  MISS   {} {} expected {:.1} s ± {:.1} s, nothing raised  {}",
                m.camera, m.kind, m.start_s, self.tolerance_s, m.note
            );
        }
        for f in &self.false_alarms {
            let _ = writeln!(
                s,
                "  FALSE  {} {} raised {:.1} s: {}",
                f.camera, f.kind, f.start_s, f.summary
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raised(camera: &str, start_s: f64) -> RaisedAlert {
        RaisedAlert {
            id: format!("{camera}-{start_s}"),
            camera: camera.into(),
            kind: "loitering".into(),
            start_s,
            summary: String::new(),
        }
    }

    #[test]
    fn hits_misses_and_false_alarms() {
        let truth: AlertTruth = toml::from_str(
            r#"
config = "x.toml"
tolerance_s = 1.5
[[alerts]]
camera = "room"
kind = "loitering"
start_s = 41.8
[[alerts]]
camera = "room"
kind = "loitering"
start_s = 69.2
[[alerts]]
camera = "room"
kind = "fire_smoke"
start_s = 70.0
"#,
        )
        .unwrap();
        let report = compare(
            Path::new("t.toml"),
            Path::new("x.toml"),
            &truth,
            vec![
                raised("room", 42.3),
                raised("room", 72.0),
                raised("hall", 69.2),
            ],
        );
        assert_eq!(report.hits.len(), 1);
        assert!((report.hits[0].start_error_s - 0.5).abs() < 1e-9);
        // 72.0 is 2.8 s late (outside 1.5 s); the hall is another camera.
        assert_eq!(report.misses.len(), 2);
        assert_eq!(report.false_alarms.len(), 2);
        assert!(!report.passed());
        let table = report.table();
        assert!(table.contains("MISS") && table.contains("FALSE"), "{table}");
    }
}
