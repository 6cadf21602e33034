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
}

impl Eligibility {
    /// The stable name used in forms, the API and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Eligibility::Anyone => "anyone",
            Eligibility::SignedInOnly => "signed_in",
        }
    }

    /// Whether `voter` may vote under this eligibility: the one rule the
    /// service enforces and every page that offers a vote form shows.
    pub fn admits(self, voter: &VoterId) -> bool {
        match self {
            Eligibility::Anyone => true,
            Eligibility::SignedInOnly => voter.is_account(),
        }
    }

    /// Reads a name written by [`Eligibility::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim() {
            "anyone" => Some(Eligibility::Anyone),
            "signed_in" => Some(Eligibility::SignedInOnly),
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
    use crate::domain::AccountId;

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
    fn names_round_trip() {
        for eligibility in [Eligibility::Anyone, Eligibility::SignedInOnly] {
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
