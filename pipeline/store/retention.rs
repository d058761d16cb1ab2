//! Retention: evidence past `max_age_days`, then the oldest past `max_bytes`, is
//! deleted; never an open alert's and never a held one's. Each deletion is a
//! signed manifest entry, so `verify` tells retention from tampering.

use super::manifest::Op;
use super::{Store, StoreError};
use rusqlite::params;

/// A file retention removed.
#[derive(Debug, Clone)]
pub struct Removed {
    pub alert: String,
    pub path: String,
    pub bytes: u64,
    pub why: &'static str,
}

impl Store {
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
}
