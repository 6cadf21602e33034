//! Throwaway servers for adapter tests, like Testcontainers but from
//! binaries installed on the machine.
//!
//! Each service first looks for one named by the environment
//! (`DATABASE_URL`, `REDIS_URL`, `OPONN_KMS_ENDPOINT`) and otherwise starts
//! its own on a free loopback port, in a temporary directory. A watchdog
//! process kills the server and removes its directory when the test process
//! exits, however it exits. A missing binary is a test failure whose
//! message says what to install.
//!
//! - [`postgres`][postgres]: PostgreSQL (initdb + postgres; run as the
//!   `postgres` user when the tests run as root, since PostgreSQL refuses root).
//! - [`redis`][redis]: redis-server.
//! - [`moto`][moto]: moto's server, an AWS KMS look-alike.

// Test support fails by panicking with a message, like any test.
#![allow(clippy::unwrap_used)]

pub mod moto;
pub mod postgres;
pub mod redis;

use std::io::{BufRead as _, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a server may take to say it is ready.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(60);

/// A free TCP port on the loopback interface.
///
/// # Panics
/// When the operating system has no free port.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("a bound address").port()
}

/// Finds `binary` on `PATH`, then in `extra_dirs`.
pub fn find_binary(binary: &str, extra_dirs: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().cloned())
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
}

/// Which output stream a server announces readiness on.
#[derive(Debug, Clone, Copy)]
pub enum Announces {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A server process this test process started and owns.
#[derive(Debug)]
pub struct ServerProcess {
    name: String,
    child: Child,
}

impl ServerProcess {
    /// Starts `command` and waits for `ready` to appear in its output (on
    /// `announces`). A watchdog kills it, and removes `cleanup` if given,
    /// once this test process exits.
    ///
    /// # Panics
    /// When it cannot start, exits, or does not get ready in time; the
    /// message carries its output.
    pub fn start(
        name: &str,
        mut command: Command,
        announces: Announces,
        ready: &str,
        cleanup: Option<&Path>,
    ) -> Self {
        command.stdin(Stdio::null());
        match announces {
            Announces::Stdout => command.stdout(Stdio::piped()).stderr(Stdio::piped()),
            Announces::Stderr => command.stderr(Stdio::piped()).stdout(Stdio::piped()),
        };
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {name} ({command:?}): {error}"));
        let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let (watched, other): (Box<dyn Read + Send>, Box<dyn Read + Send>) = match announces {
            Announces::Stdout => (Box::new(stdout), Box::new(stderr)),
            Announces::Stderr => (Box::new(stderr), Box::new(stdout)),
        };
        drain(other);
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(watched).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    // Nobody listens any more: keep draining so the
                    // server never blocks on a full pipe.
                    continue;
                }
            }
        });
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + STARTUP_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) if line.contains(ready) => break,
                Ok(line) => seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    panic!(
                        "{name} was not ready within {STARTUP_DEADLINE:?}:\n{}",
                        seen.join("\n")
                    );
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().ok();
                    panic!(
                        "{name} exited ({status:?}) before it was ready:\n{}",
                        seen.join("\n")
                    );
                }
            }
        }
        // Keep reading (and discarding) so the pipe never fills.
        std::thread::spawn(move || while lines_rx.recv().is_ok() {});
        watch_over(child.id(), cleanup);
        Self {
            name: name.to_owned(),
            child,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The name given at start, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn drain(stream: Box<dyn Read + Send>) {
    std::thread::spawn(move || {
        let mut sink = std::io::sink();
        let mut stream = stream;
        let _ = std::io::copy(&mut stream, &mut sink);
    });
}

/// Starts a detached shell that waits for this test process to exit, then
/// kills `server_pid` and removes `cleanup`. Statics are never dropped, so
/// this is what stops servers shared by a whole test binary.
fn watch_over(server_pid: u32, cleanup: Option<&Path>) {
    let test_pid = std::process::id();
    let script = "while kill -0 \"$1\" 2>/dev/null; do sleep 1; done; \
                  kill -9 \"$2\" 2>/dev/null; [ -n \"$3\" ] && rm -rf -- \"$3\"; exit 0";
    let cleanup = cleanup
        .map(|path| path.display().to_string())
        .unwrap_or_default();
    let spawned = Command::new("sh")
        .args(["-c", script, "oponn-watchdog"])
        .arg(test_pid.to_string())
        .arg(server_pid.to_string())
        .arg(cleanup)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(error) = spawned {
        eprintln!("warning: no watchdog for server {server_pid}: {error}");
    }
}

/// A unique, lowercase name for a test database or key alias.
pub fn unique_name(prefix: &str) -> String {
    let id = oponn_core::domain::BallotId::generate().to_string();
    let suffix: String = id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    format!("{prefix}_{suffix}")
}
