//! Alerts and their events: every event published is kept in order, with the
//! alert's latest state beside it, and the MQTT messages that announce it go
//! into the outbox in the same transaction. Listings and searches read here.

use super::Ack;
use super::{EvidenceFile, Hold, Tag};
use super::{OutboxMessage, Store, StoreError, outbox};
use crate::events::{Alert, Event, Lifecycle};
use crate::time::now_ms;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// One alert as listings show it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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

/// The `end` an alert never got because vigil was killed while it was open.
#[derive(Debug, Clone, PartialEq)]
pub struct InterruptedEnd {
    pub alert_id: String,
    pub camera: String,
    pub severity: crate::events::Severity,
    pub recipients: Vec<String>,
    /// The event as JSON, as MQTT subscribers get every event.
    pub payload: String,
}

impl InterruptedEnd {
    /// From the alert's last stored event (`payload`, recorded at `wall_ms`).
    pub fn from_last(
        alert_id: String,
        payload: &str,
        wall_ms: i64,
        reason: crate::events::EndReason,
    ) -> Option<InterruptedEnd> {
        let last: serde_json::Value = serde_json::from_str(payload).ok()?;
        let after = last.get("after")?.clone();
        let seq = last.get("seq")?.as_u64()? + 1;
        let start = after.get("start")?;
        let (start_media, start_wall) = (
            start.get("media_s")?.as_f64()?,
            start.get("wall_ms")?.as_i64()?,
        );
        let mut ended = after.clone();
        // Known alive until its last event; nothing is known after that.
        ended["end"] = serde_json::json!({
            "media_s": start_media + (wall_ms - start_wall).max(0) as f64 / 1000.0,
            "wall_ms": wall_ms,
        });
        let end = serde_json::json!({
            "type": "end",
            "event_id": format!("{alert_id}/{seq}"),
            "seq": seq,
            "before": after,
            "after": ended,
            "reason": reason.as_str(),
        });
        let severity = serde_json::from_value(after.get("severity")?.clone()).ok()?;
        let recipients = serde_json::from_value(after.get("recipients")?.clone()).ok()?;
        Some(InterruptedEnd {
            camera: after.get("camera")?.as_str()?.to_string(),
            alert_id,
            severity,
            recipients,
            payload: end.to_string(),
        })
    }
}

impl Store {
    /// Records an alert's current state (before its evidence refers to it).
    pub fn record_alert(&mut self, alert: &Alert) -> Result<(), StoreError> {
        self.with_space(|store| {
            upsert_alert(&store.conn, alert)
                .map(|_| ())
                .map_err(|e| store.sql(e))
        })
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
        let kind = match event.lifecycle {
            Lifecycle::New => "new",
            Lifecycle::Update => "update",
            Lifecycle::End => "end",
        };
        self.insert_event(
            Some(event.alert()),
            &event.alert().id,
            kind,
            payload,
            outbox,
            cap,
        )
    }

    /// One event row (and the alert's new state, when given) with its MQTT
    /// messages, in one transaction; returns how many messages the cap dropped.
    fn insert_event(
        &mut self,
        alert: Option<&Alert>,
        alert_id: &str,
        kind: &str,
        payload: &str,
        outbox: &[OutboxMessage],
        cap: usize,
    ) -> Result<usize, StoreError> {
        self.with_space(|store| store.try_insert_event(alert, alert_id, kind, payload, outbox, cap))
    }

    fn try_insert_event(
        &mut self,
        alert: Option<&Alert>,
        alert_id: &str,
        kind: &str,
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
        if let Some(alert) = alert {
            upsert_alert(&tx, alert).map_err(sql)?;
        }
        tx.execute(
            "INSERT INTO events (alert_id, type, wall_ms, payload) VALUES (?1, ?2, ?3, ?4)",
            params![alert_id, kind, now_ms() as i64, payload],
        )
        .map_err(sql)?;
        let dropped = outbox::enqueue(&tx, outbox, cap).map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(dropped)
    }

    /// Marks every alert still `open` as `interrupted` (only a run that
    /// stopped without ending them leaves any) and builds the `end` event each
    /// never got: the alert's last event turned into an `end` with reason
    /// `interrupted`, ending when vigil last heard of it.
    pub(super) fn interrupt_open_alerts(&mut self) -> Result<Vec<InterruptedEnd>, StoreError> {
        let db_path = self.db_path.clone();
        let sql = |source| StoreError::Sql {
            path: db_path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sql)?;
        let last_events: Vec<(String, String, i64)> = {
            let mut q = tx
                .prepare(
                    "SELECT e.alert_id, e.payload, e.wall_ms FROM events e
                     JOIN alerts a ON a.id = e.alert_id
                     WHERE a.state = 'open'
                       AND e.seq = (SELECT MAX(seq) FROM events WHERE alert_id = a.id)",
                )
                .map_err(sql)?;
            q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(sql)?
                .collect::<rusqlite::Result<_>>()
                .map_err(sql)?
        };
        // Its end is when vigil last heard of it, as its `end` event says:
        // without one, the wall's duration kept growing for ever.
        tx.execute(
            "UPDATE alerts SET state = 'interrupted',
               end_wall_ms = COALESCE(end_wall_ms, (SELECT e.wall_ms FROM events e
                 WHERE e.alert_id = alerts.id ORDER BY e.seq DESC LIMIT 1))
             WHERE state = 'open'",
            [],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(last_events
            .into_iter()
            .filter_map(|(id, payload, wall_ms)| {
                InterruptedEnd::from_last(
                    id,
                    &payload,
                    wall_ms,
                    crate::events::EndReason::Interrupted,
                )
            })
            .collect())
    }

    /// The `end` events of alerts a killed run left open, to announce once.
    pub fn take_interrupted(&mut self) -> Vec<InterruptedEnd> {
        std::mem::take(&mut self.interrupted)
    }

    /// Of the alerts a killed run left open, those another compound node has
    /// already ended as `node_lost` (`ids`): their `end` is recorded here as
    /// it was published, and not announced a second time.
    pub fn settle_lost_elsewhere(&mut self, ids: &[String]) -> Result<(), StoreError> {
        let (lost, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.interrupted)
            .into_iter()
            .partition(|e| ids.contains(&e.alert_id));
        self.interrupted = kept;
        for mut end in lost {
            if let Ok(mut json) = serde_json::from_str::<serde_json::Value>(&end.payload) {
                json["reason"] = crate::events::EndReason::NodeLost.as_str().into();
                end.payload = json.to_string();
            }
            self.record_interrupted_end(&end, &[], usize::MAX)?;
        }
        Ok(())
    }

    /// Records an interrupted alert's `end` and its MQTT messages, in one
    /// transaction (the alert's row already says `interrupted`).
    pub fn record_interrupted_end(
        &mut self,
        end: &InterruptedEnd,
        outbox: &[OutboxMessage],
        cap: usize,
    ) -> Result<usize, StoreError> {
        self.insert_event(None, &end.alert_id, "end", &end.payload, outbox, cap)
    }

    pub(super) fn alert_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AlertRow> {
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

    pub(super) const ALERT_COLUMNS: &'static str = "a.id, a.camera, a.kind, a.rule, a.severity, a.zone, a.line, a.label, a.score, a.box,
        a.track_id, a.start_media_s, a.start_wall_ms, a.end_media_s, a.end_wall_ms, a.recipients, a.summary, a.state,
        (SELECT who FROM holds h WHERE h.alert_id = a.id),
        (SELECT group_concat(text, char(31)) FROM tags t WHERE t.alert_id = a.id),
        (SELECT json_object('action', k.action, 'who', k.who, 'note', k.note, 'at_ms', k.at_ms, 'outcome', k.outcome)
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
            args.push(Box::new(format!("{t}\u{10FFFF}")));
            // A prefix ("沪公浦刑" finds "沪公浦刑2026-117号") as a range, so
            // SQLite still starts from the tag index. IN, not EXISTS: it then
            // reads a few rows instead of testing every alert (100 ms at 100k).
            sql += &format!(
                " AND a.id IN (SELECT t.alert_id FROM tags t WHERE t.text >= ?{} AND t.text < ?{})",
                args.len() - 1,
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
