//! `cargo xtask`: the project's chores, written in Rust so that they need
//! nothing but cargo (the xtask pattern, as rust-analyzer uses it; the
//! alias is in `.cargo/config.toml`).
//!
//! `cargo xtask ci` is the README's test command and all that `.ci/run`
//! does: on a Debian machine that has only Rust, it installs what the tests
//! need and the machine lacks, saying what before it does, then checks
//! formatting and lints, runs every test and the embedding example. Rust's
//! linker, `cc`, must be there already, since building this tool needs it.
//!
//! # Layout
//!
//! - `main.rs`: the tasks, and the steps of `ci` in order.
//! - `setup`: what the tests need from the machine, how each is found, and
//!   installing what is missing (apt-get, rustup, and pip in a virtual
//!   environment outside the repository).
//! - `tidy`: checks of the repository itself, run as tests: the map in
//!   ARCHITECTURE.md names only what exists; web front ends stay siblings.
#![forbid(unsafe_code)]

mod setup;
#[cfg(test)]
mod tidy;

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// What `cargo xtask --help` prints.
const USAGE: &str = "\
Usage: cargo xtask <task>

Tasks:
  ci                 install what is missing, then run cargo fmt --check,
                     clippy, every test and the embedding example
                     (the README's test command)
  setup [--dry-run]  only install what the tests need and this machine
                     lacks; --dry-run says what that is and installs nothing
  help               this text
";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let args: Vec<&str> = args.iter().map(|arg| arg.to_str().unwrap_or("?")).collect();
    let result = match args.as_slice() {
        ["ci"] => ci(),
        ["setup"] => step("set-up", || setup::run(&cargo(), false).map(drop)),
        ["setup", "--dry-run"] => step("set-up", || setup::run(&cargo(), true).map(drop)),
        ["help" | "--help" | "-h"] => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        [] => {
            eprint!("cargo xtask: which task?\n\n{USAGE}");
            return ExitCode::from(2);
        }
        _ => {
            eprint!("cargo xtask: unknown task `{}`\n\n{USAGE}", args.join(" "));
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("cargo xtask: {failure}");
            ExitCode::FAILURE
        }
    }
}

/// Every check, in the order a failure is cheapest to learn of.
fn ci() -> Result<(), Failure> {
    let cargo = cargo();
    let tools = step("set-up: install what the tests need", || {
        setup::run(&cargo, false)
    })?;
    cargo_step(&cargo, &["fmt", "--all", "--", "--check"], |_| {})?;
    cargo_step(
        &cargo,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
        |_| {},
    )?;
    // The tests start moto's server from PATH; the set-up may have put it
    // in a virtual environment of its own.
    cargo_step(&cargo, &["test", "--workspace", "--locked"], |command| {
        if let Some(path) = tools.path() {
            command.env("PATH", path);
        }
    })?;
    cargo_step(
        &cargo,
        &["run", "--locked", "--example", "embedded_vote"],
        |command| {
            command.stdout(Stdio::null());
        },
    )?;
    println!("== all checks passed");
    Ok(())
}

/// Runs `cargo args…` at the repository root as a step named after its
/// command line; `adjust` may change its environment or output.
fn cargo_step(
    cargo: &OsStr,
    args: &[&str],
    adjust: impl FnOnce(&mut Command),
) -> Result<(), Failure> {
    step(&format!("cargo {}", args.join(" ")), || {
        let mut command = Command::new(cargo);
        command.args(args).current_dir(repo_root());
        adjust(&mut command);
        execute(&mut command)
    })
}

/// Prints `== name`, then does the step; a failure is named after it.
fn step<T>(name: &str, work: impl FnOnce() -> Result<T, String>) -> Result<T, Failure> {
    println!("== {name}");
    work().map_err(|reason| Failure {
        step: name.to_owned(),
        reason,
    })
}

/// Runs `command` to its end with inherited output; an error names the
/// program (without its directory) and says how it failed.
fn execute(command: &mut Command) -> Result<(), String> {
    let program = Path::new(command.get_program());
    let program = program
        .file_name()
        .unwrap_or(program.as_os_str())
        .to_string_lossy()
        .into_owned();
    match command.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("`{program}` failed ({status})")),
        Err(error) => Err(format!("cannot run `{program}`: {error}")),
    }
}

/// The cargo that runs this task (cargo sets `CARGO` for what it runs), so
/// every step uses the same toolchain.
fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The workspace root: the directory above this crate's.
fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// A step that failed, and why.
#[derive(Debug)]
struct Failure {
    /// The step's name, as its `==` line printed it.
    step: String,
    /// What went wrong.
    reason: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step `{}` failed: {}", self.step, self.reason)
    }
}
