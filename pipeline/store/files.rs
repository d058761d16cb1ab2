//! Evidence files: where each alert's snapshots and clips go, and how a written
//! file becomes evidence: hashed, entered in the signed manifest, then recorded.
//! A row is committed only after its manifest entry, so the database never
//! vouches for a file the manifest does not.

use super::manifest::{self, Op};
use super::{Store, StoreError};
use crate::time::now_ms;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    Snapshot,
    Annotated,
    Clip,
}

impl EvidenceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::Snapshot => "snapshot",
            EvidenceKind::Annotated => "annotated",
            EvidenceKind::Clip => "clip",
        }
    }

    pub fn parse(s: &str) -> Option<EvidenceKind> {
        [
            EvidenceKind::Snapshot,
            EvidenceKind::Annotated,
            EvidenceKind::Clip,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
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

/// Files a writer leaves only while it works on them: `<file>.part` (renamed
/// into place when complete), the muxer's `<clip>.part.mdat` scratch file and
/// the open clip's `<clip>.sofar.mp4` copy.
fn is_partial(name: &str) -> bool {
    name.ends_with(".part") || name.ends_with(".part.mdat") || name.ends_with(".sofar.mp4")
}

impl Store {
    /// Deletes what writers left half done when the previous run was killed
    /// (the store's lock says no writer is running now): (files, bytes). No
    /// row or manifest entry names these files; only complete files get one.
    pub fn remove_partial_files(&self) -> (usize, u64) {
        fn walk(dir: &std::path::Path, removed: &mut (usize, u64)) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    walk(&path, removed);
                } else if kind.is_file() && entry.file_name().to_str().is_some_and(is_partial) {
                    let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
                    if std::fs::remove_file(&path).is_ok() {
                        tracing::warn!(
                            "store: deleted {} ({bytes} bytes), left unfinished by an earlier run",
                            path.display()
                        );
                        removed.0 += 1;
                        removed.1 += bytes;
                    }
                }
            }
        }
        let mut removed = (0, 0);
        walk(&self.dir().join("evidence"), &mut removed);
        removed
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

    /// The open alert's recording so far (a fragmented copy of the clip being
    /// written, the latest segment's): (relative, absolute); `None` once the
    /// clip is complete, or when nothing is being recorded.
    pub fn recording_so_far(
        &self,
        camera: &str,
        alert_id: &str,
        start_wall_ms: i64,
    ) -> Option<(String, PathBuf)> {
        let (rel, abs) = self.evidence_base(camera, alert_id, start_wall_ms.max(0) as u64);
        let dir = abs.parent()?;
        let prefix = format!("{alert_id}-clip");
        let newest = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| name.starts_with(&prefix) && name.ends_with(".sofar.mp4"))
            // `-clip.mp4…` sorts before `-clip-2.mp4…`: the latest segment is the longest name, then the greatest.
            .max_by(|a, b| a.len().cmp(&b.len()).then(a.cmp(b)))?;
        let rel_dir = rel.rsplit_once('/').map(|(d, _)| d)?;
        Some((format!("{rel_dir}/{newest}"), dir.join(&newest)))
    }

    /// True when evidence exceeds `max_bytes`.
    pub fn over_max_bytes(&self) -> bool {
        self.max_bytes
            .is_some_and(|max| self.evidence_bytes().is_ok_and(|b| b > max))
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

    pub(super) fn set_head(&self, seq: u64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES ('manifest_seq', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![seq.to_string()],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    fn evidence_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EvidenceFile> {
        let kind: String = r.get(0)?;
        Ok(EvidenceFile {
            kind: EvidenceKind::parse(&kind).unwrap_or(EvidenceKind::Clip),
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

    /// The kind of the evidence file at `rel_path` and its alert, if the store
    /// has it: the console serves nothing else.
    pub fn evidence_owner(&self, rel_path: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT alert_id FROM evidence WHERE path = ?1 AND deleted_ms IS NULL",
                params![rel_path],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))
    }
}
