//! The MQTT publisher: drains the [`Outbox`] to the broker at QoS 1.
//!
//! One thread owns a fresh rumqttc connection per attempt. After the broker's
//! CONNACK it publishes the retained `online` availability, then the outbox in
//! order, keeping at most [`WINDOW`] messages in flight; each PUBACK deletes its
//! row. When the connection fails, whatever was in flight is still in the
//! outbox and is sent again, oldest first, on the next connection (same
//! payload, same `event_id`), after a capped exponential backoff. rumqttc's own
//! resend queue is deliberately not used: the outbox is the one source of truth,
//! so a restart and a reconnect take the same path.
//!
//! Each message remembers when its frame was captured; on its PUBACK the alert
//! latency (capture → acknowledged by the broker) is recorded.

use super::AlertsConfig;
use crate::shutdown::Backoff;
use crate::stats::Latency;
use crate::store::outbox::Queued;
use crate::store::{Outbox, OutboxError};
use crossbeam_channel::{Receiver, Sender, select};
use rumqttc::{Client, Event as MqttEvent, LastWill, MqttOptions, Outgoing, Packet, QoS};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Messages on the wire without a PUBACK yet; rumqttc allows 100.
const WINDOW: usize = 64;
/// A connection attempt that hears nothing back gives up after this.
const CONNECT_TIMEOUT_S: u64 = 3;
/// How often the outbox is checked when no notification came (a safety net).
const IDLE_CHECK: Duration = Duration::from_millis(250);
/// How long closing a connection waits for its I/O thread.
const CLOSE_WAIT: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("alerts.broker {url:?}: {reason} (expected mqtt://host:port or mqtts://host:port)")]
    BadUrl { url: String, reason: String },
    #[error("alerts.{field} {path}: cannot read")]
    TlsFile {
        field: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "alerts.ca_file: mqtts:// needs the CA that signed the broker's certificate (Debian's bundle: /etc/ssl/certs/ca-certificates.crt)"
    )]
    NoCa,
    #[error("alerts.client_cert and alerts.client_key go together")]
    HalfClientCert,
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
    #[error("MQTT outbox")]
    Outbox(#[source] OutboxError),
}

/// `mqtt://host:port`, `mqtts://host:port` (TLS) or `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// Parses `[alerts] broker`; the port defaults to 1883 (8883 for `mqtts://`).
pub fn parse_broker(url: &str) -> Result<BrokerAddress, MqttError> {
    let bad = |reason: &str| MqttError::BadUrl {
        url: crate::redact::redact(url),
        reason: reason.into(),
    };
    let (rest, tls) = match url.split_once("://") {
        Some(("mqtt" | "tcp", rest)) => (rest, false),
        Some(("mqtts" | "ssl", rest)) => (rest, true),
        Some((scheme, _)) => return Err(bad(&format!("scheme {scheme} is not supported"))),
        None => (url, false),
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
    let default_port = if tls { "8883" } else { "1883" };
    let (host, port) = rest.rsplit_once(':').unwrap_or((rest, default_port));
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
    Ok(BrokerAddress {
        host: host.to_string(),
        port,
        tls,
    })
}

/// PEM files for `mqtts://`, read at start.
#[derive(Clone)]
pub struct TlsFiles {
    pub ca: Vec<u8>,
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the client key.
        f.write_str("TlsFiles { .. }")
    }
}

/// Where and how to connect.
#[derive(Clone)]
pub struct Connect {
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, String)>,
    /// `mqtts://`: the CA and optional client certificate.
    pub tls: Option<TlsFiles>,
}

/// What the publisher delivered, for the run's report.
#[derive(Debug, Default, Clone)]
pub struct Delivery {
    /// Capture-to-PUBACK latency of every acknowledged message with a frame.
    pub latency: Latency,
    /// Messages acknowledged by the broker (availability included).
    pub acked: u64,
    /// Messages still in the outbox when the publisher stopped: sent at the next start.
    pub left: usize,
}

/// This node's session with the broker, as its publisher sees it.
#[derive(Default)]
pub struct BrokerLink {
    connected: AtomicBool,
    /// When the broker last sent anything, ms after `START`.
    heard_ms: std::sync::atomic::AtomicU64,
}

static START: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

impl BrokerLink {
    /// Within this of the broker's last word, the broker still holds the
    /// session: it publishes the will only after 1.5 keep-alives (7.5 s) of
    /// silence, and a keep-alive ping is answered every 5 s.
    const FRESH: Duration = Duration::from_secs(6);

    fn heard(&self) {
        self.heard_ms
            .store(START.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// True while the broker surely has the session (its will unpublished).
    pub fn online(&self) -> bool {
        let since = START
            .elapsed()
            .saturating_sub(Duration::from_millis(self.heard_ms.load(Ordering::Relaxed)));
        self.connected.load(Ordering::Relaxed) && since < Self::FRESH
    }
}

/// The publisher thread. Queue messages in the outbox, then [`notify`](Self::notify).
pub struct MqttPublisher {
    notify: Sender<()>,
    finish: Sender<Duration>,
    delivery: Arc<Mutex<Delivery>>,
    thread: Option<JoinHandle<()>>,
    link: Arc<BrokerLink>,
}

impl MqttPublisher {
    /// Starts draining `outbox` to the broker; connects in the background.
    pub fn start(config: &AlertsConfig, connect: Connect, outbox: Outbox) -> Self {
        let (notify, notify_rx) = crossbeam_channel::bounded(1);
        let (finish, finish_rx) = crossbeam_channel::bounded(1);
        let delivery = Arc::new(Mutex::new(Delivery::default()));
        let link = Arc::new(BrokerLink::default());
        match outbox.len() {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!("MQTT outbox: {n} message(s) left by an earlier run go out first")
            }
            Err(e) => tracing::error!("{e}: {}", crate::errors::source_chain(&e)),
        }
        let drainer = Drainer {
            client_id: config.client_id(),
            availability: config.availability_topic(),
            connect,
            outbox,
            notify: notify_rx,
            finish: finish_rx,
            delivery: delivery.clone(),
            deadline: None,
            exported_at: None,
            down_since: None,
            broker: String::new(),
            link: link.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("mqtt".into())
            .spawn(move || drainer.run())
            .expect("spawning the MQTT thread");
        MqttPublisher {
            notify,
            finish,
            delivery,
            thread: Some(thread),
            link,
        }
    }

    /// Whether the broker still holds this node's session.
    pub fn link(&self) -> Arc<BrokerLink> {
        self.link.clone()
    }

    /// New rows are in the outbox.
    pub fn notify(&self) -> Sender<()> {
        self.notify.clone()
    }

    /// Sends what the broker takes within `flush`, publishes `offline`, and
    /// stops; what is left stays in the outbox.
    pub fn finish(mut self, flush: Duration) -> Delivery {
        let _ = self.finish.send(flush);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        lock(&self.delivery).clone()
    }
}

impl Drop for MqttPublisher {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.finish.send(Duration::ZERO);
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a packet id on the wire stands for.
#[derive(Debug, Clone, Copy)]
enum Sent {
    Row { seq: i64, captured_us: Option<i64> },
    Availability,
}

/// One connection's bookkeeping; dropped with the connection.
struct Session {
    client: Client,
    events: Receiver<Result<MqttEvent, rumqttc::ConnectionError>>,
    io: JoinHandle<()>,
    connected: bool,
    /// Handed to rumqttc, no packet id yet: rumqttc numbers requests in order.
    queued: VecDeque<Sent>,
    in_flight: HashMap<u16, Sent>,
    /// Highest outbox seq handed to this connection.
    cursor: i64,
}

impl Session {
    fn outstanding(&self) -> usize {
        self.queued.len() + self.in_flight.len()
    }

    /// Ends the connection. The I/O thread is waited for briefly: one stuck
    /// waiting for a CONNACK that never comes would hold a stop for the whole
    /// connect timeout (3.2 s measured), so it is left to end on its own.
    fn close(self) {
        let _ = self.client.disconnect();
        drop(self.client);
        let deadline = Instant::now() + CLOSE_WAIT;
        while !self.io.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if self.io.is_finished() {
            let _ = self.io.join();
        }
    }
}

struct Drainer {
    client_id: String,
    availability: String,
    connect: Connect,
    outbox: Outbox,
    notify: Receiver<()>,
    finish: Receiver<Duration>,
    delivery: Arc<Mutex<Delivery>>,
    /// Set by `finish`: stop trying after this.
    deadline: Option<Instant>,
    exported_at: Option<Instant>,
    /// Since when the broker has been unreachable; its CONNACK says "back".
    down_since: Option<Instant>,
    broker: String,
    link: Arc<BrokerLink>,
}

impl Drainer {
    fn options(&self) -> MqttOptions {
        let mut options = MqttOptions::new(&self.client_id, &self.connect.host, self.connect.port);
        // 5 s: a powered-off node's will goes out after 7.5 s, so a compound's
        // other nodes can take its cameras within 15 s.
        options.set_keep_alive(Duration::from_secs(5));
        if let Some((user, password)) = &self.connect.credentials {
            options.set_credentials(user, password);
        }
        options.set_max_packet_size(1 << 20, 1 << 20);
        if let Some(tls) = &self.connect.tls {
            // rustls needs one process-wide crypto provider; a second install is a no-op.
            let _ = rustls::crypto::ring::default_provider().install_default();
            options.set_transport(rumqttc::Transport::tls(
                tls.ca.clone(),
                tls.client.clone(),
                None,
            ));
        }
        options.set_last_will(LastWill::new(
            &self.availability,
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        options
    }

    fn session(&self) -> Session {
        let (client, mut connection) = Client::new(self.options(), 2 * WINDOW);
        connection
            .eventloop
            .network_options
            .set_connection_timeout(CONNECT_TIMEOUT_S);
        let (tx, events) = crossbeam_channel::bounded(4 * WINDOW);
        let io = std::thread::Builder::new()
            .name("mqtt-io".into())
            .spawn(move || {
                for n in connection.iter() {
                    let failed = n.is_err();
                    if tx.send(n).is_err() || failed {
                        // A failed connection is not retried here: the drainer
                        // opens a fresh one after its backoff.
                        break;
                    }
                }
            })
            .expect("spawning the MQTT I/O thread");
        Session {
            client,
            events,
            io,
            connected: false,
            queued: VecDeque::new(),
            in_flight: HashMap::new(),
            cursor: 0,
        }
    }

    fn finishing(&self) -> bool {
        self.deadline.is_some()
    }

    fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn on_finish(&mut self, flush: Duration) {
        self.deadline.get_or_insert(Instant::now() + flush);
    }

    fn pending(&self) -> usize {
        self.outbox.len().unwrap_or(0)
    }

    /// `vigil_publish_pending`, at most 4 times a second: counting a large
    /// outbox per PUBACK would slow the drain of a backlog.
    fn export_pending(&mut self) {
        if self
            .exported_at
            .is_some_and(|t| t.elapsed() < Duration::from_millis(250))
        {
            return;
        }
        self.exported_at = Some(Instant::now());
        metrics::gauge!("vigil_publish_pending").set(self.pending() as f64);
    }

    fn run(mut self) {
        let scheme = if self.connect.tls.is_some() {
            "mqtts"
        } else {
            "mqtt"
        };
        let broker = format!("{scheme}://{}:{}", self.connect.host, self.connect.port);
        self.broker = broker.clone();
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        self.export_pending();
        loop {
            if self.past_deadline() {
                break;
            }
            let mut session = self.session();
            let outcome = self.serve(&mut session);
            self.link.connected.store(false, Ordering::Relaxed);
            let connected = session.connected;
            match outcome {
                Served::Finished => {
                    self.say_offline(&mut session);
                    session.close();
                    break;
                }
                Served::Lost(reason) => {
                    session.close();
                    if connected {
                        backoff.reset();
                    }
                    if self.down_since.is_none() {
                        self.down_since = Some(Instant::now());
                        tracing::warn!(
                            "MQTT broker {broker}: {reason}; alerts are kept in the outbox and sent when it is back"
                        );
                    }
                }
            }
            // While the broker is away the outbox grows: say so between retries
            // too, not only on PUBACKs.
            self.export_pending();
            let delay = backoff.next_delay();
            let wait_until = Instant::now() + delay;
            let until = self.deadline.map_or(wait_until, |d| d.min(wait_until));
            if let Ok(flush) = self
                .finish
                .recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                self.on_finish(flush);
            }
        }
        let left = self.pending();
        metrics::gauge!("vigil_publish_pending").set(left as f64);
        lock(&self.delivery).left = left;
        if left > 0 {
            tracing::warn!(
                "MQTT broker {broker}: {left} message(s) not acknowledged; kept in the outbox ({}) and sent at the next start",
                self.outbox.path().display()
            );
        }
    }

    /// Runs one connection until it fails or the publisher is finished.
    fn serve(&mut self, s: &mut Session) -> Served {
        loop {
            if self.finishing()
                && (self.past_deadline()
                    || (s.connected && s.outstanding() == 0 && self.pending() == 0))
            {
                return Served::Finished;
            }
            select! {
                recv(s.events) -> n => match n {
                    Ok(Ok(event)) => self.on_packet(s, event),
                    Ok(Err(e)) => return Served::Lost(e.to_string()),
                    Err(_) => return Served::Lost("connection closed".into()),
                },
                recv(self.notify) -> _ => {}
                recv(self.finish) -> f => if let Ok(flush) = f { self.on_finish(flush) },
                default(IDLE_CHECK) => {}
            }
            if s.connected {
                self.top_up(s);
            }
        }
    }

    fn on_packet(&mut self, s: &mut Session, event: MqttEvent) {
        if matches!(event, MqttEvent::Incoming(_)) {
            self.link.heard();
        }
        match event {
            MqttEvent::Incoming(Packet::ConnAck(_)) => {
                s.connected = true;
                self.link.connected.store(true, Ordering::Relaxed);
                // Said when it happens, not at the next disconnection.
                if let Some(since) = self.down_since.take() {
                    tracing::info!(
                        "MQTT broker {}: reconnected after {:.1} s",
                        self.broker,
                        since.elapsed().as_secs_f64()
                    );
                }
                s.queued.push_back(Sent::Availability);
                if s.client
                    .try_publish(&self.availability, QoS::AtLeastOnce, true, "online")
                    .is_err()
                {
                    s.queued.pop_back();
                }
            }
            MqttEvent::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(sent) = s.queued.pop_front() {
                    s.in_flight.insert(pkid, sent);
                }
            }
            MqttEvent::Incoming(Packet::PubAck(ack)) => {
                let Some(sent) = s.in_flight.remove(&ack.pkid) else {
                    return;
                };
                let mut delivery = lock(&self.delivery);
                delivery.acked += 1;
                if let Sent::Row { seq, captured_us } = sent {
                    if let Err(e) = self.outbox.remove(seq) {
                        tracing::error!("{e}: {}", crate::errors::source_chain(&e));
                    }
                    if let Some(captured) = captured_us {
                        let latency = Duration::from_micros((now_us() - captured).max(0) as u64);
                        delivery.latency.record(latency);
                        metrics::histogram!("vigil_alert_latency_seconds")
                            .record(latency.as_secs_f64());
                    }
                }
                drop(delivery);
                self.export_pending();
            }
            _ => {}
        }
    }

    /// Hands the connection the next outbox rows, up to the window.
    fn top_up(&mut self, s: &mut Session) {
        while s.outstanding() < WINDOW {
            let rows = match self.outbox.after(s.cursor, WINDOW - s.outstanding()) {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!("{e}: {}", crate::errors::source_chain(&e));
                    return;
                }
            };
            if rows.is_empty() {
                return;
            }
            for Queued {
                seq,
                topic,
                payload,
                retain,
                captured_us,
            } in rows
            {
                s.queued.push_back(Sent::Row { seq, captured_us });
                if s.client
                    .try_publish(&topic, QoS::AtLeastOnce, retain, payload)
                    .is_err()
                {
                    // rumqttc's request queue is full: try again on the next wake.
                    s.queued.pop_back();
                    return;
                }
                s.cursor = seq;
            }
        }
        self.export_pending();
    }

    /// The retained `offline` before a clean disconnect (the last will covers a crash).
    fn say_offline(&mut self, s: &mut Session) {
        if !s.connected {
            return;
        }
        s.queued.push_back(Sent::Availability);
        if s.client
            .try_publish(&self.availability, QoS::AtLeastOnce, true, "offline")
            .is_err()
        {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while s.outstanding() > 0 {
            match s.events.recv_deadline(deadline) {
                Ok(Ok(event)) => self.on_packet(s, event),
                _ => break,
            }
        }
    }
}

enum Served {
    Finished,
    Lost(String),
}

pub(crate) fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
