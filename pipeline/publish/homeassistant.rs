//! Home Assistant MQTT discovery: vigil's cameras appear in Home Assistant with
//! no custom integration.
//!
//! At start vigil queues (retained, through the outbox) one discovery config per
//! entity under `<discovery_prefix>/…/config`:
//!
//! - per camera and rule kind it runs, a `binary_sensor` that is `ON` while an
//!   alert of that kind is open on that camera (`device_class` `smoke` for fire
//!   and smoke, `occupancy` for loitering and battery carts), state on
//!   `<prefix>/cameras/<id>/<kind>`;
//! - per camera, a `connectivity` `binary_sensor` read from the camera's status
//!   topic;
//! - per camera, an `event` entity fired by every alert event of that camera
//!   (`<prefix>/cameras/<id>/events`, event types like `loitering_new`).
//!
//! All of them follow vigil's availability topic, and each camera is one device.

use super::AlertsConfig;
use crate::events::{Event, Lifecycle, RuleKind};
use crate::store::{OutboxMessage, Priority};
use serde::Deserialize;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// `[alerts.homeassistant]` in the config.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HomeAssistantConfig {
    /// Home Assistant's discovery prefix (its MQTT integration's setting).
    pub discovery_prefix: String,
}

impl Default for HomeAssistantConfig {
    fn default() -> Self {
        HomeAssistantConfig {
            discovery_prefix: "homeassistant".into(),
        }
    }
}

/// What discovery needs to know of one camera.
#[derive(Debug, Clone)]
pub struct CameraEntities {
    pub id: String,
    pub name: String,
    pub kinds: BTreeSet<RuleKind>,
}

const LIFECYCLES: [&str; 3] = ["new", "update", "end"];

/// Where an alert kind's ON/OFF state of one camera goes.
pub fn state_topic(alerts: &AlertsConfig, camera: &str, kind: RuleKind) -> String {
    format!("{}/cameras/{camera}/{}", alerts.topic_prefix, kind.as_str())
}

/// Every alert event of one camera, for its `event` entity.
pub fn camera_events_topic(alerts: &AlertsConfig, camera: &str) -> String {
    format!("{}/cameras/{camera}/events", alerts.topic_prefix)
}

fn retained(topic: String, payload: serde_json::Value) -> OutboxMessage {
    OutboxMessage {
        topic,
        payload: payload.to_string().into_bytes(),
        retain: true,
        priority: Priority::Status,
        captured_us: None,
    }
}

/// The retained discovery configs for every camera.
pub fn discovery(
    ha: &HomeAssistantConfig,
    alerts: &AlertsConfig,
    cameras: &[CameraEntities],
) -> Vec<OutboxMessage> {
    let node = alerts.node();
    let mut out = Vec::new();
    for cam in cameras {
        let object = |what: &str| format!("vigil_{node}_{}_{what}", cam.id);
        let device = json!({
            "identifiers": [format!("vigil_{node}_{}", cam.id)],
            "name": cam.name,
            "manufacturer": "vigil",
            "model": "camera",
        });
        let common = |what: &str, name: &str| {
            json!({
                "unique_id": object(what),
                "object_id": object(what),
                "name": name,
                "device": device.clone(),
                "availability_topic": alerts.availability_topic(),
                "payload_available": "online",
                "payload_not_available": "offline",
            })
        };
        for kind in &cam.kinds {
            let mut config = common(kind.as_str(), &kind_name(*kind));
            config["state_topic"] = json!(state_topic(alerts, &cam.id, *kind));
            config["device_class"] = json!(match kind {
                RuleKind::FireSmoke => "smoke",
                RuleKind::Loitering | RuleKind::BatteryCart => "occupancy",
            });
            out.push(retained(
                format!(
                    "{}/binary_sensor/{}/config",
                    ha.discovery_prefix,
                    object(kind.as_str())
                ),
                config,
            ));
            // A run starts with no open alert: OFF, not "unknown".
            out.push(OutboxMessage {
                topic: state_topic(alerts, &cam.id, *kind),
                payload: b"OFF".to_vec(),
                retain: true,
                priority: Priority::Status,
                captured_us: None,
            });
        }
        let mut connectivity = common("connectivity", "Camera connected");
        connectivity["state_topic"] = json!(alerts.camera_status_topic(&cam.id));
        connectivity["value_template"] = json!("{{ 'ON' if value_json.state == 'up' else 'OFF' }}");
        connectivity["device_class"] = json!("connectivity");
        out.push(retained(
            format!(
                "{}/binary_sensor/{}/config",
                ha.discovery_prefix,
                object("connectivity")
            ),
            connectivity,
        ));
        let mut events = common("alerts", "Alerts");
        events["state_topic"] = json!(camera_events_topic(alerts, &cam.id));
        events["event_types"] = json!(
            cam.kinds
                .iter()
                .flat_map(|k| LIFECYCLES.map(|l| format!("{}_{l}", k.as_str())))
                .collect::<Vec<_>>()
        );
        events["value_template"] = json!(
            "{{ {'event_type': value_json.after.kind ~ '_' ~ value_json.type, 'alert': value_json.after.id, 'summary': value_json.after.summary} | to_json }}"
        );
        out.push(retained(
            format!("{}/event/{}/config", ha.discovery_prefix, object("alerts")),
            events,
        ));
    }
    out
}

fn kind_name(kind: RuleKind) -> String {
    match kind {
        RuleKind::Loitering => "Loitering",
        RuleKind::BatteryCart => "Battery cart",
        RuleKind::FireSmoke => "Fire or smoke",
    }
    .into()
}

/// Open alerts per camera and kind: a `binary_sensor` turns ON with the first
/// and OFF with the last.
#[derive(Debug, Default)]
pub struct OpenAlerts {
    open: BTreeMap<(String, RuleKind), BTreeSet<String>>,
}

impl OpenAlerts {
    /// The state message this event causes, if the sensor changes.
    pub fn on_event(&mut self, alerts: &AlertsConfig, event: &Event) -> Option<OutboxMessage> {
        let a = event.alert();
        let key = (a.camera.to_string(), a.kind);
        let ids = self.open.entry(key).or_default();
        let was_on = !ids.is_empty();
        match event.lifecycle {
            Lifecycle::New | Lifecycle::Update => {
                ids.insert(a.id.clone());
            }
            Lifecycle::End => {
                ids.remove(&a.id);
            }
        }
        let is_on = !ids.is_empty();
        (was_on != is_on).then(|| OutboxMessage {
            topic: state_topic(alerts, &a.camera, a.kind),
            payload: if is_on {
                b"ON".to_vec()
            } else {
                b"OFF".to_vec()
            },
            retain: true,
            priority: Priority::from(a.severity),
            captured_us: None,
        })
    }
}

/// The event entity's copy of an event.
pub fn camera_event_message(alerts: &AlertsConfig, event: &Event, payload: &str) -> OutboxMessage {
    OutboxMessage {
        topic: camera_events_topic(alerts, &event.alert().camera),
        payload: payload.as_bytes().to_vec(),
        retain: false,
        priority: Priority::from(event.alert().severity),
        captured_us: None,
    }
}
