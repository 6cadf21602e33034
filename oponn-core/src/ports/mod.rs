//! The ports: every piece of I/O the core needs, as a trait an adapter implements.
//!
//! The service holds each port as an `Arc<dyn Port>`. Dynamic dispatch is a
//! deliberate, project-wide choice: the composition root picks adapters from
//! configuration at run time, and a vtable call plus a boxed future is
//! noise next to the database or network round trip behind it.
//!
//! Each port has a contract suite in `oponn-testkit`; an adapter is done
//! when it passes its port's suite against the real backend.

mod accounts;
mod broadcaster;
mod clock;
mod key_wrapper;
mod lock;
mod repository;

pub use accounts::{AccountError, AccountRepository};
pub use broadcaster::{BroadcastError, Broadcaster, TallyStream};
pub use clock::{Clock, SystemClock};
pub use key_wrapper::{KeyWrapError, KeyWrapper};
pub use lock::{LockError, LockGuard, VoteLock};
pub use repository::{
    AddInvitationsError, BallotRecord, BallotRepository, Bulletin, InvitationRecord, NewInvitation,
    NewVote, OptionRecord, Page, RecordVoteError, RecordedVote, RepositoryError, Revoked,
    VoteTarget,
};

/// The cause of a dependency failure, kept for logs and never shown to users.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
