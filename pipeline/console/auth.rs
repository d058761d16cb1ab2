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
pub const MAX_FAILURES: usize = 5;
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
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
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

    /// False when `ip` failed too often lately.
    pub fn may_try(&self, ip: IpAddr) -> bool {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let recent = failures.entry(ip).or_default();
        while recent
            .front()
            .is_some_and(|t| t.elapsed() >= FAILURE_WINDOW)
        {
            recent.pop_front();
        }
        recent.len() < MAX_FAILURES
    }

    pub fn failed(&self, ip: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.entry(ip).or_default().push_back(Instant::now());
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
    fn throttles_an_address_after_repeated_failures_only() {
        let sessions = Sessions::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..MAX_FAILURES {
            assert!(sessions.may_try(a));
            sessions.failed(a);
        }
        assert!(!sessions.may_try(a));
        assert!(sessions.may_try(b));
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
