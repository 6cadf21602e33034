//! One error enum per service operation, with the cases a caller acts on.

use std::borrow::Cow;
use std::fmt;

use crate::domain::{BallotMethod, Field, FieldError, ValidationErrors, messages};
use crate::ports::{
    BoxError, BroadcastError, KeyWrapError, LockError, RecordVoteError, RepositoryError,
};

/// The dependency that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Dependency {
    /// The ballot repository (the database).
    Storage,
    /// The per-ballot lock.
    Lock,
    /// The broadcaster.
    Broadcast,
    /// The key wrapper (KMS or the key file).
    Keys,
}

impl Dependency {
    /// A stable lowercase name, for readiness reports and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Dependency::Storage => "storage",
            Dependency::Lock => "lock",
            Dependency::Broadcast => "broadcast",
            Dependency::Keys => "keys",
        }
    }
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dependency failed; the operation may succeed if retried later.
/// The cause is for logs, never for users.
#[derive(Debug, thiserror::Error)]
#[error("{dependency} is unavailable")]
pub struct Unavailable {
    dependency: Dependency,
    #[source]
    source: BoxError,
}

impl Unavailable {
    /// `dependency` failed because of `source`; front ends use it too, for
    /// a failure of their own plumbing around a call (a task that died).
    pub fn new(dependency: Dependency, source: impl Into<BoxError>) -> Self {
        Self {
            dependency,
            source: source.into(),
        }
    }

    /// Which dependency failed.
    pub fn dependency(&self) -> Dependency {
        self.dependency
    }
}

impl From<RepositoryError> for Unavailable {
    fn from(error: RepositoryError) -> Self {
        Self::new(Dependency::Storage, error)
    }
}

impl From<KeyWrapError> for Unavailable {
    fn from(error: KeyWrapError) -> Self {
        Self::new(Dependency::Keys, error)
    }
}

impl From<LockError> for Unavailable {
    fn from(error: LockError) -> Self {
        Self::new(Dependency::Lock, error)
    }
}

impl From<BroadcastError> for Unavailable {
    fn from(error: BroadcastError) -> Self {
        Self::new(Dependency::Broadcast, error)
    }
}

/// Why a ballot was not created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateBallotError {
    /// The request broke creation rules; each field names its message.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// A dependency failed.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// Why a ballot, its tally or its updates could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BallotError {
    /// There is no such ballot (or it was deleted).
    #[error("ballot not found")]
    NotFound,
    /// A dependency failed.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// Why a vote was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CastVoteError {
    /// There is no such ballot.
    #[error("ballot not found")]
    NotFound,
    /// Voting has not started.
    #[error("{}", messages::NOT_STARTED)]
    NotOpenYet,
    /// Voting has ended.
    #[error("{}", messages::ENDED)]
    Ended,
    /// The option is not one of the ballot's.
    #[error("{}", messages::INVALID_OPTION)]
    InvalidOption,
    /// The ballot does not take write-ins.
    #[error("{}", messages::WRITE_INS_NOT_ALLOWED)]
    WriteInsNotAllowed,
    /// The write-in text broke a rule.
    #[error(transparent)]
    InvalidWriteIn(FieldError),
    /// The write-in would add an option to a ballot that already has
    /// [`ServiceSettings::max_write_in_options`](crate::ServiceSettings::max_write_in_options)
    /// written-in options; one matching an existing option still counts.
    #[error("this ballot has reached its limit of {limit} write-in options")]
    WriteInLimitReached {
        /// The limit in force.
        limit: usize,
    },
    /// An approval vote chose fewer options than the ballot asks.
    #[error("{}", messages::select_at_least(*min))]
    TooFewChoices {
        /// The fewest the ballot takes.
        min: u32,
    },
    /// An approval vote chose more options than the ballot allows.
    #[error("{}", messages::select_at_most(*max))]
    TooManyChoices {
        /// The most the ballot takes.
        max: u32,
    },
    /// A choice of another shape than the ballot's method takes (several
    /// options on a single-choice ballot, one on an approval ballot…).
    #[error("{}", messages::wrong_shape(method.as_str()))]
    WrongShape {
        /// The ballot's method.
        method: BallotMethod,
    },
    /// A ranked vote ranked nothing.
    #[error("{}", messages::RANK_AT_LEAST_ONE)]
    NothingRanked,
    /// A ranked vote ranked an option twice.
    #[error("{}", messages::RANKED_TWICE)]
    RankedTwice,
    /// A ranked form gave one rank to two options.
    #[error("{}", messages::RANK_GIVEN_TWICE)]
    RankGivenTwice,
    /// This voter already voted on the ballot.
    #[error("{}", messages::ALREADY_VOTED)]
    AlreadyVoted,
    /// The ballot takes votes from signed-in accounts only.
    #[error("{}", messages::SIGN_IN_REQUIRED)]
    SignInRequired,
    /// The ballot takes votes from holders of its voter links only.
    #[error("{}", messages::INVITED_ONLY)]
    InvitationRequired,
    /// The voter link the vote is cast by was revoked (or is not this
    /// ballot's).
    #[error("{}", messages::LINK_NOT_VALID)]
    InvitationNotValid,
    /// A dependency failed; nothing was recorded.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl CastVoteError {
    /// The message a voter sees, for every refusal that is theirs to act on;
    /// `None` for a missing ballot or a failed dependency.
    pub fn user_message(&self) -> Option<Cow<'static, str>> {
        let message = match self {
            CastVoteError::NotOpenYet => messages::NOT_STARTED,
            CastVoteError::Ended => messages::ENDED,
            CastVoteError::InvalidOption => messages::INVALID_OPTION,
            CastVoteError::WriteInsNotAllowed => messages::WRITE_INS_NOT_ALLOWED,
            CastVoteError::InvalidWriteIn(error) => {
                return Some(Cow::Owned(error.message().to_owned()));
            }
            CastVoteError::WriteInLimitReached { .. } => messages::WRITE_IN_LIMIT_REACHED,
            CastVoteError::TooFewChoices { min } => {
                return Some(Cow::Owned(messages::select_at_least(*min)));
            }
            CastVoteError::TooManyChoices { max } => {
                return Some(Cow::Owned(messages::select_at_most(*max)));
            }
            CastVoteError::WrongShape { method } => messages::wrong_shape(method.as_str()),
            CastVoteError::NothingRanked => messages::RANK_AT_LEAST_ONE,
            CastVoteError::RankedTwice => messages::RANKED_TWICE,
            CastVoteError::RankGivenTwice => messages::RANK_GIVEN_TWICE,
            CastVoteError::AlreadyVoted => messages::ALREADY_VOTED,
            CastVoteError::SignInRequired => messages::SIGN_IN_REQUIRED,
            CastVoteError::InvitationRequired => messages::INVITED_ONLY,
            CastVoteError::InvitationNotValid => messages::LINK_NOT_VALID,
            CastVoteError::NotFound | CastVoteError::Unavailable(_) => return None,
        };
        Some(Cow::Borrowed(message))
    }

    /// The field a refusal belongs to: the write-in's, the choice's (for
    /// the rules of several choices or a ranking), the option's otherwise.
    pub fn field(&self) -> Field {
        match self {
            CastVoteError::WriteInsNotAllowed
            | CastVoteError::InvalidWriteIn(_)
            | CastVoteError::WriteInLimitReached { .. } => Field::WriteIn,
            _ => Field::Choice,
        }
    }
}

impl From<RecordVoteError> for CastVoteError {
    fn from(error: RecordVoteError) -> Self {
        match error {
            RecordVoteError::BallotNotFound => CastVoteError::NotFound,
            RecordVoteError::BallotClosed => CastVoteError::Ended,
            RecordVoteError::AlreadyVoted => CastVoteError::AlreadyVoted,
            RecordVoteError::UnknownOption => CastVoteError::InvalidOption,
            RecordVoteError::InvitationRevoked => CastVoteError::InvitationNotValid,
            other => CastVoteError::Unavailable(Unavailable::new(Dependency::Storage, other)),
        }
    }
}

/// Why an owner's action (close early, delete) was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OwnerActionError {
    /// There is no such ballot.
    #[error("ballot not found")]
    NotFound,
    /// The requester is not the ballot's owner.
    #[error("only the ballot's owner may do this")]
    Forbidden,
    /// A dependency failed.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl From<BallotError> for OwnerActionError {
    fn from(error: BallotError) -> Self {
        match error {
            BallotError::NotFound => OwnerActionError::NotFound,
            BallotError::Unavailable(error) => OwnerActionError::Unavailable(error),
        }
    }
}
