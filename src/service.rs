//! Running under systemd: readiness, a status line, reloads, watchdog pings
//! and the notice of stopping, through the `sd_notify` protocol (a datagram
//! to the socket named in `NOTIFY_SOCKET`).
//!
//! `systemd/edgeminer.service` is `Type=notify`: systemd counts the node as
//! started once it runs ([`Notifier::ready`]: its key loaded, its ledger
//! opened, its metrics served), whether or not its broker answers yet;
//! where it stands with the broker is its [`Status`] in `systemctl status`
//! (and in metrics and the log). The status line follows a new phase,
//! transaction, round, leader or broker state within [`LINE_GAP`], and is
//! refreshed every [`STATUS_EVERY`]. A reload (SIGHUP) is announced with
//! `RELOADING=1` and ends with `READY=1`. systemd restarts the node when the
//! watchdog pings stop (the node task sends them, so a stuck event loop
//! stops them too). Outside systemd (`NOTIFY_SOCKET` unset) every call does
//! nothing. A failed send is logged once and never stops the node.

use std::fmt;
use std::time::Duration;

use sd_notify::NotifyState;
use tracing::warn;

use crate::protocol::Phase;

/// How often the status line is refreshed (and, at the least, the watchdog
/// pinged).
pub const STATUS_EVERY: Duration = Duration::from_secs(5);

/// At most one status line per this long besides the periodic one: it
/// follows a fast cluster without a datagram per transaction.
pub const LINE_GAP: Duration = Duration::from_secs(1);

/// The node's link to systemd.
#[derive(Debug)]
pub struct Notifier {
    watchdog: Option<Duration>,
    ready: bool,
    warned: bool,
}

impl Notifier {
    /// Reads `WATCHDOG_USEC` (and `WATCHDOG_PID`) from the environment.
    pub fn from_env() -> Notifier {
        Notifier {
            watchdog: sd_notify::watchdog_enabled(),
            ready: false,
            warned: false,
        }
    }

    /// How often to call [`Notifier::tick`]: every [`STATUS_EVERY`], or half
    /// the watchdog's interval when that is shorter.
    pub fn period(&self) -> Duration {
        match self.watchdog {
            Some(w) => (w / 2).clamp(Duration::from_millis(100), STATUS_EVERY),
            None => STATUS_EVERY,
        }
    }

    /// The watchdog interval systemd asked for, if any.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// A status line of its own while the node is not running yet
    /// (loading its ledger, say).
    pub fn note(&mut self, line: &str) {
        self.send(&[NotifyState::Status(line)]);
    }

    /// Started: the node runs (its broker may not answer yet; the status
    /// says so). Only the first call sends anything.
    pub fn ready(&mut self, status: &Status) {
        if !self.ready {
            self.ready = true;
            let line = status.to_string();
            self.send(&[NotifyState::Ready, NotifyState::Status(&line)]);
        }
    }

    /// The status line now, between the periodic ones.
    pub fn status(&mut self, status: &Status) {
        let line = status.to_string();
        self.send(&[NotifyState::Status(&line)]);
    }

    /// Reading the configuration again: systemd shows the unit as
    /// reloading until [`Notifier::reloaded`].
    pub fn reloading(&mut self) {
        let mut states = vec![
            NotifyState::Reloading,
            NotifyState::Status("reloading the configuration"),
        ];
        // systemd 253 and later match the reload to this clock reading.
        if let Ok(now) = NotifyState::monotonic_usec_now() {
            states.push(now);
        }
        self.send(&states);
    }

    /// The reload is done.
    pub fn reloaded(&mut self, status: &Status) {
        let line = status.to_string();
        self.send(&[NotifyState::Ready, NotifyState::Status(&line)]);
    }

    /// The periodic status line, with a watchdog ping when one is wanted.
    pub fn tick(&mut self, status: &Status) {
        let line = status.to_string();
        if self.watchdog.is_some() {
            self.send(&[NotifyState::Status(&line), NotifyState::Watchdog]);
        } else {
            self.send(&[NotifyState::Status(&line)]);
        }
    }

    /// Leaving: systemd shows the unit as deactivating.
    pub fn stopping(&mut self) {
        self.send(&[
            NotifyState::Stopping,
            NotifyState::Status("leaving the cluster"),
        ]);
    }

    fn send(&mut self, states: &[NotifyState<'_>]) {
        if let Err(e) = sd_notify::notify(states) {
            if !self.warned {
                self.warned = true;
                warn!("service: cannot notify systemd ({e}); carrying on without");
            }
        }
    }
}

/// Where the node stands with its broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broker {
    /// Not connected yet since the start.
    Connecting,
    Connected,
    /// Connected before, reconnecting now.
    Lost,
}

/// What `systemctl status` shows on its `Status:` line.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    pub broker: Broker,
    pub phase: Phase,
    /// The transaction under way (one past the committed ones) and its
    /// election round.
    pub tx: u64,
    pub round: u32,
    /// The leader of the transaction under way, once its challenge is known.
    pub leader: Option<String>,
    /// Candidates per second over the last period.
    pub hashrate: f64,
    /// Mining threads allowed by thermal care, of all.
    pub active: usize,
    pub threads: usize,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.broker {
            Broker::Connecting => f.write_str("connecting to the broker; ")?,
            Broker::Lost => f.write_str("lost the broker, reconnecting; ")?,
            Broker::Connected => {}
        }
        let phase = match self.phase {
            Phase::Learner => "not a member, catching up",
            Phase::Init => "waiting for members",
            Phase::Election => "electing",
            Phase::Challenge => "mining",
            Phase::Voting => "voting",
        };
        write!(f, "{phase}, tx {} round {}", self.tx, self.round)?;
        match &self.leader {
            Some(l) => write!(f, ", leader {l}")?,
            None => f.write_str(", no leader yet")?,
        }
        write!(f, ", {}", Rate(self.hashrate))?;
        if self.active == 0 {
            write!(f, ", mining paused (too hot)")
        } else if self.active < self.threads {
            write!(
                f,
                " on {} of {} threads (too hot)",
                self.active, self.threads
            )
        } else {
            write!(f, " on {} threads", self.threads)
        }
    }
}

/// A candidate rate with a unit that keeps it short.
pub struct Rate(pub f64);

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0.max(0.0);
        if r >= 1e9 {
            write!(f, "{:.2} GH/s", r / 1e9)
        } else if r >= 1e6 {
            write!(f, "{:.1} MH/s", r / 1e6)
        } else if r >= 1e3 {
            write!(f, "{:.1} kH/s", r / 1e3)
        } else {
            write!(f, "{r:.0} H/s")
        }
    }
}

/// Candidates per second between two readings of the pool's counter.
pub fn hashrate(before: u64, after: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        after.saturating_sub(before) as f64 / secs
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Status {
        Status {
            broker: Broker::Connected,
            phase: Phase::Challenge,
            tx: 13,
            round: 1,
            leader: Some("pi-02".into()),
            hashrate: 41_260_000.0,
            active: 4,
            threads: 4,
        }
    }

    #[test]
    fn status_lines() {
        assert_eq!(
            status().to_string(),
            "mining, tx 13 round 1, leader pi-02, 41.3 MH/s on 4 threads"
        );
        let hot = Status {
            active: 3,
            ..status()
        };
        assert!(hot.to_string().ends_with("on 3 of 4 threads (too hot)"));
        let paused = Status {
            active: 0,
            hashrate: 0.0,
            ..status()
        };
        assert!(paused
            .to_string()
            .ends_with("0 H/s, mining paused (too hot)"));
        let away = Status {
            broker: Broker::Lost,
            phase: Phase::Init,
            leader: None,
            hashrate: 2_500.0,
            ..status()
        };
        assert_eq!(
            away.to_string(),
            "lost the broker, reconnecting; waiting for members, tx 13 round 1, no leader yet, 2.5 kH/s on 4 threads"
        );
        let starting = Status {
            broker: Broker::Connecting,
            ..away
        };
        assert!(starting
            .to_string()
            .starts_with("connecting to the broker; waiting"));
    }

    #[test]
    fn rates() {
        assert_eq!(hashrate(100, 1_100, Duration::from_millis(500)), 2_000.0);
        assert_eq!(hashrate(5, 1, Duration::from_secs(1)), 0.0);
        assert_eq!(hashrate(0, 9, Duration::ZERO), 0.0);
        assert_eq!(Rate(1.5e9).to_string(), "1.50 GH/s");
    }

    #[test]
    fn the_period_follows_the_watchdog() {
        let mut n = Notifier {
            watchdog: None,
            ready: false,
            warned: false,
        };
        assert_eq!(n.period(), STATUS_EVERY);
        n.watchdog = Some(Duration::from_secs(30));
        assert_eq!(n.period(), STATUS_EVERY);
        n.watchdog = Some(Duration::from_secs(4));
        assert_eq!(n.period(), Duration::from_secs(2));
    }
}
