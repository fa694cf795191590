//! The doctor's screen: one line per check, the fix under it, and a last
//! line that counts what needs doing.

use super::{Finding, Level};

fn tag(level: Level) -> &'static str {
    match level {
        Level::Ok => "ok",
        Level::Note => "note",
        Level::Warn => "warn",
        Level::Fail => "FAIL",
        Level::Skip => "skip",
    }
}

/// The report as text.
pub fn render(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        // A message of several lines (a TOML error shows its line) stays
        // under its check.
        let text = f.text.trim_end().replace('\n', &format!("\n{:<15}", ""));
        out.push_str(&format!("{:<5} {:<8} {text}\n", tag(f.level), f.what));
        if let Some(fix) = &f.fix {
            out.push_str(&format!("{:<14} -> {fix}\n", ""));
        }
    }
    let count = |l| findings.iter().filter(|f| f.level == l).count();
    let (fails, warns) = (count(Level::Fail), count(Level::Warn));
    let skipped = match count(Level::Skip) {
        0 => String::new(),
        k => format!(" ({k} check(s) skipped)"),
    };
    out.push_str(&match (fails, warns) {
        (0, 0) => format!("doctor: nothing wrong found{skipped}\n"),
        (0, w) => format!("doctor: no problem that stops the node; {w} warning(s){skipped}\n"),
        (f, w) => format!("doctor: {f} problem(s) to fix, {w} warning(s){skipped}\n"),
    });
    out
}

/// Whether any check failed.
pub fn failed(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.level == Level::Fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixes_and_further_lines_stay_under_their_check() {
        let findings = [
            Finding::new("config", Level::Fail, "line 4\n  | thread = 2\n").fix("rename it"),
            Finding::new("engine", Level::Ok, "portable"),
            Finding::new("clock", Level::Warn, "drifting"),
        ];
        let text = render(&findings);
        assert_eq!(
            text,
            "FAIL  config   line 4\n                 | thread = 2\n               -> rename it\nok    engine   portable\nwarn  clock    drifting\ndoctor: 1 problem(s) to fix, 1 warning(s)\n"
        );
        assert!(failed(&findings));
        assert!(!failed(&findings[1..]));
    }
}
