//! The composition root: the one place that turns configuration into adapters.

use std::path::PathBuf;
use std::sync::Arc;

use oponn_adapters::local_key::{KeyFileError, LocalKeyWrapper};
use oponn_adapters::memory::{MemoryBroadcaster, MemoryLock, MemoryRepository};
use oponn_core::ports::{BallotRepository, Broadcaster, KeyWrapper, SystemClock, VoteLock};
use oponn_core::{BallotService, Ports, ServiceSettings};

use crate::config::Config;
use crate::secrets::Secrets;

/// File name of the local key-encryption key in the data directory.
pub const KEY_FILE: &str = "oponn.key";

/// What the service was built on, for the startup log.
#[derive(Debug, Clone)]
pub struct Wiring {
    /// Where ballots are stored.
    pub storage: String,
    /// What locks and fans out.
    pub coordination: String,
    /// What wraps data keys.
    pub keys: String,
}

/// Builds the ballot service from `config`.
///
/// # Errors
/// [`ComposeError`] when a configured backend is not available in this
/// build or cannot be opened.
pub fn build_service(
    config: &Config,
    secrets: &Secrets,
) -> Result<(Arc<BallotService>, Wiring), ComposeError> {
    let (repository, storage): (Arc<dyn BallotRepository>, String) = match &config.database_url {
        None => (
            Arc::new(MemoryRepository::new()),
            "in memory (lost on exit; set DATABASE_URL to keep ballots)".to_owned(),
        ),
        Some(url) => return Err(ComposeError::Unsupported(setting("DATABASE_URL", url))),
    };
    let (lock, broadcaster, coordination): (Arc<dyn VoteLock>, Arc<dyn Broadcaster>, String) =
        match &config.redis_url {
            None => (
                Arc::new(MemoryLock::new()),
                Arc::new(MemoryBroadcaster::new()),
                "in-process lock and broadcast (one instance)".to_owned(),
            ),
            Some(url) => return Err(ComposeError::Unsupported(setting("REDIS_URL", url))),
        };
    let (key_wrapper, keys): (Arc<dyn KeyWrapper>, String) = match &config.kms_key_id {
        None => {
            let path = config.data_dir.join(KEY_FILE);
            let wrapper = LocalKeyWrapper::from_file(&path).map_err(ComposeError::KeyFile)?;
            (
                Arc::new(wrapper),
                format!("local key file {}", display(&path)),
            )
        }
        Some(id) => return Err(ComposeError::Unsupported(setting("OPONN_KMS_KEY_ID", id))),
    };
    let service = BallotService::new(
        Ports {
            repository,
            lock,
            broadcaster,
            key_wrapper,
            clock: Arc::new(SystemClock),
        },
        ServiceSettings::new(secrets.voter_hash_key),
    );
    Ok((
        Arc::new(service),
        Wiring {
            storage,
            coordination,
            keys,
        },
    ))
}

fn setting(name: &'static str, value: &str) -> String {
    // Never echo a URL's credentials: show only its scheme.
    let scheme = value.split_once("://").map_or("", |(scheme, _)| scheme);
    format!("{name} ({scheme})")
}

fn display(path: &std::path::Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| PathBuf::from(path))
        .display()
        .to_string()
}

/// Why the service could not be assembled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ComposeError {
    /// A backend is configured that this build does not include yet.
    #[error("{0} is configured, but this build of oponn does not support it yet")]
    Unsupported(String),
    /// The local key file cannot be used.
    #[error(transparent)]
    KeyFile(KeyFileError),
}
