//! JSON shapes more than one channel sends: the tally, as the API's
//! replies and the JSON live stream (rendered once per update by
//! [`crate::live`]) carry it.

use oponn_core::domain::{Ballot, Results};
use poem_openapi::Object;

/// A ballot's tally.
#[derive(Debug, Clone, Object)]
pub(crate) struct TallyBody {
    /// The ballot's id.
    ballot_id: String,
    /// Grows by one with each vote; the newest tally has the largest.
    pub(crate) seq: u64,
    /// Votes across all options.
    total: u64,
    /// Every option with its count.
    options: Vec<TallyRow>,
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
                })
                .collect(),
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
    /// Votes for it.
    count: u64,
    /// Its share of all votes, 0 to 100.
    percent: f64,
    /// True when no option has more votes (and it has at least one).
    leading: bool,
}
