//! The web console in a real browser: Debian's headless `chromium` driven
//! through `chromedriver` (fantoccini), against `vigil run` replaying the
//! one-by-one clip in real time, a real mosquitto, and the real store.
//!
//! One scenario, in the order a shift would meet it: an operator watches the
//! loitering alerts arrive, acknowledges one (seen on MQTT and on a second
//! console), watches the camera end; the police search, play and seek the
//! clip, export the bundle and find the view and export in the access log;
//! then what must be refused is refused. With `VIGIL_SCREENSHOTS=DIR` it
//! saves the README's screenshots (`scripts/screenshots`).

mod common;

use common::browser::*;
use common::{Mosquitto, Recorder};
use fantoccini::{Client, Locator};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk_files(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// In-page `fetch`; returns the status.
/// The status the server gives now: never the browser's cached answer.
async fn fetch_status(client: &Client, method: &str, url: &str, body: &str) -> u64 {
    let script = format!(
        "const done = arguments[0]; fetch({url:?}, {{method: {method:?}, redirect: 'manual', credentials: 'same-origin', cache: 'no-store', {}}}).then(r => done(r.status), e => done(-1));",
        if method == "GET" {
            String::new()
        } else {
            format!("body: new URLSearchParams({body}), ")
        }
    );
    client
        .execute_async(&script, vec![])
        .await
        .unwrap()
        .as_u64()
        .unwrap_or(0)
}

fn new_events(recorder: &Recorder) -> Vec<(Value, u64)> {
    let messages = recorder.messages.lock().unwrap();
    let arrived = recorder.arrived_ms.lock().unwrap();
    messages
        .iter()
        .zip(arrived.iter())
        .filter(|((topic, _, _), _)| topic == "vigil/events")
        .filter_map(|((_, payload, _), at)| {
            let v: Value = serde_json::from_str(payload).ok()?;
            (v["type"] == "new").then_some((v, *at))
        })
        .collect()
}

/// Words in Latin letters a zh-CN page shows a user: its text, button and
/// option labels, placeholders, alt texts and title; less `allowed` (names,
/// ids and units). Tooltips (`title`) keep raw reasons for integrators,
/// `<pre>` holds config syntax and `<code>` ids and paths: none is checked.
async fn english_on_page(client: &Client, allowed: &[&str]) -> Vec<String> {
    let found = js(
        client,
        r#"const words = new Set();
           const add = s => ((s || '').match(/[A-Za-z][A-Za-z'-]+/g) || []).forEach(w => words.add(w));
           const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
           while (walker.nextNode()) {
             const p = walker.currentNode.parentElement;
             if (!p || p.closest('script, style, pre, code, [hidden]')) continue;
             add(walker.currentNode.textContent);
           }
           document.querySelectorAll('[placeholder], [alt], [aria-label]').forEach(e => {
             add(e.getAttribute('placeholder')); add(e.getAttribute('alt')); add(e.getAttribute('aria-label'));
           });
           add(document.title);
           return [...words];"#,
    )
    .await;
    found
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w.as_str())
        .filter(|w| !allowed.contains(w))
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_and_police_use_the_console_in_a_real_browser() {
    let (Some(clip), Some(model), Some(chromedriver), Some(_chromium)) = (
        common::media("people/intel_one-by-one-person-detection.mp4"),
        common::model("yolox_nano_416.onnx"),
        common::program("chromedriver"),
        common::program("chromium"),
    ) else {
        return;
    };
    let broker = Mosquitto::start();
    let recorder = Recorder::start(broker.port, "vigil/#");
    let dir = tempfile::tempdir().unwrap();
    let console_port = common::free_port();
    let config = common::write_config(
        dir.path(),
        &format!(
            r#"
{}
[[cameras]]
id = "room"
name = "Room 1F"
source = "{}"
detectors = [{{ name = "coco" }}]

[[cameras.zones]]
name = "room"
polygon = [[0, 0], [1, 0], [1, 1], [0, 1]]

[[cameras.rules]]
name = "room-loitering"
kind = "loitering"
zone = "room"
classes = ["person"]
dwell_s = 18

[alerts]
broker = "mqtt://127.0.0.1:{}"

[storage]
dir = "data"

[console]
listen = "127.0.0.1:{console_port}"
time_zone = "Asia/Shanghai"

[[console.plans]]
name = "1 号楼 1 楼"
image = "floor.svg"
pins = {{ room = [0.3, 0.4] }}
"#,
            common::yolox_detector(&model),
            clip.display(),
            broker.port
        ),
    );
    std::fs::write(
        dir.path().join("floor.svg"),
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="800" height="400"><rect width="800" height="400" fill="#f4f1ea"/><rect x="40" y="40" width="720" height="320" fill="none" stroke="#333" stroke-width="6"/><line x1="400" y1="40" x2="400" y2="360" stroke="#333" stroke-width="4"/></svg>"##,
    )
    .unwrap();
    add_user(&config, "op", "operator", "operator-password");
    add_user(&config, "inspector", "police", "police-password");
    let started_ms = vigil::time::now_ms() as i64;
    let mut run = Killed(
        vigil()
            .args(["run", "-c"])
            .arg(&config)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(console_port, Duration::from_secs(60));
    let base = format!("http://127.0.0.1:{console_port}");

    // Nothing but the login page without a session.
    for path in [
        "/",
        "/search",
        "/live",
        "/cameras",
        "/alerts/x",
        "/evidence/room/a.jpg",
    ] {
        let (status, location) = raw_request(console_port, "GET", path);
        assert!(status.contains(" 303 "), "{path}: {status}");
        assert_eq!(location.as_deref(), Some("/login"), "{path}");
    }
    let (status, _) = raw_request(console_port, "GET", "/login");
    assert!(status.contains(" 200 "), "{status}");
    let (status, _) = raw_request(console_port, "POST", "/alerts/x/ack");
    assert!(status.contains(" 303 "), "unauthenticated POST: {status}");

    let (_driver, driver_port) = chromedriver_started(&chromedriver);
    // The control-room screen, and a patrol officer's phone.
    let operator = browser(driver_port, 1366, 768).await;
    let phone = browser(driver_port, 390, 844).await;
    login(&operator, &base, "op", "operator-password").await;
    login(&phone, &base, "inspector", "police-password").await;
    // When each card first appeared, by the browser's clock (same machine).
    js(
        &operator,
        "window.seen = {}; new MutationObserver(() => document.querySelectorAll('#wall .card').forEach(c => { if (!seen[c.dataset.id]) seen[c.dataset.id] = Date.now(); })).observe(document.getElementById('wall'), {childList: true, subtree: true}); return 1;",
    )
    .await;

    // The camera is listed, up, with a picture and its fps.
    until(
        &operator,
        "document.querySelector('.camera[data-camera=room].state-up img') && document.querySelector('.camera[data-camera=room]').textContent.includes('Room 1F')",
        Duration::from_secs(30),
        "the camera up with a thumbnail",
    )
    .await;

    // Three loitering alerts (people enter at 23.8, 51.2 and 93.5 s).
    assert!(
        recorder.wait_for(
            |m| m
                .iter()
                .filter(|(t, p, _)| t == "vigil/events" && p.contains(r#""type":"new""#))
                .count()
                >= 3,
            Duration::from_secs(200)
        ),
        "three alerts on MQTT"
    );
    let news = new_events(&recorder);
    assert_eq!(news.len(), 3);
    let ids: Vec<String> = news
        .iter()
        .map(|(v, _)| v["after"]["id"].as_str().unwrap().to_string())
        .collect();
    let seen = until(
        &operator,
        &format!(
            "Object.keys(seen).length >= 3 && seen[{:?}] && seen",
            ids[2]
        ),
        Duration::from_secs(5),
        "three cards",
    )
    .await;
    for ((_, mqtt_ms), id) in news.iter().zip(&ids) {
        let card_ms = seen[id].as_u64().unwrap();
        let lag = card_ms as i64 - *mqtt_ms as i64;
        eprintln!("alert {id}: card {lag} ms after its MQTT new");
        assert!(lag <= 2000, "card of {id} came {lag} ms after MQTT");
    }
    // Each card's annotated snapshot is loaded.
    until(
        &operator,
        "[...document.querySelectorAll('#wall .card .shot img')].filter(i => i.complete && i.naturalWidth > 0).length >= 3",
        Duration::from_secs(10),
        "three loaded snapshots",
    )
    .await;
    let card_text = js(
        &operator,
        &format!(
            "return document.getElementById('alert-{}').textContent;",
            ids[0]
        ),
    )
    .await;
    let card_text = card_text.as_str().unwrap();
    // The default language, the control room's: zh-CN.
    for expected in ["人员逗留", "Room 1F", "区域: room", "巡逻队", "持续"] {
        assert!(
            card_text.contains(expected),
            "card lacks {expected:?}: {card_text}"
        );
    }

    // Acknowledge the first: stored, on MQTT, and on the other console.
    js(
        &operator,
        &format!(
            "const c = document.getElementById('alert-{}'); c.querySelector('input[name=note]').value = 'guard sent'; c.querySelector('button[value=ack]').click(); return 1;",
            ids[0]
        ),
    )
    .await;
    assert!(
        recorder.wait_for(
            |m| m.iter().any(|(t, p, _)| t == "vigil/alerts/acks"
                && p.contains(&ids[0])
                && p.contains(r#""who":"op""#)
                && p.contains("guard sent")),
            Duration::from_secs(10)
        ),
        "the ack on MQTT"
    );
    until(
        &phone,
        &format!(
            "document.querySelector('#alert-{} .ack') && document.querySelector('#alert-{} .ack').textContent.includes('op')",
            ids[0], ids[0]
        ),
        Duration::from_secs(5),
        "the ack on the second console",
    )
    .await;
    // The note went with the ack and left the input; Enter in the note of the
    // acknowledged card does not resolve it (no resolve on MQTT, card stays).
    until(
        &operator,
        &format!(
            "document.querySelector('#alert-{} .ack') && document.querySelector('#alert-{} input[name=note]').value === ''",
            ids[0], ids[0]
        ),
        Duration::from_secs(5),
        "the ack note cleared",
    )
    .await;
    operator
        .find(Locator::Css(&format!("#alert-{} input[name=note]", ids[0])))
        .await
        .unwrap()
        .send_keys("typed then Enter\u{E007}")
        .await
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let still = js(
        &operator,
        &format!("return !!document.getElementById('alert-{}');", ids[0]),
    )
    .await;
    assert_eq!(still, json!(true), "Enter resolved the alert");
    assert!(
        !recorder.wait_for(
            |m| m.iter().any(|(t, p, _)| t == "vigil/alerts/acks"
                && p.contains(&ids[0])
                && p.contains("resolve")),
            Duration::from_millis(100)
        ),
        "Enter published a resolve"
    );
    // No card twice, on either console, after all these updates.
    for client in [&operator, &phone] {
        let n = js(
            client,
            "return document.querySelectorAll('#wall .card').length;",
        )
        .await;
        assert_eq!(n, json!(3));
    }
    // A phone shows the wall without sideways scrolling.
    let overflow = js(
        &phone,
        "return document.documentElement.scrollWidth - window.innerWidth;",
    )
    .await;
    assert!(overflow.as_i64().unwrap() <= 1, "phone overflow {overflow}");

    // The file ends: the camera list says so.
    until(
        &operator,
        "document.querySelector('.camera[data-camera=room].state-stopped')",
        Duration::from_secs(90),
        "the camera stopped",
    )
    .await;
    screenshot(&operator, "console-wall.png").await;

    // The site plan: the camera's pin flashes for the two alerts nobody took,
    // counts all three, and leads to the camera.
    operator.goto(&format!("{base}/plans")).await.unwrap();
    until(
        &operator,
        "(p => p && p.classList.contains('alarm') && p.classList.contains('sev-warning') && p.textContent.includes('3') && document.querySelector('.plan img').naturalWidth > 0)(document.getElementById('pin-room'))",
        Duration::from_secs(10),
        "the plan's pin alarming",
    )
    .await;
    let pin_href = js(
        &operator,
        "return document.getElementById('pin-room').getAttribute('href');",
    )
    .await;
    assert_eq!(pin_href, json!("/cameras/room"));
    // The pin's dot sits where the config placed it: 30% across, 40% down.
    let off = js(
        &operator,
        "const i = document.querySelector('.plan img').getBoundingClientRect(); const d = document.querySelector('#pin-room .dot').getBoundingClientRect(); return [(d.left + d.width / 2 - i.left) / i.width - 0.3, (d.top + d.height / 2 - i.top) / i.height - 0.4];",
    )
    .await;
    let off: Vec<f64> = off
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(
        off.iter().all(|d| d.abs() < 0.01),
        "the pin is off its place by {off:?} of the picture"
    );
    screenshot(&operator, "site-plan.png").await;

    // Police: search by kind and time finds exactly the stored alerts.
    let local = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap())
            .strftime("%Y-%m-%dT%H:%M")
            .to_string()
    };
    let (since, until_t) = (
        local(started_ms - 60_000),
        local(vigil::time::now_ms() as i64 + 120_000),
    );
    screenshot(&phone, "console-phone.png").await;
    phone.set_window_size(1366, 768).await.unwrap();
    phone
        .goto(&format!(
            "{base}/search?kind=loitering&since={since}&until={until_t}"
        ))
        .await
        .unwrap();
    let found = js(
        &phone,
        "return [...document.querySelectorAll('table.results tbody tr')].map(r => r.dataset.id);",
    )
    .await;
    let mut found: Vec<String> = serde_json::from_value(found).unwrap();
    found.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(found, expected, "search by kind and time");
    phone
        .goto(&format!("{base}/search?kind=fire_smoke&since={since}"))
        .await
        .unwrap();
    let none = js(
        &phone,
        "return document.querySelectorAll('table.results tbody tr').length;",
    )
    .await;
    assert_eq!(none, json!(0));

    // The alert page: the clip plays, has the stored duration, and seeks.
    phone
        .goto(&format!("{base}/alerts/{}", ids[1]))
        .await
        .unwrap();
    until(
        &phone,
        "document.querySelector('video') && document.querySelector('video').readyState >= 2",
        Duration::from_secs(20),
        "the clip ready to play",
    )
    .await;
    let durations = js(
        &phone,
        "const v = document.querySelector('video'); return [v.duration, Number(v.dataset.duration)];",
    )
    .await;
    let (played, stored) = (
        durations[0].as_f64().unwrap(),
        durations[1].as_f64().unwrap(),
    );
    assert!(
        (played - stored).abs() <= 1.0,
        "clip plays {played} s, stored {stored} s"
    );
    until(
        &phone,
        "[...document.querySelectorAll('.shots figure:not(.live) img')].filter(i => i.complete && i.naturalWidth > 0).length == 2",
        Duration::from_secs(10),
        "both snapshots",
    )
    .await;
    let verified = js(&phone, "return !!document.querySelector('.verified');").await;
    assert_eq!(
        verified,
        json!(true),
        "the page shows the evidence verified"
    );
    screenshot(&phone, "console-alert.png").await;
    let seeked = phone
        .execute_async(
            "const done = arguments[0]; const v = document.querySelector('video'); v.addEventListener('seeked', () => done([v.currentTime, v.readyState]), {once: true}); v.currentTime = v.duration / 2;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        (seeked[0].as_f64().unwrap() - played / 2.0).abs() < 1.0
            && seeked[1].as_u64().unwrap() >= 2,
        "seek to the middle: {seeked}"
    );

    // Export: the zip the browser downloads passes `vigil evidence verify --bundle`.
    let zip = export_verified(&phone, "沪公浦刑2026-117号", dir.path()).await;
    // The case at a glance: the camera's name, local times in the console's
    // zone, the case number asked for at export; the custody log and a
    // README in both languages.
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&zip)).unwrap();
    let mut read = |name: &str| {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut archive.by_name(name).unwrap(), &mut text).unwrap();
        text
    };
    let case = read("case.txt");
    for wanted in [
        "Room 1F (room)",
        "Asia/Shanghai",
        "+08:00",
        "沪公浦刑2026-117号",
        "inspector",
    ] {
        assert!(case.contains(wanted), "case.txt lacks {wanted:?}:\n{case}");
    }
    let custody_log: serde_json::Value = serde_json::from_str(&read("access_log.json")).unwrap();
    assert!(
        custody_log
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "view" && r["at_local"].as_str().unwrap().ends_with("+08:00")),
        "{custody_log}"
    );
    let readme = read("README.txt");
    assert!(
        readme.contains("中文说明") && readme.contains("English"),
        "{readme}"
    );
    // The access log lists the view and the export, by whom.
    phone.refresh().await.unwrap();
    let custody = js(
        &phone,
        "return document.querySelector('table.custody').textContent;",
    )
    .await;
    let custody = custody.as_str().unwrap();
    assert!(
        custody.contains("inspector") && custody.contains("查看") && custody.contains("导出"),
        "access log: {custody}"
    );
    // The wall showing the card's picture to the operator is not a view of
    // the evidence: it is not in the access log.
    let operator_rows = js(
        &phone,
        "return [...document.querySelectorAll('table.custody tr')].filter(r => [...r.cells].some(c => c.textContent.trim() === 'op')).length;",
    )
    .await;
    assert_eq!(operator_rows, json!(0), "access log: {custody}");
    assert_eq!(fetch_status(&phone, "GET", "/favicon.svg", "").await, 200);

    // The operator may not search or export, or post without the token, or
    // leave the evidence directory.
    assert_eq!(fetch_status(&operator, "GET", "/search", "").await, 403);
    // Refused in the console's language, with the way back.
    operator.goto(&format!("{base}/search")).await.unwrap();
    let refused = js(
        &operator,
        "return [document.querySelector('main').textContent, document.querySelector('main a').getAttribute('href')];",
    )
    .await;
    assert!(
        refused[0].as_str().unwrap().contains("无权") && refused[1] == "/",
        "{refused}"
    );
    screenshot(&operator, "console-refused.png").await;
    operator.goto(&format!("{base}/")).await.unwrap();
    let csrf = js(
        &operator,
        "return document.querySelector('input[name=csrf]').value;",
    )
    .await;
    let csrf = csrf.as_str().unwrap();
    assert_eq!(
        fetch_status(
            &operator,
            "POST",
            &format!("/alerts/{}/export", ids[0]),
            &format!("{{csrf: {csrf:?}}}")
        )
        .await,
        403
    );
    assert_eq!(
        fetch_status(
            &operator,
            "POST",
            &format!("/alerts/{}/ack", ids[1]),
            "{action: 'ack', note: 'forged'}"
        )
        .await,
        403,
        "a POST without the CSRF token"
    );
    assert_eq!(
        fetch_status(&operator, "GET", "/evidence/..%2F..%2Fvigil.db", "").await,
        400
    );
    assert_eq!(
        fetch_status(
            &operator,
            "GET",
            "/evidence/room%2F..%2F..%2Fsigning.key",
            ""
        )
        .await,
        400
    );
    // A file the store lists, replaced by a symlink to the signing key beside
    // the database: the key is inside the store, but never inside `evidence/`.
    let store = dir.path().join("data");
    let snapshot = walk_files(&store.join("evidence"))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "jpg"))
        .expect("a snapshot on disk");
    std::fs::remove_file(&snapshot).unwrap();
    std::os::unix::fs::symlink(store.join("signing.key"), &snapshot).unwrap();
    let rel = snapshot.strip_prefix(store.join("evidence")).unwrap();
    assert_eq!(
        fetch_status(
            &operator,
            "GET",
            &format!("/evidence/{}", rel.display()),
            ""
        )
        .await,
        404,
        "a planted symlink to the signing key is not served"
    );

    // The operator resolves an alert with a note; "recently resolved" lists
    // it with who and why, for the next shift (search is police-only).
    operator.goto(&format!("{base}/")).await.unwrap();
    let card = format!("#alert-{}", ids[1]);
    until(
        &operator,
        &format!("!!document.querySelector('{card} input[name=note]')"),
        Duration::from_secs(10),
        "the card to resolve",
    )
    .await;
    operator
        .find(Locator::Css(&format!("{card} input[name=note]")))
        .await
        .unwrap()
        .send_keys("巡逻已到场，误报")
        .await
        .unwrap();
    // The outcome, a reason code for the shift report (default: on site).
    js(
        &operator,
        &format!(
            "document.querySelector('{card} select[name=outcome]').value = 'false_alarm'; return 0;"
        ),
    )
    .await;
    operator
        .find(Locator::Css(&format!("{card} button[value=resolve]")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &operator,
        &format!("!document.querySelector('{card}')"),
        Duration::from_secs(10),
        "the resolved card leaves the wall",
    )
    .await;
    operator.goto(&format!("{base}/resolved")).await.unwrap();
    let row = js(
        &operator,
        &format!(
            "const r = document.querySelector('table.resolved tr[data-id=\"{}\"]'); return r ? r.innerText : '';",
            ids[1]
        ),
    )
    .await;
    let row = row.as_str().unwrap();
    assert!(
        row.contains("op") && row.contains("巡逻已到场，误报") && row.contains("误报"),
        "resolved row: {row:?}"
    );
    screenshot(&operator, "console-resolved.png").await;

    // The shift report (every role, default the last 12 hours) counts it as a
    // false alarm handled by op, with its waits.
    operator.goto(&format!("{base}/report")).await.unwrap();
    let report = js(
        &operator,
        &format!(
            "const r = document.querySelector('table.report tr[data-id=\"{}\"]'); \
             const s = document.querySelector('table.summary'); \
             return [r ? r.innerText : '', s ? s.innerText : ''];",
            ids[1]
        ),
    )
    .await;
    let (row, summary) = (report[0].as_str().unwrap(), report[1].as_str().unwrap());
    assert!(
        row.contains("op") && row.contains("误报"),
        "report row: {row:?}"
    );
    assert!(
        summary.contains("处置结果: 误报") && summary.contains("接警用时"),
        "report summary: {summary:?}"
    );
    screenshot(&operator, "console-report.png").await;

    // Issue 18 #8: nothing on the zh-CN pages is in English but names, ids
    // and units.
    let allowed = [
        "vigil",
        "Room",
        "room",
        "op",
        "inspector",
        "loitering",
        "MP4",
        "SHA-256",
        "sha256sum",
        "ID",
        "MQTT",
        "UTC",
        "Asia",
        "Shanghai",
        // the language switch names the other language in itself
        "English",
        // what the test's users typed, and evidence file names
        "guard",
        "sent",
        "evidence",
        "jpg",
        "mp4",
        "ms",
    ];
    let mut pages = vec![
        "/".to_string(),
        "/video".into(),
        "/cameras/room".into(),
        "/resolved".into(),
        "/report".into(),
        "/plans/0".into(),
        "/search".into(),
        "/nowhere".into(),
    ];
    pages.extend(ids.iter().map(|id| format!("/alerts/{id}")));
    let mut english = Vec::new();
    for page in &pages {
        phone.goto(&format!("{base}{page}")).await.unwrap();
        for word in english_on_page(&phone, &allowed).await {
            english.push(format!("{page}: {word}"));
        }
    }
    assert!(english.is_empty(), "English on zh-CN pages: {english:?}");

    // Each user their own language: the operator switches to English from the
    // report and stays on it; the inspector's pages stay Chinese; the choice
    // is in the users file, so it outlives the session.
    operator.goto(&format!("{base}/report")).await.unwrap();
    js(
        &operator,
        "document.querySelector('form.lang button').click(); return 1;",
    )
    .await;
    until(
        &operator,
        "document.documentElement.lang === 'en' && location.pathname === '/report' && document.querySelector('h1').textContent.includes('Shift report')",
        Duration::from_secs(5),
        "the report in English",
    )
    .await;
    operator.goto(&format!("{base}/")).await.unwrap();
    let take = js(
        &operator,
        "return document.querySelector('nav').textContent;",
    )
    .await;
    assert!(
        take.as_str().unwrap().contains("中文"),
        "the way back: {take}"
    );
    let users = std::fs::read_to_string(dir.path().join("users.toml")).unwrap();
    assert!(users.contains(r#"lang = "en""#), "{users}");
    phone.goto(&format!("{base}/report")).await.unwrap();
    let lang = js(&phone, "return document.documentElement.lang;").await;
    assert_eq!(
        lang,
        json!("zh-CN"),
        "the inspector's pages changed language"
    );
    screenshot(&operator, "console-wall-english.png").await;
    operator.close().await.unwrap();
    phone.close().await.unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(run.0.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while run.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "vigil did not stop on Ctrl-C");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Issue 18 #1, issue 21 #4.5: an open wall survives vigil being killed and
/// started again (sessions are in the store), shows every alert of both runs
/// without a reload, and covers itself with a re-login once its user is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_wall_survives_a_restart_and_asks_for_a_login_when_its_user_is_removed() {
    let (Some(clip), Some(model), Some(chromedriver), Some(_chromium)) = (
        common::media("people/vtest.avi"),
        common::model("yolox_nano_416.onnx"),
        common::program("chromedriver"),
        common::program("chromium"),
    ) else {
        return;
    };
    let broker = Mosquitto::start();
    let recorder = Recorder::start(broker.port, "vigil/events");
    let escalations = Recorder::start(broker.port, "vigil/alerts/escalations");
    let dir = tempfile::tempdir().unwrap();
    let console_port = common::free_port();
    let config = common::write_config(
        dir.path(),
        &format!(
            r#"
{}
[[cameras]]
id = "hall"
source = "{}"
detectors = [{{ name = "coco" }}]

[[cameras.zones]]
name = "hall"
polygon = [[0, 0], [1, 0], [1, 1], [0, 1]]

[[cameras.rules]]
name = "hall-loitering"
kind = "loitering"
zone = "hall"
classes = ["person"]
dwell_s = 3

[[cameras]]
id = "gate"
name = "东门"
source = "rtsp://127.0.0.1:9/nobody-here"
detectors = [{{ name = "coco" }}]

[alerts]
broker = "mqtt://127.0.0.1:{}"

[storage]
dir = "data"

[console]
listen = "127.0.0.1:{console_port}"
sound = ["critical", "high", "warning"]
escalate_after_s = 4

[console.instructions]
loitering = "调看实时画面\n必要时派巡逻询问"
"#,
            common::yolox_detector(&model),
            clip.display(),
            broker.port
        ),
    );
    add_user(&config, "op", "operator", "operator-password");
    let start = || {
        Killed(
            vigil()
                .args(["run", "-c"])
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let mut run = start();
    wait_port(console_port, Duration::from_secs(60));
    let base = format!("http://127.0.0.1:{console_port}");
    let (_driver, driver_port) = chromedriver_started(&chromedriver);
    let wall = browser(driver_port, 1366, 768).await;
    login(&wall, &base, "op", "operator-password").await;
    js(&wall, "window.loaded = performance.timeOrigin; return 1;").await;

    assert!(
        recorder.wait_for(|m| m.len() >= 2, Duration::from_secs(60)),
        "alerts from the first run"
    );
    until(
        &wall,
        "document.querySelectorAll('#wall .card[data-id]').length >= 1",
        Duration::from_secs(30),
        "a card from the first run",
    )
    .await;
    // The configured instruction for its kind, on the card, lines kept.
    let instruction = js(
        &wall,
        "return document.querySelector('#wall .card[data-id] .instruction').innerText",
    )
    .await;
    assert_eq!(
        instruction.as_str(),
        Some("处置： 调看实时画面\n必要时派巡逻询问"),
        "{instruction}"
    );
    // Nobody acknowledges: after escalate_after_s the card says so and the
    // supervisor's topic has it.
    until(
        &wall,
        "document.querySelector('#wall .card.escalated .escalation')",
        Duration::from_secs(30),
        "an escalated card",
    )
    .await;
    assert!(
        escalations.wait_for(|m| !m.is_empty(), Duration::from_secs(30)),
        "an escalation on vigil/alerts/escalations"
    );
    {
        let messages = escalations.messages.lock().unwrap();
        let first: Value = serde_json::from_str(&messages[0].1).unwrap();
        assert_eq!(first["camera"], "hall", "{first}");
        assert_eq!(first["after_s"], 4.0, "{first}");
        assert!(
            first["summary"].as_str().unwrap().contains("逗留"),
            "{first}"
        );
    }
    // The gate camera has nobody to talk to: a card of its own heads the wall.
    let down = until(
        &wall,
        "document.querySelector('#wall .card.camdown') && document.querySelector('#wall .card.camdown').textContent",
        Duration::from_secs(30),
        "a camera-down card for the gate",
    )
    .await;
    let down = down.as_str().unwrap();
    assert!(
        down.contains("东门") && down.contains("摄像头离线"),
        "{down}"
    );
    screenshot(&wall, "console-camera-down.png").await;
    // Loitering is a warning; this config makes warnings sound too.
    until(
        &wall,
        "window.vigilBeeps >= 1 && document.title.startsWith('(')",
        Duration::from_secs(30),
        "a beep and a marked tab title",
    )
    .await;
    // Killed as hard as it gets, and started again.
    run.0.kill().unwrap();
    run.0.wait().unwrap();
    let before = new_events(&recorder).len();
    until(
        &wall,
        "!document.getElementById('offline').hidden",
        Duration::from_secs(30),
        "the wall saying the connection is lost",
    )
    .await;
    let _run = start();
    assert!(
        recorder.wait_for(
            |m| m
                .iter()
                .filter(|(_, p, _)| p.contains(r#""type":"new""#))
                .count()
                >= before + 2,
            Duration::from_secs(90)
        ),
        "alerts from the second run"
    );
    let ids: Vec<String> = new_events(&recorder)
        .iter()
        .map(|(v, _)| v["after"]["id"].as_str().unwrap().to_string())
        .collect();
    let all_on_wall = format!(
        "{:?}.every(id => document.getElementById('alert-' + id))",
        ids
    );
    until(
        &wall,
        &all_on_wall,
        Duration::from_secs(30),
        "every alert of both runs on the wall",
    )
    .await;
    assert_eq!(
        js(
            &wall,
            "return [window.loaded === performance.timeOrigin, document.getElementById('relogin').hidden, document.getElementById('offline').hidden];"
        )
        .await,
        json!([true, true, true]),
        "the same page, still logged in, connected"
    );
    eprintln!(
        "{} alerts of both runs on the wall without a reload",
        ids.len()
    );
    // Filters hide what the shift is not watching. (The second run may still
    // be adding cards, so each check reads the wall once.)
    let shown = |filter: &str| {
        format!(
            "const cards = Array.from(document.querySelectorAll('#wall .card[data-id]'));              const shown = cards.filter(c => getComputedStyle(c).display !== 'none');              return [cards.length > 0, shown.length === cards.filter(c => {filter}).length];"
        )
    };
    let set = |id: &str, value: &str| {
        format!(
            "const f = document.getElementById('{id}'); f.value = '{value}'; f.dispatchEvent(new Event('change')); return 1;"
        )
    };
    js(&wall, &set("fkind", "battery_cart")).await;
    assert_eq!(
        js(&wall, &shown("c.dataset.kind === 'battery_cart'")).await,
        json!([true, true]),
        "kind filter"
    );
    js(&wall, &set("fkind", "")).await;
    js(&wall, &set("fstate", "new")).await;
    assert_eq!(
        js(&wall, &shown("!c.classList.contains('acked')")).await,
        json!([true, true]),
        "state filter"
    );
    // Keys: J to the first card, X ticks it, J X the second; both are
    // acknowledged at once, then leave the "not acknowledged" view.
    let key = |k: &str| {
        format!(
            "document.body.dispatchEvent(new KeyboardEvent('keydown', {{key: '{k}', bubbles: true}})); return document.querySelector('#wall .card.focus') ? document.querySelector('#wall .card.focus').dataset.id : '';"
        )
    };
    let mut ticked = Vec::new();
    for _ in 0..2 {
        ticked.push(js(&wall, &key("j")).await);
        js(&wall, &key("x")).await;
    }
    let label = js(
        &wall,
        "const b = document.getElementById('acksome'); return b.hidden ? '' : b.textContent;",
    )
    .await;
    assert!(
        label.as_str().unwrap().contains("(2)"),
        "{label} {ticked:?}"
    );
    js(
        &wall,
        "document.getElementById('acksome').click(); return 1;",
    )
    .await;
    let acked = |id: &Value| {
        format!(
            "document.getElementById('alert-' + {id}) && document.getElementById('alert-' + {id}).classList.contains('acked') && getComputedStyle(document.getElementById('alert-' + {id})).display === 'none'"
        )
    };
    for id in &ticked {
        until(
            &wall,
            &acked(id),
            Duration::from_secs(30),
            "ticked cards acknowledged at once, then hidden by the filter",
        )
        .await;
    }
    // A acknowledges the focused card.
    let third = js(&wall, &key("j")).await;
    assert!(!ticked.contains(&third), "{third} {ticked:?}");
    js(&wall, &key("a")).await;
    until(
        &wall,
        &acked(&third),
        Duration::from_secs(30),
        "the focused card acknowledged with A",
    )
    .await;
    js(&wall, &set("fstate", "")).await;
    js(&wall, "document.getElementById('dense').click(); return 1;").await;
    assert_eq!(
        js(
            &wall,
            "return getComputedStyle(document.querySelector('#wall .card[data-id] .shot')).display;"
        )
        .await,
        json!("none"),
        "list mode without pictures"
    );
    screenshot(&wall, "console-list-mode.png").await;
    js(&wall, "document.getElementById('dense').click(); return 1;").await;

    // Escalated once each, across the restart, and only alerts that exist.
    let escalated: Vec<String> = escalations
        .messages
        .lock()
        .unwrap()
        .iter()
        .map(|(_, p, _)| serde_json::from_str::<Value>(p).unwrap()["alert_id"].to_string())
        .map(|id| id.trim_matches('"').to_string())
        .collect();
    let mut unique = escalated.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), escalated.len(), "{escalated:?}");
    assert!(escalated.iter().all(|id| ids.contains(id)), "{escalated:?}");

    // A patrol's phone, scrolled down to older cards: no sideways scrolling,
    // and new cards arriving above are announced.
    let phone = browser(driver_port, 390, 844).await;
    login(&phone, &base, "op", "operator-password").await;
    until(
        &phone,
        "document.querySelectorAll('#wall .card[data-id]').length >= 3",
        Duration::from_secs(30),
        "cards on the phone",
    )
    .await;
    assert_eq!(
        js(
            &phone,
            "return document.documentElement.scrollWidth <= window.innerWidth;"
        )
        .await,
        json!(true),
        "no horizontal scroll on a 390 px phone"
    );
    js(
        &phone,
        "window.scrollTo(0, document.body.scrollHeight); return 1;",
    )
    .await;
    let marker = until(
        &phone,
        "!document.getElementById('newer').hidden && document.getElementById('newer').textContent",
        Duration::from_secs(40),
        "the 'new alerts' marker while scrolled down",
    )
    .await;
    assert!(marker.as_str().unwrap().contains("条新告警"), "{marker}");
    screenshot(&phone, "console-phone-new-alerts.png").await;
    js(
        &phone,
        "document.getElementById('newer').click(); return 1;",
    )
    .await;
    until(
        &phone,
        "document.getElementById('newer').hidden && window.scrollY === 0",
        Duration::from_secs(5),
        "back at the top",
    )
    .await;
    phone.close().await.unwrap();

    // The user is removed: the open wall stops pretending to be live.
    let removed = vigil()
        .args(["user", "remove", "op", "-c"])
        .arg(&config)
        .status()
        .unwrap();
    assert!(removed.success());
    until(
        &wall,
        "!document.getElementById('relogin').hidden",
        Duration::from_secs(20),
        "a full-screen re-login",
    )
    .await;
    screenshot(&wall, "console-relogin.png").await;
    wall.close().await.unwrap();
}

/// GET `path` from a given source address; the status line.
async fn get_from(source: &str, port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut stream = socket
        .connect(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// Of these connections, how many the server closed within `wait`.
async fn closed_within(streams: &mut [tokio::net::TcpStream], wait: Duration) -> usize {
    use tokio::io::AsyncReadExt;
    let reads = streams.iter_mut().map(|s| async move {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(wait, s.read(&mut byte)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    });
    futures_util::future::join_all(reads)
        .await
        .into_iter()
        .filter(|closed| *closed)
        .count()
}

/// Issue 21 #4.2: idle connections without a login can neither exhaust the
/// console nor keep Ctrl-C from stopping vigil. One address holds at most 128,
/// others are still served, and idle ones close after 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_starve_the_console_or_stop_ctrl_c() {
    let (Some(clip), Some(model)) = (
        common::media("people/vtest.avi"),
        common::model("yolox_nano_416.onnx"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let console_port = common::free_port();
    let config = common::write_config(
        dir.path(),
        &format!(
            r#"
{}
[[cameras]]
id = "hall"
source = "{}"
detectors = [{{ name = "coco" }}]

[storage]
dir = "data"

[console]
listen = "127.0.0.1:{console_port}"
"#,
            common::yolox_detector(&model),
            clip.display(),
        ),
    );
    let mut run = Killed(
        vigil()
            .args(["run", "-c"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(console_port, Duration::from_secs(60));
    let connect = || tokio::net::TcpStream::connect(("127.0.0.1", console_port));
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(connect().await.unwrap());
    }
    let refused = closed_within(&mut idle, Duration::from_secs(2)).await;
    assert_eq!(300 - refused, 128, "one address holds 128 connections");
    // Another machine (address) is served while they are held.
    let status = get_from("127.0.0.2", console_port, "/login").await;
    assert!(status.contains(" 200 "), "another address: {status}");
    // The server closes the idle ones it held by itself.
    let started = Instant::now();
    let closed = closed_within(&mut idle, Duration::from_secs(14)).await;
    eprintln!(
        "{refused} connections refused at once, the other {} closed by the console after {:.1} s idle",
        300 - refused,
        started.elapsed().as_secs_f64() + 2.0
    );
    assert_eq!(closed, 300, "idle connections are closed");
    let status = get_from("127.0.0.1", console_port, "/login").await;
    assert!(status.contains(" 200 "), "served again: {status}");

    // Ctrl-C with the console full of idle connections.
    let mut full = Vec::new();
    for _ in 0..300 {
        full.push(connect().await.unwrap());
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(run.0.id() as i32, libc::SIGINT) };
    let stopping = Instant::now();
    while run.0.try_wait().unwrap().is_none() {
        assert!(
            stopping.elapsed() < Duration::from_secs(5),
            "vigil did not stop on Ctrl-C with idle connections open"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "stopped {:.2} s after Ctrl-C",
        stopping.elapsed().as_secs_f64()
    );
}

/// Clicks the setup page's picture at these fractions; the TOML it prints.
async fn click_and_read_toml(client: &Client, points: &[(f64, f64)]) -> String {
    for (x, y) in points {
        js(
            client,
            &format!(
                "const c = document.getElementById('scene'); const b = c.getBoundingClientRect(); c.dispatchEvent(new MouseEvent('click', {{clientX: b.left + {x} * b.width, clientY: b.top + {y} * b.height, bubbles: true}})); return 1;"
            ),
        )
        .await;
    }
    let toml = js(
        client,
        "return document.getElementById('toml').textContent;",
    )
    .await;
    toml.as_str().unwrap().to_string()
}

/// Issue 18, live video and the integrator's page: an RTSP camera's live
/// picture starts within 2 s and changes; the grid shows it; the setup page
/// draws the detector's tracks on it, and the zone and line the editor prints
/// pass `vigil check` as they are. Operators get the picture, not the editor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_view_and_the_zone_editor_in_a_real_browser() {
    let (Some(clip), Some(model), Some(chromedriver), Some(_chromium)) = (
        common::media("people/vtest.avi"),
        common::model("yolox_nano_416.onnx"),
        common::program("chromedriver"),
        common::program("chromium"),
    ) else {
        return;
    };
    // Real pedestrian footage, served as an H.264 RTSP camera in real time.
    let camera = common::RtspCamera::serve(&format!(
        "( filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=I420 ! identity sync=true ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 ! rtph264pay name=pay0 pt=96 )",
        clip.display()
    ));
    let dir = tempfile::tempdir().unwrap();
    let console_port = common::free_port();
    let camera_config = format!(
        r#"
{}
[[cameras]]
id = "gate"
name = "东门"
source = "{}"
detectors = [{{ name = "coco" }}]

[[cameras.zones]]
name = "plaza"
polygon = [[0, 0.3], [1, 0.3], [1, 1], [0, 1]]

[[cameras.rules]]
kind = "loitering"
zone = "plaza"
classes = ["person"]
dwell_s = 6
"#,
        common::yolox_detector(&model),
        camera.uri.0,
    );
    // Eleven more cameras nobody can reach: twelve on a phone's wall and grid.
    let dead: String = (1..=11)
        .map(|i| {
            format!(
                "[[cameras]]\nid = \"b{i}\"\nname = \"{i} 号楼大堂\"\nsource = \"rtsp://127.0.0.1:9/nobody-{i}\"\ndetectors = [{{ name = \"coco\" }}]\n\n"
            )
        })
        .collect();
    let config = common::write_config(
        dir.path(),
        &format!(
            r#"
[storage]
dir = "data"

[console]
listen = "127.0.0.1:{console_port}"
{camera_config}
{dead}"#
        ),
    );
    add_user(&config, "admin", "admin", "admin-password");
    add_user(&config, "op", "operator", "operator-password");
    let _run = Killed(
        vigil()
            .args(["run", "-c"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(console_port, Duration::from_secs(60));
    let base = format!("http://127.0.0.1:{console_port}");
    let (_driver, driver_port) = chromedriver_started(&chromedriver);
    let admin = browser(driver_port, 1366, 768).await;
    login(&admin, &base, "admin", "admin-password").await;
    until(
        &admin,
        "document.querySelector('.camera[data-camera=gate].state-up')",
        Duration::from_secs(60),
        "the RTSP camera up",
    )
    .await;

    // The camera's page: an H.264 camera plays its own video (passed
    // through, not re-encoded), live within 2 s of opening it, and moving.
    admin.goto(&format!("{base}/cameras/gate")).await.unwrap();
    let opened = Instant::now();
    until(
        &admin,
        "+(document.querySelector('video[data-passthrough]').dataset.frames || 0) >= 1",
        Duration::from_secs(10),
        "the first frame of the camera's own video",
    )
    .await;
    let first_picture = opened.elapsed();
    assert!(
        first_picture < Duration::from_secs(2),
        "the live video took {first_picture:?} to start"
    );
    let first = js(
        &admin,
        "return document.querySelector('video[data-passthrough]').currentTime;",
    )
    .await;
    until(
        &admin,
        "+document.querySelector('video[data-passthrough]').dataset.frames >= 25",
        Duration::from_secs(10),
        "25 frames of live video",
    )
    .await;
    let (later, hidden, fallback_hidden) = (
        js(
            &admin,
            "return document.querySelector('video[data-passthrough]').currentTime;",
        )
        .await,
        js(
            &admin,
            "return document.querySelector('video[data-passthrough]').hidden;",
        )
        .await,
        js(
            &admin,
            "return document.querySelector('img[data-fallback]').hidden;",
        )
        .await,
    );
    assert!(
        later.as_f64().unwrap() > first.as_f64().unwrap() + 0.5,
        "the live video did not play on: {first} then {later}"
    );
    assert_eq!(
        (hidden, fallback_hidden),
        (json!(false), json!(true)),
        "the page fell back to pictures"
    );
    let age: f64 = js(
        &admin,
        "return document.querySelector('figure.live .age').textContent;",
    )
    .await
    .as_str()
    .and_then(|s| s.parse().ok())
    .expect("the video's delay is shown");
    eprintln!(
        "live video: first frame after {first_picture:?}, player behind the newest fragment by {age} s"
    );
    assert!(age <= 1.0, "the player is {age} s behind the live edge");
    screenshot(&admin, "live-camera.png").await;

    // The grid holds every camera, live, each linking to its page.
    admin.goto(&format!("{base}/video")).await.unwrap();
    until(
        &admin,
        "+(document.querySelector('.livegrid a[href=\"/cameras/gate\"] img[data-live]').dataset.frames || 0) >= 2",
        Duration::from_secs(10),
        "the grid's live picture",
    )
    .await;

    // The setup page: the detector's tracks on the live frame.
    admin
        .goto(&format!("{base}/cameras/gate/setup"))
        .await
        .unwrap();
    until(
        &admin,
        "+(document.querySelector('.setup').dataset.tracks || 0) >= 1",
        Duration::from_secs(30),
        "tracked people drawn on the setup page",
    )
    .await;
    // Clicks on the picture become a zone, then a line.
    js(
        &admin,
        "const n = document.getElementById('drawname'); n.value = '大堂'; n.dispatchEvent(new Event('input')); return 1;",
    )
    .await;
    let zone =
        click_and_read_toml(&admin, &[(0.1, 0.5), (0.6, 0.45), (0.7, 0.95), (0.15, 0.9)]).await;
    assert!(
        zone.contains("[[cameras.zones]]") && zone.contains("大堂"),
        "{zone}"
    );
    screenshot(&admin, "setup.png").await;
    js(
        &admin,
        "document.querySelector('button[data-mode=line]').click(); return 1;",
    )
    .await;
    let line = click_and_read_toml(&admin, &[(0.2, 0.4), (0.8, 0.4), (0.5, 0.8)]).await;
    assert!(
        line.contains("[[cameras.lines]]") && line.contains("inside ="),
        "{line}"
    );
    // Pasted under the camera as printed, `vigil check` accepts both.
    let edited = dir.path().join("edited.toml");
    std::fs::write(
        &edited,
        format!("[storage]\ndir = \"data\"\n{camera_config}\n{zone}\n{line}"),
    )
    .unwrap();
    let check = vigil().args(["check", "-c"]).arg(&edited).output().unwrap();
    assert!(
        check.status.success(),
        "vigil check refused the editor's TOML:\n{zone}\n{line}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // An operator watches, but neither sees the editor nor its data.
    let operator = browser(driver_port, 390, 844).await;
    login(&operator, &base, "op", "operator-password").await;
    assert_eq!(
        fetch_status(&operator, "GET", "/cameras/gate/live.jpg", "").await,
        200
    );
    assert_eq!(
        fetch_status(&operator, "GET", "/cameras/gate/setup", "").await,
        403
    );
    assert_eq!(
        fetch_status(&operator, "GET", "/cameras/gate/live.json", "").await,
        403
    );
    assert_eq!(
        fetch_status(&operator, "GET", "/cameras/nowhere/live.jpg", "").await,
        404
    );
    operator.goto(&format!("{base}/video")).await.unwrap();
    until(
        &operator,
        "+(document.querySelector('img[data-live]').dataset.frames || 0) >= 1",
        Duration::from_secs(10),
        "the phone's live picture",
    )
    .await;
    let overflow = js(
        &operator,
        "return document.documentElement.scrollWidth - window.innerWidth;",
    )
    .await;
    assert!(
        overflow.as_i64().unwrap_or(1) <= 0,
        "phone grid overflows by {overflow}"
    );
    screenshot(&operator, "live-phone.png").await;
    // Twelve cameras, eleven of them down, on the phone's wall: their cards
    // and the camera list, and still no sideways scrolling.
    operator.goto(&format!("{base}/")).await.unwrap();
    until(
        &operator,
        "document.querySelectorAll('#wall .card.camdown').length >= 11 && document.querySelectorAll('#cameras .camera').length === 12",
        Duration::from_secs(20),
        "eleven camera-down cards and twelve cameras listed",
    )
    .await;
    let overflow = js(
        &operator,
        "return document.documentElement.scrollWidth - window.innerWidth;",
    )
    .await;
    assert!(
        overflow.as_i64().unwrap_or(1) <= 0,
        "phone wall with 12 cameras overflows by {overflow}"
    );
    // The camera panel's filter finds one building's lobby among twelve.
    js(
        &operator,
        "const f = document.getElementById('camfilter'); f.value = '11 号楼'; f.dispatchEvent(new Event('input')); return 1;",
    )
    .await;
    assert_eq!(
        js(
            &operator,
            "return Array.from(document.querySelectorAll('#cameras .camera')).filter(c => getComputedStyle(c).display !== 'none').map(c => c.dataset.camera);",
        )
        .await,
        json!(["b11"]),
        "the camera filter"
    );
    screenshot(&operator, "console-phone-12-cameras.png").await;

    // An open alert's recording plays before its end: its page has the clip
    // so far, which the browser loads and can play.
    let deadline = Instant::now() + Duration::from_secs(120);
    let buffered = loop {
        assert!(
            Instant::now() < deadline,
            "no open alert's recording could be played"
        );
        admin.goto(&format!("{base}/")).await.unwrap();
        let open = js(
            &admin,
            "const c = [...document.querySelectorAll('#wall .card[data-camera=gate]')].find(c => !c.dataset.end); return c ? c.dataset.id : null;",
        )
        .await;
        let Some(id) = open.as_str() else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        admin.goto(&format!("{base}/alerts/{id}")).await.unwrap();
        // -1: the alert ended meanwhile and its page shows the whole clip.
        let seconds = until(
            &admin,
            "(v => !v ? -1 : (v.readyState >= 2 && v.buffered.length ? v.buffered.end(0) : 0))(document.querySelector('video.sofar'))",
            Duration::from_secs(10),
            "the recording so far loaded",
        )
        .await
        .as_f64()
        .unwrap();
        if seconds > 0.0 {
            eprintln!("recording so far of open alert {id}: {seconds:.1} s playable");
            break seconds;
        }
    };
    assert!(
        buffered >= 1.0,
        "only {buffered} s of the open alert's recording"
    );
    screenshot(&admin, "alert-recording-so-far.png").await;
    operator.close().await.unwrap();
    admin.close().await.unwrap();
}
