//! Camera: one camera's chain, source → detect → track → rules → events, on one
//! worker thread.
//!
//! Detectors are shared between cameras (a pool of sessions each); the tracker,
//! the rules and every scratch buffer belong to the camera, so cameras never wait
//! on each other except for a free inference session.
//!
//! A frame goes through three steps: `plan` (motion gating, which detectors are
//! due, motion regions) and `conclude` (tracks, rules, events) run in frame
//! order on the camera's thread; `infer` between them needs none of the
//! camera's state, so a replay runs it for every other frame on a helper
//! thread ([`CameraWorker::run`]).

use crate::detect::regions::{self, Regions};
use crate::detect::{DetectScratch, DetectTimings, Detection, Detector, ModelError, Tiles};
use crate::events::{EndReason, Event, EventSink, Lifecycle, RuleKind};
use crate::geometry::{BBox, Zone};
use crate::inspect::{DetectionTrace, EventTrace, FrameTrace, Inspector, TrackTrace, corners};
use crate::motion::{MotionConfig, MotionGate};
use crate::record::RecordConfig;
use crate::rules::{self, LineConfig, Observation, Rule, RuleConfig, RuleContext, ZoneConfig};
use crate::source::{Frame, FrameSlot, SlotMode, SourceEnd, View, ViewSpec};
use crate::stats::StageStats;
use crate::telemetry::CameraMetrics;
use crate::time::{MediaTime, Timestamp, WallTime};
use crate::track::{ByteTracker, Track, Tracker, TrackerConfig};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// `[[cameras]]` in the config.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Short id used in topics and alert ids: letters, digits, `-` and `_`.
    pub id: String,
    /// Name for humans.
    pub name: Option<String>,
    /// File path (relative to the config) or any GStreamer URI (`rtsp://...`).
    pub source: String,
    /// Process at most this many frames per second.
    pub fps: Option<f32>,
    /// Detectors to run on this camera.
    pub detectors: Vec<DetectorUse>,
    #[serde(default)]
    pub zones: Vec<ZoneConfig>,
    #[serde(default)]
    pub lines: Vec<LineConfig>,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    #[serde(default)]
    pub motion: MotionConfig,
    /// Clips around each alert (pre/post roll, split length, ring size).
    #[serde(default)]
    pub record: RecordConfig,
    /// A source that delivers no frame for this long is declared stalled and reopened.
    #[serde(default = "default_stall_s")]
    pub stall_s: f64,
    /// Play a file again from the start when it ends (demos, soak tests).
    #[serde(default, rename = "loop")]
    pub repeat: bool,
    /// In a compound: the only node that runs this camera (`vigil run --node`).
    /// Unset: any live node, moved when its node is lost.
    pub node: Option<String>,
}

fn default_stall_s() -> f64 {
    5.0
}

/// A detector as one camera runs it.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectorUse {
    /// A `[[detectors]]` name.
    pub name: String,
    /// Inferences per second of media time; every frame if unset.
    pub fps: Option<f32>,
    /// Run on this region only, `[x1, y1, x2, y2]` as fractions of the frame:
    /// small far objects become big enough for the model.
    pub roi: Option<[f32; 4]>,
    /// Cut the frame (or `roi`) into overlapping tiles, each run at the model's
    /// full resolution: `{ cols = 2, rows = 1, overlap = 0.2 }`. One inference
    /// per tile; see config/README.md for when it pays.
    pub tiles: Option<Tiles>,
    /// `"motion"`: on frames the motion gate lets through for motion, run on
    /// model-sized squares around what moved instead of the whole frame; the
    /// full view whenever the gate takes a full look (every
    /// `motion.max_skip_s`). Needs motion gating; see config/README.md.
    #[serde(default)]
    pub regions: Option<Regions>,
}

impl DetectorUse {
    /// The decoder views this detector runs on, in order: its `roi` (or the
    /// whole frame), or each of its tiles.
    pub fn views(&self, detector: &Detector) -> Vec<ViewSpec> {
        let view = |roi| ViewSpec {
            width: detector.spec.width,
            height: detector.spec.height,
            channels: detector.spec.channels,
            roi,
        };
        match &self.tiles {
            None => vec![view(self.roi)],
            Some(tiles) => tiles
                .regions(self.roi.unwrap_or([0.0, 0.0, 1.0, 1.0]))
                .into_iter()
                .map(|r| view(Some(r)))
                .collect(),
        }
    }
}

struct BoundDetector {
    detector: Arc<Detector>,
    /// Its views in the frame's list: one, or one per tile.
    views: std::ops::Range<usize>,
    interval: Option<MediaTime>,
    last_run: Option<MediaTime>,
    /// `regions = "motion"`: how crops are fitted, and what this detector
    /// found last time (held where nothing moved since).
    regions: Option<(ViewSpec, Vec<Detection>)>,
    /// Crops it ran on this frame (motion regions), for the trace.
    crops_run: Vec<BBox>,
    /// Finds objects a tracking rule follows, so motion gating applies; fire and
    /// smoke detectors are never gated (smoke builds slowly).
    gated: bool,
}

/// Rules in pixels for one frame size: rebuilt if the camera changes resolution.
struct SizedRules {
    width: u32,
    height: u32,
    rules: Vec<Box<dyn Rule>>,
    /// Where motion matters: the tracking rules' zones, `None` for the whole frame.
    watched: Option<Vec<Zone>>,
}

/// A camera's state between frames.
pub struct CameraWorker {
    pub id: Arc<str>,
    detectors: Vec<BoundDetector>,
    /// The same detectors as inference needs them.
    models: Vec<ModelUse>,
    scratch: InferScratch,
    /// Per-run results, kept between frames for their buffers.
    found: Vec<RunOutput>,
    /// Planned-run lists of concluded frames, for the next plans (two may be
    /// in flight at once).
    spare_runs: Vec<Vec<PlannedRun>>,
    tracker: ByteTracker,
    /// Labels any tracking rule watches; only those go to the tracker.
    tracked_labels: Vec<String>,
    rule_configs: Vec<RuleConfig>,
    zones: Vec<ZoneConfig>,
    lines: Vec<LineConfig>,
    routes: BTreeMap<RuleKind, Vec<String>>,
    /// Rules built for the frame size they were built at.
    rules: Option<SizedRules>,
    motion: MotionGate,
    sink: EventSink,
    detections: Vec<Detection>,
    tracked_input: Vec<Detection>,
    detectors_run: Vec<Arc<str>>,
    last: Option<Timestamp>,
    pub stats: StageStats,
    metrics: CameraMetrics,
    /// `vigil replay --annotate / --detections`: off on the alert path.
    inspector: Option<Inspector>,
    /// Where the console's live view takes frames, when a console runs.
    live: Option<Arc<crate::health::CameraHealth>>,
}

impl CameraWorker {
    pub fn new(
        config: &CameraConfig,
        detectors: &BTreeMap<String, Arc<Detector>>,
        tracker: &TrackerConfig,
        routes: &BTreeMap<RuleKind, Vec<String>>,
        epoch: u64,
    ) -> Self {
        let id: Arc<str> = config.id.as_str().into();
        let mut tracked_labels: Vec<String> = config
            .rules
            .iter()
            .filter(|r| r.needs_tracks())
            .flat_map(|r| r.classes().iter().cloned())
            .collect();
        tracked_labels.sort();
        tracked_labels.dedup();
        let mut first_view = 0;
        let bound: Vec<BoundDetector> = config
            .detectors
            .iter()
            .filter_map(|u| detectors.get(&u.name).map(|d| (u, d)))
            .map(|(u, d)| BoundDetector {
                detector: d.clone(),
                views: {
                    let n = u.views(d).len();
                    first_view += n;
                    first_view - n..first_view
                },
                interval: u
                    .fps
                    .filter(|f| *f > 0.0)
                    .map(|f| MediaTime::from_secs_f64(1.0 / f as f64)),
                last_run: None,
                regions: u.regions.map(|_| {
                    let mut spec = u.views(d).swap_remove(0);
                    spec.roi = None;
                    (spec, Vec::new())
                }),
                crops_run: Vec::new(),
                gated: d
                    .labels
                    .iter()
                    .any(|l| tracked_labels.iter().any(|t| **t == **l)),
            })
            .collect();
        let models: Vec<ModelUse> = bound
            .iter()
            .map(|b: &BoundDetector| ModelUse {
                detector: b.detector.clone(),
                views: b.views.clone(),
            })
            .collect();
        CameraWorker {
            sink: EventSink::new(id.clone(), epoch),
            id,
            scratch: InferScratch::new(models.len()),
            models,
            found: Vec::new(),
            spare_runs: Vec::new(),
            detectors: bound,
            tracker: ByteTracker::new(tracker.clone()),
            tracked_labels,
            rule_configs: config.rules.clone(),
            zones: config.zones.clone(),
            lines: config.lines.clone(),
            routes: routes.clone(),
            rules: None,
            motion: MotionGate::new(config.motion.clone()),
            detections: Vec::new(),
            tracked_input: Vec::new(),
            detectors_run: Vec::new(),
            last: None,
            stats: StageStats::exported(&config.id),
            metrics: CameraMetrics::new(&config.id),
            inspector: None,
            live: None,
        }
    }

    /// Hands every processed frame's trace to `inspector`.
    pub fn with_inspector(mut self, inspector: Option<Inspector>) -> Self {
        self.inspector = inspector;
        self
    }

    /// Hands frames to the console's live view while someone watches.
    pub fn with_live(mut self, live: Option<Arc<crate::health::CameraHealth>>) -> Self {
        self.live = live;
        self
    }

    /// The views this camera's source must produce, one per bound detector.
    pub fn view_specs(
        config: &CameraConfig,
        detectors: &BTreeMap<String, Arc<Detector>>,
    ) -> Vec<ViewSpec> {
        config
            .detectors
            .iter()
            .filter_map(|u| detectors.get(&u.name).map(|d| (u, d)))
            .flat_map(|(u, d)| u.views(d))
            .collect()
    }

    /// Runs the chain on one frame; returns this frame's events.
    pub fn process(&mut self, frame: &Frame) -> Vec<Event> {
        let plan = self.plan(frame);
        let events = self.process_planned(frame, &plan);
        self.recycle(plan);
        events
    }

    /// Keeps a concluded frame's run list for a later plan.
    fn recycle(&mut self, plan: FramePlan) {
        if self.spare_runs.len() < 2 {
            self.spare_runs.push(plan.runs);
        }
    }

    /// What runs on this frame, decided in frame order: motion gating, each
    /// detector's rate and its motion regions. Everything after inference that
    /// depends on earlier frames is in [`Self::conclude`].
    fn plan(&mut self, frame: &Frame) -> FramePlan {
        self.size_rules(frame.width, frame.height);
        let still = self.is_still(frame);
        let mut runs = self.spare_runs.pop().unwrap_or_default();
        runs.clear();
        let mut gated = false;
        for (index, bound) in self.detectors.iter_mut().enumerate() {
            if still && bound.gated {
                continue;
            }
            let due = match (bound.interval, bound.last_run) {
                // 10% slack: a 2 fps detector on a 10 fps stream runs every 5th frame
                // even when timestamps jitter.
                (Some(interval), Some(last)) => {
                    frame.pts.since(last).as_nanos() as u64 >= interval.as_nanos() * 9 / 10
                }
                _ => true,
            };
            if !due || frame.views.get(bound.views.clone()).is_none() {
                continue;
            }
            let crops = match (&bound.regions, self.motion.moving()) {
                (Some((spec, _)), Some(moving)) => {
                    let input = (spec.width, spec.height);
                    regions::plan(moving, frame.width, frame.height, input)
                        .and_then(|squares| {
                            let crops: Result<Vec<View>, String> = squares
                                .iter()
                                .map(|r| View::crop(&frame.full, *r, spec))
                                .collect();
                            crops
                                .inspect_err(|e| tracing::warn!(camera = %self.id, "motion regions: {e}; running the full view"))
                                .ok()
                        })
                }
                _ => None,
            };
            // Set now, not when the result is in: the next frame may be planned
            // while this one is still being inferred.
            bound.last_run = Some(frame.pts);
            gated |= bound.gated;
            runs.push(PlannedRun { index, crops });
        }
        if gated {
            self.motion.ran(frame.pts);
        }
        FramePlan { still, runs }
    }

    /// Tracks, rules and events for a frame whose detectors have run (`found`,
    /// one entry per planned run, emptied here).
    fn conclude(&mut self, frame: &Frame, plan: &FramePlan, found: &mut [RunOutput]) -> Vec<Event> {
        let at = Timestamp::new(frame.pts, frame.received);
        self.last = Some(at);
        self.stats.frames += 1;
        self.detections.clear();
        self.detectors_run.clear();
        let still = plan.still;
        if still {
            self.stats.motion_skipped += 1;
        }
        let mut tracking = false;
        for (run, output) in plan.runs.iter().zip(found.iter_mut()) {
            let bound = &mut self.detectors[run.index];
            let first = self.detections.len();
            self.detections.append(&mut output.detections);
            bound.crops_run.clear();
            if let (Some(Ok(_)), Some((_, held))) = (&output.result, &mut bound.regions) {
                if let Some(crops) = &run.crops {
                    // Where nothing moved, what was seen there stands (a
                    // person standing still keeps their track).
                    bound.crops_run.extend(crops.iter().map(View::region));
                    let outside = |d: &&Detection| {
                        let centre = d.bbox.centre();
                        !bound.crops_run.iter().any(|r| r.contains(centre))
                    };
                    self.detections.extend(held.iter().filter(outside).cloned());
                }
                held.clear();
                held.extend_from_slice(&self.detections[first..]);
            }
            match output.result.take() {
                Some(Ok(t)) => {
                    self.stats.preprocess.record(t.preprocess);
                    self.stats.inference.record(t.inference);
                    self.stats.postprocess.record(t.postprocess);
                    self.stats.inferences += output.views as u64;
                    self.detectors_run.push(bound.detector.name.clone());
                    tracking |= bound
                        .detector
                        .labels
                        .iter()
                        .any(|l| self.tracked_labels.iter().any(|t| **t == **l));
                }
                Some(Err(e)) => {
                    tracing::error!(camera = %self.id, "detector {}: {e}", bound.detector.name)
                }
                None => {
                    tracing::error!(camera = %self.id, "frame {} could not be mapped for detector {}", frame.seq, bound.detector.name)
                }
            }
        }
        // Field by field: the tracks borrow the tracker while the rules and the
        // sink are written.
        let Self {
            id,
            detectors,
            tracker,
            tracked_labels,
            tracked_input,
            detections,
            detectors_run,
            rules,
            sink,
            stats,
            inspector,
            live,
            ..
        } = self;
        let t_track = Instant::now();
        let tracks: Option<&[Track]> = if tracking {
            tracked_input.clear();
            tracked_input.extend(
                detections
                    .iter()
                    .filter(|d| tracked_labels.iter().any(|l| **l == *d.label))
                    .cloned(),
            );
            let tracks = tracker.update(tracked_input);
            stats.track.record(t_track.elapsed());
            Some(tracks)
        } else if still {
            Some(tracker.alive())
        } else {
            None
        };

        let t_rules = Instant::now();
        let obs = Observation {
            time: frame.pts,
            at,
            width: frame.width,
            height: frame.height,
            tracks,
            detections,
            detectors_run,
        };
        if let Some(sized) = rules.as_mut() {
            for rule in sized.rules.iter_mut() {
                rule.observe(&obs, sink);
            }
        }
        stats.rules.record(t_rules.elapsed());
        stats.end_to_end.record(frame.received.instant.elapsed());
        let mut events = std::mem::take(&mut sink.events);
        for e in &mut events {
            e.captured = Some(frame.received.instant);
            if e.lifecycle == Lifecycle::New {
                e.picture = Some(frame.picture());
            }
        }
        let live = live.as_deref().filter(|l| l.live_due());
        if inspector.is_some() || live.is_some() {
            let regions = cropped_regions(frame, detectors, detectors_run);
            let trace = frame_trace(id, frame, still, &obs, rules.as_ref(), &events, regions);
            if let Some(inspector) = inspector {
                inspector.frame(frame, &trace);
            }
            if let Some(live) = live {
                live.set_live(frame.picture(), trace);
            }
        }
        events
    }

    /// True when motion gating skips this frame's gated detectors.
    fn is_still(&mut self, frame: &Frame) -> bool {
        self.detectors.iter().any(|b| b.gated) && {
            let watched = self.rules.as_ref().and_then(|r| r.watched.as_deref());
            !self.motion.should_run(&frame.full, frame.pts, watched)
        }
    }

    /// Builds the rules (and the motion mask) in pixels for this frame size.
    fn size_rules(&mut self, w: u32, h: u32) {
        if self
            .rules
            .as_ref()
            .is_some_and(|r| (r.width, r.height) == (w, h))
        {
            return;
        }
        let detector_classes: Vec<(Arc<str>, Vec<String>)> = self
            .detectors
            .iter()
            .map(|b| {
                (
                    b.detector.name.clone(),
                    b.detector.labels.iter().map(|l| l.to_string()).collect(),
                )
            })
            .collect();
        let ctx = RuleContext {
            zones: &self.zones,
            lines: &self.lines,
            routes: &self.routes,
            detector_classes: &detector_classes,
            width: w,
            height: h,
        };
        let tracking = self.rule_configs.iter().filter(|r| r.needs_tracks());
        let mut watched = Some(Vec::new());
        for rule in tracking {
            if !rule.lines().is_empty() || rule.zones().is_empty() {
                // A line is crossed from anywhere in the frame.
                watched = None;
                break;
            }
            for name in rule.zones() {
                if let (Some(zones), Some(z)) =
                    (&mut watched, self.zones.iter().find(|z| z.name == name))
                {
                    zones.push(Zone::from_normalised(&z.polygon, w, h));
                }
            }
        }
        self.rules = Some(SizedRules {
            width: w,
            height: h,
            rules: rules::build(&self.rule_configs, &ctx),
            watched,
        });
    }

    /// Detections of the last processed frame (for reports and tests).
    pub fn last_detections(&self) -> &[Detection] {
        &self.detections
    }

    /// Closes every open alert at the last frame's time.
    pub fn finish(&mut self) -> Vec<Event> {
        let at = self
            .last
            .unwrap_or(Timestamp::new(MediaTime::ZERO, WallTime::now()));
        if let Some(sized) = &mut self.rules {
            for rule in sized.rules.iter_mut() {
                rule.finish(at, &mut self.sink);
            }
        }
        std::mem::take(&mut self.sink.events)
    }

    /// Media time just after the last processed frame: where a replayed file
    /// that starts again continues, so rules never see time go backwards.
    pub fn media_end(&self) -> MediaTime {
        self.last
            .map(|t| t.media_s + std::time::Duration::from_millis(100))
            .unwrap_or(MediaTime::ZERO)
    }

    /// Takes frames until the source ends, sending events as they happen.
    /// `pts_offset` shifts the source's timestamps (a file played again).
    ///
    /// A file played as fast as possible keeps two frames in inference at once
    /// when its detectors have a session to spare: one on a helper thread, the
    /// next on this one, each on a single-threaded session. A camera alone on
    /// the machine then fills both cores without two threads of one session
    /// waiting on each other (and spinning) whenever the decoder or the clip
    /// encoder takes one of them. Live cameras take one frame at a time: there
    /// the next frame is not there yet, and their latency counts.
    pub fn run(
        &mut self,
        slot: &FrameSlot,
        pts_offset: MediaTime,
        events: &crossbeam_channel::Sender<Event>,
        mut on_frame: impl FnMut(&Frame),
    ) -> SourceEnd {
        let two_at_once = slot.mode() == SlotMode::Block
            && !self.models.is_empty()
            && self.models.iter().all(|m| m.detector.pool().sessions() > 1);
        let end = if two_at_once {
            self.run_two_at_once(slot, pts_offset, events, &mut on_frame)
        } else {
            loop {
                match self.take(slot, pts_offset) {
                    Ok(frame) => {
                        let found = self.process(&frame);
                        self.deliver(&frame, found, slot, events, &mut on_frame);
                    }
                    Err(end) => break end,
                }
            }
        };
        // These alerts did not end because the subject left: say why they did.
        let reason = match &end {
            SourceEnd::Finished => EndReason::StreamEnded,
            SourceEnd::Stopped => EndReason::Stopped,
            SourceEnd::Failed(_) => EndReason::CameraLost,
        };
        for mut e in self.finish() {
            e.reason = Some(reason);
            self.stats.events += 1;
            let _ = events.send(e);
        }
        self.stats.dropped += slot.dropped();
        self.metrics.down();
        end
    }

    /// The next frame with the offset applied, timing the wait.
    fn take(&mut self, slot: &FrameSlot, pts_offset: MediaTime) -> Result<Frame, SourceEnd> {
        let waiting = Instant::now();
        let next = slot.take();
        self.stats.source_wait.record(waiting.elapsed());
        next.map(|mut frame| {
            frame.pts = pts_offset + std::time::Duration::from_nanos(frame.pts.as_nanos());
            frame
        })
    }

    /// Sends a processed frame's events on, in frame order.
    fn deliver(
        &mut self,
        frame: &Frame,
        found: Vec<Event>,
        slot: &FrameSlot,
        events: &crossbeam_channel::Sender<Event>,
        on_frame: &mut impl FnMut(&Frame),
    ) {
        for e in found {
            self.stats.events += 1;
            let _ = events.send(e);
        }
        self.metrics
            .sync(&self.stats, self.stats.dropped + slot.dropped());
        on_frame(frame);
    }

    /// [`Self::run`] with a helper thread inferring every other frame. Frames
    /// are planned and concluded here, in order, so tracks, rules and motion
    /// see exactly what the one-at-a-time loop shows them.
    fn run_two_at_once(
        &mut self,
        slot: &FrameSlot,
        pts_offset: MediaTime,
        events: &crossbeam_channel::Sender<Event>,
        on_frame: &mut impl FnMut(&Frame),
    ) -> SourceEnd {
        let (to_helper, helper_jobs) = crossbeam_channel::bounded::<Ahead>(1);
        let (helper_done, from_helper) = crossbeam_channel::bounded::<Ahead>(1);
        let models = self.models.clone();
        std::thread::scope(|scope| {
            let helper = std::thread::Builder::new()
                .name(format!("infer-{}", self.id))
                .spawn_scoped(scope, move || {
                    let mut scratch = InferScratch::new(models.len());
                    for mut job in helper_jobs {
                        infer(&models, &job.frame, &job.plan, &mut scratch, &mut job.found);
                        if helper_done.send(job).is_err() {
                            break;
                        }
                    }
                });
            if let Err(e) = helper {
                tracing::warn!(camera = %self.id, "no inference helper thread ({e}): one frame at a time");
            }
            let mut spare = Vec::new();
            // The frame size of the frame on the helper, if one is.
            let mut ahead: Option<(u32, u32)> = None;
            let end = loop {
                let frame = match self.take(slot, pts_offset) {
                    Ok(frame) => frame,
                    Err(end) => break end,
                };
                if ahead.is_some_and(|size| size != (frame.width, frame.height)) {
                    // New rules are built for the new size: conclude the older
                    // frame with the rules it was planned with.
                    ahead = None;
                    spare = self.collect(&from_helper, slot, events, on_frame);
                }
                let plan = self.plan(&frame);
                if ahead.is_none() && !plan.runs.is_empty() {
                    let size = (frame.width, frame.height);
                    let job = Ahead {
                        frame,
                        plan,
                        found: std::mem::take(&mut spare),
                    };
                    match to_helper.send(job) {
                        Ok(()) => {
                            ahead = Some(size);
                            continue;
                        }
                        Err(crossbeam_channel::SendError(job)) => {
                            let found = self.process_planned(&job.frame, &job.plan);
                            self.deliver(&job.frame, found, slot, events, on_frame);
                            self.recycle(job.plan);
                            continue;
                        }
                    }
                }
                let mut found = std::mem::take(&mut self.found);
                infer(&self.models, &frame, &plan, &mut self.scratch, &mut found);
                if ahead.take().is_some() {
                    spare = self.collect(&from_helper, slot, events, on_frame);
                }
                let concluded = self.conclude(&frame, &plan, &mut found);
                self.found = found;
                self.deliver(&frame, concluded, slot, events, on_frame);
                self.recycle(plan);
            };
            if ahead.is_some() {
                self.collect(&from_helper, slot, events, on_frame);
            }
            drop(to_helper);
            end
        })
    }

    /// Waits for the helper's frame and concludes it; returns its buffers.
    fn collect(
        &mut self,
        from_helper: &crossbeam_channel::Receiver<Ahead>,
        slot: &FrameSlot,
        events: &crossbeam_channel::Sender<Event>,
        on_frame: &mut impl FnMut(&Frame),
    ) -> Vec<RunOutput> {
        match from_helper.recv() {
            Ok(mut job) => {
                let concluded = self.conclude(&job.frame, &job.plan, &mut job.found);
                self.deliver(&job.frame, concluded, slot, events, on_frame);
                self.recycle(job.plan);
                job.found
            }
            Err(_) => {
                tracing::error!(camera = %self.id, "the inference helper thread ended: one frame was not analysed");
                Vec::new()
            }
        }
    }

    /// Infers and concludes a planned frame on this thread.
    fn process_planned(&mut self, frame: &Frame, plan: &FramePlan) -> Vec<Event> {
        let mut found = std::mem::take(&mut self.found);
        infer(&self.models, frame, plan, &mut self.scratch, &mut found);
        let events = self.conclude(frame, plan, &mut found);
        self.found = found;
        events
    }
}

/// A frame on the inference helper thread, and what it found there.
struct Ahead {
    frame: Frame,
    plan: FramePlan,
    found: Vec<RunOutput>,
}

/// One detector as inference sees it: the model and which of the frame's
/// views it runs on. Shared with the inference helper thread.
#[derive(Clone)]
struct ModelUse {
    detector: Arc<Detector>,
    views: std::ops::Range<usize>,
}

/// What runs on one frame, decided in frame order before inference.
struct FramePlan {
    /// Motion gating skipped the gated detectors.
    still: bool,
    runs: Vec<PlannedRun>,
}

/// One detector due on a frame.
struct PlannedRun {
    /// Its index in the camera's detectors.
    index: usize,
    /// Squares around what moved (`regions = "motion"`), instead of its views.
    crops: Option<Vec<View>>,
}

/// What one planned run found.
#[derive(Default)]
struct RunOutput {
    /// `None` if a view could not be mapped.
    result: Option<Result<DetectTimings, ModelError>>,
    detections: Vec<Detection>,
    /// Inferences it took (tiles, crops).
    views: usize,
}

/// Buffers for inferring one frame at a time, one set per detector.
struct InferScratch(Vec<(DetectScratch, TileScratch)>);

impl InferScratch {
    fn new(detectors: usize) -> Self {
        InferScratch(
            (0..detectors)
                .map(|_| (DetectScratch::default(), TileScratch::default()))
                .collect(),
        )
    }
}

/// Runs a frame's planned detectors into `found` (one entry per run). Needs
/// nothing of the camera's state, so it may run on another thread.
fn infer(
    models: &[ModelUse],
    frame: &Frame,
    plan: &FramePlan,
    scratch: &mut InferScratch,
    found: &mut Vec<RunOutput>,
) {
    found.resize_with(plan.runs.len(), RunOutput::default);
    for (run, output) in plan.runs.iter().zip(found.iter_mut()) {
        let model = &models[run.index];
        let (detect, tiles) = &mut scratch.0[run.index];
        let views = match &run.crops {
            Some(crops) => crops.as_slice(),
            None => frame.views.get(model.views.clone()).unwrap_or_default(),
        };
        output.detections.clear();
        output.views = views.len();
        output.result = detect_views(
            &model.detector,
            detect,
            tiles,
            views,
            &mut output.detections,
        );
    }
}

/// What tiles found before they are joined, kept between frames.
#[derive(Default)]
pub struct TileScratch {
    found: Vec<Detection>,
    tile: Vec<u16>,
    regions: Vec<crate::geometry::BBox>,
}

/// Runs one detector on its views of a frame into `out`: the one view as is, or
/// every tile, joined so a person cut by a tile edge is one box. Timings are
/// summed over tiles; `None` if a view could not be mapped. `vigil eval` calls
/// this too, so it measures what a camera runs.
pub fn detect_views(
    detector: &Detector,
    scratch: &mut DetectScratch,
    tiles: &mut TileScratch,
    views: &[View],
    out: &mut Vec<Detection>,
) -> Option<Result<DetectTimings, ModelError>> {
    if let [view] = views {
        return view.with_image(|img| detector.detect(img, scratch, out));
    }
    tiles.found.clear();
    tiles.tile.clear();
    let mut total = DetectTimings::default();
    for (i, view) in views.iter().enumerate() {
        match view.with_image(|img| detector.detect(img, scratch, &mut tiles.found))? {
            Ok(t) => {
                total.preprocess += t.preprocess;
                total.inference += t.inference;
                total.postprocess += t.postprocess;
            }
            Err(e) => return Some(Err(e)),
        }
        tiles.tile.resize(tiles.found.len(), i as u16);
    }
    let merging = Instant::now();
    tiles.regions.clear();
    tiles.regions.extend(views.iter().map(View::region));
    crate::detect::tiles::merge(
        &mut tiles.found,
        &mut tiles.tile,
        &tiles.regions,
        detector.nms_iou,
    );
    total.postprocess += merging.elapsed();
    out.extend_from_slice(&tiles.found);
    Some(Ok(total))
}

/// The crops (an `roi`, tiles) of the detectors that ran on this frame, for the
/// annotated replay; whole-frame views are left out.
fn cropped_regions(frame: &Frame, detectors: &[BoundDetector], ran: &[Arc<str>]) -> Vec<[f32; 4]> {
    let whole = |r: &crate::geometry::BBox| {
        r.x1 <= 0.5
            && r.y1 <= 0.5
            && r.x2 >= frame.width as f32 - 0.5
            && r.y2 >= frame.height as f32 - 0.5
    };
    detectors
        .iter()
        .filter(|b| ran.contains(&b.detector.name))
        .flat_map(|b| match b.crops_run.is_empty() {
            true => frame
                .views
                .get(b.views.clone())
                .unwrap_or_default()
                .iter()
                .map(View::region)
                .collect(),
            false => b.crops_run.clone(),
        })
        .filter(|r| !whole(r))
        .map(|r| corners(&r))
        .collect()
}

/// The frame as `vigil replay --annotate / --detections` shows it.
fn frame_trace(
    camera: &Arc<str>,
    frame: &Frame,
    still: bool,
    obs: &Observation<'_>,
    rules: Option<&SizedRules>,
    events: &[Event],
    regions_run: Vec<[f32; 4]>,
) -> FrameTrace {
    let mut dwell = Vec::new();
    if let Some(sized) = rules {
        sized
            .rules
            .iter()
            .for_each(|r| r.dwell(frame.pts, &mut dwell));
    }
    FrameTrace {
        camera: camera.clone(),
        frame: frame.seq,
        time_s: frame.pts.as_secs_f64(),
        width: obs.width,
        height: obs.height,
        motion_skipped: still,
        detectors: obs.detectors_run.to_vec(),
        regions: regions_run,
        detections: obs
            .detections
            .iter()
            .map(|d| DetectionTrace {
                label: d.label.clone(),
                score: d.score,
                bbox: corners(&d.bbox),
            })
            .collect(),
        tracks: obs
            .tracks
            .unwrap_or_default()
            .iter()
            .map(|t| TrackTrace {
                id: t.id,
                label: t.label.clone(),
                score: t.score,
                bbox: corners(&t.bbox),
                dwell_s: dwell
                    .iter()
                    .filter(|d| d.track == t.id)
                    .map(|d| (d.zone.clone(), d.seconds))
                    .collect(),
            })
            .collect(),
        events: events.iter().map(EventTrace::of).collect(),
    }
}
