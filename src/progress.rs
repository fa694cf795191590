//! The live progress line of `run` and `demo` in an interactive terminal:
//!
//! ```text
//! tx 12 round 0 | mining at difficulty 22 | 41.2 MH/s | 3.1 M tried | expected 0.1 s, open 0.05 s
//! ```
//!
//! Each node driver holds a [`Seat`] on a shared [`Board`] and tells it,
//! after every batch of actions, which transaction, round and phase it is
//! in; the pool's counters are read through a [`Meter`]. A thread redraws
//! the line four times a second from the board: the hash rate over the last
//! two seconds, the candidates tried on the open challenge and the expected
//! time to solve it (2^difficulty tries at that rate). In a demo the board
//! sums the nodes of the process.
//!
//! Log lines and the progress line share stderr through [`Screen`]: a log
//! line first erases the progress line, then it is drawn again below it,
//! so the two never mix. Nothing here runs unless stderr is a terminal.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::miner::Meter;
use crate::service::Rate;
use crate::standing::Standing;
use crate::wire::messages::StatusPhase;

/// How often the line is redrawn.
const REDRAW: Duration = Duration::from_millis(250);
/// The hash rate is measured over this long.
const WINDOW: Duration = Duration::from_secs(2);
/// The line is cut to the terminal's width less one (a wrapped line could
/// not be erased in place), or to this when the width is unknown.
const WIDTH: usize = 79;
/// Carriage return and "erase the whole line".
const ERASE: &str = "\r\x1b[2K";

/// stderr with a progress line at the bottom.
#[derive(Debug, Default)]
pub struct Screen {
    line: Mutex<String>,
}

impl Screen {
    pub fn new() -> Arc<Screen> {
        Arc::new(Screen::default())
    }

    fn lock(&self) -> MutexGuard<'_, String> {
        // A panic while drawing leaves a string, still fit to draw.
        self.line.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes log text above the progress line.
    pub fn write_log(&self, text: &[u8]) -> std::io::Result<()> {
        let line = self.lock();
        let mut err = std::io::stderr().lock();
        if line.is_empty() {
            err.write_all(text)?;
        } else {
            err.write_all(ERASE.as_bytes())?;
            err.write_all(text)?;
            err.write_all(line.as_bytes())?;
        }
        err.flush()
    }

    /// Prints a line on stdout above the progress line (the demo's own
    /// lines, when stdout and stderr share the terminal).
    pub fn print_out(&self, text: &str) {
        let line = self.lock();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{ERASE}");
        let _ = err.flush();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
        let _ = write!(err, "{line}");
        let _ = err.flush();
    }

    /// Replaces the progress line.
    fn draw(&self, new: &str) {
        let mut line = self.lock();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{ERASE}{new}");
        let _ = err.flush();
        new.clone_into(&mut line);
    }

    /// Erases the progress line for good (until the next draw).
    fn clear(&self) {
        self.draw("");
    }
}

/// The log writer that keeps the progress line below the log.
#[derive(Clone)]
pub struct LogWriter(pub Arc<Screen>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_log(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> LogWriter {
        self.clone()
    }
}

/// What one node last told the board.
#[derive(Clone)]
struct Place {
    phase: StatusPhase,
    tx: u64,
    round: u32,
    difficulty: Option<u8>,
    /// The pool's count and the time when this (tx, round, difficulty) began.
    from: u64,
    since: Instant,
}

/// Where every node of the process stands: each node's pool counters and
/// what it last told, and the screen the line is drawn on.
pub struct Board {
    places: Mutex<Vec<(Meter, Option<Place>)>>,
    screen: Arc<Screen>,
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board")
            .field("nodes", &self.lock().len())
            .finish()
    }
}

/// One node's place on the board.
pub struct Seat {
    board: Arc<Board>,
    index: usize,
}

impl Board {
    fn lock(&self) -> MutexGuard<'_, Vec<(Meter, Option<Place>)>> {
        self.places.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A seat for a node mining with `meter`.
    pub fn seat(self: &Arc<Board>, meter: Meter) -> Seat {
        let mut places = self.lock();
        places.push((meter, None));
        Seat {
            board: Arc::clone(self),
            index: places.len() - 1,
        }
    }

    /// Prints a line on stdout above the progress line.
    pub fn print_out(&self, text: &str) {
        self.screen.print_out(text);
    }

    /// The figures of the furthest node, with the candidates and rate of
    /// every node.
    fn snapshot(&self, now: Instant) -> Option<(Snapshot, u64)> {
        let places = self.lock();
        let lead = places
            .iter()
            .filter_map(|(_, p)| p.as_ref())
            .max_by_key(|p| (p.tx, p.round))?
            .clone();
        let mut total = 0;
        let mut tried = 0;
        for (meter, place) in places.iter() {
            let h = meter.hashes();
            total += h;
            if let Some(p) = place
                .as_ref()
                .filter(|p| (p.tx, p.round) == (lead.tx, lead.round))
            {
                tried += h.saturating_sub(p.from);
            }
        }
        let snap = Snapshot {
            phase: lead.phase,
            tx: lead.tx,
            round: lead.round,
            difficulty: lead.difficulty,
            rate: 0.0,
            tried,
            open: now.saturating_duration_since(lead.since),
        };
        Some((snap, total))
    }
}

impl Seat {
    /// Tells the board where the node stands (after each batch of actions).
    pub fn update(&self, s: &Standing) {
        let (tx, round, difficulty) = (s.tx(), s.round, s.difficulty);
        let mut places = self.board.lock();
        let Some((meter, slot)) = places.get_mut(self.index) else {
            return;
        };
        let moved = slot
            .as_ref()
            .is_none_or(|p| (p.tx, p.round, p.difficulty) != (tx, round, difficulty));
        let phase = s.phase.into();
        match slot {
            Some(p) if !moved => p.phase = phase,
            _ => {
                *slot = Some(Place {
                    phase,
                    tx,
                    round,
                    difficulty,
                    from: meter.hashes(),
                    since: Instant::now(),
                })
            }
        }
    }
}

/// What the line shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub phase: StatusPhase,
    pub tx: u64,
    pub round: u32,
    pub difficulty: Option<u8>,
    /// Candidates per second, all nodes of the process.
    pub rate: f64,
    /// Candidates tried on the open challenge.
    pub tried: u64,
    /// How long the challenge (or the phase before it) has been open.
    pub open: Duration,
}

/// A count with a unit that keeps it short (k, M, G).
fn count(n: u64) -> String {
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.1} G", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.1} M", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1} k", f / 1e3)
    } else {
        n.to_string()
    }
}

/// Seconds, short.
fn secs(d: f64) -> String {
    if d < 10.0 {
        format!("{d:.2} s")
    } else if d < 600.0 {
        format!("{d:.0} s")
    } else if d < 36_000.0 {
        format!("{:.0} min", d / 60.0)
    } else {
        format!("{:.0} h", d / 3600.0)
    }
}

/// The width of the terminal on stderr, if it is one.
fn terminal_width() -> Option<usize> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer, which
    // points at a live, writable `winsize`; a descriptor that is no
    // terminal makes it fail without writing.
    let done = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) };
    (done == 0 && size.ws_col > 0).then_some(usize::from(size.ws_col))
}

/// The progress line, at most `width` characters.
pub fn render(s: &Snapshot, width: usize) -> String {
    let mut line = format!("tx {} round {} | ", s.tx, s.round);
    match (s.phase, s.difficulty) {
        (StatusPhase::Mining, Some(d)) => {
            let _ = write!(line, "mining {d} bits");
        }
        (StatusPhase::Voting, _) => line.push_str("voting"),
        (StatusPhase::Init, _) => line.push_str("waiting for members"),
        (phase, _) => line.push_str(phase.as_str()),
    }
    let _ = write!(line, " | {}", Rate(s.rate));
    if let (StatusPhase::Mining | StatusPhase::Voting, Some(d)) = (s.phase, s.difficulty) {
        let _ = write!(line, " | {} tried", count(s.tried));
        if s.rate > 0.0 {
            let expected = 2f64.powi(i32::from(d)) / s.rate;
            let _ = write!(
                line,
                " | expected {}, open {}",
                secs(expected),
                secs(s.open.as_secs_f64())
            );
        }
    }
    if line.chars().count() > width {
        line = line.chars().take(width).collect();
    }
    line
}

/// The board and the thread that redraws the line from it; dropping it
/// erases the line.
pub struct Progress {
    board: Arc<Board>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts drawing on `screen` from a new, empty board.
    pub fn start(screen: Arc<Screen>) -> Progress {
        let board = Arc::new(Board {
            places: Mutex::new(Vec::new()),
            screen,
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (b, flag) = (Arc::clone(&board), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || redraw(&b, &flag))
            .ok();
        Progress {
            board,
            stop,
            thread,
        }
    }

    /// The board the nodes report to.
    pub fn board(&self) -> Arc<Board> {
        Arc::clone(&self.board)
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.board.screen.clear();
    }
}

fn redraw(board: &Board, stop: &AtomicBool) {
    let mut samples: VecDeque<(Instant, u64)> = VecDeque::new();
    while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        if let Some((mut snap, total)) = board.snapshot(now) {
            samples.push_back((now, total));
            while samples.len() > 2 && samples[1].0 + WINDOW <= now {
                samples.pop_front();
            }
            if let (Some(first), Some(last)) = (samples.front(), samples.back()) {
                snap.rate =
                    crate::service::hashrate(first.1, last.1, last.0.duration_since(first.0));
            }
            let width = terminal_width().map_or(WIDTH, |w| w.saturating_sub(1).max(20));
            board.screen.draw(&render(&snap, width));
        }
        std::thread::sleep(REDRAW);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        Snapshot {
            phase: StatusPhase::Mining,
            tx: 12,
            round: 0,
            difficulty: Some(22),
            rate: 41_200_000.0,
            tried: 3_140_000,
            open: Duration::from_millis(50),
        }
    }

    #[test]
    fn a_mining_line() {
        let full = "tx 12 round 0 | mining 22 bits | 41.2 MH/s | 3.1 M tried | expected 0.10 s, open 0.05 s";
        assert_eq!(render(&snap(), 120), full);
        assert_eq!(render(&snap(), 40), full[..40]);
    }

    #[test]
    fn other_phases_and_no_rate_yet() {
        let s = Snapshot {
            phase: StatusPhase::Init,
            difficulty: None,
            rate: 0.0,
            ..snap()
        };
        assert_eq!(
            render(&s, 120),
            "tx 12 round 0 | waiting for members | 0 H/s"
        );
        let s = Snapshot {
            phase: StatusPhase::Election,
            round: 2,
            difficulty: None,
            ..snap()
        };
        assert_eq!(render(&s, 120), "tx 12 round 2 | election | 41.2 MH/s");
        let s = Snapshot {
            rate: 0.0,
            ..snap()
        };
        assert_eq!(
            render(&s, 120),
            "tx 12 round 0 | mining 22 bits | 0 H/s | 3.1 M tried"
        );
    }

    #[test]
    fn long_waits_read_in_minutes_and_hours() {
        let s = Snapshot {
            difficulty: Some(40),
            rate: 10_000_000.0,
            ..snap()
        };
        assert!(
            render(&s, 120).contains("expected 31 h"),
            "{}",
            render(&s, 120)
        );
        assert_eq!(secs(125.0), "125 s");
        assert_eq!(secs(1800.0), "30 min");
        assert_eq!(count(999), "999");
        assert_eq!(count(12_345), "12.3 k");
    }
}
