//! Seam: which decoded frames a transcoder encodes, in what order, where the
//! frames it decoded from the ring meet the frames the camera decoded.
//!
//! A transcoder first decodes a clip's pre-roll from the camera's ring, then
//! takes the camera's own decoded frames. Both decoders turn out frames in
//! presentation order, but at the hand-over the ring's decoder is flushed, and
//! with B-frames its last frames can lie *after* frames whose units it never
//! got: units `P6 B4 B5` with only `P6` read from the ring flush out frame 6,
//! while 4 and 5 come later from the camera. The encoder needs rising
//! timestamps and the clip needs every frame, so the flushed frames wait here
//! and are merged with the camera's in timestamp order, each frame encoded
//! once. Frames before the clip's pre-roll are decoded but not encoded, except
//! the last of them when the next lies past the pre-roll's start, so the clip
//! covers the whole pre-roll.
//!
//! Pure: frames are stream times with a payload, so the rules are tested with
//! synthetic sequences below.

use std::collections::VecDeque;

/// A transcoder's frames on their way to the encoder (see the module doc).
pub(super) struct Seam<T> {
    /// The pre-roll's start: earlier frames are not encoded.
    encode_from: u64,
    /// The newest frame decided on (encoded, or passed over before
    /// `encode_from`): anything at or before it is skipped.
    decided_to: Option<u64>,
    /// The latest frame before `encode_from`, encoded after all if the next
    /// frame lies past `encode_from`.
    before: Option<(u64, T)>,
    /// Frames a flushed decoder turned out, waiting for their place among the
    /// camera's frames.
    flushed: VecDeque<(u64, T)>,
}

impl<T> Seam<T> {
    pub fn new(encode_from: u64) -> Self {
        Seam {
            encode_from,
            decided_to: None,
            before: None,
            flushed: VecDeque::new(),
        }
    }

    /// A frame in presentation order (the ring's decoder before its flush, or
    /// the camera's decoder): what to encode now, in order.
    pub fn offer(&mut self, pts: u64, frame: T) -> Vec<(u64, T)> {
        let mut out = Vec::new();
        while let Some((flushed_pts, _)) = self.flushed.front()
            && *flushed_pts < pts
        {
            if let Some((p, f)) = self.flushed.pop_front() {
                self.admit(p, f, &mut out);
            }
        }
        match self.flushed.front() {
            // The same frame, from both decoders: the one decoded first goes.
            Some((flushed_pts, _)) if *flushed_pts == pts => {
                if let Some((p, f)) = self.flushed.pop_front() {
                    self.admit(p, f, &mut out);
                }
            }
            _ => self.admit(pts, frame, &mut out),
        }
        out
    }

    /// A frame the ring's decoder turned out when flushed at the hand-over:
    /// encoded once the camera's frames reach it.
    pub fn hold(&mut self, pts: u64, frame: T) {
        let at = self.flushed.partition_point(|(p, _)| *p < pts);
        if self.flushed.get(at).is_none_or(|(p, _)| *p != pts) {
            self.flushed.insert(at, (pts, frame));
        }
    }

    /// The camera has no more frames: the held ones, in order.
    pub fn finish(&mut self) -> Vec<(u64, T)> {
        let mut out = Vec::new();
        while let Some((p, f)) = self.flushed.pop_front() {
            self.admit(p, f, &mut out);
        }
        out
    }

    /// Whether any frame was decoded at all, encoded or not.
    pub fn decoded_any(&self) -> bool {
        self.decided_to.is_some() || !self.flushed.is_empty()
    }

    fn admit(&mut self, pts: u64, frame: T, out: &mut Vec<(u64, T)>) {
        if self.decided_to.is_some_and(|d| pts <= d) {
            return;
        }
        self.decided_to = Some(pts);
        if pts < self.encode_from {
            self.before = Some((pts, frame));
            return;
        }
        if let Some(before) = self.before.take()
            && pts > self.encode_from
        {
            out.push(before);
        }
        out.push((pts, frame));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(frames: Vec<(u64, &str)>) -> Vec<u64> {
        frames.into_iter().map(|(p, _)| p).collect()
    }

    /// Offers `(pts, name)` frames in turn; everything encoded, in order.
    fn offer_all(seam: &mut Seam<&'static str>, frames: &[(u64, &'static str)]) -> Vec<u64> {
        frames
            .iter()
            .flat_map(|&(p, f)| pts(seam.offer(p, f)))
            .collect()
    }

    #[test]
    fn a_b_frame_that_comes_after_the_flush_is_encoded_in_its_place() {
        // Ring units I0 P3 B1 B2 P6 read; the camera's B4 B5 follow.
        let mut seam = Seam::new(0);
        let encoded = offer_all(
            &mut seam,
            &[(0, "ring"), (1, "ring"), (2, "ring"), (3, "ring")],
        );
        assert_eq!(encoded, [0, 1, 2, 3]);
        seam.hold(6, "ring");
        // The camera's decoder: 3 again (it lags the ring), then 4, 5, 6, 7.
        let encoded = offer_all(
            &mut seam,
            &[(3, "cam"), (4, "cam"), (5, "cam"), (6, "cam"), (7, "cam")],
        );
        assert_eq!(encoded, [4, 5, 6, 7]);
        assert!(seam.finish().is_empty());
    }

    #[test]
    fn each_frame_is_encoded_once_from_whichever_decoder_had_it_first() {
        let mut seam = Seam::new(0);
        assert_eq!(offer_all(&mut seam, &[(0, "ring"), (1, "ring")]), [0, 1]);
        seam.hold(2, "ring");
        seam.hold(3, "ring");
        let out = seam.offer(2, "cam");
        assert_eq!(out, [(2, "ring")]);
        let out: Vec<_> = [3, 4]
            .into_iter()
            .flat_map(|p| seam.offer(p, "cam"))
            .collect();
        assert_eq!(out, [(3, "ring"), (4, "cam")]);
    }

    #[test]
    fn held_frames_are_encoded_when_the_camera_ends_or_jumps_past_them() {
        let mut seam = Seam::new(0);
        seam.hold(5, "ring");
        seam.hold(4, "ring");
        seam.hold(4, "again");
        assert_eq!(seam.finish(), [(4, "ring"), (5, "ring")]);

        let mut seam = Seam::new(0);
        seam.hold(5, "ring");
        assert_eq!(offer_all(&mut seam, &[(9, "cam")]), [5, 9]);
    }

    #[test]
    fn the_pre_roll_starts_with_the_last_frame_at_or_before_its_start() {
        // Frames every 10; the pre-roll starts at 25: frame 20 shows it.
        let mut seam = Seam::new(25);
        let encoded = offer_all(&mut seam, &[(0, "r"), (10, "r"), (20, "r"), (30, "r")]);
        assert_eq!(encoded, [20, 30]);
        // Exactly on a frame: that frame starts it.
        let mut seam = Seam::new(20);
        let encoded = offer_all(&mut seam, &[(10, "r"), (20, "r"), (30, "r")]);
        assert_eq!(encoded, [20, 30]);
        // A flush that ends before the pre-roll's start still counts.
        let mut seam = Seam::new(25);
        offer_all(&mut seam, &[(0, "r")]);
        seam.hold(20, "r");
        assert!(seam.decoded_any());
        assert_eq!(offer_all(&mut seam, &[(10, "cam"), (30, "cam")]), [20, 30]);
    }

    #[test]
    fn nothing_decoded_is_told() {
        let seam: Seam<&str> = Seam::new(0);
        assert!(!seam.decoded_any());
    }
}
