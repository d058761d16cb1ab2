//! Views: the console's HTML, rendered on the server.
//!
//! One function per page or fragment. The alert card is rendered here only:
//! the wall's first load and every live update (sent over SSE as HTML) use
//! the same function, so a card never looks different after it changed.

use super::Console;
use super::auth::User;
use super::text::{Language, Text};
use super::users::Role;
use crate::store::{
    Access, Ack, AckAction, AlertRecord, AlertRow, Handled, Outcome, ShiftSummary, Verification,
};
use maud::{DOCTYPE, Markup, html};

/// Kind → (icon, css class, label). Icons are inline SVG: control-room
/// machines often have no emoji font.
fn kind_look(kind: &str, t: &Text) -> (Markup, &'static str, &'static str) {
    let (class, label, shape) = match kind {
        "fire_smoke" => (
            "fire",
            t.fire_smoke,
            html! { path d="M12 2c1 4 6 6 6 12a6 6 0 0 1-12 0c0-3 2-5 3-7 1 2 2 3 3 4 1-3 1-6 0-9z" fill="currentColor" {} },
        ),
        "battery_cart" => (
            "cart",
            t.battery_cart,
            html! {
                circle cx="5" cy="17" r="3" {}
                circle cx="19" cy="17" r="3" {}
                path d="M5 17l4-7h6l4 7M9 10l-1-4H6M15 10l1-3h2" {}
            },
        ),
        _ => (
            "loiter",
            t.loitering,
            html! {
                circle cx="12" cy="4.5" r="2.5" fill="currentColor" {}
                path d="M12 8v7l-3 7M12 15l3 7M7 11h10" {}
            },
        ),
    };
    let icon = html! {
        svg.icon viewBox="0 0 24 24" width="22" height="22" fill="none" stroke="currentColor"
            stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" { (shape) }
    };
    (icon, class, label)
}

fn severity_label<'a>(severity: &str, t: &'a Text) -> &'a str {
    match severity {
        "critical" => t.critical,
        "high" => t.high,
        _ => t.warning,
    }
}

fn state_label<'a>(state: &str, t: &'a Text) -> &'a str {
    match state {
        "open" => t.open,
        "ended" => t.ended,
        _ => t.interrupted,
    }
}

pub fn evidence_url(rel: &str) -> String {
    format!("/{rel}")
}

fn duration_text(ms: i64) -> String {
    let s = (ms.max(0) / 1000) as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn role_label(role: Role, t: &Text) -> &'static str {
    match role {
        Role::Operator => t.role_operator,
        Role::Police => t.role_police,
        Role::Admin => t.role_admin,
    }
}

/// Every page's `<head>`, also the refusal page's (which has no console).
pub fn head(lang: super::text::Language, title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · " (lang.text().title) }
            link rel="stylesheet" href="/assets/console.css";
            link rel="icon" type="image/svg+xml" href="/favicon.svg";
            script src="/assets/console.js" defer {}
        }
    }
}

pub fn page(console: &Console, user: Option<&User>, title: &str, body: Markup) -> Markup {
    let lang = user.map_or(console.lang, |u| u.lang);
    let t = lang.text();
    html! {
        (DOCTYPE)
        html lang=(lang.tag()) {
            (head(lang, title))
            body {
                header.top {
                    a.brand href="/" { "vigil" }
                    @if let Some(u) = user {
                        nav {
                            a href="/" { (t.wall) }
                            a href="/video" { (t.live_video) }
                            @if !console.config.plans.is_empty() { a href="/plans" { (t.site_plan) } }
                            a href="/resolved" { (t.resolved_recently) }
                            a href="/report" { (t.report) }
                            @if u.role >= Role::Police { a href="/search" { (t.search) } }
                            span.who { (u.name) " · " (role_label(u.role, t)) }
                            form.inline.lang method="post" action="/language" {
                                input type="hidden" name="csrf" value=(u.csrf);
                                @let other = lang.other();
                                button type="submit" name="lang" value=(other.tag()) lang=(other.tag()) title=(t.language) { (other.own_name()) }
                            }
                            form.inline method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(u.csrf);
                                button type="submit" { (t.logout) }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

pub fn login(console: &Console, error: Option<&str>) -> Markup {
    let t = console.lang.text();
    page(
        console,
        None,
        t.login,
        html! {
            form.login method="post" action="/login" {
                h1 { (t.title) }
                @if let Some(e) = error { p.error role="alert" { (e) } }
                label { (t.user) input name="user" autocomplete="username" required autofocus; }
                label { (t.password) input name="password" type="password" autocomplete="current-password" required; }
                button type="submit" { (t.login) }
            }
        },
    )
}

fn ack_line(ack: &Ack, console: &Console, t: &Text) -> Markup {
    let verb = match ack.action {
        AckAction::Ack => t.in_progress_by,
        AckAction::Resolve => t.resolved_by,
    };
    html! {
        p.ack { "✔ " (verb) " · " (ack.who) " · " (console.local(ack.at_ms))
            @if let Some(o) = ack.outcome { " · " span.outcome { (t.outcome_label(o)) } }
            @if !ack.note.is_empty() { " · " q { (ack.note) } } }
    }
}

/// True when the alert must stay on top and sound: critical, not acknowledged.
/// On top of the wall, outlined and blinking until acknowledged: fire and
/// battery carts, the compound's alarms.
pub fn pinned(a: &AlertRow) -> bool {
    matches!(a.severity.as_str(), "critical" | "high") && a.ack.is_none()
}

/// An alert's card on the wall. `node`: the other node whose store holds it
/// (its take and resolve are forwarded there, its picture fetched from there).
pub fn card(console: &Console, user: &User, a: &AlertRow, node: Option<&str>) -> Markup {
    let t = user.lang.text();
    let (icon, class, label) = kind_look(&a.kind, t);
    let place = match (&a.zone, &a.line) {
        (Some(z), _) => format!("{}: {z}", t.zone),
        (None, Some(l)) => format!("{}: {l}", t.line),
        _ => String::new(),
    };
    let recipients: Vec<String> = a
        .recipients
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let end = a.end_wall_ms;
    let now = crate::time::now_ms() as i64;
    html! {
        article id={"alert-" (a.id)} class={"card sev-" (a.severity) " kind-" (class) @if pinned(a) { " pin" } @if a.ack.is_some() { " acked" } @if node.is_some() { " remote" }}
            data-id=(a.id) data-start=(a.start_wall_ms) data-end=[end] data-camera=(a.camera) data-kind=(a.kind) {
            label.pick { input type="checkbox" aria-label=(t.select); }
            a.shot href={"/alerts/" (a.id)} {
                @if let Some(p) = &a.annotated {
                    // `?wall`: the wall's own picture, not logged as an evidence view.
                    img src={(evidence_url(p)) "?wall"} alt=(t.summary(a)) loading="lazy";
                } @else {
                    div.noshot { (icon) }
                }
            }
            div.body {
                h3 { (icon) " " (label) " " span.sev { (severity_label(&a.severity, t)) } }
                p.camera {
                    (console.camera_name(&a.camera)) @if !place.is_empty() { " · " (place) }
                    @if let Some(node) = node { " " span.node title=(t.on_node) { (node) } }
                }
                p.when {
                    time { (console.local(a.start_wall_ms)) }
                    " · " (t.duration) " "
                    span.duration { (duration_text(end.unwrap_or(now) - a.start_wall_ms)) }
                    " · " span.state { (state_label(&a.state, t)) }
                }
                p.summary { (t.summary(a)) }
                (instruction(console, &a.kind, t))
                @if !recipients.is_empty() {
                    p.recipients { (t.recipients) ": " (recipients.iter().map(|r| t.recipient(r)).collect::<Vec<_>>().join(", ")) }
                }
                @if let Some(ack) = &a.ack { (ack_line(ack, console, t)) }
                (ack_form(a, user, t, true))
            }
        }
    }
}

/// What to do about an alert of this kind, from `[console.instructions]`.
fn instruction(console: &Console, kind: &str, t: &Text) -> Markup {
    html! {
        @if let Some(text) = console.config.instruction(kind) {
            p.instruction { strong { (t.instruction) } " " (text) }
        }
    }
}

/// Acknowledge (once) and resolve, with a note; on a card also the way to the
/// alert page.
fn ack_form(a: &AlertRow, user: &User, t: &Text, on_card: bool) -> Markup {
    html! {
        form.ackform method="post" action={"/alerts/" (a.id) "/ack"} {
            // The form's default button, disabled: Enter in the note never
            // submits (it resolved acknowledged alerts, with no undo).
            button type="submit" disabled hidden aria-hidden="true" {}
            input type="hidden" name="csrf" value=(user.csrf);
            input name="note" placeholder=(t.note) maxlength="500";
            @if a.ack.is_none() {
                button type="submit" name="action" value="ack" { (t.take) }
            }
            select name="outcome" aria-label=(t.outcome) {
                @for o in Outcome::ALL { option value=(o.as_str()) { (t.outcome_label(o)) } }
            }
            button type="submit" name="action" value="resolve" { (t.resolve) }
            @if on_card { " " a href={"/alerts/" (a.id)} { (t.details) } }
        }
    }
}

/// The wall: this node's unresolved alerts and, in a compound, the other
/// nodes' (as the index has them), newest first.
pub fn wall(
    console: &Console,
    user: &User,
    alerts: &[AlertRow],
    elsewhere: &[crate::health::RemoteAlert],
    cursor: &str,
    cameras: Markup,
) -> Markup {
    let mut cards: Vec<(&AlertRow, Option<&str>)> = alerts
        .iter()
        .map(|a| (a, None))
        .chain(elsewhere.iter().map(|r| (&r.row, Some(r.node.as_str()))))
        .collect();
    cards.sort_by(|(a, _), (b, _)| (b.start_wall_ms, &b.id).cmp(&(a.start_wall_ms, &a.id)));
    let t = user.lang.text();
    let sound = console
        .config
        .sound
        .iter()
        .map(|s| match s {
            crate::events::Severity::Critical => "critical",
            crate::events::Severity::High => "high",
            crate::events::Severity::Warning => "warning",
        })
        .collect::<Vec<_>>()
        .join(",");
    // In a compound, "no open alerts" is about this store only: say so.
    let compound = console.health.compound();
    let empty = match (
        compound.nodes.is_empty(),
        compound.nodes.iter().any(|n| n.here),
    ) {
        (true, _) => t.no_alerts,
        (false, true) => t.no_alerts_on_this_node,
        (false, false) => t.no_alerts_console_only,
    };
    page(
        console,
        Some(user),
        t.wall,
        html! {
            div.wallpage data-cursor=(cursor) data-offline=(t.offline) data-sound=(sound) data-camdown=(t.camera_down) data-zone=[console.config.time_zone.as_deref()]
                data-escalate-ms=((console.config.escalate_after_s * 1000.0) as i64) data-escalated=(t.escalated) {
                button #newer type="button" hidden data-label=(t.new_alerts) {}
                section.alerts {
                    div.toolbar {
                        h2 { (t.wall) " " span #count { (cards.len()) } }
                        button #sound type="button" data-on=(t.sound_on) data-off=(t.sound_off) data-blocked=(t.sound_blocked) { (t.sound_on) }
                        span #offline hidden { (t.offline) }
                    }
                    div.filters {
                        select #fcamera aria-label=(t.camera) {
                            option value="" { (t.camera) ": " (t.any) }
                            @for (id, name) in &console.cameras { option value=(id) { (name) } }
                        }
                        select #fkind aria-label=(t.kind) {
                            option value="" { (t.kind) ": " (t.any) }
                            option value="fire_smoke" { (t.fire_smoke) }
                            option value="battery_cart" { (t.battery_cart) }
                            option value="loitering" { (t.loitering) }
                        }
                        select #fstate aria-label=(t.state) {
                            option value="" { (t.state) ": " (t.any) }
                            option value="new" { (t.not_taken) }
                            option value="acked" { (t.in_progress) }
                        }
                        button #dense type="button" aria-pressed="false" { (t.dense) }
                        button #acksome type="button" hidden data-label=(t.take_selected) { (t.take_selected) }
                    }
                    p.keys { (t.shortcuts) }
                    p #empty hidden[!cards.is_empty()] { (empty) }
                    div #wall {
                        @for (a, node) in &cards { (card(console, user, a, *node)) }
                    }
                }
                aside.cameras {
                    h2 { (t.cameras) }
                    input #camfilter type="search" placeholder=(t.camera_filter) aria-label=(t.camera_filter);
                    div #cameras { (cameras) }
                }
                // Over everything when the session is gone: the wall must not
                // look live while it no longer receives alerts.
                div #relogin hidden role="alertdialog" {
                    div {
                        p { strong { (t.session_ended) } }
                        p { (t.session_ended_hint) }
                        a.button href="/login" { (t.login) }
                    }
                }
            }
        },
    )
}

pub struct CameraView {
    pub id: String,
    pub name: String,
    pub state: Option<crate::events::CameraState>,
    pub reason: Option<String>,
    pub fps: Option<f64>,
    pub has_picture: bool,
    /// On a compound node: the node running the camera.
    pub runner: Option<crate::health::Runner>,
}

/// A GStreamer error without its debug tail (source file, element path): the
/// operator needs the first sentence; the whole text stays in the tooltip and
/// the log.
fn short_reason(reason: &str) -> &str {
    reason
        .split_once(" (../")
        .or_else(|| reason.split_once(" (/"))
        .map_or(reason, |(head, _)| head)
}

pub fn cameras(
    lang: Language,
    cams: &[CameraView],
    compound: &crate::health::CompoundView,
) -> Markup {
    let nodes = &compound.nodes;
    use crate::events::CameraState;
    let t = lang.text();
    let stamp = crate::time::now_ms() / 3000;
    let label = |state: Option<CameraState>| match state {
        Some(CameraState::Up) => ("up", t.up),
        Some(CameraState::Reconnecting) => ("reconnecting", t.reconnecting),
        Some(CameraState::Failed) => ("failed", t.failed),
        Some(CameraState::Stopped) => ("stopped", t.stopped),
        None => ("starting", t.starting),
    };
    html! {
        @if !nodes.is_empty() {
            div.nodes aria-label=(t.nodes) {
                @for n in nodes {
                    span class={"nodechip " (if n.live { "live" } else { "down" })} title=[(!n.live).then(|| t.node_down_since(n.seen_ago_s))] {
                        (n.name)
                        @if n.here { " · " (t.this_node) }
                        @if !n.live { " · " (t.node_down) }
                    }
                }
            }
        }
        @for c in cams {
            // A camera another node runs: its state as that node reported it.
            @let elsewhere = c.runner.as_ref().filter(|r| !r.here);
            @let (state, reason) = match elsewhere {
                Some(r) => (r.state, r.reason.as_ref()),
                None => (c.state, c.reason.as_ref()),
            };
            @let (class, label) = label(state);
            div class={"camera state-" (class) (if elsewhere.is_some() { " elsewhere" } else { "" })} data-camera=(c.id) data-name=(c.name) data-label=(label) data-reason=[reason.map(|r| t.reason(short_reason(r)))] {
                @if c.has_picture && elsewhere.is_none() {
                    img src={"/cameras/" (c.id) "/thumb.jpg?t=" (stamp)} alt=(c.name);
                } @else { div.noshot { (t.no_picture) } }
                div {
                    a.name href={"/cameras/" (c.id)} { strong { (c.name) } } " "
                    span.badge { (label) }
                    @if let Some(r) = &c.runner { " " span.node title=(t.on_node) { (r.node) } }
                    @if elsewhere.is_none() {
                        @if let Some(f) = c.fps { " · " (format!("{f:.1}")) " " (t.fps) }
                    }
                    @if let Some(r) = reason { p.reason title=(r) { (t.reason(short_reason(r))) } }
                }
            }
        }
    }
}

/// Alerts resolved in the last 24 hours, for every role: an operator taking
/// over a shift sees what was handled and how.
pub fn resolved(
    console: &Console,
    lang: Language,
    rows: &[AlertRow],
    compound_down: bool,
) -> Markup {
    let t = lang.text();
    html! {
        h1 { (t.resolved_recently) }
        @if compound_down { p.message { (t.compound_db_down) } }
        @if rows.is_empty() { p.found { (t.none_resolved) } }
        @else {
            table.results.resolved {
                thead { tr {
                    th { (t.resolved_at) } th { (t.camera) } th { (t.kind) } th { (t.started) }
                    th { (t.duration) } th { (t.handled_by) } th { (t.outcome) } th { (t.note) } th {}
                } }
                tbody {
                    @for a in rows {
                        @let (icon, _, label) = kind_look(&a.kind, t);
                        tr data-id=(a.id) {
                            td { @if let Some(k) = &a.ack { (console.local(k.at_ms)) } }
                            td { (console.camera_name(&a.camera)) }
                            td { (icon) " " (label) }
                            td { (console.local(a.start_wall_ms)) }
                            td { @if let Some(e) = a.end_wall_ms { (duration_text(e - a.start_wall_ms)) } }
                            td { @if let Some(k) = &a.ack { (k.who) } }
                            td.outcome { @if let Some(o) = a.ack.as_ref().and_then(|k| k.outcome) { (t.outcome_label(o)) } }
                            td.note { @if let Some(k) = &a.ack { (k.note) } }
                            td { a href={"/alerts/" (a.id)} { (t.details) } }
                        }
                    }
                }
            }
        }
    }
}

pub struct SearchForm {
    pub camera: String,
    pub kind: String,
    pub since: String,
    pub until: String,
    pub tag: String,
    pub state: String,
}

pub fn search(
    console: &Console,
    user: &User,
    form: &SearchForm,
    rows: &[(Option<String>, AlertRow)],
    next: Option<String>,
    took_ms: f64,
    compound_down: bool,
) -> Markup {
    let by_node = rows.iter().any(|(node, _)| node.is_some());
    let t = user.lang.text();
    let opt = |value: &str, label: &str, current: &str| {
        html! { option value=(value) selected[value == current] { (label) } }
    };
    html! {
        form.search method="get" action="/search" {
            label { (t.camera) select name="camera" {
                (opt("", t.any, &form.camera))
                @for (id, name) in &console.cameras { (opt(id, name, &form.camera)) }
            } }
            label { (t.kind) select name="kind" {
                (opt("", t.any, &form.kind))
                (opt("fire_smoke", t.fire_smoke, &form.kind))
                (opt("battery_cart", t.battery_cart, &form.kind))
                (opt("loitering", t.loitering, &form.kind))
            } }
            label { (t.since) input type="datetime-local" name="since" value=(form.since); }
            label { (t.until) input type="datetime-local" name="until" value=(form.until); }
            label { (t.tag) input name="tag" value=(form.tag); }
            label { (t.state) select name="state" {
                (opt("", t.any, &form.state))
                (opt("open", t.open, &form.state))
                (opt("ended", t.ended, &form.state))
                (opt("interrupted", t.interrupted, &form.state))
            } }
            button type="submit" { (t.find) }
        }
        @if compound_down { p.message { (t.compound_db_down) } }
        p.found { (rows.len()) " " (t.results) " · " (format!("{took_ms:.1}")) " ms" }
        table.results {
            thead { tr {
                th { (t.started) } th { (t.camera) }
                @if by_node { th { (t.nodes) } }
                th { (t.kind) } th { (t.state) } th { (t.tags) } th {}
            } }
            tbody {
                @for (node, a) in rows {
                    @let (icon, _, label) = kind_look(&a.kind, t);
                    tr data-id=(a.id) {
                        td { (console.local(a.start_wall_ms)) }
                        td { (console.camera_name(&a.camera)) }
                        @if by_node { td.node { (node.as_deref().unwrap_or_default()) } }
                        td { (icon) " " (label) }
                        td { (state_label(&a.state, t)) @if a.held { " · " (t.held_by) } }
                        td { (a.tags.join(", ")) }
                        td { a href={"/alerts/" (a.id)} { (t.details) } }
                    }
                }
            }
        }
        @if let Some(n) = next { a.next href=(n) { (t.next_page) " →" } }
        input type="hidden" id="csrf" value=(user.csrf);
    }
}

pub struct AlertPage<'a> {
    pub record: &'a AlertRecord,
    pub verification: Result<&'a Verification, String>,
    /// An open alert's clip is being written and can be watched so far.
    pub so_far: bool,
}

pub fn alert(console: &Console, user: &User, p: &AlertPage<'_>) -> Markup {
    let t = user.lang.text();
    let a = &p.record.alert;
    let (icon, class, label) = kind_look(&a.kind, t);
    let live = |kind: crate::store::EvidenceKind| {
        p.record
            .evidence
            .iter()
            .filter(move |e| e.kind == kind && e.deleted_ms.is_none())
    };
    let police = user.role >= Role::Police;
    let end = a.end_wall_ms.unwrap_or(crate::time::now_ms() as i64);
    html! {
        article.alertpage class={"sev-" (a.severity) " kind-" (class)} data-id=(a.id) {
            h1 { (icon) " " (label) " · " (console.camera_name(&a.camera)) }
            p.meta {
                span.sev { (severity_label(&a.severity, t)) } " · "
                (state_label(&a.state, t)) " · "
                (t.started) " " (console.local(a.start_wall_ms))
                @if let Some(e) = a.end_wall_ms { " · " (t.ended) " " (console.local(e)) }
                " · " (t.duration) " " (duration_text(end - a.start_wall_ms))
            }
            p { (t.summary(a)) }
            (instruction(console, &a.kind, t))
            @if let Some(z) = &a.zone { p { (t.zone) ": " (z) } }
            @if let Some(l) = &a.line { p { (t.line) ": " (l) } }
            section.media {
                div.clip {
                    h2 { (t.clip) }
                    @let clips: Vec<_> = live(crate::store::EvidenceKind::Clip).collect();
                    @if clips.is_empty() && p.so_far {
                        video.sofar controls preload="metadata" playsinline src={"/alerts/" (a.id) "/sofar.mp4"} {}
                        p.help { (t.clip_so_far) }
                    } @else if clips.is_empty() { p { (t.no_clip) } }
                    @for c in clips {
                        video controls preload="metadata" playsinline src=(evidence_url(&c.path))
                            data-duration=[c.duration_s] {}
                    }
                }
                div.shots {
                    (super::live::live_picture(console, user.lang, &a.camera, 500, true))
                    @for e in live(crate::store::EvidenceKind::Annotated) {
                        figure { img src=(evidence_url(&e.path)) alt=(t.annotated); figcaption { (t.annotated) } }
                    }
                    @for e in live(crate::store::EvidenceKind::Snapshot) {
                        figure { img src=(evidence_url(&e.path)) alt=(t.snapshot); figcaption { (t.snapshot) } }
                    }
                }
            }
            section {
                h2 { (t.timeline) }
                (timeline(console, t, &p.record.timeline(), &p.record.acks))
                @if a.ack.as_ref().is_none_or(|k| k.action != AckAction::Resolve) {
                    (ack_form(a, user, t, false))
                }
            }
            (super::live::script())
            @if police {
                section {
                    h2 { (t.tags) }
                    ul.tags {
                        @for tag in &p.record.tags {
                            li { (tag.text) " "
                                form.inline method="post" action={"/alerts/" (a.id) "/tags"} {
                                    input type="hidden" name="csrf" value=(user.csrf);
                                    input type="hidden" name="text" value=(tag.text);
                                    button type="submit" name="op" value="remove" title=(t.remove) { "✕" }
                                }
                            }
                        }
                    }
                    form.inline method="post" action={"/alerts/" (a.id) "/tags"} {
                        input type="hidden" name="csrf" value=(user.csrf);
                        input name="text" required maxlength="100" placeholder=(t.tag);
                        button type="submit" name="op" value="add" { (t.add) }
                    }
                }
                section {
                    h2 { (t.hold) }
                    form.inline method="post" action={"/alerts/" (a.id) "/hold"} {
                        input type="hidden" name="csrf" value=(user.csrf);
                        @if let Some(h) = &p.record.hold {
                            p { (t.held_by) " · " (h.who) " · " (console.local(h.at_ms)) " · " (h.reason) }
                            button type="submit" name="op" value="release" { (t.release) }
                        } @else {
                            input name="reason" placeholder=(t.reason) maxlength="300";
                            button type="submit" name="op" value="hold" { (t.hold) }
                        }
                    }
                }
                section {
                    h2 { (t.export) }
                    form #export method="post" action={"/alerts/" (a.id) "/export"} {
                        input type="hidden" name="csrf" value=(user.csrf);
                        input name="reason" required maxlength="200" placeholder=(t.export_reason);
                        button type="submit" { "⬇ " (t.export) }
                    }
                }
            }
            section {
                h2 { (t.verification) }
                @match &p.verification {
                    Ok(v) if v.failures.is_empty() => p.verified { "✔ " (t.verified) " (" (v.files_ok) ")" },
                    Ok(v) => div.failed { p { "✘ " (t.not_verified) } ul { @for f in &v.failures {
                        @let (said, subject) = t.verify_failure(f);
                        li title=(f) { (said) @if let Some(s) = subject { " " code { (s) } } }
                    } } },
                    Err(e) => p.failed { "✘ " (e) },
                }
            }
            @if police {
                section {
                    h2 { (t.custody) }
                    (custody_table(console, t, &p.record.custody))
                }
            }
        }
    }
}

/// An alert's events, then its takes and resolutions.
fn timeline(console: &Console, t: &Text, events: &[(String, i64)], acks: &[Ack]) -> Markup {
    html! {
        ol.timeline {
            @for (kind, ms) in events {
                li { time { (console.local(*ms)) } " " (match kind.as_str() {
                    "new" => t.event_new, "end" => t.event_end,
                    "escalated" => t.escalated, _ => t.event_update }) }
            }
            @for ack in acks { li { (ack_line(ack, console, t)) } }
        }
    }
}

/// An alert's chain of custody, oldest first.
fn custody_table(console: &Console, t: &Text, custody: &[Access]) -> Markup {
    html! {
        table.custody {
            thead { tr { th { (t.when) } th { (t.who) } th { (t.what) } } }
            tbody {
                @for c in custody {
                    tr { td { (console.local(c.at_ms)) } td { (c.who) } td {
                        @let (said, id) = t.access_detail(&c.action, &c.detail);
                        (t.access_word(&c.action)) " " (said) @if let Some(id) = id { " " code { (id) } }
                    } }
                }
            }
        }
    }
}

/// A page another node serves, while that node does not answer: why, and for
/// an alert its whole record as the compound's index last had it (timeline,
/// takes and resolutions, tags, hold, the files waiting on that node with their
/// hashes, and for the police its chain of custody), with the take and resolve
/// form: those are queued for the node.
pub fn unreachable(
    console: &Console,
    user: &User,
    text: &str,
    record: Option<(&str, &AlertRecord)>,
) -> Markup {
    let t = user.lang.text();
    page(
        console,
        Some(user),
        text,
        html! {
            p.message { (text) }
            @if let Some((node, r)) = record {
                @let a = &r.alert;
                @let (icon, class, label) = kind_look(&a.kind, t);
                p.elsewhere-alert class={"kind-" (class)} data-id=(a.id) {
                    (icon) " " (label) " · " strong { (console.camera_name(&a.camera)) }
                    " · " (console.local(a.start_wall_ms))
                    " · " span.state { (state_label(&a.state, t)) }
                }
                @if !a.summary.is_empty() { p.summary { (a.summary) } }
                @if let Some(ack) = &a.ack { (ack_line(ack, console, t)) }
                section {
                    h2 { (t.timeline) }
                    (timeline(console, t, &r.timeline(), &r.acks))
                    @if a.ack.as_ref().is_none_or(|k| k.action != AckAction::Resolve) {
                        (ack_form(a, user, t, false))
                    }
                }
                @if !r.tags.is_empty() {
                    section { h2 { (t.tags) } ul.tags { @for tag in &r.tags { li { (tag.text) } } } }
                }
                @if let Some(h) = &r.hold {
                    section { h2 { (t.hold) } p { (t.held_by) " · " (h.who) " · " (console.local(h.at_ms)) " · " (h.reason) } }
                }
                section.files-elsewhere {
                    h2 { (t.files_elsewhere.replace("{node}", node)) }
                    table {
                        tbody {
                            @for f in &r.evidence {
                                tr {
                                    td { (match f.kind {
                                        crate::store::EvidenceKind::Clip => t.clip,
                                        crate::store::EvidenceKind::Snapshot => t.snapshot,
                                        crate::store::EvidenceKind::Annotated => t.annotated,
                                    }) }
                                    td { code { (f.path.rsplit('/').next().unwrap_or(&f.path)) } }
                                    td { (format!("{:.1} MB", f.bytes as f64 / 1e6)) }
                                    td { code.sha256 { (f.sha256) } }
                                    td { @if let Some(d) = f.deleted_ms { (t.file_deleted) " " (console.local(d as i64)) } }
                                }
                            }
                        }
                    }
                }
                @if user.role >= Role::Police {
                    section {
                        h2 { (t.custody) }
                        (custody_table(console, t, &r.custody))
                    }
                }
            }
            p { a href="/" { (t.back) } }
        },
    )
}

pub fn message(console: &Console, user: Option<&User>, text: &str) -> Markup {
    let t = user.map_or(console.lang, |u| u.lang).text();
    page(
        console,
        user,
        text,
        html! { p.message { (text) } p { a href="/" { (t.back) } } },
    )
}

/// The shift report: what a shift handed over, printable (the navigation and
/// the period form are not printed). The summary counts every row; the table
/// shows one page of them, so a month of a busy compound still renders at once.
pub fn report(
    console: &Console,
    lang: Language,
    (from, to): (String, String),
    rows: &[Handled],
    page: usize,
    compound_down: bool,
) -> Markup {
    let (from, to) = (from.as_str(), to.as_str());
    let t = lang.text();
    let summary = ShiftSummary::of(rows);
    let pages = rows.len().div_ceil(REPORT_PAGE).max(1);
    let page = page.min(pages - 1);
    let shown =
        &rows[(page * REPORT_PAGE).min(rows.len())..((page + 1) * REPORT_PAGE).min(rows.len())];
    let link = |p: usize| format!("/report?from={from}&to={to}&page={p}");
    let position = t
        .report_rows
        .replace(
            "{first}",
            &(page * REPORT_PAGE + 1).min(rows.len()).to_string(),
        )
        .replace("{last}", &(page * REPORT_PAGE + shown.len()).to_string())
        .replace("{rows}", &rows.len().to_string());
    let wait = |w: Option<(f64, f64)>| match w {
        Some((median, longest)) => format!(
            "{} / {}",
            duration_text((median * 1000.0) as i64),
            duration_text((longest * 1000.0) as i64)
        ),
        None => "–".into(),
    };
    html! {
        h1 { (t.report) }
        @if compound_down { p.message { (t.compound_db_down) } }
        form.filters.noprint method="get" action="/report" {
            label { (t.from) " " input type="datetime-local" name="from" value=(from); }
            label { (t.to) " " input type="datetime-local" name="to" value=(to); }
            button type="submit" { (t.show) }
        }
        p.period { (from.replace('T', " ")) " – " (to.replace('T', " ")) " (" (console.zone.iana_name().unwrap_or("UTC")) ")" }
        table.summary {
            tr { th { (t.alerts_count) } td.alerts { (summary.alerts) } }
            @for (kind, n) in &summary.by_kind {
                @let (icon, _, label) = kind_look(kind, t);
                tr { th { (icon) " " (label) } td { (n) } }
            }
            tr { th { (t.unresolved) } td.unresolved { (summary.unresolved) } }
            @for (outcome, n) in &summary.by_outcome {
                tr { th { (t.outcome) ": " (outcome.map_or(t.no_outcome, |o| t.outcome_label(o))) } td.outcome { (n) } }
            }
            @for (who, n) in &summary.by_operator {
                tr { th { (t.handled_by) ": " (who) } td { (n) } }
            }
            tr { th { (t.time_to_take) " (" (t.median_longest) ")" } td { (wait(summary.take_s)) } }
            tr { th { (t.time_to_resolve) " (" (t.median_longest) ")" } td { (wait(summary.resolve_s)) } }
        }
        table.results.report {
            thead { tr {
                th { (t.started) } th { (t.camera) } th { (t.kind) } th { (t.taken_by) }
                th { (t.time_to_take) } th { (t.handled_by) } th { (t.outcome) } th { (t.time_to_resolve) }
            } }
            tbody {
                @for h in shown {
                    @let (icon, _, label) = kind_look(&h.kind, t);
                    tr data-id=(h.id) {
                        td { a href={"/alerts/" (h.id)} { (console.local(h.start_ms)) } }
                        td { (console.camera_name(&h.camera)) }
                        td { (icon) " " (label) }
                        td { @if let Some((who, _)) = &h.taken { (who) } }
                        td { @if let Some((_, at)) = &h.taken { (duration_text(at - h.start_ms)) } }
                        td { @if let Some((who, _, _)) = &h.resolved { (who) } }
                        td.outcome { @if let Some((_, _, o)) = &h.resolved { (o.map_or(t.no_outcome, |o| t.outcome_label(o))) } }
                        td { @if let Some((_, at, _)) = &h.resolved { (duration_text(at - h.start_ms)) } }
                    }
                }
            }
        }
        @if pages > 1 {
            p.paging {
                span.position { (position) }
                @if page > 0 { " · " a rel="prev" href=(link(page - 1)) { (t.previous_page) } }
                @if page + 1 < pages { " · " a rel="next" href=(link(page + 1)) { (t.next_page) } }
            }
        }
    }
}

/// Rows on one page of the shift report.
pub const REPORT_PAGE: usize = 500;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_clocks() {
        assert_eq!(duration_text(0), "0:00");
        assert_eq!(duration_text(65_400), "1:05");
        assert_eq!(duration_text(3_725_000), "1:02:05");
        assert_eq!(duration_text(-5), "0:00");
    }

    #[test]
    fn a_compound_camera_says_which_node_runs_it() {
        let camera = |id: &str, node: &str, here: bool| CameraView {
            id: id.into(),
            name: id.into(),
            // Its last state here, before it moved: not what it is now.
            state: Some(crate::events::CameraState::Reconnecting),
            reason: Some("lost".into()),
            fps: Some(5.0),
            has_picture: false,
            runner: Some(crate::health::Runner {
                node: node.into(),
                here,
                state: Some(crate::events::CameraState::Up),
                reason: None,
            }),
        };
        let node = |name: &str, live: bool, here: bool| crate::health::NodeView {
            name: name.into(),
            live,
            here,
            seen_ago_s: 95,
        };
        let compound = crate::health::CompoundView {
            nodes: vec![
                node("node-a", true, true),
                node("node-b", true, false),
                node("node-c", false, false),
            ],
            unresolved_elsewhere: vec![],
        };
        let html = cameras(
            Language::ZhCn,
            &[
                camera("gate", "node-b", false),
                camera("lobby", "node-a", true),
            ],
            &compound,
        )
        .into_string();
        let cards: Vec<&str> = html.split("class=\"camera ").skip(1).collect();
        let (gate, lobby) = (cards[0], cards[1]);
        assert!(
            gate.starts_with("state-up elsewhere"),
            "as node-b reported: {gate}"
        );
        assert!(gate.contains("node-b") && !gate.contains("lost"), "{gate}");
        assert!(
            lobby.starts_with("state-reconnecting"),
            "its own state here: {lobby}"
        );
        assert!(
            lobby.contains("node-a") && lobby.contains("摄像头故障"),
            "{lobby}"
        );
        let chips = &html[..html.find("class=\"camera ").unwrap()];
        assert!(
            chips.contains("nodechip live") && chips.contains("node-a · 本节点"),
            "{chips}"
        );
        assert!(
            chips.contains("nodechip down") && chips.contains("node-c · 离线"),
            "{chips}"
        );
        assert!(chips.contains("最后在线：95秒前"), "{chips}");
    }
}
