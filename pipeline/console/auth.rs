//! Auth: sessions, CSRF tokens and login throttling.
//!
//! A session is a random 256-bit token in an `HttpOnly`, `SameSite=Strict`
//! cookie (`Secure` under TLS), stored (as its SHA-256) in the store, so a
//! restart logs nobody out and an open wall resumes. Every request checks it
//! against the users file as it is now: a deleted user or a reset password
//! ends the session, and the role is the file's current one, so a demotion
//! applies at once. Each session has its own CSRF token, required on every
//! state-changing request as a form field or the `X-CSRF-Token` header.
//! Logins are throttled per user name and per address, counted before the
//! password is checked.

use super::{Console, Role};
use crate::store::StoredSession;
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

/// Login attempts not (yet) known to have succeeded, by name and address.
#[derive(Default)]
pub struct LoginThrottle {
    attempts: Mutex<Attempts>,
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

/// A new random token (session cookies and CSRF tokens).
pub fn new_token() -> String {
    token()
}

/// A session unused this long is gone, in ms.
pub const IDLE_MS: i64 = IDLE.as_millis() as i64;
/// `last_seen` is written at most this often: a wall polls every few seconds.
pub const TOUCH_EVERY_MS: i64 = 60_000;

/// What a stored session is worth now.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Valid, with the user's current role.
    Valid(Role),
    /// Unused for [`IDLE`].
    Expired,
    /// The user was deleted or the password reset since the login.
    Revoked(&'static str),
}

/// SHA-256 of a user's password hash: a session remembers it to notice a reset.
pub fn password_fingerprint(phc: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(phc.as_bytes()))
}

/// Judges a stored session against the users file as it is now.
pub fn judge(session: &StoredSession, user: Option<&super::users::User>, now_ms: i64) -> Verdict {
    if now_ms - session.last_seen_ms >= IDLE_MS {
        return Verdict::Expired;
    }
    match user {
        None => Verdict::Revoked("the user was removed"),
        Some(u) if password_fingerprint(&u.password) != session.password_fingerprint => {
            Verdict::Revoked("the password was changed")
        }
        Some(u) => Verdict::Valid(u.role),
    }
}

impl LoginThrottle {
    /// Counts a login attempt *before* its password is checked, so parallel
    /// guesses cannot all slip under the limit; `Err` with the wait when the
    /// name or the address has had too many lately. A success is taken back with
    /// [`LoginThrottle::succeeded`].
    pub fn attempt(&self, ip: IpAddr, name: &str) -> Result<(), Duration> {
        let mut a = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
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
        let mut a = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(q) = a.by_name.get_mut(&name.to_lowercase()) {
            q.pop_back();
        }
        if let Some(q) = a.by_address.get_mut(&ip) {
            q.pop_back();
        }
    }
}

/// Why a logged-in user's request was refused (both 403), in the console's
/// language: a page that says why and leads back, not a bare English line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub why: Why,
    pub lang: super::text::Language,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The user's role does not allow it.
    Role,
    /// A state-changing request without this session's CSRF token.
    Csrf,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let t = self.lang.text();
        let why = match self.why {
            Why::Role => t.refused_role,
            Why::Csrf => t.refused_csrf,
        };
        let page = maud::html! {
            (maud::DOCTYPE)
            html lang=(self.lang.tag()) {
                (super::views::head(self.lang, why))
                body { main.refusedpage { p.error { (why) } a.button href="/" { (t.back_to_wall) } } }
            }
        };
        (
            axum::http::StatusCode::FORBIDDEN,
            axum::response::Html(page.into_string()),
        )
            .into_response()
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
    /// The console's language, for what is said to this user.
    pub lang: super::text::Language,
}

impl User {
    /// 403 unless the user has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), Refused> {
        if self.role >= role {
            Ok(())
        } else {
            Err(Refused {
                why: Why::Role,
                lang: self.lang,
            })
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
            Err(Refused {
                why: Why::Csrf,
                lang: self.lang,
            })
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

/// Pages get the login form; the wall's scripts (event streams, `fetch` with
/// `X-Requested-With`) get 401, so they can show a full-screen re-login
/// instead of a login page inside a panel.
fn not_logged_in(parts: &Parts) -> Response {
    let accept = parts
        .headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("text/event-stream") || parts.headers.contains_key("x-requested-with") {
        axum::http::StatusCode::UNAUTHORIZED.into_response()
    } else {
        Redirect::to("/login").into_response()
    }
}

impl FromRequestParts<Arc<Console>> for User {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        // Another console's user, vouched for with the compound's secret.
        if let Some(f) = parts.extensions.get::<crate::compound::Forwarded>() {
            return super::remote::forwarded_user(f).ok_or_else(|| not_logged_in(parts));
        }
        let Some(token) = cookie_value(&parts.headers, COOKIE) else {
            return Err(not_logged_in(parts));
        };
        match console.session_user(token).await {
            Some(user) => Ok(user),
            None => Err(not_logged_in(parts)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttles_a_name_not_the_workstation_and_counts_before_checking() {
        let sessions = LoginThrottle::default();
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
        let sessions = std::sync::Arc::new(LoginThrottle::default());
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
    fn a_session_ends_with_idleness_removal_or_a_new_password_and_follows_the_role() {
        let user = |role, password: &str| super::super::users::User {
            name: "li".into(),
            role,
            password: password.into(),
            lang: None,
        };
        let session = StoredSession {
            user: "li".into(),
            csrf: new_token(),
            password_fingerprint: password_fingerprint("$argon2id$old"),
            last_seen_ms: 1_000,
        };
        let police = user(Role::Police, "$argon2id$old");
        assert_eq!(
            judge(&session, Some(&police), 2_000),
            Verdict::Valid(Role::Police)
        );
        // Demoted: the next request has the new role.
        let demoted = user(Role::Operator, "$argon2id$old");
        assert_eq!(
            judge(&session, Some(&demoted), 2_000),
            Verdict::Valid(Role::Operator)
        );
        let reset = user(Role::Police, "$argon2id$new");
        assert!(matches!(
            judge(&session, Some(&reset), 2_000),
            Verdict::Revoked(_)
        ));
        assert!(matches!(judge(&session, None, 2_000), Verdict::Revoked(_)));
        assert_eq!(
            judge(&session, Some(&police), 1_000 + IDLE_MS),
            Verdict::Expired
        );
        assert_eq!(session.csrf.len(), 64);
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
