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
//! # Schema (version 8, see `schema.rs`)
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
//! - `review_changes` (version 7): the id of every alert whose tags or hold
//!   changed, in order, written by triggers: what a compound's alert index follows.
//!   Since version 8 evidence added or deleted, a custody line and an escalation
//!   leave it too, so the index copies an alert's whole record.
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
//!
//! # Where each concern lives
//!
//! This file is the public face: `[storage]`, the errors, opening and locking.
//! The SQL sits with the code that uses it, one file per concern:
//! `alerts.rs` (alerts and events), `files.rs` (evidence files and their manifest
//! entries), `review.rs` (tags, holds, acknowledgements, the live feed),
//! `access.rs` (the chain of custody), `record.rs` (an alert's whole record, as
//! its page shows it and a compound's index copies it), `sessions.rs` (console logins), `space.rs` (keeping the database writable on a full disk), `retention.rs`, `verify.rs`, `bundle.rs`
//! (export and bundle checks), `outbox.rs` (MQTT messages awaiting the broker),
//! `manifest.rs` (the signed hash chain), `schema.rs` (migrations).

mod access;
mod alerts;
mod bundle;
mod files;
pub mod manifest;
pub mod outbox;
mod record;
mod retention;
mod review;
mod schema;
mod sessions;
mod space;
#[cfg(test)]
mod tests;
mod verify;

pub use access::Access;
pub use alerts::{AlertDetail, AlertFilter, AlertRow, InterruptedEnd};
pub use bundle::{ExportRequest, verify_bundle};
pub use files::{EvidenceFile, EvidenceKind};
pub use manifest::{generate_key, parse_public, public_hex, read_key};
pub use outbox::{Outbox, OutboxError, OutboxMessage, Priority};
pub use record::{AlertRecord, StoredEvent};
pub use retention::Removed;
pub use review::{
    Ack, AckAction, ChangeCursor, FeedCursor, Handled, Hold, Outcome, ShiftSummary, Tag,
};
pub use sessions::{StoredSession, token_key};
pub use space::{MIN_FREE_FOR_EVIDENCE, RESERVE_BYTES};
pub use verify::Verification;

use ed25519_dalek::VerifyingKey;
use manifest::ManifestWriter;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Deserialize;
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
    #[error("alert {id:?} is already {what}")]
    AlreadyDone { id: String, what: &'static str },
    #[error("bundle {path}: {reason}")]
    Bundle { path: PathBuf, reason: String },
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
    /// `end` events for alerts a killed run left open, not yet announced.
    interrupted: Vec<alerts::InterruptedEnd>,
    /// The database file's (device, inode) when opened.
    db_identity: Option<(u64, u64)>,
}

fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
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
        if !dir.join("vigil.db").exists() && manifest.entries() > 0 {
            tracing::error!(
                "store {}: vigil.db is missing but manifest.jsonl lists {} entries: the database was deleted or moved, with its alerts and events; a new, empty one is created now, and `vigil evidence verify` lists the files it no longer knows. Restore vigil.db from a backup if there is one.",
                dir.display(),
                manifest.entries()
            );
        }
        let mut store = Self::connect(&dir, config)?;
        store.writer = Some(Writer {
            manifest,
            _lock: lock,
        });
        // We hold the lock: an alert still open was left by a vigil that stopped
        // without ending it (a crash, a kill). It can never end now; its `end`
        // goes out when the evidence stage starts.
        store.interrupted = store.interrupt_open_alerts()?;
        if !store.interrupted.is_empty() {
            tracing::warn!(
                "store {}: {} alert(s) left open by the previous run marked interrupted",
                dir.display(),
                store.interrupted.len()
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
        let db_identity = file_identity(&db_path);
        Ok(Store {
            conn,
            dir: dir.into(),
            db_identity,
            db_path,
            writer: None,
            max_age_days: config.max_age_days,
            max_bytes: config.max_bytes,
            interrupted: Vec::new(),
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

    /// False once `vigil.db` was deleted or replaced under the running store:
    /// SQLite then writes to a file nobody can open again, lost at exit.
    pub fn db_in_place(&self) -> bool {
        self.db_identity.is_none() || file_identity(&self.db_path) == self.db_identity
    }

    /// The SQLite file (the publisher opens its own connection to the outbox).
    pub fn db_path(&self) -> &Path {
        &self.db_path
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

    /// Whether this store has alert `id` (a compound's console forwards the
    /// others).
    pub fn has_alert(&self, id: &str) -> Result<bool, StoreError> {
        match self.require_alert(id) {
            Ok(()) => Ok(true),
            Err(StoreError::NoAlert { .. }) => Ok(false),
            Err(e) => Err(e),
        }
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
}
