//! Writes the man pages and the shell completions of the edgeminer command,
//! generated from its clap definitions (src/cli.rs, compiled in here as
//! is), into a directory:
//!
//!   cargo run -p edgeminer-docgen -- DIR
//!
//! DIR/man/edgeminer.1 and one page per subcommand (edgeminer-run.1,
//! edgeminer-roster-add.1, ...), and DIR/completions/edgeminer.bash,
//! _edgeminer (zsh) and edgeminer.fish. deploy/package.sh runs it and
//! installs them with the package.

use std::path::{Path, PathBuf};
use std::{env, fs, process};

use clap::CommandFactory;
use clap_complete::Shell;

#[allow(dead_code)] // the types' fields are read by the edgeminer binary, not here
#[path = "../../../src/cli.rs"]
mod cli;

/// The edgeminer crate's manifest: its version is the command's, which
/// `edgeminer --version` prints (this program's own version is not).
const MANIFEST: &str = include_str!("../../../Cargo.toml");

fn edgeminer_version() -> Result<String, String> {
    let manifest: toml::Table = MANIFEST.parse().map_err(|e| format!("Cargo.toml: {e}"))?;
    manifest
        .get("package")
        .and_then(|p| p.get("version"))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| "Cargo.toml has no package.version".to_owned())
}

fn generate(out: &Path) -> Result<(), String> {
    // clap keeps a version as &'static str; this program runs once.
    let version: &'static str = Box::leak(edgeminer_version()?.into_boxed_str());
    let cmd = cli::Cli::command().version(version);

    let man = out.join("man");
    fs::create_dir_all(&man).map_err(|e| format!("{}: {e}", man.display()))?;
    clap_mangen::generate_to(cmd.clone(), &man).map_err(|e| format!("{}: {e}", man.display()))?;

    let completions = out.join("completions");
    fs::create_dir_all(&completions).map_err(|e| format!("{}: {e}", completions.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = cmd.clone();
        clap_complete::generate_to(shell, &mut cmd, "edgeminer", &completions)
            .map_err(|e| format!("{}: {shell} completion: {e}", completions.display()))?;
    }
    Ok(())
}

fn main() {
    let mut args = env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: edgeminer-docgen DIR");
        process::exit(2);
    };
    if let Err(e) = generate(&PathBuf::from(out)) {
        eprintln!("edgeminer-docgen: {e}");
        process::exit(1);
    }
}
