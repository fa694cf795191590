//! Every timer a node runs, in one table: what each one is for is written
//! here once, [`Node::next_timeout`](super::Node::next_timeout) is the
//! earliest of them, and `tick` in the node's module is the one place that
//! acts on them when they expire. Catch-up's retry is the exception: it is
//! derived from what catch-up knows ([`super::sync`]), not set.

/// A node's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// The election round ends without a challenge; in init, the wait for
    /// all members ends (a quorum is enough after it).
    Round,
    /// The solution window closes: approve the best solution seen.
    Window,
    /// Send our own messages again (and, having voted in the current
    /// voting round, move to the next one); a learner sends its key.
    Resend,
    /// A learner gives up (not a member) unless a commit adds it first.
    Learner,
}

impl Timer {
    const ALL: [Timer; 4] = [Timer::Round, Timer::Window, Timer::Resend, Timer::Learner];

    fn index(self) -> usize {
        self as usize
    }
}

/// When each timer fires, if it runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timers {
    at: [Option<u64>; Timer::ALL.len()],
}

impl Timers {
    /// (Re)starts `t` to fire at `at`.
    pub fn set(&mut self, t: Timer, at: u64) {
        self.at[t.index()] = Some(at);
    }

    /// Starts `t` to fire at `at` unless it already runs.
    pub fn arm(&mut self, t: Timer, at: u64) {
        self.at[t.index()].get_or_insert(at);
    }

    pub fn stop(&mut self, t: Timer) {
        self.at[t.index()] = None;
    }

    pub fn get(&self, t: Timer) -> Option<u64> {
        self.at[t.index()]
    }

    pub fn runs(&self, t: Timer) -> bool {
        self.get(t).is_some()
    }

    /// Whether `t` runs and is due at `now`.
    pub fn expired(&self, t: Timer, now: u64) -> bool {
        self.get(t).is_some_and(|at| now >= at)
    }

    /// The earliest time any timer fires.
    pub fn next(&self) -> Option<u64> {
        self.at.iter().flatten().min().copied()
    }

    /// Stops every timer.
    pub fn stop_all(&mut self) {
        *self = Timers::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_keeps_each_timer_apart() {
        let mut t = Timers::default();
        assert_eq!(t.next(), None);
        t.set(Timer::Resend, 50);
        t.arm(Timer::Resend, 10);
        assert_eq!(t.get(Timer::Resend), Some(50), "arm leaves a running timer");
        t.arm(Timer::Window, 30);
        assert_eq!(t.next(), Some(30));
        assert!(!t.expired(Timer::Window, 29) && t.expired(Timer::Window, 30));
        assert!(!t.expired(Timer::Round, u64::MAX));
        t.stop(Timer::Window);
        assert_eq!(t.next(), Some(50));
        t.stop_all();
        assert!(Timer::ALL.iter().all(|&x| !t.runs(x)));
    }
}
