//! Evidence: the stage between the cameras and publish that makes every event
//! carry its proof.
//!
//! One thread owns the [`Store`]. For `new` it converts the confirming frame,
//! writes the clean and annotated JPEGs, syncs and hashes them into the signed
//! manifest, starts the alert's clip from the camera's ring, and only then
//! passes the event on: a subscriber that receives `new` can open its snapshot.
//! `end` is held until the clip writer reports the clip closed, synced and
//! hashed (`end + post_roll` of media later), so the clip can be fetched the
//! moment `end` arrives. Every event is stored with the payload as published.
//!
//! Evidence that cannot be written (full disk, a store gone read-only) never
//! holds an alert back: the event goes out without the evidence field, an error
//! line is logged and `vigil_evidence_errors_total` counts it.

use crate::camera::CameraConfig;
use crate::errors::source_chain;
use crate::events::{ClipRef, ClipRefs, Event, FileRef, Lifecycle, Severity, SnapshotRef};
use crate::publish::AlertsConfig;
use crate::record::snapshot::{self, Annotation, LinePoints};
use crate::record::{CameraRecorder, ClipsDone, Recorders};
use crate::store::{EvidenceKind, Store};
use ab_glyph::FontVec;
use crossbeam_channel::{Receiver, Sender, select};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Events waiting for the evidence stage: a slow disk slows the cameras'
/// hand-off only after this many.
const QUEUE: usize = 256;
/// How long, after the cameras stopped, `end` events wait for their clips.
const CLIP_WAIT: Duration = Duration::from_secs(60);
const AGE_RETENTION_EVERY: Duration = Duration::from_secs(600);
const DB_CHECK_EVERY: Duration = Duration::from_secs(5);
const DB_LOST_REPEAT: Duration = Duration::from_secs(60);

/// Zones and lines of one camera, for drawing.
#[derive(Default)]
struct Geometry {
    name: String,
    zones: HashMap<String, Vec<[f32; 2]>>,
    lines: HashMap<String, LinePoints>,
}

pub struct EvidenceStage {
    store: Store,
    recorders: Recorders,
    cameras: HashMap<String, Arc<CameraRecorder>>,
    geometry: HashMap<String, Geometry>,
    font: Option<FontVec>,
    /// The compound's zone for times burned into snapshots.
    time_zone: jiff::tz::TimeZone,
    publish: Sender<Event>,
    /// MQTT: topics and the publisher's wake-up; `None` when this run does not publish.
    mqtt: Option<(AlertsConfig, Sender<()>)>,
    /// `end` events waiting for their clips, by alert id.
    pending_ends: HashMap<String, Event>,
    last_age_retention: Instant,
    /// No new evidence while the disk is nearly full (see `store/space.rs`).
    evidence_paused: bool,
    db_checked: Instant,
    db_lost_said: Option<Instant>,
}

/// The running stage: send events to `events`; `recorders` feed the sources.
pub struct Running {
    pub events: Sender<Event>,
    pub recorders: HashMap<String, Arc<CameraRecorder>>,
    pub handle: std::thread::JoinHandle<()>,
}

fn error_counted(camera: &str, message: String) {
    tracing::error!(camera = %camera, "{message}");
    metrics::counter!("vigil_evidence_errors_total", "camera" => camera.to_string()).increment(1);
}

impl EvidenceStage {
    /// Starts the stage on its own thread; events it has finished go to `publish`.
    pub fn spawn(
        store: Store,
        camera_configs: &[CameraConfig],
        time_zone: jiff::tz::TimeZone,
        publish: Sender<Event>,
        mqtt: Option<(AlertsConfig, Sender<()>)>,
        watched: bool,
    ) -> Running {
        let (clips_tx, clips_rx) = crossbeam_channel::bounded::<ClipsDone>(QUEUE);
        let recorders = Recorders::new(clips_tx, watched);
        let cameras: HashMap<String, Arc<CameraRecorder>> = camera_configs
            .iter()
            .map(|c| (c.id.clone(), recorders.camera(&c.id, &c.record)))
            .collect();
        let geometry = camera_configs
            .iter()
            .map(|c| {
                let g = Geometry {
                    name: c.name.clone().unwrap_or_else(|| c.id.clone()),
                    zones: c
                        .zones
                        .iter()
                        .map(|z| (z.name.clone(), z.polygon.clone()))
                        .collect(),
                    lines: c
                        .lines
                        .iter()
                        .map(|l| (l.name.clone(), (l.from, l.to, l.inside)))
                        .collect(),
                };
                (c.id.clone(), g)
            })
            .collect();
        let font = snapshot::find_font();
        if font.is_none() {
            tracing::warn!(
                "no TrueType font found (install fonts-wqy-zenhei for Chinese names, or fonts-dejavu-core): annotated snapshots will have shapes but no text"
            );
        }
        let (tx, rx) = crossbeam_channel::bounded::<Event>(QUEUE);
        let stage = EvidenceStage {
            store,
            recorders,
            cameras: cameras.clone(),
            geometry,
            font,
            publish,
            mqtt,
            pending_ends: HashMap::new(),
            time_zone,
            last_age_retention: Instant::now(),
            evidence_paused: false,
            db_checked: Instant::now(),
            db_lost_said: None,
        };
        let handle = std::thread::Builder::new()
            .name("evidence".into())
            .spawn(move || stage.run(rx, clips_rx))
            .expect("spawning the evidence thread");
        Running {
            events: tx,
            recorders: cameras,
            handle,
        }
    }

    fn run(mut self, events: Receiver<Event>, clips: Receiver<ClipsDone>) {
        self.store.remove_partial_files();
        self.store.keep_reserve();
        self.announce_interrupted();
        self.retention();
        let mut events_open = true;
        let mut deadline: Option<Instant> = None;
        loop {
            if !events_open {
                if self.pending_ends.is_empty() {
                    break;
                }
                let d = *deadline.get_or_insert_with(|| Instant::now() + CLIP_WAIT);
                match clips.recv_deadline(d) {
                    Ok(done) => self.on_clips(done),
                    Err(_) => break,
                }
                continue;
            }
            select! {
                recv(events) -> e => match e {
                    Ok(event) => {
                        metrics::gauge!("vigil_evidence_queue").set(events.len() as f64);
                        self.on_event(event);
                    }
                    Err(_) => {
                        events_open = false;
                        // Cameras are gone: whatever a clip still waits for will not come.
                        for r in self.cameras.values() {
                            r.source_ended();
                        }
                    }
                },
                recv(clips) -> d => if let Ok(done) = d { self.on_clips(done) },
                default(Duration::from_secs(1)) => {}
            }
            if self.last_age_retention.elapsed() > AGE_RETENTION_EVERY {
                self.retention();
            }
            self.check_db_in_place();
            crate::record::RECORDING_CPU.charge();
        }
        for (id, event) in std::mem::take(&mut self.pending_ends) {
            error_counted(
                &event.after.camera,
                format!("alert {id}: its clip did not finish in time; `end` goes out without it"),
            );
            self.record_and_publish(event);
        }
        drop(self.cameras);
        self.recorders.join();
    }

    fn on_event(&mut self, mut event: Event) {
        let camera = event.after.camera.to_string();
        match event.lifecycle {
            Lifecycle::New => {
                if let Err(e) = self.store.record_alert(&event.after) {
                    error_counted(
                        &camera,
                        format!(
                            "alert {}: not stored: {e}: {}",
                            event.after.id,
                            source_chain(&e)
                        ),
                    );
                }
                if !self.room_for_evidence() {
                    error_counted(
                        &camera,
                        format!(
                            "alert {}: no snapshot or clip: the disk is nearly full",
                            event.after.id
                        ),
                    );
                    self.record_and_publish(event);
                    return;
                }
                match self.snapshot(&mut event) {
                    Ok(s) => event.snapshot = Some(s),
                    Err(e) => error_counted(
                        &camera,
                        format!("alert {}: no snapshot: {e}", event.after.id),
                    ),
                }
                if let Some(recorder) = self.cameras.get(&camera) {
                    let a = &event.after;
                    let (rel, abs) = self.store.evidence_base(&a.camera, &a.id, a.start.wall_ms);
                    recorder.open(&a.id, a.start.media_s, rel, abs);
                }
                self.record_and_publish(event);
                self.retention_if_full();
            }
            Lifecycle::Update => self.record_and_publish(event),
            Lifecycle::End => {
                let end = event.after.end.unwrap_or(event.after.start).media_s;
                let waiting = self
                    .cameras
                    .get(&camera)
                    .is_some_and(|r| r.close(&event.after.id, end));
                if waiting {
                    self.pending_ends.insert(event.after.id.clone(), event);
                } else {
                    self.record_and_publish(event);
                }
            }
        }
    }

    fn snapshot(&mut self, event: &mut Event) -> Result<SnapshotRef, String> {
        let picture = event
            .picture
            .take()
            .ok_or("the confirming frame was not kept")?;
        let t0 = Instant::now();
        let rgb = picture.to_rgb()?;
        let t_rgb = t0.elapsed();
        let a = &event.after;
        let path = |suffix| {
            self.store
                .evidence_path(&a.camera, &a.id, a.start.wall_ms, suffix)
        };
        let (clean_rel, clean_abs) = path("snapshot.jpg");
        let (ann_rel, ann_abs) = path("annotated.jpg");
        snapshot::write_synced(&snapshot::encode_jpeg(&rgb)?, &clean_abs)
            .map_err(|e| format!("{}: {e}", clean_abs.display()))?;
        let t_clean = t0.elapsed();
        let geometry = self.geometry.get(&*a.camera);
        let local = burned_time(a.start.wall_ms, &self.time_zone);
        let annotation = Annotation {
            bbox: a.bbox,
            caption: match a.track_id {
                Some(t) => format!("{} #{t} {:.2}", a.label, a.score),
                None => format!("{} {:.2}", a.label, a.score),
            },
            zone: a
                .zone
                .as_deref()
                .and_then(|z| geometry.and_then(|g| g.zones.get(z)))
                .map(Vec::as_slice),
            line: a
                .line
                .as_deref()
                .and_then(|l| geometry.and_then(|g| g.lines.get(l)))
                .copied(),
            title: format!(
                "{} | {} | {} | {local}",
                geometry.map(|g| g.name.as_str()).unwrap_or(&a.camera),
                a.kind.as_str(),
                a.rule
            ),
            color: match a.severity {
                Severity::Critical => [235, 30, 30],
                Severity::High => [255, 120, 0],
                Severity::Warning => [255, 200, 0],
            },
        };
        let annotated = snapshot::annotate(&rgb, &annotation, self.font.as_ref());
        snapshot::write_synced(&snapshot::encode_jpeg(&annotated)?, &ann_abs)
            .map_err(|e| format!("{}: {e}", ann_abs.display()))?;
        let t_ann = t0.elapsed();
        let id = a.id.clone();
        let clean = self
            .store
            .add_evidence(&id, EvidenceKind::Snapshot, &clean_rel, None)
            .map_err(|e| format!("{e}: {}", source_chain(&e)))?;
        let ann = self
            .store
            .add_evidence(&id, EvidenceKind::Annotated, &ann_rel, None)
            .map_err(|e| format!("{e}: {}", source_chain(&e)))?;
        tracing::debug!(
            "snapshot {id}: rgb {:?}, clean {:?}, annotated {:?}, stored {:?}",
            t_rgb,
            t_clean - t_rgb,
            t_ann - t_clean,
            t0.elapsed() - t_ann
        );
        metrics::histogram!("vigil_snapshot_seconds").record(t0.elapsed().as_secs_f64());
        Ok(SnapshotRef {
            path: clean.path,
            sha256: clean.sha256,
            annotated: FileRef {
                path: ann.path,
                sha256: ann.sha256,
            },
        })
    }

    fn on_clips(&mut self, done: ClipsDone) {
        let Some(mut event) = self.pending_ends.remove(&done.alert_id) else {
            return;
        };
        let camera = event.after.camera.to_string();
        // `end` could not leave before its clip was complete: its latency runs
        // from the frame that completed the post-roll, not the one that ended
        // the alert.
        event.captured = Some(done.complete_at);
        let mut refs = Vec::new();
        for file in done.files {
            match file {
                Ok(f) => match self.store.add_evidence(
                    &done.alert_id,
                    EvidenceKind::Clip,
                    &f.rel_path,
                    Some((f.start_media_s, f.duration_s)),
                ) {
                    Ok(ev) => refs.push(ClipRef {
                        path: ev.path,
                        sha256: ev.sha256,
                        start_media_s: (f.start_media_s * 1000.0).round() / 1000.0,
                        duration_s: (f.duration_s * 1000.0).round() / 1000.0,
                    }),
                    Err(e) => error_counted(
                        &camera,
                        format!(
                            "alert {}: clip not stored: {e}: {}",
                            done.alert_id,
                            source_chain(&e)
                        ),
                    ),
                },
                Err(e) => error_counted(&camera, format!("alert {}: clip: {e}", done.alert_id)),
            }
        }
        event.clip = match refs.len() {
            0 => None,
            1 => refs.pop().map(ClipRefs::One),
            _ => Some(ClipRefs::Split(refs)),
        };
        self.record_and_publish(event);
        self.retention_if_full();
    }

    fn record_and_publish(&mut self, event: Event) {
        match serde_json::to_string(&event) {
            Ok(payload) => {
                // The event and its MQTT messages are committed together: an
                // alert the store knows is an alert the broker will get.
                let (messages, cap) = match &self.mqtt {
                    Some((config, _)) => {
                        (config.event_messages(&event, &payload), config.outbox_max)
                    }
                    None => (Vec::new(), usize::MAX),
                };
                match self.store.record_event(&event, &payload, &messages, cap) {
                    Ok(0) => {}
                    Ok(dropped) => crate::publish::outbox_dropped(dropped, cap),
                    Err(e) => error_counted(
                        &event.after.camera,
                        format!(
                            "alert {}: not stored: {e}: {}",
                            event.after.id,
                            source_chain(&e)
                        ),
                    ),
                }
                if let Some((_, notify)) = &self.mqtt {
                    let _ = notify.try_send(());
                }
            }
            Err(e) => tracing::error!("cannot serialise event: {e}"),
        }
        let _ = self.publish.send(event);
    }

    /// Alerts a killed run left open get their `end` (reason `interrupted`),
    /// so patrols and police do not keep them open forever.
    fn announce_interrupted(&mut self) {
        for end in self.store.take_interrupted() {
            let (messages, cap) = match &self.mqtt {
                Some((config, _)) => (
                    config.alert_messages(&end.recipients, end.severity, &end.payload, None),
                    config.outbox_max,
                ),
                None => (Vec::new(), usize::MAX),
            };
            match self.store.record_interrupted_end(&end, &messages, cap) {
                Ok(dropped) => {
                    tracing::warn!(camera = %end.camera, "alert {}: ended as interrupted (vigil was stopped without ending it)", end.alert_id);
                    if dropped > 0 {
                        crate::publish::outbox_dropped(dropped, cap);
                    }
                }
                Err(e) => error_counted(
                    &end.camera,
                    format!(
                        "alert {}: its `end` was not stored: {e}: {}",
                        end.alert_id,
                        source_chain(&e)
                    ),
                ),
            }
        }
        if let Some((_, notify)) = &self.mqtt {
            let _ = notify.try_send(());
        }
    }

    /// Says, once a minute, that `vigil.db` was deleted or replaced under the
    /// running store: everything recorded since is lost at exit.
    fn check_db_in_place(&mut self) {
        if self.db_checked.elapsed() < DB_CHECK_EVERY {
            return;
        }
        self.db_checked = Instant::now();
        let in_place = self.store.db_in_place();
        metrics::gauge!("vigil_store_db_missing").set(if in_place { 0.0 } else { 1.0 });
        if !in_place
            && self
                .db_lost_said
                .is_none_or(|t| t.elapsed() >= DB_LOST_REPEAT)
        {
            self.db_lost_said = Some(Instant::now());
            tracing::error!(
                "store {}: vigil.db was deleted or replaced while vigil runs: alerts are still published, but the records written since (alerts, events, evidence, acknowledgements) are in a file nobody can open and are lost at exit. Stop vigil and restore vigil.db from a backup if there is one.",
                self.store.dir().display()
            );
        }
    }

    /// Whether the disk has room for evidence; says so when that changes.
    fn room_for_evidence(&mut self) -> bool {
        let room = self.store.room_for_evidence();
        if room == self.evidence_paused {
            self.evidence_paused = !room;
            if room {
                tracing::info!("evidence: the disk has room again; snapshots and clips resume");
                self.store.keep_reserve();
            } else {
                self.retention();
                tracing::error!(
                    "evidence: less than {} MB free on the store's disk: no snapshots or clips until there is room; alerts are still stored and published",
                    crate::store::MIN_FREE_FOR_EVIDENCE >> 20
                );
            }
        }
        room
    }

    fn retention_if_full(&mut self) {
        if self.store.over_max_bytes() {
            self.retention();
        }
    }

    fn retention(&mut self) {
        self.last_age_retention = Instant::now();
        match self.store.apply_retention(crate::time::now_ms()) {
            Ok(removed) => {
                for r in removed {
                    tracing::info!(
                        "retention: deleted {} ({} bytes, alert {}): over {}",
                        r.path,
                        r.bytes,
                        r.alert,
                        r.why
                    );
                    metrics::counter!("vigil_evidence_deleted_total", "reason" => r.why)
                        .increment(1);
                }
            }
            Err(e) => error_counted("-", format!("retention: {e}: {}", source_chain(&e))),
        }
    }
}

/// The alert's start as burned into its snapshot: in the compound's time zone
/// (the console's `time_zone`), named, so the picture agrees with the console,
/// the search and the timeline whatever zone the host runs in.
fn burned_time(wall_ms: u64, zone: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::from_millisecond(wall_ms as i64)
        .map(|t| {
            t.to_zoned(zone.clone())
                .strftime("%Y-%m-%d %H:%M:%S %Z")
                .to_string()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_time_is_the_compounds_not_the_hosts() {
        let shanghai = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        // 2026-12-01 04:56:50 UTC
        let ms = 1_796_101_010_000;
        assert_eq!(burned_time(ms, &shanghai), "2026-12-01 12:56:50 CST");
        assert_eq!(
            burned_time(ms, &jiff::tz::TimeZone::UTC),
            "2026-12-01 04:56:50 UTC"
        );
    }

    #[test]
    fn chinese_camera_names_have_glyphs_not_boxes() {
        use ab_glyph::Font;
        let Some(font) = snapshot::find_font() else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "no font installed"
            );
            eprintln!("SKIP: no TrueType font installed");
            return;
        };
        let name = "B2 栋 1 楼厨房";
        let missing: Vec<char> = name
            .chars()
            .filter(|c| !c.is_whitespace() && font.glyph_id(*c).0 == 0)
            .collect();
        assert!(
            missing.is_empty(),
            "no glyph for {missing:?}: install fonts-wqy-zenhei"
        );
        // Drawn, the name covers more than its tofu boxes would: a CJK glyph has
        // strokes inside, a missing-glyph box only its outline.
        let drawn = |text: &str| {
            let mut img = image::RgbImage::new(400, 60);
            snapshot::draw_label(
                &mut img,
                &font,
                2.0,
                2.0,
                text,
                image::Rgb([255, 255, 255]),
                1.0,
            );
            img.pixels().filter(|p| p.0[0] > 128).count()
        };
        assert!(
            drawn("厨房") > drawn("\u{FFFF}\u{FFFF}"),
            "glyphs are drawn"
        );
    }
}
