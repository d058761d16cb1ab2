//! Clip files: H.264/H.265 units muxed into MP4 without re-encoding
//! (`appsrc ! h26xparse ! mp4mux faststart=true ! filesink`), and the one
//! thread that waits for each file to be finalised.
//!
//! A segment is written to `<name>.part` as units arrive and renamed once the
//! muxer has written its index and the data is synced, so a reader never sees a
//! clip that is still growing.
//!
//! The evidence file has its index first, which only its end can write. So
//! that an operator can watch an open alert's recording before its end, when
//! a console runs the same units also go to `<name>.sofar.mp4`, a fragmented MP4 (a fragment a
//! second) that plays as far as it has been written; it is deleted when the
//! segment ends. Muxing twice costs no encode.

use super::ring::Unit;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::path::PathBuf;

/// Below this much free space a clip being written stops and its files are
/// deleted: the store's database needs the room (its reserve may already be
/// released), and a clip's end copies the whole file once more (`faststart`).
const CLIP_STOP_FREE: u64 = 16 << 20;
/// Free space is checked every this many units (well under a second).
const SPACE_CHECK_EVERY: u64 = 8;

/// One MP4 file being written.
pub(super) struct Segment {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    /// Relative to the store, and absolute (final name; written as `.part`).
    pub rel_path: String,
    abs_path: PathBuf,
    /// Subtracted from every timestamp so the file starts at zero.
    offset: u64,
    pub first_pts: u64,
    /// End of the latest unit (pts + duration), stream nanoseconds.
    pub end_pts: u64,
    pub units: u64,
    /// Why the clip stopped before its end (its files are gone).
    stopped: Option<String>,
}

impl Segment {
    pub fn start(
        caps: &gst::Caps,
        rel_path: String,
        abs_path: PathBuf,
        first: &Unit,
        watched: bool,
    ) -> Result<Segment, String> {
        if let Some(dir) = abs_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let part = part_path(&abs_path);
        let pipeline = gst::Pipeline::with_name(&format!("clip-{rel_path}"));
        let src = gst_app::AppSrc::builder()
            .caps(caps)
            .format(gst::Format::Time)
            .is_live(false)
            .block(false)
            .build();
        let mux = make("mp4mux")?;
        // Index first: browsers play the clip while it downloads. The muxer
        // keeps the data in a scratch file meanwhile: beside the clip, not in
        // /tmp, so a killed run leaves nothing outside the store (and the
        // store deletes it at the next start).
        mux.set_property("faststart", true);
        mux.set_property(
            "faststart-file",
            scratch_path(&part).to_string_lossy().to_string(),
        );
        let sink = make("filesink")?;
        sink.set_property("location", part.to_string_lossy().to_string());
        sink.set_property("sync", false);
        let parser = match caps.structure(0).map(|s| s.name().as_str()) {
            Some("video/x-h265") => "h265parse",
            _ => "h264parse",
        };
        let parser = make(parser)?;
        let link = |chain: &[&gst::Element]| -> Result<(), String> {
            gst::Element::link_many(chain).map_err(|e| e.to_string())
        };
        pipeline
            .add_many([src.upcast_ref(), &parser, &mux, &sink])
            .map_err(|e| e.to_string())?;
        // Threads of their own: the appsrc's, each muxer's (an aggregator),
        // and with a copy each branch's queue; all count as recording's CPU.
        let mut threads = vec![src.static_pad("src"), mux.static_pad("src")];
        if watched {
            let (tee, queue, sofar_queue) = (make("tee")?, make("queue")?, make("queue")?);
            let sofar_mux = make("mp4mux")?;
            sofar_mux.set_property("fragment-duration", 1000u32);
            sofar_mux.set_property("streamable", true);
            let sofar_sink = make("filesink")?;
            sofar_sink.set_property(
                "location",
                sofar_path(&abs_path).to_string_lossy().to_string(),
            );
            sofar_sink.set_property("sync", false);
            pipeline
                .add_many([&tee, &queue, &sofar_queue, &sofar_mux, &sofar_sink])
                .map_err(|e| e.to_string())?;
            link(&[src.upcast_ref(), &parser, &tee, &queue, &mux, &sink])?;
            link(&[&tee, &sofar_queue, &sofar_mux, &sofar_sink])?;
            threads.extend([
                queue.static_pad("src"),
                sofar_queue.static_pad("src"),
                sofar_mux.static_pad("src"),
            ]);
        } else {
            link(&[src.upcast_ref(), &parser, &mux, &sink])?;
        }
        for pad in threads.into_iter().flatten() {
            meter_recording_thread(&pad);
        }
        if let Err(e) = pipeline.set_state(gst::State::Playing) {
            let _ = pipeline.set_state(gst::State::Null);
            return Err(format!("cannot start the clip muxer: {e}"));
        }
        Ok(Segment {
            pipeline,
            src,
            rel_path,
            abs_path,
            offset: first.dts.unwrap_or(first.pts).min(first.pts),
            first_pts: first.pts,
            end_pts: first.pts,
            units: 0,
            stopped: None,
        })
    }

    pub fn push(&mut self, unit: &Unit) {
        if self.stopped.is_some() {
            return;
        }
        if self.units.is_multiple_of(SPACE_CHECK_EVERY) && self.disk_nearly_full() {
            self.stop("stopped: the disk is nearly full (the alert itself is stored)");
            return;
        }
        let mut buffer = unit.buffer.copy();
        {
            let b = buffer.make_mut();
            b.set_pts(gst::ClockTime::from_nseconds(
                unit.pts.saturating_sub(self.offset),
            ));
            b.set_dts(
                unit.dts
                    .map(|d| gst::ClockTime::from_nseconds(d.saturating_sub(self.offset))),
            );
        }
        self.end_pts = self.end_pts.max(unit.pts + unit.duration.unwrap_or(0));
        self.units += 1;
        // Never blocks (appsrc `block=false`): the camera's decoder must not wait on disk.
        let _ = self.src.push_buffer(buffer);
    }

    fn disk_nearly_full(&self) -> bool {
        self.abs_path
            .parent()
            .and_then(crate::stats::available_bytes)
            .is_some_and(|free| free < CLIP_STOP_FREE)
    }

    /// Stops the muxer and deletes what it wrote.
    fn stop(&mut self, why: &str) {
        let _ = self.pipeline.set_state(gst::State::Null);
        let part = part_path(&self.abs_path);
        let _ = std::fs::remove_file(&part);
        let _ = std::fs::remove_file(scratch_path(&part));
        let _ = std::fs::remove_file(sofar_path(&self.abs_path));
        self.stopped = Some(why.to_string());
    }

    pub fn duration_s(&self) -> f64 {
        (self.end_pts.saturating_sub(self.first_pts)) as f64 / 1e9
    }

    /// Ends the stream; the muxer finishes on its own thread. Finishing
    /// writes the index first, copying the whole scratch data once more: on a
    /// nearly full disk that copy would eat the room the store's database was
    /// given (its released reserve), so the clip is dropped instead.
    pub fn end(mut self) -> Finishing {
        if self.stopped.is_none() {
            let scratch = scratch_path(&part_path(&self.abs_path));
            let copy = std::fs::metadata(&scratch).map_or(0, |m| m.len());
            let free = self
                .abs_path
                .parent()
                .and_then(crate::stats::available_bytes);
            if free.is_some_and(|free| free < copy + CLIP_STOP_FREE) {
                self.stop(
                    "stopped: the disk has no room to finish it (the alert itself is stored)",
                );
            }
        }
        let _ = self.src.end_of_stream();
        Finishing {
            start_media_s: self.first_pts as f64 / 1e9,
            duration_s: self.duration_s(),
            segment: self,
        }
    }
}

pub(super) fn make(factory: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| format!("GStreamer element {factory} is missing"))
}

/// Counts the CPU time of the streaming thread behind `pad` as recording's,
/// from its first buffer to the end of stream.
pub(crate) fn meter_recording_thread(pad: &gst::Pad) {
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        |_, info| {
            match &info.data {
                Some(gst::PadProbeData::Buffer(_)) => super::RECORDING_CPU.charge(),
                Some(gst::PadProbeData::Event(ev)) if ev.type_() == gst::EventType::Eos => {
                    super::RECORDING_CPU.release()
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
}

/// The open segment's fragmented copy, for watching before the end.
pub fn sofar_path(path: &std::path::Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".sofar.mp4");
    PathBuf::from(p)
}

/// The muxer's scratch data of a clip being written (`<clip>.part.mdat`).
fn scratch_path(part: &std::path::Path) -> PathBuf {
    let mut p = part.as_os_str().to_owned();
    p.push(".mdat");
    PathBuf::from(p)
}

fn part_path(path: &std::path::Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".part");
    PathBuf::from(p)
}

/// A segment whose stream has ended, waiting for the muxer to finish.
pub(super) struct Finishing {
    segment: Segment,
    pub start_media_s: f64,
    pub duration_s: f64,
}

impl Finishing {
    /// Waits for the muxer, syncs and renames the file into place.
    pub fn finish(self) -> Result<super::ClipFile, String> {
        let seg = &self.segment;
        if let Some(why) = &seg.stopped {
            return Err(why.clone());
        }
        let bus = seg.pipeline.bus().ok_or("the clip muxer has no bus")?;
        let result = match bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        ) {
            Some(msg) => match msg.view() {
                gst::MessageView::Eos(_) => Ok(()),
                gst::MessageView::Error(e) => Err(format!("muxing failed: {}", e.error())),
                _ => Err("unexpected message".into()),
            },
            None => Err("the muxer did not finish within 60 s".into()),
        };
        let _ = seg.pipeline.set_state(gst::State::Null);
        // The clip itself (or its failure) replaces the copy watched meanwhile.
        let _ = std::fs::remove_file(sofar_path(&seg.abs_path));
        result?;
        if seg.units == 0 {
            return Err("no video was recorded for this clip".into());
        }
        let part = part_path(&seg.abs_path);
        let file = std::fs::File::open(&part).map_err(|e| format!("{}: {e}", part.display()))?;
        file.sync_all()
            .map_err(|e| format!("{}: {e}", part.display()))?;
        std::fs::rename(&part, &seg.abs_path)
            .map_err(|e| format!("{}: {e}", seg.abs_path.display()))?;
        if let Some(dir) = seg.abs_path.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(super::ClipFile {
            rel_path: seg.rel_path.clone(),
            start_media_s: self.start_media_s,
            duration_s: self.duration_s,
        })
    }
}

/// Work for the clip-writer thread: a segment to finish, and whether it is the
/// alert's last.
pub(super) struct FinishJob {
    pub alert_id: String,
    /// `None`: nothing was recorded for this alert.
    pub finishing: Option<Finishing>,
    pub last: bool,
    /// When the segment's last unit had arrived.
    pub at: std::time::Instant,
}

/// Starts the thread that finalises clips in order; completed alerts (all
/// their segments) go to `done`.
pub(super) fn spawn_writer(
    done: crossbeam_channel::Sender<super::ClipsDone>,
) -> (
    crossbeam_channel::Sender<FinishJob>,
    std::thread::JoinHandle<()>,
) {
    let (tx, rx) = crossbeam_channel::bounded::<FinishJob>(256);
    let handle = std::thread::Builder::new()
        .name("clip-writer".into())
        .spawn(move || {
            let mut partial: std::collections::HashMap<
                String,
                Vec<Result<super::ClipFile, String>>,
            > = Default::default();
            for job in rx {
                let result = match job.finishing {
                    Some(f) => f.finish(),
                    None => Err("no video was recorded (the source had sent no keyframe)".into()),
                };
                let files = partial.entry(job.alert_id.clone()).or_default();
                files.push(result);
                if job.last {
                    let files = partial.remove(&job.alert_id).unwrap_or_default();
                    let _ = done.send(super::ClipsDone {
                        alert_id: job.alert_id,
                        files,
                        complete_at: job.at,
                    });
                }
            }
        })
        .expect("spawning the clip writer thread");
    (tx, handle)
}
