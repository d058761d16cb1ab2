//! The compound's alert index: every node's alerts, copied from the node's own
//! store into PostgreSQL, so any console lists and searches them all and knows
//! which node to ask for an alert's evidence.
//!
//! Each alert goes with its whole record (`AlertRecord`: events as published,
//! evidence files, tags, hold, acknowledgements, escalation, chain of custody),
//! so a console shows the record of an alert whose node is down, and searches
//! and records read the same from the node's store and from here.
//!
//! The node's store stays the truth: it keeps recording while PostgreSQL is
//! away, and its evidence and signed manifest are on its own disk. The index
//! follows the store's change feed (events, acks, and since store version 8
//! tags, holds, evidence, custody and escalations) from a cursor
//! that PostgreSQL keeps in the same transaction as the rows it copied, so a
//! copy cut short anywhere (a kill, PostgreSQL stopping) resumes where it
//! stopped: nothing is missed, and a row copied twice is the same row.

use crate::store::{
    Access, Ack, AckAction, AlertFilter, AlertRecord, AlertRow, ChangeCursor, EvidenceFile,
    EvidenceKind, Handled, Hold, Outcome, Store, StoreError, StoredEvent, Tag,
};
use postgres::{Client, NoTls};

/// Alerts copied per transaction: a node's first copy of a large store goes
/// in steps, each one committed.
const BATCH: usize = 500;

/// Transactions per call of [`Index::sync`] (about 5 s of copying): a first
/// copy of a large store, or the full copy after an upgrade, goes over many
/// rounds, so the thread sees a stop signal between them.
const BATCHES_PER_SYNC: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("alert index in PostgreSQL")]
    Pg(#[from] postgres::Error),
    #[error("alert index: reading this node's store")]
    Store(#[from] StoreError),
}

/// Where another node's console answers, and whether the node is live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub node: String,
    pub url: Option<String>,
    pub live: bool,
    /// For an `https` console: its certificate's SHA-256, which is pinned.
    pub cert_sha256: Option<String>,
}

pub struct Index {
    client: Client,
    node: String,
    url: Option<String>,
    cert_sha256: Option<String>,
    url_said: bool,
}

impl Index {
    /// `url` and `cert_sha256`: where this node's console answers the others.
    pub fn connect(
        config: &postgres::Config,
        node: &str,
        url: Option<String>,
        cert_sha256: Option<String>,
    ) -> Result<Index, postgres::Error> {
        let mut client = config.connect(NoTls)?;
        super::pg::migrate(&mut client)?;
        Ok(Index {
            client,
            node: node.into(),
            url,
            cert_sha256,
            url_said: false,
        })
    }

    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Writes into `store` the takes and resolutions other consoles queued
    /// for this node's alerts while it was down, in the order they were made;
    /// returns how many were written. One the store refuses (the alert was
    /// already resolved here) is logged and not tried again.
    pub fn apply_queued(
        &mut self,
        store: &mut Store,
        alerts: Option<&crate::publish::AlertsConfig>,
    ) -> Result<usize, IndexError> {
        let waiting = self.client.query(
            "SELECT seq, alert_id, ack FROM queued_acks
             WHERE node = $1 AND applied IS NULL ORDER BY seq",
            &[&self.node],
        )?;
        let mut written = 0;
        for r in &waiting {
            let (seq, id, ack): (i64, String, String) = (r.get(0), r.get(1), r.get(2));
            match serde_json::from_str::<crate::store::Ack>(&ack) {
                Ok(ack) => {
                    // Announced like a console's own take or resolution, so the
                    // patrol's app hears of it too.
                    let severity = store.alert(&id).ok().map(|a| a.alert.severity);
                    let announce = |camera: &str| match (alerts, &severity) {
                        (Some(a), Some(severity)) => {
                            vec![crate::publish::ack_message(a, &id, camera, severity, &ack)]
                        }
                        _ => Vec::new(),
                    };
                    let cap = alerts.map(|a| a.outbox_max).unwrap_or(0);
                    match store.acknowledge(&id, &ack, announce, cap) {
                        Ok(()) => {
                            written += 1;
                            tracing::info!(
                                "alert {id} {} by {} while this node was down: written now",
                                ack.action.as_str(),
                                ack.who
                            );
                        }
                        // The store's own refusal (unknown alert, done already);
                        // its database failing is a round to try again.
                        Err(e @ StoreError::Sql { .. }) => return Err(e.into()),
                        Err(e) => tracing::warn!(
                            "alert {id}: a {} by {} queued while this node was down: {}",
                            ack.action.as_str(),
                            ack.who,
                            crate::errors::with_causes(&e)
                        ),
                    }
                }
                Err(e) => {
                    tracing::warn!("alert {id}: a queued acknowledgement cannot be read: {e}")
                }
            }
            self.client.execute(
                "UPDATE queued_acks SET applied = now() WHERE seq = $1",
                &[&seq],
            )?;
        }
        Ok(written)
    }

    /// Copies what changed in `store` since the last copy, up to
    /// [`BATCHES_PER_SYNC`] transactions; returns how many alerts were copied
    /// (0: the index has caught up).
    pub fn sync(&mut self, store: &Store) -> Result<usize, IndexError> {
        if !self.url_said {
            // The node's row is the heartbeat's: until it exists, try again.
            let n = self.client.execute(
                "UPDATE nodes SET url = $2, cert_sha256 = $3 WHERE node = $1",
                &[&self.node, &self.url, &self.cert_sha256],
            )?;
            self.url_said = n > 0;
        }
        let mut cursor: ChangeCursor = self
            .client
            .query_opt(
                "SELECT cursor FROM alert_copies WHERE node = $1",
                &[&self.node],
            )?
            .and_then(|r| r.get::<_, String>(0).parse().ok())
            .unwrap_or_default();
        let head = store.change_head()?;
        if cursor.feed.event > head.feed.event
            || cursor.feed.ack > head.feed.ack
            || cursor.review > head.review
        {
            // A store younger than the index's cursor (its database was
            // replaced): copy it all again; rows already there are overwritten.
            tracing::warn!(
                "alert index: this node's store is behind the index's cursor ({cursor} > {head}); copying it again"
            );
            cursor = ChangeCursor::default();
        }
        let mut copied = 0;
        for _ in 0..BATCHES_PER_SYNC {
            let (ids, next) = store.changed_after(cursor, BATCH)?;
            if next == cursor {
                return Ok(copied);
            }
            let mut records = Vec::with_capacity(ids.len());
            for id in &ids {
                match store.record(id) {
                    Ok(record) => records.push(record),
                    // A custody line about an alert this store never had.
                    Err(StoreError::NoAlert { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let mut tx = self.client.transaction()?;
            let copier = Copier::prepare(&mut tx)?;
            for record in &records {
                copier.copy(&mut tx, &self.node, record)?;
            }
            tx.execute(
                "INSERT INTO alert_copies (node, cursor, copied) VALUES ($1, $2, now())
                 ON CONFLICT (node) DO UPDATE SET cursor = $2, copied = now()",
                &[&self.node, &next.to_string()],
            )?;
            tx.commit()?;
            copied += records.len();
            cursor = next;
        }
        Ok(copied)
    }
}

/// The statements that copy a record, prepared once per transaction: each
/// `execute` of a query text would be two round trips instead of one.
struct Copier {
    alert: postgres::Statement,
    forget: postgres::Statement,
    tag: postgres::Statement,
    event: postgres::Statement,
    evidence: postgres::Statement,
    hold: postgres::Statement,
    ack: postgres::Statement,
    custody: postgres::Statement,
}

impl Copier {
    fn prepare(tx: &mut postgres::Transaction<'_>) -> Result<Copier, postgres::Error> {
        Ok(Copier {
            alert: tx.prepare(
                "INSERT INTO alerts (id, node, camera, kind, state, start_wall_ms, resolved, row, copied,
                     escalated_ms, severity)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now(), $9, $10)
                 ON CONFLICT (id) DO UPDATE SET node = $2, camera = $3, kind = $4, state = $5,
                     start_wall_ms = $6, resolved = $7, row = $8, copied = now(), escalated_ms = $9,
                     severity = $10",
            )?,
            // Every list of the record at once, in one round trip.
            forget: tx.prepare(
                "WITH t AS (DELETE FROM alert_tags WHERE alert_id = $1),
                      e AS (DELETE FROM alert_events WHERE alert_id = $1),
                      f AS (DELETE FROM alert_evidence WHERE alert_id = $1),
                      h AS (DELETE FROM alert_holds WHERE alert_id = $1),
                      k AS (DELETE FROM alert_acks WHERE alert_id = $1)
                 DELETE FROM alert_custody WHERE alert_id = $1",
            )?,
            tag: tx.prepare(
                "INSERT INTO alert_tags (alert_id, text, who, at_ms, pos) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT DO NOTHING",
            )?,
            event: tx.prepare(
                "INSERT INTO alert_events (alert_id, pos, type, wall_ms, payload) VALUES ($1, $2, $3, $4, $5)",
            )?,
            evidence: tx.prepare(
                "INSERT INTO alert_evidence (alert_id, pos, kind, path, sha256, bytes, created_ms,
                    start_media_s, duration_s, deleted_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )?,
            hold: tx.prepare(
                "INSERT INTO alert_holds (alert_id, who, reason, at_ms) VALUES ($1, $2, $3, $4)",
            )?,
            ack: tx.prepare(
                "INSERT INTO alert_acks (alert_id, pos, action, who, note, at_ms, outcome)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )?,
            custody: tx.prepare(
                "INSERT INTO alert_custody (alert_id, pos, at_ms, who, action, detail)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )?,
        })
    }

    /// Alert `record` as its node has it now: its row, and each list of its
    /// record replaced whole (a copy is the store's state, never a merge).
    fn copy(
        &self,
        tx: &mut postgres::Transaction<'_>,
        node: &str,
        record: &AlertRecord,
    ) -> Result<(), postgres::Error> {
        let row = &record.alert;
        let resolved = row
            .ack
            .as_ref()
            .is_some_and(|a| a.action == AckAction::Resolve);
        let json = serde_json::to_string(row).unwrap_or_default();
        tx.execute(
            &self.alert,
            &[
                &row.id,
                &node,
                &row.camera,
                &row.kind,
                &row.state,
                &row.start_wall_ms,
                &resolved,
                &json,
                &record.escalated_ms,
                &row.severity,
            ],
        )?;
        let id = &row.id;
        tx.execute(&self.forget, &[id])?;
        for (pos, tag) in (0i32..).zip(&record.tags) {
            tx.execute(&self.tag, &[id, &tag.text, &tag.who, &tag.at_ms, &pos])?;
        }
        for (pos, e) in (0i32..).zip(&record.events) {
            tx.execute(&self.event, &[id, &pos, &e.kind, &e.wall_ms, &e.payload])?;
        }
        for (pos, f) in (0i32..).zip(&record.evidence) {
            tx.execute(
                &self.evidence,
                &[
                    id,
                    &pos,
                    &f.kind.as_str(),
                    &f.path,
                    &f.sha256,
                    &(f.bytes as i64),
                    &(f.created_ms as i64),
                    &f.start_media_s,
                    &f.duration_s,
                    &f.deleted_ms.map(|d| d as i64),
                ],
            )?;
        }
        if let Some(h) = &record.hold {
            tx.execute(&self.hold, &[id, &h.who, &h.reason, &h.at_ms])?;
        }
        for (pos, a) in (0i32..).zip(&record.acks) {
            tx.execute(
                &self.ack,
                &[
                    id,
                    &pos,
                    &a.action.as_str(),
                    &a.who,
                    &a.note,
                    &a.at_ms,
                    &a.outcome.map(Outcome::as_str),
                ],
            )?;
        }
        for (pos, c) in (0i32..).zip(&record.custody) {
            tx.execute(
                &self.custody,
                &[id, &pos, &c.at_ms, &c.who, &c.action, &c.detail],
            )?;
        }
        Ok(())
    }
}

/// Alert `id`'s whole record as its node last copied it, with that node: the
/// same record `Store::record` reads from the node's own store.
pub fn record(
    client: &mut Client,
    id: &str,
) -> Result<Option<(String, AlertRecord)>, postgres::Error> {
    let Some(found) = client.query_opt(
        "SELECT node, row, escalated_ms FROM alerts WHERE id = $1",
        &[&id],
    )?
    else {
        return Ok(None);
    };
    let Ok(alert) = serde_json::from_str::<AlertRow>(found.get::<_, &str>(1)) else {
        return Ok(None);
    };
    let tags = client
        .query(
            "SELECT text, who, at_ms FROM alert_tags WHERE alert_id = $1 ORDER BY pos",
            &[&id],
        )?
        .iter()
        .map(|r| Tag {
            text: r.get(0),
            who: r.get(1),
            at_ms: r.get(2),
        })
        .collect();
    let events = client
        .query(
            "SELECT type, wall_ms, payload FROM alert_events WHERE alert_id = $1 ORDER BY pos",
            &[&id],
        )?
        .iter()
        .map(|r| StoredEvent {
            kind: r.get(0),
            wall_ms: r.get(1),
            payload: r.get(2),
        })
        .collect();
    let evidence = client
        .query(
            "SELECT kind, path, sha256, bytes, created_ms, start_media_s, duration_s, deleted_ms
             FROM alert_evidence WHERE alert_id = $1 ORDER BY pos",
            &[&id],
        )?
        .iter()
        .map(|r| EvidenceFile {
            kind: EvidenceKind::parse(r.get(0)).unwrap_or(EvidenceKind::Clip),
            path: r.get(1),
            sha256: r.get(2),
            bytes: r.get::<_, i64>(3) as u64,
            created_ms: r.get::<_, i64>(4) as u64,
            start_media_s: r.get(5),
            duration_s: r.get(6),
            deleted_ms: r.get::<_, Option<i64>>(7).map(|d| d as u64),
        })
        .collect();
    let hold = client
        .query_opt(
            "SELECT who, reason, at_ms FROM alert_holds WHERE alert_id = $1",
            &[&id],
        )?
        .map(|r| Hold {
            who: r.get(0),
            reason: r.get(1),
            at_ms: r.get(2),
        });
    let acks = client
        .query(
            "SELECT action, who, note, at_ms, outcome FROM alert_acks WHERE alert_id = $1 ORDER BY pos",
            &[&id],
        )?
        .iter()
        .map(|r| Ack {
            action: if r.get::<_, &str>(0) == "resolve" {
                AckAction::Resolve
            } else {
                AckAction::Ack
            },
            who: r.get(1),
            note: r.get(2),
            at_ms: r.get(3),
            outcome: r.get::<_, Option<&str>>(4).and_then(Outcome::parse),
        })
        .collect();
    let custody = client
        .query(
            "SELECT at_ms, who, action, detail FROM alert_custody WHERE alert_id = $1 ORDER BY pos",
            &[&id],
        )?
        .iter()
        .map(|r| Access {
            at_ms: r.get(0),
            who: r.get(1),
            action: r.get(2),
            detail: r.get(3),
        })
        .collect();
    Ok(Some((
        found.get(0),
        AlertRecord {
            alert,
            events,
            evidence,
            tags,
            hold,
            acks,
            escalated_ms: found.get(2),
            custody,
        },
    )))
}

/// The node that recorded alert `id`, and where its console answers.
pub fn owner(
    client: &mut Client,
    id: &str,
    lease_s: f64,
) -> Result<Option<Owner>, postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT a.node, n.url,
                    COALESCE(n.stopped IS NULL AND n.seen > now() - $2 * interval '1 second', false),
                    n.cert_sha256
             FROM alerts a LEFT JOIN nodes n ON n.node = a.node WHERE a.id = $1",
            &[&id, &lease_s],
        )?
        .map(|r| Owner {
            node: r.get(0),
            url: r.get(1),
            live: r.get(2),
            cert_sha256: r.get(3),
        }))
}

/// Queues a take or resolution of alert `id`, made while its node `node` is
/// down, for that node to write into its store when it is back.
pub fn queue_ack(
    client: &mut Client,
    node: &str,
    id: &str,
    ack: &crate::store::Ack,
) -> Result<(), postgres::Error> {
    let ack = serde_json::to_string(ack).unwrap_or_default();
    client.execute(
        "INSERT INTO queued_acks (node, alert_id, ack) VALUES ($1, $2, $3)",
        &[&node, &id, &ack],
    )?;
    Ok(())
}

/// Every node's alerts that started in `[from_ms, to_ms)`, oldest first,
/// with who took and resolved them: the compound's shift report, read as
/// `Store::shift` reads a node's.
pub fn shift(
    client: &mut Client,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Handled>, postgres::Error> {
    Ok(client
        .query(
            "SELECT a.id, a.camera, a.kind, a.severity, a.start_wall_ms,
                f.who, f.at_ms, r.who, r.at_ms, r.outcome
             FROM alerts a
             LEFT JOIN LATERAL (SELECT who, at_ms FROM alert_acks
                                WHERE alert_id = a.id ORDER BY pos LIMIT 1) f ON true
             LEFT JOIN LATERAL (SELECT who, at_ms, outcome FROM alert_acks
                                WHERE alert_id = a.id AND action = 'resolve'
                                ORDER BY pos DESC LIMIT 1) r ON true
             WHERE a.start_wall_ms >= $1 AND a.start_wall_ms < $2
             ORDER BY a.start_wall_ms, a.id",
            &[&from_ms, &to_ms],
        )?
        .iter()
        .map(|r| Handled {
            id: r.get(0),
            camera: r.get(1),
            kind: r.get(2),
            severity: r.get::<_, Option<String>>(3).unwrap_or_default(),
            start_ms: r.get(4),
            taken: match (r.get::<_, Option<String>>(5), r.get::<_, Option<i64>>(6)) {
                (Some(who), Some(at)) => Some((who, at)),
                _ => None,
            },
            resolved: match (r.get::<_, Option<String>>(7), r.get::<_, Option<i64>>(8)) {
                (Some(who), Some(at)) => Some((
                    who,
                    at,
                    r.get::<_, Option<&str>>(9).and_then(Outcome::parse),
                )),
                _ => None,
            },
        })
        .collect())
}

/// Every node's alerts resolved since `since_ms`, the latest resolved first,
/// at most `limit`: the "recently resolved" page for the whole compound.
pub fn resolved_since(
    client: &mut Client,
    since_ms: i64,
    limit: usize,
) -> Result<Vec<AlertRow>, postgres::Error> {
    Ok(client
        .query(
            "SELECT a.row FROM alert_acks r JOIN alerts a ON a.id = r.alert_id
             WHERE r.action = 'resolve' AND r.at_ms >= $1
             ORDER BY r.at_ms DESC, a.id DESC LIMIT $2",
            &[&since_ms, &(limit as i64)],
        )?
        .iter()
        .filter_map(|r| serde_json::from_str(r.get::<_, &str>(0)).ok())
        .collect())
}

/// Where node `node`'s console answers.
pub fn node(
    client: &mut Client,
    node: &str,
    lease_s: f64,
) -> Result<Option<Owner>, postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT node, url, stopped IS NULL AND seen > now() - $2 * interval '1 second',
                    cert_sha256
             FROM nodes WHERE node = $1",
            &[&node, &lease_s],
        )?
        .map(|r| Owner {
            node: r.get(0),
            url: r.get(1),
            live: r.get(2),
            cert_sha256: r.get(3),
        }))
}

/// Every node's alerts matching `filter`, newest first, each with its node:
/// the same filter and order as the store's own search.
pub fn search(
    client: &mut Client,
    filter: &AlertFilter,
) -> Result<Vec<(String, AlertRow)>, postgres::Error> {
    let mut sql = String::from("SELECT a.node, a.row FROM alerts a WHERE true");
    let mut args: Vec<Box<dyn postgres::types::ToSql + Sync>> = Vec::new();
    let mut arg =
        |sql: &mut String, clause: &str, value: Box<dyn postgres::types::ToSql + Sync>| {
            args.push(value);
            *sql += &clause.replace('$', &format!("${}", args.len()));
        };
    if let Some(c) = &filter.camera {
        arg(&mut sql, " AND a.camera = $", Box::new(c.clone()));
    }
    if let Some(k) = &filter.kind {
        arg(&mut sql, " AND a.kind = $", Box::new(k.clone()));
    }
    if let Some(s) = &filter.state {
        arg(&mut sql, " AND a.state = $", Box::new(s.clone()));
    }
    if let Some(t) = filter.since_ms {
        arg(&mut sql, " AND a.start_wall_ms >= $", Box::new(t));
    }
    if let Some(t) = filter.until_ms {
        arg(&mut sql, " AND a.start_wall_ms < $", Box::new(t));
    }
    if let Some(t) = &filter.tag {
        // A prefix, as a range the tag index can start from.
        arg(
            &mut sql,
            " AND a.id IN (SELECT t.alert_id FROM alert_tags t WHERE t.text >= $",
            Box::new(t.clone()),
        );
        arg(
            &mut sql,
            " AND t.text < $)",
            Box::new(format!("{t}\u{10FFFF}")),
        );
    }
    if let Some((ms, id)) = &filter.before {
        arg(&mut sql, " AND (a.start_wall_ms, a.id) < ($", Box::new(*ms));
        arg(&mut sql, ", $)", Box::new(id.clone()));
    }
    sql += " ORDER BY a.start_wall_ms DESC, a.id DESC";
    if let Some(l) = filter.limit {
        sql += &format!(" LIMIT {l}");
    }
    let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
        args.iter().map(|a| a.as_ref()).collect();
    Ok(client
        .query(&sql, &params)?
        .iter()
        .filter_map(|r| {
            let row = serde_json::from_str(r.get::<_, &str>(1)).ok()?;
            Some((r.get::<_, String>(0), row))
        })
        .collect())
}

/// The `alert-index` thread: copies this node's new alert changes once a
/// second until `stop`. PostgreSQL away is said once, and when it is back.
pub(super) fn keep_copying(
    pg: &postgres::Config,
    node: &str,
    source: &super::IndexSource,
    stop: &crate::shutdown::Shutdown,
) {
    let announce = source.announce.as_ref();
    let mut index: Option<Index> = None;
    let mut store: Option<Store> = None;
    let mut failing = false;
    loop {
        let stopping = stop.is_triggered();
        let round = (|| -> Result<usize, IndexError> {
            if index.as_ref().is_none_or(Index::is_closed) {
                index = Some(Index::connect(
                    pg,
                    node,
                    source.url.clone(),
                    source.cert_sha256.clone(),
                )?);
            }
            if store.is_none() {
                store = Some(Store::open_reader(&source.storage, &source.base)?);
            }
            match (index.as_mut(), store.as_mut()) {
                (Some(i), Some(s)) => {
                    if i.apply_queued(s, announce.map(|(alerts, _)| alerts))? > 0
                        && let Some((_, wake)) = announce
                    {
                        let _ = wake.try_send(());
                    }
                    i.sync(s)
                }
                _ => Ok(0),
            }
        })();
        match round {
            Ok(n) => {
                if failing {
                    tracing::info!("alert index: copying this node's alerts to PostgreSQL again");
                    failing = false;
                }
                if n > 0 {
                    metrics::counter!("vigil_compound_alerts_copied_total").increment(n as u64);
                    tracing::debug!("alert index: {n} alert(s) copied");
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(
                        "{}; the alerts stay in this node's store and are copied when it answers",
                        crate::errors::with_causes(&e)
                    );
                    failing = true;
                }
                index = None;
            }
        }
        // The round that began after the stop signal copied the final ends.
        if stopping {
            return;
        }
        stop.wait(std::time::Duration::from_secs(1));
    }
}
