//! Publish: events leave vigil here, to MQTT, a JSON-lines file and the log.
//!
//! Every camera sends its events down one channel to a single output thread, so
//! a slow broker never stalls a camera. On MQTT each event goes, at QoS 1, to the
//! all-events topic and to the topic of each recipient its rule kind is routed to
//! (see README "Alerts over MQTT"). Without a configured broker `vigil run` starts
//! an embedded one ([`broker`]) so the demo works out of the box.

pub mod broker;
mod mqtt;

pub use mqtt::{MqttError, MqttPublisher, parse_broker};

use crate::events::{Event, Lifecycle, RuleKind};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `[alerts]` in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// `mqtt://host:port` of the broker. Unset: `vigil run` starts an embedded
    /// broker on `embedded_listen`.
    pub broker: Option<String>,
    pub topic_prefix: String,
    /// MQTT client id; defaults to `vigil-<topic_prefix>`.
    pub client_id: Option<String>,
    /// Where the embedded broker listens when `broker` is unset.
    pub embedded_listen: String,
    /// Rule kind → recipients; each recipient gets `<prefix>/alerts/<recipient>`.
    pub routes: BTreeMap<RuleKind, Vec<String>>,
    /// MQTT user name for `broker`.
    pub username: Option<String>,
    /// File whose first line is the MQTT password (relative to the config; keep it 0600).
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the MQTT password (instead of a file).
    pub password_env: Option<String>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            broker: None,
            topic_prefix: "vigil".into(),
            client_id: None,
            embedded_listen: "127.0.0.1:1883".into(),
            routes: BTreeMap::from([
                (RuleKind::Loitering, vec!["patrol".into()]),
                (
                    RuleKind::BatteryCart,
                    vec!["patrol".into(), "police".into()],
                ),
                (RuleKind::FireSmoke, vec!["patrol".into(), "police".into()]),
            ]),
            username: None,
            password_file: None,
            password_env: None,
        }
    }
}

impl AlertsConfig {
    pub fn events_topic(&self) -> String {
        format!("{}/events", self.topic_prefix)
    }

    pub fn recipient_topic(&self, recipient: &str) -> String {
        format!("{}/alerts/{recipient}", self.topic_prefix)
    }

    pub fn availability_topic(&self) -> String {
        format!("{}/available", self.topic_prefix)
    }

    /// User name and password for the broker, read now (never logged).
    pub fn credentials(&self, base: &Path) -> Result<Option<(String, String)>, MqttError> {
        let Some(user) = &self.username else {
            return Ok(None);
        };
        let password = if let Some(file) = &self.password_file {
            let path = base.join(file);
            let text = std::fs::read_to_string(&path)
                .map_err(|source| MqttError::PasswordFile { path, source })?;
            text.lines().next().unwrap_or("").to_string()
        } else if let Some(name) = &self.password_env {
            std::env::var(name).map_err(|_| MqttError::PasswordEnv { name: name.clone() })?
        } else {
            return Err(MqttError::NoPassword);
        };
        Ok(Some((user.clone(), password)))
    }
}

/// Where events go; owned by the output thread.
pub struct Outputs {
    pub mqtt: Option<MqttPublisher>,
    pub jsonl: Option<Box<dyn Write + Send>>,
    /// Log each alert's lifecycle as a readable line.
    pub log: bool,
}

impl Outputs {
    pub fn emit(&mut self, event: &Event) {
        let json = match serde_json::to_string(event) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!("cannot serialise event: {e}");
                return;
            }
        };
        if self.log {
            let a = event.alert();
            let verb = match event.lifecycle {
                Lifecycle::New => "ALERT",
                Lifecycle::Update => "update",
                Lifecycle::End => "ended",
            };
            tracing::info!(
                "{verb} [{}] camera={} {} (t={:.1}s, id={}, to: {})",
                a.kind.as_str(),
                a.camera,
                a.summary,
                a.start.media_s.as_secs_f64(),
                a.id,
                a.recipients.join(",")
            );
        }
        if let Some(out) = &mut self.jsonl
            && let Err(e) = writeln!(out, "{json}").and_then(|_| out.flush())
        {
            tracing::error!("cannot write events file: {e}");
        }
        if let Some(mqtt) = &self.mqtt {
            mqtt.publish(event, json.into_bytes());
        }
    }
}

/// Runs `outputs` on its own thread until every sender of the channel is gone.
pub fn spawn(
    mut outputs: Outputs,
) -> (
    crossbeam_channel::Sender<Event>,
    std::thread::JoinHandle<Outputs>,
) {
    let (tx, rx) = crossbeam_channel::unbounded::<Event>();
    let handle = std::thread::Builder::new()
        .name("publish".into())
        .spawn(move || {
            for event in rx {
                outputs.emit(&event);
            }
            outputs
        })
        .expect("spawning the publish thread");
    (tx, handle)
}
