//! The set-up step: what the tests need from the machine, found the way
//! the tests find it, and installed when missing.
//!
//! The tests start their own throwaway PostgreSQL, Redis and moto (KMS)
//! servers from installed binaries and drive Debian's Chromium; the build
//! compiles C (jemalloc, ring, aws-lc, SQLite). Debian packages come from
//! apt-get (directly as root, else through sudo), rustfmt and clippy from
//! rustup, and moto's server from pip into a virtual environment outside
//! the repository, since Debian's Python refuses `pip install` into the
//! system (PEP 668).

use std::env;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::execute;

/// What later steps need to know about what the set-up found.
#[derive(Debug, Default)]
pub(crate) struct Tools {
    /// The directory holding `moto_server` when the tests would not find it
    /// by themselves (on `PATH` or in `~/.local/bin`): the virtual
    /// environment this step installs it into.
    moto_dir: Option<PathBuf>,
}

impl Tools {
    /// `PATH` for the tests, with moto's directory first; `None` when the
    /// tests need no change to it.
    pub(crate) fn path(&self) -> Option<OsString> {
        let dir = self.moto_dir.as_ref()?;
        prepend_path(dir, &env::var_os("PATH").unwrap_or_default())
    }
}

/// `dir` followed by the directories of `path`.
fn prepend_path(dir: &Path, path: &OsStr) -> Option<OsString> {
    env::join_paths(std::iter::once(dir.to_path_buf()).chain(env::split_paths(path))).ok()
}

/// A Debian package the machine lacks, and what the tests want it for.
#[derive(Debug)]
struct Package {
    /// The package name given to apt-get.
    name: &'static str,
    /// Why it is needed, for the announcement.
    why: &'static str,
}

/// Where the tests would find moto's server.
#[derive(Debug)]
enum Moto {
    /// Where the tests look by themselves, or not needed at all
    /// (`OPONN_KMS_ENDPOINT` names a KMS).
    Found,
    /// In this step's virtual environment: the directory to put on `PATH`.
    InVenv(PathBuf),
    /// Nowhere.
    Missing,
}

/// Finds what the tests need, says what is missing, and (unless
/// `dry_run`) installs it. `cargo` is the cargo whose rustfmt and clippy
/// the later steps use.
///
/// # Errors
///
/// When an installation fails or cannot be made (not root and no sudo, or
/// no rustup): the message says what to run instead.
pub(crate) fn run(cargo: &OsStr, dry_run: bool) -> Result<Tools, String> {
    let venv = moto_venv();
    let (moto_dir, moto_missing) = match find_moto(&venv) {
        Moto::Found => (None, false),
        Moto::InVenv(dir) => (Some(dir), false),
        Moto::Missing => (None, true),
    };
    let packages = missing_packages(moto_missing);
    let components = missing_components(cargo);
    if packages.is_empty() && components.is_empty() && !moto_missing {
        println!("nothing to install: everything the tests need is here");
        return Ok(Tools { moto_dir });
    }

    println!("to install:");
    for package in &packages {
        println!("  {} (apt-get): {}", package.name, package.why);
    }
    for component in &components {
        println!("  {component} (rustup component): for the fmt and clippy steps");
    }
    if moto_missing {
        println!(
            "  moto[server] (pip, into {}): moto's server, a local AWS KMS",
            venv.display()
        );
    }
    if dry_run {
        println!("dry run: nothing installed");
        return Ok(Tools { moto_dir });
    }

    if !packages.is_empty() {
        install_packages(&packages)?;
    }
    if !components.is_empty() {
        install_components(&components)?;
    }
    let moto_dir = if moto_missing {
        Some(install_moto(&venv)?)
    } else {
        moto_dir
    };
    Ok(Tools { moto_dir })
}

/// The Debian packages whose programs are missing; Python's only when
/// moto's server must be installed (`need_python`).
fn missing_packages(need_python: bool) -> Vec<Package> {
    let mut missing = Vec::new();
    let mut need = |present: bool, name: &'static str, why: &'static str| {
        if !present {
            missing.push(Package { name, why });
        }
    };
    // The browser test's defaults, unless CHROME_BIN and CHROMEDRIVER name others.
    need(
        given_or("CHROME_BIN", || Path::new("/usr/bin/chromium").is_file()),
        "chromium",
        "the browser test's browser",
    );
    need(
        given_or("CHROMEDRIVER", || on_path("chromedriver")),
        "chromium-driver",
        "ChromeDriver, which drives it",
    );
    need(on_path("redis-server"), "redis-server", "the Redis tests");
    need(
        on_path("initdb") || in_postgres_lib("initdb"),
        "postgresql",
        "the PostgreSQL tests",
    );
    need(on_path("pg_dump"), "postgresql-client", "psql and pg_dump");
    need(
        on_path("setpriv"),
        "util-linux",
        "setpriv, to run PostgreSQL as an unprivileged user under root",
    );
    need(
        on_path("kill"),
        "procps",
        "kill, with which tests stop servers",
    );
    need(
        on_path("cc"),
        "gcc",
        "a C compiler: jemalloc, ring, aws-lc and SQLite are built from C",
    );
    need(
        Path::new("/usr/include/stdlib.h").is_file(),
        "libc6-dev",
        "the C library's headers, for the same",
    );
    need(on_path("make"), "make", "jemalloc's build runs make");
    if need_python {
        let python = on_path("python3");
        need(python, "python3", "runs moto's server");
        need(
            python && python_makes_venvs(),
            "python3-venv",
            "a virtual environment for moto's server",
        );
    }
    missing
}

/// The rustup components whose cargo subcommand does not run.
fn missing_components(cargo: &OsStr) -> Vec<&'static str> {
    [("rustfmt", "fmt"), ("clippy", "clippy")]
        .into_iter()
        .filter(|(_, subcommand)| !succeeds(Command::new(cargo).args([subcommand, "--version"])))
        .map(|(component, _)| component)
        .collect()
}

/// Adds rustfmt or clippy to the toolchain that runs this task.
fn install_components(components: &[&str]) -> Result<(), String> {
    if !on_path("rustup") {
        return Err(format!(
            "cargo lacks {} and there is no rustup; install them for this toolchain",
            components.join(" and ")
        ));
    }
    println!("installing with rustup: {}", components.join(" "));
    execute(
        Command::new("rustup")
            .args(["component", "add"])
            .args(components),
    )
}

/// Installs `packages` with apt-get: directly as root, else through sudo.
fn install_packages(packages: &[Package]) -> Result<(), String> {
    let names: Vec<&str> = packages.iter().map(|package| package.name).collect();
    let sudo = if is_root() {
        false
    } else if on_path("sudo") {
        true
    } else {
        return Err(format!(
            "installing packages needs root, and there is no sudo; as root, run: \
             apt-get update && apt-get install -y {}",
            names.join(" ")
        ));
    };
    println!(
        "installing with {}apt-get: {}",
        if sudo { "sudo " } else { "" },
        names.join(" ")
    );
    apt_get(sudo, &["update", "-qq"])?;
    apt_get(
        sudo,
        &[&["install", "-y", "-qq"], names.as_slice()].concat(),
    )
}

/// Runs `apt-get args…` without questions, its routine output silenced.
fn apt_get(sudo: bool, args: &[&str]) -> Result<(), String> {
    let mut command = if sudo {
        // sudo resets the environment, so the setting goes through env.
        let mut command = Command::new("sudo");
        command.args(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
        command
    } else {
        let mut command = Command::new("apt-get");
        command.env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    command.args(args).stdout(Stdio::null());
    execute(&mut command).map_err(|error| format!("apt-get {}: {error}", args.join(" ")))
}

/// Creates the virtual environment `venv` and installs moto's server in
/// it; returns the directory holding `moto_server`.
fn install_moto(venv: &Path) -> Result<PathBuf, String> {
    println!(
        "installing moto's server into {} (python3 -m venv, then pip)",
        venv.display()
    );
    execute(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
    execute(Command::new(venv.join("bin/python")).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "moto[server]",
    ]))?;
    let bin = venv.join("bin");
    if bin.join("moto_server").is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "pip installed moto, but {} has no moto_server",
            bin.display()
        ))
    }
}

/// Where moto's server is, looking where the testkit looks (`PATH`, then
/// `~/.local/bin`), then in `venv`.
fn find_moto(venv: &Path) -> Moto {
    let endpoint_given = env::var_os("OPONN_KMS_ENDPOINT").is_some_and(|value| !value.is_empty());
    let user_bin = home().map(|home| home.join(".local/bin/moto_server"));
    if endpoint_given || on_path("moto_server") || user_bin.is_some_and(|binary| binary.is_file()) {
        Moto::Found
    } else if venv.join("bin/moto_server").is_file() {
        Moto::InVenv(venv.join("bin"))
    } else {
        Moto::Missing
    }
}

/// The virtual environment for moto's server: in the user's cache
/// (`$XDG_CACHE_HOME` or `~/.cache`), shared by every checkout and kept by
/// `cargo clean`; under the ignored `target/` without a home.
fn moto_venv() -> PathBuf {
    let cache = env::var_os("XDG_CACHE_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| home().map(|home| home.join(".cache")));
    match cache {
        Some(cache) => cache.join("oponn/moto"),
        None => crate::repo_root().join("target/tools/moto"),
    }
}

/// `$HOME`, when set.
fn home() -> Option<PathBuf> {
    env::var_os("HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

/// Whether the program named by `variable` exists (a path, or a name on
/// `PATH`), or, when the variable is unset, whether `default` holds.
fn given_or(variable: &str, default: impl FnOnce() -> bool) -> bool {
    match env::var_os(variable).filter(|value| !value.is_empty()) {
        Some(program) if Path::new(&program).components().count() > 1 => {
            Path::new(&program).is_file()
        }
        Some(program) => program.to_str().is_some_and(on_path),
        None => default(),
    }
}

/// Whether `program` is a file in a directory of `PATH`.
fn on_path(program: &str) -> bool {
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path).any(|dir| dir.join(program).is_file())
}

/// Whether Debian's PostgreSQL (any version) has `program`, where the
/// testkit also looks.
fn in_postgres_lib(program: &str) -> bool {
    std::fs::read_dir("/usr/lib/postgresql").is_ok_and(|versions| {
        versions
            .filter_map(Result::ok)
            .any(|version| version.path().join("bin").join(program).is_file())
    })
}

/// Whether `python3 -m venv` would work: Debian splits `ensurepip`, which
/// it needs, into `python3-venv`.
fn python_makes_venvs() -> bool {
    succeeds(Command::new("python3").args(["-c", "import ensurepip, venv"]))
}

/// Whether this process runs as root (`id -u` says 0).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

/// Whether `command` runs and exits 0, its output discarded.
fn succeeds(command: &mut Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moto_dir_goes_first_on_the_path() {
        let path = prepend_path(Path::new("/cache/moto/bin"), OsStr::new("/usr/bin:/bin"));
        assert_eq!(path, Some(OsString::from("/cache/moto/bin:/usr/bin:/bin")));
    }

    #[test]
    fn the_path_is_left_alone_without_a_moto_dir() {
        assert_eq!(Tools::default().path(), None);
    }
}
