//! A complete Oponn in memory.

use std::future::Future;
use std::sync::Arc;

use oponn_adapters::local_key::LocalKeyWrapper;
use oponn_adapters::memory::{MemoryAccounts, MemoryBroadcaster, MemoryLock, MemoryRepository};
use oponn_core::crypto::SymmetricKey;
use oponn_core::domain::{Ballot, BallotRequest, BallotSettings, MethodRequest, StartRequest};
use oponn_core::{AccountService, BallotService, Ports, ServiceSettings};

use crate::TestClock;

/// Oponn wired to in-memory adapters and a [`TestClock`].
pub struct TestOponn {
    service: Arc<BallotService>,
    accounts: Arc<AccountService>,
    clock: Arc<TestClock>,
    ports: Ports,
}

impl TestOponn {
    /// A fresh, empty Oponn.
    pub fn new() -> Self {
        let clock = Arc::new(TestClock::default());
        let ports = Ports {
            repository: Arc::new(MemoryRepository::new()),
            lock: Arc::new(MemoryLock::new()),
            broadcaster: Arc::new(MemoryBroadcaster::new()),
            key_wrapper: Arc::new(LocalKeyWrapper::new(SymmetricKey::generate())),
            clock: Arc::clone(&clock) as _,
        };
        Self::with_ports(ports, clock)
    }

    /// Oponn over `repository`, with the other ports in memory and a
    /// [`TestClock`]: how a storage adapter runs the service [`stories`](crate::stories).
    pub fn with_repository(repository: Arc<dyn oponn_core::ports::BallotRepository>) -> Self {
        let mut ports = Self::new().ports.clone();
        ports.repository = repository;
        let clock = Arc::new(TestClock::default());
        ports.clock = Arc::clone(&clock) as _;
        Self::with_ports(ports, clock)
    }

    /// Oponn over the given ports; `clock` must be the one in `ports`.
    pub fn with_ports(ports: Ports, clock: Arc<TestClock>) -> Self {
        let service = Arc::new(BallotService::new(
            ports.clone(),
            ServiceSettings::new(*SymmetricKey::generate().expose_bytes()),
        ));
        let accounts = Arc::new(AccountService::new(
            Arc::new(MemoryAccounts::new()),
            Arc::clone(&clock) as _,
        ));
        Self {
            service,
            accounts,
            clock,
            ports,
        }
    }

    /// The service, to call as production code would.
    pub fn service(&self) -> &Arc<BallotService> {
        &self.service
    }

    /// Sign-in, over in-memory accounts on the same clock.
    pub fn accounts(&self) -> &Arc<AccountService> {
        &self.accounts
    }

    /// The clock, to move time.
    pub fn clock(&self) -> &TestClock {
        &self.clock
    }

    /// The adapters under the service.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// Creates an open-ended ballot that opens now, without write-ins.
    ///
    /// # Panics
    /// When the ballot breaks a creation rule: a test's fixture is wrong.
    pub async fn create_ballot(&self, measure: &str, options: &[&str]) -> Ballot {
        self.create(BallotRequest {
            measure: measure.to_owned(),
            options: options.iter().map(|o| (*o).to_owned()).collect(),
            allow_write_in: false,
            start: StartRequest::Now,
            window: 0.into(),
            settings: BallotSettings::default(),
            method: MethodRequest::Single,
        })
        .await
    }

    /// Creates a ballot from a full request.
    ///
    /// # Panics
    /// When the ballot breaks a creation rule: a test's fixture is wrong.
    pub async fn create(&self, request: BallotRequest) -> Ballot {
        match self.service.create_ballot(&request, None).await {
            Ok(ballot) => ballot,
            Err(error) => panic!("test ballot {request:?} was refused: {error}"),
        }
    }
}

impl Default for TestOponn {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs `future` to completion on a fresh two-thread tokio runtime, so
/// tests need no runtime of their own.
///
/// # Panics
/// When the runtime cannot start (the machine is out of threads).
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a test runtime starts")
        .block_on(future)
}
