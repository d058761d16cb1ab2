//! Store: the evidence of every alert, kept where the police can search it and
//! prove it was not altered.
//!
//! One directory (`[storage] dir`, default `vigil-data/` beside the config):
//!
//! ```text
//! vigil-data/
//!   vigil.db            SQLite (WAL): alerts, events, evidence, tags, holds
//!   manifest.jsonl      signed, hash-chained list of every evidence file added or deleted
//!   signing.pub         the public key that verifies the manifest (hex)
//!   signing.key         the private key, 0600 (unless `[storage] signing_key` points elsewhere)
//!   vigil.lock          held by the one vigil process recording here
//!   evidence/<camera>/<YYYY-MM-DD>/<alert id>-snapshot.jpg
//!                                  .../<alert id>-annotated.jpg
//!                                  .../<alert id>-clip.mp4  (-clip-2.mp4, ... when split)
//! ```
//!
//! # Schema (version 3, see `schema.rs`)
//!
//! - `alerts`: one row per alert, its latest state: id, camera, kind, rule,
//!   severity, zone/line/direction, label, highest score, latest box (JSON
//!   fractions), track id, start and end in media seconds and wall ms,
//!   recipients (JSON), summary, `state` `open`, `ended`, or `interrupted` (still
//!   open when the vigil that raised it stopped without ending it). Indexed by start time,
//!   and by camera, kind and state with start time.
//! - `events`: every event published, in order (`seq`), with its JSON payload
//!   exactly as sent.
//! - `evidence`: every file kept for an alert: kind (`snapshot`, `annotated`,
//!   `clip`), path relative to the store, sha256, bytes, creation wall ms, its
//!   manifest entry, and for clips their media start and duration. `deleted_ms`
//!   is set when retention removed the file (the row stays, so the history does).
//! - `tags` (alert, text, who, when) and `holds` (alert, who, reason, when): a held
//!   alert's evidence is never deleted by retention.
//! - `outbox` (version 2): MQTT messages not yet acknowledged by the broker
//!   (topic, payload, retain, priority, capture time); see `outbox.rs`.
//! - `acks` (version 3): every acknowledgement and resolution from the console
//!   (alert, `ack`/`resolve`, who, note, when); the latest is the alert's.
//! - `access_log` (version 3): the chain of custody: who viewed or exported
//!   which alert's evidence, and when.
//! - `meta`: key/value: the manifest head (`manifest_seq`, `manifest_head`).
//!
//! What survives a crash: a row is committed only after its file was written,
//! synced and entered in the manifest, so a row never points at a file that was
//! not complete; a file written but not yet in the manifest is an orphan that
//! `verify` does not vouch for. The manifest is appended and synced before the
//! database records its head, so the file may run one entry ahead, never behind.
//!
//! One process writes (an exclusive lock on `vigil.lock`); the CLI's readers and
//! the tag and hold commands share the database through SQLite's WAL.

mod bundle;
pub mod manifest;
pub mod outbox;
mod review;
mod schema;

pub use bundle::verify_bundle;
pub use manifest::{generate_key, parse_public, public_hex, read_key};
pub use outbox::{Outbox, OutboxError, OutboxMessage, Priority};
pub use review::{Access, Ack, AckAction, FeedCursor};

use crate::events::{Alert, Event, Lifecycle};
use ed25519_dalek::VerifyingKey;
use manifest::{ManifestWriter, Op};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `[storage]` in the config.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Record evidence (snapshots, clips) and keep alerts in the store.
    pub enabled: bool,
    /// Store directory, relative to the config file.
    pub dir: PathBuf,
    /// Private key that signs the manifest (`vigil keygen --out FILE`). Unset:
    /// `signing.key` in the store, created on first start.
    pub signing_key: Option<PathBuf>,
    /// Delete evidence of ended, unheld alerts older than this.
    pub max_age_days: Option<f64>,
    /// Keep evidence files under this many bytes, deleting the oldest first.
    pub max_bytes: Option<u64>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            enabled: true,
            dir: PathBuf::from("vigil-data"),
            signing_key: None,
            max_age_days: Some(30.0),
            max_bytes: None,
        }
    }
}

impl StorageConfig {
    pub fn dir(&self, base: &Path) -> PathBuf {
        base.join(&self.dir)
    }

    pub fn key_path(&self, base: &Path) -> PathBuf {
        match &self.signing_key {
            Some(k) => base.join(k),
            None => self.dir(base).join("signing.key"),
        }
    }

    /// Why the store directory cannot be used, if it cannot (for `vigil check`).
    pub fn unwritable(&self, base: &Path) -> Option<String> {
        let dir = self.dir(base);
        let mut existing = dir.as_path();
        while !existing.exists() {
            existing = existing.parent()?;
            if existing.as_os_str().is_empty() {
                existing = Path::new(".");
            }
        }
        if !existing.is_dir() {
            return Some(format!(
                "{}: {} is not a directory",
                dir.display(),
                existing.display()
            ));
        }
        let probe = existing.join(format!(".vigil-write-test-{}", std::process::id()));
        match std::fs::write(&probe, b"") {
            Ok(()) => {
                let _ = std::fs::remove_file(&probe);
                None
            }
            Err(e) => Some(format!(
                "{}: cannot write in {}: {e}",
                dir.display(),
                existing.display()
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage dir {dir}: cannot use it")]
    Dir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "storage dir {dir} is in use by another vigil process{}: one store has one writer; give each process its own [storage] dir",
        pid.as_deref().map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Locked { dir: PathBuf, pid: Option<String> },
    #[error(
        "storage dir {dir}: no store here (vigil.db is missing); is --config the one vigil runs with?"
    )]
    Missing { dir: PathBuf },
    #[error("store {path}")]
    Sql {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("store {path}")]
    Schema {
        path: PathBuf,
        #[source]
        source: schema::MigrationError,
    },
    #[error(transparent)]
    Key(#[from] manifest::KeyError),
    #[error("evidence file {path}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no alert {id:?} in the store")]
    NoAlert { id: String },
    #[error("bundle {path}: {reason}")]
    Bundle { path: PathBuf, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    Snapshot,
    Annotated,
    Clip,
}

impl EvidenceKind {
    fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::Snapshot => "snapshot",
            EvidenceKind::Annotated => "annotated",
            EvidenceKind::Clip => "clip",
        }
    }
}

/// A stored evidence file as events and listings name it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvidenceFile {
    pub kind: EvidenceKind,
    /// Relative to the store directory.
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    pub created_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_media_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_ms: Option<u64>,
}

/// One alert as listings show it.
#[derive(Debug, Clone, Serialize)]
pub struct AlertRow {
    pub id: String,
    pub camera: String,
    pub kind: String,
    pub rule: String,
    pub severity: String,
    pub zone: Option<String>,
    pub line: Option<String>,
    pub label: String,
    pub score: f64,
    #[serde(rename = "box")]
    pub bbox: serde_json::Value,
    pub track_id: Option<i64>,
    pub start_media_s: f64,
    pub start_wall_ms: i64,
    pub end_media_s: Option<f64>,
    pub end_wall_ms: Option<i64>,
    pub recipients: serde_json::Value,
    pub summary: String,
    pub state: String,
    pub tags: Vec<String>,
    pub held: bool,
    /// The latest acknowledgement or resolution, if any.
    pub ack: Option<Ack>,
    /// The annotated snapshot still kept (relative to the store), for cards.
    pub annotated: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tag {
    pub text: String,
    pub who: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Hold {
    pub who: String,
    pub reason: String,
    pub at_ms: i64,
}

/// Everything the store knows about one alert.
#[derive(Debug, Clone, Serialize)]
pub struct AlertDetail {
    pub alert: AlertRow,
    pub events: Vec<serde_json::Value>,
    pub evidence: Vec<EvidenceFile>,
    pub tags: Vec<Tag>,
    pub hold: Option<Hold>,
}

/// `vigil alerts list` filters; unset fields match everything.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub camera: Option<String>,
    pub kind: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub tag: Option<String>,
    pub state: Option<String>,
    pub limit: Option<usize>,
    /// Keyset paging: only alerts older than this (start wall ms, id), as the
    /// last row of the previous page.
    pub before: Option<(i64, String)>,
}

/// A file retention removed.
#[derive(Debug, Clone)]
pub struct Removed {
    pub alert: String,
    pub path: String,
    pub bytes: u64,
    pub why: &'static str,
}

/// The process that records: holds the lock and the signing key.
struct Writer {
    manifest: ManifestWriter,
    _lock: std::fs::File,
}

pub struct Store {
    conn: Connection,
    dir: PathBuf,
    db_path: PathBuf,
    writer: Option<Writer>,
    max_age_days: Option<f64>,
    max_bytes: Option<u64>,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Takes the store's exclusive lock, or says who holds it.
fn lock(dir: &Path) -> Result<std::fs::File, StoreError> {
    use std::io::{Read, Seek, Write};
    let path = dir.join("vigil.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|source| StoreError::Dir {
            dir: dir.into(),
            source,
        })?;
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own; released when the file is closed.
    let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if !taken {
        let mut pid = String::new();
        let _ = file.read_to_string(&mut pid);
        let pid = Some(pid.trim().to_string()).filter(|p| !p.is_empty());
        return Err(StoreError::Locked {
            dir: dir.into(),
            pid,
        });
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    Ok(file)
}

impl Store {
    /// Opens the store for recording: creates it if needed, takes the lock, loads
    /// (or on first start creates) the signing key.
    pub fn open_writer(config: &StorageConfig, base: &Path) -> Result<Store, StoreError> {
        let dir = config.dir(base);
        std::fs::create_dir_all(dir.join("evidence")).map_err(|source| StoreError::Dir {
            dir: dir.clone(),
            source,
        })?;
        let lock = lock(&dir)?;
        let key_path = config.key_path(base);
        let key = if config.signing_key.is_none() && !key_path.exists() {
            let key = generate_key(&key_path)?;
            tracing::info!(
                "evidence signing key created at {} (public key {}); keep the public key with the police",
                key_path.display(),
                public_hex(&key.verifying_key())
            );
            key
        } else {
            read_key(&key_path)?
        };
        let public = public_hex(&key.verifying_key());
        let pub_path = dir.join("signing.pub");
        if std::fs::read_to_string(&pub_path)
            .ok()
            .map(|t| t.trim().to_string())
            != Some(public.clone())
        {
            if pub_path.exists() {
                tracing::warn!(
                    "store {}: the signing key changed; earlier manifest entries verify only with the earlier public key, kept in signing.pub.old",
                    dir.display()
                );
                let _ = std::fs::rename(&pub_path, dir.join("signing.pub.old"));
            }
            std::fs::write(&pub_path, format!("{public}\n")).map_err(|source| {
                StoreError::File {
                    path: pub_path.clone(),
                    source,
                }
            })?;
        }
        let manifest =
            ManifestWriter::open(&dir.join("manifest.jsonl"), key).map_err(|source| {
                StoreError::File {
                    path: dir.join("manifest.jsonl"),
                    source,
                }
            })?;
        let mut store = Self::connect(&dir, config)?;
        store.writer = Some(Writer {
            manifest,
            _lock: lock,
        });
        // We hold the lock: an alert still open was left by a vigil that stopped
        // without ending it (a crash, a kill). It can never end now.
        let interrupted = store
            .conn
            .execute(
                "UPDATE alerts SET state = 'interrupted' WHERE state = 'open'",
                [],
            )
            .map_err(|e| store.sql(e))?;
        if interrupted > 0 {
            tracing::warn!(
                "store {}: {interrupted} alert(s) left open by the previous run marked interrupted",
                dir.display()
            );
        }
        Ok(store)
    }

    /// Opens an existing store to read it, tag and hold (the CLI); no lock, no key.
    pub fn open_reader(config: &StorageConfig, base: &Path) -> Result<Store, StoreError> {
        let dir = config.dir(base);
        if !dir.join("vigil.db").is_file() {
            return Err(StoreError::Missing { dir });
        }
        Self::connect(&dir, config)
    }

    fn connect(dir: &Path, config: &StorageConfig) -> Result<Store, StoreError> {
        let db_path = dir.join("vigil.db");
        let sql = |source| StoreError::Sql {
            path: db_path.clone(),
            source,
        };
        let mut conn = Connection::open(&db_path).map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql)?;
        schema::migrate(&mut conn).map_err(|source| StoreError::Schema {
            path: db_path.clone(),
            source,
        })?;
        Ok(Store {
            conn,
            dir: dir.into(),
            db_path,
            writer: None,
            max_age_days: config.max_age_days,
            max_bytes: config.max_bytes,
        })
    }

    fn sql(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sql {
            path: self.db_path.clone(),
            source,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The public key that verifies this store's manifest (`signing.pub`).
    pub fn public_key(&self) -> Result<VerifyingKey, StoreError> {
        let path = self.dir.join("signing.pub");
        let text =
            std::fs::read_to_string(&path).map_err(|source| StoreError::File { path, source })?;
        Ok(parse_public(&text)?)
    }

    /// Where an alert's evidence files go, without their suffix: (relative, absolute).
    pub fn evidence_base(
        &self,
        camera: &str,
        alert_id: &str,
        start_wall_ms: u64,
    ) -> (String, PathBuf) {
        let day = jiff::Timestamp::from_millisecond(start_wall_ms as i64)
            .map(|t| t.strftime("%Y-%m-%d").to_string())
            .unwrap_or_else(|_| "undated".into());
        let rel = format!("evidence/{camera}/{day}/{alert_id}");
        let abs = self.dir.join(&rel);
        (rel, abs)
    }

    /// Where an alert's evidence file `<id>-<suffix>` goes: (relative, absolute).
    pub fn evidence_path(
        &self,
        camera: &str,
        alert_id: &str,
        start_wall_ms: u64,
        suffix: &str,
    ) -> (String, PathBuf) {
        let (base, _) = self.evidence_base(camera, alert_id, start_wall_ms);
        let rel = format!("{base}-{suffix}");
        let abs = self.dir.join(&rel);
        (rel, abs)
    }

    /// True when evidence exceeds `max_bytes`.
    pub fn over_max_bytes(&self) -> bool {
        self.max_bytes
            .is_some_and(|max| self.evidence_bytes().is_ok_and(|b| b > max))
    }

    /// Records an alert's current state (before its evidence refers to it).
    pub fn record_alert(&mut self, alert: &Alert) -> Result<(), StoreError> {
        upsert_alert(&self.conn, alert)
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    /// Records an event, the alert's state after it, and the MQTT messages that
    /// announce it (`outbox`, capped at `cap`), in one transaction. Returns how
    /// many older messages the cap dropped.
    pub fn record_event(
        &mut self,
        event: &Event,
        payload: &str,
        outbox: &[OutboxMessage],
        cap: usize,
    ) -> Result<usize, StoreError> {
        let db_path = self.db_path.clone();
        let sql = |source| StoreError::Sql {
            path: db_path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sql)?;
        upsert_alert(&tx, event.alert()).map_err(sql)?;
        let kind = match event.lifecycle {
            Lifecycle::New => "new",
            Lifecycle::Update => "update",
            Lifecycle::End => "end",
        };
        tx.execute(
            "INSERT INTO events (alert_id, type, wall_ms, payload) VALUES (?1, ?2, ?3, ?4)",
            params![event.alert().id, kind, now_ms() as i64, payload],
        )
        .map_err(sql)?;
        let dropped = outbox::enqueue(&tx, outbox, cap).map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(dropped)
    }

    /// The SQLite file (the publisher opens its own connection to the outbox).
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// Enters a written file as evidence of an alert: hashes it, appends a signed
    /// manifest entry, records the row. The file must already be synced.
    pub fn add_evidence(
        &mut self,
        alert_id: &str,
        kind: EvidenceKind,
        rel_path: &str,
        clip: Option<(f64, f64)>,
    ) -> Result<EvidenceFile, StoreError> {
        let abs = self.dir.join(rel_path);
        let (sha256, bytes) = manifest::hash_file(&abs).map_err(|source| StoreError::File {
            path: abs.clone(),
            source,
        })?;
        let created_ms = now_ms();
        let writer = self.writer.as_mut().ok_or_else(|| StoreError::Dir {
            dir: self.dir.clone(),
            source: std::io::Error::other("opened read-only"),
        })?;
        let entry = writer
            .manifest
            .append(Op::Add, rel_path, &sha256, bytes, alert_id, created_ms)
            .map_err(|source| StoreError::File {
                path: self.dir.join("manifest.jsonl"),
                source,
            })?;
        self.conn
            .execute(
                "INSERT INTO evidence (alert_id, kind, path, sha256, bytes, created_ms, manifest_seq, start_media_s, duration_s)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (path) DO UPDATE SET sha256 = excluded.sha256, bytes = excluded.bytes,
                    created_ms = excluded.created_ms, manifest_seq = excluded.manifest_seq, deleted_ms = NULL",
                params![
                    alert_id,
                    kind.as_str(),
                    rel_path,
                    sha256,
                    bytes as i64,
                    created_ms as i64,
                    entry.seq as i64,
                    clip.map(|c| c.0),
                    clip.map(|c| c.1)
                ],
            )
            .map_err(|e| self.sql(e))?;
        self.set_head(entry.seq)?;
        Ok(EvidenceFile {
            kind,
            path: rel_path.into(),
            sha256,
            bytes,
            created_ms,
            start_media_s: clip.map(|c| c.0),
            duration_s: clip.map(|c| c.1),
            deleted_ms: None,
        })
    }

    fn set_head(&self, seq: u64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES ('manifest_seq', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![seq.to_string()],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    fn alert_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AlertRow> {
        let json = |s: String| serde_json::from_str(&s).unwrap_or(serde_json::Value::Null);
        let tags: Option<String> = row.get(19)?;
        let ack: Option<String> = row.get(20)?;
        Ok(AlertRow {
            id: row.get(0)?,
            camera: row.get(1)?,
            kind: row.get(2)?,
            rule: row.get(3)?,
            severity: row.get(4)?,
            zone: row.get(5)?,
            line: row.get(6)?,
            label: row.get(7)?,
            score: row.get(8)?,
            bbox: json(row.get(9)?),
            track_id: row.get(10)?,
            start_media_s: row.get(11)?,
            start_wall_ms: row.get(12)?,
            end_media_s: row.get(13)?,
            end_wall_ms: row.get(14)?,
            recipients: json(row.get(15)?),
            summary: row.get(16)?,
            state: row.get(17)?,
            held: row.get::<_, Option<String>>(18)?.is_some(),
            tags: tags
                .map(|t| t.split('\u{1f}').map(String::from).collect())
                .unwrap_or_default(),
            ack: ack.and_then(|a| serde_json::from_str(&a).ok()),
            annotated: row.get(21)?,
        })
    }

    const ALERT_COLUMNS: &'static str = "a.id, a.camera, a.kind, a.rule, a.severity, a.zone, a.line, a.label, a.score, a.box,
        a.track_id, a.start_media_s, a.start_wall_ms, a.end_media_s, a.end_wall_ms, a.recipients, a.summary, a.state,
        (SELECT who FROM holds h WHERE h.alert_id = a.id),
        (SELECT group_concat(text, char(31)) FROM tags t WHERE t.alert_id = a.id),
        (SELECT json_object('action', k.action, 'who', k.who, 'note', k.note, 'at_ms', k.at_ms)
           FROM acks k WHERE k.alert_id = a.id ORDER BY k.seq DESC LIMIT 1),
        (SELECT e.path FROM evidence e WHERE e.alert_id = a.id AND e.kind = 'annotated'
           AND e.deleted_ms IS NULL ORDER BY e.id LIMIT 1)";

    /// Alerts matching `filter`, newest first.
    pub fn alerts(&self, filter: &AlertFilter) -> Result<Vec<AlertRow>, StoreError> {
        let mut sql = format!("SELECT {} FROM alerts a WHERE 1 = 1", Self::ALERT_COLUMNS);
        let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
        if let Some(c) = &filter.camera {
            args.push(Box::new(c.clone()));
            sql += &format!(" AND a.camera = ?{}", args.len());
        }
        if let Some(k) = &filter.kind {
            args.push(Box::new(k.clone()));
            sql += &format!(" AND a.kind = ?{}", args.len());
        }
        if let Some(s) = &filter.state {
            args.push(Box::new(s.clone()));
            sql += &format!(" AND a.state = ?{}", args.len());
        }
        if let Some(t) = filter.since_ms {
            args.push(Box::new(t));
            sql += &format!(" AND a.start_wall_ms >= ?{}", args.len());
        }
        if let Some(t) = filter.until_ms {
            args.push(Box::new(t));
            sql += &format!(" AND a.start_wall_ms < ?{}", args.len());
        }
        if let Some(t) = &filter.tag {
            args.push(Box::new(t.clone()));
            // IN, not EXISTS: SQLite then starts from the tag's index (a few
            // rows) instead of testing every alert (100 ms at 100k alerts).
            sql += &format!(
                " AND a.id IN (SELECT t.alert_id FROM tags t WHERE t.text = ?{})",
                args.len()
            );
        }
        if let Some((ms, id)) = &filter.before {
            args.push(Box::new(*ms));
            args.push(Box::new(id.clone()));
            sql += &format!(
                " AND (a.start_wall_ms, a.id) < (?{}, ?{})",
                args.len() - 1,
                args.len()
            );
        }
        sql += " ORDER BY a.start_wall_ms DESC, a.id DESC";
        if let Some(l) = filter.limit {
            sql += &format!(" LIMIT {l}");
        }
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(
                rusqlite::params_from_iter(args.iter().map(|a| a.as_ref())),
                Self::alert_from_row,
            )
            .map_err(|e| self.sql(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.sql(e))?;
        Ok(rows)
    }

    /// One alert with its events, evidence, tags and hold.
    pub fn alert(&self, id: &str) -> Result<AlertDetail, StoreError> {
        let sql = format!(
            "SELECT {} FROM alerts a WHERE a.id = ?1",
            Self::ALERT_COLUMNS
        );
        let alert = self
            .conn
            .query_row(&sql, params![id], Self::alert_from_row)
            .optional()
            .map_err(|e| self.sql(e))?
            .ok_or_else(|| StoreError::NoAlert { id: id.into() })?;
        let events = self.query(
            "SELECT payload FROM events WHERE alert_id = ?1 ORDER BY seq",
            id,
            |r| {
                let p: String = r.get(0)?;
                Ok(serde_json::from_str(&p).unwrap_or(serde_json::Value::Null))
            },
        )?;
        let evidence = self.evidence(id)?;
        let tags = self.query(
            "SELECT text, who, at_ms FROM tags WHERE alert_id = ?1 ORDER BY at_ms",
            id,
            |r| {
                Ok(Tag {
                    text: r.get(0)?,
                    who: r.get(1)?,
                    at_ms: r.get(2)?,
                })
            },
        )?;
        let hold = self
            .query(
                "SELECT who, reason, at_ms FROM holds WHERE alert_id = ?1",
                id,
                |r| {
                    Ok(Hold {
                        who: r.get(0)?,
                        reason: r.get(1)?,
                        at_ms: r.get(2)?,
                    })
                },
            )?
            .pop();
        Ok(AlertDetail {
            alert,
            events,
            evidence,
            tags,
            hold,
        })
    }

    fn query<T>(
        &self,
        sql: &str,
        id: &str,
        map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.sql(e))?;
        stmt.query_map(params![id], map)
            .map_err(|e| self.sql(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.sql(e))
    }

    fn evidence_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EvidenceFile> {
        let kind: String = r.get(0)?;
        Ok(EvidenceFile {
            kind: match kind.as_str() {
                "snapshot" => EvidenceKind::Snapshot,
                "annotated" => EvidenceKind::Annotated,
                _ => EvidenceKind::Clip,
            },
            path: r.get(1)?,
            sha256: r.get(2)?,
            bytes: r.get::<_, i64>(3)? as u64,
            created_ms: r.get::<_, i64>(4)? as u64,
            start_media_s: r.get(5)?,
            duration_s: r.get(6)?,
            deleted_ms: r.get::<_, Option<i64>>(7)?.map(|v| v as u64),
        })
    }

    /// Evidence files of one alert, in the order they were added.
    pub fn evidence(&self, alert_id: &str) -> Result<Vec<EvidenceFile>, StoreError> {
        self.query(
            "SELECT kind, path, sha256, bytes, created_ms, start_media_s, duration_s, deleted_ms
             FROM evidence WHERE alert_id = ?1 ORDER BY id",
            alert_id,
            Self::evidence_from_row,
        )
    }

    fn require_alert(&self, id: &str) -> Result<(), StoreError> {
        let found = self
            .conn
            .query_row(
                "SELECT 1 FROM alerts WHERE id = ?1",
                params![id],
                |_| Ok(()),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        found.ok_or_else(|| StoreError::NoAlert { id: id.into() })
    }

    pub fn tag(&self, id: &str, text: &str, who: &str) -> Result<(), StoreError> {
        self.require_alert(id)?;
        self.conn
            .execute(
                "INSERT INTO tags (alert_id, text, who, at_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (alert_id, text) DO NOTHING",
                params![id, text, who, now_ms() as i64],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    pub fn untag(&self, id: &str, text: &str) -> Result<bool, StoreError> {
        self.require_alert(id)?;
        let n = self
            .conn
            .execute(
                "DELETE FROM tags WHERE alert_id = ?1 AND text = ?2",
                params![id, text],
            )
            .map_err(|e| self.sql(e))?;
        Ok(n > 0)
    }

    /// Places a legal hold: retention never deletes this alert's evidence.
    pub fn hold(&self, id: &str, who: &str, reason: &str) -> Result<(), StoreError> {
        self.require_alert(id)?;
        self.conn
            .execute(
                "INSERT INTO holds (alert_id, who, reason, at_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (alert_id) DO NOTHING",
                params![id, who, reason, now_ms() as i64],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    pub fn release(&self, id: &str) -> Result<bool, StoreError> {
        self.require_alert(id)?;
        let n = self
            .conn
            .execute("DELETE FROM holds WHERE alert_id = ?1", params![id])
            .map_err(|e| self.sql(e))?;
        Ok(n > 0)
    }

    /// Bytes of evidence currently kept.
    pub fn evidence_bytes(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT COALESCE(SUM(bytes), 0) FROM evidence WHERE deleted_ms IS NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|b| b as u64)
            .map_err(|e| self.sql(e))
    }

    /// Deletes evidence past `max_age_days`, then the oldest until under
    /// `max_bytes`; never an open alert's, never a held one's. Each deletion is a
    /// manifest entry, so `verify` tells it from tampering.
    pub fn apply_retention(&mut self, now_ms: u64) -> Result<Vec<Removed>, StoreError> {
        let mut candidates: Vec<(i64, String, String, String, u64, u64)> = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT e.id, e.alert_id, e.path, e.sha256, e.bytes, e.created_ms
                     FROM evidence e JOIN alerts a ON a.id = e.alert_id
                     WHERE e.deleted_ms IS NULL AND a.state != 'open'
                       AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.alert_id = e.alert_id)
                     ORDER BY e.created_ms, e.id",
                )
                .map_err(|e| self.sql(e))?;
            stmt.query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get::<_, i64>(4)? as u64,
                    r.get::<_, i64>(5)? as u64,
                ))
            })
            .map_err(|e| self.sql(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.sql(e))?
        };
        let mut total = self.evidence_bytes()?;
        let age_limit = self
            .max_age_days
            .map(|d| now_ms.saturating_sub((d * 86_400_000.0) as u64));
        let mut removed = Vec::new();
        for (row, alert, path, sha256, bytes, created) in candidates.drain(..) {
            let why = if age_limit.is_some_and(|limit| created < limit) {
                "max_age_days"
            } else if self.max_bytes.is_some_and(|max| total > max) {
                "max_bytes"
            } else {
                continue;
            };
            let Some(writer) = self.writer.as_mut() else {
                break;
            };
            let entry = writer
                .manifest
                .append(Op::Delete, &path, &sha256, bytes, &alert, now_ms)
                .map_err(|source| StoreError::File {
                    path: self.dir.join("manifest.jsonl"),
                    source,
                })?;
            let abs = self.dir.join(&path);
            match std::fs::remove_file(&abs) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(StoreError::File { path: abs, source }),
            }
            self.conn
                .execute(
                    "UPDATE evidence SET deleted_ms = ?1 WHERE id = ?2",
                    params![now_ms as i64, row],
                )
                .map_err(|e| self.sql(e))?;
            self.set_head(entry.seq)?;
            total = total.saturating_sub(bytes);
            removed.push(Removed {
                alert,
                path,
                bytes,
                why,
            });
        }
        Ok(removed)
    }

    /// Checks evidence files against the manifest, the manifest's chain and
    /// signatures, and the store's record of its head. Returns every failure,
    /// each naming the entry or file; empty means verified. `alert` restricts the
    /// file checks to that alert (the chain is always checked whole).
    pub fn verify(
        &self,
        alert: Option<&str>,
        key: &VerifyingKey,
    ) -> Result<Verification, StoreError> {
        if let Some(id) = alert {
            self.require_alert(id)?;
        }
        let manifest_path = self.dir.join("manifest.jsonl");
        let text = match std::fs::read_to_string(&manifest_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(StoreError::File {
                    path: manifest_path,
                    source,
                });
            }
        };
        let chain = manifest::check_chain(&text, key, false);
        let mut failures = chain.failures;
        let last_seq = chain.entries.last().map(|e| e.seq).unwrap_or(0);
        let recorded: u64 = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'manifest_seq'",
                [],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if recorded > last_seq {
            failures.push(format!(
                "manifest.jsonl ends at entry {last_seq} but the store recorded entry {recorded}: entries {}..{recorded} were deleted from the end",
                last_seq + 1
            ));
        }
        let by_seq: std::collections::HashMap<u64, &manifest::Entry> =
            chain.entries.iter().map(|e| (e.seq, e)).collect();
        let rows: Vec<(String, String, String, u64, u64, Option<i64>)> = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT alert_id, path, sha256, bytes, manifest_seq, deleted_ms FROM evidence
                     WHERE ?1 IS NULL OR alert_id = ?1 ORDER BY id",
                )
                .map_err(|e| self.sql(e))?;
            stmt.query_map(params![alert], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get::<_, i64>(3)? as u64,
                    r.get::<_, i64>(4)? as u64,
                    r.get(5)?,
                ))
            })
            .map_err(|e| self.sql(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.sql(e))?
        };
        let deleted_by_manifest: std::collections::HashSet<&str> = chain
            .entries
            .iter()
            .filter(|e| e.op == Op::Delete)
            .map(|e| e.path.as_str())
            .collect();
        let mut files_ok = 0;
        for (alert_id, path, sha256, bytes, seq, deleted) in &rows {
            let Some(entry) = by_seq.get(seq).filter(|e| e.path == *path) else {
                failures.push(format!(
                    "{path} (alert {alert_id}): its manifest entry {seq} is missing: the entry was deleted"
                ));
                continue;
            };
            if entry.sha256 != *sha256 || entry.bytes != *bytes {
                failures.push(format!(
                    "{path} (alert {alert_id}): the store's hash differs from manifest entry {seq}: the database was altered"
                ));
            }
            if deleted.is_some() {
                if !deleted_by_manifest.contains(path.as_str()) {
                    failures.push(format!(
                        "{path} (alert {alert_id}): marked deleted but the manifest has no deletion entry"
                    ));
                }
                continue;
            }
            let abs = self.dir.join(path);
            match manifest::hash_file(&abs) {
                Ok((actual, actual_bytes)) => {
                    if actual != entry.sha256 {
                        failures.push(format!(
                            "{path} (alert {alert_id}): content changed: sha256 {actual} ({actual_bytes} bytes), manifest entry {seq} says {} ({} bytes)",
                            entry.sha256, entry.bytes
                        ));
                    } else {
                        files_ok += 1;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if deleted_by_manifest.contains(path.as_str()) {
                        continue;
                    }
                    failures.push(format!(
                        "{path} (alert {alert_id}): file is missing, and no retention deletion is recorded"
                    ));
                }
                Err(e) => failures.push(format!("{path} (alert {alert_id}): cannot read: {e}")),
            }
        }
        Ok(Verification {
            entries: chain.entries.len(),
            files_ok,
            failures,
        })
    }

    /// Writes one alert's evidence bundle (zip) for the police.
    pub fn export(&self, id: &str, out: &Path) -> Result<usize, StoreError> {
        let detail = self.alert(id)?;
        let key = self.public_key()?;
        bundle::write(self, &detail, &key, out)
    }

    /// The manifest's lines for one alert's files, exactly as stored.
    fn manifest_lines_for(&self, alert: &str) -> Result<Vec<String>, StoreError> {
        let path = self.dir.join("manifest.jsonl");
        let text = std::fs::read_to_string(&path).map_err(|source| StoreError::File {
            path: path.clone(),
            source,
        })?;
        Ok(text
            .lines()
            .filter(|l| serde_json::from_str::<manifest::Entry>(l).is_ok_and(|e| e.alert == alert))
            .map(String::from)
            .collect())
    }
}

fn upsert_alert(conn: &Connection, a: &Alert) -> rusqlite::Result<usize> {
    let text = |v: serde_json::Value| v.as_str().map(String::from);
    conn.execute(
        "INSERT INTO alerts (id, camera, kind, rule, severity, zone, line, direction, label, score, box,
            track_id, start_media_s, start_wall_ms, end_media_s, end_wall_ms, recipients, summary, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)
         ON CONFLICT (id) DO UPDATE SET score = excluded.score, box = excluded.box,
            end_media_s = excluded.end_media_s, end_wall_ms = excluded.end_wall_ms,
            summary = excluded.summary, state = excluded.state",
        params![
            a.id,
            &*a.camera,
            a.kind.as_str(),
            &*a.rule,
            serde_json::to_value(a.severity).ok().and_then(text),
            a.zone.as_deref(),
            a.line.as_deref(),
            a.direction.and_then(|d| serde_json::to_value(d).ok()).and_then(text),
            &*a.label,
            a.score as f64,
            serde_json::to_string(&a.bbox).unwrap_or_default(),
            a.track_id.map(|t| t as i64),
            a.start.media_s.as_secs_f64(),
            a.start.wall_ms as i64,
            a.end.map(|e| e.media_s.as_secs_f64()),
            a.end.map(|e| e.wall_ms as i64),
            serde_json::to_string(&*a.recipients).unwrap_or_default(),
            a.summary,
            if a.end.is_some() { "ended" } else { "open" },
        ],
    )
}

/// The outcome of `verify`.
#[derive(Debug, Default)]
pub struct Verification {
    pub entries: usize,
    pub files_ok: usize,
    pub failures: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventSink, NewAlert, RuleKind};
    use crate::time::{MediaTime, Timestamp, WallTime};
    use std::sync::Arc;

    fn events(camera: &str) -> (Event, Event) {
        let mut sink = EventSink::new(Arc::from(camera), 1);
        let at = |s: f64| Timestamp::new(MediaTime::from_secs_f64(s), WallTime::now());
        let alert = sink.open(
            NewAlert {
                kind: RuleKind::Loitering,
                rule: "r".into(),
                recipients: vec!["patrol".to_string()].into(),
                zone: Some("z".into()),
                line: None,
                direction: None,
                label: "person".into(),
                score: 0.8,
                bbox: [0.1, 0.1, 0.2, 0.3],
                track_id: Some(3),
                summary: "person #3 stayed".into(),
            },
            at(20.0),
        );
        sink.close(alert, at(30.0));
        let mut e = sink.events.drain(..);
        (e.next().unwrap(), e.next().unwrap())
    }

    fn store(dir: &Path, max_bytes: Option<u64>) -> Store {
        let config = StorageConfig {
            dir: dir.join("data"),
            max_bytes,
            ..StorageConfig::default()
        };
        Store::open_writer(&config, dir).unwrap()
    }

    fn add_file(store: &mut Store, alert: &str, name: &str, bytes: usize) {
        let rel = format!("evidence/{name}");
        std::fs::write(store.dir().join(&rel), vec![b'x'; bytes]).unwrap();
        store
            .add_evidence(alert, EvidenceKind::Snapshot, &rel, None)
            .unwrap();
    }

    #[test]
    fn survives_reopen_marks_stale_alerts_and_second_writer_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (new, end) = events("cam");
        let id = new.alert().id.clone();
        {
            let mut s = store(tmp.path(), None);
            s.record_event(&new, "{}", &[], 10).unwrap();
            add_file(&mut s, &id, "a.jpg", 10);
            s.tag(&id, "bike", "officer").unwrap();
            let config = StorageConfig {
                dir: tmp.path().join("data"),
                ..StorageConfig::default()
            };
            let err = Store::open_writer(&config, tmp.path()).err().unwrap();
            assert!(
                err.to_string().contains("in use by another vigil process"),
                "{err}"
            );
            s.record_event(&end, "{}", &[], 10).unwrap();
        }
        let (left_open, _) = events("other");
        store(tmp.path(), None)
            .record_event(&left_open, "{}", &[], 10)
            .unwrap();
        let s = store(tmp.path(), None);
        let d = s.alert(&id).unwrap();
        assert_eq!(d.alert.state, "ended");
        let stale = s.alert(&left_open.alert().id).unwrap();
        assert_eq!(
            stale.alert.state, "interrupted",
            "left open by a stopped run"
        );
        assert_eq!(d.tags[0].text, "bike");
        assert_eq!(d.evidence.len(), 1);
        assert_eq!(d.events.len(), 2);
        let listed = s
            .alerts(&AlertFilter {
                tag: Some("bike".into()),
                ..AlertFilter::default()
            })
            .unwrap();
        assert_eq!(listed.len(), 1);
        let v = s.verify(None, &s.public_key().unwrap()).unwrap();
        assert!(v.failures.is_empty(), "{:?}", v.failures);
    }

    #[test]
    fn feed_follows_events_and_acks_once_each_and_pages_by_keyset() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = store(tmp.path(), None);
        let mut ids = Vec::new();
        for cam in ["a", "b", "c"] {
            let (new, end) = events(cam);
            s.record_event(&new, "{}", &[], 10).unwrap();
            s.record_event(&end, "{}", &[], 10).unwrap();
            ids.push(new.alert().id.clone());
        }
        let head = s.feed_head().unwrap();
        assert_eq!(head, FeedCursor { event: 6, ack: 0 });
        // From the start: each alert once, in the order of its latest change.
        let (changed, next) = s.feed_after(FeedCursor::default(), 100).unwrap();
        assert_eq!(changed, ids);
        assert_eq!(next, head);
        assert!(s.feed_after(head, 100).unwrap().0.is_empty());
        // Read two at a time: nothing skipped, nothing twice.
        let (first, mid) = s.feed_after(FeedCursor::default(), 3).unwrap();
        let (rest, end) = s.feed_after(mid, 3).unwrap();
        assert_eq!(end, head);
        assert_eq!(first.len() + rest.len(), 4, "{first:?} {rest:?}"); // b spans both reads

        let ack = |action, who: &str| Ack {
            action,
            who: who.into(),
            note: "on it".into(),
            at_ms: 5,
        };
        let announce = |camera: &str| {
            vec![OutboxMessage {
                topic: format!("vigil/alerts/acks/{camera}"),
                payload: b"{}".to_vec(),
                retain: false,
                priority: Priority::Warning,
                captured_us: None,
            }]
        };
        s.acknowledge(&ids[1], &ack(AckAction::Ack, "wang"), announce, 10)
            .unwrap();
        let (changed, after_ack) = s.feed_after(head, 100).unwrap();
        assert_eq!(changed, vec![ids[1].clone()]);
        assert_eq!(after_ack, FeedCursor { event: 6, ack: 1 });
        let row = &s.alerts_by_id(&ids[1..2]).unwrap()[0];
        assert_eq!(row.ack.as_ref().unwrap().who, "wang");
        let queued = Outbox::open(s.db_path()).unwrap().after(0, 10).unwrap();
        assert_eq!(
            queued[0].topic, "vigil/alerts/acks/b",
            "ack queued with the row"
        );
        assert!(matches!(
            s.acknowledge("nope", &ack(AckAction::Ack, "wang"), announce, 10),
            Err(StoreError::NoAlert { .. })
        ));

        // Resolved alerts leave the wall; acknowledged ones stay.
        assert_eq!(s.unresolved(10).unwrap().len(), 3);
        s.acknowledge(&ids[0], &ack(AckAction::Resolve, "li"), |_| Vec::new(), 10)
            .unwrap();
        let wall: Vec<String> = s
            .unresolved(10)
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect();
        assert!(!wall.contains(&ids[0]) && wall.contains(&ids[1]));
        assert_eq!(s.acks(&ids[0]).unwrap()[0].action, AckAction::Resolve);

        // Keyset pages: newest first, each alert on exactly one page.
        let page = |before| {
            s.alerts(&AlertFilter {
                limit: Some(2),
                before,
                ..AlertFilter::default()
            })
            .unwrap()
        };
        let one = page(None);
        let last = one.last().unwrap();
        let two = page(Some((last.start_wall_ms, last.id.clone())));
        let mut all: Vec<String> = one.iter().chain(&two).map(|a| a.id.clone()).collect();
        assert_eq!(all.len(), 3);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 3);

        // The chain of custody, deduplicated on request.
        s.log_access("li", "file", Some(&ids[2]), "evidence/c/x.jpg")
            .unwrap();
        assert!(
            s.accessed_since("li", "file", "evidence/c/x.jpg", 0)
                .unwrap()
        );
        assert!(
            !s.accessed_since("wang", "file", "evidence/c/x.jpg", 0)
                .unwrap()
        );
        assert_eq!(s.access_log(&ids[2]).unwrap()[0].who, "li");
    }

    #[test]
    fn retention_keeps_open_and_held_alerts_and_verify_still_passes() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = store(tmp.path(), Some(25));
        let mut ids = Vec::new();
        for cam in ["a", "b", "c"] {
            let (new, end) = events(cam);
            s.record_event(&new, "{}", &[], 10).unwrap();
            s.record_event(&end, "{}", &[], 10).unwrap();
            let id = new.alert().id.clone();
            add_file(&mut s, &id, &format!("{cam}.jpg"), 10);
            ids.push(id);
        }
        let (open, _) = events("d");
        s.record_event(&open, "{}", &[], 10).unwrap();
        add_file(&mut s, &open.alert().id, "d.jpg", 10);
        s.hold(&ids[0], "officer", "case 12").unwrap();
        let removed = s.apply_retention(now_ms()).unwrap();
        // 40 bytes kept, limit 25: the oldest unheld ended alert's file goes (b),
        // then c; a is held and d is open.
        let gone: Vec<&str> = removed.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(gone, ["evidence/b.jpg", "evidence/c.jpg"]);
        assert!(s.dir().join("evidence/a.jpg").exists());
        assert!(s.dir().join("evidence/d.jpg").exists());
        let v = s.verify(None, &s.public_key().unwrap()).unwrap();
        assert!(v.failures.is_empty(), "{:?}", v.failures);

        std::fs::remove_file(s.dir().join("evidence/a.jpg")).unwrap();
        let v = s.verify(None, &s.public_key().unwrap()).unwrap();
        assert!(v.failures[0].contains("evidence/a.jpg"), "{:?}", v.failures);
        assert!(v.failures[0].contains("missing"), "{:?}", v.failures);
    }
}
