//! Redis for tests: the server `REDIS_URL` names, or a throwaway one.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use super::{Announces, ServerProcess, find_binary, free_port};

const INSTALL_HINT: &str =
    "install redis-server (Debian: apt-get install redis-server), or set REDIS_URL";

const READY: &str = "Ready to accept connections";

/// A Redis server for tests. Tests use fresh random ballot ids, so they
/// may share one; a test that stops and restarts Redis starts its own.
#[derive(Debug)]
pub struct TestRedis {
    url: String,
    local: Option<LocalServer>,
}

#[derive(Debug)]
struct LocalServer {
    binary: PathBuf,
    port: u16,
    process: Option<ServerProcess>,
}

static SHARED: OnceLock<TestRedis> = OnceLock::new();

impl TestRedis {
    /// One server for the whole test binary: `REDIS_URL` when set, else a
    /// throwaway one started on first use.
    ///
    /// # Panics
    /// When no server is configured and none can be started.
    pub fn shared() -> &'static TestRedis {
        SHARED.get_or_init(|| match std::env::var("REDIS_URL") {
            Ok(url) if !url.is_empty() => TestRedis { url, local: None },
            _ => TestRedis::start(),
        })
    }

    /// A throwaway server of the caller's own, on a free loopback port,
    /// which it may stop and start again (outage tests). It keeps nothing
    /// on disk.
    ///
    /// # Panics
    /// When `redis-server` is missing or does not start.
    pub fn start() -> TestRedis {
        let binary = find_binary("redis-server", &[])
            .unwrap_or_else(|| panic!("no `redis-server` binary found; {INSTALL_HINT}"));
        let port = free_port();
        let mut local = LocalServer {
            binary,
            port,
            process: None,
        };
        local.run();
        TestRedis {
            url: format!("redis://127.0.0.1:{port}/"),
            local: Some(local),
        }
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops a server of [`TestRedis::start`] at once (SIGKILL: clients
    /// see their connections drop, as in a crash).
    ///
    /// # Panics
    /// For the shared or an external server.
    pub fn stop(&mut self) {
        let local = self
            .local
            .as_mut()
            .expect("only a started server can be stopped");
        if let Some(mut process) = local.process.take() {
            process.kill();
        }
    }

    /// Starts a stopped server again, on the same port (empty: it kept
    /// nothing).
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
        let mut command = Command::new(&self.binary);
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"]);
        self.process = Some(ServerProcess::start(
            "redis-server",
            command,
            Announces::Stdout,
            READY,
            None,
        ));
    }
}
