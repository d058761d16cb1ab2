//! The console's store queries on a generated store of 100 000 alerts (8
//! cameras, three kinds, 60 days, 1 % tagged, half acknowledged): police
//! search pages (no filter, kind + one day, camera + kind, tag, state, a page
//! deep in the results), the operator's wall (200 unresolved) and the live
//! feed's catch-up. Prints p50/p95 over 200 runs of each first, then the
//! criterion estimates. Run: `cargo bench --bench search` (`VIGIL_SEARCH_ALERTS`
//! changes the size, `VIGIL_SEARCH_DIR=DIR` keeps the store there).
//!
//! With `VIGIL_SEARCH_PG=postgres://user@host:port/db` (password in
//! `VIGIL_PG_PASSWORD`), also a compound's alert index in that PostgreSQL:
//! how fast a node copies the generated store into it (`Index::sync`), then
//! the same searches over `VIGIL_SEARCH_PG_ALERTS` alerts (default 1 000 000,
//! generated in SQL), a shift report and the recently resolved page of the
//! whole compound, and the owner lookup every forwarded request makes.

use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::Arc;
use std::time::Instant;
use vigil::events::{Alert, RuleKind, Severity};
use vigil::store::{Ack, AckAction, AlertFilter, FeedCursor, StorageConfig, Store};
use vigil::time::{MediaTime, Timestamp};

const DAY_MS: u64 = 86_400_000;
const START_MS: u64 = 1_790_000_000_000;

fn generate(store: &mut Store, n: usize) {
    let kinds = [
        (RuleKind::Loitering, Severity::Warning),
        (RuleKind::BatteryCart, Severity::High),
        (RuleKind::FireSmoke, Severity::Critical),
    ];
    let span = 60 * DAY_MS;
    for i in 0..n {
        let (kind, severity) = kinds[i % 3];
        let camera = format!("cam{}", i % 8);
        let wall_ms = START_MS + (i as u64 * span / n as u64);
        let start = Timestamp {
            media_s: MediaTime::from_secs_f64(i as f64),
            wall_ms,
        };
        let alert = Alert {
            id: format!("{camera}-{START_MS}-{i:06}"),
            camera: Arc::from(camera.as_str()),
            kind,
            rule: Arc::from("r"),
            severity,
            recipients: vec!["patrol".to_string()].into(),
            zone: Some(Arc::from("lobby")),
            line: None,
            direction: None,
            label: Arc::from("person"),
            score: 0.8,
            bbox: [0.1, 0.1, 0.3, 0.6],
            track_id: Some(i as u64),
            start,
            end: (i % 10 != 0).then_some(Timestamp {
                wall_ms: wall_ms + 30_000,
                ..start
            }),
            summary: "generated".into(),
            events_raised: 0,
        };
        store.record_alert(&alert).unwrap();
        if i % 100 == 0 {
            store
                .tag(&alert.id, &format!("case-{}", i / 1000), "li")
                .unwrap();
        }
        if i % 2 == 0 {
            let ack = Ack {
                action: if i % 4 == 0 {
                    AckAction::Resolve
                } else {
                    AckAction::Ack
                },
                who: "wang".into(),
                note: String::new(),
                at_ms: wall_ms as i64 + 1000,
                outcome: (i % 4 == 0).then_some(vigil::store::Outcome::OnSite),
            };
            store
                .acknowledge(&alert.id, &ack, |_| Vec::new(), 10)
                .unwrap();
        }
    }
}

/// A named store query returning how many rows it read.
type Query = (&'static str, Box<dyn Fn(&Store) -> usize>);

fn queries() -> Vec<Query> {
    let day = |d: u64| (START_MS + d * DAY_MS) as i64;
    let filter = |f: AlertFilter| AlertFilter {
        limit: Some(50),
        ..f
    };
    vec![
        (
            "search: newest page",
            Box::new(move |s: &Store| s.alerts(&filter(AlertFilter::default())).unwrap().len()),
        ),
        (
            "search: kind + one day",
            Box::new(move |s: &Store| {
                s.alerts(&filter(AlertFilter {
                    kind: Some("fire_smoke".into()),
                    since_ms: Some(day(30)),
                    until_ms: Some(day(31)),
                    ..AlertFilter::default()
                }))
                .unwrap()
                .len()
            }),
        ),
        (
            "search: camera + kind",
            Box::new(move |s: &Store| {
                s.alerts(&filter(AlertFilter {
                    camera: Some("cam3".into()),
                    kind: Some("battery_cart".into()),
                    ..AlertFilter::default()
                }))
                .unwrap()
                .len()
            }),
        ),
        (
            "search: tag",
            Box::new(move |s: &Store| {
                s.alerts(&filter(AlertFilter {
                    tag: Some("case-42".into()),
                    ..AlertFilter::default()
                }))
                .unwrap()
                .len()
            }),
        ),
        (
            "search: state open",
            Box::new(move |s: &Store| {
                s.alerts(&filter(AlertFilter {
                    state: Some("open".into()),
                    ..AlertFilter::default()
                }))
                .unwrap()
                .len()
            }),
        ),
        (
            "search: page in the middle",
            Box::new(move |s: &Store| {
                s.alerts(&filter(AlertFilter {
                    before: Some((day(30), "~".into())),
                    ..AlertFilter::default()
                }))
                .unwrap()
                .len()
            }),
        ),
        (
            "shift report: every alert",
            Box::new(|s: &Store| {
                let rows = s.shift(0, i64::MAX).unwrap();
                vigil::store::ShiftSummary::of(&rows).alerts
            }),
        ),
        (
            "wall: 200 unresolved",
            Box::new(|s: &Store| s.unresolved(200).unwrap().len()),
        ),
        (
            "feed: catch up 100 events",
            Box::new(|s: &Store| {
                let head = s.feed_head().unwrap();
                let from = FeedCursor {
                    event: head.event,
                    ack: head.ack - 100,
                };
                let (ids, _) = s.feed_after(from, 500).unwrap();
                s.alerts_by_id(&ids).unwrap().len()
            }),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let n: usize = std::env::var("VIGIL_SEARCH_ALERTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    // VIGIL_SEARCH_DIR keeps the generated store there (to load a console on it).
    let dir = tempfile::tempdir().unwrap();
    let keep = std::env::var_os("VIGIL_SEARCH_DIR").map(std::path::PathBuf::from);
    let config = StorageConfig {
        dir: keep.clone().unwrap_or_else(|| dir.path().join("data")),
        ..StorageConfig::default()
    };
    let generating = Instant::now();
    {
        let mut writer = Store::open_writer(&config, dir.path()).unwrap();
        generate(&mut writer, n);
    }
    eprintln!(
        "generated {n} alerts in {:.1} s",
        generating.elapsed().as_secs_f64()
    );
    let store = Store::open_reader(&config, dir.path()).unwrap();
    eprintln!(
        "{:<28} {:>6} {:>9} {:>9}",
        "query", "rows", "p50 ms", "p95 ms"
    );
    for (name, query) in queries() {
        let mut times: Vec<f64> = (0..200)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(query(&store));
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(|a, b| a.total_cmp(b));
        eprintln!(
            "{name:<28} {:>6} {:>9.2} {:>9.2}",
            query(&store),
            times[100],
            times[190]
        );
    }
    if let Ok(url) = std::env::var("VIGIL_SEARCH_PG") {
        compound_index(&url, &store);
    }
    let mut group = c.benchmark_group("console_store");
    group.sample_size(30);
    for (name, query) in queries() {
        group.bench_function(name, |b| b.iter(|| query(&store)));
    }
    group.finish();
}

/// p50 and p95 in ms of 200 runs of `f`.
fn percentiles(mut f: impl FnMut() -> usize) -> (usize, f64, f64) {
    let mut times: Vec<f64> = (0..200)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    (f(), times[100], times[190])
}

fn compound_index(url: &str, store: &Store) {
    let compound: vigil::compound::CompoundConfig =
        toml::from_str(&format!("database = {url:?}")).unwrap();
    let pg = compound.pg_config(std::path::Path::new(".")).unwrap();
    let mut client = pg.connect(postgres::NoTls).unwrap();
    // A fresh index: the copy is measured from nothing.
    client
        .batch_execute(
            "DO $$ DECLARE t text; BEGIN
                 FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = current_schema() LOOP
                     EXECUTE format('DROP TABLE IF EXISTS %I CASCADE', t);
                 END LOOP;
             END $$",
        )
        .unwrap();
    let mut index = vigil::compound::Index::connect(&pg, "bench-node", None, None).unwrap();
    let copying = Instant::now();
    let mut copied = 0;
    loop {
        match index.sync(store).unwrap() {
            0 => break,
            n => copied += n,
        }
    }
    let took = copying.elapsed().as_secs_f64();
    eprintln!(
        "index copy: {copied} alerts in {took:.1} s, {:.0} alerts/s",
        copied as f64 / took
    );
    let n: i64 = std::env::var("VIGIL_SEARCH_PG_ALERTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let generating = Instant::now();
    // The same shape as `generate`, in SQL: 8 cameras on 4 nodes, three kinds,
    // 60 days, 1 % tagged, a quarter resolved, a tenth still open.
    client
        .batch_execute(&format!(
            "TRUNCATE alerts CASCADE;
             INSERT INTO alerts (id, node, camera, kind, state, start_wall_ms, resolved, row, copied, severity)
             SELECT id, 'node-' || (i % 4), 'cam' || (i % 8), kind, state, ms, i % 4 = 0,
                    json_build_object('id', id, 'camera', 'cam' || (i % 8), 'kind', kind,
                        'rule', 'r', 'severity', 'warning', 'zone', 'lobby', 'line', null,
                        'label', 'person', 'score', 0.8, 'box', json_build_array(0.1, 0.1, 0.3, 0.6),
                        'track_id', i, 'start_media_s', i, 'start_wall_ms', ms,
                        'end_media_s', null, 'end_wall_ms', null, 'recipients', json_build_array('patrol'),
                        'summary', 'generated', 'state', state, 'tags', json_build_array(),
                        'held', false, 'ack', null, 'annotated', null)::text,
                    now(), 'warning'
             FROM (SELECT i, 'cam' || (i % 8) || '-{START_MS}-' || lpad(i::text, 7, '0') AS id,
                          (ARRAY['loitering', 'battery_cart', 'fire_smoke'])[i % 3 + 1] AS kind,
                          CASE WHEN i % 10 = 0 THEN 'open' ELSE 'ended' END AS state,
                          {START_MS} + i * {span} / {n} AS ms
                   FROM generate_series(0, {last}) i) g;
             INSERT INTO alert_tags (alert_id, text)
             SELECT id, 'case-' || (start_wall_ms % 997) FROM alerts WHERE start_wall_ms % 100 = 0;
             INSERT INTO alert_acks (alert_id, pos, action, who, note, at_ms, outcome)
             SELECT id, 0, 'resolve', 'wang', '', start_wall_ms + 60000, 'on_site'
             FROM alerts WHERE resolved;
             ANALYZE alerts; ANALYZE alert_tags; ANALYZE alert_acks;",
            span = 60 * DAY_MS,
            last = n - 1,
        ))
        .unwrap();
    eprintln!(
        "generated {n} alerts in PostgreSQL in {:.1} s",
        generating.elapsed().as_secs_f64()
    );
    let peers = vigil::compound::Peers::new(&compound, std::path::Path::new("."), "bench").unwrap();
    let day = |d: u64| (START_MS + d * DAY_MS) as i64;
    let page = |f: AlertFilter| AlertFilter {
        limit: Some(50),
        ..f
    };
    let tag: String = client
        .query_one("SELECT text FROM alert_tags LIMIT 1", &[])
        .unwrap()
        .get(0);
    let searches: Vec<(&str, AlertFilter)> = vec![
        ("newest page", page(AlertFilter::default())),
        (
            "kind + one day",
            page(AlertFilter {
                kind: Some("fire_smoke".into()),
                since_ms: Some(day(30)),
                until_ms: Some(day(31)),
                ..AlertFilter::default()
            }),
        ),
        (
            "camera + kind",
            page(AlertFilter {
                camera: Some("cam3".into()),
                kind: Some("battery_cart".into()),
                ..AlertFilter::default()
            }),
        ),
        (
            "tag",
            page(AlertFilter {
                tag: Some(tag),
                ..AlertFilter::default()
            }),
        ),
        (
            "state open",
            page(AlertFilter {
                state: Some("open".into()),
                ..AlertFilter::default()
            }),
        ),
        (
            "page in the middle",
            page(AlertFilter {
                before: Some((day(30), "~".into())),
                ..AlertFilter::default()
            }),
        ),
    ];
    eprintln!(
        "{:<28} {:>6} {:>9} {:>9}",
        "PostgreSQL index", "rows", "p50 ms", "p95 ms"
    );
    for (name, filter) in &searches {
        let (rows, p50, p95) = percentiles(|| peers.search(filter).unwrap().len());
        eprintln!(
            "{:<28} {rows:>6} {p50:>9.2} {p95:>9.2}",
            format!("search: {name}")
        );
    }
    // The shift report of a 12-hour shift and the recently resolved page,
    // for every node (n alerts over 60 days: about n / 120 in a shift).
    let (rows, p50, p95) = percentiles(|| {
        peers
            .shift(day(30), day(30) + DAY_MS as i64 / 2)
            .unwrap()
            .len()
    });
    eprintln!(
        "{:<28} {rows:>6} {p50:>9.2} {p95:>9.2}",
        "shift report, 12 h"
    );
    let (rows, p50, p95) = percentiles(|| peers.resolved_since(day(30), 50).unwrap().len());
    eprintln!(
        "{:<28} {rows:>6} {p50:>9.2} {p95:>9.2}",
        "recently resolved"
    );
    let id = format!("cam3-{START_MS}-{:07}", n / 2 + 3);
    let (_, p50, p95) = percentiles(|| usize::from(peers.owner(&id).unwrap().is_some()));
    eprintln!("{:<28} {:>6} {p50:>9.2} {p95:>9.2}", "owner of an alert", 1);
}

criterion_group!(benches, bench);
criterion_main!(benches);
