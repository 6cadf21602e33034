//! A ballot's settings: who may vote, whether votes may change, and when
//! results may be seen. Chosen at creation, fixed afterwards.

use super::ids::VoterId;

/// Who may vote on a ballot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Eligibility {
    /// Anyone with the link: one vote per browser (or per account, when
    /// signed in).
    #[default]
    Anyone,
    /// Signed-in accounts only: one vote per account, whatever the browser.
    SignedInOnly,
    /// Holders of the owner's personal voting links only: one vote per
    /// link, whatever the browser or account that casts it.
    Invited,
}

/// How a ballot is voted and counted. Chosen at creation, fixed afterwards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum BallotMethod {
    /// One option per voter (or a write-in): today's straw poll.
    #[default]
    Single,
    /// Each voter approves between `min_choices` and `max_choices`
    /// options; an option's count is the number of voters approving it.
    Approval {
        /// The fewest options a voter must approve (at least 1).
        min_choices: u32,
        /// The most options a voter may approve (at most the ballot's
        /// predefined options; a write-in counts as one).
        max_choices: u32,
    },
    /// Each voter ranks one or more options, most preferred first;
    /// counted by instant-runoff, with the Condorcet check beside it.
    Ranked,
}

impl BallotMethod {
    /// The stable name used in forms, the API and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            BallotMethod::Single => "single",
            BallotMethod::Approval { .. } => "approval",
            BallotMethod::Ranked => "ranked",
        }
    }

    /// Rebuilds a stored method from its name and, for approval, its bounds.
    pub fn from_parts(
        name: &str,
        min_choices: Option<u32>,
        max_choices: Option<u32>,
    ) -> Option<Self> {
        match (name, min_choices, max_choices) {
            ("single", _, _) => Some(BallotMethod::Single),
            ("ranked", _, _) => Some(BallotMethod::Ranked),
            ("approval", Some(min_choices), Some(max_choices)) => Some(BallotMethod::Approval {
                min_choices,
                max_choices,
            }),
            _ => None,
        }
    }

    /// The fewest options a voter must approve, for approval ballots.
    pub fn min_choices(self) -> Option<u32> {
        match self {
            BallotMethod::Approval { min_choices, .. } => Some(min_choices),
            _ => None,
        }
    }

    /// The most options a voter may approve, for approval ballots.
    pub fn max_choices(self) -> Option<u32> {
        match self {
            BallotMethod::Approval { max_choices, .. } => Some(max_choices),
            _ => None,
        }
    }

    /// Whether a vote's choice is a ranking, whose order matters and whose
    /// first option alone counts toward the per-option counts (first
    /// preferences); else a set (or one option) each of whose options counts.
    pub fn is_ranked(self) -> bool {
        matches!(self, BallotMethod::Ranked)
    }
}

/// When a ballot's results may be seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ResultsVisibility {
    /// Always, by anyone with the link.
    #[default]
    Always,
    /// By a voter once they have voted; by everyone once voting ends.
    AfterVoting,
    /// By everyone, owner included, once voting ends; until then by nobody.
    AfterClose,
}

/// The settings of one ballot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct BallotSettings {
    /// Who may vote.
    pub eligibility: Eligibility,
    /// Whether a voter may change their vote while the ballot is open (the
    /// last choice counts).
    pub allow_vote_change: bool,
    /// When results may be seen.
    pub results_visibility: ResultsVisibility,
    /// Whether every counted vote is published as (receipt, choice) on the
    /// ballot's bulletin, under the same rules as the results: anyone can
    /// then recount, and a voter can show others how they voted.
    pub publish_bulletin: bool,
}

impl Eligibility {
    /// The stable name used in forms, the API and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Eligibility::Anyone => "anyone",
            Eligibility::SignedInOnly => "signed_in",
            Eligibility::Invited => "invited",
        }
    }

    /// Whether `voter` may vote under this eligibility: the one rule the
    /// service enforces and every page that offers a vote form shows.
    pub fn admits(self, voter: &VoterId) -> bool {
        match self {
            Eligibility::Anyone => true,
            Eligibility::SignedInOnly => voter.is_account(),
            Eligibility::Invited => voter.invitation().is_some(),
        }
    }

    /// Reads a name written by [`Eligibility::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim() {
            "anyone" => Some(Eligibility::Anyone),
            "signed_in" => Some(Eligibility::SignedInOnly),
            "invited" => Some(Eligibility::Invited),
            _ => None,
        }
    }
}

impl ResultsVisibility {
    /// The stable name used in forms, the API and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultsVisibility::Always => "always",
            ResultsVisibility::AfterVoting => "after_voting",
            ResultsVisibility::AfterClose => "after_close",
        }
    }

    /// Reads a name written by [`ResultsVisibility::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim() {
            "always" => Some(ResultsVisibility::Always),
            "after_voting" => Some(ResultsVisibility::AfterVoting),
            "after_close" => Some(ResultsVisibility::AfterClose),
            _ => None,
        }
    }

    /// Whether results may be seen, given whether the ballot has ended and
    /// whether the viewer has voted.
    pub fn allows(self, ended: bool, viewer_voted: bool) -> bool {
        match self {
            ResultsVisibility::Always => true,
            ResultsVisibility::AfterVoting => ended || viewer_voted,
            ResultsVisibility::AfterClose => ended,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountId, InvitationId};

    #[test]
    fn signed_in_only_admits_accounts_and_not_browsers() {
        let browser = VoterId::new("browser");
        let account = VoterId::account(&AccountId::new("a")).from_browser(&browser);
        assert!(Eligibility::Anyone.admits(&browser));
        assert!(Eligibility::Anyone.admits(&account));
        assert!(!Eligibility::SignedInOnly.admits(&browser));
        assert!(Eligibility::SignedInOnly.admits(&account));
    }

    #[test]
    fn invited_admits_invitations_alone() {
        let browser = VoterId::new("browser");
        let account = VoterId::account(&AccountId::new("a"));
        let invited = VoterId::invited(InvitationId::new(3));
        assert!(!Eligibility::Invited.admits(&browser));
        assert!(!Eligibility::Invited.admits(&account));
        assert!(Eligibility::Invited.admits(&invited));
        assert!(!Eligibility::SignedInOnly.admits(&invited));
    }

    #[test]
    fn methods_round_trip_through_their_stored_parts() {
        for method in [
            BallotMethod::Single,
            BallotMethod::Ranked,
            BallotMethod::Approval {
                min_choices: 1,
                max_choices: 3,
            },
        ] {
            assert_eq!(
                BallotMethod::from_parts(
                    method.as_str(),
                    method.min_choices(),
                    method.max_choices()
                ),
                Some(method)
            );
        }
        assert_eq!(BallotMethod::from_parts("approval", Some(1), None), None);
        assert_eq!(BallotMethod::from_parts("borda", None, None), None);
    }

    #[test]
    fn names_round_trip() {
        for eligibility in [
            Eligibility::Anyone,
            Eligibility::SignedInOnly,
            Eligibility::Invited,
        ] {
            assert_eq!(Eligibility::parse(eligibility.as_str()), Some(eligibility));
        }
        for visibility in [
            ResultsVisibility::Always,
            ResultsVisibility::AfterVoting,
            ResultsVisibility::AfterClose,
        ] {
            assert_eq!(
                ResultsVisibility::parse(visibility.as_str()),
                Some(visibility)
            );
        }
        assert_eq!(Eligibility::parse("everyone"), None);
    }

    #[test]
    fn visibility_rules() {
        use ResultsVisibility::*;
        let cases = [
            (Always, false, false, true),
            (AfterVoting, false, false, false),
            (AfterVoting, false, true, true),
            (AfterVoting, true, false, true),
            (AfterClose, false, true, false),
            (AfterClose, true, false, true),
        ];
        for (visibility, ended, voted, allowed) in cases {
            assert_eq!(
                visibility.allows(ended, voted),
                allowed,
                "{visibility:?} {ended} {voted}"
            );
        }
    }
}
