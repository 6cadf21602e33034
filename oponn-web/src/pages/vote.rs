//! The vote form: `GET /vote/{id}` and `POST /vote/{id}`.

use std::borrow::Cow;
use std::sync::Arc;

use crate::csrf::{CsrfToken, CsrfVerifier};
use oponn_core::domain::{Ballot, BallotId, BallotMethod, Eligibility, OptionId, VoterId};
use oponn_core::{CastVoteError, VoteChoice};
use poem::http::HeaderMap;
use poem::web::cookie::CookieJar;
use poem::web::{Data, Form, Html, Path};
use poem::{IntoResponse, Response, handler};
use serde_json::json;

use crate::guard::{ClientAddr, too_many_requests};
use crate::html::{
    ballot_or_refusal, csrf_refusal, is_htmx, not_found, render, render_html, rendering_failed,
    success_redirect, unavailable,
};
use crate::identity::{Notice, Viewer, keep_receipt, take_notice, viewer, voter_on};
use crate::live::unix_millis;
use crate::rates::Rate;
use crate::share::{PreviewView, public_origin};
use crate::spliced::SplicedPage;
use crate::state::AppState;
use crate::views::{BallotView, VoteAccess, VotePage, VotePageKey};

use super::share::ShareView;

/// The vote form as submitted: every field, as the form sends them (an
/// approval ballot's checkboxes repeat `option_ids`; a ranked ballot
/// sends one `rank_{option id}` per option).
#[derive(Debug, Default)]
pub(crate) struct VoteForm {
    csrf_token: Option<String>,
    option_id: Option<String>,
    option_ids: Vec<String>,
    write_in_value: Option<String>,
    /// `(option id, rank)` of every `rank_{id}` field, blanks included.
    ranks: Vec<(String, String)>,
}

impl VoteForm {
    /// The form from its fields, in order.
    fn from_fields(fields: Vec<(String, String)>) -> Self {
        let mut form = Self::default();
        for (name, value) in fields {
            match name.as_str() {
                "X-CSRF-Token" => form.csrf_token = Some(value),
                "option_id" => form.option_id = Some(value),
                "option_ids" => form.option_ids.push(value),
                "write_in_value" => form.write_in_value = Some(value),
                other => {
                    if let Some(option) = other.strip_prefix("rank_") {
                        form.ranks.push((option.to_owned(), value));
                    }
                }
            }
        }
        form
    }

    /// Whether nothing was submitted.
    fn is_empty(&self) -> bool {
        self.csrf_token.is_none()
            && self.option_id.is_none()
            && self.option_ids.is_empty()
            && self.write_in_value.is_none()
            && self.ranks.is_empty()
    }

    /// The typed choice the form makes, read as the ballot's `method`
    /// asks (its form offers ranks 1 to `options`).
    ///
    /// # Errors
    /// [`CastVoteError::InvalidOption`] for a field that names no option
    /// or no rank on offer; the ranking's own refusals
    /// ([`VoteChoice::ranking_by_rank`]).
    fn choice(&self, method: BallotMethod, options: usize) -> Result<VoteChoice, CastVoteError> {
        match method {
            BallotMethod::Approval { .. } => {
                let options = self
                    .option_ids
                    .iter()
                    .map(|id| OptionId::parse(id).ok_or(CastVoteError::InvalidOption))
                    .collect::<Result<_, _>>()?;
                let write_in = self
                    .write_in_value
                    .clone()
                    .filter(|text| !text.trim().is_empty());
                Ok(VoteChoice::Options { options, write_in })
            }
            BallotMethod::Ranked => {
                let mut ranks = Vec::with_capacity(self.ranks.len());
                for (option, rank) in &self.ranks {
                    if rank.trim().is_empty() {
                        continue;
                    }
                    let option = OptionId::parse(option).ok_or(CastVoteError::InvalidOption)?;
                    let rank = rank
                        .trim()
                        .parse::<usize>()
                        .ok()
                        .filter(|rank| (1..=options).contains(rank))
                        .and_then(|rank| u32::try_from(rank).ok())
                        .ok_or(CastVoteError::InvalidOption)?;
                    ranks.push((option, rank));
                }
                VoteChoice::ranking_by_rank(&ranks)
            }
            BallotMethod::Single => choice_from_form(
                self.option_id.as_deref().unwrap_or(""),
                self.write_in_value.as_deref(),
            ),
        }
    }
}

/// The form value of `option_id` that means "my own write-in": the write-in
/// radio button's value on the vote form.
const WRITE_IN_FORM_VALUE: &str = "__write_in__";

/// Reads a single-choice form's `option_id` (an option number, or
/// [`WRITE_IN_FORM_VALUE`]) and `write_in_value` fields into the typed
/// choice the core takes.
///
/// # Errors
/// [`CastVoteError::InvalidOption`] when `option_id` is neither.
fn choice_from_form(
    option_id: &str,
    write_in_value: Option<&str>,
) -> Result<VoteChoice, CastVoteError> {
    if option_id == WRITE_IN_FORM_VALUE {
        return Ok(VoteChoice::WriteIn(
            write_in_value.unwrap_or_default().to_owned(),
        ));
    }
    OptionId::parse(option_id)
        .map(VoteChoice::Option)
        .ok_or(CastVoteError::InvalidOption)
}

/// Everything the vote form shows beyond the ballot.
struct VoteView<'a> {
    form: &'a VoteForm,
    error: Option<&'a str>,
    /// The viewer's current vote, when they have one.
    current: Option<Vec<OptionId>>,
    /// Who votes from this browser on this ballot.
    voter: &'a VoterId,
    /// The share view, shown once to the owner who just created the
    /// ballot.
    share: Option<ShareView>,
}

fn vote_page(
    state: &AppState,
    headers: &HeaderMap,
    csrf: &str,
    viewer: &Viewer,
    ballot: &Ballot,
    view: VoteView<'_>,
) -> Response {
    let template = if is_htmx(headers) {
        "partials/vote_form.html"
    } else {
        "vote.html"
    };
    let settings = ballot.settings();
    let admitted = settings.eligibility.admits(view.voter);
    let access = VoteAccess {
        sign_in_required: !admitted && settings.eligibility == Eligibility::SignedInOnly,
        invited_only: !admitted && settings.eligibility == Eligibility::Invited,
        invited_voter: view.voter.invitation().is_some(),
    };
    let now = state.service.now();
    let origin = public_origin(state, headers);
    // What the page shows of the ballot and its preview, made only when
    // it is rendered.
    let page = |now_ms: Option<i64>| {
        let mut ballot_view = BallotView::new(ballot, now);
        if let Some(now_ms) = now_ms {
            ballot_view.now_ms = now_ms;
        }
        VotePage {
            ballot: ballot_view,
            preview: PreviewView::at(&origin, ballot, &format!("/vote/{}", ballot.id())),
            access,
        }
    };
    // The page a voter with nothing of their own on it sees (no account,
    // no vote, nothing submitted) is the same for all of them but for the
    // token and the clock: it is rendered once and spliced.
    let plain = viewer.account.is_none()
        && view.current.is_none()
        && view.error.is_none()
        && view.share.is_none()
        && view.form.is_empty();
    if plain {
        let status = ballot.status_at(now);
        let key = VotePageKey {
            ballot: Cow::Borrowed(ballot),
            status: (status.as_str(), status.label()),
            origin: Cow::Borrowed(&origin),
            access,
        };
        let cache = &state.vote_pages;
        let (spliced, fresh) = match cache.get(ballot.id(), template, &key) {
            Some(spliced) => (spliced, false),
            None => {
                let placeholders = cache.placeholders();
                let context = vote_context(ballot, &page(Some(placeholders.now_ms())), &view);
                match render_html(state, template, placeholders.token(), Some(viewer), context) {
                    Ok(html) => (Arc::new(SplicedPage::parse(&html, placeholders)), true),
                    Err(error) => return rendering_failed(template, &error),
                }
            }
        };
        if let Some(html) = spliced.splice(csrf, unix_millis(now)) {
            if fresh {
                cache.insert(ballot.id(), template, key.into_owned(), spliced);
            }
            return Html(html).into_response();
        }
        // A token that cannot be spliced: rendered as any other page.
    }
    let context = vote_context(ballot, &page(None), &view);
    render(state, template, csrf, Some(viewer), context)
}

/// What the vote page is rendered from: `page` (the ballot, its preview,
/// who may vote) and what `view` holds of this voter.
fn vote_context(ballot: &Ballot, page: &VotePage, view: &VoteView<'_>) -> serde_json::Value {
    let current = view.current.clone().unwrap_or_default();
    let resubmitted = view.form.csrf_token.is_some();
    // What the form shows as chosen: what was just submitted, else the
    // viewer's current vote.
    let selected = view
        .form
        .option_id
        .clone()
        .or_else(|| current.first().map(|option| option.get().to_string()));
    let checked: Vec<String> = if resubmitted {
        view.form.option_ids.clone()
    } else {
        current
            .iter()
            .map(|option| option.get().to_string())
            .collect()
    };
    let ranked: std::collections::BTreeMap<String, String> = if resubmitted {
        view.form.ranks.iter().cloned().collect()
    } else {
        current
            .iter()
            .zip(1u32..)
            .map(|(option, rank)| (option.get().to_string(), rank.to_string()))
            .collect()
    };
    let separator = if ballot.method().is_ranked() {
        " > "
    } else {
        ", "
    };
    let current_vote = view.current.as_ref().map(|choice| {
        choice
            .iter()
            .filter_map(|option| ballot.option(*option))
            .map(|option| option.label())
            .collect::<Vec<_>>()
            .join(separator)
    });
    json!({
        "ballot": &page.ballot,
        "error": view.error,
        "selected": selected,
        "checked": checked,
        "ranked": ranked,
        "write_in_value": view.form.write_in_value,
        "current_vote": current_vote,
        "can_change_vote": ballot.settings().allow_vote_change,
        "write_in_option": WRITE_IN_FORM_VALUE,
        "sign_in_required": page.access.sign_in_required,
        "invited_only": page.access.invited_only,
        "invited_voter": page.access.invited_voter,
        "invited_only_message": oponn_core::domain::messages::INVITED_ONLY,
        "login_url": format!("/login?next=/vote/{}", ballot.id()),
        "share": view.share,
        "notice": view.share.as_ref().map(|_| Notice::Created.message()),
        "preview": &page.preview,
    })
}

/// `GET /vote/{id}`: the vote form.
#[handler]
pub(crate) async fn vote_form(
    state: Data<&Arc<AppState>>,
    headers: &HeaderMap,
    jar: &CookieJar,
    csrf: &CsrfToken,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = BallotId::parse(&id) else {
        return not_found(&state);
    };
    // Settles the voter cookie now, so the vote posts with it.
    let viewer = viewer(&state, jar).await;
    let voter = voter_on(&state, jar, &viewer, &id);
    let ballot = match ballot_or_refusal(&state, &id).await {
        Ok(ballot) => ballot,
        Err(refusal) => return refusal,
    };
    let current = if viewer.new_voter && voter.invitation().is_none() {
        None
    } else {
        match state.service.vote_of(&id, &voter).await {
            Ok(current) => current,
            Err(error) => return unavailable(&state, &error),
        }
    };
    let form = VoteForm::default();
    // Just created by this viewer: the page opens with the share view.
    let just_created = matches!(take_notice(&state, jar), Some(Notice::Created));
    let share = (just_created && ballot.is_owned_by(&viewer.owner))
        .then(|| ShareView::new(&state, headers, &ballot));
    let view = VoteView {
        form: &form,
        error: None,
        current,
        voter: &voter,
        share,
    };
    vote_page(&state, headers, csrf, &viewer, &ballot, view)
}

/// `POST /vote/{id}`: casts (or, where allowed, changes) the vote;
/// refusals are shown on the form.
#[handler]
#[allow(
    clippy::too_many_arguments,
    reason = "each argument is one of poem's extractors"
)]
pub(crate) async fn cast_vote(
    state: Data<&Arc<AppState>>,
    headers: &HeaderMap,
    jar: &CookieJar,
    csrf: &CsrfToken,
    verifier: &CsrfVerifier,
    Path(id): Path<String>,
    Data(client): Data<&ClientAddr>,
    form: Option<Form<Vec<(String, String)>>>,
) -> Response {
    // A body that is not a form is treated as an empty one: the CSRF
    // check then refuses it with 403, like any request without a token.
    let form = form
        .map(|Form(fields)| VoteForm::from_fields(fields))
        .unwrap_or_default();
    if let Some(refusal) = csrf_refusal(&state, verifier, headers, form.csrf_token.as_deref()) {
        return refusal;
    }
    let Ok(id) = BallotId::parse(&id) else {
        return not_found(&state);
    };
    let viewer = viewer(&state, jar).await;
    let voter = voter_on(&state, jar, &viewer, &id);
    // The ballot says which fields its form has (usually from the cache).
    let ballot = match ballot_or_refusal(&state, &id).await {
        Ok(ballot) => ballot,
        Err(refusal) => return refusal,
    };
    let choice = form.choice(ballot.method(), ballot.options().len());
    if choice.as_ref().is_ok_and(VoteChoice::has_write_in)
        && let Err(wait) = state.rates.check(Rate::WriteIns, client.0)
    {
        return too_many_requests(&state, &format!("/vote/{id}"), Rate::WriteIns, wait);
    }
    let outcome = match choice {
        Ok(choice) => state.cast_vote(id, voter.clone(), choice).await,
        Err(refusal) => Err(refusal),
    };
    let refusal = match outcome {
        Ok(receipt) => {
            state.metrics.votes_cast.inc();
            keep_receipt(&state, jar, &id, &receipt.receipt);
            return success_redirect(headers, &format!("/results/{id}"));
        }
        Err(refusal) => refusal,
    };
    state.metrics.count_vote_refusal(&refusal);
    let Some(message) = refusal.user_message() else {
        return match refusal {
            CastVoteError::NotFound => not_found(&state),
            other => unavailable(&state, &other),
        };
    };
    let ballot = match ballot_or_refusal(&state, &id).await {
        Ok(ballot) => ballot,
        Err(refusal) => return refusal,
    };
    let current = state.service.vote_of(&id, &voter).await.unwrap_or_default();
    let view = VoteView {
        form: &form,
        error: Some(&message),
        current,
        voter: &voter,
        share: None,
    };
    vote_page(&state, headers, csrf, &viewer, &ballot, view)
}

#[cfg(test)]
mod tests {
    // A test fails by panicking.
    #![allow(clippy::unwrap_used)]

    use oponn_core::VoteChoice;
    use oponn_core::domain::{OptionId, messages};

    use super::{BallotMethod, VoteForm, WRITE_IN_FORM_VALUE, choice_from_form};

    const APPROVAL: BallotMethod = BallotMethod::Approval {
        min_choices: 1,
        max_choices: 3,
    };

    #[test]
    fn the_form_names_an_option_by_number_or_asks_for_a_write_in() {
        assert_eq!(
            choice_from_form(" 2 ", None).unwrap(),
            VoteChoice::Option(OptionId::new(2))
        );
        assert_eq!(
            choice_from_form(WRITE_IN_FORM_VALUE, Some("sushi")).unwrap(),
            VoteChoice::WriteIn("sushi".to_owned())
        );
        assert_eq!(
            choice_from_form(WRITE_IN_FORM_VALUE, None).unwrap(),
            VoteChoice::WriteIn(String::new())
        );
        let garbage = choice_from_form("pizza", None).unwrap_err();
        assert_eq!(
            garbage.user_message().as_deref(),
            Some(messages::INVALID_OPTION)
        );
    }

    fn form(fields: &[(&str, &str)]) -> VoteForm {
        VoteForm::from_fields(
            fields
                .iter()
                .map(|&(name, value)| (name.to_owned(), value.to_owned()))
                .collect(),
        )
    }

    #[test]
    fn an_approval_form_sends_every_checked_option_and_a_written_one() {
        let choice = form(&[
            ("option_ids", "3"),
            ("option_ids", "1"),
            ("write_in_value", " sushi "),
        ])
        .choice(APPROVAL, 3)
        .unwrap();
        assert_eq!(
            choice,
            VoteChoice::Options {
                options: vec![OptionId::new(3), OptionId::new(1)],
                write_in: Some(" sushi ".to_owned())
            }
        );
        let blank = form(&[("write_in_value", "  ")]).choice(APPROVAL, 3);
        assert_eq!(
            blank.unwrap(),
            VoteChoice::Options {
                options: Vec::new(),
                write_in: None
            }
        );
        assert!(form(&[("option_ids", "x")]).choice(APPROVAL, 3).is_err());
    }

    #[test]
    fn a_ranked_form_orders_options_by_their_rank_and_skips_blanks() {
        let ranked = |fields: &[(&str, &str)]| form(fields).choice(BallotMethod::Ranked, 3);
        assert_eq!(
            ranked(&[("rank_1", "2"), ("rank_2", ""), ("rank_3", "1")]).unwrap(),
            VoteChoice::Ranking(vec![OptionId::new(3), OptionId::new(1)])
        );
        let message = |fields: &[(&str, &str)]| {
            ranked(fields)
                .unwrap_err()
                .user_message()
                .map(|message| message.into_owned())
        };
        assert_eq!(
            message(&[("rank_1", "1"), ("rank_2", "1")]).as_deref(),
            Some(messages::RANK_GIVEN_TWICE)
        );
        assert_eq!(
            message(&[("rank_1", ""), ("rank_2", " ")]).as_deref(),
            Some(messages::RANK_AT_LEAST_ONE)
        );
        for fields in [
            [("rank_1", "first")],
            [("rank_x", "1")],
            [("rank_1", "0")],
            [("rank_1", "4")],
        ] {
            assert_eq!(
                message(&fields).as_deref(),
                Some(messages::INVALID_OPTION),
                "{fields:?}"
            );
        }
    }
}
