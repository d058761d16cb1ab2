//! Review: what people add to an alert: tags (a case number), legal holds that
//! retention respects, and the console's acknowledgements and resolutions, with
//! the live feed that shows them.
//!
//! Acknowledgements (`acks`) live in the same database as the evidence they
//! concern, so a bundle, a search and an audit all see one history. The live feed is the store's own sequences: the
//! `events` table's `seq` and the `acks` table's `seq` together form a
//! [`FeedCursor`], so a browser that reconnects asks for everything after the
//! cursor it last saw, and no alert is shown twice or missed.

use super::{OutboxMessage, Store, StoreError, outbox};
use crate::time::now_ms;
use rusqlite::{OptionalExtension, params};
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

/// How a resolved alert ended: the reason code a shift report counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Dealt with where it happened (the patrol went, the cart was taken out).
    OnSite,
    FalseAlarm,
    /// Another alert covers it.
    Duplicate,
    /// A drill or a maintenance test.
    Test,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::OnSite,
        Outcome::FalseAlarm,
        Outcome::Duplicate,
        Outcome::Test,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::OnSite => "on_site",
            Outcome::FalseAlarm => "false_alarm",
            Outcome::Duplicate => "duplicate",
            Outcome::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// One acknowledgement or resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub action: AckAction,
    pub who: String,
    pub note: String,
    pub at_ms: i64,
    /// Resolutions only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
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

/// Where a compound's alert index has got to in this store: the live feed's
/// cursor, and the last tag or hold change (which the feed does not carry).
/// Written `<event>-<ack>-<review>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeCursor {
    pub feed: FeedCursor,
    pub review: i64,
}

impl std::fmt::Display for ChangeCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.feed, self.review)
    }
}

impl std::str::FromStr for ChangeCursor {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (feed, review) = s.trim().rsplit_once('-').ok_or(())?;
        Ok(ChangeCursor {
            feed: feed.parse()?,
            review: review.parse().map_err(|_| ())?,
        })
    }
}

/// One alert of a shift: when it started, who took it and when, how it ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Handled {
    pub id: String,
    pub camera: String,
    pub kind: String,
    pub severity: String,
    pub start_ms: i64,
    /// The first acknowledgement or resolution: (who, wall ms).
    pub taken: Option<(String, i64)>,
    /// The resolution: (who, wall ms, outcome).
    pub resolved: Option<(String, i64, Option<Outcome>)>,
}

/// What a shift report sums up: counts, outcomes, who handled what, and how
/// long alerts waited to be taken and to be resolved.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ShiftSummary {
    pub alerts: usize,
    pub by_kind: std::collections::BTreeMap<String, usize>,
    pub unresolved: usize,
    /// Resolutions per outcome (`None`: resolved before outcomes were kept).
    pub by_outcome: Vec<(Option<Outcome>, usize)>,
    /// Resolutions per operator.
    pub by_operator: std::collections::BTreeMap<String, usize>,
    /// Seconds from the alert to its first acknowledgement: median, longest.
    pub take_s: Option<(f64, f64)>,
    /// Seconds from the alert to its resolution: median, longest.
    pub resolve_s: Option<(f64, f64)>,
}

impl ShiftSummary {
    pub fn of(rows: &[Handled]) -> ShiftSummary {
        let mut s = ShiftSummary {
            alerts: rows.len(),
            ..Default::default()
        };
        let mut take = Vec::new();
        let mut resolve = Vec::new();
        for r in rows {
            *s.by_kind.entry(r.kind.clone()).or_default() += 1;
            if let Some((_, at)) = &r.taken {
                take.push((at - r.start_ms).max(0) as f64 / 1000.0);
            }
            match &r.resolved {
                None => s.unresolved += 1,
                Some((who, at, outcome)) => {
                    *s.by_operator.entry(who.clone()).or_default() += 1;
                    match s.by_outcome.iter_mut().find(|(o, _)| o == outcome) {
                        Some((_, n)) => *n += 1,
                        None => s.by_outcome.push((*outcome, 1)),
                    }
                    resolve.push((at - r.start_ms).max(0) as f64 / 1000.0);
                }
            }
        }
        s.by_outcome.sort_by_key(|(o, _)| {
            o.map_or(usize::MAX, |o| {
                Outcome::ALL.iter().position(|x| *x == o).unwrap_or(0)
            })
        });
        s.take_s = median_and_max(take);
        s.resolve_s = median_and_max(resolve);
        s
    }
}

fn median_and_max(mut v: Vec<f64>) -> Option<(f64, f64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some((median, v[n - 1]))
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
        // Two consoles (or a double click) must not acknowledge or resolve
        // one alert twice; checked in the write transaction.
        let done: Option<String> = tx
            .query_row(
                "SELECT action FROM acks WHERE alert_id = ?1 AND action IN (?2, 'resolve') ORDER BY action = 'resolve' DESC LIMIT 1",
                params![id, ack.action.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        if let Some(action) = done {
            return Err(StoreError::AlreadyDone {
                id: id.into(),
                what: if action == "resolve" {
                    "resolved"
                } else {
                    "acknowledged"
                },
            });
        }
        tx.execute(
            "INSERT INTO acks (alert_id, action, who, note, at_ms, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id,
                ack.action.as_str(),
                ack.who,
                ack.note,
                ack.at_ms,
                ack.outcome.map(Outcome::as_str)
            ],
        )
        .map_err(sql)?;
        outbox::enqueue(&tx, &announce(&camera), cap).map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(())
    }

    /// Every acknowledgement of one alert, oldest first.
    pub fn acks(&self, id: &str) -> Result<Vec<Ack>, StoreError> {
        self.query(
            "SELECT action, who, note, at_ms, outcome FROM acks WHERE alert_id = ?1 ORDER BY seq",
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
                    outcome: r
                        .get::<_, Option<String>>(4)?
                        .as_deref()
                        .and_then(Outcome::parse),
                })
            },
        )
    }

    /// Escalates the alerts nobody has taken (no acknowledgement at all)
    /// `after_ms` after they started: each is marked once and `announce`d in
    /// the same transaction, so a restart neither repeats nor loses one.
    /// Alerts older than a day are left alone (an old store's backlog is not
    /// news), and at most 100 go per call. Returns the alerts escalated now.
    pub fn escalate_overdue(
        &mut self,
        now_ms: i64,
        after_ms: i64,
        announce: impl Fn(&super::AlertRow) -> Vec<OutboxMessage>,
        cap: usize,
    ) -> Result<Vec<super::AlertRow>, StoreError> {
        const DAY_MS: i64 = 24 * 3600 * 1000;
        let sql = format!(
            "SELECT {} FROM alerts a
             WHERE a.start_wall_ms <= ?1 AND a.start_wall_ms >= ?2
               AND NOT EXISTS (SELECT 1 FROM acks k WHERE k.alert_id = a.id)
               AND NOT EXISTS (SELECT 1 FROM escalations e WHERE e.alert_id = a.id)
             ORDER BY a.start_wall_ms LIMIT 100",
            Self::ALERT_COLUMNS
        );
        let db_path = self.db_path.clone();
        let sql_err = |source| StoreError::Sql {
            path: db_path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sql_err)?;
        let overdue = {
            let mut stmt = tx.prepare(&sql).map_err(sql_err)?;
            stmt.query_map(
                params![now_ms - after_ms, now_ms - DAY_MS],
                Self::alert_from_row,
            )
            .map_err(sql_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql_err)?
        };
        for a in &overdue {
            tx.execute(
                "INSERT INTO escalations (alert_id, at_ms, after_s) VALUES (?1, ?2, ?3)",
                params![a.id, now_ms, after_ms as f64 / 1000.0],
            )
            .map_err(sql_err)?;
            outbox::enqueue(&tx, &announce(a), cap).map_err(sql_err)?;
        }
        tx.commit().map_err(sql_err)?;
        Ok(overdue)
    }

    /// When the alert was escalated, if it was.
    pub fn escalated_at(&self, id: &str) -> Result<Option<i64>, StoreError> {
        self.query(
            "SELECT at_ms FROM escalations WHERE alert_id = ?1",
            id,
            |r| r.get(0),
        )
        .map(|rows| rows.into_iter().next())
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

    /// The newest position of every change an alert can have.
    pub fn change_head(&self) -> Result<ChangeCursor, StoreError> {
        let review = self
            .conn
            .query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM review_changes",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))?;
        Ok(ChangeCursor {
            feed: self.feed_head()?,
            review,
        })
    }

    /// Alerts that changed after `cursor` in any way a listing shows (an
    /// event, an ack, a tag, a hold), each once, and the cursor after them.
    pub fn changed_after(
        &self,
        cursor: ChangeCursor,
        limit: usize,
    ) -> Result<(Vec<String>, ChangeCursor), StoreError> {
        let (mut ids, feed) = self.feed_after(cursor.feed, limit)?;
        let mut review = cursor.review;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, alert_id FROM review_changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(params![cursor.review, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(|e| self.sql(e))?;
        for row in rows {
            let (seq, id) = row.map_err(|e| self.sql(e))?;
            review = seq;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Ok((ids, ChangeCursor { feed, review }))
    }

    /// Alerts that started in `[from_ms, to_ms)`, oldest first, with who took
    /// and resolved them: a shift report's rows.
    pub fn shift(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Handled>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT a.id, a.camera, a.kind, a.severity, a.start_wall_ms,
                    f.who, f.at_ms, r.who, r.at_ms, r.outcome
                 FROM alerts a
                 LEFT JOIN acks f ON f.seq = (SELECT MIN(seq) FROM acks WHERE alert_id = a.id)
                 LEFT JOIN acks r ON r.seq = (SELECT MAX(seq) FROM acks WHERE alert_id = a.id AND action = 'resolve')
                 WHERE a.start_wall_ms >= ?1 AND a.start_wall_ms < ?2
                 ORDER BY a.start_wall_ms, a.id",
            )
            .map_err(|e| self.sql(e))?;
        stmt.query_map(params![from_ms, to_ms], |r| {
            let taken = match (r.get::<_, Option<String>>(5)?, r.get::<_, Option<i64>>(6)?) {
                (Some(who), Some(at)) => Some((who, at)),
                _ => None,
            };
            let resolved = match (r.get::<_, Option<String>>(7)?, r.get::<_, Option<i64>>(8)?) {
                (Some(who), Some(at)) => Some((
                    who,
                    at,
                    r.get::<_, Option<String>>(9)?
                        .as_deref()
                        .and_then(Outcome::parse),
                )),
                _ => None,
            };
            Ok(Handled {
                id: r.get(0)?,
                camera: r.get(1)?,
                kind: r.get(2)?,
                severity: r.get(3)?,
                start_ms: r.get(4)?,
                taken,
                resolved,
            })
        })
        .map_err(|e| self.sql(e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| self.sql(e))
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

    /// Alerts resolved since `since_ms`, the latest resolved first, at most
    /// `limit`: what the operators' "recently resolved" page lists (each row's
    /// `ack` is its resolution).
    pub fn resolved_since(
        &self,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<super::AlertRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM acks r JOIN alerts a ON a.id = r.alert_id
             WHERE r.action = 'resolve' AND r.at_ms >= ?1
             ORDER BY r.seq DESC LIMIT ?2",
            Self::ALERT_COLUMNS
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.sql(e))?;
        stmt.query_map(params![since_ms, limit as i64], Self::alert_from_row)
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
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tag {
    pub text: String,
    pub who: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hold {
    pub who: String,
    pub reason: String,
    pub at_ms: i64,
}

impl Store {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shift_sums_outcomes_operators_and_waits() {
        let row = |kind: &str, start: i64, taken: Option<i64>, resolved: Option<(i64, Outcome)>| {
            Handled {
                id: format!("{kind}-{start}"),
                camera: "gate".into(),
                kind: kind.into(),
                severity: "high".into(),
                start_ms: start,
                taken: taken.map(|t| ("wang".to_string(), t)),
                resolved: resolved.map(|(t, o)| ("li".to_string(), t, Some(o))),
            }
        };
        let rows = [
            row(
                "battery_cart",
                0,
                Some(10_000),
                Some((60_000, Outcome::OnSite)),
            ),
            row(
                "battery_cart",
                1_000,
                Some(31_000),
                Some((91_000, Outcome::FalseAlarm)),
            ),
            row("loitering", 2_000, Some(4_000), None),
            row("fire_smoke", 3_000, None, None),
        ];
        let s = ShiftSummary::of(&rows);
        assert_eq!(s.alerts, 4);
        assert_eq!(s.by_kind["battery_cart"], 2);
        assert_eq!(s.unresolved, 2);
        assert_eq!(
            s.by_outcome,
            [(Some(Outcome::OnSite), 1), (Some(Outcome::FalseAlarm), 1)]
        );
        assert_eq!(s.by_operator["li"], 2);
        assert_eq!(s.take_s, Some((10.0, 30.0)), "waits 10, 30 and 2 s");
        assert_eq!(s.resolve_s, Some((75.0, 90.0)));
        assert_eq!(ShiftSummary::of(&[]).take_s, None);
    }

    #[test]
    fn cursor_round_trips_and_rejects_junk() {
        let c = FeedCursor { event: 12, ack: 3 };
        assert_eq!(c.to_string().parse::<FeedCursor>(), Ok(c));
        assert!("12".parse::<FeedCursor>().is_err());
        assert!("a-b".parse::<FeedCursor>().is_err());
    }
}
