//! The composition root: the one place that turns configuration into adapters.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use oponn_adapters::SqlSetupError;
use oponn_adapters::kms::{KmsKeyWrapper, KmsSettings};
use oponn_adapters::local_key::{KeyFileError, LocalKeyWrapper};
use oponn_adapters::memory::{MemoryBroadcaster, MemoryLock};
use oponn_adapters::postgres::PostgresRepository;
use oponn_adapters::redis::{RedisBroadcaster, RedisLock, RedisSetupError};
use oponn_adapters::sqlite::SqliteRepository;
use oponn_core::ports::{
    AccountRepository, BallotRepository, Broadcaster, KeyWrapper, SystemClock, VoteLock,
};
use oponn_core::{AccountService, BallotService, Ports, ServiceSettings};

use crate::config::{Config, Environment};
use crate::secrets::Secrets;

/// File name of the local key-encryption key in the data directory.
pub const KEY_FILE: &str = "oponn.key";

/// File name of the embedded default's database in the data directory.
pub const DATABASE_FILE: &str = "oponn.db";

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

/// The configured database, before it is handed to the service.
enum Storage {
    Sqlite(SqliteRepository),
    Postgres(PostgresRepository),
}

impl Storage {
    /// Opens what `DATABASE_URL` names, or the embedded default's file.
    async fn open(config: &Config) -> Result<(Self, String), ComposeError> {
        match config.database_url.as_deref() {
            None => {
                let path = config.data_dir.join(DATABASE_FILE);
                let repository = SqliteRepository::open(&path)
                    .await
                    .map_err(ComposeError::Storage)?;
                Ok((
                    Self::Sqlite(repository),
                    format!("SQLite file {}", display(&path)),
                ))
            }
            Some(url) if url.starts_with("sqlite:") => {
                let repository = SqliteRepository::open_url(url)
                    .await
                    .map_err(ComposeError::Storage)?;
                Ok((Self::Sqlite(repository), format!("SQLite {url}")))
            }
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let repository = PostgresRepository::connect(url)
                    .await
                    .map_err(ComposeError::Storage)?;
                Ok((
                    Self::Postgres(repository),
                    format!("PostgreSQL {}", redact(url)),
                ))
            }
            Some(url) => Err(ComposeError::UnknownDatabase(redact(url))),
        }
    }

    async fn migrate(&self) -> Result<(), SqlSetupError> {
        match self {
            Self::Sqlite(repository) => repository.migrate().await,
            Self::Postgres(repository) => repository.migrate().await,
        }
    }

    async fn pending_migrations(&self) -> Result<Vec<String>, SqlSetupError> {
        match self {
            Self::Sqlite(repository) => repository.pending_migrations().await,
            Self::Postgres(repository) => repository.pending_migrations().await,
        }
    }

    /// The one database as both ports it serves.
    fn into_ports(self) -> (Arc<dyn BallotRepository>, Arc<dyn AccountRepository>) {
        match self {
            Self::Sqlite(repository) => (Arc::new(repository.clone()), Arc::new(repository)),
            Self::Postgres(repository) => (Arc::new(repository.clone()), Arc::new(repository)),
        }
    }
}

/// Applies the configured database's pending migrations (`oponn migrate`);
/// returns the ones applied and where the database is.
///
/// # Errors
/// [`ComposeError`] when the database cannot be opened or a migration fails.
pub async fn migrate(config: &Config) -> Result<(Vec<String>, String), ComposeError> {
    let (storage, description) = Storage::open(config).await?;
    let pending = storage
        .pending_migrations()
        .await
        .map_err(ComposeError::Storage)?;
    storage.migrate().await.map_err(ComposeError::Storage)?;
    Ok((pending, description))
}

/// The services the web layer calls.
#[derive(Clone)]
pub struct Services {
    /// Ballots and votes.
    pub ballots: Arc<BallotService>,
    /// Sign-in.
    pub accounts: Arc<AccountService>,
}

/// Builds the services from `config`. Outside production, pending
/// migrations are applied first; production refuses to start on a database
/// that is behind.
///
/// # Errors
/// [`ComposeError`] when a backend cannot be opened or the database is behind.
pub async fn build_services(
    config: &Config,
    secrets: &Secrets,
) -> Result<(Services, Wiring), ComposeError> {
    let (storage, storage_description) = Storage::open(config).await?;
    if config.environment == Environment::Production {
        let pending = storage
            .pending_migrations()
            .await
            .map_err(ComposeError::Storage)?;
        if !pending.is_empty() {
            return Err(ComposeError::MigrationsPending(pending));
        }
    } else {
        storage.migrate().await.map_err(ComposeError::Storage)?;
    }
    let (lock, broadcaster, coordination) = coordination(config).await?;
    let (key_wrapper, keys) = key_wrapper(config).await?;
    let (repository, account_repository) = storage.into_ports();
    let clock = Arc::new(SystemClock);
    let ballots = BallotService::new(
        Ports {
            repository,
            lock,
            broadcaster,
            key_wrapper,
            clock: Arc::clone(&clock) as _,
        },
        ServiceSettings {
            max_write_in_options: config.limits.max_write_in_options,
            ..ServiceSettings::new(secrets.voter_hash_key)
        },
    );
    Ok((
        Services {
            ballots: Arc::new(ballots),
            accounts: Arc::new(AccountService::new(account_repository, clock)),
        },
        Wiring {
            storage: storage_description,
            coordination,
            keys,
        },
    ))
}

async fn coordination(
    config: &Config,
) -> Result<(Arc<dyn VoteLock>, Arc<dyn Broadcaster>, String), ComposeError> {
    match &config.redis_url {
        None => Ok((
            Arc::new(MemoryLock::new()),
            Arc::new(MemoryBroadcaster::new()),
            "in-process lock and broadcast (one instance)".to_owned(),
        )),
        Some(url) => {
            let lock = RedisLock::connect(url).await.map_err(ComposeError::Redis)?;
            let broadcaster = RedisBroadcaster::connect(url)
                .await
                .map_err(ComposeError::Redis)?;
            Ok((
                Arc::new(lock),
                Arc::new(broadcaster),
                format!("Redis {} (lock and pub/sub)", redact(url)),
            ))
        }
    }
}

async fn key_wrapper(config: &Config) -> Result<(Arc<dyn KeyWrapper>, String), ComposeError> {
    match &config.kms_key_id {
        None => {
            let path = config.data_dir.join(KEY_FILE);
            let wrapper = LocalKeyWrapper::from_file(&path).map_err(ComposeError::KeyFile)?;
            Ok((
                Arc::new(wrapper),
                format!("local key file {}", display(&path)),
            ))
        }
        Some(key_id) => {
            let settings = KmsSettings {
                key_id: key_id.clone(),
                region: config.aws_region.clone(),
                endpoint: config.kms_endpoint.clone(),
            };
            let wrapper = KmsKeyWrapper::connect(&settings).await;
            let endpoint = settings.endpoint.as_deref().unwrap_or("AWS");
            Ok((Arc::new(wrapper), format!("KMS key {key_id} at {endpoint}")))
        }
    }
}

/// A URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(at)) if at > scheme.len() => {
            let credentials = &rest[..at - scheme.len() - 3];
            let user = credentials.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{}", &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

fn display(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| PathBuf::from(path))
        .display()
        .to_string()
}

/// Why the service could not be assembled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ComposeError {
    /// Redis cannot be reached.
    #[error("REDIS_URL: {0}")]
    Redis(#[source] RedisSetupError),
    /// `DATABASE_URL` names neither SQLite nor PostgreSQL.
    #[error("DATABASE_URL {0} is neither sqlite:// nor postgres://")]
    UnknownDatabase(String),
    /// The database cannot be opened or migrated.
    #[error("database: {0}")]
    Storage(#[source] SqlSetupError),
    /// Production found the database behind this build.
    #[error(
        "the database is behind this build (pending: {}); run `oponn migrate` first",
        .0.join(", ")
    )]
    MigrationsPending(Vec<String>),
    /// The local key file cannot be used.
    #[error(transparent)]
    KeyFile(KeyFileError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_the_log() {
        assert_eq!(
            redact("postgres://oponn:hunter2@db:5432/oponn"),
            "postgres://oponn:***@db:5432/oponn"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
