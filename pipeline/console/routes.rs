//! Routes: every URL of the console, and who may use it.
//!
//! | route | role |
//! | --- | --- |
//! | `GET/POST /login`, `/assets/*` | anyone |
//! | `/`, `/live` (SSE), `/cameras`, `/cameras/{id}/thumb.jpg`, `POST /alerts/{id}/ack`, `GET /alerts/{id}`, `/evidence/*` | operator |
//! | `/video`, `/cameras/{id}`, `/cameras/{id}/live.jpg`, `/live.mp4` (live view) | operator |
//! | `/search`, `POST /alerts/{id}/tags`, `/hold`, `/export` | police |
//! | `/cameras/{id}/setup`, `/cameras/{id}/live.json` (detections, zone editor) | admin |
//!
//! Every POST checks the session's CSRF token. Evidence is served only for
//! paths the store lists as evidence, inside the store directory, with HTTP
//! Range (the clip player seeks), and each view and export is written to the
//! access log.

use super::auth::{self, User};
use super::views::{self, CameraView, SearchForm};
use super::{Console, Language, Role, live, plans};
use crate::health::RemoteAlert;
use crate::publish::{ack_message, priority_of};
use crate::store::{
    Ack, AckAction, AlertFilter, FeedCursor, OutboxMessage, Outcome, StoreError, StoredSession,
};
use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Shared = Arc<Console>;

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");
const LIVE_JS: &str = include_str!("assets/live.js");
const PLAN_JS: &str = include_str!("assets/plan.js");
/// A thumbnail is encoded once per camera in this long, whoever asks.
const THUMBNAIL_FRESH: Duration = Duration::from_secs(4);
/// Search results per page.
const PAGE: usize = 50;
/// A user fetching the same evidence file again within this is logged once.
const ACCESS_DEDUP_MS: i64 = 10 * 60 * 1000;

pub fn router(console: Shared) -> Router {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/favicon.svg", get(favicon))
        .route("/favicon.ico", get(favicon))
        .route("/logout", post(logout))
        .route("/language", post(set_language))
        .route(
            "/assets/console.css",
            get(|| asset(CSS, "text/css; charset=utf-8")),
        )
        .route(
            "/assets/console.js",
            get(|| asset(JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/assets/live.js",
            get(|| asset(LIVE_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/assets/plan.js",
            get(|| asset(PLAN_JS, "text/javascript; charset=utf-8")),
        )
        .route("/", get(wall))
        .route("/live", get(live))
        .route("/session", get(session))
        .route("/cameras", get(cameras))
        .route("/cameras/{id}/thumb.jpg", get(thumbnail))
        .route("/video", get(live::video_grid))
        .route("/cameras/{id}", get(live::camera_page))
        .route("/cameras/{id}/live.jpg", get(live::live_jpeg))
        .route("/cameras/{id}/live.mp4", get(live::live_mp4))
        .route("/cameras/{id}/live.json", get(live::live_overlay))
        .route("/cameras/{id}/setup", get(live::setup_page))
        .route("/plans", get(plans::first))
        .route("/plans/{index}", get(plans::page))
        .route("/plans/{index}/image", get(plans::image))
        .route("/plans/{index}/state", get(plans::state))
        .route("/alerts/{id}", get(alert_page))
        .route("/alerts/{id}/ack", post(acknowledge))
        .route("/alerts/{id}/sofar.mp4", get(recording_so_far))
        .route("/alerts/{id}/tags", post(tags))
        .route("/alerts/{id}/hold", post(hold))
        .route("/alerts/{id}/export", post(export))
        .route("/search", get(search))
        .route("/resolved", get(resolved))
        .route("/report", get(report))
        .route("/evidence/{*path}", get(evidence))
        .fallback(not_found)
        // Outermost first: a signed request from another console is checked,
        // then a request about another node's alert is passed on.
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            super::remote::forward_remote,
        ))
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            super::remote::accept_forwarded,
        ))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(console)
}

async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn asset(body: &'static str, kind: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

pub(super) async fn not_found(State(c): State<Shared>, user: User) -> Response {
    let t = user.lang.text();
    (
        StatusCode::NOT_FOUND,
        views::message(&c, Some(&user), t.not_found),
    )
        .into_response()
}

fn store_failed(e: StoreError) -> Response {
    match e {
        StoreError::NoAlert { .. } => StatusCode::NOT_FOUND.into_response(),
        StoreError::AlreadyDone { .. } => (StatusCode::CONFLICT, e.to_string()).into_response(),
        e => {
            tracing::error!("console: {e}: {}", crate::errors::source_chain(&e));
            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        }
    }
}

async fn login_page(State(c): State<Shared>) -> Html<String> {
    Html(views::login(&c, None).into_string())
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    password: String,
}

/// The login form must come from this console's own page.
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        None => true,
        Some(origin) => {
            host.is_some_and(|h| origin.split_once("://").is_some_and(|(_, rest)| rest == h))
        }
    }
}

async fn login(
    State(c): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let t = c.lang.text();
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "cross-origin login refused").into_response();
    }
    let ip = peer.ip();
    if let Err(wait) = c.throttle.attempt(ip, &form.user) {
        tracing::warn!(
            "console: login as {:?} from {ip} refused: too many failures",
            form.user
        );
        let minutes = wait.as_secs().div_ceil(60).max(1);
        let message = format!("{} ({minutes} {})", t.login_throttled, t.minutes);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(
                axum::http::header::RETRY_AFTER,
                wait.as_secs().max(1).to_string(),
            )],
            Html(views::login(&c, Some(&message)).into_string()),
        )
            .into_response();
    }
    let users = c.users.clone();
    let name = form.user.clone();
    let checked =
        tokio::task::spawn_blocking(move || super::users::check(&users, &name, &form.password))
            .await;
    match checked {
        Ok(Ok(Some(user))) => {
            c.throttle.succeeded(ip, &form.user);
            tracing::info!(
                "console: {} ({}) logged in from {ip}",
                user.name,
                user.role.as_str()
            );
            let token = auth::new_token();
            let session = StoredSession {
                user: user.name.clone(),
                csrf: auth::new_token(),
                password_fingerprint: auth::password_fingerprint(&user.password),
                last_seen_ms: crate::time::now_ms() as i64,
            };
            let idle_before = session.last_seen_ms - auth::IDLE_MS;
            let (stored, shared) = (token.clone(), session.clone());
            if let Err(e) = c
                .db(move |s| s.open_session(&stored, &session, idle_before))
                .await
            {
                return store_failed(e);
            }
            c.share_session(&token, super::SessionChange::Used(shared));
            (
                [(header::SET_COOKIE, auth::session_cookie(&token, c.secure))],
                Redirect::to("/"),
            )
                .into_response()
        }
        Ok(Ok(None)) => {
            tracing::warn!("console: failed login as {:?} from {ip}", form.user);
            (
                StatusCode::UNAUTHORIZED,
                Html(views::login(&c, Some(t.login_failed)).into_string()),
            )
                .into_response()
        }
        Ok(Err(e)) => {
            tracing::error!("console: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(State(c): State<Shared>, user: User, Form(form): Form<CsrfForm>) -> Response {
    if let Err(r) = user.check_csrf(&form.csrf) {
        return r.into_response();
    }
    let token = user.session.clone();
    if let Err(e) = c.db(move |s| s.close_session(&token)).await {
        return store_failed(e);
    }
    c.share_session(&user.session, super::SessionChange::Ended);
    (
        [(header::SET_COOKIE, auth::cleared_cookie())],
        Redirect::to("/login"),
    )
        .into_response()
}

fn camera_views(c: &Console) -> Vec<CameraView> {
    let fps = c.fps.lock().unwrap_or_else(|e| e.into_inner()).fps.clone();
    c.cameras
        .iter()
        .map(|(id, name)| {
            let health = c.health.camera(id);
            let state = health.as_ref().map(|h| h.state());
            let up = state
                .as_ref()
                .is_some_and(|s| s.state == Some(crate::events::CameraState::Up));
            CameraView {
                id: id.clone(),
                name: name.clone(),
                state: state.as_ref().and_then(|s| s.state),
                reason: state.and_then(|s| s.reason),
                fps: fps.get(id).copied().filter(|_| up),
                has_picture: health.as_ref().is_some_and(|h| h.picture().is_some()),
                runner: health.and_then(|h| h.runner()),
            }
        })
        .collect()
}

async fn wall(State(c): State<Shared>, user: User) -> Response {
    let max = c.config.wall_max;
    let loaded = c
        .db(move |s| Ok((s.feed_head()?, s.unresolved(max)?)))
        .await;
    match loaded {
        Ok((cursor, alerts)) => {
            let compound = c.health.compound();
            let cams = views::cameras(user.lang, &camera_views(&c), &compound);
            let elsewhere = &compound.unresolved_elsewhere;
            Html(
                views::wall(&c, &user, &alerts, elsewhere, &cursor.to_string(), cams).into_string(),
            )
            .into_response()
        }
        Err(e) => store_failed(e),
    }
}

async fn cameras(State(c): State<Shared>, user: User) -> Html<String> {
    Html(views::cameras(user.lang, &camera_views(&c), &c.health.compound()).into_string())
}

async fn thumbnail(State(c): State<Shared>, _user: User, Path(id): Path<String>) -> Response {
    let cached = c
        .thumbnails
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
        .filter(|(at, _)| at.elapsed() < THUMBNAIL_FRESH)
        .map(|(_, jpeg)| jpeg.clone());
    let jpeg = match cached {
        Some(j) => j,
        None => {
            let Some((_, picture)) = c.health.camera(&id).and_then(|h| h.picture()) else {
                return StatusCode::NOT_FOUND.into_response();
            };
            let encoded =
                tokio::task::spawn_blocking(move || live::encode_jpeg(&picture, 320)).await;
            match encoded {
                Ok(Ok(j)) => {
                    let j = Arc::new(j);
                    c.thumbnails
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(id, (Instant::now(), j.clone()));
                    j
                }
                Ok(Err(e)) => {
                    tracing::warn!("console: thumbnail of camera {id}: {e}");
                    return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                }
                Err(e) => {
                    return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
                }
            }
        }
    };
    (
        [(header::CONTENT_TYPE, "image/jpeg")],
        jpeg.as_ref().clone(),
    )
        .into_response()
}

#[derive(Deserialize)]
struct LiveQuery {
    after: Option<String>,
}

/// One card update on the live feed.
#[derive(serde::Serialize)]
struct CardUpdate {
    id: String,
    html: String,
    /// Resolved: the wall drops it.
    resolved: bool,
    pinned: bool,
}

/// The tab's icon: the brand's eye, in the wall's alarm orange.
async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#11151a"/><path d="M3 16c4-7 9-10 13-10s9 3 13 10c-4 7-9 10-13 10S7 23 3 16z" fill="none" stroke="#f08c00" stroke-width="2.5"/><circle cx="16" cy="16" r="5" fill="#f08c00"/></svg>"##,
    )
        .into_response()
}

/// How often an open live feed checks that its session still holds.
const SESSION_RECHECK: Duration = Duration::from_secs(10);

/// 204 while the session holds, 401 (from the extractor) once it does not: the
/// wall asks this when its feed breaks, to tell a restart from a lost login.
async fn session(_user: User) -> StatusCode {
    StatusCode::NO_CONTENT
}

/// What one wall's live feed has sent of other nodes' alerts.
#[derive(Default)]
struct ShownElsewhere(std::collections::HashMap<String, RemoteAlert>);

impl ShownElsewhere {
    /// The alerts of `now` that are new or changed since the last call; `now`
    /// becomes what was sent.
    fn update<'a>(&mut self, now: &'a [RemoteAlert]) -> Vec<&'a RemoteAlert> {
        let changed = now
            .iter()
            .filter(|r| self.0.get(&r.row.id) != Some(*r))
            .collect();
        self.0 = now.iter().map(|r| (r.row.id.clone(), r.clone())).collect();
        changed
    }
}

/// Returns once the watched value changes, leaving the change unseen for
/// `has_changed` (a clone is marked seen, not the caller's receiver).
async fn wait_unseen<T>(mut clone: tokio::sync::watch::Receiver<T>) {
    if clone.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The SSE event carrying a card.
fn card_event(
    c: &Console,
    user: &User,
    a: &crate::store::AlertRow,
    node: Option<&str>,
) -> SseEvent {
    let update = CardUpdate {
        id: a.id.clone(),
        html: views::card(c, user, a, node).into_string(),
        resolved: a
            .ack
            .as_ref()
            .is_some_and(|k| k.action == AckAction::Resolve),
        pinned: views::pinned(a),
    };
    SseEvent::default()
        .event("card")
        .data(serde_json::to_string(&update).unwrap_or_default())
}

/// Server-sent events: each alert that changed after the client's cursor
/// (`Last-Event-ID` on a reconnect, `?after=` from the page), as its new card.
/// In a compound, other nodes' unresolved alerts too, as the index has them:
/// all of them when the stream opens, then each that changes, and the list
/// of their ids, so the wall drops those resolved (they carry no cursor).
async fn live(
    State(c): State<Shared>,
    user: User,
    headers: HeaderMap,
    Query(q): Query<LiveQuery>,
) -> Response {
    let from_header = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<FeedCursor>().ok());
    let start = match from_header.or_else(|| q.after.as_deref().and_then(|a| a.parse().ok())) {
        Some(cursor) => cursor,
        None => match c.db(|s| s.feed_head()).await {
            Ok(head) => head,
            Err(e) => return store_failed(e),
        },
    };
    let mut feed = c.feed.clone();
    feed.borrow_and_update();
    // Marked changed: the stream opens with every other node's alert.
    let mut elsewhere = c.health.compound_changes();
    elsewhere.mark_changed();
    let stream = futures_util::stream::unfold(
        (
            c,
            user,
            start,
            Vec::<SseEvent>::new(),
            (feed, elsewhere),
            ShownElsewhere::default(),
            Instant::now(),
        ),
        |(c, user, mut cursor, mut pending, (mut feed, mut elsewhere), mut shown, mut checked)| async move {
            loop {
                if let Some(e) = pending.pop() {
                    return Some((
                        Ok::<_, Infallible>(e),
                        (c, user, cursor, pending, (feed, elsewhere), shown, checked),
                    ));
                }
                // An open stream outlives its login check: a logout, a removed
                // user or a reset password ends it within SESSION_RECHECK, and
                // the wall then asks for a new login.
                if checked.elapsed() >= SESSION_RECHECK {
                    c.session_user(&user.session).await?;
                    checked = Instant::now();
                }
                // `changed()` below marks the view seen, so ask here, not there.
                if elsewhere.has_changed().unwrap_or(false) {
                    let view = elsewhere.borrow_and_update().clone();
                    let now = &view.unresolved_elsewhere;
                    let ids: Vec<&str> = now.iter().map(|r| r.row.id.as_str()).collect();
                    pending.push(
                        SseEvent::default()
                            .event("elsewhere")
                            .data(serde_json::to_string(&ids).unwrap_or_default()),
                    );
                    for r in shown.update(now) {
                        pending.push(card_event(&c, &user, &r.row, Some(&r.node)));
                    }
                    continue;
                }
                let from = cursor;
                let changed = c
                    .db(move |s| {
                        let (ids, next) = s.feed_after(from, 500)?;
                        Ok((s.alerts_by_id(&ids)?, next))
                    })
                    .await;
                match changed {
                    Ok((rows, next)) if next != cursor => {
                        cursor = next;
                        let id = next.to_string();
                        // `pending` pops from the back: push newest first.
                        for (i, a) in rows.iter().rev().enumerate() {
                            let event = card_event(&c, &user, a, None);
                            // Only the batch's last event carries the cursor: a
                            // connection cut mid-batch resumes before it.
                            pending.push(if i == 0 { event.id(&id) } else { event });
                        }
                    }
                    Ok(_) => {
                        let remote = elsewhere.clone();
                        tokio::select! {
                            closed = feed.changed() => if closed.is_err() { return None },
                            _ = wait_unseen(remote) => {}
                            _ = tokio::time::sleep(SESSION_RECHECK) => {}
                        }
                    }
                    Err(e) => {
                        tracing::warn!("console live feed: {e}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

#[derive(Deserialize)]
pub(super) struct AckForm {
    #[serde(default)]
    pub(super) csrf: String,
    action: AckAction,
    #[serde(default)]
    note: String,
    /// Resolutions: how it ended; on site when the form does not say.
    outcome: Option<Outcome>,
}

impl AckForm {
    /// The acknowledgement this form makes, by `who`, now.
    pub(super) fn ack(&self, who: &str) -> Ack {
        Ack {
            action: self.action,
            who: who.to_string(),
            note: self.note.chars().take(500).collect(),
            at_ms: crate::time::now_ms() as i64,
            outcome: (self.action == AckAction::Resolve)
                .then(|| self.outcome.unwrap_or(Outcome::OnSite)),
        }
    }
}

async fn acknowledge(
    State(c): State<Shared>,
    user: User,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<AckForm>,
) -> Response {
    if let Err(r) = user.check_csrf(&form.csrf) {
        return r.into_response();
    }
    let ack = form.ack(&user.name);
    let alerts = c.alerts.as_ref().map(|(config, _)| config.clone());
    let (alert_id, done) = (id.clone(), ack.clone());
    let result = c
        .db(move |s| {
            let cap = alerts.as_ref().map(|a| a.outbox_max).unwrap_or(0);
            let severity = s.alert(&alert_id)?.alert.severity;
            s.acknowledge(
                &alert_id,
                &done,
                |camera| match &alerts {
                    Some(a) => vec![ack_message(a, &alert_id, camera, &severity, &done)],
                    None => Vec::new(),
                },
                cap,
            )
        })
        .await;
    if let Err(e) = result {
        return store_failed(e);
    }
    if let Some((_, notify)) = &c.alerts {
        let _ = notify.try_send(());
    }
    tracing::info!(
        "console: alert {id} {} by {}{}",
        ack.action.as_str(),
        user.name,
        if ack.note.is_empty() {
            String::new()
        } else {
            // Quoted and escaped: a newline in a note must not forge a log line.
            format!(": {:?}", ack.note)
        }
    );
    if headers.get("x-requested-with").is_some() {
        return StatusCode::NO_CONTENT.into_response();
    }
    Redirect::to(
        headers
            .get(header::REFERER)
            .and_then(|r| r.to_str().ok())
            .filter(|r| r.ends_with(&format!("/alerts/{id}")))
            .map(|_| format!("/alerts/{id}"))
            .as_deref()
            .unwrap_or("/"),
    )
    .into_response()
}

/// The message on `<prefix>/alerts/escalations`: an alert nobody took in
/// time, for the supervisor, with what the wall says about it.
pub(super) fn escalation_message(
    c: &Console,
    alerts: &crate::publish::AlertsConfig,
    a: &crate::store::AlertRow,
) -> OutboxMessage {
    let payload = serde_json::json!({
        "alert_id": a.id,
        "camera": a.camera,
        "camera_name": c.camera_name(&a.camera),
        "kind": a.kind,
        "severity": a.severity,
        "summary": c.lang.text().summary(a),
        "start_ms": a.start_wall_ms,
        "after_s": c.config.escalate_after_s,
        "at_ms": crate::time::now_ms(),
    });
    OutboxMessage {
        topic: format!("{}/alerts/escalations", alerts.topic_prefix),
        payload: payload.to_string().into_bytes(),
        retain: false,
        priority: priority_of(&a.severity),
        captured_us: None,
    }
}

async fn alert_page(State(c): State<Shared>, user: User, Path(id): Path<String>) -> Response {
    let who = user.name.clone();
    let loaded = c
        .db(move |s| {
            if !s.has_alert(&id)? {
                return Err(StoreError::NoAlert { id });
            }
            // Logged first, so the page's custody shows this view too.
            s.log_access(&who, "view", Some(&id), "alert page")?;
            let record = s.record(&id)?;
            let a = &record.alert;
            let so_far = a.end_wall_ms.is_none()
                && s.recording_so_far(&a.camera, &a.id, a.start_wall_ms)
                    .is_some();
            let verification = s
                .public_key()
                .and_then(|key| s.verify(Some(&id), &key))
                .map_err(|e| e.to_string());
            Ok((record, verification, so_far))
        })
        .await;
    match loaded {
        Ok((record, verification, so_far)) => {
            let page = views::AlertPage {
                record: &record,
                verification: verification.as_ref().map_err(|e| e.clone()),
                so_far,
            };
            let title = user.lang.text().summary(&record.alert);
            Html(views::page(&c, Some(&user), &title, views::alert(&c, &user, &page)).into_string())
                .into_response()
        }
        Err(e) => store_failed(e),
    }
}

#[derive(Deserialize)]
struct TagForm {
    #[serde(default)]
    csrf: String,
    op: String,
    text: String,
}

async fn tags(
    State(c): State<Shared>,
    user: User,
    Path(id): Path<String>,
    Form(form): Form<TagForm>,
) -> Response {
    if let Err(r) = user
        .require(Role::Police)
        .and_then(|_| user.check_csrf(&form.csrf))
    {
        return r.into_response();
    }
    let text = form.text.trim().chars().take(100).collect::<String>();
    if text.is_empty() {
        return (StatusCode::BAD_REQUEST, "empty tag").into_response();
    }
    let (alert, who) = (id.clone(), user.name.clone());
    let done = c
        .db(move |s| {
            if form.op == "remove" {
                s.untag(&alert, &text)?;
            } else {
                s.tag(&alert, &text, &who)?;
            }
            s.log_access(&who, &format!("tag {}", form.op), Some(&alert), &text)
        })
        .await;
    match done {
        Ok(()) => Redirect::to(&format!("/alerts/{id}")).into_response(),
        Err(e) => store_failed(e),
    }
}

#[derive(Deserialize)]
struct HoldForm {
    #[serde(default)]
    csrf: String,
    op: String,
    #[serde(default)]
    reason: String,
}

async fn hold(
    State(c): State<Shared>,
    user: User,
    Path(id): Path<String>,
    Form(form): Form<HoldForm>,
) -> Response {
    if let Err(r) = user
        .require(Role::Police)
        .and_then(|_| user.check_csrf(&form.csrf))
    {
        return r.into_response();
    }
    let (alert, who) = (id.clone(), user.name.clone());
    let done = c
        .db(move |s| {
            if form.op == "release" {
                s.release(&alert)?;
            } else {
                s.hold(&alert, &who, form.reason.trim())?;
            }
            s.log_access(&who, &form.op, Some(&alert), form.reason.trim())
        })
        .await;
    match done {
        Ok(()) => Redirect::to(&format!("/alerts/{id}")).into_response(),
        Err(e) => store_failed(e),
    }
}

#[derive(Deserialize)]
struct ExportForm {
    csrf: String,
    #[serde(default)]
    reason: String,
}

async fn export(
    State(c): State<Shared>,
    user: User,
    Path(id): Path<String>,
    Form(form): Form<ExportForm>,
) -> Response {
    if let Err(r) = user
        .require(Role::Police)
        .and_then(|_| user.check_csrf(&form.csrf))
    {
        return r.into_response();
    }
    let (alert, who, reason) = (
        id.clone(),
        user.name.clone(),
        form.reason.trim().to_string(),
    );
    let zone = c.zone.clone();
    let cameras = c.cameras.clone();
    let bundle = c
        .db(move |s| {
            let camera = s.alert(&alert)?.alert.camera;
            let request = crate::store::ExportRequest {
                reason: &reason,
                by: &who,
                zone: &zone,
                camera_name: cameras
                    .iter()
                    .find(|(id, _)| *id == camera)
                    .map(|(_, name)| name.as_str()),
            };
            let tmp = tempfile::Builder::new()
                .prefix("vigil-export-")
                .suffix(".zip")
                .tempfile()
                .map_err(|source| StoreError::File {
                    path: std::env::temp_dir(),
                    source,
                })?;
            let files = s.export(&alert, &request, tmp.path())?;
            let bytes = std::fs::read(tmp.path()).map_err(|source| StoreError::File {
                path: tmp.path().into(),
                source,
            })?;
            s.log_access(
                &who,
                "export",
                Some(&alert),
                &format!(
                    "bundle of {files} file(s), sha256 {}; {reason}",
                    crate::store::manifest::sha256_hex(&bytes)
                ),
            )?;
            Ok(bytes)
        })
        .await;
    match bundle {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "application/zip".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{id}.zip\""),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => store_failed(e),
    }
}

#[derive(Deserialize, Default)]
struct SearchQuery {
    #[serde(default)]
    camera: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    state: String,
    /// `<start ms>:<id>` of the previous page's last row.
    before: Option<String>,
}

/// `YYYY-MM-DDTHH:MM[:SS]` (a `datetime-local` field) in the console's zone.
fn local_ms(text: &str, zone: &jiff::tz::TimeZone) -> Option<i64> {
    let dt: jiff::civil::DateTime = text.trim().parse().ok()?;
    Some(dt.to_zoned(zone.clone()).ok()?.timestamp().as_millisecond())
}

/// A time as a `datetime-local` field shows it: a date alone ("2026-12-01",
/// accepted and applied as midnight) left the field blank, hiding the filter.
fn form_time(text: &str) -> String {
    match text.trim().parse::<jiff::civil::DateTime>() {
        Ok(dt) if dt.second() == 0 => dt.strftime("%Y-%m-%dT%H:%M").to_string(),
        Ok(dt) => dt.strftime("%Y-%m-%dT%H:%M:%S").to_string(),
        Err(_) => text.to_string(),
    }
}

#[derive(Deserialize)]
struct ReportQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    /// Which page of the report's rows (0 first); the summary covers them all.
    #[serde(default)]
    page: usize,
}

#[derive(Deserialize)]
struct LanguageForm {
    #[serde(default)]
    csrf: String,
    lang: Language,
}

/// `POST /language`: the user's own language, kept in the users file so it
/// follows them to every workstation and survives restarts.
async fn set_language(
    State(c): State<Shared>,
    user: User,
    headers: HeaderMap,
    Form(form): Form<LanguageForm>,
) -> Response {
    if let Err(r) = user.check_csrf(&form.csrf) {
        return r.into_response();
    }
    let (path, name) = (c.users.clone(), user.name.clone());
    let lang = (form.lang != c.lang).then_some(form.lang);
    let peers = c.compound.clone();
    let chosen = move || {
        super::users::set_language(&path, &name, lang)?;
        // In a compound the file mirrors PostgreSQL's list: the choice goes
        // there too, or the next mirror would undo it.
        if let (Some(peers), Some(u)) = (peers, super::users::find(&path, &name)?)
            && let Err(e) = peers.put_user(&u.name, &super::users::record(&u))
        {
            tracing::warn!(
                "console: language of {name}: the compound's PostgreSQL: {e}; kept on this node until its users are mirrored again"
            );
        }
        Ok::<_, super::users::UsersError>(())
    };
    match tokio::task::spawn_blocking(chosen).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::error!("console: language of {}: {e}", user.name);
            return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
        }
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
    // Back to the page it was chosen on, if that was one of ours.
    let back = headers
        .get(header::REFERER)
        .and_then(|r| r.to_str().ok())
        .and_then(|r| r.split_once("://").map(|(_, rest)| rest))
        .and_then(|rest| rest.find('/').map(|i| rest[i..].to_string()))
        .filter(|p| p.starts_with('/') && !p.starts_with("//"))
        .unwrap_or_else(|| "/".into());
    Redirect::to(&back).into_response()
}

/// The shift report for a period (default: the last 12 hours), every role.
async fn report(State(c): State<Shared>, user: User, Query(q): Query<ReportQuery>) -> Response {
    let zone = c.zone.clone();
    let now = crate::time::now_ms() as i64;
    let to_ms = local_ms(&q.to, &zone).unwrap_or(now);
    let from_ms = local_ms(&q.from, &zone).unwrap_or(to_ms - 12 * 3600 * 1000);
    let field = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| {
                t.to_zoned(zone.clone())
                    .strftime("%Y-%m-%dT%H:%M")
                    .to_string()
            })
            .unwrap_or_default()
    };
    // A compound's report covers every node's alerts.
    let found = c
        .compound_or_local(
            "shift report",
            move |peers| peers.shift(from_ms, to_ms),
            move |s| s.shift(from_ms, to_ms),
        )
        .await;
    let (rows, compound_down) = match found {
        Ok(found) => found,
        Err(e) => return store_failed(e),
    };
    let t = user.lang.text();
    let period = (field(from_ms), field(to_ms));
    page(
        &c,
        &user,
        t.report,
        views::report(&c, user.lang, period, &rows, q.page, compound_down),
    )
}

/// A whole page for a signed-in user.
fn page(c: &Console, user: &User, title: &str, body: maud::Markup) -> Response {
    Html(views::page(c, Some(user), title, body).into_string()).into_response()
}

/// Alerts resolved in the last 24 hours (every role; search is police-only).
async fn resolved(State(c): State<Shared>, user: User) -> Response {
    let since = crate::time::now_ms() as i64 - 24 * 3600 * 1000;
    let found = c
        .compound_or_local(
            "recently resolved",
            move |peers| peers.resolved_since(since, PAGE),
            move |s| s.resolved_since(since, PAGE),
        )
        .await;
    let (rows, compound_down) = match found {
        Ok(found) => found,
        Err(e) => return store_failed(e),
    };
    let t = user.lang.text();
    page(
        &c,
        &user,
        t.resolved_recently,
        views::resolved(&c, user.lang, &rows, compound_down),
    )
}

async fn search(State(c): State<Shared>, user: User, Query(q): Query<SearchQuery>) -> Response {
    if let Err(r) = user.require(Role::Police) {
        return r.into_response();
    }
    let some = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let mut bad = None;
    let mut time = |field: &str, text: &str| {
        let t = some(text)?;
        let ms = local_ms(&t, &c.zone);
        if ms.is_none() {
            bad = Some(format!("{field}: {t:?} is not a date and time"));
        }
        ms
    };
    let since_ms = time("since", &q.since);
    let until_ms = time("until", &q.until);
    if let Some(b) = bad {
        return (StatusCode::BAD_REQUEST, b).into_response();
    }
    let filter = AlertFilter {
        camera: some(&q.camera),
        kind: some(&q.kind),
        since_ms,
        until_ms,
        tag: some(&q.tag),
        state: some(&q.state),
        limit: Some(PAGE),
        before: q.before.as_deref().and_then(|b| {
            let (ms, id) = b.split_once(':')?;
            Some((ms.parse().ok()?, id.to_string()))
        }),
    };
    let started = Instant::now();
    // A compound's console searches every node's alerts, in PostgreSQL; while
    // PostgreSQL is away, this node's own, and says so.
    let f = filter.clone();
    let found = c
        .compound_or_local(
            "search",
            move |peers| {
                peers
                    .search(&f)
                    .map(|rows| rows.into_iter().map(|(n, r)| (Some(n), r)).collect())
            },
            move |s| {
                s.alerts(&filter)
                    .map(|rows| rows.into_iter().map(|r| (None, r)).collect())
            },
        )
        .await;
    let (rows, compound_down): (Vec<(Option<String>, crate::store::AlertRow)>, bool) = match found {
        Ok(found) => found,
        Err(e) => return store_failed(e),
    };
    let took_ms = started.elapsed().as_secs_f64() * 1e3;
    metrics::histogram!("vigil_console_search_seconds").record(took_ms / 1e3);
    let next = (rows.len() == PAGE).then(|| {
        let last = &rows[rows.len() - 1].1;
        let mut url = url_query(&[
            ("camera", &q.camera),
            ("kind", &q.kind),
            ("since", &q.since),
            ("until", &q.until),
            ("tag", &q.tag),
            ("state", &q.state),
        ]);
        url.push_str(&format!(
            "&before={}:{}",
            last.start_wall_ms,
            encode(&last.id)
        ));
        format!("/search?{url}")
    });
    let form = SearchForm {
        camera: q.camera.clone(),
        kind: q.kind.clone(),
        since: form_time(&q.since),
        until: form_time(&q.until),
        tag: q.tag.clone(),
        state: q.state.clone(),
    };
    let t = user.lang.text();
    page(
        &c,
        &user,
        t.search,
        views::search(&c, &user, &form, &rows, next, took_ms, compound_down),
    )
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn url_query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A path under `evidence/` as the store records it, or `None` when it tries
/// to leave that directory.
pub fn evidence_rel(path: &str) -> Option<String> {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    ok.then(|| format!("evidence/{path}"))
}

async fn evidence(
    State(c): State<Shared>,
    user: User,
    Path(path): Path<String>,
    request: Request,
) -> Response {
    let Some(rel) = evidence_rel(&path) else {
        tracing::warn!(
            "console: {} asked for evidence path {path:?}: refused",
            user.name
        );
        return (StatusCode::BAD_REQUEST, "refused: not an evidence path").into_response();
    };
    let who = user.name.clone();
    let lookup = rel.clone();
    // The wall shows every card's annotated snapshot: that is the wall, not
    // someone opening evidence, and would bury real views in the access log.
    let wall_picture = request.uri().query() == Some("wall") && rel.ends_with("-annotated.jpg");
    let owner = c
        .db(move |s| {
            let Some(alert) = s.evidence_owner(&lookup)? else {
                return Ok(None);
            };
            let since = crate::time::now_ms() as i64 - ACCESS_DEDUP_MS;
            if !wall_picture && !s.accessed_since(&who, "file", &lookup, since)? {
                s.log_access(&who, "file", Some(&alert), &lookup)?;
            }
            Ok(Some(s.dir().join(&lookup)))
        })
        .await;
    let abs = match owner {
        Ok(Some(abs)) => abs,
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(e) => return store_failed(e),
    };
    // The row names it, but a symlink could still point out: the file must
    // really be inside the store's `evidence/`, never beside the database or
    // the signing key.
    let evidence_dir = c.store.storage.dir(&c.store.base).join("evidence");
    let inside = match (abs.canonicalize(), evidence_dir.canonicalize()) {
        (Ok(file), Ok(dir)) => file.starts_with(dir),
        _ => false,
    };
    if !inside {
        return StatusCode::NOT_FOUND.into_response();
    }
    use tower::ServiceExt;
    match tower_http::services::ServeFile::new(&abs)
        .oneshot(request)
        .await
    {
        Ok(mut response) => {
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=3600"),
            );
            response.into_response()
        }
        Err(e) => match e {},
    }
}

/// `GET /alerts/{id}/sofar.mp4`: an open alert's recording up to now, a
/// fragmented MP4 that grows while the clip is written (see `record/clip.rs`);
/// logged like any evidence file. Gone (404) once the clip is complete.
async fn recording_so_far(
    State(c): State<Shared>,
    user: User,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let who = user.name.clone();
    let found = c
        .db(move |s| {
            let a = s.alert(&id)?.alert;
            let Some((rel, abs)) = s.recording_so_far(&a.camera, &a.id, a.start_wall_ms) else {
                return Ok(None);
            };
            let since = crate::time::now_ms() as i64 - ACCESS_DEDUP_MS;
            if !s.accessed_since(&who, "file", &rel, since)? {
                s.log_access(&who, "file", Some(&a.id), &rel)?;
            }
            Ok(Some(abs))
        })
        .await;
    let abs = match found {
        Ok(Some(abs)) => abs,
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(e) => return store_failed(e),
    };
    use tower::ServiceExt;
    match tower_http::services::ServeFile::new(&abs)
        .oneshot(request)
        .await
    {
        Ok(mut response) => {
            // It grows: never cached.
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response.into_response()
        }
        Err(e) => match e {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wall_is_sent_each_other_node_alert_once_and_again_when_it_changes() {
        let remote = |id: &str, taken: Option<&str>| RemoteAlert {
            node: "node-a".into(),
            row: crate::store::AlertRow {
                id: id.into(),
                ack: taken.map(|who| crate::store::Ack {
                    action: AckAction::Ack,
                    who: who.into(),
                    note: String::new(),
                    at_ms: 1,
                    outcome: None,
                }),
                ..Default::default()
            },
        };
        let ids = |v: Vec<&RemoteAlert>| v.iter().map(|r| r.row.id.clone()).collect::<Vec<_>>();
        let mut shown = ShownElsewhere::default();
        let first = [remote("a-1", None), remote("a-2", None)];
        assert_eq!(ids(shown.update(&first)), ["a-1", "a-2"], "all on opening");
        assert!(shown.update(&first).is_empty(), "nothing new");
        let taken = [remote("a-1", Some("op@node-b")), remote("a-2", None)];
        assert_eq!(ids(shown.update(&taken)), ["a-1"], "taken: its card again");
        let resolved = [remote("a-2", None)];
        assert!(
            shown.update(&resolved).is_empty(),
            "a resolved alert goes with the id list, not as a card"
        );
        assert_eq!(ids(shown.update(&taken)), ["a-1"], "back in the index");
    }

    #[test]
    fn search_times_show_in_the_form_as_they_were_applied() {
        assert_eq!(form_time("2026-12-01"), "2026-12-01T00:00");
        assert_eq!(form_time("2026-12-01T08:30"), "2026-12-01T08:30");
        assert_eq!(form_time("2026-12-01T08:30:15"), "2026-12-01T08:30:15");
        assert_eq!(form_time(""), "");
        let zone = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        assert_eq!(
            local_ms("2026-12-01", &zone),
            local_ms(&form_time("2026-12-01"), &zone)
        );
    }

    #[test]
    fn evidence_paths_cannot_leave_the_evidence_directory() {
        assert_eq!(
            evidence_rel("lobby/2026-11-28/a-clip.mp4").as_deref(),
            Some("evidence/lobby/2026-11-28/a-clip.mp4")
        );
        for bad in [
            "../vigil.db",
            "lobby/../../signing.key",
            "/etc/passwd",
            "a//b",
            "a/./b",
            "",
            "a\\..\\b",
        ] {
            assert_eq!(evidence_rel(bad), None, "{bad}");
        }
    }

    #[test]
    fn local_times_are_read_in_the_console_zone() {
        let shanghai = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        assert_eq!(
            local_ms("2026-11-28T08:00", &shanghai),
            Some(1_795_824_000_000)
        );
        assert_eq!(local_ms("yesterday", &shanghai), None);
    }

    #[test]
    fn cross_origin_logins_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h));
    }
}
