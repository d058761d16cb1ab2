//! Store tests across its concerns: reopen and locking, the live feed, retention
//! with verification. Synthetic events and files; no media.

use super::*;
use crate::events::Event;
use crate::events::{EventSink, NewAlert, RuleKind};
use crate::time::now_ms;
use crate::time::{MediaTime, Timestamp, WallTime};
use std::sync::Arc;

fn events(camera: &str) -> (Event, Event) {
    let mut sink = EventSink::new(Arc::from(camera), 1);
    let at = |s: f64| Timestamp::new(MediaTime::from_secs_f64(s), WallTime::now());
    let alert = sink.open(
        NewAlert {
            kind: RuleKind::Loitering,
            rule: "r".into(),
            recipients: vec!["patrol".to_string()].into(),
            zone: Some("z".into()),
            line: None,
            direction: None,
            label: "person".into(),
            score: 0.8,
            bbox: [0.1, 0.1, 0.2, 0.3],
            track_id: Some(3),
            summary: "person #3 stayed".into(),
        },
        at(20.0),
    );
    sink.close(alert, at(30.0));
    let mut e = sink.events.drain(..);
    (e.next().unwrap(), e.next().unwrap())
}

fn store(dir: &Path, max_bytes: Option<u64>) -> Store {
    let config = StorageConfig {
        dir: dir.join("data"),
        max_bytes,
        ..StorageConfig::default()
    };
    Store::open_writer(&config, dir).unwrap()
}

fn add_file(store: &mut Store, alert: &str, name: &str, bytes: usize) {
    let rel = format!("evidence/{name}");
    std::fs::write(store.dir().join(&rel), vec![b'x'; bytes]).unwrap();
    store
        .add_evidence(alert, EvidenceKind::Snapshot, &rel, None)
        .unwrap();
}

#[test]
fn survives_reopen_marks_stale_alerts_and_second_writer_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (new, end) = events("cam");
    let id = new.alert().id.clone();
    {
        let mut s = store(tmp.path(), None);
        s.record_event(&new, "{}", &[], 10).unwrap();
        add_file(&mut s, &id, "a.jpg", 10);
        s.tag(&id, "bike", "officer").unwrap();
        let config = StorageConfig {
            dir: tmp.path().join("data"),
            ..StorageConfig::default()
        };
        let err = Store::open_writer(&config, tmp.path()).err().unwrap();
        assert!(
            err.to_string().contains("in use by another vigil process"),
            "{err}"
        );
        s.record_event(&end, "{}", &[], 10).unwrap();
    }
    let (left_open, _) = events("other");
    let payload = serde_json::to_string(&left_open).unwrap();
    store(tmp.path(), None)
        .record_event(&left_open, &payload, &[], 10)
        .unwrap();
    let mut s = store(tmp.path(), None);
    // Its `end` was never sent: the store makes it, once.
    let ends = s.take_interrupted();
    assert_eq!(ends.len(), 1);
    let end: serde_json::Value = serde_json::from_str(&ends[0].payload).unwrap();
    let other = left_open.alert().id.clone();
    assert_eq!(end["type"], "end");
    assert_eq!(end["reason"], "interrupted");
    assert_eq!(end["seq"], 2);
    assert_eq!(end["event_id"], format!("{other}/2"));
    let last: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(
        end["before"], last["after"],
        "the state it was last known in"
    );
    assert_eq!(end["after"]["id"], other.as_str());
    assert!(end["after"]["end"]["wall_ms"].as_i64().is_some());
    assert_eq!(ends[0].recipients, left_open.alert().recipients.to_vec());
    s.record_interrupted_end(&ends[0], &[], 10).unwrap();
    assert!(s.take_interrupted().is_empty());
    drop(s);
    assert!(
        store(tmp.path(), None).take_interrupted().is_empty(),
        "announced once, not at every start"
    );
    let s = store(tmp.path(), None);
    let d = s.alert(&id).unwrap();
    assert_eq!(d.alert.state, "ended");
    let stale = s.alert(&left_open.alert().id).unwrap();
    assert_eq!(
        stale.alert.state, "interrupted",
        "left open by a stopped run"
    );
    // It ends when vigil last heard of it: the wall and the alert page show
    // that end, not a duration that grows for ever.
    assert_eq!(
        stale.alert.end_wall_ms,
        end["after"]["end"]["wall_ms"].as_i64(),
        "interrupted alerts end when their `end` on MQTT says"
    );
    assert_eq!(d.tags[0].text, "bike");
    assert_eq!(d.evidence.len(), 1);
    assert_eq!(d.events.len(), 2);
    assert_eq!(
        s.alert(&other).unwrap().events.len(),
        2,
        "new and the interrupted end"
    );
    let listed = s
        .alerts(&AlertFilter {
            tag: Some("bike".into()),
            ..AlertFilter::default()
        })
        .unwrap();
    assert_eq!(listed.len(), 1);
    let v = s.verify(None, &s.public_key().unwrap()).unwrap();
    assert!(v.failures.is_empty(), "{:?}", v.failures);
}

#[test]
fn feed_follows_events_and_acks_once_each_and_pages_by_keyset() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = store(tmp.path(), None);
    let mut ids = Vec::new();
    for cam in ["a", "b", "c"] {
        let (new, end) = events(cam);
        s.record_event(&new, "{}", &[], 10).unwrap();
        s.record_event(&end, "{}", &[], 10).unwrap();
        ids.push(new.alert().id.clone());
    }
    let head = s.feed_head().unwrap();
    assert_eq!(head, FeedCursor { event: 6, ack: 0 });
    // From the start: each alert once, in the order of its latest change.
    let (changed, next) = s.feed_after(FeedCursor::default(), 100).unwrap();
    assert_eq!(changed, ids);
    assert_eq!(next, head);
    assert!(s.feed_after(head, 100).unwrap().0.is_empty());
    // Read two at a time: nothing skipped, nothing twice.
    let (first, mid) = s.feed_after(FeedCursor::default(), 3).unwrap();
    let (rest, end) = s.feed_after(mid, 3).unwrap();
    assert_eq!(end, head);
    assert_eq!(first.len() + rest.len(), 4, "{first:?} {rest:?}"); // b spans both reads

    let ack = |action, who: &str| Ack {
        action,
        who: who.into(),
        note: "on it".into(),
        at_ms: 5,
        outcome: (action == AckAction::Resolve).then_some(Outcome::FalseAlarm),
    };
    let announce = |camera: &str| {
        vec![OutboxMessage {
            topic: format!("vigil/alerts/acks/{camera}"),
            payload: b"{}".to_vec(),
            retain: false,
            priority: Priority::Warning,
            captured_us: None,
        }]
    };
    s.acknowledge(&ids[1], &ack(AckAction::Ack, "wang"), announce, 10)
        .unwrap();
    let (changed, after_ack) = s.feed_after(head, 100).unwrap();
    assert_eq!(changed, vec![ids[1].clone()]);
    assert_eq!(after_ack, FeedCursor { event: 6, ack: 1 });
    let row = &s.alerts_by_id(&ids[1..2]).unwrap()[0];
    assert_eq!(row.ack.as_ref().unwrap().who, "wang");
    let queued = Outbox::open(s.db_path()).unwrap().after(0, 10).unwrap();
    assert_eq!(
        queued[0].topic, "vigil/alerts/acks/b",
        "ack queued with the row"
    );
    assert!(matches!(
        s.acknowledge("nope", &ack(AckAction::Ack, "wang"), announce, 10),
        Err(StoreError::NoAlert { .. })
    ));

    // Resolved alerts leave the wall; acknowledged ones stay.
    assert_eq!(s.unresolved(10).unwrap().len(), 3);
    assert!(s.resolved_since(0, 10).unwrap().is_empty());
    s.acknowledge(&ids[0], &ack(AckAction::Resolve, "li"), |_| Vec::new(), 10)
        .unwrap();
    let wall: Vec<String> = s
        .unresolved(10)
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert!(!wall.contains(&ids[0]) && wall.contains(&ids[1]));
    let resolution = &s.acks(&ids[0]).unwrap()[0];
    assert_eq!(resolution.action, AckAction::Resolve);
    assert_eq!(
        resolution.outcome,
        Some(Outcome::FalseAlarm),
        "the reason code is kept"
    );
    // Nothing twice: a second acknowledgement or resolution is refused, and
    // an acknowledged alert can still be resolved.
    assert!(matches!(
        s.acknowledge(&ids[1], &ack(AckAction::Ack, "li"), announce, 10),
        Err(StoreError::AlreadyDone {
            what: "acknowledged",
            ..
        })
    ));
    assert!(matches!(
        s.acknowledge(&ids[0], &ack(AckAction::Ack, "li"), announce, 10),
        Err(StoreError::AlreadyDone {
            what: "resolved",
            ..
        })
    ));
    s.acknowledge(&ids[1], &ack(AckAction::Resolve, "li"), |_| Vec::new(), 10)
        .unwrap();
    assert!(matches!(
        s.acknowledge(&ids[1], &ack(AckAction::Resolve, "li"), |_| Vec::new(), 10),
        Err(StoreError::AlreadyDone { .. })
    ));
    // Operators see what was resolved lately: the latest first, with who did it.
    let resolved = s.resolved_since(0, 10).unwrap();
    let order: Vec<&str> = resolved.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(order, [ids[1].as_str(), ids[0].as_str()]);
    assert!(resolved.iter().all(|a| {
        a.ack.as_ref().is_some_and(|k| {
            k.action == AckAction::Resolve
                && k.who == "li"
                && k.outcome == Some(Outcome::FalseAlarm)
        })
    }));
    assert_eq!(s.resolved_since(0, 1).unwrap().len(), 1);
    assert!(s.resolved_since(i64::MAX, 10).unwrap().is_empty());
    // The shift report's rows: who took each alert first and how it ended.
    let shift = s.shift(0, i64::MAX).unwrap();
    let row = shift.iter().find(|h| h.id == ids[1]).unwrap();
    assert_eq!(row.taken.as_ref().map(|t| t.0.as_str()), Some("wang"));
    assert_eq!(
        row.resolved.as_ref().map(|r| (r.0.as_str(), r.2)),
        Some(("li", Some(Outcome::FalseAlarm)))
    );
    assert!(s.shift(i64::MAX - 1, i64::MAX).unwrap().is_empty());

    // Tags are found by their start: a case number without its suffix.
    s.tag(&ids[2], "沪公浦刑2026-117号", "li").unwrap();
    let tagged = |t: &str| {
        s.alerts(&AlertFilter {
            tag: Some(t.into()),
            ..AlertFilter::default()
        })
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect::<Vec<_>>()
    };
    assert_eq!(tagged("沪公浦刑"), vec![ids[2].clone()]);
    assert_eq!(tagged("沪公浦刑2026-117号"), vec![ids[2].clone()]);
    assert!(tagged("2026-117").is_empty() && tagged("沪公浦刑2026-118").is_empty());

    // Keyset pages: newest first, each alert on exactly one page.
    let page = |before| {
        s.alerts(&AlertFilter {
            limit: Some(2),
            before,
            ..AlertFilter::default()
        })
        .unwrap()
    };
    let one = page(None);
    let last = one.last().unwrap();
    let two = page(Some((last.start_wall_ms, last.id.clone())));
    let mut all: Vec<String> = one.iter().chain(&two).map(|a| a.id.clone()).collect();
    assert_eq!(all.len(), 3);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 3);

    // The chain of custody, deduplicated on request.
    s.log_access("li", "file", Some(&ids[2]), "evidence/c/x.jpg")
        .unwrap();
    assert!(
        s.accessed_since("li", "file", "evidence/c/x.jpg", 0)
            .unwrap()
    );
    assert!(
        !s.accessed_since("wang", "file", "evidence/c/x.jpg", 0)
            .unwrap()
    );
    assert_eq!(s.access_log(&ids[2]).unwrap()[0].who, "li");
}

#[test]
fn retention_keeps_open_and_held_alerts_and_verify_still_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = store(tmp.path(), Some(25));
    let mut ids = Vec::new();
    for cam in ["a", "b", "c"] {
        let (new, end) = events(cam);
        s.record_event(&new, "{}", &[], 10).unwrap();
        s.record_event(&end, "{}", &[], 10).unwrap();
        let id = new.alert().id.clone();
        add_file(&mut s, &id, &format!("{cam}.jpg"), 10);
        ids.push(id);
    }
    let (open, _) = events("d");
    s.record_event(&open, "{}", &[], 10).unwrap();
    add_file(&mut s, &open.alert().id, "d.jpg", 10);
    s.hold(&ids[0], "officer", "case 12").unwrap();
    let removed = s.apply_retention(now_ms()).unwrap();
    // 40 bytes kept, limit 25: the oldest unheld ended alert's file goes (b),
    // then c; a is held and d is open.
    let gone: Vec<&str> = removed.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(gone, ["evidence/b.jpg", "evidence/c.jpg"]);
    assert!(s.dir().join("evidence/a.jpg").exists());
    assert!(s.dir().join("evidence/d.jpg").exists());
    let v = s.verify(None, &s.public_key().unwrap()).unwrap();
    assert!(v.failures.is_empty(), "{:?}", v.failures);

    std::fs::remove_file(s.dir().join("evidence/a.jpg")).unwrap();
    let v = s.verify(None, &s.public_key().unwrap()).unwrap();
    assert!(v.failures[0].contains("evidence/a.jpg"), "{:?}", v.failures);
    assert!(v.failures[0].contains("missing"), "{:?}", v.failures);
}

#[test]
fn files_left_half_written_by_a_killed_run_are_deleted_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), None);
    let day = s.dir().join("evidence/room/2026-12-01");
    std::fs::create_dir_all(&day).unwrap();
    for name in [
        "a-clip.mp4.part",
        "a-clip.mp4.part.mdat",
        "a-clip.mp4.sofar.mp4",
        "b-snapshot.jpg.part",
    ] {
        std::fs::write(day.join(name), b"half").unwrap();
    }
    std::fs::write(day.join("c-clip.mp4"), b"whole").unwrap();
    assert_eq!(s.remove_partial_files(), (4, 16));
    let left: Vec<_> = std::fs::read_dir(&day)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, vec!["c-clip.mp4".to_string()]);
}

#[test]
fn sessions_survive_a_reopen_keep_only_the_token_hash_and_expire_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let session = |user: &str, last_seen_ms| StoredSession {
        user: user.into(),
        csrf: "c".repeat(64),
        password_fingerprint: "f".repeat(64),
        last_seen_ms,
    };
    {
        let mut s = store(dir.path(), None);
        s.open_session("old-token", &session("li", 1_000), 0)
            .unwrap();
        s.open_session("token-1", &session("wang", 50_000), 0)
            .unwrap();
    }
    // A restart: the session is still there, by its token.
    let mut s = store(dir.path(), None);
    assert_eq!(s.session("token-1").unwrap(), Some(session("wang", 50_000)));
    s.touch_session("token-1", 60_000).unwrap();
    assert_eq!(s.session("token-1").unwrap().unwrap().last_seen_ms, 60_000);
    assert!(s.session("token-2").unwrap().is_none());
    // The database never holds the token itself.
    let raw: Vec<String> = s
        .conn
        .prepare("SELECT token_sha256 FROM sessions")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(raw.iter().all(|k| k.len() == 64 && !k.contains("token")));
    // Opening a session clears the idle ones.
    s.open_session("token-3", &session("zhao", 70_000), 10_000)
        .unwrap();
    assert!(s.session("old-token").unwrap().is_none());
    s.close_session("token-1").unwrap();
    assert!(s.session("token-1").unwrap().is_none());
    assert!(s.session("token-3").unwrap().is_some());
}

#[test]
fn a_deleted_database_is_noticed_and_verify_lists_what_it_lost() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let mut s = store(tmp.path(), None);
        for cam in ["a", "b"] {
            let (new, end) = events(cam);
            s.record_event(&new, "{}", &[], 10).unwrap();
            s.record_event(&end, "{}", &[], 10).unwrap();
            add_file(&mut s, &new.alert().id, &format!("{cam}.jpg"), 10);
        }
        assert!(s.db_in_place());
        for f in ["vigil.db", "vigil.db-wal", "vigil.db-shm"] {
            let _ = std::fs::remove_file(s.dir().join(f));
        }
        assert!(!s.db_in_place(), "the running store notices");
    }
    // The next start gets an empty database; verify says what it no longer knows.
    let s = store(tmp.path(), None);
    let v = s.verify(None, &s.public_key().unwrap()).unwrap();
    assert_eq!(v.failures.len(), 2, "{:?}", v.failures);
    assert!(
        v.failures
            .iter()
            .all(|f| f.contains("unknown to the database") && f.contains("vigil.db was deleted")),
        "{:?}",
        v.failures
    );
    assert!(v.failures[0].contains("evidence/a.jpg"), "{:?}", v.failures);
}

#[test]
fn alerts_nobody_takes_are_escalated_once_and_announced_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = store(tmp.path(), None);
    let mut ids = Vec::new();
    for cam in ["a", "b", "c"] {
        let (new, _) = events(cam);
        s.record_event(&new, "{}", &[], 10).unwrap();
        ids.push(new.alert().id.clone());
    }
    let started = s.alert(&ids[0]).unwrap().alert.start_wall_ms;
    let announce = |a: &AlertRow| {
        vec![OutboxMessage {
            topic: format!("vigil/alerts/escalations/{}", a.camera),
            payload: a.id.clone().into_bytes(),
            retain: false,
            priority: Priority::High,
            captured_us: None,
        }]
    };
    let take = Ack {
        action: AckAction::Ack,
        who: "wang".into(),
        note: String::new(),
        at_ms: started + 1_000,
        outcome: None,
    };
    s.acknowledge(&ids[1], &take, |_| Vec::new(), 10).unwrap();
    // Not yet due.
    let due = s.escalate_overdue(started + 59_000, 60_000, announce, 10);
    assert!(due.unwrap().is_empty());
    // Due: the two nobody took, not the one wang took.
    let now = started + 61_000;
    let escalated: Vec<String> = s
        .escalate_overdue(now, 60_000, announce, 10)
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(escalated, vec![ids[0].clone(), ids[2].clone()]);
    assert_eq!(s.escalated_at(&ids[0]).unwrap(), Some(now));
    assert_eq!(s.escalated_at(&ids[1]).unwrap(), None);
    let queued = Outbox::open(s.db_path()).unwrap().after(0, 10).unwrap();
    let topics: Vec<&str> = queued.iter().map(|q| q.topic.as_str()).collect();
    assert_eq!(
        topics,
        ["vigil/alerts/escalations/a", "vigil/alerts/escalations/c"]
    );
    // Once each, across a reopen.
    drop(s);
    let mut s = store(tmp.path(), None);
    assert!(
        s.escalate_overdue(now + 10_000, 60_000, announce, 10)
            .unwrap()
            .is_empty()
    );
    // A day later an old alert is not news.
    let (new, _) = events("d");
    s.record_event(&new, "{}", &[], 10).unwrap();
    let day = 24 * 3600 * 1000;
    assert!(
        s.escalate_overdue(now + day + 1, 60_000, announce, 10)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn the_change_feed_follows_tags_and_holds_that_the_live_feed_does_not_carry() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = store(tmp.path(), None);
    let mut ids = Vec::new();
    for cam in ["a", "b"] {
        let (new, end) = events(cam);
        s.record_event(&new, "{}", &[], 10).unwrap();
        s.record_event(&end, "{}", &[], 10).unwrap();
        ids.push(new.alert().id.clone());
    }
    let (changed, after_events) = s.changed_after(ChangeCursor::default(), 100).unwrap();
    assert_eq!(changed, ids);
    assert_eq!(after_events, s.change_head().unwrap());
    // A case number, then a hold released: the feed is silent, the change
    // feed names the alert once per read.
    s.tag(&ids[0], "沪公浦刑2026-117号", "police").unwrap();
    s.hold(&ids[1], "police", "case").unwrap();
    s.release(&ids[1]).unwrap();
    assert!(
        s.feed_after(after_events.feed, 100).unwrap().0.is_empty(),
        "tags are not news on the wall"
    );
    let (changed, head) = s.changed_after(after_events, 100).unwrap();
    assert_eq!(changed, ids);
    assert_eq!(head.review, 3);
    assert!(s.changed_after(head, 100).unwrap().0.is_empty());
    assert_eq!(head.to_string().parse::<ChangeCursor>(), Ok(head));
    assert!("1-2".parse::<ChangeCursor>().is_err());
}

#[test]
fn an_alert_s_record_changes_with_its_files_custody_and_escalation_and_the_change_feed_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = store(tmp.path(), None);
    let (new, end) = events("a");
    let id = new.alert().id.clone();
    s.record_event(&new, r#"{"n":1}"#, &[], 10).unwrap();
    s.record_event(&end, r#"{"n":2}"#, &[], 10).unwrap();
    let mut cursor = s.change_head().unwrap();
    let mut changed = |s: &Store| {
        let (ids, next) = s.changed_after(cursor, 100).unwrap();
        cursor = next;
        ids
    };

    add_file(&mut s, &id, "a.jpg", 10);
    assert_eq!(changed(&s), std::slice::from_ref(&id), "a file added");
    s.log_access("zhao", "view", Some(&id), "alert page")
        .unwrap();
    assert_eq!(changed(&s), std::slice::from_ref(&id), "a custody line");
    s.log_access("zhao", "search", None, "kind=fire").unwrap();
    assert!(changed(&s).is_empty(), "custody of no alert changes none");
    let start = new.alert().start.wall_ms as i64;
    let escalated = s
        .escalate_overdue(start + 120_000, 60_000, |_| Vec::new(), 0)
        .unwrap();
    assert_eq!(escalated.len(), 1);
    assert_eq!(changed(&s), std::slice::from_ref(&id), "an escalation");
    let removed = s.apply_retention(now_ms() + 31 * 86_400_000).unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(
        changed(&s),
        std::slice::from_ref(&id),
        "a file deleted by retention"
    );

    let record = s.record(&id).unwrap();
    assert_eq!(
        record
            .events
            .iter()
            .map(|e| (e.kind.as_str(), e.payload.as_str()))
            .collect::<Vec<_>>(),
        [("new", r#"{"n":1}"#), ("end", r#"{"n":2}"#)],
        "payloads exactly as published"
    );
    assert!(record.evidence[0].deleted_ms.is_some());
    assert_eq!(record.custody.len(), 1);
    // The escalation sits in the timeline by its time: after both events.
    let timeline = record.timeline();
    assert_eq!(
        timeline.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["new", "end", "escalated"]
    );
    assert_eq!(record.detail().events[1]["n"], 2);
}
