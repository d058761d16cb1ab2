//! Auth: sessions, CSRF tokens and login throttling.
//!
//! A session is a random 256-bit token in an `HttpOnly`, `SameSite=Strict`
//! cookie (`Secure` under TLS), held in memory: a restart logs everyone out,
//! which a control room notices less than a stolen session. Each session has
//! its own CSRF token, required on every state-changing request as a form
//! field or the `X-CSRF-Token` header. Failed logins are logged and, past
//! [`MAX_FAILURES`] from one address in [`FAILURE_WINDOW`], refused outright.

use super::{Console, Role};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const COOKIE: &str = "vigil_session";
/// A session unused this long is gone.
const IDLE: Duration = Duration::from_secs(12 * 3600);
/// Password guesses per user name in the window: one person's typos.
pub const MAX_FAILURES: usize = 5;
/// Guesses per address in the window, whatever the name: a shared control-room
/// workstation serves a whole shift, so one user's typos must not lock it out,
/// but one machine cannot try many names either.
pub const MAX_FAILURES_PER_ADDRESS: usize = 20;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(300);

#[derive(Clone)]
struct Session {
    user: String,
    role: Role,
    csrf: String,
    last_seen: Instant,
}

#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
    /// Recent attempts not (yet) known to have succeeded, by name and address.
    failures: Mutex<Attempts>,
}

#[derive(Default)]
struct Attempts {
    by_name: HashMap<String, VecDeque<Instant>>,
    by_address: HashMap<IpAddr, VecDeque<Instant>>,
}

/// How long until a queue of attempt times has a free slot, if it is full.
fn wait_for_slot(times: &mut VecDeque<Instant>, max: usize) -> Option<Duration> {
    while times.front().is_some_and(|t| t.elapsed() >= FAILURE_WINDOW) {
        times.pop_front();
    }
    (times.len() >= max).then(|| {
        let oldest = times[times.len() - max];
        FAILURE_WINDOW.saturating_sub(oldest.elapsed())
    })
}

fn token() -> String {
    let mut bytes = [0u8; 32];
    // The OS generator does not fail on Linux once booted; a zero token would
    // still be unique per process only, so refuse to go on without entropy.
    getrandom::fill(&mut bytes).expect("the OS random generator");
    hex::encode(bytes)
}

/// Equal in time whatever the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    /// Opens a session; returns its cookie token.
    pub fn open(&self, user: &str, role: Role) -> String {
        let id = token();
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|_, s| s.last_seen.elapsed() < IDLE);
        live.insert(
            id.clone(),
            Session {
                user: user.into(),
                role,
                csrf: token(),
                last_seen: Instant::now(),
            },
        );
        id
    }

    pub fn close(&self, id: &str) {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    fn get(&self, id: &str) -> Option<Session> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let session = live.get_mut(id)?;
        if session.last_seen.elapsed() >= IDLE {
            live.remove(id);
            return None;
        }
        session.last_seen = Instant::now();
        Some(session.clone())
    }

    /// Counts a login attempt *before* its password is checked, so parallel
    /// guesses cannot all slip under the limit; `Err` with the wait when the
    /// name or the address has had too many lately. A success is taken back with
    /// [`Sessions::succeeded`].
    pub fn attempt(&self, ip: IpAddr, name: &str) -> Result<(), Duration> {
        let mut a = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let name = name.to_lowercase();
        let by_name = wait_for_slot(a.by_name.entry(name.clone()).or_default(), MAX_FAILURES);
        let by_address = wait_for_slot(
            a.by_address.entry(ip).or_default(),
            MAX_FAILURES_PER_ADDRESS,
        );
        if let Some(wait) = by_name.max(by_address) {
            return Err(wait);
        }
        let now = Instant::now();
        a.by_name.entry(name).or_default().push_back(now);
        a.by_address.entry(ip).or_default().push_back(now);
        Ok(())
    }

    /// The attempt was right: it does not count against the name or address.
    pub fn succeeded(&self, ip: IpAddr, name: &str) {
        let mut a = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(q) = a.by_name.get_mut(&name.to_lowercase()) {
            q.pop_back();
        }
        if let Some(q) = a.by_address.get_mut(&ip) {
            q.pop_back();
        }
    }
}

/// Why a logged-in user's request was refused (both 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The user's role does not allow it.
    Role,
    /// A state-changing request without this session's CSRF token.
    Csrf,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let why = match self {
            Refused::Role => "your role does not allow this",
            Refused::Csrf => "missing or wrong CSRF token",
        };
        (axum::http::StatusCode::FORBIDDEN, why).into_response()
    }
}

/// The logged-in user of a request. Extracting it from a request without a
/// valid session redirects to the login page.
#[derive(Clone)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub csrf: String,
    pub session: String,
}

impl User {
    /// 403 unless the user has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), Refused> {
        if self.role >= role {
            Ok(())
        } else {
            Err(Refused::Role)
        }
    }

    /// Refuses a state-changing request without this session's token.
    pub fn check_csrf(&self, form_token: &str) -> Result<(), Refused> {
        if same(form_token, &self.csrf) {
            Ok(())
        } else {
            tracing::warn!(
                "console: {} sent a request without a valid CSRF token; refused",
                self.name
            );
            Err(Refused::Csrf)
        }
    }
}

pub fn cookie_value<'a>(parts: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    parts
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn session_cookie(token: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

pub fn cleared_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

impl FromRequestParts<Arc<Console>> for User {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        let session = cookie_value(&parts.headers, COOKIE)
            .and_then(|id| console.sessions.get(id).map(|s| (id.to_string(), s)));
        match session {
            Some((id, s)) => Ok(User {
                name: s.user,
                role: s.role,
                csrf: s.csrf,
                session: id,
            }),
            None => Err(Redirect::to("/login").into_response()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttles_a_name_not_the_workstation_and_counts_before_checking() {
        let sessions = Sessions::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..MAX_FAILURES {
            assert!(sessions.attempt(a, "op1").is_ok());
        }
        // The sixth guess for op1 waits, and says how long (about 5 minutes);
        // from another address too: the limit is the name's.
        let wait = sessions.attempt(a, "OP1").unwrap_err();
        assert!(
            wait > Duration::from_secs(290) && wait <= FAILURE_WINDOW,
            "{wait:?}"
        );
        assert!(sessions.attempt(b, "op1").is_err());
        // Another operator at the same workstation still logs in.
        assert!(sessions.attempt(a, "op2").is_ok());
        sessions.succeeded(a, "op2");
        // One address cannot try many names.
        for i in 0..MAX_FAILURES_PER_ADDRESS {
            let _ = sessions.attempt(b, &format!("user{i}"));
        }
        assert!(sessions.attempt(b, "fresh").is_err());
    }

    #[test]
    fn parallel_guesses_are_counted_before_any_is_checked() {
        let sessions = std::sync::Arc::new(Sessions::default());
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let admitted: usize = (0..40)
            .map(|_| {
                let s = sessions.clone();
                std::thread::spawn(move || s.attempt(ip, "admin").is_ok())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| usize::from(h.join().unwrap()))
            .sum();
        assert_eq!(admitted, MAX_FAILURES);
    }

    #[test]
    fn sessions_carry_role_and_csrf_and_close() {
        let sessions = Sessions::default();
        let id = sessions.open("li", Role::Police);
        let s = sessions.get(&id).unwrap();
        assert_eq!((s.user.as_str(), s.role), ("li", Role::Police));
        assert_eq!(s.csrf.len(), 64);
        assert_ne!(s.csrf, id);
        sessions.close(&id);
        assert!(sessions.get(&id).is_none());
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
