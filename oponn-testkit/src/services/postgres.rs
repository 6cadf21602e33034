//! PostgreSQL for tests: the server `DATABASE_URL` names, or a throwaway one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::{Announces, ServerProcess, find_binary, free_port, unique_name};

const INSTALL_HINT: &str = "install PostgreSQL's server binaries (Debian: apt-get install \
     postgresql), or set DATABASE_URL to a postgres:// server the tests may create databases on";

const READY: &str = "database system is ready to accept connections";

/// A PostgreSQL server tests may create databases on.
#[derive(Debug)]
pub struct TestPostgres {
    server_url: String,
    local: Option<LocalServer>,
}

#[derive(Debug)]
struct LocalServer {
    process: Option<ServerProcess>,
    command: Vec<String>,
    data_dir: tempfile::TempDir,
}

static SHARED: OnceLock<TestPostgres> = OnceLock::new();

impl TestPostgres {
    /// One server for the whole test binary: `DATABASE_URL` when it names a
    /// PostgreSQL server, else a throwaway one started on first use.
    ///
    /// # Panics
    /// When no server is configured and none can be started.
    pub fn shared() -> &'static TestPostgres {
        SHARED.get_or_init(|| match std::env::var("DATABASE_URL") {
            Ok(url) if url.starts_with("postgres") => TestPostgres {
                server_url: url,
                local: None,
            },
            _ => TestPostgres::start(),
        })
    }

    /// A throwaway server of the caller's own, which it may stop and start
    /// again (outage tests).
    ///
    /// # Panics
    /// When the binaries are missing or the server does not start.
    pub fn start() -> TestPostgres {
        let initdb = postgres_binary("initdb");
        let postgres = postgres_binary("postgres");
        let data_dir = tempfile::Builder::new()
            .prefix("oponn-test-postgres-")
            .tempdir()
            .expect("a temporary directory");
        let run_as = unprivileged_user();
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(data_dir.path(), Some(uid), Some(gid))
                .expect("the data directory can be given to the postgres user");
        }
        let pgdata = data_dir.path().join("data");
        let status = as_user(run_as, &initdb)
            .args(["-D", &pgdata.display().to_string()])
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap_or_else(|error| panic!("cannot run initdb: {error}; {INSTALL_HINT}"));
        assert!(
            status.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        let port = free_port();
        let command = vec![
            postgres.display().to_string(),
            "-D".to_owned(),
            pgdata.display().to_string(),
            "-p".to_owned(),
            port.to_string(),
            "-c".to_owned(),
            "listen_addresses=127.0.0.1".to_owned(),
            "-c".to_owned(),
            format!("unix_socket_directories={}", data_dir.path().display()),
            "-c".to_owned(),
            "fsync=off".to_owned(),
            "-c".to_owned(),
            "max_connections=300".to_owned(),
        ];
        let mut local = LocalServer {
            process: None,
            command,
            data_dir,
        };
        local.run();
        TestPostgres {
            server_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            local: Some(local),
        }
    }

    /// The server's maintenance database URL.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// Creates an empty database with a unique name and returns its URL.
    ///
    /// # Panics
    /// When the database cannot be created.
    pub fn fresh_database(&self) -> String {
        let name = unique_name("oponn_test");
        let psql = postgres_binary("psql");
        let output = Command::new(psql)
            .arg(&self.server_url)
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-c"])
            .arg(format!("CREATE DATABASE {name}"))
            .output()
            .unwrap_or_else(|error| panic!("cannot run psql: {error}; {INSTALL_HINT}"));
        assert!(
            output.status.success(),
            "creating database {name} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        match self.server_url.rsplit_once('/') {
            Some((server, last)) if !last.contains('@') => {
                let query = last
                    .split_once('?')
                    .map(|(_, q)| format!("?{q}"))
                    .unwrap_or_default();
                format!("{server}/{name}{query}")
            }
            _ => format!("{}/{name}", self.server_url.trim_end_matches('/')),
        }
    }

    /// Stops a server of [`TestPostgres::start`] (fast shutdown: clients are
    /// cut off, committed data stays).
    ///
    /// # Panics
    /// For the shared or an external server.
    pub fn stop(&mut self) {
        let local = self
            .local
            .as_mut()
            .expect("only a started server can be stopped");
        if let Some(process) = local.process.take() {
            let _ = Command::new("kill")
                .args(["-INT", &process.pid().to_string()])
                .status();
            drop(process);
        }
    }

    /// Starts a stopped server again, on the same port and data.
    ///
    /// # Panics
    /// For the shared or an external server, or when it does not start.
    pub fn restart(&mut self) {
        let local = self
            .local
            .as_mut()
            .expect("only a started server can be restarted");
        if local.process.is_none() {
            local.run();
        }
    }
}

impl LocalServer {
    fn run(&mut self) {
        let run_as = unprivileged_user();
        let mut command = as_user(run_as, Path::new(&self.command[0]));
        command.args(&self.command[1..]);
        self.process = Some(ServerProcess::start(
            "postgres",
            command,
            Announces::Stderr,
            READY,
            Some(self.data_dir.path()),
        ));
    }
}

fn postgres_binary(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.reverse();
    find_binary(name, &versions)
        .unwrap_or_else(|| panic!("no `{name}` binary found; {INSTALL_HINT}"))
}

/// The `postgres` user's ids when running as root (PostgreSQL refuses to
/// run as root); `None` otherwise.
fn unprivileged_user() -> Option<(u32, u32)> {
    let id = |args: &[&str]| -> Option<u32> {
        let output = Command::new("id").args(args).output().ok()?;
        String::from_utf8(output.stdout).ok()?.trim().parse().ok()
    };
    if id(&["-u"])? != 0 {
        return None;
    }
    let uid = id(&["-u", "postgres"]).or_else(|| id(&["-u", "nobody"]))?;
    let gid = id(&["-g", "postgres"]).or_else(|| id(&["-g", "nobody"]))?;
    Some((uid, gid))
}

/// `binary` as a command, run as `user` when given (through `setpriv`,
/// which execs in place, so the process id is the server's own).
fn as_user(user: Option<(u32, u32)>, binary: &Path) -> Command {
    match user {
        Some((uid, gid)) => {
            let mut command = Command::new("setpriv");
            command
                .arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg("--")
                .arg(binary);
            command
        }
        None => Command::new(binary),
    }
}
