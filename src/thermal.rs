//! Thermal care: fewer mining threads when the board runs hot.
//!
//! A Raspberry Pi mining on every core heats up until its firmware throttles
//! the clock (at 80 °C on a Pi 4 or 5), which slows everything on the board,
//! not only mining. edgeminer acts first: above a soft limit it takes one
//! mining thread away per reading, above a hard limit it pauses mining, and
//! it gives threads back, one per reading, only once the temperature is
//! below the soft limit less a hysteresis, so that it does not flap around
//! the limit. Between two steps at least a dwell time passes, so that each
//! step has time to show in the temperature; pausing at the hard limit never
//! waits.
//!
//! [`Controller`] is the pure rule (readings and times in, thread counts
//! out; no IO, no clock) and is what the tests drive. [`Care`] is the driver
//! around it: it reads the sensor file (`/sys/class/thermal/thermal_zone0/temp`
//! by default: an integer in millidegrees Celsius), feeds the controller and
//! logs every change and the first failed reading.

use std::fmt;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

/// The SoC's sensor on Raspberry Pi OS (and most single-board Linux).
pub const DEFAULT_PATH: &str = "/sys/class/thermal/thermal_zone0/temp";

/// When to act, in degrees Celsius, and how fast.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Above it, one thread fewer per reading (down to one).
    pub soft_c: f64,
    /// Above it, mining pauses at once.
    pub hard_c: f64,
    /// Threads come back only below `soft_c - hysteresis_c`.
    pub hysteresis_c: f64,
    /// Least time between two steps, in milliseconds (not for pausing).
    pub dwell_ms: u64,
}

/// Why the thread count changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    AboveSoft,
    AboveHard,
    Cooled,
}

/// One decision of the controller, with what its log line needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Change {
    pub reason: Reason,
    pub temp_c: f64,
    pub from: usize,
    pub to: usize,
    pub of: usize,
    pub limits: Limits,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (t, l) = (self.temp_c, self.limits);
        match self.reason {
            Reason::AboveHard => write!(
                f,
                "{t:.1} °C above hard limit {} °C, mining paused",
                l.hard_c
            )?,
            Reason::AboveSoft => write!(f, "{t:.1} °C above soft limit {} °C", l.soft_c)?,
            Reason::Cooled => write!(
                f,
                "{t:.1} °C below {} °C (soft limit {} °C less {} °C hysteresis)",
                l.soft_c - l.hysteresis_c,
                l.soft_c,
                l.hysteresis_c
            )?,
        }
        if self.to > 0 {
            let again = if self.from == 0 { "resumed " } else { "" };
            write!(f, ", mining {again}with {} of {} threads", self.to, self.of)?;
        }
        Ok(())
    }
}

/// The rule: how many of `max` threads may mine, given the readings so far.
#[derive(Clone, Debug)]
pub struct Controller {
    limits: Limits,
    max: usize,
    active: usize,
    last_step: Option<u64>,
}

impl Controller {
    /// Starts with every thread allowed.
    pub fn new(limits: Limits, max: usize) -> Controller {
        Controller {
            limits,
            max,
            active: max,
            last_step: None,
        }
    }

    /// Threads allowed now.
    pub fn active(&self) -> usize {
        self.active
    }

    /// Takes a reading at `now_ms`; returns the change to make, if any.
    pub fn update(&mut self, temp_c: f64, now_ms: u64) -> Option<Change> {
        let l = self.limits;
        let rested = self
            .last_step
            .is_none_or(|t| now_ms.saturating_sub(t) >= l.dwell_ms);
        let (to, reason) = if temp_c > l.hard_c {
            (0, Reason::AboveHard)
        } else if temp_c > l.soft_c {
            // A paused pool stays paused until it has cooled down.
            (self.active.saturating_sub(1).max(1), Reason::AboveSoft)
        } else if temp_c < l.soft_c - l.hysteresis_c {
            ((self.active + 1).min(self.max), Reason::Cooled)
        } else {
            return None;
        };
        let pausing = reason == Reason::AboveHard;
        let allowed = match reason {
            Reason::AboveSoft => self.active > 0,
            Reason::AboveHard | Reason::Cooled => true,
        };
        if to == self.active || !allowed || !(pausing || rested) {
            return None;
        }
        let change = Change {
            reason,
            temp_c,
            from: self.active,
            to,
            of: self.max,
            limits: l,
        };
        self.active = to;
        self.last_step = Some(now_ms);
        Some(change)
    }
}

/// Why the sensor could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    #[error("cannot read the temperature file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the temperature file {path} holds {text:?}, not millidegrees Celsius")]
    Parse { path: PathBuf, text: String },
}

/// Degrees Celsius from the text of a thermal zone's `temp` file.
pub fn parse_millidegrees(text: &str) -> Option<f64> {
    text.trim().parse::<i64>().ok().map(|m| m as f64 / 1000.0)
}

/// Reads the temperature file once.
pub fn read(path: &Path) -> Result<f64, SensorError> {
    let text = std::fs::read_to_string(path).map_err(|source| SensorError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_millidegrees(&text).ok_or_else(|| SensorError::Parse {
        path: path.to_path_buf(),
        text: text.trim().chars().take(40).collect(),
    })
}

/// The driver: reads the sensor, applies the rule and logs each change.
pub struct Care {
    path: PathBuf,
    controller: Controller,
    failing: bool,
    /// The latest good reading, °C (for the status message).
    last: Option<f64>,
}

impl Care {
    pub fn new(path: PathBuf, limits: Limits, threads: usize) -> Care {
        Care {
            path,
            controller: Controller::new(limits, threads),
            failing: false,
            last: None,
        }
    }

    /// New limits or sensor (a reload): the threads allowed now and the
    /// time of the last step stay, so a hot board does not get its threads
    /// back at once.
    pub fn reconfigure(&mut self, path: PathBuf, limits: Limits) {
        self.path = path;
        self.controller.limits = limits;
    }

    /// The latest reading in °C, while the sensor reads.
    pub fn temperature(&self) -> Option<f64> {
        self.last
    }

    /// Reads the sensor (a small sysfs or test file: no need to leave the
    /// async thread) and returns the new thread count when it changes. A
    /// failed reading changes nothing; the first of a streak is logged.
    pub fn check(&mut self, now_ms: u64) -> Option<usize> {
        match read(&self.path) {
            Ok(t) => {
                self.last = Some(t);
                if self.failing {
                    info!("thermal: reading {} again", self.path.display());
                    self.failing = false;
                }
                let change = self.controller.update(t, now_ms)?;
                info!("thermal: {change}");
                Some(change.to)
            }
            Err(e) => {
                self.last = None;
                if !self.failing {
                    warn!(
                        "thermal: {e}; keeping {} of {} threads until it reads again",
                        self.controller.active(),
                        self.controller.max
                    );
                    self.failing = true;
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        soft_c: 70.0,
        hard_c: 80.0,
        hysteresis_c: 5.0,
        dwell_ms: 10_000,
    };

    /// Feeds (time in s, temperature) readings; returns the thread count
    /// after each.
    fn run(max: usize, readings: &[(u64, f64)]) -> Vec<usize> {
        let mut c = Controller::new(LIMITS, max);
        readings
            .iter()
            .map(|&(s, t)| {
                c.update(t, s * 1000);
                c.active()
            })
            .collect()
    }

    #[test]
    fn steps_down_one_thread_per_dwell_above_the_soft_limit() {
        let got = run(
            4,
            &[
                (0, 60.0),
                (5, 71.0),
                (10, 72.0),
                (15, 72.0),
                (20, 73.0),
                (40, 79.0),
                (60, 79.9),
            ],
        );
        // 5 s: 3; 10 s: too soon; 15 s: 2; 20 s: too soon; 40 s: 1, the floor.
        assert_eq!(got, vec![4, 3, 3, 2, 2, 1, 1]);
    }

    #[test]
    fn pauses_at_once_above_the_hard_limit() {
        let got = run(4, &[(0, 71.0), (1, 80.5), (2, 90.0)]);
        assert_eq!(got, vec![3, 0, 0]);
    }

    #[test]
    fn comes_back_only_below_the_hysteresis_band() {
        // Paused at 81 °C; 75 and 66 are inside the band (soft 70, less 5):
        // still paused; 64 °C: one thread per dwell.
        let got = run(
            3,
            &[
                (0, 81.0),
                (20, 75.0),
                (40, 66.0),
                (60, 64.0),
                (65, 64.0),
                (70, 60.0),
                (80, 50.0),
                (90, 50.0),
            ],
        );
        assert_eq!(got, vec![0, 0, 0, 1, 1, 2, 3, 3]);
    }

    #[test]
    fn holds_inside_the_band_after_stepping_down() {
        let got = run(4, &[(0, 71.0), (20, 68.0), (40, 65.5), (60, 64.9)]);
        assert_eq!(got, vec![3, 3, 3, 4]);
    }

    #[test]
    fn the_limits_themselves_are_not_above() {
        assert_eq!(run(2, &[(0, 70.0), (20, 80.0)]), vec![2, 1]);
        assert_eq!(run(2, &[(0, 81.0), (20, 65.0)]), vec![0, 0]);
    }

    #[test]
    fn log_lines_say_what_and_why() {
        let mut c = Controller::new(LIMITS, 4);
        let down = c.update(71.24, 0).expect("a step down");
        assert_eq!(
            down.to_string(),
            "71.2 °C above soft limit 70 °C, mining with 3 of 4 threads"
        );
        let pause = c.update(80.5, 1).expect("a pause");
        assert_eq!(
            pause.to_string(),
            "80.5 °C above hard limit 80 °C, mining paused"
        );
        let up = c.update(60.0, 20_000).expect("a step up");
        assert_eq!(
            up.to_string(),
            "60.0 °C below 65 °C (soft limit 70 °C less 5 °C hysteresis), mining resumed with 1 of 4 threads"
        );
        assert_eq!(c.update(60.0, 25_000), None, "within the dwell time");
    }

    #[test]
    fn sensor_text_is_millidegrees() {
        assert_eq!(parse_millidegrees("48312\n"), Some(48.312));
        assert_eq!(parse_millidegrees("-5000"), Some(-5.0));
        assert_eq!(parse_millidegrees("hot"), None);
        assert_eq!(parse_millidegrees(""), None);
    }

    #[test]
    fn care_reads_the_file_and_survives_a_bad_reading() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("temp");
        let limits = Limits {
            dwell_ms: 0,
            ..LIMITS
        };
        let mut care = Care::new(path.clone(), limits, 2);
        assert_eq!(care.check(0), None, "no file: no change");
        std::fs::write(&path, "85000\n").expect("write");
        assert_eq!(care.check(1), Some(0));
        std::fs::write(&path, "garbage").expect("write");
        assert_eq!(care.check(2), None);
        assert!(matches!(read(&path), Err(SensorError::Parse { .. })));
        std::fs::write(&path, "40000").expect("write");
        assert_eq!(care.check(3), Some(1));
        assert_eq!(care.check(4), Some(2));
        assert_eq!(care.check(5), None);
    }
}
