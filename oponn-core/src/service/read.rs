//! Reading: ballots, tallies and results, the caches in front of them,
//! and the one question every channel asks before showing a tally:
//! [`BallotService::results_for`].

use std::sync::Arc;

use futures_util::StreamExt as _;
use futures_util::stream;

use super::{BallotError, BallotService, Unavailable, VoteReceipt};
use crate::domain::{
    Ballot, BallotId, OptionId, OwnerId, Results, ResultsVisibility, Status, Tally, VoterId,
    messages,
};
use crate::ports::{BallotRecord, Page, TallyStream};

/// What one viewer may see of a ballot's results now, as
/// [`BallotService::results_for`] decides it: every channel that shows a
/// tally in any form (pages, live streams, the API, exports, the
/// dashboard) asks this one question, so a new channel cannot forget it.
#[derive(Debug, Clone)]
pub enum ResultsAccess {
    /// The viewer may see the results.
    Shown {
        /// The ballot.
        ballot: Ballot,
        /// Its results.
        results: Results,
    },
    /// The results are hidden from this viewer for now.
    Hidden {
        /// The ballot (its question and status may still be shown).
        ballot: Ballot,
        /// Until when they stay hidden.
        reason: HiddenUntil,
        /// What to show where the results would be.
        message: &'static str,
    },
}

impl ResultsAccess {
    /// The ballot, shown or not.
    pub fn ballot(&self) -> &Ballot {
        match self {
            Self::Shown { ballot, .. } | Self::Hidden { ballot, .. } => ballot,
        }
    }

    /// The results, when the viewer may see them.
    pub fn results(&self) -> Option<&Results> {
        match self {
            Self::Shown { results, .. } => Some(results),
            Self::Hidden { .. } => None,
        }
    }
}

/// Why results are hidden: what would show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HiddenUntil {
    /// The viewer votes, or voting closes.
    Voted,
    /// Voting closes.
    Closed,
}

impl HiddenUntil {
    /// The message shown where the results would be.
    pub fn message(self) -> &'static str {
        match self {
            Self::Voted => messages::RESULTS_AFTER_VOTING,
            Self::Closed => messages::RESULTS_AFTER_CLOSE,
        }
    }
}

impl BallotService {
    /// The ballot with `id`, decrypted.
    ///
    /// Reads may be served from memory for up to
    /// [`ServiceSettings::ballot_cache_ttl`]; see there what that means.
    ///
    /// # Errors
    /// [`BallotError::NotFound`], or [`BallotError::Unavailable`].
    pub async fn ballot(&self, id: &BallotId) -> Result<Ballot, BallotError> {
        if let Some(ballot) = self.opened.get(id, self.now()) {
            return Ok(Ballot::clone(&ballot));
        }
        self.reopen(id).await
    }

    /// The ballot with `id`, decrypted, with every option `tally` counts:
    /// a cached ballot older than a write-in the tally names (added on
    /// another instance) is read again.
    ///
    /// # Errors
    /// [`BallotError::NotFound`], or [`BallotError::Unavailable`].
    pub async fn ballot_for_tally(
        &self,
        id: &BallotId,
        tally: &Tally,
    ) -> Result<Ballot, BallotError> {
        let ballot = self.ballot(id).await?;
        if tally
            .iter()
            .all(|(option, _)| ballot.option(option).is_some())
        {
            return Ok(ballot);
        }
        self.reopen(id).await
    }

    /// The ballot with `id`, read from storage and decrypted, and cached.
    pub(super) async fn reopen(&self, id: &BallotId) -> Result<Ballot, BallotError> {
        let record = self.record(id).await?;
        self.records
            .insert(*id, Arc::new(record.clone()), self.now());
        let ballot = self.open(record).await?;
        self.opened
            .insert(*id, Arc::new(ballot.clone()), self.now());
        Ok(ballot)
    }

    /// The stored ballot for a vote batch to check against: cached, or
    /// read and cached.
    pub(super) async fn batch_record(&self, id: &BallotId) -> Result<BallotRecord, BallotError> {
        if let Some(record) = self.records.get(id, self.now()) {
            return Ok(BallotRecord::clone(&record));
        }
        let record = self.record(id).await?;
        self.records
            .insert(*id, Arc::new(record.clone()), self.now());
        Ok(record)
    }

    /// Drops this instance's cached copy of ballot `id`, so the next read
    /// sees storage: after this instance changed it (a close, a delete, a
    /// write-in), or for a live feed told that its state (not its tally)
    /// changed, perhaps on another instance.
    pub fn refresh(&self, id: &BallotId) {
        self.opened.remove(id);
        self.records.remove(id);
    }

    /// How many votes on ballot `id` wait on this instance for their batch
    /// (while another batch commits, or the ballot's lock is held
    /// elsewhere): a gauge of the vote path's queue.
    pub fn votes_waiting(&self, id: &BallotId) -> usize {
        self.batches.waiting(id)
    }

    /// The ballots `owner` created, newest first, in the window `page` names.
    ///
    /// # Errors
    /// [`BallotError::Unavailable`] when storage or keys fail.
    pub async fn ballots_owned_by(
        &self,
        owner: &OwnerId,
        page: Page,
    ) -> Result<Vec<Ballot>, BallotError> {
        let records = self
            .ports
            .repository
            .ballots_owned_by(owner, page)
            .await
            .map_err(Unavailable::from)?;
        let mut ballots = Vec::with_capacity(records.len());
        for record in records {
            let ballot = self.open(record).await?;
            // Kept opened: the page listing them asks each one's results next.
            self.opened
                .insert(ballot.id(), Arc::new(ballot.clone()), self.now());
            ballots.push(ballot);
        }
        Ok(ballots)
    }

    /// The current tally of `id`, whoever asks: a front end showing it
    /// asks [`results_for`](Self::results_for) first.
    ///
    /// # Errors
    /// [`BallotError::NotFound`], or [`BallotError::Unavailable`].
    pub async fn tally(&self, id: &BallotId) -> Result<Tally, BallotError> {
        self.ports
            .repository
            .tally(id)
            .await
            .map_err(Unavailable::from)?
            .ok_or(BallotError::NotFound)
    }

    /// The ballot with its current results, whoever asks: a front end
    /// showing them calls [`results_for`](Self::results_for) instead.
    ///
    /// # Errors
    /// [`BallotError::NotFound`], or [`BallotError::Unavailable`].
    pub async fn results(&self, id: &BallotId) -> Result<(Ballot, Results), BallotError> {
        let tally = self.tally(id).await?;
        let ballot = self.ballot_for_tally(id, &tally).await?;
        let results = Results::new(&ballot, &tally);
        Ok((ballot, results))
    }

    /// The choice `voter` made on ballot `id` (one option, a set, or a
    /// ranking), if they voted under any identity they present (their
    /// account, or the browser they are on).
    ///
    /// # Errors
    /// [`BallotError::Unavailable`] when storage fails.
    pub async fn vote_of(
        &self,
        id: &BallotId,
        voter: &VoterId,
    ) -> Result<Option<Vec<OptionId>>, BallotError> {
        let primary = self.voter_hasher.hash(id, voter);
        for hash in std::iter::once(primary).chain(self.voter_hasher.aliases(id, voter)) {
            let option = self
                .ports
                .repository
                .vote_of(id, &hash)
                .await
                .map_err(Unavailable::from)?;
            if option.is_some() {
                return Ok(option);
            }
        }
        Ok(None)
    }

    /// The ballot `id` and what `viewer` may see of its results now: the
    /// one call every channel makes before showing a tally, in any form.
    ///
    /// # Errors
    /// [`BallotError::NotFound`], or [`BallotError::Unavailable`].
    pub async fn results_for(
        &self,
        id: &BallotId,
        viewer: Option<&VoterId>,
    ) -> Result<ResultsAccess, BallotError> {
        let (ballot, results) = self.results(id).await?;
        self.access(ballot, results, viewer).await
    }

    /// What `voter` may see of the tally their vote `receipt` produced: a
    /// vote's reply carries the tally that includes it, under the same
    /// rule as [`results_for`](Self::results_for).
    ///
    /// # Errors
    /// [`BallotError::NotFound`] when the ballot was deleted meanwhile, or
    /// [`BallotError::Unavailable`].
    pub async fn receipt_results(
        &self,
        id: &BallotId,
        voter: &VoterId,
        receipt: &VoteReceipt,
    ) -> Result<ResultsAccess, BallotError> {
        // With every option the tally counts, a write-in added on another
        // instance included.
        let ballot = self.ballot_for_tally(id, &receipt.tally).await?;
        let results = Results::new(&ballot, &receipt.tally);
        self.access(ballot, results, Some(voter)).await
    }

    /// `results`, shown to `viewer` or hidden, by the ballot's visibility.
    pub(super) async fn access(
        &self,
        ballot: Ballot,
        results: Results,
        viewer: Option<&VoterId>,
    ) -> Result<ResultsAccess, BallotError> {
        if self.can_see_results(&ballot, viewer).await? {
            return Ok(ResultsAccess::Shown { ballot, results });
        }
        let reason = match ballot.settings().results_visibility {
            ResultsVisibility::AfterVoting => HiddenUntil::Voted,
            ResultsVisibility::AfterClose | ResultsVisibility::Always => HiddenUntil::Closed,
        };
        Ok(ResultsAccess::Hidden {
            ballot,
            reason,
            message: reason.message(),
        })
    }

    /// Whether `viewer` may see `ballot`'s results now, under its
    /// [`ResultsVisibility`]: the rule behind
    /// [`results_for`](Self::results_for).
    async fn can_see_results(
        &self,
        ballot: &Ballot,
        viewer: Option<&VoterId>,
    ) -> Result<bool, BallotError> {
        let visibility = ballot.settings().results_visibility;
        let ended = matches!(ballot.status_at(self.now()), Status::Ended);
        if visibility.allows(ended, false) {
            return Ok(true);
        }
        let voted = match viewer {
            Some(viewer) if visibility.allows(ended, true) => {
                self.vote_of(&ballot.id(), viewer).await?.is_some()
            }
            _ => false,
        };
        Ok(visibility.allows(ended, voted))
    }

    /// The ballot's tallies: the current one at once, then each newer one,
    /// whoever asks: a front end streaming them asks
    /// [`results_for`](Self::results_for) first.
    ///
    /// Tallies arrive in increasing sequence; a burst may be coalesced into
    /// its latest tally, but the latest is never skipped.
    ///
    /// # Errors
    /// [`BallotError::NotFound`], or [`BallotError::Unavailable`].
    pub async fn subscribe(&self, id: &BallotId) -> Result<TallyStream, BallotError> {
        // Subscribe before reading, so no tally published in between is missed.
        let updates = self
            .ports
            .broadcaster
            .subscribe(id)
            .await
            .map_err(Unavailable::from)?;
        let current = self.tally(id).await?;
        let tallies = stream::iter([current])
            .chain(updates)
            .scan(None::<u64>, |last_seq, tally| {
                let newer = last_seq.is_none_or(|last| tally.seq() > last);
                if newer {
                    *last_seq = Some(tally.seq());
                }
                std::future::ready(Some(newer.then_some(tally)))
            })
            .filter_map(std::future::ready);
        Ok(Box::pin(tallies))
    }
}
