//! Live passthrough: an H.264 camera's own video to a browser, not decoded
//! or encoded again.
//!
//! A viewer is a small pipeline, `appsrc ! h264parse ! mp4mux (fragmented,
//! a fragment every 100 ms) ! appsink`, fed from the camera's ring: first
//! the newest GOP, so the picture starts at once from a keyframe, then every
//! unit as the camera sends it. Its output, a fragmented MP4 that a `<video>`
//! element plays as it arrives, goes to the console through a bounded
//! channel. A viewer that falls that far behind is dropped (its page opens a
//! new one at the live edge), so a slow phone never holds up the camera; and
//! one whose page has gone is dropped at the next unit.

use super::clip::make;
use super::ring::Unit;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Fragments of the live MP4 held for a viewer that has not read them yet
/// (about 100 ms each).
const BACKLOG_FRAGMENTS: usize = 50;

/// The browser's end of a viewer: the MP4's bytes as the muxer writes them.
pub struct LiveStream {
    pub chunks: tokio::sync::mpsc::Receiver<Vec<u8>>,
    closed: Arc<AtomicBool>,
}

impl Drop for LiveStream {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

/// The camera's end of a viewer.
pub(super) struct LiveViewer {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    /// Subtracted from every timestamp so the stream starts at zero.
    offset: Option<u64>,
    closed: Arc<AtomicBool>,
}

impl LiveViewer {
    pub fn start(camera: &str, caps: &gst::Caps) -> Result<(LiveViewer, LiveStream), String> {
        let pipeline = gst::Pipeline::with_name(&format!("live-{camera}"));
        let src = gst_app::AppSrc::builder()
            .caps(caps)
            .format(gst::Format::Time)
            .is_live(true)
            .block(false)
            .build();
        let mux = make("mp4mux")?;
        mux.set_property("fragment-duration", 100u32);
        mux.set_property("streamable", true);
        let sink = gst_app::AppSink::builder().sync(false).build();
        let parser = make("h264parse")?;
        pipeline
            .add_many([src.upcast_ref(), &parser, &mux, sink.upcast_ref()])
            .map_err(|e| e.to_string())?;
        gst::Element::link_many([src.upcast_ref(), &parser, &mux, sink.upcast_ref()])
            .map_err(|e| e.to_string())?;
        let (tx, rx) = tokio::sync::mpsc::channel(BACKLOG_FRAGMENTS);
        let closed = Arc::new(AtomicBool::new(false));
        let gone = closed.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let bytes = sample
                        .buffer()
                        .and_then(|b| b.map_readable().ok().map(|m| m.to_vec()))
                        .unwrap_or_default();
                    if tx.try_send(bytes).is_err() {
                        // Full (too slow) or closed (the page went): end it.
                        gone.store(true, Ordering::Relaxed);
                        return Err(gst::FlowError::Eos);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        if let Err(e) = pipeline.set_state(gst::State::Playing) {
            let _ = pipeline.set_state(gst::State::Null);
            return Err(format!("cannot start the live muxer: {e}"));
        }
        Ok((
            LiveViewer {
                pipeline,
                src,
                offset: None,
                closed: closed.clone(),
            },
            LiveStream { chunks: rx, closed },
        ))
    }

    /// Hands the viewer a unit; false once it is gone and should be dropped.
    pub fn push(&mut self, unit: &Unit) -> bool {
        if self.closed.load(Ordering::Relaxed) {
            return false;
        }
        let offset = *self
            .offset
            .get_or_insert(unit.dts.unwrap_or(unit.pts).min(unit.pts));
        let mut buffer = unit.buffer.copy();
        {
            let b = buffer.make_mut();
            b.set_pts(gst::ClockTime::from_nseconds(
                unit.pts.saturating_sub(offset),
            ));
            b.set_dts(
                unit.dts
                    .map(|d| gst::ClockTime::from_nseconds(d.saturating_sub(offset))),
            );
        }
        self.src.push_buffer(buffer).is_ok()
    }
}

impl Drop for LiveViewer {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
