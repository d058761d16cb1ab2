//! The chain of custody (`access_log`): who viewed, fetched, tagged, held or
//! exported which alert's evidence, and when. Shown on the alert page and
//! carried in nothing else, so it cannot be edited from the console.

use super::{Store, StoreError};
use crate::time::now_ms;
use rusqlite::params;
use serde::Serialize;

/// One line of the chain of custody.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Access {
    pub at_ms: i64,
    pub who: String,
    /// `view`, `export`, `file`, `verify`, `tag`, `hold`...
    pub action: String,
    pub detail: String,
}

impl Store {
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
}
