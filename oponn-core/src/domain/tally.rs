//! Tallies: vote counts per option and per distinct choice, and the
//! results people read.

use std::collections::BTreeMap;

use super::ballot::Ballot;
use super::ids::{BallotId, OptionId};
use super::ranked::{Condorcet, InstantRunoff, condorcet, instant_runoff};
use super::settings::BallotMethod;

/// Vote counts at one moment of a ballot's life: per option (votes for a
/// single-choice ballot, approvals for an approval ballot, first
/// preferences for a ranked one) and per distinct choice (each set of
/// approved options, or each ranking, with how many voters made it).
///
/// `seq` grows by one with every accepted vote, so of two tallies of one
/// ballot the one with the larger `seq` is the newer. Tallies count option
/// ids, never text, so they can travel through pub/sub unencrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    seq: u64,
    counts: BTreeMap<OptionId, u64>,
    choices: BTreeMap<Vec<OptionId>, u64>,
}

impl Tally {
    /// A tally at sequence `seq` from `(option, count)` pairs, with no
    /// choices recorded: each vote counted one option.
    pub fn new(seq: u64, counts: impl IntoIterator<Item = (OptionId, u64)>) -> Self {
        Self {
            seq,
            counts: counts.into_iter().filter(|(_, count)| *count > 0).collect(),
            choices: BTreeMap::new(),
        }
    }

    /// This tally with its distinct choices and their voters (choices
    /// with no voter are left out).
    #[must_use]
    pub fn with_choices(mut self, choices: impl IntoIterator<Item = (Vec<OptionId>, u64)>) -> Self {
        self.choices = choices
            .into_iter()
            .filter(|(_, count)| *count > 0)
            .collect();
        self
    }

    /// The tally that `votes` make at sequence `seq`, each vote a whole
    /// choice, counted as `method` counts: every option of a set, the first
    /// of a ranking. This is how anyone recounts a published bulletin.
    pub fn recount<'v>(
        seq: u64,
        method: BallotMethod,
        votes: impl IntoIterator<Item = &'v [OptionId]>,
    ) -> Self {
        let mut counts: BTreeMap<OptionId, u64> = BTreeMap::new();
        let mut choices: BTreeMap<Vec<OptionId>, u64> = BTreeMap::new();
        for choice in votes {
            let counted = if method.is_ranked() {
                choice.get(..1).unwrap_or_default()
            } else {
                choice
            };
            for option in counted {
                let count = counts.entry(*option).or_insert(0);
                *count = count.saturating_add(1);
            }
            let voters = choices.entry(choice.to_vec()).or_insert(0);
            *voters = voters.saturating_add(1);
        }
        Self {
            seq,
            counts,
            choices,
        }
    }

    /// The same counts under sequence number `seq`: how a close or a
    /// delete is announced to watchers.
    #[must_use]
    pub fn renumbered(&self, seq: u64) -> Self {
        Self {
            seq,
            ..self.clone()
        }
    }

    /// Each distinct choice (options in rank order for a ranking, in id
    /// order for a set) with the number of voters who made it.
    pub fn choices(&self) -> impl Iterator<Item = (&[OptionId], u64)> + '_ {
        self.choices
            .iter()
            .map(|(choice, count)| (choice.as_slice(), *count))
    }

    /// The tally's sequence number: the number of votes it counts.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Votes for `option`; 0 for an option nobody chose.
    pub fn count(&self, option: OptionId) -> u64 {
        self.counts.get(&option).copied().unwrap_or(0)
    }

    /// The number of voters: the voters of every choice, or, for a tally
    /// with no choices recorded, the votes across all options.
    pub fn total(&self) -> u64 {
        let sum = |total: u64, count: &u64| total.saturating_add(*count);
        if self.choices.is_empty() {
            self.counts.values().fold(0, sum)
        } else {
            self.choices.values().fold(0, sum)
        }
    }

    /// `(option, count)` pairs in option order, for options with a count.
    pub fn iter(&self) -> impl Iterator<Item = (OptionId, u64)> + '_ {
        self.counts.iter().map(|(id, count)| (*id, *count))
    }
}

/// A tally published for one ballot: what broadcasters carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TallyEvent {
    /// The ballot the tally belongs to.
    pub ballot_id: BallotId,
    /// The tally itself.
    pub tally: Tally,
}

/// One row of a ballot's results.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    /// The option counted.
    pub option_id: OptionId,
    /// The option's text.
    pub label: String,
    /// Votes for it.
    pub count: u64,
    /// Its share of all voters, 0.0 to 100.0 (for approval ballots the
    /// shares add up to more than 100).
    pub percent: f64,
    /// True when it alone has the most votes (at least one).
    pub leading: bool,
    /// True when it shares the most votes (at least one) with another
    /// option: a tie, shown as one, with no option leading.
    pub tied: bool,
}

/// A ballot's results: its options with their counts, shares and leaders,
/// and for a ranked ballot its two counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Results {
    /// One row per option, in the ballot's option order: votes, approvals
    /// or first preferences, with their share of all voters.
    pub rows: Vec<ResultRow>,
    /// The number of voters.
    pub total: u64,
    /// The tally's sequence number.
    pub seq: u64,
    /// The ballot's method.
    pub method: BallotMethod,
    /// For a ranked ballot: instant-runoff and the Condorcet check.
    pub ranked: Option<RankedResults>,
    /// Each distinct choice (one option, a set in id order, or a ranking)
    /// with its voters, in choice order: what a cast-vote record lists,
    /// and nothing about who voted or when.
    pub choices: Vec<(Vec<OptionId>, u64)>,
}

/// The two counts of a ranked ballot's choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankedResults {
    /// Instant-runoff: the winner.
    pub instant_runoff: InstantRunoff,
    /// The Condorcet check.
    pub condorcet: Condorcet,
}

impl Results {
    /// Joins `ballot`'s options with `tally`'s counts.
    ///
    /// A tally may count a write-in the ballot copy does not know yet (it was
    /// read before the write-in was added); such a count still adds to the
    /// total, and the caller refreshes the ballot to show its row.
    pub fn new(ballot: &Ballot, tally: &Tally) -> Self {
        let total = tally.total();
        let top = tally.iter().map(|(_, count)| count).max().unwrap_or(0);
        let at_top = ballot
            .options()
            .iter()
            .filter(|option| top > 0 && tally.count(option.id()) == top)
            .count();
        let rows = ballot
            .options()
            .iter()
            .map(|option| {
                let count = tally.count(option.id());
                ResultRow {
                    option_id: option.id(),
                    label: option.label().to_owned(),
                    count,
                    percent: if total == 0 {
                        0.0
                    } else {
                        count as f64 * 100.0 / total as f64
                    },
                    leading: count > 0 && count == top && at_top == 1,
                    tied: count > 0 && count == top && at_top > 1,
                }
            })
            .collect();
        let ranked = ballot.method().is_ranked().then(|| {
            let options: Vec<OptionId> =
                ballot.options().iter().map(|option| option.id()).collect();
            let profile: Vec<(&[OptionId], u64)> = tally.choices().collect();
            RankedResults {
                instant_runoff: instant_runoff(&options, &profile),
                condorcet: condorcet(&options, &profile),
            }
        });
        let mut choices: Vec<(Vec<OptionId>, u64)> = tally
            .choices()
            .map(|(choice, voters)| (choice.to_vec(), voters))
            .collect();
        if choices.is_empty() && ballot.method() == BallotMethod::Single {
            // A tally that recorded no choices: each vote was one option.
            choices = tally
                .iter()
                .map(|(option, count)| (vec![option], count))
                .collect();
        }
        Self {
            rows,
            total,
            seq: tally.seq(),
            method: ballot.method(),
            ranked,
            choices,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_missing_options_as_zero() {
        let tally = Tally::new(3, [(OptionId::new(1), 2), (OptionId::new(2), 1)]);
        assert_eq!(tally.count(OptionId::new(1)), 2);
        assert_eq!(tally.count(OptionId::new(9)), 0);
        assert_eq!(tally.total(), 3);
        assert_eq!(tally.seq(), 3);
    }
}
