//! What only a ballot's owner may do: close it early, delete it; and
//! telling every instance's watchers that it happened.

use super::{BallotService, OwnerActionError, Unavailable, unlock};
use crate::domain::{Ballot, BallotId, OwnerId, Tally, TallyEvent};
use crate::ports::BallotRecord;

impl BallotService {
    /// Closes voting on `id` now; only its owner may.
    ///
    /// # Errors
    /// [`OwnerActionError::NotFound`], [`OwnerActionError::Forbidden`] for
    /// anyone but the owner, or [`OwnerActionError::Unavailable`].
    pub async fn close_ballot(
        &self,
        id: &BallotId,
        requester: &OwnerId,
    ) -> Result<Ballot, OwnerActionError> {
        let record = self.record(id).await?;
        authorize(&record, requester)?;
        // Under the lock, so no vote is half-way through its checks.
        let guard = self.lock(id).await;
        let closed = self
            .ports
            .repository
            .close_ballot(id, self.now())
            .await
            .map_err(Unavailable::from);
        unlock(id, guard).await;
        self.refresh(id);
        if !closed? {
            return Err(OwnerActionError::NotFound);
        }
        let ballot = self.reopen(id).await?;
        if let Ok(Some(tally)) = self.ports.repository.tally(id).await {
            self.announce_state_change(id, &tally).await;
        }
        Ok(ballot)
    }

    /// Deletes `id` and everything about it; only its owner may. Its data
    /// key goes first, so any copy of its rows (a backup) stays unreadable.
    ///
    /// # Errors
    /// [`OwnerActionError::NotFound`], [`OwnerActionError::Forbidden`] for
    /// anyone but the owner, or [`OwnerActionError::Unavailable`].
    pub async fn delete_ballot(
        &self,
        id: &BallotId,
        requester: &OwnerId,
    ) -> Result<(), OwnerActionError> {
        let record = self.record(id).await?;
        authorize(&record, requester)?;
        self.keys.remove(id);
        self.refresh(id);
        let last = self.ports.repository.tally(id).await.ok().flatten();
        let deleted = self
            .ports
            .repository
            .delete_ballot(id)
            .await
            .map_err(Unavailable::from)?;
        if deleted {
            if let Some(last) = last {
                self.announce_state_change(id, &last).await;
            }
            Ok(())
        } else {
            Err(OwnerActionError::NotFound)
        }
    }

    /// Tells every instance's watchers that ballot `id` changed state
    /// (closed, deleted) though no vote did: its last tally once more,
    /// under the next sequence number, so broadcasters pass it on. A
    /// failure is logged: the change itself is durable.
    async fn announce_state_change(&self, id: &BallotId, last: &Tally) {
        let event = TallyEvent {
            ballot_id: *id,
            tally: last.renumbered(last.seq().saturating_add(1)),
        };
        if let Err(error) = self.ports.broadcaster.publish(&event).await {
            tracing::warn!(ballot = %id, %error, "announcing a state change failed");
        }
    }
}

/// Refuses anyone but the ballot's owner.
fn authorize(record: &BallotRecord, requester: &OwnerId) -> Result<(), OwnerActionError> {
    if requester.owns(record.owner.as_ref()) {
        Ok(())
    } else {
        Err(OwnerActionError::Forbidden)
    }
}
