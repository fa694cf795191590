//! The standard `process_*` metrics of the Prometheus client libraries,
//! read from `/proc` at every scrape: CPU time, resident and virtual
//! memory, open and allowed file descriptors, and start time, with the
//! names and HELP texts every exporter uses, so that dashboards and alerts
//! made for any exporter work on a node too.
//!
//! A figure that cannot be read (no `/proc`, an unexpected format) is left
//! out of the scrape rather than reported as 0.

use std::path::{Path, PathBuf};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// The fields of `/proc/PID/stat` the metrics use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stat {
    /// User and system CPU time, in clock ticks.
    pub utime: u64,
    pub stime: u64,
    /// Start, in clock ticks since the system booted.
    pub starttime: u64,
    /// Virtual memory size, in bytes.
    pub vsize: u64,
    /// Resident set size, in pages.
    pub rss: u64,
}

/// Parses `/proc/PID/stat`. The command name (field 2) is in parentheses
/// and may itself hold spaces and parentheses, so fields are counted from
/// the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    // After the name: field 3 (state) is index 0.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { f.get(n - 3)?.parse().ok() };
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        starttime: field(22)?,
        vsize: field(23)?,
        rss: field(24)?,
    })
}

/// The soft limit of "Max open files" in `/proc/PID/limits` (`None` when
/// unlimited or unreadable).
pub(crate) fn parse_max_fds(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The boot time (`btime`, seconds since the Unix epoch) in `/proc/stat`.
pub(crate) fn parse_boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// A `sysconf` value, if the system gives one.
fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf only reads a configuration value; any name is
    // allowed (an unknown one gives -1).
    let v = unsafe { libc::sysconf(name) };
    u64::try_from(v).ok().filter(|&v| v > 0)
}

/// Reads the process metrics of one process from a `/proc` directory.
#[derive(Debug)]
pub struct Process {
    /// `/proc/self`, or another process's directory in tests.
    dir: PathBuf,
    /// `/proc`, for the boot time.
    proc: PathBuf,
    ticks: Option<u64>,
    page: Option<u64>,
}

impl Process {
    /// The process that runs this code.
    pub fn this() -> Process {
        Process::of(
            Path::new("/proc/self"),
            Path::new("/proc"),
            sysconf(libc::_SC_CLK_TCK),
            sysconf(libc::_SC_PAGESIZE),
        )
    }

    /// The process whose `/proc/PID` is `dir`, with `proc` for `/proc`,
    /// `ticks` clock ticks a second and pages of `page` bytes.
    fn of(dir: &Path, proc: &Path, ticks: Option<u64>, page: Option<u64>) -> Process {
        Process {
            dir: dir.to_path_buf(),
            proc: proc.to_path_buf(),
            ticks,
            page,
        }
    }

    fn read(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(name)).ok()
    }

    fn open_fds(&self) -> Option<u64> {
        let n = std::fs::read_dir(self.dir.join("fd")).ok()?.count();
        u64::try_from(n).ok()
    }
}

/// Writes one metric of the collector.
fn put(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric: &impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    let m = encoder.encode_descriptor(name, help, unit, metric.metric_type())?;
    metric.encode(m)
}

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stat = self.read("stat").as_deref().and_then(parse_stat);
        if let (Some(s), Some(ticks)) = (stat, self.ticks) {
            let cpu = (s.utime + s.stime) as f64 / ticks as f64;
            put(
                &mut encoder,
                "process_cpu",
                "Total user and system CPU time spent in seconds.",
                Some(&Unit::Seconds),
                &ConstCounter::new(cpu),
            )?;
        }
        if let (Some(s), Some(page)) = (stat, self.page) {
            put(
                &mut encoder,
                "process_resident_memory",
                "Resident memory size in bytes.",
                Some(&Unit::Bytes),
                &ConstGauge::new(s.rss.saturating_mul(page)),
            )?;
        }
        if let Some(s) = stat {
            put(
                &mut encoder,
                "process_virtual_memory",
                "Virtual memory size in bytes.",
                Some(&Unit::Bytes),
                &ConstGauge::new(s.vsize),
            )?;
        }
        if let Some(n) = self.open_fds() {
            put(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors.",
                None,
                &ConstGauge::new(n),
            )?;
        }
        if let Some(n) = self.read("limits").as_deref().and_then(parse_max_fds) {
            put(
                &mut encoder,
                "process_max_fds",
                "Maximum number of open file descriptors.",
                None,
                &ConstGauge::new(n),
            )?;
        }
        let boot = std::fs::read_to_string(self.proc.join("stat"))
            .ok()
            .as_deref()
            .and_then(parse_boot_time);
        if let (Some(s), Some(boot), Some(ticks)) = (stat, boot, self.ticks) {
            let start = boot as f64 + s.starttime as f64 / ticks as f64;
            put(
                &mut encoder,
                "process_start_time",
                "Start time of the process since unix epoch in seconds.",
                Some(&Unit::Seconds),
                &ConstGauge::new(start),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    /// The exposition of a registry holding only `p`.
    fn scrape(p: Process) -> String {
        let mut r = Registry::default();
        r.register_collector(Box::new(p));
        crate::metrics::server::encode(&r, false)
    }

    fn sample(text: &str, name: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }

    /// A stat line as the kernel writes it, of a process named `name`.
    fn stat_line(name: &str) -> String {
        format!(
            "4242 ({name}) S 1 4242 4242 0 -1 4194560 1331 0 0 0 \
             1234 567 0 0 20 0 9 0 8800 123456789 2500 18446744073709551615 \
             1 1 0 0 0 0 0 4096 17663 0 0 0 17 1 0 0 0 0 0\n"
        )
    }

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let want = Stat {
            utime: 1234,
            stime: 567,
            starttime: 8800,
            vsize: 123_456_789,
            rss: 2500,
        };
        assert_eq!(parse_stat(&stat_line("edgeminer")), Some(want));
        // A name may hold spaces and parentheses.
        assert_eq!(parse_stat(&stat_line("a) S 1 2 (b")), Some(want));
        assert_eq!(parse_stat("4242 (edgeminer) S 1 4242"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn limits_and_boot_time() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             95830                95830                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_fds(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files     \n";
        assert_eq!(parse_max_fds(unlimited), None);
        assert_eq!(parse_max_fds(""), None);
        let stat = "cpu  1 2 3 4\nintr 5\nctxt 6\nbtime 1700000000\nprocesses 7\n";
        assert_eq!(parse_boot_time(stat), Some(1_700_000_000));
        assert_eq!(parse_boot_time("cpu 1 2\n"), None);
    }

    #[test]
    fn a_process_directory_as_metrics() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pid = dir.path().join("4242");
        std::fs::create_dir_all(pid.join("fd")).expect("fd dir");
        for fd in ["0", "1", "2", "7"] {
            std::fs::write(pid.join("fd").join(fd), "").expect("an fd");
        }
        std::fs::write(pid.join("stat"), stat_line("edgeminer")).expect("stat");
        std::fs::write(
            pid.join("limits"),
            "Max open files            4096                 8192                 files     \n",
        )
        .expect("limits");
        std::fs::write(dir.path().join("stat"), "cpu 1\nbtime 1700000000\n").expect("stat");
        let text = scrape(Process::of(&pid, dir.path(), Some(100), Some(4096)));
        assert_eq!(sample(&text, "process_cpu_seconds_total"), Some(18.01));
        assert_eq!(
            sample(&text, "process_resident_memory_bytes"),
            Some(2500.0 * 4096.0)
        );
        assert_eq!(
            sample(&text, "process_virtual_memory_bytes"),
            Some(123_456_789.0)
        );
        assert_eq!(sample(&text, "process_open_fds"), Some(4.0));
        assert_eq!(sample(&text, "process_max_fds"), Some(4096.0));
        assert_eq!(
            sample(&text, "process_start_time_seconds"),
            Some(1_700_000_088.0)
        );
        for (name, kind) in [
            ("process_cpu_seconds_total", "counter"),
            ("process_resident_memory_bytes", "gauge"),
            ("process_virtual_memory_bytes", "gauge"),
            ("process_open_fds", "gauge"),
            ("process_max_fds", "gauge"),
            ("process_start_time_seconds", "gauge"),
        ] {
            assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "{text}");
        }
        assert!(
            text.contains("# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"),
            "{text}"
        );
    }

    #[test]
    fn what_cannot_be_read_is_left_out() {
        let dir = tempfile::tempdir().expect("temp dir");
        let text = scrape(Process::of(dir.path(), dir.path(), Some(100), Some(4096)));
        assert_eq!(text, "", "nothing readable, nothing reported");
        // A stat file, but no clock ticks: memory, no CPU time or start.
        std::fs::write(dir.path().join("stat"), stat_line("x")).expect("stat");
        let text = scrape(Process::of(dir.path(), dir.path(), None, Some(4096)));
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        assert!(!text.contains("process_cpu"), "{text}");
        assert!(!text.contains("process_start_time"), "{text}");
    }

    #[test]
    fn this_process() {
        let read = || {
            let text = scrape(Process::this());
            let get = |n: &str| sample(&text, n).unwrap_or_else(|| panic!("no {n}:\n{text}"));
            [
                get("process_cpu_seconds_total"),
                get("process_resident_memory_bytes"),
                get("process_virtual_memory_bytes"),
                get("process_open_fds"),
                get("process_max_fds"),
                get("process_start_time_seconds"),
            ]
        };
        let [cpu, rss, vsize, open, max, start] = read();
        assert!(rss > 1e6 && vsize >= rss, "{rss} {vsize}");
        assert!(open >= 1.0 && open <= max, "{open} {max}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        // This test binary started a moment ago, not before 2020.
        assert!(start <= now + 5.0 && start > 1.6e9, "{start} {now}");
        // Burning CPU shows in the counter.
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let [cpu_after, ..] = read();
        assert!(cpu_after > cpu, "{cpu} then {cpu_after}");
    }
}
