//! Review: what the console writes and reads beyond the alerts themselves.
//!
//! Acknowledgements (`acks`) and the chain of custody (`access_log`) live in the
//! same database as the evidence they concern, so a bundle, a search and an
//! audit all see one history. The live feed is the store's own sequences: the
//! `events` table's `seq` and the `acks` table's `seq` together form a
//! [`FeedCursor`], so a browser that reconnects asks for everything after the
//! cursor it last saw, and no alert is shown twice or missed.

use super::{OutboxMessage, Store, StoreError, now_ms, outbox};
use rusqlite::params;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckAction {
    /// Someone is on it.
    Ack,
    /// Closed: handled, or a false alarm (the note says which).
    Resolve,
}

impl AckAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AckAction::Ack => "ack",
            AckAction::Resolve => "resolve",
        }
    }
}

/// One acknowledgement or resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub action: AckAction,
    pub who: String,
    pub note: String,
    pub at_ms: i64,
}

/// One line of the chain of custody.
#[derive(Debug, Clone, Serialize)]
pub struct Access {
    pub at_ms: i64,
    pub who: String,
    /// `view`, `export`, `file`, `verify`, `tag`, `hold`...
    pub action: String,
    pub detail: String,
}

/// Where a live feed has got to: the last alert event and the last ack seen.
/// Written `<event>-<ack>` as the SSE id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedCursor {
    pub event: i64,
    pub ack: i64,
}

impl std::fmt::Display for FeedCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.event, self.ack)
    }
}

impl std::str::FromStr for FeedCursor {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (e, a) = s.trim().split_once('-').ok_or(())?;
        Ok(FeedCursor {
            event: e.parse().map_err(|_| ())?,
            ack: a.parse().map_err(|_| ())?,
        })
    }
}

impl Store {
    /// Records an acknowledgement and queues its MQTT message in one transaction.
    pub fn acknowledge(
        &mut self,
        id: &str,
        ack: &Ack,
        announce: impl FnOnce(&str) -> Vec<OutboxMessage>,
        cap: usize,
    ) -> Result<(), StoreError> {
        self.require_alert(id)?;
        let db_path = self.db_path.clone();
        let sql = |source| StoreError::Sql {
            path: db_path.clone(),
            source,
        };
        let camera: String = self
            .conn
            .query_row(
                "SELECT camera FROM alerts WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .map_err(sql)?;
        let tx = self.conn.transaction().map_err(sql)?;
        tx.execute(
            "INSERT INTO acks (alert_id, action, who, note, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, ack.action.as_str(), ack.who, ack.note, ack.at_ms],
        )
        .map_err(sql)?;
        outbox::enqueue(&tx, &announce(&camera), cap).map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(())
    }

    /// Every acknowledgement of one alert, oldest first.
    pub fn acks(&self, id: &str) -> Result<Vec<Ack>, StoreError> {
        self.query(
            "SELECT action, who, note, at_ms FROM acks WHERE alert_id = ?1 ORDER BY seq",
            id,
            |r| {
                let action: String = r.get(0)?;
                Ok(Ack {
                    action: if action == "resolve" {
                        AckAction::Resolve
                    } else {
                        AckAction::Ack
                    },
                    who: r.get(1)?,
                    note: r.get(2)?,
                    at_ms: r.get(3)?,
                })
            },
        )
    }

    /// Adds a line to the chain of custody.
    pub fn log_access(
        &self,
        who: &str,
        action: &str,
        alert_id: Option<&str>,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO access_log (at_ms, who, action, alert_id, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![now_ms() as i64, who, action, alert_id, detail],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// True when `who` did `action` on `detail` since `since_ms` (so a video's
    /// range requests are logged once, not once per chunk).
    pub fn accessed_since(
        &self,
        who: &str,
        action: &str,
        detail: &str,
        since_ms: i64,
    ) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM access_log WHERE who = ?1 AND action = ?2 AND detail = ?3 AND at_ms >= ?4)",
                params![who, action, detail, since_ms],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))
    }

    /// The chain of custody of one alert, oldest first.
    pub fn access_log(&self, id: &str) -> Result<Vec<Access>, StoreError> {
        self.query(
            "SELECT at_ms, who, action, detail FROM access_log WHERE alert_id = ?1 ORDER BY seq",
            id,
            |r| {
                Ok(Access {
                    at_ms: r.get(0)?,
                    who: r.get(1)?,
                    action: r.get(2)?,
                    detail: r.get(3)?,
                })
            },
        )
    }

    /// The alert's events as (type, wall ms), in order.
    pub fn timeline(&self, id: &str) -> Result<Vec<(String, i64)>, StoreError> {
        self.query(
            "SELECT type, wall_ms FROM events WHERE alert_id = ?1 ORDER BY seq",
            id,
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// The newest position of the feed.
    pub fn feed_head(&self) -> Result<FeedCursor, StoreError> {
        self.conn
            .query_row(
                "SELECT (SELECT COALESCE(MAX(seq), 0) FROM events), (SELECT COALESCE(MAX(seq), 0) FROM acks)",
                [],
                |r| {
                    Ok(FeedCursor {
                        event: r.get(0)?,
                        ack: r.get(1)?,
                    })
                },
            )
            .map_err(|e| self.sql(e))
    }

    /// Alerts that changed after `cursor` (an event or an ack), each once, in
    /// the order of their latest change, and the cursor after them. At most
    /// `limit` changes are read per call.
    pub fn feed_after(
        &self,
        cursor: FeedCursor,
        limit: usize,
    ) -> Result<(Vec<String>, FeedCursor), StoreError> {
        let mut changes: Vec<(i64, String)> = Vec::new();
        let mut next = cursor;
        {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT seq, alert_id FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .map_err(|e| self.sql(e))?;
            let rows = stmt
                .query_map(params![cursor.event, limit as i64], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(|e| self.sql(e))?;
            for row in rows {
                let (seq, id) = row.map_err(|e| self.sql(e))?;
                next.event = seq;
                changes.push((seq, id));
            }
        }
        {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT seq, alert_id FROM acks WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .map_err(|e| self.sql(e))?;
            let rows = stmt
                .query_map(params![cursor.ack, limit as i64], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(|e| self.sql(e))?;
            for row in rows {
                let (seq, id) = row.map_err(|e| self.sql(e))?;
                next.ack = seq;
                // Acks sort after events of the same batch: an ack always
                // concerns an alert that already exists.
                changes.push((i64::MAX / 2 + seq, id));
            }
        }
        changes.sort();
        let mut ids: Vec<String> = Vec::new();
        for (_, id) in changes.into_iter().rev() {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids.reverse();
        Ok((ids, next))
    }

    /// The alert wall: alerts not yet resolved, newest first, at most `limit`.
    pub fn unresolved(&self, limit: usize) -> Result<Vec<super::AlertRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM alerts a
             WHERE NOT EXISTS (SELECT 1 FROM acks k WHERE k.alert_id = a.id AND k.action = 'resolve'
                               AND k.seq = (SELECT MAX(seq) FROM acks WHERE alert_id = a.id))
             ORDER BY a.start_wall_ms DESC, a.id DESC LIMIT ?1",
            Self::ALERT_COLUMNS
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.sql(e))?;
        stmt.query_map(params![limit as i64], Self::alert_from_row)
            .map_err(|e| self.sql(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.sql(e))
    }

    /// Some alerts by id (the feed's changes), in the order given.
    pub fn alerts_by_id(&self, ids: &[String]) -> Result<Vec<super::AlertRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM alerts a WHERE a.id = ?1",
            Self::ALERT_COLUMNS
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.sql(e))?;
        let mut rows = Vec::with_capacity(ids.len());
        for id in ids {
            let mut found = stmt
                .query_map(params![id], Self::alert_from_row)
                .map_err(|e| self.sql(e))?;
            if let Some(row) = found.next() {
                rows.push(row.map_err(|e| self.sql(e))?);
            }
        }
        Ok(rows)
    }

    /// The kind of the evidence file at `rel_path` and its alert, if the store
    /// has it: the console serves nothing else.
    pub fn evidence_owner(&self, rel_path: &str) -> Result<Option<String>, StoreError> {
        use rusqlite::OptionalExtension;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_junk() {
        let c = FeedCursor { event: 12, ack: 3 };
        assert_eq!(c.to_string().parse::<FeedCursor>(), Ok(c));
        assert!("12".parse::<FeedCursor>().is_err());
        assert!("a-b".parse::<FeedCursor>().is_err());
    }
}
