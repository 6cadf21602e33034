//! JSON shapes more than one channel sends: the tally, as the API's
//! replies and the JSON live stream (rendered once per update by
//! [`crate::live`]) carry it.

use oponn_core::domain::{Ballot, Condorcet, InstantRunoff, OptionId, Results};
use poem_openapi::Object;

/// A ballot's tally.
#[derive(Debug, Clone, Object)]
pub(crate) struct TallyBody {
    /// The ballot's id.
    ballot_id: String,
    /// Grows by one with each vote; the newest tally has the largest.
    pub(crate) seq: u64,
    /// The number of voters.
    total: u64,
    /// Every option with its count: votes (single), voters approving it
    /// (approval), first preferences (ranked).
    options: Vec<TallyRow>,
    /// For a ranked ballot: the instant-runoff count, round by round.
    #[oai(nullable)]
    instant_runoff: Option<RunoffBody>,
    /// For a ranked ballot: the Condorcet check.
    #[oai(nullable)]
    condorcet: Option<CondorcetBody>,
}

impl TallyBody {
    /// The tally of `results` on `ballot`.
    pub(crate) fn new(ballot: &Ballot, results: &Results) -> Self {
        Self {
            ballot_id: ballot.id().to_string(),
            seq: results.seq,
            total: results.total,
            options: results
                .rows
                .iter()
                .map(|row| TallyRow {
                    option_id: row.option_id.get(),
                    label: row.label.clone(),
                    count: row.count,
                    percent: row.percent,
                    leading: row.leading,
                    tied: row.tied,
                })
                .collect(),
            instant_runoff: results
                .ranked
                .as_ref()
                .map(|ranked| RunoffBody::from(&ranked.instant_runoff)),
            condorcet: results
                .ranked
                .as_ref()
                .map(|ranked| CondorcetBody::from(&ranked.condorcet)),
        }
    }
}

/// One option's count.
#[derive(Debug, Clone, Object)]
pub(crate) struct TallyRow {
    /// The option's id.
    option_id: u32,
    /// Its text.
    label: String,
    /// Votes for it; for an approval ballot the voters approving it, for a
    /// ranked one its first preferences.
    count: u64,
    /// Its share of all voters, 0 to 100 (approval shares add up to more).
    percent: f64,
    /// True when it alone has the most votes (at least one).
    leading: bool,
    /// True when it shares the most votes (at least one) with another
    /// option: a tie, with no option leading.
    tied: bool,
}

/// An instant-runoff count.
#[derive(Debug, Clone, Object)]
pub(crate) struct RunoffBody {
    /// The rounds, first to last.
    rounds: Vec<RoundBody>,
    /// The option with more than half of the active ballots in the last
    /// round, if one has.
    #[oai(nullable)]
    winner: Option<u32>,
    /// When there is no winner: the options tied in the last round.
    tied: Vec<u32>,
}

/// One instant-runoff round.
#[derive(Debug, Clone, Object)]
pub(crate) struct RoundBody {
    /// Every option still standing, with the ballots whose top standing
    /// choice it is (zeros included).
    counts: Vec<RoundCount>,
    /// Ballots with no standing option left.
    exhausted: u64,
    /// The option eliminated after this round (none in the last round).
    eliminated: Vec<u32>,
}

/// One option's votes in a round.
#[derive(Debug, Clone, Object)]
pub(crate) struct RoundCount {
    /// The option's id.
    option_id: u32,
    /// Its votes in the round.
    count: u64,
}

/// The Condorcet check of a ranked ballot.
#[derive(Debug, Clone, Object)]
pub(crate) struct CondorcetBody {
    /// Every pair of options, with the ballots ranking each above the
    /// other (a ranked option is above every unranked one).
    pairwise: Vec<PairBody>,
    /// The option that beats every other head to head, if one does.
    #[oai(nullable)]
    winner: Option<u32>,
    /// The Schulze order (winning strength): groups of options, best
    /// first; the options of a group are tied.
    schulze_ranking: Vec<Vec<u32>>,
}

/// One pair's head-to-head counts.
#[derive(Debug, Clone, Object)]
pub(crate) struct PairBody {
    /// The option earlier in the ballot's option order.
    a: u32,
    /// The option later in it.
    b: u32,
    /// Ballots ranking `a` above `b`.
    a_over_b: u64,
    /// Ballots ranking `b` above `a`.
    b_over_a: u64,
}

fn ids(options: &[OptionId]) -> Vec<u32> {
    options.iter().map(|option| option.get()).collect()
}

impl From<&InstantRunoff> for RunoffBody {
    fn from(count: &InstantRunoff) -> Self {
        Self {
            rounds: count
                .rounds
                .iter()
                .map(|round| RoundBody {
                    counts: round
                        .counts
                        .iter()
                        .map(|&(option, count)| RoundCount {
                            option_id: option.get(),
                            count,
                        })
                        .collect(),
                    exhausted: round.exhausted,
                    eliminated: round.eliminated.iter().map(|option| option.get()).collect(),
                })
                .collect(),
            winner: count.winner.map(OptionId::get),
            tied: ids(&count.tied),
        }
    }
}

impl From<&Condorcet> for CondorcetBody {
    fn from(check: &Condorcet) -> Self {
        Self {
            pairwise: check
                .pairwise
                .iter()
                .map(|pair| PairBody {
                    a: pair.a.get(),
                    b: pair.b.get(),
                    a_over_b: pair.a_over_b,
                    b_over_a: pair.b_over_a,
                })
                .collect(),
            winner: check.winner.map(OptionId::get),
            schulze_ranking: check
                .schulze_ranking
                .iter()
                .map(|group| ids(group))
                .collect(),
        }
    }
}
