//! Tallies: vote counts per option, and the results people read.

use std::collections::BTreeMap;

use super::ballot::Ballot;
use super::ids::{BallotId, OptionId};

/// Vote counts per option at one moment of a ballot's life.
///
/// `seq` grows by one with every accepted vote, so of two tallies of one
/// ballot the one with the larger `seq` is the newer. Tallies count option
/// ids, never text, so they can travel through pub/sub unencrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    seq: u64,
    counts: BTreeMap<OptionId, u64>,
}

impl Tally {
    /// A tally at sequence `seq` from `(option, count)` pairs.
    pub fn new(seq: u64, counts: impl IntoIterator<Item = (OptionId, u64)>) -> Self {
        Self {
            seq,
            counts: counts.into_iter().collect(),
        }
    }

    /// The tally's sequence number: the number of votes it counts.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Votes for `option`; 0 for an option nobody chose.
    pub fn count(&self, option: OptionId) -> u64 {
        self.counts.get(&option).copied().unwrap_or(0)
    }

    /// Votes across all options.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
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
    /// Its share of all votes, 0.0 to 100.0.
    pub percent: f64,
    /// True when no option has more votes (and it has at least one).
    pub leading: bool,
}

/// A ballot's results: its options with their counts, shares and leaders.
#[derive(Debug, Clone, PartialEq)]
pub struct Results {
    /// One row per option, in the ballot's option order.
    pub rows: Vec<ResultRow>,
    /// Votes across all options.
    pub total: u64,
    /// The tally's sequence number.
    pub seq: u64,
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
                    leading: count > 0 && count == top,
                }
            })
            .collect();
        Self {
            rows,
            total,
            seq: tally.seq(),
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
