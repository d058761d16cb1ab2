//! The compound's console sessions: a login on one console is a login on
//! every console of the compound that the browser sends the cookie to.
//!
//! Each console keeps its sessions in its own store (a restart logs nobody
//! out, and logins work while PostgreSQL is away); PostgreSQL holds a copy of
//! every session, keyed by the cookie token's SHA-256 as the stores are. A
//! console that is shown a cookie it does not know looks it up here and keeps
//! it, so a control-room address that fails over to another node (DNS, a
//! floating IP) keeps its operators logged in. A logout leaves a tombstone
//! here; every console renews its sessions here when it marks them used (once
//! a minute) and ends its own copy of one found ended. A session opened while
//! PostgreSQL was away is written at its first renewal. A removed user or a
//! changed password needs nothing here: every console judges its sessions
//! against the same users (`users.rs`).

use crate::store::StoredSession;
use postgres::Client;

/// Stores (or renews) a session; `true` if it was ended on some console.
/// Sessions idle since `idle_before_ms` (ended or not) are deleted on the way.
pub fn renew(
    client: &mut Client,
    key: &str,
    s: &StoredSession,
    idle_before_ms: i64,
) -> Result<bool, postgres::Error> {
    client.execute(
        "DELETE FROM sessions WHERE last_seen_ms < $1",
        &[&idle_before_ms],
    )?;
    let row = client.query_one(
        "INSERT INTO sessions (token_sha256, user_name, csrf, password_sha256, last_seen_ms)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (token_sha256) DO UPDATE
             SET last_seen_ms = GREATEST(sessions.last_seen_ms, EXCLUDED.last_seen_ms)
         RETURNING ended",
        &[
            &key,
            &s.user,
            &s.csrf,
            &s.password_fingerprint,
            &s.last_seen_ms,
        ],
    )?;
    Ok(row.get(0))
}

/// A live session by its key, if a console stored it.
pub fn find(client: &mut Client, key: &str) -> Result<Option<StoredSession>, postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT user_name, csrf, password_sha256, last_seen_ms FROM sessions
             WHERE token_sha256 = $1 AND NOT ended",
            &[&key],
        )?
        .map(|r| StoredSession {
            user: r.get(0),
            csrf: r.get(1),
            password_fingerprint: r.get(2),
            last_seen_ms: r.get(3),
        }))
}

/// Ends a session on every console; sessions idle since `idle_before_ms`
/// (ended or not) are deleted on the way.
pub fn end(client: &mut Client, key: &str, idle_before_ms: i64) -> Result<(), postgres::Error> {
    client.execute(
        "DELETE FROM sessions WHERE last_seen_ms < $1",
        &[&idle_before_ms],
    )?;
    client.execute(
        "UPDATE sessions SET ended = true WHERE token_sha256 = $1",
        &[&key],
    )?;
    Ok(())
}
