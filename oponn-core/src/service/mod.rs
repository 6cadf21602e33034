//! The ballot service: every rule about ballots and votes, in one place.

mod accounts;
mod batch;
mod error;

use std::num::NonZeroUsize;
use std::sync::Arc;

use futures_util::StreamExt as _;
use futures_util::stream;
use time::{Duration, OffsetDateTime};

pub use accounts::{AccountService, SESSION_LENGTH, SignInError, SignedIn};
pub use error::{
    BallotError, CastVoteError, CreateBallotError, Dependency, OwnerActionError, Unavailable,
};

use crate::crypto::{BallotCache, KeyCache, SealedField, SymmetricKey};
use crate::domain::{
    Ballot, BallotDraft, BallotId, BallotOption, BallotParts, BallotRequest, Measure, OptionId,
    OptionLabel, OwnerId, Results, ResultsVisibility, Schedule, Status, Tally, TallyEvent,
    VoterHasher, VoterId, WriteIn, comparison_key, messages,
};
use crate::ports::{
    BallotRecord, BallotRepository, Broadcaster, Clock, KeyWrapError, KeyWrapper, LockGuard,
    NewVote, OptionRecord, Page, RecordVoteError, RepositoryError, TallyStream, VoteLock,
    VoteTarget,
};

/// How many times a write-in is retried when another instance took its
/// option id at the same moment (only possible while the lock is down).
const WRITE_IN_ATTEMPTS: usize = 3;

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
    /// Defaults (10,000 keys for 15 minutes, opened ballots for one
    /// second, 100 write-in options per ballot) around the given voter
    /// hash key.
    pub fn new(voter_hash_key: [u8; 32]) -> Self {
        Self {
            voter_hash_key,
            key_cache_capacity: NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN),
            key_cache_ttl: Duration::minutes(15),
            ballot_cache_ttl: Duration::seconds(1),
            max_write_in_options: DEFAULT_MAX_WRITE_IN_OPTIONS,
        }
    }
}

/// What a voter chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoteChoice {
    /// One of the ballot's options.
    Option(OptionId),
    /// Their own option, as typed.
    WriteIn(String),
}

/// What one viewer may see of a ballot's results now, as
/// [`BallotService::results_for`] decides it: every channel that shows a
/// tally in any form (pages, live streams, the API, exports, the
/// dashboard) asks this one question, so a new channel cannot forget it.
#[derive(Debug, Clone)]
pub enum ResultsAccess {
    /// The viewer may see the results.
    Shown {
        /// The ballot.
        ballot: Ballot,
        /// Its results.
        results: Results,
    },
    /// The results are hidden from this viewer for now.
    Hidden {
        /// The ballot (its question and status may still be shown).
        ballot: Ballot,
        /// Until when they stay hidden.
        reason: HiddenUntil,
        /// What to show where the results would be.
        message: &'static str,
    },
}

impl ResultsAccess {
    /// The ballot, shown or not.
    pub fn ballot(&self) -> &Ballot {
        match self {
            Self::Shown { ballot, .. } | Self::Hidden { ballot, .. } => ballot,
        }
    }

    /// The results, when the viewer may see them.
    pub fn results(&self) -> Option<&Results> {
        match self {
            Self::Shown { results, .. } => Some(results),
            Self::Hidden { .. } => None,
        }
    }
}

/// Why results are hidden: what would show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HiddenUntil {
    /// The viewer votes, or voting closes.
    Voted,
    /// Voting closes.
    Closed,
}

impl HiddenUntil {
    /// The message shown where the results would be.
    pub fn message(self) -> &'static str {
        match self {
            Self::Voted => messages::RESULTS_AFTER_VOTING,
            Self::Closed => messages::RESULTS_AFTER_CLOSE,
        }
    }
}

/// An accepted, durable vote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteReceipt {
    /// The option the vote counted toward.
    pub option_id: OptionId,
    /// The tally including the vote.
    pub tally: Tally,
    /// The option the voter's earlier vote was moved from, when this was a change.
    pub changed_from: Option<OptionId>,
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

/// Why a vote of a batch got no receipt.
enum BatchRefusal {
    /// A rule refused it, or a dependency failed.
    Refused(CastVoteError),
    /// Its new write-in's option id was taken by another instance: retry.
    Retry,
}

use BatchRefusal::{Refused, Retry};
use batch::Pending;

impl BallotService {
    /// A service over `ports`.
    pub fn new(ports: Ports, settings: ServiceSettings) -> Self {
        Self {
            voter_hasher: VoterHasher::new(settings.voter_hash_key),
            keys: KeyCache::new(settings.key_cache_capacity, settings.key_cache_ttl),
            opened: BallotCache::new(settings.key_cache_capacity, settings.ballot_cache_ttl),
            records: BallotCache::new(settings.key_cache_capacity, settings.ballot_cache_ttl),
            batches: batch::Batches::default(),
            max_write_in_options: settings.max_write_in_options,
            ports,
        }
    }

    /// The time on the service's clock.
    pub fn now(&self) -> OffsetDateTime {
        self.ports.clock.now()
    }

    /// Validates `request`, seals it under a new data key and stores it.
    ///
    /// # Errors
    /// [`CreateBallotError::Invalid`] with a message per broken field;
    /// [`CreateBallotError::Unavailable`] when storage or keys fail.
    pub async fn create_ballot(
        &self,
        request: &BallotRequest,
        owner: Option<OwnerId>,
    ) -> Result<Ballot, CreateBallotError> {
        let now = self.now();
        let draft = BallotDraft::parse(request, now)?;
        let id = BallotId::generate();
        let key = SymmetricKey::generate();
        let wrapped_key = self
            .ports
            .key_wrapper
            .wrap_key(&id, &key)
            .await
            .map_err(Unavailable::from)?;
        let options: Vec<BallotOption> = draft
            .options()
            .iter()
            .zip(1..)
            .map(|(label, number)| BallotOption::new(OptionId::new(number), label.clone(), false))
            .collect();
        let record = BallotRecord {
            id,
            owner: owner.clone(),
            created_at: now,
            starts_at: draft.schedule().starts_at(),
            ends_at: draft.schedule().ends_at(),
            closed_at: None,
            allow_write_in: draft.allow_write_in(),
            settings: draft.settings(),
            wrapped_key,
            measure: key.seal_field(&id, SealedField::Measure, draft.measure().as_str()),
            options: options
                .iter()
                .map(|option| seal_option(&key, &id, option))
                .collect(),
        };
        self.ports
            .repository
            .insert_ballot(&record)
            .await
            .map_err(Unavailable::from)?;
        self.keys.insert(id, Arc::new(key), now);
        Ok(Ballot::from_parts(BallotParts {
            id,
            measure: draft.measure().clone(),
            options,
            allow_write_in: draft.allow_write_in(),
            schedule: *draft.schedule(),
            closed_at: None,
            created_at: now,
            owner,
            settings: draft.settings(),
        }))
    }

    /// The ballot with `id`, decrypted.
    ///
    /// Reads may be served from memory for up to
    /// [`ServiceSettings::ballot_cache_ttl`]; see there what that means.
    ///
    /// # Errors
    /// [`BallotError::NotFound`], or [`BallotError::Unavailable`].
    pub async fn ballot(&self, id: &BallotId) -> Result<Ballot, BallotError> {
        if let Some(ballot) = self.opened.get(id, self.now()) {
            return Ok(Ballot::clone(&ballot));
        }
        self.reopen(id).await
    }

    /// The ballot with `id`, decrypted, with every option `tally` counts:
    /// a cached ballot older than a write-in the tally names (added on
    /// another instance) is read again.
    ///
    /// # Errors
    /// [`BallotError::NotFound`], or [`BallotError::Unavailable`].
    pub async fn ballot_for_tally(
        &self,
        id: &BallotId,
        tally: &Tally,
    ) -> Result<Ballot, BallotError> {
        let ballot = self.ballot(id).await?;
        if tally
            .iter()
            .all(|(option, _)| ballot.option(option).is_some())
        {
            return Ok(ballot);
        }
        self.reopen(id).await
    }

    /// The ballot with `id`, read from storage and decrypted, and cached.
    async fn reopen(&self, id: &BallotId) -> Result<Ballot, BallotError> {
        let record = self.record(id).await?;
        self.records
            .insert(*id, Arc::new(record.clone()), self.now());
        let ballot = self.open(record).await?;
        self.opened
            .insert(*id, Arc::new(ballot.clone()), self.now());
        Ok(ballot)
    }

    /// The stored ballot for a vote batch to check against: cached, or
    /// read and cached.
    async fn batch_record(&self, id: &BallotId) -> Result<BallotRecord, BallotError> {
        if let Some(record) = self.records.get(id, self.now()) {
            return Ok(BallotRecord::clone(&record));
        }
        let record = self.record(id).await?;
        self.records
            .insert(*id, Arc::new(record.clone()), self.now());
        Ok(record)
    }

    /// Drops what this instance caches of ballot `id`, after it changed.
    fn forget(&self, id: &BallotId) {
        self.opened.remove(id);
        self.records.remove(id);
    }

    /// Drops this instance's cached copy of ballot `id`, so the next read
    /// sees storage: for a live feed told that the ballot's state (not its
    /// tally) changed, perhaps on another instance.
    pub fn refresh(&self, id: &BallotId) {
        self.forget(id);
    }

    /// Tells every instance's watchers that ballot `id` changed state
    /// (closed, deleted) though no vote did: its last tally once more,
    /// under the next sequence number, so broadcasters pass it on. A
    /// failure is logged: the change itself is durable.
    async fn announce_state_change(&self, id: &BallotId, last: &Tally) {
        let event = TallyEvent {
            ballot_id: *id,
            tally: Tally::new(last.seq().saturating_add(1), last.iter()),
        };
        if let Err(error) = self.ports.broadcaster.publish(&event).await {
            tracing::warn!(ballot = %id, %error, "announcing a state change failed");
        }
    }

    /// The ballots `owner` created, newest first, in the window `page` names.
    ///
    /// # Errors
    /// [`BallotError::Unavailable`] when storage or keys fail.
    pub async fn ballots_owned_by(
        &self,
        owner: &OwnerId,
        page: Page,
    ) -> Result<Vec<Ballot>, BallotError> {
        let records = self
            .ports
            .repository
            .ballots_owned_by(owner, page)
            .await
            .map_err(Unavailable::from)?;
        let mut ballots = Vec::with_capacity(records.len());
        for record in records {
            ballots.push(self.open(record).await?);
        }
        Ok(ballots)
    }

    /// The current tally of `id`.
    ///
    /// # Errors
    /// [`BallotError::NotFound`], or [`BallotError::Unavailable`].
    pub async fn tally(&self, id: &BallotId) -> Result<Tally, BallotError> {
        self.ports
            .repository
            .tally(id)
            .await
            .map_err(Unavailable::from)?
            .ok_or(BallotError::NotFound)
    }

    /// The ballot with its current results.
    ///
    /// # Errors
    /// [`BallotError::NotFound`], or [`BallotError::Unavailable`].
    pub async fn results(&self, id: &BallotId) -> Result<(Ballot, Results), BallotError> {
        let tally = self.tally(id).await?;
        let ballot = self.ballot_for_tally(id, &tally).await?;
        let results = Results::new(&ballot, &tally);
        Ok((ballot, results))
    }

    /// Casts `voter`'s vote on ballot `id`.
    ///
    /// Under the ballot's lock: the ballot must exist and be active now,
    /// the choice must be one of its options or an allowed, valid write-in
    /// (merged into an equal existing option), and the voter must not have
    /// voted under any identity they present (a signed-in account and the
    /// browser it votes from are one voter; see [`VoterId::from_browser`]). The vote is durable before this returns; the new tally is
    /// then published to watchers.
    ///
    /// # Errors
    /// A [`CastVoteError`] naming the broken rule; nothing is recorded.
    pub async fn cast_vote(
        &self,
        id: &BallotId,
        voter: &VoterId,
        choice: VoteChoice,
    ) -> Result<VoteReceipt, CastVoteError> {
        let (queue, reply) = self.batches.enqueue(*id, voter.clone(), choice);
        let outcome =
            batch::await_reply(&queue, reply, |votes| self.commit_batch(id, &queue, votes)).await;
        outcome.unwrap_or_else(|_| {
            // The request that was committing this vote's batch was
            // cancelled; the vote may or may not have been recorded.
            Err(CastVoteError::Unavailable(Unavailable::new(
                Dependency::Storage,
                "the vote's batch was interrupted; its outcome is unknown",
            )))
        })
    }

    /// Checks and records one batch of votes on ballot `id` (group commit),
    /// then answers each voter and publishes the newest tally once.
    async fn commit_batch(&self, id: &BallotId, queue: &batch::BallotQueue, votes: Vec<Pending>) {
        let guard = self.lock(id).await;
        let outcomes = self.check_and_record(id, &votes).await;
        unlock(id, guard).await;
        if votes
            .iter()
            .any(|vote| matches!(vote.choice, VoteChoice::WriteIn(_)))
        {
            // The ballot may have gained an option.
            self.forget(id);
        }
        let newest = outcomes
            .iter()
            .filter_map(|outcome| outcome.as_ref().ok())
            .map(|receipt| &receipt.tally)
            .max_by_key(|tally| tally.seq())
            .cloned();
        if let Some(tally) = newest {
            let event = TallyEvent {
                ballot_id: *id,
                tally,
            };
            if let Err(error) = self.ports.broadcaster.publish(&event).await {
                // The votes are durable; watchers catch up on their next event.
                tracing::warn!(ballot = %id, %error, "publishing a tally failed");
            }
        }
        for (mut pending, outcome) in votes.into_iter().zip(outcomes) {
            let answer = match outcome {
                // Another instance added a different write-in under the
                // same id in the same instant: retry in a later batch.
                Err(Retry) if pending.attempts + 1 < WRITE_IN_ATTEMPTS => {
                    pending.attempts += 1;
                    queue.push(pending);
                    continue;
                }
                Err(Retry) => Err(CastVoteError::Unavailable(Unavailable::new(
                    Dependency::Storage,
                    "write-in option id kept colliding",
                ))),
                Err(Refused(error)) => Err(error),
                Ok(receipt) => Ok(receipt),
            };
            // A voter who stopped waiting is no longer listening; the
            // outcome stands either way.
            let _ = pending.reply.send(answer);
        }
    }

    /// Under the ballot's lock: one read of the ballot, each vote's checks
    /// in arrival order, then one batch write.
    async fn check_and_record(
        &self,
        id: &BallotId,
        votes: &[Pending],
    ) -> Vec<Result<VoteReceipt, BatchRefusal>> {
        let all = |error: &dyn Fn() -> CastVoteError| {
            votes.iter().map(|_| Err(Refused(error()))).collect()
        };
        // Possibly cached: storage refuses votes on a ballot closed or
        // deleted since, and write-ins whose id was taken meanwhile.
        let mut record = match self.batch_record(id).await {
            Ok(record) => record,
            Err(BallotError::NotFound) => return all(&|| CastVoteError::NotFound),
            Err(BallotError::Unavailable(error)) => {
                let cause = error.to_string();
                return all(&|| {
                    CastVoteError::Unavailable(Unavailable::new(Dependency::Storage, cause.clone()))
                });
            }
        };
        let now = self.now();
        match Schedule::from_parts(record.starts_at, record.ends_at)
            .status_at(now, record.closed_at)
        {
            Status::Pending { .. } => return all(&|| CastVoteError::NotOpenYet),
            Status::Ended => return all(&|| CastVoteError::Ended),
            Status::Active { .. } => {}
        }
        let mut outcomes: Vec<Option<Result<VoteReceipt, BatchRefusal>>> =
            Vec::with_capacity(votes.len());
        let mut to_record = Vec::with_capacity(votes.len());
        for pending in votes {
            if !record.settings.eligibility.admits(&pending.voter) {
                outcomes.push(Some(Err(Refused(CastVoteError::SignInRequired))));
                continue;
            }
            match self.vote_target(&mut record, &pending.choice).await {
                Ok(target) => {
                    to_record.push(NewVote {
                        ballot_id: *id,
                        voter: self.voter_hasher.hash(id, &pending.voter),
                        aliases: self.voter_hasher.aliases(id, &pending.voter),
                        target,
                        cast_at: now,
                        allow_change: record.settings.allow_vote_change,
                    });
                    outcomes.push(None);
                }
                Err(error) => outcomes.push(Some(Err(Refused(error)))),
            }
        }
        let mut recorded = self
            .ports
            .repository
            .record_votes(&to_record)
            .await
            .into_iter();
        outcomes
            .into_iter()
            .map(|decided| {
                decided.unwrap_or_else(|| match recorded.next() {
                    Some(Ok(recorded)) => Ok(VoteReceipt {
                        option_id: recorded.option_id,
                        tally: recorded.tally,
                        changed_from: recorded.changed_from,
                    }),
                    Some(Err(RecordVoteError::OptionIdTaken)) => Err(Retry),
                    Some(Err(error)) => Err(Refused(error.into())),
                    None => Err(Refused(CastVoteError::Unavailable(Unavailable::new(
                        Dependency::Storage,
                        "storage answered fewer votes than it was given",
                    )))),
                })
            })
            .collect()
    }

    /// The option `choice` counts toward. A new write-in is added to
    /// `record`, so later votes of the same batch merge into it and the next
    /// new one takes the following id.
    async fn vote_target(
        &self,
        record: &mut BallotRecord,
        choice: &VoteChoice,
    ) -> Result<VoteTarget, CastVoteError> {
        match choice {
            VoteChoice::Option(option) => {
                if record.options.iter().any(|o| o.id == *option) {
                    Ok(VoteTarget::Existing(*option))
                } else {
                    Err(CastVoteError::InvalidOption)
                }
            }
            VoteChoice::WriteIn(_) if !record.allow_write_in => {
                Err(CastVoteError::WriteInsNotAllowed)
            }
            VoteChoice::WriteIn(text) => {
                let write_in = WriteIn::parse(text).map_err(CastVoteError::InvalidWriteIn)?;
                let key = self.data_key(record).await.map_err(Unavailable::from)?;
                let label_key = key.label_key(&record.id, &write_in.comparison_key());
                if let Some(existing) = record.options.iter().find(|o| o.label_key == label_key) {
                    return Ok(VoteTarget::Existing(existing.id));
                }
                let written_in = record.options.iter().filter(|o| o.write_in).count();
                if written_in >= self.max_write_in_options {
                    return Err(CastVoteError::WriteInLimitReached {
                        limit: self.max_write_in_options,
                    });
                }
                let next = record
                    .options
                    .iter()
                    .map(|o| o.id.get())
                    .max()
                    .unwrap_or(0)
                    .checked_add(1)
                    .ok_or(CastVoteError::WriteInLimitReached {
                        limit: self.max_write_in_options,
                    })?;
                let option = BallotOption::new(OptionId::new(next), write_in.into_label(), true);
                let sealed = seal_option(&key, &record.id, &option);
                record.options.push(sealed.clone());
                Ok(VoteTarget::WriteIn(sealed))
            }
        }
    }

    /// The option `voter` chose on ballot `id`, if they voted under any
    /// identity they present (their account, or the browser they are on).
    ///
    /// # Errors
    /// [`BallotError::Unavailable`] when storage fails.
    pub async fn vote_of(
        &self,
        id: &BallotId,
        voter: &VoterId,
    ) -> Result<Option<OptionId>, BallotError> {
        let primary = self.voter_hasher.hash(id, voter);
        for hash in std::iter::once(primary).chain(self.voter_hasher.aliases(id, voter)) {
            let option = self
                .ports
                .repository
                .vote_of(id, &hash)
                .await
                .map_err(Unavailable::from)?;
            if option.is_some() {
                return Ok(option);
            }
        }
        Ok(None)
    }

    /// The ballot `id` and what `viewer` may see of its results now: the
    /// one call every channel makes before showing a tally, in any form.
    ///
    /// # Errors
    /// [`BallotError::NotFound`], or [`BallotError::Unavailable`].
    pub async fn results_for(
        &self,
        id: &BallotId,
        viewer: Option<&VoterId>,
    ) -> Result<ResultsAccess, BallotError> {
        let (ballot, results) = self.results(id).await?;
        self.access(ballot, results, viewer).await
    }

    /// What `voter` may see of the tally their vote `receipt` produced: a
    /// vote's reply carries the tally that includes it, under the same
    /// rule as [`results_for`](Self::results_for).
    ///
    /// # Errors
    /// [`BallotError::NotFound`] when the ballot was deleted meanwhile, or
    /// [`BallotError::Unavailable`].
    pub async fn receipt_results(
        &self,
        id: &BallotId,
        voter: &VoterId,
        receipt: &VoteReceipt,
    ) -> Result<ResultsAccess, BallotError> {
        let ballot = self.ballot(id).await?;
        let results = Results::new(&ballot, &receipt.tally);
        self.access(ballot, results, Some(voter)).await
    }

    /// `results`, shown to `viewer` or hidden, by the ballot's visibility.
    async fn access(
        &self,
        ballot: Ballot,
        results: Results,
        viewer: Option<&VoterId>,
    ) -> Result<ResultsAccess, BallotError> {
        if self.can_see_results(&ballot, viewer).await? {
            return Ok(ResultsAccess::Shown { ballot, results });
        }
        let reason = match ballot.settings().results_visibility {
            ResultsVisibility::AfterVoting => HiddenUntil::Voted,
            ResultsVisibility::AfterClose | ResultsVisibility::Always => HiddenUntil::Closed,
        };
        Ok(ResultsAccess::Hidden {
            ballot,
            reason,
            message: reason.message(),
        })
    }

    /// Whether `viewer` may see `ballot`'s results now, under its
    /// [`ResultsVisibility`]: the rule behind
    /// [`results_for`](Self::results_for), which front ends call instead.
    ///
    /// # Errors
    /// [`BallotError::Unavailable`] when storage fails.
    pub async fn can_see_results(
        &self,
        ballot: &Ballot,
        viewer: Option<&VoterId>,
    ) -> Result<bool, BallotError> {
        let visibility = ballot.settings().results_visibility;
        let ended = matches!(ballot.status_at(self.now()), Status::Ended);
        if visibility.allows(ended, false) {
            return Ok(true);
        }
        let voted = match viewer {
            Some(viewer) if visibility.allows(ended, true) => {
                self.vote_of(&ballot.id(), viewer).await?.is_some()
            }
            _ => false,
        };
        Ok(visibility.allows(ended, voted))
    }

    /// The ballot's tallies: the current one at once, then each newer one.
    ///
    /// Tallies arrive in increasing sequence; a burst may be coalesced into
    /// its latest tally, but the latest is never skipped.
    ///
    /// # Errors
    /// [`BallotError::NotFound`], or [`BallotError::Unavailable`].
    pub async fn subscribe(&self, id: &BallotId) -> Result<TallyStream, BallotError> {
        // Subscribe before reading, so no tally published in between is missed.
        let updates = self
            .ports
            .broadcaster
            .subscribe(id)
            .await
            .map_err(Unavailable::from)?;
        let current = self.tally(id).await?;
        let tallies = stream::iter([current])
            .chain(updates)
            .scan(None::<u64>, |last_seq, tally| {
                let newer = last_seq.is_none_or(|last| tally.seq() > last);
                if newer {
                    *last_seq = Some(tally.seq());
                }
                std::future::ready(Some(newer.then_some(tally)))
            })
            .filter_map(std::future::ready);
        Ok(Box::pin(tallies))
    }

    /// Closes voting on `id` now; only its owner may.
    ///
    /// # Errors
    /// [`OwnerActionError::NotFound`], [`OwnerActionError::Forbidden`] for
    /// anyone but the owner, or [`OwnerActionError::Unavailable`].
    pub async fn close_ballot(
        &self,
        id: &BallotId,
        requester: &OwnerId,
    ) -> Result<Ballot, OwnerActionError> {
        let record = self.record(id).await?;
        authorize(&record, requester)?;
        // Under the lock, so no vote is half-way through its checks.
        let guard = self.lock(id).await;
        let closed = self
            .ports
            .repository
            .close_ballot(id, self.now())
            .await
            .map_err(Unavailable::from);
        unlock(id, guard).await;
        self.forget(id);
        if !closed? {
            return Err(OwnerActionError::NotFound);
        }
        let ballot = self.reopen(id).await?;
        if let Ok(Some(tally)) = self.ports.repository.tally(id).await {
            self.announce_state_change(id, &tally).await;
        }
        Ok(ballot)
    }

    /// Deletes `id` and everything about it; only its owner may. Its data
    /// key goes first, so any copy of its rows (a backup) stays unreadable.
    ///
    /// # Errors
    /// [`OwnerActionError::NotFound`], [`OwnerActionError::Forbidden`] for
    /// anyone but the owner, or [`OwnerActionError::Unavailable`].
    pub async fn delete_ballot(
        &self,
        id: &BallotId,
        requester: &OwnerId,
    ) -> Result<(), OwnerActionError> {
        let record = self.record(id).await?;
        authorize(&record, requester)?;
        self.keys.remove(id);
        self.forget(id);
        let last = self.ports.repository.tally(id).await.ok().flatten();
        let deleted = self
            .ports
            .repository
            .delete_ballot(id)
            .await
            .map_err(Unavailable::from)?;
        if deleted {
            if let Some(last) = last {
                self.announce_state_change(id, &last).await;
            }
            Ok(())
        } else {
            Err(OwnerActionError::NotFound)
        }
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

fn authorize(record: &BallotRecord, requester: &OwnerId) -> Result<(), OwnerActionError> {
    match &record.owner {
        Some(owner) if owner == requester => Ok(()),
        _ => Err(OwnerActionError::Forbidden),
    }
}
