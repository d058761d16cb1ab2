//! The MQTT client: QoS 1 publishes, a retained availability topic with an
//! `offline` last will, and reconnection handled by rumqttc's event loop, which
//! runs on its own thread.
//!
//! Each publish remembers when its frame was captured; the event loop pairs
//! rumqttc's outgoing packet ids with them in order and, on the broker's PUBACK,
//! records the alert latency (capture → acknowledged by the broker).

use super::AlertsConfig;
use crate::events::Event;
use crate::stats::Latency;
use rumqttc::{Client, Event as MqttEvent, LastWill, MqttOptions, Outgoing, Packet, QoS};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("alerts.broker {url:?}: {reason} (expected mqtt://host:port)")]
    BadUrl { url: String, reason: String },
    #[error("alerts.password_file {path}: cannot read the MQTT password")]
    PasswordFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("alerts.password_env: environment variable {name} is not set")]
    PasswordEnv { name: String },
    #[error(
        "alerts.username is set but no password: set alerts.password_file or alerts.password_env"
    )]
    NoPassword,
}

pub struct MqttPublisher {
    client: Client,
    config: AlertsConfig,
    acked: Arc<AtomicU64>,
    unacked: Arc<Mutex<Unacked>>,
    stopping: Arc<AtomicBool>,
    event_loop: Option<JoinHandle<()>>,
}

/// Publishes not yet acknowledged, with the capture time of their frame.
#[derive(Default)]
struct Unacked {
    /// Handed to rumqttc, no packet id yet (requests are sent in order).
    queued: VecDeque<Option<Instant>>,
    /// On the wire, by packet id.
    in_flight: HashMap<u16, Option<Instant>>,
    latency: Latency,
}

impl Unacked {
    fn lock(this: &Mutex<Unacked>) -> std::sync::MutexGuard<'_, Unacked> {
        this.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sent(&mut self, pkid: u16) {
        // A packet id already in flight is a retransmission after a reconnect.
        if pkid != 0
            && !self.in_flight.contains_key(&pkid)
            && let Some(captured) = self.queued.pop_front()
        {
            self.in_flight.insert(pkid, captured);
        }
        self.export_pending();
    }

    fn acked(&mut self, pkid: u16) {
        if let Some(Some(captured)) = self.in_flight.remove(&pkid) {
            let latency = captured.elapsed();
            self.latency.record(latency);
            metrics::histogram!("vigil_alert_latency_seconds").record(latency.as_secs_f64());
        }
        self.export_pending();
    }

    fn pending(&self) -> usize {
        self.queued.len() + self.in_flight.len()
    }

    fn export_pending(&self) {
        metrics::gauge!("vigil_publish_pending").set(self.pending() as f64);
    }
}

/// `mqtt://host:port` (or `host:port`) → host and port.
pub fn parse_broker(url: &str) -> Result<(String, u16), MqttError> {
    let bad = |reason: &str| MqttError::BadUrl {
        url: crate::redact::redact(url),
        reason: reason.into(),
    };
    let rest = match url.split_once("://") {
        Some(("mqtt" | "tcp", rest)) => rest,
        Some((scheme, _)) => return Err(bad(&format!("scheme {scheme} is not supported"))),
        None => url,
    };
    if rest
        .split('/')
        .next()
        .is_some_and(|authority| authority.contains('@'))
    {
        return Err(bad(
            "credentials do not belong in the URL (URLs are logged): set [alerts] username and password_file or password_env",
        ));
    }
    let (host, port) = rest.rsplit_once(':').unwrap_or((rest, "1883"));
    let port = port
        .trim_end_matches('/')
        .parse()
        .map_err(|_| bad("port is not a number"))?;
    if host.is_empty() {
        return Err(bad("host is empty"));
    }
    if port == 0 {
        return Err(bad("port 0 is not a broker's port"));
    }
    Ok((host.to_string(), port))
}

impl MqttPublisher {
    /// Connects in the background; publishes queue until the broker answers.
    pub fn connect(
        config: &AlertsConfig,
        host: &str,
        port: u16,
        credentials: Option<(String, String)>,
    ) -> Self {
        let client_id = config
            .client_id
            .clone()
            .unwrap_or_else(|| format!("vigil-{}", config.topic_prefix.replace('/', "-")));
        let mut options = MqttOptions::new(client_id, host, port);
        options.set_keep_alive(Duration::from_secs(10));
        if let Some((user, password)) = credentials {
            options.set_credentials(user, password);
        }
        options.set_max_packet_size(1 << 20, 1 << 20);
        options.set_last_will(LastWill::new(
            config.availability_topic(),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        let (client, mut connection) = Client::new(options, 1024);
        let acked = Arc::new(AtomicU64::new(0));
        let unacked = Arc::new(Mutex::new(Unacked::default()));
        let stopping = Arc::new(AtomicBool::new(false));
        let event_loop = {
            let (client, acked, stopping) = (client.clone(), acked.clone(), stopping.clone());
            let unacked = unacked.clone();
            let availability = config.availability_topic();
            let broker = format!("{host}:{port}");
            std::thread::Builder::new()
                .name("mqtt".into())
                .spawn(move || {
                    let mut was_down = false;
                    for notification in connection.iter() {
                        match notification {
                            Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                                if was_down {
                                    tracing::info!("MQTT broker {broker}: reconnected");
                                }
                                was_down = false;
                                Unacked::lock(&unacked).queued.push_back(None);
                                if client.try_publish(&availability, QoS::AtLeastOnce, true, "online").is_err() {
                                    Unacked::lock(&unacked).queued.pop_back();
                                }
                            }
                            Ok(MqttEvent::Outgoing(Outgoing::Publish(pkid))) => {
                                Unacked::lock(&unacked).sent(pkid);
                            }
                            Ok(MqttEvent::Incoming(Packet::PubAck(ack))) => {
                                Unacked::lock(&unacked).acked(ack.pkid);
                                acked.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(_) => {}
                            Err(e) => {
                                if stopping.load(Ordering::SeqCst) {
                                    break;
                                }
                                if !was_down {
                                    tracing::warn!("MQTT broker {broker}: {e}; retrying every second, alerts are queued");
                                }
                                was_down = true;
                                std::thread::sleep(Duration::from_secs(1));
                            }
                        }
                    }
                })
                .expect("spawning the MQTT thread")
        };
        MqttPublisher {
            client,
            config: config.clone(),
            acked,
            unacked,
            stopping,
            event_loop: Some(event_loop),
        }
    }

    pub fn publish(&self, event: &Event, payload: Vec<u8>) {
        let alert = event.alert();
        let mut topics = vec![self.config.events_topic()];
        topics.extend(
            alert
                .recipients
                .iter()
                .map(|r| self.config.recipient_topic(r)),
        );
        for topic in topics {
            // Queued before the request so the event loop always finds it.
            Unacked::lock(&self.unacked)
                .queued
                .push_back(event.captured);
            if let Err(e) = self
                .client
                .publish(&topic, QoS::AtLeastOnce, false, payload.clone())
            {
                Unacked::lock(&self.unacked).queued.pop_back();
                tracing::error!("MQTT publish to {topic} failed: {e}");
            }
        }
    }

    /// Capture-to-PUBACK latency of every acknowledged alert message so far.
    pub fn alert_latency(&self) -> Latency {
        Unacked::lock(&self.unacked).latency.clone()
    }

    /// Publishes handed over but not yet acknowledged by the broker.
    pub fn pending(&self) -> usize {
        Unacked::lock(&self.unacked).pending()
    }

    /// Waits up to `timeout` for every publish to be acknowledged.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.pending() > 0 {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Broker acknowledgements received so far (availability included).
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }

    /// Waits up to `timeout` for `count` acknowledgements; true if they arrived.
    pub fn wait_acked(&self, count: u64, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while self.acked() < count {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }
}

impl Drop for MqttPublisher {
    fn drop(&mut self) {
        Unacked::lock(&self.unacked).queued.push_back(None);
        if self
            .client
            .try_publish(
                self.config.availability_topic(),
                QoS::AtLeastOnce,
                true,
                "offline",
            )
            .is_err()
        {
            Unacked::lock(&self.unacked).queued.pop_back();
        }
        // Give queued alerts a moment to be acknowledged before disconnecting.
        if !self.flush(Duration::from_secs(2)) {
            tracing::warn!(
                "MQTT: {} alert messages not acknowledged by the broker at shutdown",
                self.pending()
            );
        }
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.client.disconnect();
        if let Some(h) = self.event_loop.take() {
            let _ = h.join();
        }
    }
}
