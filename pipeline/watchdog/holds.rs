//! Which cameras the watchdog holds back after they crashed the worker, and
//! for how long: pure bookkeeping, handed to each new worker in its
//! environment.

use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const FIRST_HOLD: Duration = Duration::from_secs(30);
const MAX_HOLD: Duration = Duration::from_secs(15 * 60);
/// A camera that ran this long since its last crash starts again from
/// [`FIRST_HOLD`].
const FORGIVEN_AFTER: Duration = Duration::from_secs(60 * 60);

/// One camera held back: why, and until when (seconds since the epoch, so a
/// new worker reads the same deadline).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    pub camera: String,
    /// The signal its thread died by (`SIGABRT`).
    pub signal: String,
    pub crashes: u32,
    pub crashed_at: f64,
    pub until: f64,
}

impl Hold {
    /// Time left at `now`, if any.
    pub fn remaining(&self, now: SystemTime) -> Option<Duration> {
        let left = self.until - seconds(now);
        (left > 0.0).then(|| Duration::from_secs_f64(left))
    }

    /// Why the camera is not watched, for its status and the console.
    pub fn reason(&self, now: SystemTime) -> String {
        let left = self.remaining(now).map_or(0, |d| d.as_secs().max(1));
        let times = match self.crashes {
            1 => String::new(),
            n => format!(" ({n} times)"),
        };
        format!(
            "its stream crashed vigil's decoder ({}){times}; the other cameras were restarted, this one is held for {left} s",
            self.signal
        )
    }
}

/// Every camera that crashed a worker of this watchdog.
#[derive(Default, Debug)]
pub struct Holds(Vec<Hold>);

impl Holds {
    /// Records a crash by `camera` at `now`; returns its new hold.
    pub fn crashed(&mut self, camera: &str, signal: &str, now: SystemTime) -> Duration {
        let now_s = seconds(now);
        let crashes = match self.0.iter().position(|h| h.camera == camera) {
            Some(i) => {
                let before = self.0.remove(i);
                if now_s - before.crashed_at > FORGIVEN_AFTER.as_secs_f64() {
                    1
                } else {
                    before.crashes + 1
                }
            }
            None => 1,
        };
        let hold = FIRST_HOLD
            .saturating_mul(1 << (crashes - 1).min(10))
            .min(MAX_HOLD);
        self.0.push(Hold {
            camera: camera.to_string(),
            signal: signal.to_string(),
            crashes,
            crashed_at: now_s,
            until: now_s + hold.as_secs_f64(),
        });
        hold
    }

    /// The holds still running at `now`, as the worker's environment carries them.
    pub fn to_env(&self, now: SystemTime) -> String {
        let live: Vec<&Hold> = self
            .0
            .iter()
            .filter(|h| h.remaining(now).is_some())
            .collect();
        serde_json::to_string(&live).unwrap_or_else(|_| "[]".into())
    }

    pub fn from_env(text: &str) -> Vec<Hold> {
        serde_json::from_str(text).unwrap_or_default()
    }
}

fn seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_offender_is_held_longer_each_time_and_forgiven_after_an_hour() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut holds = Holds::default();
        assert_eq!(
            holds.crashed("gate", "SIGABRT", t0),
            Duration::from_secs(30)
        );
        let t1 = t0 + Duration::from_secs(40);
        assert_eq!(
            holds.crashed("gate", "SIGABRT", t1),
            Duration::from_secs(60)
        );
        assert_eq!(
            holds.crashed("lift", "SIGSEGV", t1),
            Duration::from_secs(30),
            "counted per camera"
        );
        let mut t = t1;
        for _ in 0..10 {
            t += Duration::from_secs(100);
            holds.crashed("gate", "SIGABRT", t);
        }
        let gate = Holds::from_env(&holds.to_env(t))
            .into_iter()
            .find(|h| h.camera == "gate")
            .unwrap();
        assert_eq!(gate.remaining(t), Some(MAX_HOLD), "capped at 15 min");
        assert!(gate.reason(t).contains("12 times"), "{}", gate.reason(t));
        let later = t + Duration::from_secs(2 * 60 * 60);
        assert_eq!(holds.to_env(later), "[]", "expired holds are not passed on");
        assert_eq!(
            holds.crashed("gate", "SIGABRT", later),
            FIRST_HOLD,
            "forgiven after an hour without a crash"
        );
    }

    #[test]
    fn a_garbled_environment_holds_nothing() {
        assert!(Holds::from_env("not json").is_empty());
    }
}
