//! Checking a receipt, and the public bulletin: every counted vote as
//! (receipt, choice), with the result recounted from those rows alone.

use super::{BallotError, BallotService, HiddenUntil, ResultsAccess, Unavailable};
use crate::domain::{
    Ballot, BallotId, BulletinRow, ReceiptCode, ReceiptStatus, Results, Tally, VoterId,
};

/// A ballot's bulletin, as one viewer may see it.
#[derive(Debug, Clone)]
pub enum BulletinAccess {
    /// The owner did not publish one.
    NotPublished {
        /// The ballot.
        ballot: Ballot,
    },
    /// Published, but hidden from this viewer now, exactly as the results are.
    Hidden {
        /// The ballot.
        ballot: Ballot,
        /// Until when.
        reason: HiddenUntil,
        /// What the viewer is told.
        message: &'static str,
    },
    /// The bulletin.
    Shown(PublishedBulletin),
}

/// Every counted vote of a ballot with its receipt, and the result those
/// votes make, recounted from them alone.
#[derive(Debug, Clone)]
pub struct PublishedBulletin {
    /// The ballot.
    pub ballot: Ballot,
    /// The counted votes, sorted by receipt.
    pub rows: Vec<BulletinRow>,
    /// The result recounted from `rows`, under the sequence number of the
    /// tally they make.
    pub results: Results,
}

impl BallotService {
    /// Whether `receipt` (as typed: see [`ReceiptCode::parse`]) is a
    /// counted vote's on ballot `id`, a replaced one's, or unknown (text
    /// that cannot be a receipt is unknown). It says nothing more.
    ///
    /// # Errors
    /// [`BallotError::NotFound`] or [`BallotError::Unavailable`].
    pub async fn receipt_status(
        &self,
        id: &BallotId,
        receipt: &str,
    ) -> Result<ReceiptStatus, BallotError> {
        self.ballot(id).await?;
        let Some(receipt) = ReceiptCode::parse(receipt) else {
            return Ok(ReceiptStatus::Unknown);
        };
        Ok(self
            .ports
            .repository
            .receipt_status(id, &receipt)
            .await
            .map_err(Unavailable::from)?)
    }

    /// Ballot `id`'s bulletin as `viewer` may see it: published only when
    /// its owner chose to, shown under the same rules as its results.
    ///
    /// # Errors
    /// [`BallotError::NotFound`] or [`BallotError::Unavailable`].
    pub async fn bulletin_for(
        &self,
        id: &BallotId,
        viewer: Option<&VoterId>,
    ) -> Result<BulletinAccess, BallotError> {
        let ballot = self.ballot(id).await?;
        if !ballot.settings().publish_bulletin {
            return Ok(BulletinAccess::NotPublished { ballot });
        }
        // Asked first, on the tally: a hidden bulletin costs no read of
        // every vote. (Between this answer and the read below, visibility
        // can only widen: a ballot ends, a viewer votes.)
        if let ResultsAccess::Hidden {
            ballot,
            reason,
            message,
        } = self.results_for(id, viewer).await?
        {
            return Ok(BulletinAccess::Hidden {
                ballot,
                reason,
                message,
            });
        }
        let bulletin = self
            .ports
            .repository
            .bulletin(id)
            .await
            .map_err(Unavailable::from)?
            .ok_or(BallotError::NotFound)?;
        let tally = Tally::recount(
            bulletin.tally_seq,
            ballot.method(),
            bulletin.rows.iter().map(|row| row.choice.as_slice()),
        );
        // A write-in newer than the cached ballot shows its row too.
        let ballot = self.ballot_for_tally(id, &tally).await?;
        let results = Results::new(&ballot, &tally);
        Ok(match self.access(ballot, results, viewer).await? {
            ResultsAccess::Shown { ballot, results } => BulletinAccess::Shown(PublishedBulletin {
                ballot,
                rows: bulletin.rows,
                results,
            }),
            ResultsAccess::Hidden {
                ballot,
                reason,
                message,
            } => BulletinAccess::Hidden {
                ballot,
                reason,
                message,
            },
        })
    }
}
