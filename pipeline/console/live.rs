//! Live view: each camera's picture a few times a second for operators (a
//! grid of every camera, a camera's page, beside an alert), and for
//! integrators the same picture with what the detector made of it, under a
//! zone and line editor.
//!
//! Frames come on demand (see `health.rs`): a request marks its camera watched
//! for a few seconds, and only then does the camera worker keep frames. One
//! JPEG is encoded per kept frame whoever asks, so ten browsers on one camera
//! cost one encode, and encoding runs on the blocking pool, never on a camera
//! worker. Every source gets the same path (JPEG over plain HTTP requests), so
//! a grid of twelve cameras never runs into the browser's six connections per
//! host that long-lived streams would.

use super::auth::User;
use super::views;
use super::{Console, Language, Role};
use crate::source::Picture;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use maud::{Markup, html};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

type Shared = Arc<Console>;

/// Live pictures are encoded at most this wide: sharp on a control-room tile,
/// small enough (about 40 KB) for a phone.
const LIVE_WIDTH: u32 = 640;
/// How often each page asks for a new picture, in milliseconds.
const GRID_EVERY_MS: u32 = 500;
const CAMERA_EVERY_MS: u32 = 200;
const SETUP_EVERY_MS: u32 = 250;

/// The newest encoded live picture of a camera, by the instant its frame was kept.
pub(super) type LiveJpeg = (Instant, Arc<Vec<u8>>);

/// A picture as a JPEG at most `max_width` wide (aspect kept).
pub(super) fn encode_jpeg(picture: &Picture, max_width: u32) -> Result<Vec<u8>, String> {
    let small = picture.to_rgb_within(max_width)?;
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 75)
        .encode_image(&small)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// The camera's newest picture as a JPEG, encoded once per frame whoever
/// asks; marks the camera watched. `None`: unknown camera or no picture yet.
async fn newest_jpeg(c: &Shared, id: &str) -> Option<LiveJpeg> {
    let health = c.health.camera(id)?;
    health.want_live();
    let (kept, picture) = health.newest_picture()?;
    let cached = c
        .live_jpegs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(id)
        .filter(|(at, _)| *at == kept)
        .cloned();
    if cached.is_some() {
        return cached;
    }
    let encoded = tokio::task::spawn_blocking(move || encode_jpeg(&picture, LIVE_WIDTH)).await;
    match encoded {
        Ok(Ok(jpeg)) => {
            let live = (kept, Arc::new(jpeg));
            c.live_jpegs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id.to_string(), live.clone());
            Some(live)
        }
        Ok(Err(e)) => {
            tracing::warn!("console: live picture of camera {id}: {e}");
            None
        }
        Err(e) => {
            tracing::warn!("console: live picture of camera {id}: {e}");
            None
        }
    }
}

/// `GET /cameras/{id}/live.jpg`: the newest picture; `x-vigil-age-ms` says how
/// long ago its frame was kept.
pub(super) async fn live_jpeg(
    State(c): State<Shared>,
    _user: User,
    Path(id): Path<String>,
) -> Response {
    let Some((kept, jpeg)) = newest_jpeg(&c, &id).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    (
        [
            (header::CONTENT_TYPE, "image/jpeg".to_string()),
            (
                header::HeaderName::from_static("x-vigil-age-ms"),
                kept.elapsed().as_millis().to_string(),
            ),
        ],
        jpeg.as_ref().clone(),
    )
        .into_response()
}

/// What the setup page draws: the picture and, when it is a live frame, the
/// detector's view of that same frame, over the camera's configured zones.
#[derive(Serialize)]
struct Overlay<'a> {
    age_ms: u128,
    jpeg: String,
    trace: Option<&'a crate::inspect::FrameTrace>,
    zones: &'a [crate::rules::ZoneConfig],
    lines: &'a [crate::rules::LineConfig],
}

/// `GET /cameras/{id}/live.json` (admin): the newest live frame with its
/// detections, tracks and dwell timers, and the camera's zones and lines.
/// The picture travels inside, so the boxes always match it.
pub(super) async fn live_overlay(
    State(c): State<Shared>,
    user: User,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = user.require(Role::Admin) {
        return r.into_response();
    }
    let Some(health) = c.health.camera(&id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some((kept, jpeg)) = newest_jpeg(&c, &id).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let live = health.live().filter(|f| f.kept == kept);
    let layout = c.layouts.get(&id);
    let overlay = Overlay {
        age_ms: kept.elapsed().as_millis(),
        jpeg: format!(
            "data:image/jpeg;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(jpeg.as_slice())
        ),
        trace: live.as_ref().map(|f| &f.trace),
        zones: layout.map(|l| l.zones.as_slice()).unwrap_or_default(),
        lines: layout.map(|l| l.lines.as_slice()).unwrap_or_default(),
    };
    axum::Json(overlay).into_response()
}

/// One live picture: polled by `live.js` every `every_ms`, with its delay.
/// An H.264 camera shown alone (its page, an alert's) plays its own video
/// instead (`live.mp4`), with the JPEGs as the fallback; a grid keeps JPEGs,
/// whose plain requests never run into the browser's six connections per host.
pub(super) fn live_picture(
    console: &Console,
    lang: Language,
    id: &str,
    every_ms: u32,
    alone: bool,
) -> Markup {
    let t = lang.text();
    let passthrough = alone
        && console
            .recorders
            .get(id)
            .and_then(|r| r.upgrade())
            .is_some_and(|r| r.can_watch());
    html! {
        figure.live {
            @if passthrough {
                video data-passthrough={"/cameras/" (id) "/live.mp4"} muted autoplay playsinline {}
            }
            img data-live={"/cameras/" (id) "/live.jpg"} data-every=(every_ms) alt=(console.camera_name(id))
                hidden[passthrough] data-fallback[passthrough];
            figcaption {
                (t.live_video) " · " (console.camera_name(id)) " · " (t.picture_age) " "
                span.age { "–" } " " (t.seconds_ago)
            }
        }
    }
}

/// The live pages' script, on the pages that show live pictures only.
pub(super) fn script() -> Markup {
    html! { script src="/assets/live.js" defer {} }
}

/// `GET /video`: every camera live, each linking to its page.
pub(super) async fn video_grid(State(c): State<Shared>, user: User) -> Html<String> {
    let t = user.lang.text();
    let body = html! {
        h1 { (t.live_video) }
        div.livegrid {
            @for (id, _) in &c.cameras {
                a href={"/cameras/" (id)} { (live_picture(&c, user.lang, id, GRID_EVERY_MS, false)) }
            }
        }
        (script())
    };
    Html(views::page(&c, Some(&user), t.live_video, body).into_string())
}

/// `GET /cameras/{id}`: one camera live, large; the setup link for admins.
pub(super) async fn camera_page(
    State(c): State<Shared>,
    user: User,
    Path(id): Path<String>,
) -> Response {
    if c.health.camera(&id).is_none() {
        return super::routes::not_found(State(c), user).await;
    }
    let t = user.lang.text();
    let name = c.camera_name(&id).to_string();
    let body = html! {
        h1 { (name) }
        div.camerapage { (live_picture(&c, user.lang, &id, CAMERA_EVERY_MS, true)) }
        @if user.role >= Role::Admin {
            p { a href={"/cameras/" (id) "/setup"} { (t.camera_setup) } }
        }
        (script())
    };
    Html(views::page(&c, Some(&user), &name, body).into_string()).into_response()
}

/// `GET /cameras/{id}/live.mp4`: an H.264 camera's own video, live, as a
/// fragmented MP4 that never ends (see `record/live.rs`); 404 for cameras of
/// other codecs, whose pages poll JPEGs.
pub(super) async fn live_mp4(
    State(c): State<Shared>,
    _user: User,
    Path(id): Path<String>,
) -> Response {
    let Some(recorder) = c.recorders.get(&id).and_then(|r| r.upgrade()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let stream = match tokio::task::spawn_blocking(move || recorder.watch()).await {
        Ok(Some(Ok(stream))) => stream,
        Ok(Some(Err(e))) => {
            tracing::warn!("console: live video of camera {id}: {e}");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let body = futures_util::stream::unfold(stream, |mut stream| async move {
        let chunk = stream.chunks.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), stream))
    });
    (
        [
            (header::CONTENT_TYPE, "video/mp4"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

/// `GET /cameras/{id}/setup` (admin): the live picture with detections,
/// tracks, dwell timers, zones and lines, and the editor that turns clicks
/// into the TOML `vigil check` reads.
pub(super) async fn setup_page(
    State(c): State<Shared>,
    user: User,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = user.require(Role::Admin) {
        return r.into_response();
    }
    if c.health.camera(&id).is_none() {
        return super::routes::not_found(State(c), user).await;
    }
    let t = user.lang.text();
    let name = c.camera_name(&id).to_string();
    let body = html! {
        h1 { (t.camera_setup) " · " (name) }
        div.setup data-overlay={"/cameras/" (id) "/live.json"} data-every=(SETUP_EVERY_MS) {
            canvas #scene width="640" height="360" {}
            div.editor {
                div.modes {
                    button type="button" data-mode="zone" .on { (t.draw_zone) }
                    button type="button" data-mode="line" { (t.draw_line) }
                }
                label { (t.name) " " input #drawname type="text" value="zone-1" maxlength="64"; }
                div.modes {
                    button #undo type="button" { (t.undo) }
                    button #clear type="button" { (t.clear) }
                }
                p.help { (t.editor_help) }
                pre #toml {}
                p.delay { (t.picture_age) " " span.age { "–" } " " (t.seconds_ago) }
            }
        }
        (script())
    };
    Html(views::page(&c, Some(&user), t.camera_setup, body).into_string()).into_response()
}
