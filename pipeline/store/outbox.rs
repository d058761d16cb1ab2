//! Outbox: every MQTT message vigil sends waits in the store until the broker
//! acknowledges it.
//!
//! A message is written here in the same transaction that records the state it
//! announces (an event with its alert, a camera's new status), and deleted only
//! on the broker's PUBACK. A dead broker, a network partition, Ctrl-C or SIGKILL
//! therefore never loses a message: the publisher drains what is left, oldest
//! first, on the next connection or the next start. A message may be delivered
//! twice (sent, then the connection dropped before its PUBACK); it carries the
//! same `event_id` both times so subscribers can drop the copy.
//!
//! The outbox is capped. Over the cap the oldest messages of the lowest priority
//! go first; fire and smoke ([`Priority::Critical`]) are never dropped.

use rusqlite::{Connection, params};
use std::path::{Path, PathBuf};

/// Which messages give way first when the outbox is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// Camera status: the retained topic holds the newest anyway.
    Status = 0,
    Warning = 1,
    High = 2,
    /// Fire and smoke: never dropped.
    Critical = 3,
}

impl From<crate::events::Severity> for Priority {
    fn from(s: crate::events::Severity) -> Self {
        match s {
            crate::events::Severity::Warning => Priority::Warning,
            crate::events::Severity::High => Priority::High,
            crate::events::Severity::Critical => Priority::Critical,
        }
    }
}

/// One message to send at QoS 1.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    pub priority: Priority,
    /// Wall clock (µs since the Unix epoch) when the frame behind it was
    /// captured: alert latency runs from here to the PUBACK, across restarts.
    pub captured_us: Option<i64>,
}

/// A queued message as the publisher reads it back.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    pub seq: i64,
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    pub captured_us: Option<i64>,
}

/// Appends `messages` (inside the caller's transaction), then trims to `cap`.
/// Returns how many older messages were dropped to make room.
pub(crate) fn enqueue(
    conn: &Connection,
    messages: &[OutboxMessage],
    cap: usize,
) -> rusqlite::Result<usize> {
    let now = crate::time::now_ms() as i64;
    let mut insert = conn.prepare_cached(
        "INSERT INTO outbox (topic, payload, retain, priority, created_ms, captured_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for m in messages {
        insert.execute(params![
            m.topic,
            m.payload,
            m.retain,
            m.priority as i64,
            now,
            m.captured_us
        ])?;
    }
    let count: i64 = conn.query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))?;
    let excess = count - cap as i64;
    if excess <= 0 {
        return Ok(0);
    }
    conn.execute(
        "DELETE FROM outbox WHERE seq IN (
             SELECT seq FROM outbox WHERE priority < ?1 ORDER BY priority, seq LIMIT ?2)",
        params![Priority::Critical as i64, excess],
    )
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox {path}")]
    Sql {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("outbox {path}")]
    Schema {
        path: PathBuf,
        #[source]
        source: super::schema::MigrationError,
    },
}

/// A connection of its own to the outbox, for the publisher thread (and, when
/// the evidence store is disabled, a private temporary database).
pub struct Outbox {
    conn: Connection,
    path: PathBuf,
    /// Deleted on drop: a temporary outbox (no store) is not kept.
    temporary: bool,
}

impl Outbox {
    /// The outbox inside an existing store database.
    pub fn open(db_path: &Path) -> Result<Outbox, OutboxError> {
        Self::connect(db_path, false)
    }

    /// An outbox for runs without a store: it survives a broker outage but not
    /// a restart.
    pub fn temporary() -> Result<Outbox, OutboxError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path =
            std::env::temp_dir().join(format!("vigil-outbox-{}-{nanos}.db", std::process::id()));
        Self::connect(&path, true)
    }

    fn connect(path: &Path, temporary: bool) -> Result<Outbox, OutboxError> {
        let err = |source| OutboxError::Sql {
            path: path.into(),
            source,
        };
        let mut conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        super::schema::migrate(&mut conn).map_err(|source| OutboxError::Schema {
            path: path.into(),
            source,
        })?;
        Ok(Outbox {
            conn,
            path: path.into(),
            temporary,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> OutboxError {
        OutboxError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    /// Queues messages in one transaction; returns how many old ones were dropped.
    pub fn enqueue(
        &mut self,
        messages: &[OutboxMessage],
        cap: usize,
    ) -> Result<usize, OutboxError> {
        let path = &self.path;
        let err = |source| OutboxError::Sql {
            path: path.clone(),
            source,
        };
        let (conn, store_dir) = (&mut self.conn, store_dir(path, self.temporary));
        with_space(store_dir, || {
            let tx = conn.transaction()?;
            let dropped = enqueue(&tx, messages, cap)?;
            tx.commit()?;
            Ok(dropped)
        })
        .map_err(err)
    }

    /// Up to `limit` queued messages after `seq`, oldest first.
    pub fn after(&self, seq: i64, limit: usize) -> Result<Vec<Queued>, OutboxError> {
        let read = || -> rusqlite::Result<Vec<Queued>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT seq, topic, payload, retain, captured_us FROM outbox
                 WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            stmt.query_map(params![seq, limit as i64], |r| {
                Ok(Queued {
                    seq: r.get(0)?,
                    topic: r.get(1)?,
                    payload: r.get(2)?,
                    retain: r.get(3)?,
                    captured_us: r.get(4)?,
                })
            })?
            .collect()
        };
        read().map_err(|e| self.err(e))
    }

    /// The broker acknowledged `seq`.
    pub fn remove(&self, seq: i64) -> Result<(), OutboxError> {
        with_space(store_dir(&self.path, self.temporary), || {
            self.conn
                .prepare_cached("DELETE FROM outbox WHERE seq = ?1")
                .and_then(|mut s| s.execute([seq]))
                .map(|_| ())
        })
        .map_err(|e| self.err(e))
    }

    /// Messages still waiting for the broker.
    pub fn len(&self) -> Result<usize, OutboxError> {
        self.conn
            .query_row("SELECT count(*) FROM outbox", [], |r| r.get::<_, i64>(0))
            .map(|n| n as usize)
            .map_err(|e| self.err(e))
    }

    pub fn is_empty(&self) -> Result<bool, OutboxError> {
        self.len().map(|n| n == 0)
    }
}

/// The store directory holding the database, whose space reserve this
/// connection may release; none for a temporary outbox.
fn store_dir(db_path: &Path, temporary: bool) -> Option<&Path> {
    (!temporary).then(|| db_path.parent()).flatten()
}

/// Runs a write; when the disk is full, releases the store's reserve once and
/// tries again (see [`super::space`]).
fn with_space<T>(
    store_dir: Option<&Path>,
    mut write: impl FnMut() -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    match write() {
        Err(e)
            if super::space::is_sql_disk_full(&e)
                && store_dir.is_some_and(super::space::release_reserve) =>
        {
            write()
        }
        other => other,
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if self.temporary {
            for suffix in ["", "-wal", "-shm"] {
                let mut p = self.path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(topic: &str, priority: Priority) -> OutboxMessage {
        OutboxMessage {
            topic: topic.into(),
            payload: topic.as_bytes().to_vec(),
            retain: false,
            priority,
            captured_us: None,
        }
    }

    #[test]
    fn messages_come_back_in_order_until_acknowledged() {
        let mut outbox = Outbox::temporary().unwrap();
        outbox
            .enqueue(
                &[msg("a", Priority::Warning), msg("b", Priority::High)],
                100,
            )
            .unwrap();
        outbox.enqueue(&[msg("c", Priority::Status)], 100).unwrap();
        let all = outbox.after(0, 10).unwrap();
        let topics: Vec<_> = all.iter().map(|q| q.topic.as_str()).collect();
        assert_eq!(topics, ["a", "b", "c"]);
        outbox.remove(all[1].seq).unwrap();
        let rest: Vec<_> = outbox
            .after(0, 10)
            .unwrap()
            .into_iter()
            .map(|q| q.topic)
            .collect();
        assert_eq!(rest, ["a", "c"]);
        assert_eq!(outbox.after(all[0].seq, 1).unwrap()[0].topic, "c");
        assert_eq!(outbox.len().unwrap(), 2);
    }

    #[test]
    fn over_the_cap_low_priority_goes_first_and_fire_never() {
        let mut outbox = Outbox::temporary().unwrap();
        let cap = 3;
        for m in [
            msg("fire-1", Priority::Critical),
            msg("loiter-1", Priority::Warning),
            msg("cart-1", Priority::High),
            msg("status-1", Priority::Status),
        ] {
            outbox.enqueue(&[m], cap).unwrap();
        }
        let topics = |o: &Outbox| -> Vec<String> {
            o.after(0, 100)
                .unwrap()
                .into_iter()
                .map(|q| q.topic)
                .collect()
        };
        assert_eq!(topics(&outbox), ["fire-1", "loiter-1", "cart-1"]);
        let dropped = outbox
            .enqueue(
                &[
                    msg("fire-2", Priority::Critical),
                    msg("fire-3", Priority::Critical),
                ],
                cap,
            )
            .unwrap();
        assert_eq!(dropped, 2);
        assert_eq!(topics(&outbox), ["fire-1", "fire-2", "fire-3"]);
        // Only fire left: the cap gives way rather than drop one.
        assert_eq!(
            outbox
                .enqueue(&[msg("fire-4", Priority::Critical)], cap)
                .unwrap(),
            0
        );
        assert_eq!(outbox.len().unwrap(), 4);
    }

    #[test]
    fn a_temporary_outbox_leaves_no_file() {
        let outbox = Outbox::temporary().unwrap();
        let path = outbox.path().to_path_buf();
        assert!(path.exists());
        drop(outbox);
        assert!(!path.exists());
    }
}
