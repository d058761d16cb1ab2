//! Site plans: where each camera is. A plan is a picture of a building or a
//! floor from the config (`[[console.plans]]`) with a pin per camera, placed by
//! fractions of the picture; a pin flashes while its camera has an alert
//! nobody has taken, glows while one is in progress, and is struck through
//! while the camera is down. Clicking a pin opens the camera's live page.
//!
//! The page asks `/plans/{i}/state` every two seconds: one small JSON for every
//! pin, read from the store's unresolved alerts and the cameras' health, so a
//! plan on a wall screen stays current without the alert feed's machinery.

use super::auth::User;
use super::{Console, views};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

type Shared = Arc<Console>;

/// How often a plan page asks for its pins' state, in milliseconds.
const STATE_EVERY_MS: u32 = 2000;

/// One `[[console.plans]]`: a building's or a floor's picture with its cameras.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    /// What the plan shows, e.g. "B2 栋 1 楼".
    pub name: String,
    /// The picture: PNG, JPEG, GIF, WebP or SVG, relative to the config.
    pub image: PathBuf,
    /// Camera id → its pin, as fractions of the picture's width and height
    /// from the top left: `lobby-b2 = [0.42, 0.63]`.
    pub pins: BTreeMap<String, [f64; 2]>,
}

impl PlanConfig {
    /// The picture's content type, by its extension; `None`: not a picture a
    /// browser shows.
    pub fn content_type(&self) -> Option<&'static str> {
        let ext = self.image.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "png" => "image/png",
            "jpg" | "jpeg" => "image/jpeg",
            "gif" => "image/gif",
            "webp" => "image/webp",
            "svg" => "image/svg+xml",
            _ => return None,
        })
    }

    /// What `vigil check` says of this plan, as (field, problem), given the
    /// config's directory and its camera ids.
    pub fn problems(
        &self,
        index: usize,
        base: &std::path::Path,
        cameras: &[&str],
    ) -> Vec<(String, String)> {
        let field = |f: &str| format!("console.plans[{index}].{f}");
        let mut out = Vec::new();
        if self.name.trim().is_empty() {
            out.push((field("name"), "must not be empty".into()));
        }
        let path = base.join(&self.image);
        if self.content_type().is_none() {
            out.push((
                field("image"),
                format!(
                    "{}: expected a .png, .jpg, .gif, .webp or .svg picture",
                    path.display()
                ),
            ));
        } else if let Err(e) = std::fs::File::open(&path) {
            out.push((field("image"), format!("{}: {e}", path.display())));
        }
        if self.pins.is_empty() {
            out.push((field("pins"), "place at least one camera".into()));
        }
        for (camera, [x, y]) in &self.pins {
            if !cameras.contains(&camera.as_str()) {
                out.push((
                    field(&format!("pins.{camera}")),
                    format!("no camera has the id {camera:?}"),
                ));
            }
            if !(0.0..=1.0).contains(x) || !(0.0..=1.0).contains(y) {
                out.push((
                    field(&format!("pins.{camera}")),
                    format!("[{x}, {y}] is not inside the picture: both must be fractions 0..1"),
                ));
            }
        }
        out
    }
}

/// A pin's state as the plan page shows it.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct PinState {
    /// The highest severity among the camera's alerts nobody has taken.
    pub alarm: Option<String>,
    /// Unresolved alerts of the camera, taken or not.
    pub open: usize,
    /// The camera is reconnecting or failed: nobody is watching there.
    pub down: bool,
}

/// Each pinned camera's state from the unresolved alerts and the cameras
/// that are down.
pub fn pin_states(
    plan: &PlanConfig,
    unresolved: &[crate::store::AlertRow],
    down: &[&str],
) -> BTreeMap<String, PinState> {
    let rank = |s: &str| match s {
        "critical" => 3,
        "high" => 2,
        "warning" => 1,
        _ => 0,
    };
    plan.pins
        .keys()
        .map(|camera| {
            let mut pin = PinState {
                down: down.contains(&camera.as_str()),
                ..PinState::default()
            };
            for a in unresolved.iter().filter(|a| &a.camera == camera) {
                pin.open += 1;
                if a.ack.is_none()
                    && pin
                        .alarm
                        .as_deref()
                        .is_none_or(|s| rank(&a.severity) > rank(s))
                {
                    pin.alarm = Some(a.severity.clone());
                }
            }
            (camera.clone(), pin)
        })
        .collect()
}

/// `GET /plans`: the first plan, or a page saying none is configured.
pub async fn first(State(c): State<Shared>, user: User) -> Response {
    if c.config.plans.is_empty() {
        let t = user.lang.text();
        return Html(views::message(&c, Some(&user), t.no_plans).into_string()).into_response();
    }
    Redirect::to("/plans/0").into_response()
}

/// `GET /plans/{i}`: the plan with its pins, and tabs to the others.
pub async fn page(State(c): State<Shared>, user: User, Path(index): Path<usize>) -> Response {
    let Some(p) = c.config.plans.get(index) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let t = user.lang.text();
    let body = html! {
        h1 { (t.site_plan) }
        @if c.config.plans.len() > 1 {
            nav.plantabs {
                @for (i, other) in c.config.plans.iter().enumerate() {
                    @if i == index { strong { (other.name) } } @else { a href={"/plans/" (i)} { (other.name) } }
                }
            }
        }
        h2 { (p.name) }
        div.plan data-state={"/plans/" (index) "/state"} data-every=(STATE_EVERY_MS) {
            img src={"/plans/" (index) "/image"} alt=(p.name);
            @for (camera, [x, y]) in &p.pins {
                // Placed by plan.js: the Content-Security-Policy refuses style attributes.
                a.planpin id={"pin-" (camera)} data-camera=(camera) href={"/cameras/" (camera)}
                    data-x=(x) data-y=(y) title=(c.camera_name(camera)) {
                    span.dot {}
                    span.label { (c.camera_name(camera)) span.count {} }
                }
            }
        }
        p.legend {
            span.planpin.alarm { span.dot {} } " " (t.plan_alarm) " · "
            span.planpin.taken { span.dot {} } " " (t.plan_taken) " · "
            span.planpin.down { span.dot {} } " " (t.plan_down)
        }
        script src="/assets/plan.js" defer {}
    };
    Html(views::page(&c, Some(&user), t.site_plan, body).into_string()).into_response()
}

/// `GET /plans/{i}/image`: the plan's picture, read at each request so a
/// redrawn plan needs no restart.
pub async fn image(State(c): State<Shared>, _user: User, Path(index): Path<usize>) -> Response {
    let Some(p) = c.config.plans.get(index) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let path = c.base.join(&p.image);
    let kind = p.content_type().unwrap_or("application/octet-stream");
    match tokio::fs::read(&path).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, kind),
                (header::CACHE_CONTROL, "private, max-age=60"),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!("console: plan picture {}: {e}", path.display());
            StatusCode::NOT_FOUND.into_response()
        }
    }
}

/// `GET /plans/{i}/state`: every pin's state, as JSON.
pub async fn state(State(c): State<Shared>, _user: User, Path(index): Path<usize>) -> Response {
    let Some(p) = c.config.plans.get(index).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let max = c.config.wall_max;
    let unresolved = match c.db(move |s| s.unresolved(max)).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!("console: plan state: {e}");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let down: Vec<String> = p
        .pins
        .keys()
        .filter(|id| {
            c.health
                .camera(id)
                .and_then(|h| h.state().state)
                .is_some_and(|s| {
                    matches!(
                        s,
                        crate::events::CameraState::Reconnecting
                            | crate::events::CameraState::Failed
                    )
                })
        })
        .cloned()
        .collect();
    let down: Vec<&str> = down.iter().map(String::as_str).collect();
    axum::Json(pin_states(&p, &unresolved, &down)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Ack, AckAction, AlertRow};

    fn plan() -> PlanConfig {
        PlanConfig {
            name: "B2 栋 1 楼".into(),
            image: "plans/b2.png".into(),
            pins: [
                ("gate".to_string(), [0.1, 0.2]),
                ("lift".to_string(), [0.5, 0.5]),
            ]
            .into_iter()
            .collect(),
        }
    }

    fn alert(camera: &str, severity: &str, taken: bool) -> AlertRow {
        AlertRow {
            camera: camera.into(),
            severity: severity.into(),
            ack: taken.then(|| Ack {
                action: AckAction::Ack,
                who: "wang".into(),
                note: String::new(),
                at_ms: 0,
                outcome: None,
            }),
            ..AlertRow::default()
        }
    }

    #[test]
    fn a_pin_alarms_with_its_worst_untaken_alert() {
        let rows = [
            alert("gate", "warning", false),
            alert("gate", "critical", true),
            alert("gate", "high", false),
            alert("lift", "critical", true),
            alert("elsewhere", "critical", false),
        ];
        let states = pin_states(&plan(), &rows, &["lift"]);
        assert_eq!(
            states["gate"],
            PinState {
                alarm: Some("high".into()),
                open: 3,
                down: false
            }
        );
        assert_eq!(
            states["lift"],
            PinState {
                alarm: None,
                open: 1,
                down: true
            }
        );
        assert_eq!(states.len(), 2, "only pinned cameras");
    }

    #[test]
    fn check_names_each_bad_field() {
        let dir = std::env::temp_dir();
        let mut p = plan();
        p.pins.insert("attic".into(), [1.5, 0.2]);
        let problems = p.problems(2, &dir, &["gate", "lift"]);
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert!(fields.contains(&"console.plans[2].image"), "{problems:?}");
        assert_eq!(
            fields
                .iter()
                .filter(|f| **f == "console.plans[2].pins.attic")
                .count(),
            2,
            "unknown camera and outside the picture: {problems:?}"
        );
        p.image = "plan.bmp".into();
        assert!(
            p.problems(0, &dir, &["gate", "lift", "attic"])[0]
                .1
                .contains(".png")
        );
    }
}
