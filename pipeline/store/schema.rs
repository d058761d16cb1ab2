//! The store's schema as an ordered list of migrations.
//!
//! `PRAGMA user_version` holds the number of migrations applied. Opening a store
//! applies the missing ones in one transaction each; a store written by a newer
//! vigil (a higher version than this build knows) is refused rather than guessed
//! at. Never edit a migration that has shipped: append a new one.

use rusqlite::Connection;

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: alerts, their events, evidence files, tags and holds.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE alerts (
        id            TEXT PRIMARY KEY,
        camera        TEXT NOT NULL,
        kind          TEXT NOT NULL,
        rule          TEXT NOT NULL,
        severity      TEXT NOT NULL,
        zone          TEXT,
        line          TEXT,
        direction     TEXT,
        label         TEXT NOT NULL,
        score         REAL NOT NULL,
        box           TEXT NOT NULL,
        track_id      INTEGER,
        start_media_s REAL NOT NULL,
        start_wall_ms INTEGER NOT NULL,
        end_media_s   REAL,
        end_wall_ms   INTEGER,
        recipients    TEXT NOT NULL,
        summary       TEXT NOT NULL,
        state         TEXT NOT NULL CHECK (state IN ('open', 'ended', 'interrupted'))
    );
    CREATE INDEX alerts_by_start ON alerts (start_wall_ms);
    CREATE INDEX alerts_by_camera ON alerts (camera, start_wall_ms);
    CREATE INDEX alerts_by_kind ON alerts (kind, start_wall_ms);
    CREATE INDEX alerts_by_state ON alerts (state, start_wall_ms);
    CREATE TABLE events (
        seq      INTEGER PRIMARY KEY AUTOINCREMENT,
        alert_id TEXT NOT NULL REFERENCES alerts (id),
        type     TEXT NOT NULL CHECK (type IN ('new', 'update', 'end')),
        wall_ms  INTEGER NOT NULL,
        payload  TEXT NOT NULL
    );
    CREATE INDEX events_by_alert ON events (alert_id, seq);
    CREATE TABLE evidence (
        id            INTEGER PRIMARY KEY,
        alert_id      TEXT NOT NULL REFERENCES alerts (id),
        kind          TEXT NOT NULL CHECK (kind IN ('snapshot', 'annotated', 'clip')),
        path          TEXT NOT NULL UNIQUE,
        sha256        TEXT NOT NULL,
        bytes         INTEGER NOT NULL,
        created_ms    INTEGER NOT NULL,
        manifest_seq  INTEGER NOT NULL,
        start_media_s REAL,
        duration_s    REAL,
        deleted_ms    INTEGER
    );
    CREATE INDEX evidence_by_alert ON evidence (alert_id);
    CREATE INDEX evidence_live_by_age ON evidence (created_ms) WHERE deleted_ms IS NULL;
    CREATE TABLE tags (
        alert_id TEXT NOT NULL REFERENCES alerts (id),
        text     TEXT NOT NULL,
        who      TEXT NOT NULL,
        at_ms    INTEGER NOT NULL,
        PRIMARY KEY (alert_id, text)
    );
    CREATE INDEX tags_by_text ON tags (text);
    CREATE TABLE holds (
        alert_id TEXT PRIMARY KEY REFERENCES alerts (id),
        who      TEXT NOT NULL,
        reason   TEXT NOT NULL,
        at_ms    INTEGER NOT NULL
    );
    "#,
    // 2: the MQTT outbox: every message waits here until the broker's PUBACK.
    r#"
    CREATE TABLE outbox (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        topic       TEXT NOT NULL,
        payload     BLOB NOT NULL,
        retain      INTEGER NOT NULL,
        priority    INTEGER NOT NULL,
        created_ms  INTEGER NOT NULL,
        captured_us INTEGER
    );
    CREATE INDEX outbox_by_priority ON outbox (priority, seq);
    "#,
    // 3: the console: operators' acknowledgements, and the chain of custody
    // (every view and export of evidence, by whom).
    r#"
    CREATE TABLE acks (
        seq      INTEGER PRIMARY KEY AUTOINCREMENT,
        alert_id TEXT NOT NULL REFERENCES alerts (id),
        action   TEXT NOT NULL CHECK (action IN ('ack', 'resolve')),
        who      TEXT NOT NULL,
        note     TEXT NOT NULL,
        at_ms    INTEGER NOT NULL
    );
    CREATE INDEX acks_by_alert ON acks (alert_id, seq);
    CREATE TABLE access_log (
        seq      INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms    INTEGER NOT NULL,
        who      TEXT NOT NULL,
        action   TEXT NOT NULL,
        alert_id TEXT,
        detail   TEXT NOT NULL
    );
    CREATE INDEX access_by_alert ON access_log (alert_id, seq);
    "#,
    // 4: console login sessions (by the SHA-256 of the cookie's token), so a
    // restart logs nobody out.
    r#"
    CREATE TABLE sessions (
        token_sha256    TEXT PRIMARY KEY,
        user            TEXT NOT NULL,
        csrf            TEXT NOT NULL,
        password_sha256 TEXT NOT NULL,
        last_seen_ms    INTEGER NOT NULL
    );
    "#,
    // 5: how a resolved alert ended (on site, false alarm, duplicate, test),
    // for the shift report.
    r#"
    ALTER TABLE acks ADD COLUMN outcome TEXT;
    "#,
    // 6: alerts nobody took in time, escalated to a supervisor once each.
    r#"
    CREATE TABLE escalations (
        alert_id TEXT PRIMARY KEY REFERENCES alerts (id),
        at_ms    INTEGER NOT NULL,
        after_s  REAL NOT NULL
    );
    "#,
    // 7: tags and holds change no event and no ack, yet a compound's alert
    // index must follow them (a case number is what the police search by):
    // each change leaves its alert's id here, in order.
    r#"
    CREATE TABLE review_changes (
        seq      INTEGER PRIMARY KEY AUTOINCREMENT,
        alert_id TEXT NOT NULL
    );
    CREATE TRIGGER tag_added AFTER INSERT ON tags
        BEGIN INSERT INTO review_changes (alert_id) VALUES (NEW.alert_id); END;
    CREATE TRIGGER tag_removed AFTER DELETE ON tags
        BEGIN INSERT INTO review_changes (alert_id) VALUES (OLD.alert_id); END;
    CREATE TRIGGER hold_placed AFTER INSERT ON holds
        BEGIN INSERT INTO review_changes (alert_id) VALUES (NEW.alert_id); END;
    CREATE TRIGGER hold_released AFTER DELETE ON holds
        BEGIN INSERT INTO review_changes (alert_id) VALUES (OLD.alert_id); END;
    "#,
    // 8: a compound's index copies each alert's whole record (evidence files,
    // custody, escalation), so those changes leave the alert's id here too.
    r#"
    CREATE TRIGGER evidence_added AFTER INSERT ON evidence
        BEGIN INSERT INTO review_changes (alert_id) VALUES (NEW.alert_id); END;
    CREATE TRIGGER evidence_changed AFTER UPDATE ON evidence
        BEGIN INSERT INTO review_changes (alert_id) VALUES (NEW.alert_id); END;
    CREATE TRIGGER access_logged AFTER INSERT ON access_log WHEN NEW.alert_id IS NOT NULL
        BEGIN INSERT INTO review_changes (alert_id) VALUES (NEW.alert_id); END;
    CREATE TRIGGER escalated AFTER INSERT ON escalations
        BEGIN INSERT INTO review_changes (alert_id) VALUES (NEW.alert_id); END;
    "#,
];

/// The schema version this build writes.
pub const VERSION: usize = MIGRATIONS.len();

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("schema version {found} is newer than this vigil knows ({VERSION}); use a newer vigil")]
    TooNew { found: usize },
    #[error("migration to schema version {version}")]
    Failed {
        version: usize,
        #[source]
        source: rusqlite::Error,
    },
}

/// Brings the database up to [`VERSION`].
pub fn migrate(conn: &mut Connection) -> Result<(), MigrationError> {
    let current: usize =
        conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
            .map_err(|source| MigrationError::Failed { version: 0, source })? as usize;
    if current > VERSION {
        return Err(MigrationError::TooNew { found: current });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let version = i + 1;
        let failed = |source| MigrationError::Failed { version, source };
        let tx = conn.transaction().map_err(failed)?;
        tx.execute_batch(sql).map_err(failed)?;
        tx.pragma_update(None, "user_version", version as i64)
            .map_err(failed)?;
        tx.commit().map_err(failed)?;
    }
    Ok(())
}
