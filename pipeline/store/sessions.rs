//! Console login sessions, kept in the store so a restart logs nobody out.
//!
//! The cookie's token is never stored, only its SHA-256: a copy of the
//! database does not give live sessions. Each row also keeps a fingerprint of
//! the user's password hash at login, so the console can end sessions of a
//! user whose password was reset; the user's role is read from the users file
//! at every request, so a demotion takes effect at once. Idle sessions are
//! deleted when a new one opens.

use super::{Store, StoreError};
use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};

/// One stored session (the cookie's token is not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub user: String,
    pub csrf: String,
    /// SHA-256 of the user's password hash when the session opened.
    pub password_fingerprint: String,
    pub last_seen_ms: i64,
}

/// The key a session is stored under.
pub fn token_key(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Store {
    /// Stores a new session and deletes those idle since `idle_before_ms`.
    pub fn open_session(
        &mut self,
        token: &str,
        session: &StoredSession,
        idle_before_ms: i64,
    ) -> Result<(), StoreError> {
        let db_path = self.db_path.clone();
        let sql = |source| StoreError::Sql {
            path: db_path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sql)?;
        let stored = tx
            .execute(
                "DELETE FROM sessions WHERE last_seen_ms < ?1",
                params![idle_before_ms],
            )
            .and_then(|_| {
                tx.execute(
                    "INSERT INTO sessions (token_sha256, user, csrf, password_sha256, last_seen_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        token_key(token),
                        session.user,
                        session.csrf,
                        session.password_fingerprint,
                        session.last_seen_ms
                    ],
                )
            })
            .and_then(|_| tx.commit());
        stored.map_err(sql)
    }

    /// The session of a cookie token, if it is stored.
    pub fn session(&self, token: &str) -> Result<Option<StoredSession>, StoreError> {
        self.conn
            .query_row(
                "SELECT user, csrf, password_sha256, last_seen_ms FROM sessions WHERE token_sha256 = ?1",
                params![token_key(token)],
                |r| {
                    Ok(StoredSession {
                        user: r.get(0)?,
                        csrf: r.get(1)?,
                        password_fingerprint: r.get(2)?,
                        last_seen_ms: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// Marks a session as used at `now_ms`.
    pub fn touch_session(&self, token: &str, now_ms: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE sessions SET last_seen_ms = ?2 WHERE token_sha256 = ?1",
                params![token_key(token), now_ms],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    /// Ends a session (logout, or found revoked).
    pub fn close_session(&self, token: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "DELETE FROM sessions WHERE token_sha256 = ?1",
                params![token_key(token)],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }
}
