//! Invite-only ballots: issuing, listing and revoking voter links (owner
//! only), opening one, and the guest's ballots following them when they
//! sign in.
//!
//! A link's token is shown once, as it is issued; storage keeps its keyed
//! hash ([`VoterHasher::invitation`](crate::domain::VoterHasher::invitation))
//! and its label sealed under the ballot's data key. Whoever holds a link
//! votes as [`VoterId::invited`]: one vote per link.

use super::{BallotService, Unavailable, unlock};
use crate::crypto::SealedField;
use crate::domain::{
    AccountId, BallotId, Eligibility, FieldError, Invitation, InvitationId, InvitationLabel,
    InvitationToken, IssuedInvitation, MAX_INVITATIONS_PER_BALLOT, OwnerId, Status, VoterId,
    parse_invitation_labels,
};
use crate::ports::{AddInvitationsError, BallotRecord, NewInvitation, RepositoryError, Revoked};

/// Why voter links could not be issued, listed or revoked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvitationError {
    /// There is no such ballot.
    #[error("ballot not found")]
    NotFound,
    /// The requester is not the ballot's owner.
    #[error("only the ballot's owner may manage its voter links")]
    Forbidden,
    /// The ballot is not invite-only.
    #[error("the ballot is not invite-only")]
    NotInviteOnly,
    /// Voting has ended: no more links.
    #[error("voting has ended")]
    Ended,
    /// The count or a label broke a rule.
    #[error(transparent)]
    Invalid(FieldError),
    /// The ballot would have more than [`MAX_INVITATIONS_PER_BALLOT`] links.
    #[error("the ballot has as many voter links as it may")]
    LimitReached,
    /// The ballot has no such link.
    #[error("no such voter link")]
    UnknownInvitation,
    /// A vote was cast with the link: it cannot be revoked.
    #[error("the voter link was used")]
    Used,
    /// A dependency failed.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl From<RepositoryError> for InvitationError {
    fn from(error: RepositoryError) -> Self {
        InvitationError::Unavailable(error.into())
    }
}

/// Why a voting link did not open.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenInvitationError {
    /// No live link has this token: it is malformed, unknown, revoked, or
    /// its ballot was deleted. One case, so a guess learns nothing.
    #[error("this voting link is not valid")]
    NotValid,
    /// A dependency failed.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// A voting link that opened: whose ballot, which invitation, and whether
/// a vote was already cast with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenedInvitation {
    /// The ballot the link lets its holder vote on.
    pub ballot_id: BallotId,
    /// The invitation, which the holder votes as.
    pub invitation: InvitationId,
    /// Whether a vote was cast with it.
    pub used: bool,
}

impl BallotService {
    /// Issues `count` voter links on the invite-only ballot `id`, labelled
    /// by `labels` (none, or one per link); only its owner may, and only
    /// until voting ends. The tokens are returned here and never again.
    ///
    /// # Errors
    /// [`InvitationError::NotFound`], [`InvitationError::Forbidden`],
    /// [`InvitationError::NotInviteOnly`], [`InvitationError::Ended`],
    /// [`InvitationError::Invalid`] for a count or label that breaks
    /// [`parse_invitation_labels`]'s rules, [`InvitationError::LimitReached`]
    /// past [`MAX_INVITATIONS_PER_BALLOT`], or [`InvitationError::Unavailable`].
    pub async fn issue_invitations(
        &self,
        id: &BallotId,
        requester: &OwnerId,
        count: u32,
        labels: &[String],
    ) -> Result<Vec<IssuedInvitation>, InvitationError> {
        let record = self.owned_invite_only(id, requester).await?;
        let status = crate::domain::Schedule::from_parts(record.starts_at, record.ends_at)
            .status_at(self.now(), record.closed_at);
        if matches!(status, Status::Ended) {
            return Err(InvitationError::Ended);
        }
        let labels = parse_invitation_labels(count, labels).map_err(InvitationError::Invalid)?;
        let key = self.data_key(&record).await.map_err(Unavailable::from)?;
        let now = self.now();
        let tokens: Vec<InvitationToken> =
            labels.iter().map(|_| InvitationToken::generate()).collect();
        let new: Vec<NewInvitation> = tokens
            .iter()
            .zip(&labels)
            .map(|(token, label)| {
                let token_hash = self.voter_hasher.invitation(token);
                NewInvitation {
                    token_hash,
                    label: label.as_ref().map(|label| {
                        key.seal_field(id, SealedField::InvitationLabel(token_hash), label.as_str())
                    }),
                    created_at: now,
                }
            })
            .collect();
        let ids = self
            .ports
            .repository
            .add_invitations(id, &new, MAX_INVITATIONS_PER_BALLOT)
            .await
            .map_err(|error| match error {
                AddInvitationsError::BallotNotFound => InvitationError::NotFound,
                AddInvitationsError::LimitReached => InvitationError::LimitReached,
                other => InvitationError::Unavailable(Unavailable::new(
                    super::Dependency::Storage,
                    other,
                )),
            })?;
        Ok(ids
            .into_iter()
            .zip(labels)
            .zip(tokens)
            .map(|((id, label), token)| IssuedInvitation { id, label, token })
            .collect())
    }

    /// The voter links of ballot `id`, in the order issued, as its owner
    /// sees them: labels, used or not, revoked or not; never a token.
    ///
    /// # Errors
    /// [`InvitationError::NotFound`], [`InvitationError::Forbidden`],
    /// [`InvitationError::NotInviteOnly`] or [`InvitationError::Unavailable`].
    pub async fn invitations(
        &self,
        id: &BallotId,
        requester: &OwnerId,
    ) -> Result<Vec<Invitation>, InvitationError> {
        let record = self.owned_invite_only(id, requester).await?;
        let key = self.data_key(&record).await.map_err(Unavailable::from)?;
        let stored = self.ports.repository.invitations(id).await?;
        stored
            .into_iter()
            .map(|invitation| {
                let label = invitation
                    .label
                    .as_ref()
                    .map(|sealed| {
                        key.open_field(
                            id,
                            SealedField::InvitationLabel(invitation.token_hash),
                            sealed,
                        )
                        .map(InvitationLabel::trusted)
                        .map_err(|_| {
                            InvitationError::Unavailable(Unavailable::new(
                                super::Dependency::Keys,
                                format!("ballot {id}: a voter link's label did not decrypt"),
                            ))
                        })
                    })
                    .transpose()?;
                Ok(Invitation {
                    id: invitation.id,
                    label,
                    created_at: invitation.created_at,
                    used_at: invitation.used_at,
                    revoked_at: invitation.revoked_at,
                })
            })
            .collect()
    }

    /// Revokes the unused voter link `invitation` of ballot `id`; only its
    /// owner may. Revoking a revoked link again changes nothing.
    ///
    /// # Errors
    /// [`InvitationError::NotFound`], [`InvitationError::Forbidden`],
    /// [`InvitationError::NotInviteOnly`],
    /// [`InvitationError::UnknownInvitation`], [`InvitationError::Used`]
    /// once a vote was cast with it, or [`InvitationError::Unavailable`].
    pub async fn revoke_invitation(
        &self,
        id: &BallotId,
        requester: &OwnerId,
        invitation: InvitationId,
    ) -> Result<(), InvitationError> {
        self.owned_invite_only(id, requester).await?;
        // Under the lock, so no vote by this link is half-way through.
        let guard = self.lock(id).await;
        let revoked = self
            .ports
            .repository
            .revoke_invitation(id, invitation, self.now())
            .await;
        unlock(id, guard).await;
        match revoked? {
            Revoked::Revoked => Ok(()),
            Revoked::Used => Err(InvitationError::Used),
            Revoked::NotFound => Err(InvitationError::UnknownInvitation),
        }
    }

    /// Opens the voting link carrying `token`: the ballot it is for and the
    /// invitation its holder votes as.
    ///
    /// # Errors
    /// [`OpenInvitationError::NotValid`] for a malformed, unknown or
    /// revoked token (one answer for all three), or
    /// [`OpenInvitationError::Unavailable`].
    pub async fn open_invitation(
        &self,
        token: &str,
    ) -> Result<OpenedInvitation, OpenInvitationError> {
        let token = InvitationToken::parse(token).ok_or(OpenInvitationError::NotValid)?;
        let token_hash = self.voter_hasher.invitation(&token);
        let stored = self
            .ports
            .repository
            .invitation(&token_hash)
            .await
            .map_err(Unavailable::from)?
            .ok_or(OpenInvitationError::NotValid)?;
        // Storage found the row by this hash; compared again, in constant
        // time, so no storage shortcut can open a link for a near miss.
        if stored.token_hash != token_hash || stored.revoked_at.is_some() {
            return Err(OpenInvitationError::NotValid);
        }
        Ok(OpenedInvitation {
            ballot_id: stored.ballot_id,
            invitation: stored.id,
            used: stored.used_at.is_some(),
        })
    }

    /// The voter that a bearer of `token` votes as on ballot `id` (the
    /// API's `Authorization: Bearer`): the link must be one of this
    /// ballot's, and live.
    ///
    /// # Errors
    /// [`OpenInvitationError::NotValid`] for any token that is not a live
    /// link of ballot `id`, or [`OpenInvitationError::Unavailable`].
    pub async fn invited_voter(
        &self,
        id: &BallotId,
        token: &str,
    ) -> Result<VoterId, OpenInvitationError> {
        let opened = self.open_invitation(token).await?;
        if opened.ballot_id != *id {
            return Err(OpenInvitationError::NotValid);
        }
        Ok(VoterId::invited(opened.invitation))
    }

    /// Makes every ballot the guest browser `browser` created the account
    /// `account`'s, as its owner signs in, so signing in never hides a
    /// ballot or its owner's controls. Returns how many moved.
    ///
    /// # Errors
    /// [`Unavailable`] when storage cannot be reached.
    pub async fn adopt_guest_ballots(
        &self,
        browser: &VoterId,
        account: &AccountId,
    ) -> Result<u64, Unavailable> {
        if browser.is_account() || browser.invitation().is_some() {
            return Ok(0);
        }
        let moved = self
            .ports
            .repository
            .transfer_ballots(&OwnerId::guest(browser), &OwnerId::account(account))
            .await?;
        if moved > 0 {
            // Cached ballots still name the guest as owner.
            self.opened.clear();
            self.records.clear();
        }
        Ok(moved)
    }

    /// The stored ballot `id`, when `requester` owns it and it is invite-only.
    async fn owned_invite_only(
        &self,
        id: &BallotId,
        requester: &OwnerId,
    ) -> Result<BallotRecord, InvitationError> {
        let record = self.record(id).await.map_err(|error| match error {
            super::BallotError::NotFound => InvitationError::NotFound,
            super::BallotError::Unavailable(error) => InvitationError::Unavailable(error),
        })?;
        if !requester.owns(record.owner.as_ref()) {
            return Err(InvitationError::Forbidden);
        }
        if record.settings.eligibility != Eligibility::Invited {
            return Err(InvitationError::NotInviteOnly);
        }
        Ok(record)
    }
}
