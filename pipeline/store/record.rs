//! An alert's whole record: the alert, every event as it was published, its
//! evidence files, tags, hold, acknowledgements, escalation and chain of
//! custody. It is what the alert's page shows, and what a compound's node
//! copies into PostgreSQL, so a console can show the record of an alert whose
//! node is down, and the two copies can be compared field for field.

use super::{Access, Ack, AlertDetail, AlertRow, EvidenceFile, Hold, Store, StoreError, Tag};

/// One event of an alert as it went out.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// `new`, `update` or `end`.
    pub kind: String,
    pub wall_ms: i64,
    /// The JSON payload exactly as published.
    pub payload: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    pub alert: AlertRow,
    /// In the order they were published.
    pub events: Vec<StoredEvent>,
    /// In the order they were added, deleted ones included.
    pub evidence: Vec<EvidenceFile>,
    pub tags: Vec<Tag>,
    pub hold: Option<Hold>,
    /// Oldest first.
    pub acks: Vec<Ack>,
    /// When nobody had taken it in time and it went to a supervisor.
    pub escalated_ms: Option<i64>,
    /// Who viewed, fetched, tagged, held or exported it, oldest first.
    pub custody: Vec<Access>,
}

impl AlertRecord {
    /// The record as the alert page's detail (payloads parsed).
    pub fn detail(&self) -> AlertDetail {
        AlertDetail {
            alert: self.alert.clone(),
            events: self
                .events
                .iter()
                .map(|e| serde_json::from_str(&e.payload).unwrap_or(serde_json::Value::Null))
                .collect(),
            evidence: self.evidence.clone(),
            tags: self.tags.clone(),
            hold: self.hold.clone(),
        }
    }

    /// The events as (type, wall ms), with the escalation in its place.
    pub fn timeline(&self) -> Vec<(String, i64)> {
        let mut timeline: Vec<(String, i64)> = self
            .events
            .iter()
            .map(|e| (e.kind.clone(), e.wall_ms))
            .collect();
        if let Some(at) = self.escalated_ms {
            timeline.push(("escalated".into(), at));
            timeline.sort_by_key(|(_, at)| *at);
        }
        timeline
    }
}

impl Store {
    /// Alert `id`'s whole record.
    pub fn record(&self, id: &str) -> Result<AlertRecord, StoreError> {
        let AlertDetail {
            alert,
            evidence,
            tags,
            hold,
            ..
        } = self.alert(id)?;
        let events = self.query(
            "SELECT type, wall_ms, payload FROM events WHERE alert_id = ?1 ORDER BY seq",
            id,
            |r| {
                Ok(StoredEvent {
                    kind: r.get(0)?,
                    wall_ms: r.get(1)?,
                    payload: r.get(2)?,
                })
            },
        )?;
        Ok(AlertRecord {
            alert,
            events,
            evidence,
            tags,
            hold,
            acks: self.acks(id)?,
            escalated_ms: self.escalated_at(id)?,
            custody: self.access_log(id)?,
        })
    }
}
