//! The ballot service: every rule about ballots and votes, in one place.
//!
//! # Layout
//!
//! - this file: [`BallotService`], its [`Ports`] and [`ServiceSettings`],
//!   health and pruning, and the plumbing every operation shares (the
//!   lock, reading a record, the data-key cache, opening a sealed ballot).
//! - `create.rs`: validating, sealing and storing a new ballot.
//! - `read.rs`: ballots, tallies and results, the caches in front of them,
//!   and [`ResultsAccess`]: who may see results.
//! - `vote.rs`: [`BallotService::cast_vote`] and the group-commit pipeline
//!   behind it (`batch.rs` queues the votes; the vote checks live here;
//!   storage executes [`crate::recording::decide_batch`]).
//! - `owner.rs`: closing and deleting, and announcing either to watchers.
//! - `invitations.rs`: voter links of invite-only ballots, and guest
//!   ballots following their owner when they sign in.
//! - `receipts.rs`: checking a receipt, and the public bulletin.
//! - `accounts.rs`: [`AccountService`]. `error.rs`: one error enum per operation.

mod accounts;
mod batch;
mod create;
mod error;
mod invitations;
mod owner;
mod read;
mod receipts;
mod vote;

use std::num::NonZeroUsize;
use std::sync::Arc;

use time::{Duration, OffsetDateTime};

pub use accounts::{AccountService, SESSION_LENGTH, SignInError, SignedIn};
pub use error::{
    BallotError, CastVoteError, CreateBallotError, Dependency, OwnerActionError, Unavailable,
};
pub use invitations::{InvitationError, OpenInvitationError, OpenedInvitation};
pub use read::{HiddenUntil, ResultsAccess};
pub use receipts::{BulletinAccess, PublishedBulletin};
pub use vote::{VoteChoice, VoteReceipt};

use crate::crypto::{BallotCache, KeyCache, SealedField, SymmetricKey};
use crate::domain::{
    Ballot, BallotId, BallotOption, BallotParts, Measure, OptionLabel, Schedule, VoterHasher,
    comparison_key,
};
use crate::ports::{
    BallotRecord, BallotRepository, Broadcaster, Clock, KeyWrapError, KeyWrapper, LockGuard,
    OptionRecord, RepositoryError, VoteLock,
};

/// The adapters a [`BallotService`] runs on.
#[derive(Clone)]
pub struct Ports {
    /// Durable storage.
    pub repository: Arc<dyn BallotRepository>,
    /// The per-ballot vote lock.
    pub lock: Arc<dyn VoteLock>,
    /// Tally fan-out.
    pub broadcaster: Arc<dyn Broadcaster>,
    /// Wraps ballots' data keys.
    pub key_wrapper: Arc<dyn KeyWrapper>,
    /// The time.
    pub clock: Arc<dyn Clock>,
}

/// Tunables of a [`BallotService`], with defaults fit for production.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// Secret key for voter hashes; every instance must share it.
    pub voter_hash_key: [u8; 32],
    /// Most unwrapped data keys kept in memory.
    pub key_cache_capacity: NonZeroUsize,
    /// How long an unwrapped data key stays in memory.
    pub key_cache_ttl: Duration,
    /// Most ballots kept opened in memory, and as many stored records (the
    /// two caches in front of storage for pages and vote batches).
    pub ballot_cache_capacity: NonZeroUsize,
    /// How long an opened ballot is reused for reading without asking
    /// storage again. This instance's own closes, deletes and write-ins
    /// refresh it at once; another instance's show after at most this
    /// long. Votes never rely on it: they are checked against storage.
    pub ballot_cache_ttl: Duration,
    /// Most options write-ins may add to one ballot
    /// ([`DEFAULT_MAX_WRITE_IN_OPTIONS`] by default). Past it, a write-in
    /// that matches an existing option still counts toward it; one that
    /// would add an option is refused with
    /// [`CastVoteError::WriteInLimitReached`], so anonymous voters cannot
    /// grow a ballot (and every page and tally of it) without bound.
    pub max_write_in_options: usize,
}

/// The default of [`ServiceSettings::max_write_in_options`]: room for every
/// honest write-in a real ballot gets, and a bound on a hostile one.
pub const DEFAULT_MAX_WRITE_IN_OPTIONS: usize = 100;

impl ServiceSettings {
    /// Defaults (10,000 keys for 15 minutes, 10,000 opened ballots for one
    /// second, 100 write-in options per ballot) around the given voter
    /// hash key.
    pub fn new(voter_hash_key: [u8; 32]) -> Self {
        Self {
            voter_hash_key,
            key_cache_capacity: NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN),
            key_cache_ttl: Duration::minutes(15),
            ballot_cache_capacity: NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN),
            ballot_cache_ttl: Duration::seconds(1),
            max_write_in_options: DEFAULT_MAX_WRITE_IN_OPTIONS,
        }
    }
}

/// What one reaper pass dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Idle per-ballot locks dropped.
    pub locks: usize,
    /// Idle per-ballot channels dropped.
    pub channels: usize,
    /// Expired data keys dropped.
    pub keys: usize,
    /// Expired opened ballots dropped.
    pub ballots: usize,
}

/// Ballots and votes: creation, voting, tallies, live updates and owner actions.
///
/// Every rule about ballots and votes lives here, so each front end (HTML
/// pages, JSON API, embedding services) enforces the same ones.
pub struct BallotService {
    ports: Ports,
    voter_hasher: VoterHasher,
    /// Unwrapped data keys, so a hot ballot costs one unwrap per TTL.
    keys: KeyCache,
    /// Opened ballots, so a hot ballot's pages cost one read per TTL.
    opened: BallotCache<Arc<Ballot>>,
    /// Sealed ballots as stored, so a hot ballot's vote batches cost one
    /// read per TTL.
    records: BallotCache<Arc<BallotRecord>>,
    /// Votes waiting for their ballot's next group commit.
    batches: batch::Batches,
    /// See [`ServiceSettings::max_write_in_options`].
    max_write_in_options: usize,
}

impl BallotService {
    /// A service over `ports`.
    pub fn new(ports: Ports, settings: ServiceSettings) -> Self {
        Self {
            voter_hasher: VoterHasher::new(settings.voter_hash_key),
            keys: KeyCache::new(settings.key_cache_capacity, settings.key_cache_ttl),
            opened: BallotCache::new(settings.ballot_cache_capacity, settings.ballot_cache_ttl),
            records: BallotCache::new(settings.ballot_cache_capacity, settings.ballot_cache_ttl),
            batches: batch::Batches::default(),
            max_write_in_options: settings.max_write_in_options,
            ports,
        }
    }

    /// The time on the service's clock.
    pub fn now(&self) -> OffsetDateTime {
        self.ports.clock.now()
    }

    /// Checks every dependency; `Ok` for each one reachable.
    pub async fn check_dependencies(&self) -> Vec<(Dependency, Result<(), Unavailable>)> {
        vec![
            (
                Dependency::Storage,
                self.ports
                    .repository
                    .ping()
                    .await
                    .map_err(Unavailable::from),
            ),
            (
                Dependency::Lock,
                self.ports.lock.ping().await.map_err(Unavailable::from),
            ),
            (
                Dependency::Broadcast,
                self.ports
                    .broadcaster
                    .ping()
                    .await
                    .map_err(Unavailable::from),
            ),
            (
                Dependency::Keys,
                self.ports
                    .key_wrapper
                    .ping()
                    .await
                    .map_err(Unavailable::from),
            ),
        ]
    }

    /// Drops per-ballot in-memory state nobody uses: idle locks and
    /// channels, expired data keys. Run periodically by the host.
    pub fn prune_idle(&self) -> PruneReport {
        PruneReport {
            locks: self.ports.lock.prune_idle(),
            channels: self.ports.broadcaster.prune_idle() + self.batches.prune_idle(),
            keys: self.keys.prune_expired(self.now()),
            ballots: self.opened.prune_expired(self.now()) + self.records.prune_expired(self.now()),
        }
    }

    /// Takes the ballot's lock, or goes on without it when the lock backend
    /// fails: the repository still enforces every invariant atomically.
    async fn lock(&self, id: &BallotId) -> Option<Box<dyn LockGuard>> {
        match self.ports.lock.acquire(id).await {
            Ok(guard) => Some(guard),
            Err(error) => {
                tracing::warn!(ballot = %id, %error, "voting without the ballot lock");
                None
            }
        }
    }

    async fn record(&self, id: &BallotId) -> Result<BallotRecord, BallotError> {
        self.ports
            .repository
            .ballot(id)
            .await
            .map_err(|error: RepositoryError| BallotError::Unavailable(error.into()))?
            .ok_or(BallotError::NotFound)
    }

    async fn data_key(&self, record: &BallotRecord) -> Result<Arc<SymmetricKey>, KeyWrapError> {
        let now = self.now();
        if let Some(key) = self.keys.get(&record.id, now) {
            return Ok(key);
        }
        let key = Arc::new(
            self.ports
                .key_wrapper
                .unwrap_key(&record.id, &record.wrapped_key)
                .await?,
        );
        self.keys.insert(record.id, Arc::clone(&key), now);
        Ok(key)
    }

    async fn open(&self, record: BallotRecord) -> Result<Ballot, Unavailable> {
        let key = self.data_key(&record).await?;
        let id = record.id;
        let corrupt = |field: &str| {
            Unavailable::new(
                Dependency::Keys,
                format!("ballot {id}: the {field} did not decrypt"),
            )
        };
        let measure = key
            .open_field(&id, SealedField::Measure, &record.measure)
            .map_err(|_| corrupt("measure"))?;
        let options = record
            .options
            .iter()
            .map(|option| {
                key.open_field(&id, SealedField::OptionLabel(option.id), &option.label)
                    .map(|label| {
                        BallotOption::new(option.id, OptionLabel::trusted(label), option.write_in)
                    })
                    .map_err(|_| corrupt("option label"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Ballot::from_parts(BallotParts {
            id,
            measure: Measure::parse(&measure).map_err(|_| corrupt("measure"))?,
            options,
            allow_write_in: record.allow_write_in,
            schedule: Schedule::from_parts(record.starts_at, record.ends_at),
            closed_at: record.closed_at,
            created_at: record.created_at,
            owner: record.owner,
            settings: record.settings,
            method: record.method,
        }))
    }
}

fn seal_option(key: &SymmetricKey, ballot: &BallotId, option: &BallotOption) -> OptionRecord {
    OptionRecord {
        id: option.id(),
        label: key.seal_field(
            ballot,
            SealedField::OptionLabel(option.id()),
            option.label(),
        ),
        label_key: key.label_key(ballot, &comparison_key(option.label())),
        write_in: option.is_write_in(),
    }
}

/// Releases a lock taken by [`BallotService::lock`]; a failure only means
/// the lock expires by itself, so it is logged, not returned.
async fn unlock(id: &BallotId, guard: Option<Box<dyn LockGuard>>) {
    if let Some(Err(error)) = match guard {
        Some(guard) => Some(guard.release().await),
        None => None,
    } {
        tracing::warn!(ballot = %id, %error, "releasing the vote lock failed");
    }
}
