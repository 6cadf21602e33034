//! The `oponn` binary as a child process: started with an environment,
//! ready once it logs its address, stopped with SIGTERM.

use std::path::Path;
use std::process::{ExitStatus, Stdio};

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::DEADLINE;

/// The binary with a clean environment: only what a test passes counts.
pub(crate) fn oponn_command(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_oponn"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .current_dir(dir)
        .kill_on_drop(true);
    command
}

/// A running `oponn serve`.
pub(crate) struct OponnProcess {
    /// `http://127.0.0.1:PORT`.
    pub(crate) address: String,
    child: Child,
}

impl OponnProcess {
    /// Starts `oponn` in `dir` with `env` on a free port and waits until it listens.
    pub(crate) async fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut command = oponn_command(dir);
        command
            .env("OPONN_BIND", "127.0.0.1:0")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let address = tokio::time::timeout(DEADLINE, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    return rest.split_whitespace().next().unwrap().to_owned();
                }
            }
            let mut errors = Vec::new();
            while let Ok(Some(line)) = stderr.next_line().await {
                errors.push(line);
            }
            panic!("oponn exited before listening:\n{}", errors.join("\n"));
        })
        .await
        .expect("oponn starts within the deadline");
        // Keep draining both streams so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
        Self { address, child }
    }

    /// The URL of `path` on this instance.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Sends SIGTERM and waits for the exit.
    pub(crate) async fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().unwrap().to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(killed.success());
        tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("oponn exits within the deadline")
            .unwrap()
    }
}
