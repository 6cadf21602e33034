//! Creating a ballot: validate, seal under a new data key, store.

use std::sync::Arc;

use super::{BallotService, CreateBallotError, Unavailable, seal_option};
use crate::crypto::{SealedField, SymmetricKey};
use crate::domain::{
    Ballot, BallotDraft, BallotId, BallotOption, BallotParts, BallotRequest, OptionId, OwnerId,
};
use crate::ports::BallotRecord;

impl BallotService {
    /// Validates `request`, seals it under a new data key and stores it.
    ///
    /// # Errors
    /// [`CreateBallotError::Invalid`] with a message per broken field;
    /// [`CreateBallotError::Unavailable`] when storage or keys fail.
    pub async fn create_ballot(
        &self,
        request: &BallotRequest,
        owner: Option<OwnerId>,
    ) -> Result<Ballot, CreateBallotError> {
        let now = self.now();
        let draft = BallotDraft::parse(request, now)?;
        let id = BallotId::generate();
        let key = SymmetricKey::generate();
        let wrapped_key = self
            .ports
            .key_wrapper
            .wrap_key(&id, &key)
            .await
            .map_err(Unavailable::from)?;
        let options: Vec<BallotOption> = draft
            .options()
            .iter()
            .zip(1..)
            .map(|(label, number)| BallotOption::new(OptionId::new(number), label.clone(), false))
            .collect();
        let record = BallotRecord {
            id,
            owner: owner.clone(),
            created_at: now,
            starts_at: draft.schedule().starts_at(),
            ends_at: draft.schedule().ends_at(),
            closed_at: None,
            allow_write_in: draft.allow_write_in(),
            settings: draft.settings(),
            method: draft.method(),
            wrapped_key,
            measure: key.seal_field(&id, SealedField::Measure, draft.measure().as_str()),
            options: options
                .iter()
                .map(|option| seal_option(&key, &id, option))
                .collect(),
        };
        self.ports
            .repository
            .insert_ballot(&record)
            .await
            .map_err(Unavailable::from)?;
        self.keys.insert(id, Arc::new(key), now);
        Ok(Ballot::from_parts(BallotParts {
            id,
            measure: draft.measure().clone(),
            options,
            allow_write_in: draft.allow_write_in(),
            schedule: *draft.schedule(),
            closed_at: None,
            created_at: now,
            owner,
            settings: draft.settings(),
            method: draft.method(),
        }))
    }
}
