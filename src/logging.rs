//! Logging setup for the binary: one line per event on stderr, as readable
//! text or as one JSON object per line (`--log-format json`).
//!
//! The level comes from `-q` (warnings and errors only), nothing (info),
//! `-v` (debug) or `-vv` (trace), and applies to this crate; other crates
//! log only warnings, and `RUST_LOG` replaces the whole filter. Under
//! journald (the `JOURNAL_STREAM` variable systemd sets for a service whose
//! output goes to the journal) lines carry no timestamp, since the journal
//! records its own, and never ANSI colours, even if stderr is also a
//! terminal; the level becomes the line's journal priority (the `<N>`
//! prefix journald reads on a stream: `journalctl -p warning` shows the
//! warnings and errors). Outside journald, text is coloured only when
//! stderr is a terminal.
//!
//! A log that can no longer be written (a closed pipe, a full disk) is
//! dropped: it never stops the node.

use std::io::Write;
use std::sync::{Arc, OnceLock};

use tracing::Metadata;
use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriter};
use tracing_subscriber::EnvFilter;

use crate::progress::{LogWriter, Screen};

/// How verbose the log is, from `-q`, `-v` and `-vv`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verbosity {
    /// Warnings and errors only (`-q`).
    Quiet,
    /// One line per phase event (the default).
    Normal,
    /// Also the per-message details (`-v`).
    Debug,
    /// Everything (`-vv`).
    Trace,
}

impl Verbosity {
    /// From the flags: `-q` wins over any `-v`.
    pub fn from_flags(quiet: bool, verbose: u8) -> Self {
        match (quiet, verbose) {
            (true, _) => Verbosity::Quiet,
            (false, 0) => Verbosity::Normal,
            (false, 1) => Verbosity::Debug,
            (false, _) => Verbosity::Trace,
        }
    }

    fn level(self) -> &'static str {
        match self {
            Verbosity::Quiet => "warn",
            Verbosity::Normal => "info",
            Verbosity::Debug => "debug",
            Verbosity::Trace => "trace",
        }
    }
}

/// Everything that decides what the log looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    pub verbosity: Verbosity,
    /// One JSON object per line instead of text.
    pub json: bool,
    /// stderr goes to the journal (`JOURNAL_STREAM` is set).
    pub journald: bool,
    /// stderr is a terminal.
    pub terminal: bool,
}

impl Options {
    /// Options for this process: journald and the terminal are looked up.
    pub fn detect(verbosity: Verbosity, json: bool) -> Self {
        use std::io::IsTerminal;
        Options {
            verbosity,
            json,
            journald: std::env::var_os("JOURNAL_STREAM").is_some(),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// The filter unless `RUST_LOG` gives one: this crate at the chosen
    /// level, the MQTT client only when it complains. The embedded demo
    /// broker reports every client that leaves as an error: silent unless
    /// asked for with `RUST_LOG`.
    pub fn default_filter(&self) -> String {
        format!("warn,rumqttd=off,edgeminer={}", self.verbosity.level())
    }

    /// Colours: text on a terminal, and never into the journal.
    pub fn ansi(&self) -> bool {
        !self.json && self.terminal && !self.journald
    }

    /// The live progress line of `run` and `demo`: on a terminal, with
    /// text logs at the normal level or more, never into the journal.
    pub fn progress(&self) -> bool {
        self.terminal && !self.json && !self.journald && self.verbosity != Verbosity::Quiet
    }

    /// Timestamps on each line: not under journald, which adds its own.
    pub fn timestamps(&self) -> bool {
        !self.journald
    }

    /// The level written on each line: not under journald, where it is
    /// the line's priority.
    pub fn levels(&self) -> bool {
        !self.journald
    }
}

/// The syslog priority journald reads from a `<N>` prefix.
fn priority(level: &tracing::Level) -> &'static [u8] {
    match *level {
        tracing::Level::ERROR => b"<3>",
        tracing::Level::WARN => b"<4>",
        tracing::Level::INFO => b"<6>",
        _ => b"<7>",
    }
}

/// Writes each event with its journal priority in front.
pub struct Journald<M>(pub M);

/// One event's writer: the prefix goes with the first bytes, in the same
/// write, so that lines of concurrent events never split it from its line.
pub struct Prefixed<W> {
    prefix: &'static [u8],
    inner: W,
}

impl<W: Write> Write for Prefixed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.prefix.is_empty() {
            return self.inner.write(buf);
        }
        let mut line = Vec::with_capacity(self.prefix.len() + buf.len());
        line.extend_from_slice(self.prefix);
        line.extend_from_slice(buf);
        self.inner.write_all(&line)?;
        self.prefix = b"";
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Journald<M> {
    type Writer = Prefixed<M::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        Prefixed {
            prefix: b"<6>",
            inner: self.0.make_writer(),
        }
    }
    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        Prefixed {
            prefix: priority(meta.level()),
            inner: self.0.make_writer_for(meta),
        }
    }
}

/// Installs a subscriber whose filter [`set_level`] can replace.
macro_rules! init_reloadable {
    ($builder:expr) => {{
        let b = $builder.with_filter_reloading();
        let handle = b.reload_handle();
        b.init();
        Box::new(move |f: EnvFilter| handle.reload(f).map_err(|e| e.to_string())) as SetFilter
    }};
}

type SetFilter = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

/// The installed subscriber's filter, replaceable while running.
struct Level {
    /// What decides the level instead of the configuration file, if anything.
    fixed_by: Option<&'static str>,
    set: SetFilter,
}

static LEVEL: OnceLock<Level> = OnceLock::new();

/// Installs the global subscriber, writing to stderr (through `screen`,
/// which keeps a progress line below the log, when given). Call once,
/// first.
pub fn init(opts: &Options, screen: Option<Arc<Screen>>) {
    let from_env = EnvFilter::try_from_default_env().ok();
    let fixed_by = if from_env.is_some() {
        Some("RUST_LOG")
    } else if opts.verbosity != Verbosity::Normal {
        Some("-q or -v")
    } else {
        None
    };
    let filter = from_env.unwrap_or_else(|| EnvFilter::new(opts.default_filter()));
    let writer = match screen {
        Some(s) => BoxMakeWriter::new(LogWriter(s)),
        None if opts.journald => BoxMakeWriter::new(Journald(std::io::stderr)),
        None => BoxMakeWriter::new(std::io::stderr),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .log_internal_errors(false)
        .with_target(false)
        .with_level(opts.levels())
        .with_ansi(opts.ansi());
    // Four arms: each combination is a different subscriber type.
    let set = match (opts.json, opts.timestamps()) {
        (false, true) => init_reloadable!(builder),
        (false, false) => init_reloadable!(builder.without_time()),
        (true, true) => init_reloadable!(builder.json()),
        (true, false) => init_reloadable!(builder.json().without_time()),
    };
    let _ = LEVEL.set(Level { fixed_by, set });
}

/// Sets this crate's level to the configuration file's `log_level`
/// (`None`: the default, info), at start and on reload. `RUST_LOG` and the
/// flags `-q`/`-v` win over the file: then nothing changes and the error
/// names them. Without [`init`] (a library caller) nothing changes either.
pub fn set_level(level: Option<Verbosity>) -> Result<(), String> {
    let Some(l) = LEVEL.get() else {
        return Ok(());
    };
    if let Some(by) = l.fixed_by {
        return Err(format!("{by} sets the log level"));
    }
    let opts = Options {
        verbosity: level.unwrap_or(Verbosity::Normal),
        json: false,
        journald: false,
        terminal: false,
    };
    (l.set)(EnvFilter::new(opts.default_filter()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(journald: bool, terminal: bool, json: bool) -> Options {
        Options {
            verbosity: Verbosity::Normal,
            json,
            journald,
            terminal,
        }
    }

    #[test]
    fn quiet_wins_over_verbose() {
        assert_eq!(Verbosity::from_flags(true, 2), Verbosity::Quiet);
        assert_eq!(Verbosity::from_flags(false, 0), Verbosity::Normal);
        assert_eq!(Verbosity::from_flags(false, 1), Verbosity::Debug);
        assert_eq!(Verbosity::from_flags(false, 5), Verbosity::Trace);
    }

    #[test]
    fn filter_sets_only_this_crate_to_the_level() {
        let mut o = opts(false, false, false);
        assert_eq!(o.default_filter(), "warn,rumqttd=off,edgeminer=info");
        o.verbosity = Verbosity::Quiet;
        assert_eq!(o.default_filter(), "warn,rumqttd=off,edgeminer=warn");
        o.verbosity = Verbosity::Trace;
        assert_eq!(o.default_filter(), "warn,rumqttd=off,edgeminer=trace");
    }

    #[test]
    fn journald_gets_no_colours_and_no_times() {
        let o = opts(true, true, false);
        assert!(
            !o.ansi(),
            "a terminal does not bring colours into the journal"
        );
        assert!(!o.timestamps());
        let o = opts(true, false, true);
        assert!(!o.ansi() && !o.timestamps());
    }

    /// A shared buffer the test reads back.
    #[derive(Clone, Default)]
    struct Buffer(Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn journald_lines_carry_their_priority() {
        let buf = Buffer::default();
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(Journald(move || sink.clone()))
            .without_time()
            .with_level(false)
            .with_target(false)
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("init: one");
            tracing::warn!("election: two");
            tracing::error!("voting: three");
        });
        let text = String::from_utf8(buf.0.lock().expect("buffer").clone()).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            ["<6>init: one", "<4>election: two", "<3>voting: three"],
            "{text}"
        );
    }

    #[test]
    fn colours_only_for_text_on_a_terminal() {
        assert!(opts(false, true, false).ansi());
        assert!(!opts(false, false, false).ansi());
        assert!(!opts(false, true, true).ansi());
        assert!(opts(false, false, false).timestamps());
    }
}
