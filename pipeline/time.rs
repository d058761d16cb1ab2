//! The two clocks every record carries, and the one place they meet.
//!
//! *Media time* is the presentation timestamp the stream gives a frame: it drives
//! every rule (dwell, confirmation windows), so a replay at 20x speed raises the same
//! alerts as the live camera did. *Wall time* is the host clock when vigil received
//! the frame: operators and police read it, and latency is measured against it.
//! Neither is derived from the other; an event carries both.

use serde::Serialize;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The host clock in Unix milliseconds: what stored rows and the console carry.
/// Unix ms as local time in `zone`, `format` as strftime; empty when out of
/// range. The console and the evidence bundle show times this way.
pub fn local_text(ms: i64, zone: &jiff::tz::TimeZone, format: &str) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_zoned(zone.clone()).strftime(format).to_string())
        .unwrap_or_default()
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Presentation time of a frame, nanoseconds from the start of its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MediaTime(u64);

impl MediaTime {
    pub const ZERO: MediaTime = MediaTime(0);

    pub fn from_nanos(nanos: u64) -> Self {
        MediaTime(nanos)
    }

    pub fn from_secs_f64(secs: f64) -> Self {
        MediaTime((secs.max(0.0) * 1e9) as u64)
    }

    pub fn as_nanos(self) -> u64 {
        self.0
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// Time elapsed since `earlier`; zero if `earlier` is in the future (a stream
    /// restart can make PTS jump back, and a rule must not see negative dwell).
    pub fn since(self, earlier: MediaTime) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl std::ops::Add<Duration> for MediaTime {
    type Output = MediaTime;
    fn add(self, d: Duration) -> MediaTime {
        MediaTime(self.0.saturating_add(d.as_nanos() as u64))
    }
}

impl Serialize for MediaTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Seconds with millisecond precision: what a reviewer seeks to in a clip.
        s.serialize_f64((self.as_secs_f64() * 1000.0).round() / 1000.0)
    }
}

/// Host time at which a frame reached vigil: a monotonic instant for measuring
/// latency, and the system clock for humans.
#[derive(Debug, Clone, Copy)]
pub struct WallTime {
    pub instant: Instant,
    pub system: SystemTime,
}

impl WallTime {
    pub fn now() -> Self {
        WallTime {
            instant: Instant::now(),
            system: SystemTime::now(),
        }
    }

    /// Milliseconds since the Unix epoch (what goes in JSON).
    pub fn unix_ms(&self) -> u64 {
        self.system
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A point in time on both clocks, as events report it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Timestamp {
    /// Seconds of media time.
    pub media_s: MediaTime,
    /// Milliseconds since the Unix epoch, host clock.
    pub wall_ms: u64,
}

impl Timestamp {
    pub fn new(media: MediaTime, wall: WallTime) -> Self {
        Timestamp {
            media_s: media,
            wall_ms: wall.unix_ms(),
        }
    }
}
