//! The repository port: ballots, votes and tallies, sealed, in durable storage.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::BoxError;
use crate::crypto::{LabelKey, Sealed, WrappedKey};
use crate::domain::{
    BallotId, BallotMethod, BallotSettings, BulletinRow, InvitationHash, InvitationId, OptionId,
    OwnerId, ReceiptCode, ReceiptStatus, Tally, VoterHash,
};

/// A ballot as storage holds it: its text sealed, its data key wrapped.
///
/// A plain record with public fields: it is the storage shape, carries no
/// rule of its own, and only the service turns it into a [`Ballot`](crate::domain::Ballot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BallotRecord {
    /// The ballot's id.
    pub id: BallotId,
    /// Who created it, when known.
    pub owner: Option<OwnerId>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When voting opens.
    pub starts_at: OffsetDateTime,
    /// When voting closes by itself, if ever.
    pub ends_at: Option<OffsetDateTime>,
    /// When its owner closed it early, if they did.
    pub closed_at: Option<OffsetDateTime>,
    /// Whether voters may write in options.
    pub allow_write_in: bool,
    /// Who may vote, whether votes may change, when results show.
    pub settings: BallotSettings,
    /// How voters choose and how choices are counted.
    pub method: BallotMethod,
    /// The ballot's data key, wrapped by the key wrapper.
    pub wrapped_key: WrappedKey,
    /// The sealed measure.
    pub measure: Sealed,
    /// Every option, predefined and written in, in id order.
    pub options: Vec<OptionRecord>,
}

/// One option as storage holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionRecord {
    /// The option's number within its ballot.
    pub id: OptionId,
    /// The sealed label.
    pub label: Sealed,
    /// The keyed hash that makes labels comparable without decrypting them.
    pub label_key: LabelKey,
    /// True for an option a voter wrote in.
    pub write_in: bool,
}

/// A window of a listing: at most `limit` items, after skipping `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// How many items to skip.
    pub offset: u64,
    /// The most items to return.
    pub limit: u32,
}

impl Page {
    /// Page `number` (from 1) of `size` items; `None` when it lies beyond
    /// any listing that could exist (its offset overflows).
    pub fn numbered(number: u32, size: u32) -> Option<Self> {
        let offset = u64::from(number.checked_sub(1)?).checked_mul(u64::from(size))?;
        Some(Self {
            offset,
            limit: size,
        })
    }
}

/// A vote to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVote {
    /// The ballot voted on.
    pub ballot_id: BallotId,
    /// Who voted, as a keyed hash: the identity a new vote is held by.
    pub voter: VoterHash,
    /// The other identities the voter presents (the browser a signed-in
    /// account votes from), as keyed hashes. A vote held by, or aliased to,
    /// any of `voter` and `aliases` is this voter's vote; recording links
    /// every one of them that has none to the vote.
    pub aliases: Vec<VoterHash>,
    /// What they chose, in order: one option for a single-choice ballot,
    /// the approved options for an approval ballot (a write-in among
    /// them), the ranking, most preferred first, for a ranked one.
    pub choice: Vec<VoteTarget>,
    /// When the vote was cast.
    pub cast_at: OffsetDateTime,
    /// Whether a voter who already voted may move their vote to this choice
    /// (the ballot allows vote changes).
    pub allow_change: bool,
    /// The receipt this vote gets if it is recorded as new or changed;
    /// storage refuses one its ballot has already given
    /// ([`RecordVoteError::ReceiptTaken`]).
    pub receipt: ReceiptCode,
    /// The invitation the vote is cast by, on an invite-only ballot:
    /// refused once revoked, marked used once a vote is recorded.
    pub invitation: Option<InvitationId>,
}

/// An option a vote counts toward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoteTarget {
    /// An option the ballot already has.
    Existing(OptionId),
    /// A write-in: counts toward the ballot's option with the same
    /// [`label_key`](OptionRecord::label_key) if there is one, and is added
    /// as this new option otherwise.
    WriteIn(OptionRecord),
}

/// A vote made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedVote {
    /// The options the vote was counted toward (an existing one where a
    /// write-in merged into it): a ranking in rank order, a set in id order.
    pub choice: Vec<OptionId>,
    /// The ballot's tally including this vote, with its sequence number.
    pub tally: Tally,
    /// The choice the voter's vote was moved from, when this changed an
    /// earlier vote.
    pub changed_from: Option<Vec<OptionId>>,
    /// The receipt of the voter's vote as it now stands: the new one for a
    /// new or changed vote (or one stored before receipts existed), the
    /// standing one when the same choice was made again.
    pub receipt: ReceiptCode,
}

/// A voter link as storage holds it: its token hashed, its label sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationRecord {
    /// The ballot it lets one person vote on.
    pub ballot_id: BallotId,
    /// Its number within the ballot.
    pub id: InvitationId,
    /// The keyed hash of its token.
    pub token_hash: InvitationHash,
    /// The owner's label, sealed under the ballot's data key.
    pub label: Option<Sealed>,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// When a vote was first recorded with it.
    pub used_at: Option<OffsetDateTime>,
    /// When the owner revoked it.
    pub revoked_at: Option<OffsetDateTime>,
}

/// A voter link to store: storage numbers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvitation {
    /// The keyed hash of its token.
    pub token_hash: InvitationHash,
    /// The owner's label, sealed under the ballot's data key.
    pub label: Option<Sealed>,
    /// When it is issued.
    pub created_at: OffsetDateTime,
}

/// What revoking a voter link did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// It is revoked (now, or it already was).
    Revoked,
    /// A vote was cast with it: it stays valid.
    Used,
    /// The ballot has no such link.
    NotFound,
}

/// Every counted vote of a ballot with its receipt, and the sequence of
/// the tally they make, read at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bulletin {
    /// The sequence number of the tally these rows make.
    pub tally_seq: u64,
    /// The counted votes, sorted by receipt.
    pub rows: Vec<BulletinRow>,
}

/// Durable storage of sealed ballots, votes and tallies.
///
/// The repository is the last line of correctness: even with no lock held,
/// it records at most one vote per voter per ballot and at most one option
/// per label key, atomically.
#[async_trait]
pub trait BallotRepository: Send + Sync + 'static {
    /// Stores a new ballot with a zero tally (sequence 0).
    ///
    /// # Errors
    /// Implementations MUST return [`RepositoryError::Conflict`] when a
    /// ballot with the same id exists, and [`RepositoryError::Unavailable`]
    /// when storage cannot be reached.
    async fn insert_ballot(&self, ballot: &BallotRecord) -> Result<(), RepositoryError>;

    /// The ballot with `id`, or `None` when there is none.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when storage cannot be reached.
    async fn ballot(&self, id: &BallotId) -> Result<Option<BallotRecord>, RepositoryError>;

    /// The ballots `owner` created, newest first (ties by id, descending),
    /// in the window `page` names: an owner may have thousands, and a
    /// listing must cost what one page shows, not what the owner has.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when storage cannot be reached.
    async fn ballots_owned_by(
        &self,
        owner: &OwnerId,
        page: Page,
    ) -> Result<Vec<BallotRecord>, RepositoryError>;

    /// Records `vote` and returns the tally that includes it, its sequence
    /// one more than the tally before. Nothing is returned before the vote
    /// is durable.
    ///
    /// A voter is every identity it presents (`vote.voter` and
    /// `vote.aliases`): their vote is the one held by, or aliased to, the
    /// first of them (in that order) that has one. When they have none, a
    /// new vote is held by `vote.voter`. Whether the vote is new, changed
    /// or the same again, every presented identity that had no vote
    /// becomes an alias of it, so any of them voting later is this voter.
    ///
    /// When the voter already voted and `vote.allow_change` is set, their
    /// vote moves to the new choice in one atomic step (the old options and
    /// choice lose one, the new ones gain one, the sequence advances; no
    /// reader ever sees both or neither counted). Making the same choice
    /// again changes nothing and returns the current tally.
    ///
    /// The rules are [`decide_batch`](crate::recording::decide_batch)'s: a
    /// repository reads what it needs and executes that decision.
    ///
    /// # Errors
    /// Implementations MUST return, recording nothing:
    /// [`RecordVoteError::BallotNotFound`] when the ballot does not exist;
    /// [`RecordVoteError::BallotClosed`] when it was closed at or before
    /// the vote's `cast_at` (so a close on another instance holds even for
    /// a voter whose instance has not heard of it yet);
    /// [`RecordVoteError::AlreadyVoted`] when any identity of this voter
    /// has a vote on it and `allow_change` is not set;
    /// [`RecordVoteError::UnknownOption`] when an existing-option target is
    /// not one of the ballot's options, or the choice is empty;
    /// [`RecordVoteError::OptionIdTaken`] when a new write-in's id is taken
    /// by an option with another label key, or is beyond the ids storage
    /// can hold;
    /// [`RecordVoteError::Unavailable`] when storage cannot be reached.
    async fn record_vote(&self, vote: &NewVote) -> Result<RecordedVote, RecordVoteError>;

    /// Records several votes of one ballot as one unit of durability (one
    /// transaction, one flush to disk), each with its own outcome, exactly
    /// as if [`record_vote`](BallotRepository::record_vote) had been called
    /// for each in order. This is what makes group commit pay: the cost of
    /// making a vote durable is shared by every vote of the batch.
    ///
    /// The default calls `record_vote` once per vote; storage with a
    /// per-transaction flush should override it.
    ///
    /// # Errors
    /// Per vote, as [`record_vote`](BallotRepository::record_vote); when the
    /// batch as a whole fails, every vote carries that failure and none was
    /// recorded.
    async fn record_votes(&self, votes: &[NewVote]) -> Vec<Result<RecordedVote, RecordVoteError>> {
        let mut outcomes = Vec::with_capacity(votes.len());
        for vote in votes {
            outcomes.push(self.record_vote(vote).await);
        }
        outcomes
    }

    /// The choice of the vote `voter` holds, or is an alias of, on
    /// `ballot`, if there is one.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when storage cannot be reached.
    async fn vote_of(
        &self,
        ballot: &BallotId,
        voter: &VoterHash,
    ) -> Result<Option<Vec<OptionId>>, RepositoryError>;

    /// The current tally of `id`, with its choices, or `None` when there is
    /// no such ballot.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when storage cannot be reached.
    async fn tally(&self, id: &BallotId) -> Result<Option<Tally>, RepositoryError>;

    /// Closes voting at `at` unless it closed earlier; returns `false` when
    /// there is no such ballot.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when storage cannot be reached.
    async fn close_ballot(
        &self,
        id: &BallotId,
        at: OffsetDateTime,
    ) -> Result<bool, RepositoryError>;

    /// Deletes the ballot, its options and votes; returns `false` when there
    /// was no such ballot. The wrapped data key MUST be gone first (or in
    /// the same transaction), so no partial delete leaves readable rows.
    /// An implementation that owns its files SHOULD also scrub them, so no
    /// byte of the deleted rows stays in free space or a journal.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when storage cannot be reached.
    async fn delete_ballot(&self, id: &BallotId) -> Result<bool, RepositoryError>;

    /// Stores `invitations` as the ballot's next voter links, numbered on
    /// from its last, and returns their numbers in order; all or none.
    ///
    /// # Errors
    /// [`AddInvitationsError::BallotNotFound`] when there is no such
    /// ballot; [`AddInvitationsError::LimitReached`] when the ballot would
    /// then have more than `max_per_ballot` links;
    /// [`AddInvitationsError::Unavailable`] when storage cannot be reached.
    async fn add_invitations(
        &self,
        ballot: &BallotId,
        invitations: &[NewInvitation],
        max_per_ballot: u32,
    ) -> Result<Vec<InvitationId>, AddInvitationsError>;

    /// The ballot's voter links, in number order.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when storage cannot be reached.
    async fn invitations(
        &self,
        ballot: &BallotId,
    ) -> Result<Vec<InvitationRecord>, RepositoryError>;

    /// The voter link whose token hashes to `token_hash`, if any (on any ballot).
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when storage cannot be reached.
    async fn invitation(
        &self,
        token_hash: &InvitationHash,
    ) -> Result<Option<InvitationRecord>, RepositoryError>;

    /// Revokes the ballot's link `id` at `at` unless a vote was cast with
    /// it: atomically with recording, so a link is never both revoked and used.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when storage cannot be reached.
    async fn revoke_invitation(
        &self,
        ballot: &BallotId,
        id: InvitationId,
        at: OffsetDateTime,
    ) -> Result<Revoked, RepositoryError>;

    /// Whether `receipt` is a counted vote's on `ballot`, a replaced one's,
    /// or neither.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when storage cannot be reached.
    async fn receipt_status(
        &self,
        ballot: &BallotId,
        receipt: &ReceiptCode,
    ) -> Result<ReceiptStatus, RepositoryError>;

    /// Every counted vote of `ballot` as (receipt, choice), sorted by
    /// receipt, with the sequence of the tally they make, read at one
    /// instant; `None` when there is no such ballot. A vote stored before
    /// receipts existed has none and is left out.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when storage cannot be reached.
    async fn bulletin(&self, ballot: &BallotId) -> Result<Option<Bulletin>, RepositoryError>;

    /// Makes every ballot `from` owns `to`'s (a guest's ballots, when they
    /// sign in), and returns how many moved.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when storage cannot be reached.
    async fn transfer_ballots(&self, from: &OwnerId, to: &OwnerId) -> Result<u64, RepositoryError>;

    /// Checks storage is reachable and accepts writes, for readiness probes:
    /// storage that would refuse a vote (a full disk, a read-only server)
    /// is not ready.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when it is unreachable or a write
    /// would fail.
    async fn ping(&self) -> Result<(), RepositoryError> {
        Ok(())
    }
}

/// Why a repository operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepositoryError {
    /// A ballot with that id already exists.
    #[error("a ballot with that id already exists")]
    Conflict,
    /// Storage cannot be reached.
    #[error("storage is unavailable")]
    Unavailable(#[source] BoxError),
}

/// Why a vote was not recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordVoteError {
    /// There is no such ballot.
    #[error("no such ballot")]
    BallotNotFound,
    /// The ballot was closed at or before the vote was cast.
    #[error("the ballot is closed")]
    BallotClosed,
    /// This voter already voted on the ballot.
    #[error("the voter already voted")]
    AlreadyVoted,
    /// The target option is not one of the ballot's.
    #[error("no such option on the ballot")]
    UnknownOption,
    /// A new write-in's id is taken by a different option.
    #[error("the write-in's option id is taken")]
    OptionIdTaken,
    /// The vote's receipt was already given on this ballot.
    #[error("the receipt was already given on this ballot")]
    ReceiptTaken,
    /// The invitation the vote is cast by was revoked.
    #[error("the invitation was revoked")]
    InvitationRevoked,
    /// Storage cannot be reached.
    #[error("storage is unavailable")]
    Unavailable(#[source] BoxError),
}

/// Why voter links were not stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddInvitationsError {
    /// There is no such ballot.
    #[error("no such ballot")]
    BallotNotFound,
    /// The ballot would have more links than it may.
    #[error("the ballot has as many voter links as it may")]
    LimitReached,
    /// Storage cannot be reached.
    #[error("storage is unavailable")]
    Unavailable(#[source] BoxError),
}
