//! Publish: events leave vigil here, to MQTT, a JSON-lines file and the log.
//!
//! Cameras (through the evidence stage) send their events down one bounded
//! channel to a single output thread, which writes the log and the JSON-lines
//! file at once, whatever the broker is doing. MQTT goes through the outbox in
//! the store (see `store/outbox.rs`): each event's messages are queued in the
//! transaction that records the event, and the [`MqttPublisher`] drains them at
//! QoS 1 to the all-events topic and to each recipient its rule kind is routed
//! to (README "Alerts over MQTT"). Camera status changes are queued the same
//! way, retained on `<prefix>/cameras/<id>/status`. Without a configured broker
//! `vigil run` starts an embedded one ([`broker`]) so the demo works out of the box.

pub mod broker;
pub mod homeassistant;
mod mqtt;

pub use mqtt::{
    BrokerAddress, BrokerLink, Connect, Delivery, MqttError, MqttPublisher, TlsFiles, parse_broker,
};

use crate::events::{CameraStatus, Event, Lifecycle, RuleKind};
use crate::store::{Outbox, OutboxMessage, Priority};
use crossbeam_channel::{Receiver, Sender, select};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `[alerts]` in the config.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// `mqtt://host:port` of the broker. Unset: `vigil run` starts an embedded
    /// broker on `embedded_listen`.
    pub broker: Option<String>,
    pub topic_prefix: String,
    /// MQTT client id; defaults to `vigil-<topic_prefix>-<node_id>`.
    pub client_id: Option<String>,
    /// This vigil's name among several on one broker (default: the host name):
    /// part of the client id and the availability topic, so two nodes never
    /// take each other's session.
    pub node_id: Option<String>,
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
    /// `mqtts://`: PEM file of the CA that signed the broker's certificate.
    pub ca_file: Option<PathBuf>,
    /// `mqtts://` with client certificates: PEM certificate and key.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Home Assistant MQTT discovery (`[alerts.homeassistant]`); off when absent.
    pub homeassistant: Option<homeassistant::HomeAssistantConfig>,
    /// Messages kept for a broker that is down; over this, the oldest
    /// low-severity ones are dropped (fire and smoke never).
    pub outbox_max: usize,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            broker: None,
            topic_prefix: "vigil".into(),
            client_id: None,
            node_id: None,
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
            outbox_max: 100_000,
            homeassistant: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
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

    pub fn camera_status_topic(&self, camera: &str) -> String {
        format!("{}/cameras/{camera}/status", self.topic_prefix)
    }

    pub fn client_id(&self) -> String {
        self.client_id.clone().unwrap_or_else(|| {
            format!(
                "vigil-{}-{}",
                self.topic_prefix.replace('/', "-"),
                self.node()
            )
        })
    }

    /// `node_id`, or the host name made topic-safe.
    pub fn node(&self) -> String {
        self.node_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .or_else(|| std::env::var("HOSTNAME").ok())
                .unwrap_or_default();
            let safe: String = host
                .trim()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .take(64)
                .collect();
            if safe.is_empty() {
                "vigil".into()
            } else {
                safe
            }
        })
    }

    /// The MQTT messages that announce `event`: the all-events topic and each
    /// recipient's.
    pub fn event_messages(&self, event: &Event, payload: &str) -> Vec<OutboxMessage> {
        let alert = event.alert();
        let captured_us = event
            .captured
            .map(|c| mqtt::now_us() - c.elapsed().as_micros() as i64);
        let mut messages =
            self.alert_messages(&alert.recipients, alert.severity, payload, captured_us);
        if self.homeassistant.is_some() {
            messages.push(homeassistant::camera_event_message(self, event, payload));
        }
        messages
    }

    /// `payload` on the all-events topic and each recipient's.
    pub fn alert_messages(
        &self,
        recipients: &[String],
        severity: crate::events::Severity,
        payload: &str,
        captured_us: Option<i64>,
    ) -> Vec<OutboxMessage> {
        std::iter::once(self.events_topic())
            .chain(recipients.iter().map(|r| self.recipient_topic(r)))
            .map(|topic| OutboxMessage {
                topic,
                payload: payload.as_bytes().to_vec(),
                retain: false,
                priority: Priority::from(severity),
                captured_us,
            })
            .collect()
    }

    /// A camera's state, retained so a subscriber that connects later sees it.
    pub fn status_message(&self, status: &CameraStatus) -> Option<OutboxMessage> {
        let mut status = status.clone();
        status.node = self.node_id.clone();
        let payload = serde_json::to_vec(&status).ok()?;
        Some(OutboxMessage {
            topic: self.camera_status_topic(&status.camera),
            payload,
            retain: true,
            priority: Priority::Status,
            captured_us: None,
        })
    }

    /// Retained `online`/`offline` of this node.
    pub fn availability_topic(&self) -> String {
        format!("{}/nodes/{}/available", self.topic_prefix, self.node())
    }

    /// The CA and client certificate for `mqtts://`, read now (relative to `base`).
    pub fn tls_files(&self, base: &Path) -> Result<TlsFiles, MqttError> {
        let read = |field: &'static str, file: &Path| {
            let path = base.join(file);
            std::fs::read(&path).map_err(|source| MqttError::TlsFile {
                field,
                path,
                source,
            })
        };
        let ca = read("ca_file", self.ca_file.as_deref().ok_or(MqttError::NoCa)?)?;
        let client = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Some((read("client_cert", cert)?, read("client_key", key)?)),
            (None, None) => None,
            _ => return Err(MqttError::HalfClientCert),
        };
        Ok(TlsFiles { ca, client })
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

/// Events waiting for the output thread; past this the evidence stage waits.
const QUEUE: usize = 1024;

/// Where the output thread queues MQTT messages.
pub struct Queueing {
    pub config: AlertsConfig,
    /// A connection of its own to the outbox.
    pub outbox: Outbox,
    /// Wakes the publisher.
    pub notify: Sender<()>,
    /// Events arrive already queued (the store did it in the event's transaction).
    pub events_queued: bool,
    /// Home Assistant sensors' open alerts, when discovery is on.
    pub open_alerts: homeassistant::OpenAlerts,
}

impl Queueing {
    pub fn queue(&mut self, messages: &[OutboxMessage]) {
        queue_counted(&mut self.outbox, messages, self.config.outbox_max);
        let _ = self.notify.try_send(());
    }
}

/// The message on `<prefix>/alerts/acks`: so the patrol app and other
/// consoles agree on who took which alert.
pub fn ack_message(
    alerts: &crate::publish::AlertsConfig,
    id: &str,
    camera: &str,
    severity: &str,
    ack: &crate::store::Ack,
) -> OutboxMessage {
    let payload = serde_json::json!({
        "alert_id": id,
        "camera": camera,
        "action": ack.action,
        "who": ack.who,
        "note": ack.note,
        "at_ms": ack.at_ms,
        "outcome": ack.outcome,
    });
    OutboxMessage {
        topic: format!("{}/alerts/acks", alerts.topic_prefix),
        payload: payload.to_string().into_bytes(),
        retain: false,
        priority: priority_of(severity),
        captured_us: None,
    }
}

/// A stored severity's outbox priority: fire never gives way.
pub fn priority_of(severity: &str) -> Priority {
    match severity {
        "critical" => Priority::Critical,
        "high" => Priority::High,
        _ => Priority::Warning,
    }
}

/// Queues on `outbox`, logging and counting what the cap dropped.
pub fn queue_counted(outbox: &mut Outbox, messages: &[OutboxMessage], cap: usize) {
    match outbox.enqueue(messages, cap) {
        Ok(0) => {}
        Ok(dropped) => outbox_dropped(dropped, cap),
        Err(e) => tracing::error!(
            "{e}: {}: {} MQTT message(s) not queued",
            crate::errors::source_chain(&e),
            messages.len()
        ),
    }
}

/// The outbox was full: say so, loudly and countably.
pub fn outbox_dropped(dropped: usize, cap: usize) {
    tracing::error!(
        "MQTT outbox full ({cap} messages, alerts.outbox_max): dropped the {dropped} oldest low-severity message(s); fire and smoke are kept"
    );
    metrics::counter!("vigil_outbox_dropped_total").increment(dropped as u64);
}

/// Where events go; owned by the output thread.
pub struct Outputs {
    pub jsonl: Option<Box<dyn Write + Send>>,
    /// Log each alert's lifecycle as a readable line.
    pub log: bool,
    /// MQTT; `None` when this run does not publish.
    pub mqtt: Option<Queueing>,
    /// A compound node mirrors its open alerts in PostgreSQL.
    pub compound: Option<Sender<AlertChange>>,
}

/// An alert's latest event, for a mirror of the open alerts (`ended`: its `end`).
#[derive(Debug, Clone)]
pub struct AlertChange {
    pub alert_id: String,
    pub camera: String,
    pub ended: bool,
    pub payload: String,
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
            let why = event
                .reason
                .map(|r| format!(", {}", r.as_str()))
                .unwrap_or_default();
            tracing::info!(
                "{verb} [{}] camera={} {} (t={:.1}s, id={}, to: {}{why})",
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
        if let Some(q) = &mut self.mqtt {
            if !q.events_queued {
                let messages = q.config.event_messages(event, &json);
                q.queue(&messages);
            }
            if q.config.homeassistant.is_some()
                && let Some(state) = q.open_alerts.on_event(&q.config, event)
            {
                q.queue(&[state]);
            }
        }
        if let Some(compound) = &self.compound {
            let change = AlertChange {
                alert_id: event.after.id.clone(),
                camera: event.after.camera.to_string(),
                ended: event.lifecycle == Lifecycle::End,
                payload: json,
            };
            // Full means the database has been away for over a thousand
            // changes: the mirror falls behind, the alerts themselves do not.
            if compound.try_send(change).is_err() {
                metrics::counter!("vigil_compound_changes_dropped_total").increment(1);
            }
        }
    }

    /// Queues a camera's new state (the supervisor has logged it).
    pub fn status(&mut self, status: &CameraStatus) {
        if let Some(q) = &mut self.mqtt
            && let Some(m) = q.config.status_message(status)
        {
            q.queue(&[m]);
        }
    }
}

/// The output thread's inputs.
pub struct PublishChannels {
    pub events: Sender<Event>,
    pub statuses: Sender<CameraStatus>,
}

/// Runs `outputs` on its own thread until every sender of both channels is gone.
pub fn spawn(mut outputs: Outputs) -> (PublishChannels, std::thread::JoinHandle<Outputs>) {
    let (events, events_rx) = crossbeam_channel::bounded::<Event>(QUEUE);
    let (statuses, statuses_rx) = crossbeam_channel::bounded::<CameraStatus>(QUEUE);
    let handle = std::thread::Builder::new()
        .name("publish".into())
        .spawn(move || {
            run_outputs(&mut outputs, events_rx, statuses_rx);
            outputs
        })
        .expect("spawning the publish thread");
    (PublishChannels { events, statuses }, handle)
}

fn run_outputs(outputs: &mut Outputs, events: Receiver<Event>, statuses: Receiver<CameraStatus>) {
    let (mut events_open, mut statuses_open) = (true, true);
    while events_open || statuses_open {
        let (no_events, no_statuses) = (crossbeam_channel::never(), crossbeam_channel::never());
        select! {
            recv(if events_open { &events } else { &no_events }) -> e => match e {
                Ok(event) => {
                    metrics::gauge!("vigil_publish_queue").set(events.len() as f64);
                    outputs.emit(&event);
                }
                Err(_) => events_open = false,
            },
            recv(if statuses_open { &statuses } else { &no_statuses }) -> s => match s {
                Ok(status) => outputs.status(&status),
                Err(_) => statuses_open = false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_nodes_never_share_a_client_id_or_availability_topic() {
        let node = |id: &str| AlertsConfig {
            node_id: Some(id.into()),
            ..AlertsConfig::default()
        };
        let (a, b) = (node("gate-a"), node("gate-b"));
        assert_ne!(a.client_id(), b.client_id());
        assert_eq!(a.availability_topic(), "vigil/nodes/gate-a/available");
        assert_eq!(a.client_id(), "vigil-vigil-gate-a");
        let host = AlertsConfig::default().node();
        assert!(!host.is_empty() && !host.contains(['/', '+', '#']));
    }
}
