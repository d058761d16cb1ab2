//! Console: the web pages of the control room and the police, served by
//! `vigil run` itself (axum on its own small tokio runtime).
//!
//! It only reads the store and writes through store commands (acknowledge,
//! tag, hold, the access log); it never touches a camera. The live alert wall
//! follows the store's own sequences ([`FeedCursor`]) over server-sent events,
//! so a browser that reconnects catches up on exactly what it missed. Camera
//! health comes from the [`HealthBoard`] the supervisors keep. Pages are
//! rendered on the server (maud) in the configured language; the little
//! JavaScript there is (`assets/console.js`) is vendored, with no build step.
//!
//! - `users.rs`: the users file, argon2 hashes, roles;
//! - `auth.rs`: sessions, CSRF tokens, login throttling;
//! - `listener.rs`: connections within limits and timeouts, TLS;
//! - `text.rs`: every string, per language;
//! - `views.rs`: the HTML;
//! - `routes.rs`: the handlers, and which role may call each.

mod auth;
mod listener;
mod live;
mod plans;
mod remote;
mod routes;
pub mod text;
pub mod users;
mod views;

pub use plans::PlanConfig;
pub use text::Language;
pub use users::Role;

use crate::health::HealthBoard;
use crate::publish::AlertsConfig;
use crate::shutdown::Shutdown;
use crate::store::{FeedCursor, StorageConfig, Store, StoreError, StoredSession};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `[console]` in the config; the console runs when the section is present.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Address to serve on. Anything but loopback should have TLS.
    pub listen: String,
    /// The users file (relative to the config), written by `vigil user add`.
    pub users: PathBuf,
    /// `zh-CN` (default) or `en`.
    pub language: Language,
    /// IANA time zone for the times shown, e.g. `Asia/Shanghai`; default: this
    /// machine's.
    pub time_zone: Option<String>,
    /// PEM certificate chain and private key: serve HTTPS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Unresolved alerts shown on the wall at most.
    pub wall_max: usize,
    /// Severities whose unacknowledged alerts sound on the wall (a short tone
    /// every 4 s) and mark the tab title. Default: critical and high (fire,
    /// battery carts).
    pub sound: Vec<crate::events::Severity>,
    /// What the operator does, per alert kind, shown on each card and alert
    /// page: `fire_smoke = "火警：拨打 119，通知物业值班经理"`.
    pub instructions: BTreeMap<crate::events::RuleKind, String>,
    /// An alert nobody has acknowledged this many seconds after it started is
    /// escalated: marked on the wall and published once on
    /// `<prefix>/alerts/escalations` for a supervisor. 0: never.
    pub escalate_after_s: f64,
    /// Site plans: a building's or a floor's picture with a pin per camera,
    /// which flashes while that camera has an alert nobody has taken.
    pub plans: Vec<PlanConfig>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            listen: "127.0.0.1:8080".into(),
            users: "users.toml".into(),
            language: Language::default(),
            time_zone: None,
            tls_cert: None,
            tls_key: None,
            wall_max: 200,
            sound: vec![
                crate::events::Severity::Critical,
                crate::events::Severity::High,
            ],
            instructions: BTreeMap::new(),
            escalate_after_s: 120.0,
            plans: Vec::new(),
        }
    }
}

/// An instruction longer than this is refused (a card shows it whole).
pub const MAX_INSTRUCTION_CHARS: usize = 500;

impl ConsoleConfig {
    /// The configured instruction for alerts of `kind` (as stored: `fire_smoke`).
    pub fn instruction(&self, kind: &str) -> Option<&str> {
        self.instructions
            .iter()
            .find(|(k, _)| k.as_str() == kind)
            .map(|(_, text)| text.as_str())
            .filter(|text| !text.trim().is_empty())
    }

    pub fn users_path(&self, base: &Path) -> PathBuf {
        base.join(&self.users)
    }

    /// The SHA-256 of this console's TLS certificate (the chain's first),
    /// hex: what the other nodes of a compound pin when they connect.
    pub fn cert_sha256(&self, base: &Path) -> Option<String> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let path = base.join(self.tls_cert.as_ref()?);
        let first = CertificateDer::pem_file_iter(&path).ok()?.next()?.ok()?;
        Some(crate::store::manifest::sha256_hex(first.as_ref()))
    }

    /// Where the other nodes of a compound reach this console: `listen`, with
    /// this machine's host name when it listens on every address.
    pub fn advertised_url(&self) -> String {
        let scheme = if self.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        match self.listen.parse::<std::net::SocketAddr>() {
            Ok(addr) if addr.ip().is_unspecified() => {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_string())
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "localhost".into());
                format!("{scheme}://{host}:{}", addr.port())
            }
            _ => format!("{scheme}://{}", self.listen),
        }
    }

    pub fn zone(&self) -> Result<jiff::tz::TimeZone, ConsoleError> {
        match &self.time_zone {
            None => Ok(jiff::tz::TimeZone::system()),
            Some(name) => jiff::tz::TimeZone::get(name).map_err(|source| ConsoleError::TimeZone {
                name: name.clone(),
                source,
            }),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("console.listen {listen:?}: {source}")]
    Listen {
        listen: String,
        #[source]
        source: std::io::Error,
    },
    #[error("console.time_zone {name:?}: {source}")]
    TimeZone {
        name: String,
        #[source]
        source: jiff::Error,
    },
    #[error("console: set both tls_cert and tls_key, or neither")]
    HalfTls,
    #[error("console TLS {path}: {source}")]
    Tls {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("console: the console shows the evidence store, and [storage] is disabled")]
    NoStore,
    #[error(transparent)]
    Users(#[from] users::UsersError),
    #[error("console runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// What the console is given by the app.
pub struct ConsoleContext {
    pub config: ConsoleConfig,
    /// The config's directory.
    pub base: PathBuf,
    pub storage: StorageConfig,
    /// Camera id → display name, in config order.
    pub cameras: Vec<(String, String)>,
    pub health: HealthBoard,
    /// Camera id → its zones and lines, drawn on the setup page.
    pub layouts: BTreeMap<String, CameraLayout>,
    /// Camera id → its recorder: H.264 cameras play live from its ring.
    /// Weak: the recorders must go when the cameras stop, so the clip writer
    /// can finish while the console stays up for review.
    pub recorders: BTreeMap<String, std::sync::Weak<crate::record::CameraRecorder>>,
    /// Where acknowledgements are announced (`<prefix>/alerts/acks`) and how
    /// the publisher is woken; `None` when this run does not publish.
    pub alerts: Option<(AlertsConfig, crossbeam_channel::Sender<()>)>,
    pub shutdown: Shutdown,
    /// On a compound's node or `vigil console`: where other nodes' alerts are
    /// looked up and how their consoles are asked.
    pub compound: Option<Arc<crate::compound::Peers>>,
}

/// A camera's zones and lines as configured.
pub struct CameraLayout {
    pub zones: Vec<crate::rules::ZoneConfig>,
    pub lines: Vec<crate::rules::LineConfig>,
}

/// A running console.
pub struct RunningConsole {
    pub addr: SocketAddr,
    pub https: bool,
    thread: std::thread::JoinHandle<()>,
}

impl RunningConsole {
    /// Waits for the console to stop (after the shutdown signal).
    pub fn join(self) {
        if self.thread.join().is_err() {
            tracing::error!("the console thread panicked");
        }
    }
}

/// Reader connections to the store, reused across requests.
struct StorePool {
    storage: StorageConfig,
    base: PathBuf,
    idle: Mutex<Vec<Store>>,
}

impl StorePool {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let taken = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut store = match taken {
            Some(s) => s,
            None => Store::open_reader(&self.storage, &self.base)?,
        };
        let result = f(&mut store);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < 8 {
            idle.push(store);
        }
        result
    }
}

/// Processed frames per second of each camera, sampled by the feed task.
#[derive(Default)]
struct FpsMeter {
    last: BTreeMap<String, (Instant, u64)>,
    fps: BTreeMap<String, f64>,
}

/// A camera's latest thumbnail (JPEG) and when it was encoded: shared by
/// every browser polling within a couple of seconds.
type Thumbnail = (Instant, Arc<Vec<u8>>);

/// Everything the handlers share.
pub(crate) struct Console {
    config: ConsoleConfig,
    /// The config's directory: plan pictures are relative to it.
    base: PathBuf,
    lang: Language,
    zone: jiff::tz::TimeZone,
    users: PathBuf,
    store: StorePool,
    cameras: Vec<(String, String)>,
    health: HealthBoard,
    layouts: BTreeMap<String, CameraLayout>,
    recorders: BTreeMap<String, std::sync::Weak<crate::record::CameraRecorder>>,
    alerts: Option<(AlertsConfig, crossbeam_channel::Sender<()>)>,
    throttle: auth::LoginThrottle,
    feed: tokio::sync::watch::Receiver<FeedCursor>,
    fps: Mutex<FpsMeter>,
    thumbnails: Mutex<BTreeMap<String, Thumbnail>>,
    live_jpegs: Mutex<BTreeMap<String, live::LiveJpeg>>,
    secure: bool,
    /// On a compound's node or `vigil console`: other nodes' alerts.
    compound: Option<Arc<crate::compound::Peers>>,
    /// Asks other nodes' consoles (see `remote.rs`).
    http: remote::HttpClient,
}

/// A session cookie, as this console's store knows it.
enum SessionLookup {
    /// Stored here: its user if the session is valid.
    Known(Option<auth::User>),
    /// Not stored here.
    Unknown,
}

/// What a request did to its session, for the compound's copy.
pub(crate) enum SessionChange {
    None,
    /// Marked used (at most once a minute), or just opened.
    Used(StoredSession),
    /// Logged out.
    Ended,
}

impl Console {
    /// Runs a store query on the blocking pool.
    async fn db<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.store.with(f))
            .await
            .unwrap_or_else(|e| {
                Err(StoreError::Dir {
                    dir: PathBuf::new(),
                    source: std::io::Error::other(e.to_string()),
                })
            })
    }

    /// `shared` from the compound's PostgreSQL when this console is a
    /// compound's (every node's alerts); otherwise `local` from this node's
    /// store. While PostgreSQL does not answer, `local` too, and `true` for
    /// the page to say that other nodes' alerts are missing.
    async fn compound_or_local<T: Send + 'static>(
        self: &Arc<Self>,
        what: &'static str,
        shared: impl FnOnce(&crate::compound::Peers) -> Result<T, postgres::Error> + Send + 'static,
        local: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<(T, bool), StoreError> {
        let Some(peers) = self.compound.clone() else {
            return self.db(local).await.map(|v| (v, false));
        };
        match tokio::task::spawn_blocking(move || shared(&peers)).await {
            Ok(Ok(v)) => Ok((v, false)),
            failed => {
                if let Ok(Err(e)) = failed {
                    tracing::warn!("console: {what}: the compound's PostgreSQL: {e}");
                }
                self.db(local).await.map(|v| (v, true))
            }
        }
    }

    /// The logged-in user of a session cookie token, if the session is stored,
    /// not idle and its user unchanged (see `auth.rs`).
    async fn session_user(self: &Arc<Self>, token: &str) -> Option<auth::User> {
        match self.local_session_user(token, None).await {
            SessionLookup::Known(user) => user,
            SessionLookup::Unknown => {
                // Opened on another console of the compound, perhaps: the same
                // control-room address now served by another node.
                let peers = self.compound.clone()?;
                let key = crate::store::token_key(token);
                let shared = tokio::task::spawn_blocking(move || peers.session(&key)).await;
                match shared {
                    Ok(Ok(Some(session))) => {
                        match self.local_session_user(token, Some(session)).await {
                            SessionLookup::Known(user) => user,
                            SessionLookup::Unknown => None,
                        }
                    }
                    Ok(Ok(None)) => None,
                    Ok(Err(e)) => {
                        tracing::debug!(
                            "console: a session not known here; the compound's PostgreSQL: {e}"
                        );
                        None
                    }
                    Err(_) => None,
                }
            }
        }
    }

    /// The user of a session this console stores, judged against the users
    /// file; `shared`: first store that session, found in the compound's list.
    async fn local_session_user(
        self: &Arc<Self>,
        token: &str,
        shared: Option<StoredSession>,
    ) -> SessionLookup {
        let users = self.users.clone();
        let owned = token.to_string();
        let token = owned.clone();
        let lang = self.lang;
        let found = self
            .db(move |store| {
                let now = crate::time::now_ms() as i64;
                if let Some(session) = &shared {
                    store.open_session(&token, session, now - auth::IDLE_MS)?;
                    tracing::info!(
                        "console: {} comes with a login made on another console of the compound",
                        session.user
                    );
                }
                let Some(session) = store.session(&token)? else {
                    return Ok((SessionLookup::Unknown, SessionChange::None));
                };
                let user = match users::find(&users, &session.user) {
                    Ok(user) => user,
                    Err(e) => {
                        // An unreadable users file logs nobody in, nor out.
                        tracing::error!("console: {e}");
                        return Ok((SessionLookup::Known(None), SessionChange::None));
                    }
                };
                match auth::judge(&session, user.as_ref(), now) {
                    auth::Verdict::Valid(role) => {
                        let mut change = SessionChange::None;
                        if now - session.last_seen_ms >= auth::TOUCH_EVERY_MS {
                            store.touch_session(&token, now)?;
                            change = SessionChange::Used(StoredSession {
                                last_seen_ms: now,
                                ..session.clone()
                            });
                        }
                        let user = auth::User {
                            name: session.user,
                            role,
                            csrf: session.csrf,
                            session: token,
                            lang: user.and_then(|u| u.lang).unwrap_or(lang),
                        };
                        Ok((SessionLookup::Known(Some(user)), change))
                    }
                    verdict => {
                        if let auth::Verdict::Revoked(why) = verdict {
                            tracing::info!("console: session of {} ended: {why}", session.user);
                        }
                        // Here only: every console judges against the same
                        // users, and a console whose file lags the compound's
                        // list must not log the user out everywhere.
                        store.close_session(&token)?;
                        Ok((SessionLookup::Known(None), SessionChange::None))
                    }
                }
            })
            .await;
        match found {
            Ok((lookup, change)) => {
                self.share_session(&owned, change);
                lookup
            }
            Err(e) => {
                tracing::warn!("console: reading a session: {e}");
                SessionLookup::Known(None)
            }
        }
    }

    /// Tells the compound's PostgreSQL what became of a session here, off the
    /// request's path: used (renewed there, and ended here if another console
    /// ended it), or ended (on every console).
    fn share_session(self: &Arc<Self>, token: &str, change: SessionChange) {
        let Some(peers) = self.compound.clone() else {
            return;
        };
        let key = crate::store::token_key(token);
        match change {
            SessionChange::None => {}
            SessionChange::Used(session) => {
                let (me, token) = (self.clone(), token.to_string());
                tokio::spawn(async move {
                    let user = session.user.clone();
                    let idle_before = session.last_seen_ms - auth::IDLE_MS;
                    let renewed = tokio::task::spawn_blocking(move || {
                        peers.renew_session(&key, &session, idle_before)
                    })
                    .await;
                    match renewed {
                        Ok(Ok(true)) => {
                            tracing::info!(
                                "console: a session of {user} was ended on another console of the compound; ended here too"
                            );
                            if let Err(e) = me.db(move |s| s.close_session(&token)).await {
                                tracing::warn!("console: ending a session: {e}");
                            }
                        }
                        Ok(Err(e)) => tracing::debug!(
                            "console: a session's renewal in the compound's PostgreSQL: {e}; tried again in a minute"
                        ),
                        _ => {}
                    }
                });
            }
            SessionChange::Ended => {
                let idle_before = crate::time::now_ms() as i64 - auth::IDLE_MS;
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = peers.end_session(&key, idle_before) {
                        tracing::warn!(
                            "console: a session ended here stays valid on the compound's other consoles until their next renewal: {e}"
                        );
                    }
                });
            }
        }
    }

    fn camera_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.cameras
            .iter()
            .find(|(c, _)| c == id)
            .map(|(_, n)| n.as_str())
            .unwrap_or(id)
    }

    /// `ms` as local time in the config's zone.
    fn local(&self, ms: i64) -> String {
        crate::time::local_text(ms, &self.zone, "%Y-%m-%d %H:%M:%S")
    }
}

/// How often the feed task looks for new events and acks.
const FEED_POLL: Duration = Duration::from_millis(250);

/// Starts the console: binds now (so a taken port is reported at start), serves
/// on a thread of its own until `shutdown`.
pub fn start(ctx: ConsoleContext) -> Result<RunningConsole, ConsoleError> {
    let config = ctx.config;
    if !ctx.storage.enabled {
        return Err(ConsoleError::NoStore);
    }
    let zone = config.zone()?;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(c), Some(k)) => Some((ctx.base.join(c), ctx.base.join(k))),
        (None, None) => None,
        _ => return Err(ConsoleError::HalfTls),
    };
    if let Some((cert, key)) = &tls {
        for path in [cert, key] {
            std::fs::metadata(path).map_err(|source| ConsoleError::Tls {
                path: path.clone(),
                source,
            })?;
        }
    }
    let listener =
        std::net::TcpListener::bind(&config.listen).map_err(|source| ConsoleError::Listen {
            listen: config.listen.clone(),
            source,
        })?;
    let listen_err = |source| ConsoleError::Listen {
        listen: config.listen.clone(),
        source,
    };
    let addr = listener.local_addr().map_err(listen_err)?;
    listener.set_nonblocking(true).map_err(listen_err)?;
    if tls.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(
            "!!! console on {addr} WITHOUT TLS: passwords and evidence cross the network in clear text. Set [console] tls_cert and tls_key, or listen on 127.0.0.1 behind a TLS proxy !!!"
        );
    }
    let users = config.users_path(&ctx.base);
    match users::count(&users)? {
        0 => tracing::warn!(
            "console: no users in {} yet; add one with `vigil user add NAME --role admin -c CONFIG`",
            users.display()
        ),
        n => tracing::info!("console: {n} user(s) in {}", users.display()),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .thread_name("console")
        // Pages and live pictures wait for a core; detection does not: with
        // four live viewers at nice 0 the slowest of eight cameras lost 6-9%
        // of its frame rate.
        .on_thread_start(crate::record::lower_thread_priority)
        .enable_all()
        .build()
        .map_err(ConsoleError::Runtime)?;
    let (feed_tx, feed_rx) = tokio::sync::watch::channel(FeedCursor::default());
    let console = Arc::new(Console {
        base: ctx.base.clone(),
        lang: config.language,
        zone,
        users,
        store: StorePool {
            storage: ctx.storage,
            base: ctx.base,
            idle: Mutex::new(Vec::new()),
        },
        cameras: ctx.cameras,
        health: ctx.health,
        layouts: ctx.layouts,
        recorders: ctx.recorders,
        alerts: ctx.alerts,
        throttle: auth::LoginThrottle::default(),
        feed: feed_rx,
        fps: Mutex::new(FpsMeter::default()),
        thumbnails: Mutex::new(BTreeMap::new()),
        live_jpegs: Mutex::new(BTreeMap::new()),
        secure: tls.is_some(),
        compound: ctx.compound,
        http: remote::http_client(),
        config,
    });
    let shutdown = ctx.shutdown;
    let https = tls.is_some();
    let thread = std::thread::Builder::new()
        .name("console".into())
        .spawn(move || {
            runtime.block_on(serve(console, listener, tls, feed_tx, shutdown));
            runtime.shutdown_timeout(Duration::from_secs(1));
        })
        .map_err(ConsoleError::Runtime)?;
    Ok(RunningConsole {
        addr,
        https,
        thread,
    })
}

async fn serve(
    console: Arc<Console>,
    listener: std::net::TcpListener,
    tls: Option<(PathBuf, PathBuf)>,
    feed: tokio::sync::watch::Sender<FeedCursor>,
    shutdown: Shutdown,
) {
    tokio::spawn(follow_store(console.clone(), feed));
    if console.config.escalate_after_s > 0.0 {
        tokio::spawn(escalate(console.clone()));
    }
    let app = routes::router(console);
    let stopped = {
        let shutdown = shutdown.clone();
        tokio::task::spawn_blocking(move || while !shutdown.wait(Duration::from_secs(1)) {})
    };
    let served = async {
        let acceptor = match tls {
            None => None,
            Some((cert, key)) => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                match tls_config(&cert, &key) {
                    Ok(config) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
                    Err(e) => {
                        tracing::error!(
                            "console TLS {} / {}: {e}; console not served",
                            cert.display(),
                            key.display()
                        );
                        return;
                    }
                }
            }
        };
        match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => listener::serve(l, acceptor, app).await,
            Err(e) => tracing::error!("console: {e}"),
        }
    };
    // Live streams never end by themselves: stop serving rather than wait for them.
    tokio::select! {
        _ = served => {}
        _ = stopped => {}
    }
}

/// The console's TLS settings from PEM files: the certificate chain and its key.
fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<rustls::ServerConfig, Box<dyn std::error::Error>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    // The listener speaks HTTP/1.1 only: never offer h2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Escalates, every second, the alerts nobody took within
/// `escalate_after_s`: stored once each with their MQTT message.
async fn escalate(console: Arc<Console>) {
    let after_ms = (console.config.escalate_after_s * 1000.0) as i64;
    let mut failing = false;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let me = console.clone();
        let escalated = console
            .db(move |s| {
                let cap = me.alerts.as_ref().map(|(a, _)| a.outbox_max).unwrap_or(0);
                let announce = |a: &crate::store::AlertRow| match &me.alerts {
                    Some((config, _)) => vec![routes::escalation_message(&me, config, a)],
                    None => Vec::new(),
                };
                s.escalate_overdue(crate::time::now_ms() as i64, after_ms, announce, cap)
            })
            .await;
        match escalated {
            Ok(rows) => {
                failing = false;
                for a in &rows {
                    tracing::warn!(
                        camera = %a.camera,
                        "alert {} ({} on {}) not acknowledged within {} s: escalated",
                        a.id,
                        a.kind,
                        a.camera,
                        console.config.escalate_after_s
                    );
                }
                if !rows.is_empty()
                    && let Some((_, notify)) = &console.alerts
                {
                    let _ = notify.try_send(());
                }
            }
            // Said once per outage, not every second.
            Err(e) if !failing => {
                failing = true;
                tracing::error!("console: escalating overdue alerts: {e}");
            }
            Err(_) => {}
        }
    }
}

/// Follows the store's sequences and the cameras' frame counts.
async fn follow_store(console: Arc<Console>, feed: tokio::sync::watch::Sender<FeedCursor>) {
    let mut ticker = tokio::time::interval(FEED_POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match console.db(|s| s.feed_head()).await {
            Ok(head) => {
                feed.send_if_modified(|c| {
                    let changed = *c != head;
                    *c = head;
                    changed
                });
            }
            Err(e) => tracing::warn!("console: reading the store: {e}"),
        }
        let mut meter = console.fps.lock().unwrap_or_else(|e| e.into_inner());
        for (id, _) in &console.cameras {
            let Some(health) = console.health.camera(id) else {
                continue;
            };
            let frames = health.frames();
            let now = Instant::now();
            match meter.last.get(id).copied() {
                Some((at, before)) if now.duration_since(at) >= Duration::from_secs(2) => {
                    let fps = (frames - before) as f64 / now.duration_since(at).as_secs_f64();
                    meter.fps.insert(id.clone(), fps);
                    meter.last.insert(id.clone(), (now, frames));
                }
                Some(_) => {}
                None => {
                    meter.last.insert(id.clone(), (now, frames));
                }
            }
        }
    }
}
