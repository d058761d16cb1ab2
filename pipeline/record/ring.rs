//! A camera's recent encoded video: whole GOPs of access units, starting at a
//! keyframe, capped in bytes and in age.

use std::collections::VecDeque;

/// One encoded access unit (a frame), timestamps in stream nanoseconds.
#[derive(Clone)]
pub struct Unit {
    pub pts: u64,
    pub dts: Option<u64>,
    pub duration: Option<u64>,
    pub keyframe: bool,
    pub buffer: gstreamer::Buffer,
}

impl Unit {
    pub fn size(&self) -> usize {
        self.buffer.size()
    }
}

/// See [`Ring::backlog`].
#[derive(Debug, PartialEq, Eq)]
pub struct Backlog {
    pub lost: u64,
    pub bytes: usize,
    pub span_ns: u64,
}

pub struct Ring {
    units: VecDeque<Unit>,
    bytes: usize,
    cap_bytes: usize,
    /// Keep at least this much before the newest unit (the pre-roll plus slack).
    keep_ns: u64,
    /// How many units were ever dropped from the front: `units[i]` is the
    /// `dropped + i`th unit kept, whatever its timestamps say.
    dropped: u64,
}

impl Ring {
    pub fn new(cap_bytes: usize, keep_ns: u64) -> Self {
        Ring {
            units: VecDeque::new(),
            bytes: 0,
            cap_bytes,
            keep_ns,
            dropped: 0,
        }
    }

    pub fn clear(&mut self) {
        self.dropped += self.units.len() as u64;
        self.units.clear();
        self.bytes = 0;
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The position the next unit pushed will have (see [`Ring::since`]).
    pub fn end(&self) -> u64 {
        self.dropped + self.units.len() as u64
    }

    /// The units from position `position` on, in the order they came (what is
    /// still kept of them).
    pub fn since(&self, position: u64) -> impl Iterator<Item = &Unit> {
        let skip = position.saturating_sub(self.dropped) as usize;
        self.units.iter().skip(skip)
    }

    /// Of the units from `position` on: how many were dropped before they
    /// were read, and what is still kept of them, in bytes and in stream
    /// time (first to newest).
    pub fn backlog(&self, position: u64) -> Backlog {
        let mut kept = self.since(position);
        let first = kept.next();
        Backlog {
            lost: self.dropped.saturating_sub(position),
            bytes: first.map_or(0, Unit::size) + kept.map(Unit::size).sum::<usize>(),
            span_ns: match (first, self.newest_pts()) {
                (Some(first), Some(newest)) => newest.saturating_sub(first.pts),
                _ => 0,
            },
        }
    }

    /// Whether units from `position` on are safe from being dropped for the
    /// next unit: they fill at most half the cap in bytes and in age.
    pub fn has_room_after(&self, position: u64) -> bool {
        let backlog = self.backlog(position);
        backlog.bytes * 2 <= self.cap_bytes && backlog.span_ns * 2 <= self.keep_ns
    }

    pub fn newest_pts(&self) -> Option<u64> {
        self.units.back().map(|u| u.pts)
    }

    pub fn push(&mut self, unit: Unit) {
        if self.units.is_empty() && !unit.keyframe {
            // A clip must start on a keyframe; before the first one there is
            // nothing a player could decode.
            return;
        }
        self.bytes += unit.size();
        let newest = unit.pts;
        self.units.push_back(unit);
        // Drop whole GOPs that are older than needed.
        while let Some(next_key) = self
            .units
            .iter()
            .skip(1)
            .position(|u| u.keyframe)
            .map(|i| i + 1)
        {
            let next_key_pts = self.units[next_key].pts;
            let too_old = next_key_pts.saturating_add(self.keep_ns) <= newest;
            if !too_old && self.bytes <= self.cap_bytes {
                break;
            }
            for _ in 0..next_key {
                self.pop();
            }
        }
        // A single GOP over the cap: give up its head rather than the cap.
        while self.bytes > self.cap_bytes {
            self.pop();
            while self.units.front().is_some_and(|u| !u.keyframe) {
                self.pop();
            }
        }
    }

    fn pop(&mut self) {
        if let Some(u) = self.units.pop_front() {
            self.bytes -= u.size();
            self.dropped += 1;
        }
    }

    /// Units from the last keyframe at or before `from` (or the oldest keyframe).
    pub fn from_keyframe_before(&self, from: u64) -> impl Iterator<Item = &Unit> {
        let start = self
            .units
            .iter()
            .enumerate()
            .filter(|(_, u)| u.keyframe && u.pts <= from)
            .map(|(i, _)| i)
            .next_back()
            .unwrap_or(0);
        self.units.iter().skip(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(pts_s: f64, keyframe: bool, size: usize) -> Unit {
        Unit {
            pts: (pts_s * 1e9) as u64,
            dts: None,
            duration: Some(100_000_000),
            keyframe,
            buffer: gstreamer::Buffer::with_size(size).unwrap(),
        }
    }

    #[test]
    fn keeps_whole_gops_covering_the_pre_roll_within_the_cap() {
        gstreamer::init().unwrap();
        let mut ring = Ring::new(1_000_000, 5_000_000_000);
        for i in 0..200 {
            // 10 fps, a keyframe every second.
            ring.push(unit(i as f64 / 10.0, i % 10 == 0, 100));
        }
        // Newest 19.9 s: keep from the keyframe at or before 14.9 s → 14.0 s.
        let first = ring.from_keyframe_before(0).next().unwrap();
        assert!(first.keyframe);
        assert_eq!(first.pts, 14_000_000_000);
        let start = ring.from_keyframe_before(16_500_000_000).next().unwrap();
        assert_eq!(start.pts, 16_000_000_000);

        let mut small = Ring::new(2_500, 60_000_000_000);
        for i in 0..200 {
            small.push(unit(i as f64 / 10.0, i % 10 == 0, 100));
        }
        assert!(small.bytes() <= 2_500);
        assert!(small.from_keyframe_before(0).next().unwrap().keyframe);
    }

    /// A transcoder catching up reads "what came since" by position, which
    /// holds when old GOPs are dropped, the ring is cleared, or timestamps go
    /// backwards (a camera that restarted its clock).
    #[test]
    fn positions_name_the_units_that_came_since_whatever_their_timestamps() {
        gstreamer::init().unwrap();
        let mut ring = Ring::new(1_000_000, 2_000_000_000);
        assert_eq!(ring.end(), 0);
        for i in 0..30 {
            ring.push(unit(i as f64 / 10.0, i % 10 == 0, 100));
        }
        let mark = ring.end();
        assert_eq!(mark, 30);
        assert_eq!(ring.since(mark).count(), 0);
        // Older GOPs are dropped while new units come: positions stay.
        for i in 30..45 {
            ring.push(unit(i as f64 / 10.0, i % 10 == 0, 100));
        }
        let since: Vec<u64> = ring
            .since(mark)
            .map(|u| (u.pts + 50_000_000) / 100_000_000)
            .collect();
        assert_eq!(since, (30..45).collect::<Vec<_>>());
        // Timestamps that go backwards are still "after" by position.
        ring.push(unit(0.0, true, 100));
        assert_eq!(
            ring.since(mark + 15).map(|u| u.pts).collect::<Vec<_>>(),
            [0]
        );
        // Units dropped before they were read are simply gone.
        let mark = ring.end();
        ring.clear();
        ring.push(unit(9.0, true, 100));
        assert_eq!(ring.since(mark).count(), 1);
        assert_eq!(ring.since(0).count(), 1);
    }

    /// A replay's source waits for a transcoder reading the ring before the
    /// units it has not read could be dropped (the pre-roll decode of a
    /// busy machine falls seconds behind), and a live camera's loss is
    /// counted.
    #[test]
    fn a_reader_behind_the_ring_is_told_before_its_units_are_dropped() {
        gstreamer::init().unwrap();
        // 10 fps, a keyframe every second, keep 4 s, cap 10 kB.
        let mut ring = Ring::new(10_000, 4_000_000_000);
        let reader = 0;
        let mut first_wait = None;
        for i in 0..100 {
            if first_wait.is_none() && !ring.has_room_after(reader) {
                first_wait = Some(i);
            }
            ring.push(unit(i as f64 / 10.0, i % 10 == 0, 100));
        }
        // Waits at 2.1 s of backlog (half of `keep`), long before the
        // first GOP is dropped at 5 s.
        assert_eq!(first_wait, Some(22));
        let backlog = ring.backlog(reader);
        assert!(backlog.lost > 0, "{backlog:?}");
        assert_eq!(ring.backlog(ring.end()).lost, 0);
        // Bytes: big units reach half the cap first.
        let mut ring = Ring::new(10_000, 60_000_000_000);
        let first_wait = (0..100).find(|&i| {
            let full = !ring.has_room_after(0);
            ring.push(unit(i as f64 / 10.0, i % 10 == 0, 1_000));
            full
        });
        assert_eq!(first_wait, Some(6));
        assert_eq!(
            ring.backlog(ring.end()),
            Backlog {
                lost: 0,
                bytes: 0,
                span_ns: 0
            }
        );
    }
}
