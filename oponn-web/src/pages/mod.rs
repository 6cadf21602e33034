//! The HTML pages: parse the request, call the core, render a template.
//!
//! # Layout
//!
//! Rendering, error pages, CSRF checks and redirects are in [`crate::html`],
//! shared with the sign-in pages and the request guard.
//!
//! - `dashboard.rs`: `GET /`;
//! - `create.rs`: the create form and its start-time partial;
//! - `vote.rs`: the vote form and casting votes;
//! - `results.rs`: results, live results over SSE, exports;
//! - `owner.rs`: closing and deleting a ballot;
//! - `trust.rs`: voting links, receipts and the bulletin;
//! - `share.rs`: the share view, the QR code, the presenter view, and
//!   link previews.

mod create;
mod dashboard;
mod owner;
mod results;
mod share;
mod trust;
mod vote;

pub(crate) use create::{create_ballot, create_form, start_time_input};
pub(crate) use dashboard::dashboard_page;
pub(crate) use owner::{close_ballot, confirm_delete, delete_ballot};
pub(crate) use results::{
    ballots_csv, ballots_json, export_csv, export_json, live_results, live_state, results_page,
};
pub(crate) use share::{present_page, qr_code, share_page};
pub(crate) use trust::{
    bulletin_page, invitations_page, issue_invitations, open_voting_link, receipt_check,
    receipt_search, revoke_invitation, switch_voting_link,
};
pub(crate) use vote::{cast_vote, vote_form};
