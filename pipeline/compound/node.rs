//! The node thread: keeps this node's leases in PostgreSQL, takes free
//! cameras, hands each camera thread its tenure, and mirrors the alerts open
//! here so another node can end them if this one is lost.
//!
//! Two threads, so a query that hangs on a cut network cannot keep a camera
//! running past its lease: `compound` does the database work once every
//! quarter lease; `lease-fence` checks four times a second that each held
//! camera is still covered (renewed recently, or the broker has this node's
//! session) and stops it otherwise.

use super::lease::{self, Free, LeaseRow};
use super::pg::{Db, LostAlert};
use super::witness::Witness;
use crate::publish::{AlertChange, BrokerLink};
use crate::shutdown::Shutdown;
use crossbeam_channel::{Receiver, Sender};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where the `node_lost` ends of a taken camera's alerts go (the MQTT outbox).
pub type LostSink = Box<dyn Fn(&str, Vec<LostAlert>) + Send>;

pub struct NodeOptions {
    pub me: String,
    /// Every camera of the compound and the node it is pinned to.
    pub cameras: Vec<(String, Option<String>)>,
    pub pg: postgres::Config,
    /// For logs: where the database is, without the password.
    pub database: String,
    pub lease: Duration,
    pub witness: Option<Witness>,
    /// This node's publisher session (its will unpublished).
    pub own_link: Option<Arc<BrokerLink>>,
    pub lost: LostSink,
    /// The process's stop signal: tenures are its children.
    pub shutdown: Shutdown,
    /// Where the console reads which node runs each camera.
    pub health: Option<crate::health::HealthBoard>,
    /// A console-only process: reads the compound, claims and takes nothing.
    pub observer: bool,
    /// The node's store, copied to the compound's alert index, and where
    /// the node's console answers the other nodes.
    pub index: Option<IndexSource>,
    /// The console's users file, kept in line with the compound's users.
    pub users_file: Option<Box<dyn super::users::UsersFile>>,
}

/// What the `alert-index` thread copies, and the address it advertises.
pub struct IndexSource {
    pub storage: crate::store::StorageConfig,
    pub base: std::path::PathBuf,
    pub url: Option<String>,
    /// The console's TLS certificate's SHA-256, when it serves HTTPS.
    pub cert_sha256: Option<String>,
    /// Where a take or resolution queued while this node was down is
    /// announced on MQTT once written (the outbox, and the publisher to wake),
    /// as a console's own would be.
    pub announce: Option<(crate::publish::AlertsConfig, crossbeam_channel::Sender<()>)>,
}

/// A camera's run on this node, until `shutdown` (lost lease or the process stopping).
pub struct Tenure {
    pub token: i64,
    pub shutdown: Shutdown,
    /// Set when the camera went to another node: the stop is not announced,
    /// so this node's `stopped` never overwrites the new owner's `up`.
    pub handed_over: Arc<AtomicBool>,
}

struct Held {
    token: i64,
    tenure: Shutdown,
    handed_over: Arc<AtomicBool>,
    started: bool,
}

#[derive(Default)]
struct Slots {
    held: BTreeMap<String, Held>,
    /// Ended by their source here (a file that finished, a source that failed):
    /// released once, never taken again by this process.
    given_up: BTreeSet<String>,
    release: BTreeMap<String, i64>,
    /// Send time of the last renewal the database confirmed.
    renewed: Option<Instant>,
}

struct Shared {
    me: String,
    lease: Duration,
    slots: Mutex<Slots>,
    changed: Condvar,
    own_link: Option<Arc<BrokerLink>>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lose(slots: &mut Slots, camera: &str, why: &str) {
        if let Some(h) = slots.held.remove(camera) {
            tracing::warn!(camera = %camera, "camera {camera}: {why}; stopping it here");
            h.handed_over.store(true, Ordering::Relaxed);
            h.tenure.trigger();
            metrics::counter!("vigil_compound_cameras_lost_total").increment(1);
        }
    }
}

/// The node's name, claimed in PostgreSQL (or not, while it is down).
pub struct Claim {
    db: Option<Db>,
    instance: String,
    /// Alerts the node's last run left open that another node has ended.
    pub settled: Vec<String>,
}

impl Claim {
    /// A console-only process claims no name.
    pub fn observer() -> Claim {
        Claim {
            db: None,
            instance: format!("console-{}", std::process::id()),
            settled: Vec::new(),
        }
    }
}

pub struct Node {
    shared: Arc<Shared>,
    changes: Sender<AlertChange>,
    stop: Shutdown,
    threads: Vec<JoinHandle<()>>,
}

/// Alert changes waiting for the database; one per alert.
const CHANGES: usize = 1024;

impl Node {
    /// Claims the node's name before anything else of the node starts: a
    /// second process given the same `--node` stops here, before it touches
    /// the broker (where it would take over the first one's MQTT session).
    /// Restarted within its lease, the node's last run still looks alive: this
    /// waits it out, then settles what that run left (the alerts another node
    /// ended for it, returned). A database that is down now is left to the
    /// lease thread, which retries.
    pub fn claim(
        pg: &postgres::Config,
        me: &str,
        database: &str,
        lease: Duration,
        shutdown: &Shutdown,
    ) -> Result<Claim, super::CompoundError> {
        let lease_s = lease.as_secs_f64();
        let instance = format!("{}-{}", std::process::id(), crate::time::now_ms());
        let unclaimed = |instance| Claim {
            db: None,
            instance,
            settled: Vec::new(),
        };
        let mut db = match Db::connect(pg, me, &instance, lease_s) {
            Ok(db) => db,
            Err(e) => {
                tracing::error!(
                    "PostgreSQL {database}: {}; this node takes no camera until it answers",
                    crate::errors::with_causes(&e)
                );
                return Ok(unclaimed(instance));
            }
        };
        let deadline = Instant::now() + lease + Duration::from_secs(1);
        let mut claimed = db.heartbeat();
        if matches!(claimed, Ok(false)) {
            tracing::info!(
                "node {me}: a process running as this node was seen less than a lease ago (its last run, or another machine with the same --node); waiting up to {:.0} s for it to lapse",
                lease_s + 1.0
            );
        }
        while matches!(claimed, Ok(false)) && Instant::now() < deadline && !shutdown.is_triggered()
        {
            std::thread::sleep(Duration::from_millis(500));
            claimed = db.heartbeat();
        }
        match claimed.and_then(|c| {
            if c {
                db.settle_earlier_run().map(Some)
            } else {
                Ok(None)
            }
        }) {
            Ok(Some(settled)) => Ok(Claim {
                db: Some(db),
                instance,
                settled,
            }),
            Ok(None) => Err(super::CompoundError::NameTaken { node: me.into() }),
            Err(e) => {
                tracing::error!("PostgreSQL {database}: {}", crate::errors::with_causes(&e));
                Ok(unclaimed(instance))
            }
        }
    }

    /// Keeps the leases in the background from `claim` on.
    pub fn start(options: NodeOptions, claim: Claim) -> Node {
        let NodeOptions {
            me,
            cameras,
            pg,
            database,
            lease,
            witness,
            own_link,
            lost,
            shutdown,
            health,
            observer,
            index,
            users_file,
        } = options;
        let shared = Arc::new(Shared {
            me: me.clone(),
            lease,
            slots: Default::default(),
            changed: Condvar::new(),
            own_link,
        });
        let Claim { db, instance, .. } = claim;
        let (changes, changes_rx) = crossbeam_channel::bounded(CHANGES);
        let stop = Shutdown::new();
        let mut threads = Vec::new();
        if let Some(source) = index.filter(|_| !observer) {
            let (pg, me, stop) = (pg.clone(), me.clone(), stop.clone());
            match std::thread::Builder::new()
                .name("alert-index".into())
                .spawn(move || super::index::keep_copying(&pg, &me, &source, &stop))
            {
                Ok(t) => threads.push(t),
                Err(e) => tracing::error!("cannot start the alert index thread: {e}"),
            }
        }
        let keeper = Keeper {
            shared: shared.clone(),
            db,
            pg,
            database,
            cameras,
            witness,
            lost,
            changes: changes_rx,
            pending: BTreeMap::new(),
            instance,
            name_taken_said: false,
            reported: BTreeMap::new(),
            stop: stop.clone(),
            process: shutdown,
            down_since: None,
            health,
            observer,
            users_file,
            users_said: false,
        };
        match std::thread::Builder::new()
            .name("compound".into())
            .spawn(move || keeper.run())
        {
            Ok(t) => threads.push(t),
            Err(e) => tracing::error!("cannot start the compound thread: {e}"),
        }
        let fence = shared.clone();
        let fence_stop = stop.clone();
        match std::thread::Builder::new()
            .name("lease-fence".into())
            .spawn(move || run_fence(&fence, &fence_stop))
        {
            Ok(t) => threads.push(t),
            Err(e) => tracing::error!("cannot start the lease fence thread: {e}"),
        }
        Node {
            shared,
            changes,
            stop,
            threads,
        }
    }

    /// Where the publish thread reports alert changes.
    pub fn alert_changes(&self) -> Sender<AlertChange> {
        self.changes.clone()
    }

    /// Waits until this node holds `camera`; `None` once the process stops.
    pub fn wait_tenure(&self, camera: &str, process: &Shutdown) -> Option<Tenure> {
        let mut slots = self.shared.lock();
        loop {
            if process.is_triggered() {
                return None;
            }
            if let Some(h) = slots.held.get_mut(camera)
                && !h.started
            {
                h.started = true;
                return Some(Tenure {
                    token: h.token,
                    shutdown: h.tenure.clone(),
                    handed_over: h.handed_over.clone(),
                });
            }
            slots = self
                .shared
                .changed
                .wait_timeout(slots, Duration::from_millis(250))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// A tenure's supervisor returned. If the camera ended by itself (its file
    /// ended, its source failed for good), the lease is given up for others.
    pub fn tenure_ended(&self, camera: &str, tenure: &Tenure) {
        if tenure.shutdown.is_triggered() {
            return;
        }
        let mut slots = self.shared.lock();
        if slots
            .held
            .get(camera)
            .is_some_and(|h| h.token == tenure.token)
        {
            slots.held.remove(camera);
            slots.given_up.insert(camera.into());
            slots.release.insert(camera.into(), tenure.token);
        }
    }

    /// After the cameras and the publisher have finished: sends the last
    /// alert changes, gives every camera up for the other nodes, and says
    /// this node stopped. Waits at most `within` for the database.
    pub fn finish(mut self, within: Duration) {
        self.stop.trigger();
        let deadline = Instant::now() + within;
        for t in self.threads.drain(..) {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                tracing::warn!(
                    "PostgreSQL did not answer within {within:?}: the leases run out by themselves"
                );
            }
        }
    }
}

/// Stops every held camera no longer covered: not renewed for three
/// quarters of a lease while the broker does not have this node's session.
fn run_fence(shared: &Shared, stop: &Shutdown) {
    let margin = shared.lease / 4;
    while !stop.wait(Duration::from_millis(250)) {
        let online = shared.own_link.as_ref().is_some_and(|l| l.online());
        if online {
            continue;
        }
        let mut slots = shared.lock();
        let stale = slots
            .renewed
            .is_none_or(|t| t.elapsed() + margin >= shared.lease);
        if stale && !slots.held.is_empty() {
            let cameras: Vec<String> = slots.held.keys().cloned().collect();
            for c in cameras {
                Shared::lose(
                    &mut slots,
                    &c,
                    "its lease could not be renewed (PostgreSQL unreachable) and the broker does not have this node either",
                );
            }
        }
    }
}

struct Keeper {
    shared: Arc<Shared>,
    db: Option<Db>,
    pg: postgres::Config,
    database: String,
    cameras: Vec<(String, Option<String>)>,
    witness: Option<Witness>,
    lost: LostSink,
    changes: Receiver<AlertChange>,
    /// Latest change per alert not yet in the database.
    pending: BTreeMap<String, AlertChange>,
    instance: String,
    name_taken_said: bool,
    /// The last state reported for each camera running here.
    reported: BTreeMap<String, (String, Option<String>)>,
    stop: Shutdown,
    process: Shutdown,
    down_since: Option<Instant>,
    health: Option<crate::health::HealthBoard>,
    observer: bool,
    users_file: Option<Box<dyn super::users::UsersFile>>,
    /// A users file that cannot be written was said once.
    users_said: bool,
}

impl Keeper {
    fn tick(&self) -> Duration {
        (self.shared.lease / 4).max(Duration::from_millis(250))
    }

    fn run(mut self) {
        let mut next = Instant::now();
        loop {
            let stopping = self.stop.is_triggered();
            if Instant::now() >= next || stopping {
                next = Instant::now() + self.tick();
                self.take_changes();
                if let Err(e) = self.round(stopping) {
                    self.db = None;
                    if self.down_since.is_none() {
                        self.down_since = Some(Instant::now());
                        tracing::error!(
                            "PostgreSQL {}: {}; cameras held here keep running while the broker has this node, and alert changes wait here",
                            self.database,
                            crate::errors::with_causes(&e)
                        );
                    }
                    metrics::gauge!("vigil_compound_database_up").set(0.0);
                } else {
                    if let Some(since) = self.down_since.take() {
                        tracing::info!(
                            "PostgreSQL {}: back after {:.1} s",
                            self.database,
                            since.elapsed().as_secs_f64()
                        );
                    }
                    metrics::gauge!("vigil_compound_database_up").set(1.0);
                }
                if stopping {
                    break;
                }
            }
            let wait = next.saturating_duration_since(Instant::now());
            crossbeam_channel::select! {
                recv(self.changes) -> c => if let Ok(c) = c { self.pending.insert(c.alert_id.clone(), c); },
                recv(crossbeam_channel::after(wait)) -> _ => {},
            }
            if !self.pending.is_empty() && self.db.is_some() && self.flush_changes().is_err() {
                self.db = None;
            }
        }
    }

    fn take_changes(&mut self) {
        for c in self.changes.try_iter() {
            self.pending.insert(c.alert_id.clone(), c);
        }
    }

    fn flush_changes(&mut self) -> Result<(), postgres::Error> {
        let Some(db) = self.db.as_mut() else {
            return Ok(());
        };
        while let Some((id, change)) = self.pending.pop_first() {
            let done = if change.ended {
                db.alert_ended(&id)
            } else {
                db.alert_open(&id, &change.camera, &change.payload)
            };
            if let Err(e) = done {
                self.pending.insert(id, change);
                return Err(e);
            }
        }
        Ok(())
    }

    fn connect(&mut self) -> Result<&mut Db, postgres::Error> {
        if self.db.as_ref().is_none_or(|d| d.is_closed()) {
            self.db = Some(Db::connect(
                &self.pg,
                &self.shared.me,
                &self.instance,
                self.shared.lease.as_secs_f64(),
            )?);
        }
        Ok(self.db.as_mut().expect("connected above"))
    }

    /// One round: heartbeat, renew, flush alert changes, release, take.
    fn round(&mut self, stopping: bool) -> Result<(), postgres::Error> {
        if self.observer {
            // Not a node: no name, no heartbeat, no lease; only what the
            // console shows.
            if !stopping {
                let (leases, _) = self.connect()?.state()?;
                self.show_runners(&leases)?;
                self.mirror_users()?;
            }
            return Ok(());
        }
        let shared = self.shared.clone();
        let sent = Instant::now();
        if !self.connect()?.heartbeat()? {
            if !std::mem::replace(&mut self.name_taken_said, true) {
                tracing::error!(
                    "{}; this process runs no camera until that one stops",
                    super::CompoundError::NameTaken {
                        node: shared.me.clone()
                    }
                );
            }
            let mut slots = shared.lock();
            let cameras: Vec<String> = slots.held.keys().cloned().collect();
            for c in cameras {
                Shared::lose(&mut slots, &c, "another process runs as this node");
            }
            return Ok(());
        }
        self.name_taken_said = false;
        let db = self.connect()?;
        let held: BTreeMap<String, i64> = shared
            .lock()
            .held
            .iter()
            .map(|(c, h)| (c.clone(), h.token))
            .collect();
        let still = db.renew(&held)?;
        {
            let mut slots = shared.lock();
            slots.renewed = Some(sent);
            for camera in held.keys().filter(|c| !still.contains(*c)) {
                Shared::lose(&mut slots, camera, "another node holds its lease now");
            }
        }
        self.flush_changes()?;
        let db = self.connect()?;
        let release = std::mem::take(&mut shared.lock().release);
        if let Err(e) = db.release(&release) {
            shared.lock().release.extend(release);
            return Err(e);
        }
        if stopping {
            // The cameras have stopped and ended their alerts: free them now.
            shared.lock().held.clear();
            db.release(&held)?;
            db.stopped()?;
            return Ok(());
        }
        let (leases, live) = db.state()?;
        self.report_cameras()?;
        self.show_runners(&leases)?;
        self.mirror_users()?;
        if self.process.is_triggered() {
            return Ok(());
        }
        self.take_free(&leases, &live)
    }

    /// Reports the state of each camera running here when it changed.
    fn report_cameras(&mut self) -> Result<(), postgres::Error> {
        let Some(health) = self.health.clone() else {
            return Ok(());
        };
        let held: Vec<String> = self.shared.lock().held.keys().cloned().collect();
        // A camera taken again later is reported afresh.
        self.reported.retain(|c, _| held.contains(c));
        for camera in held {
            let Some(now) = health.camera(&camera).map(|h| h.state()) else {
                continue;
            };
            let Some(state) = now.state else { continue };
            let report = (state.as_str().to_string(), now.reason.clone());
            if self.reported.get(&camera) == Some(&report) {
                continue;
            }
            self.connect()?
                .report_camera(&camera, &report.0, report.1.as_deref())?;
            self.reported.insert(camera, report);
        }
        Ok(())
    }

    /// Keeps the console's users file in line with the compound's users.
    fn mirror_users(&mut self) -> Result<(), postgres::Error> {
        let Some(file) = self.users_file.take() else {
            return Ok(());
        };
        let mirrored = self
            .connect()
            .map_err(super::users::UsersMirrorError::Pg)
            .and_then(|db| super::users::mirror(db.client(), &*file));
        let path = file.path().display().to_string();
        self.users_file = Some(file);
        match mirrored {
            Ok(changed) => {
                if changed {
                    tracing::info!("console users: {path} now holds the compound's users");
                }
                self.users_said = false;
                Ok(())
            }
            Err(super::users::UsersMirrorError::Pg(e)) => Err(e),
            Err(e) => {
                if !std::mem::replace(&mut self.users_said, true) {
                    tracing::warn!("{}", crate::errors::with_causes(&e));
                }
                Ok(())
            }
        }
    }

    /// Tells the console who runs each camera, in what state, and which
    /// nodes are live.
    fn show_runners(&mut self, leases: &BTreeMap<String, LeaseRow>) -> Result<(), postgres::Error> {
        let Some(health) = self.health.clone() else {
            return Ok(());
        };
        let me = self.shared.me.clone();
        let super::pg::Overview {
            cameras: reports,
            nodes,
            unresolved_elsewhere,
        } = self.connect()?.overview()?;
        for (camera, _) in &self.cameras {
            let runner = leases
                .get(camera)
                .filter(|l| !l.released && (!l.expired || l.node == me))
                .map(|l| {
                    let report = reports.get(camera).filter(|r| r.node == l.node);
                    crate::health::Runner {
                        node: l.node.clone(),
                        here: l.node == me,
                        state: report.and_then(|r| crate::events::CameraState::parse(&r.state)),
                        reason: report.and_then(|r| r.reason.clone()),
                    }
                });
            if let Some(h) = health.camera(camera) {
                h.set_runner(runner);
            }
        }
        let nodes = nodes
            .into_iter()
            .map(|(name, live, ago)| crate::health::NodeView {
                here: name == me,
                name,
                live,
                seen_ago_s: ago.max(0) as u64,
            })
            .collect();
        let mut unresolved_elsewhere: Vec<crate::health::RemoteAlert> = unresolved_elsewhere
            .into_iter()
            .filter_map(|(node, row, queued)| {
                let mut row: crate::store::AlertRow = serde_json::from_str(&row).ok()?;
                // Taken or resolved here while its node is down: shown so (a
                // queued resolution leaves the wall) until the node writes it.
                if let Some(ack) =
                    queued.and_then(|q| serde_json::from_str::<crate::store::Ack>(&q).ok())
                {
                    if ack.action == crate::store::AckAction::Resolve {
                        return None;
                    }
                    row.ack = Some(ack);
                }
                Some(crate::health::RemoteAlert { node, row })
            })
            .collect();
        unresolved_elsewhere.sort_by_key(|a| std::cmp::Reverse(a.row.start_wall_ms));
        health.set_compound(crate::health::CompoundView {
            nodes,
            unresolved_elsewhere,
        });
        Ok(())
    }

    fn take_free(
        &mut self,
        leases: &BTreeMap<String, LeaseRow>,
        live: &BTreeSet<String>,
    ) -> Result<(), postgres::Error> {
        let (held, given_up): (BTreeSet<String>, BTreeSet<String>) = {
            let s = self.shared.lock();
            (s.held.keys().cloned().collect(), s.given_up.clone())
        };
        let mut live = live.clone();
        live.insert(self.shared.me.clone());
        let witness = self.witness.clone();
        let online = move |node: &str| witness.as_ref().and_then(|w| w.online(node));
        let view = lease::View {
            me: &self.shared.me,
            cameras: &self.cameras,
            leases,
            live_nodes: &live,
            held: &held,
            online: &online,
            given_up: &given_up,
        };
        let takes = lease::to_take(&view);
        for take in takes {
            let db = self.connect()?;
            let Some((token, lost)) = db.take(&take.camera, &take.free)? else {
                continue;
            };
            match &take.free {
                Free::Lost { from } => tracing::warn!(
                    camera = %take.camera,
                    "camera {}: node {from} lost it (lease lapsed, broker does not see the node); running it here, {} open alert(s) end as node_lost",
                    take.camera,
                    lost.len()
                ),
                Free::Released { from } => {
                    tracing::info!(camera = %take.camera, "camera {}: taken over from {from}, which gave it up", take.camera)
                }
                _ => {
                    tracing::info!(camera = %take.camera, "camera {}: running on this node", take.camera)
                }
            }
            metrics::counter!("vigil_compound_cameras_taken_total").increment(1);
            if !lost.is_empty() {
                (self.lost)(&take.camera, lost);
            }
            let mut slots = self.shared.lock();
            slots.held.insert(
                take.camera.clone(),
                Held {
                    token,
                    tenure: self.process.child(),
                    handed_over: Arc::new(AtomicBool::new(false)),
                    started: false,
                },
            );
            self.shared.changed.notify_all();
        }
        Ok(())
    }
}
