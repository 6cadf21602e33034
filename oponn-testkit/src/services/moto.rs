//! moto's KMS look-alike for tests: the endpoint `OPONN_KMS_ENDPOINT`
//! names, or a throwaway `moto_server`.
//!
//! This module only starts the server: tests create their KMS keys through
//! the adapter's own SDK client, so the testkit needs no AWS crates.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use super::{Announces, ServerProcess, find_binary, free_port};

const INSTALL_HINT: &str = "install moto's server: cargo xtask setup (or pip install 'moto[server]'), or set OPONN_KMS_ENDPOINT";

/// The environment variable naming an already-running KMS-compatible endpoint.
pub const ENDPOINT_VARIABLE: &str = "OPONN_KMS_ENDPOINT";

/// A KMS-compatible endpoint tests may create keys on.
#[derive(Debug)]
pub struct TestMoto {
    endpoint: String,
    /// The server this process started, if it started one: held only so it
    /// lives as long as the `TestMoto` (the shared one until the watchdog
    /// ends it with the test process).
    _server: Option<ServerProcess>,
}

static SHARED: OnceLock<TestMoto> = OnceLock::new();

impl TestMoto {
    /// One endpoint for the whole test binary: `OPONN_KMS_ENDPOINT` when
    /// set, else a throwaway `moto_server` started on first use.
    ///
    /// # Panics
    /// When no endpoint is configured and moto's server cannot be started.
    pub fn shared() -> &'static TestMoto {
        SHARED.get_or_init(|| match std::env::var(ENDPOINT_VARIABLE) {
            Ok(endpoint) if !endpoint.trim().is_empty() => TestMoto {
                endpoint: endpoint.trim().trim_end_matches('/').to_owned(),
                _server: None,
            },
            _ => TestMoto::start(),
        })
    }

    /// A throwaway `moto_server` of the caller's own, on a free loopback
    /// port, stopped when the `TestMoto` is dropped.
    ///
    /// # Panics
    /// When `moto_server` is not installed or does not start.
    pub fn start() -> TestMoto {
        let binary = moto_binary();
        let port = free_port();
        let mut command = Command::new(binary);
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        // Werkzeug says this on standard error once the socket listens.
        let ready = format!("Running on http://127.0.0.1:{port}");
        let process = ServerProcess::start("moto_server", command, Announces::Stderr, &ready, None);
        TestMoto {
            endpoint: format!("http://127.0.0.1:{port}"),
            _server: Some(process),
        }
    }

    /// The endpoint URL to give an SDK client, like `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

fn moto_binary() -> PathBuf {
    // pip install --user puts entry points here, which is not always on PATH.
    let user_bin: Vec<PathBuf> = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".local/bin"))
        .into_iter()
        .collect();
    find_binary("moto_server", &user_bin)
        .unwrap_or_else(|| panic!("no `moto_server` binary found; {INSTALL_HINT}"))
}
