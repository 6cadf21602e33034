//! The domain: ballots, options, votes and tallies, and the rules that make them valid.
//!
//! Every type here has private fields and a validating constructor, so an
//! invalid ballot or vote cannot be built. None is serializable: front ends
//! own their wire formats and convert at the edge.

mod account;
mod ballot;
mod ids;
mod invitation;
mod ranked;
mod receipt;
mod schedule;
mod settings;
mod tally;
mod text;
mod validation;

pub use account::{Account, Email, Identity, InvalidEmail, SessionHash, SessionToken};
pub(crate) use ballot::BallotParts;
pub use ballot::{Ballot, BallotDraft, BallotOption, BallotRequest, MethodRequest};
pub use ids::{
    AccountId, BallotId, InvalidBallotId, OptionId, OwnerId, VoterHash, VoterHasher, VoterId,
};
pub use invitation::{
    INVITATION_LABEL_MAX_CHARS, Invitation, InvitationHash, InvitationId, InvitationLabel,
    InvitationToken, IssuedInvitation, MAX_INVITATIONS_PER_BALLOT, MAX_INVITATIONS_PER_REQUEST,
    parse_invitation_labels,
};
pub use ranked::{
    Condorcet, InstantRunoff, Pairwise, RankingCount, RunoffRound, condorcet, instant_runoff,
};
pub use receipt::{BulletinRow, RECEIPT_CODE_CHARS, ReceiptCode, ReceiptStatus};
pub use schedule::{
    DEFAULT_WINDOW_MINUTES, MAX_SCHEDULE_AHEAD, MAX_WINDOW_MINUTES, Schedule, StartRequest, Status,
    WindowRequest, parse_window_minutes,
};
pub use settings::{BallotMethod, BallotSettings, Eligibility, ResultsVisibility};
pub use tally::{RankedResults, ResultRow, Results, Tally, TallyEvent};
pub use text::{
    LABEL_MAX_CHARS, MAX_EMOJI_TAGS, MAX_MARKS_PER_CHARACTER, MAX_OPTIONS, MEASURE_MAX_CHARS,
    MEASURE_MIN_CHARS, Measure, OptionLabel, WriteIn, comparison_key, split_option_text,
};
pub use validation::{Field, FieldError, ValidationErrors, messages};
