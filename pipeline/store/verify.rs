//! Verification: every evidence file against its manifest entry, the manifest's
//! hash chain and signatures, and the head the database recorded. Each failure
//! names the file or entry, so the police know exactly what cannot be trusted.

use super::manifest::{self, Op};
use super::{Store, StoreError};
use ed25519_dalek::VerifyingKey;
use rusqlite::{OptionalExtension, params};

/// The outcome of `verify`.
#[derive(Debug, Default)]
pub struct Verification {
    pub entries: usize,
    pub files_ok: usize,
    pub failures: Vec<String>,
    /// What is missing for a known reason and is not a failure: alerts a
    /// killed vigil left without their clip.
    pub notes: Vec<String>,
}

impl Store {
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
        if alert.is_none() {
            // The other way round: every file the manifest added (and did not
            // delete) must be known to the database. A deleted or replaced
            // vigil.db loses its records while the manifest keeps them.
            let known: std::collections::HashSet<&str> =
                rows.iter().map(|r| r.1.as_str()).collect();
            let unknown: Vec<&manifest::Entry> = chain
                .entries
                .iter()
                .filter(|e| e.op == Op::Add)
                .filter(|e| !known.contains(e.path.as_str()))
                .filter(|e| !deleted_by_manifest.contains(e.path.as_str()))
                .collect();
            for e in unknown.iter().take(20) {
                failures.push(format!(
                    "{} (manifest entry {}): unknown to the database: vigil.db was deleted or replaced, and its alerts, events and this file's record are lost",
                    e.path, e.seq
                ));
            }
            if unknown.len() > 20 {
                failures.push(format!(
                    "... and {} more files the manifest lists and the database does not know",
                    unknown.len() - 20
                ));
            }
        }
        // A vigil killed mid-clip leaves the alert `interrupted` and its
        // half-written clip deleted at the next start: nothing was tampered
        // with, but the police must know exactly which clip never existed.
        let notes = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT a.id, a.camera FROM alerts a WHERE a.state = 'interrupted'
                       AND (?1 IS NULL OR a.id = ?1)
                       AND NOT EXISTS (SELECT 1 FROM evidence e WHERE e.alert_id = a.id AND e.kind = 'clip')
                     ORDER BY a.start_wall_ms",
                )
                .map_err(|e| self.sql(e))?;
            stmt.query_map(params![alert], |r| {
                Ok(format!(
                    "alert {} (camera {}): no clip: vigil was stopped without ending the alert (interrupted) before its clip was complete; the partial clip was deleted",
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?
                ))
            })
            .map_err(|e| self.sql(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.sql(e))?
        };
        Ok(Verification {
            entries: chain.entries.len(),
            files_ok,
            failures,
            notes,
        })
    }
}
