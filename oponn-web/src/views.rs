//! Templates and the view models they render: the web crate's own wire
//! types, converted from the core's domain types at the edge.

use std::borrow::Cow;

use minijinja::{AutoEscape, Environment};
use oponn_core::domain::{Ballot, OptionId, Results, Status};
use serde::Serialize;
use time::OffsetDateTime;

use crate::assets::TemplateFiles;
use crate::live::unix_millis;
use crate::share::PreviewView;

/// The compiled templates, with HTML autoescaping for every `.html` file.
pub(crate) struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// Loads and compiles every embedded template.
    ///
    /// # Errors
    /// A template that does not parse: a build defect, caught at startup.
    pub(crate) fn load() -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
        for name in TemplateFiles::iter() {
            let Some(file) = TemplateFiles::get(&name) else {
                continue;
            };
            let source = String::from_utf8_lossy(&file.data).into_owned();
            env.add_template_owned(name.into_owned(), source)?;
        }
        Ok(Self { env })
    }

    /// Renders template `name` with `context`.
    ///
    /// # Errors
    /// A missing template or a rendering failure.
    pub(crate) fn render(
        &self,
        name: &str,
        context: impl Serialize,
    ) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(context)
    }
}

/// A ballot as pages show it.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub(crate) struct BallotView {
    pub(crate) id: String,
    pub(crate) measure: String,
    pub(crate) status: &'static str,
    pub(crate) status_label: String,
    pub(crate) allow_write_in: bool,
    pub(crate) is_open: bool,
    pub(crate) options: Vec<OptionView>,
    pub(crate) vote_url: String,
    pub(crate) results_url: String,
    pub(crate) eligibility: &'static str,
    pub(crate) allow_vote_change: bool,
    pub(crate) results_visibility: &'static str,
    /// Whether the owner publishes the ballot's bulletin.
    pub(crate) publish_bulletin: bool,
    /// `single`, `approval` or `ranked`.
    pub(crate) method: &'static str,
    /// An approval ballot's bounds.
    pub(crate) min_choices: Option<u32>,
    pub(crate) max_choices: Option<u32>,
    /// The ranks a ranked ballot's form offers: 1 to the number of options.
    pub(crate) ranks: Vec<u32>,
    /// When voting opens, in Unix milliseconds: pages count down to it.
    pub(crate) opens_at_ms: i64,
    /// When voting closes (by its end time or its owner), in Unix
    /// milliseconds; none when it closes only when its owner says.
    pub(crate) closes_at_ms: Option<i64>,
    /// The server's clock when the page was made, in Unix milliseconds:
    /// countdowns correct the browser's clock by it.
    pub(crate) now_ms: i64,
}

impl BallotView {
    pub(crate) fn new(ballot: &Ballot, now: OffsetDateTime) -> Self {
        let status = ballot.status_at(now);
        let id = ballot.id().to_string();
        Self {
            measure: ballot.measure().to_owned(),
            status: status.as_str(),
            status_label: status.label(),
            allow_write_in: ballot.allow_write_in(),
            is_open: matches!(status, Status::Active { .. }),
            options: ballot
                .options()
                .iter()
                .map(|option| OptionView {
                    id: option.id().get(),
                    label: option.label().to_owned(),
                })
                .collect(),
            vote_url: format!("/vote/{id}"),
            results_url: format!("/results/{id}"),
            eligibility: ballot.settings().eligibility.as_str(),
            allow_vote_change: ballot.settings().allow_vote_change,
            results_visibility: ballot.settings().results_visibility.as_str(),
            publish_bulletin: ballot.settings().publish_bulletin,
            method: ballot.method().as_str(),
            min_choices: ballot.method().min_choices(),
            max_choices: ballot.method().max_choices(),
            ranks: (1..=u32::try_from(ballot.options().len()).unwrap_or(u32::MAX)).collect(),
            opens_at_ms: unix_millis(ballot.schedule().starts_at()),
            closes_at_ms: ballot.closes_at().map(unix_millis),
            now_ms: unix_millis(now),
            id,
        }
    }
}

/// What the vote page shows of its ballot and of who may vote: the views
/// it is rendered from.
#[derive(Debug)]
pub(crate) struct VotePage {
    /// The ballot as shown.
    pub(crate) ballot: BallotView,
    /// The link-preview tags.
    pub(crate) preview: PreviewView,
    /// Who may vote, as this voter sees it.
    pub(crate) access: VoteAccess,
}

/// Who may vote on a ballot, as one voter sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VoteAccess {
    /// The ballot is for signed-in voters, and this one is not.
    pub(crate) sign_in_required: bool,
    /// The ballot is for invited voters, and this one is not.
    pub(crate) invited_only: bool,
    /// The voter came through a personal voting link.
    pub(crate) invited_voter: bool,
}

/// Everything the vote page a new voter sees is rendered from but the
/// CSRF token and the server's clock: the key its rendering is cached
/// under ([`crate::spliced`]), so a page is reused only while all of it
/// is unchanged. It holds what the views are made from (the ballot as
/// stored, its status as read, the origin of the preview's addresses),
/// so a request that finds its page makes no view. `'a`: a lookup's key
/// borrows the request's ballot; a kept one owns it.
#[derive(Debug)]
pub(crate) struct VotePageKey<'a> {
    pub(crate) ballot: Cow<'a, Ballot>,
    /// The status's kind and what a person reads of it ("ends in 2
    /// hours"), which the page shows.
    pub(crate) status: (&'static str, String),
    /// The origin the link preview's absolute addresses start with.
    pub(crate) origin: Cow<'a, str>,
    pub(crate) access: VoteAccess,
}

impl VotePageKey<'_> {
    /// The key, owning its ballot: to keep beside a rendered page.
    pub(crate) fn into_owned(self) -> VotePageKey<'static> {
        VotePageKey {
            ballot: Cow::Owned(self.ballot.into_owned()),
            status: self.status,
            origin: Cow::Owned(self.origin.into_owned()),
            access: self.access,
        }
    }
}

impl<'b> PartialEq<VotePageKey<'b>> for VotePageKey<'_> {
    fn eq(&self, other: &VotePageKey<'b>) -> bool {
        self.access == other.access
            && self.status == other.status
            && self.origin == other.origin
            && *self.ballot == *other.ballot
    }
}

/// One option of a ballot.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub(crate) struct OptionView {
    pub(crate) id: u32,
    pub(crate) label: String,
}

/// A ballot's results as pages show them.
#[derive(Debug, Serialize)]
pub(crate) struct ResultsView {
    pub(crate) rows: Vec<RowView>,
    /// The labels of the options tied for the most votes (empty when one
    /// leads, or none has a vote).
    pub(crate) tied: Vec<String>,
    pub(crate) total: u64,
    pub(crate) seq: u64,
    /// `single`, `approval` or `ranked`.
    pub(crate) method: &'static str,
    /// A ranked ballot's two counts.
    pub(crate) ranked: Option<RankedView>,
}

/// A ranked ballot's counts, labelled.
#[derive(Debug, Serialize)]
pub(crate) struct RankedView {
    /// Instant-runoff, round by round.
    pub(crate) rounds: Vec<RoundView>,
    /// The winner's label, if one won.
    pub(crate) winner: Option<String>,
    /// The labels tied at the end, when no one won.
    pub(crate) tied: Vec<String>,
    /// The Condorcet winner's label, if there is one.
    pub(crate) condorcet_winner: Option<String>,
    /// The Schulze order: groups of labels, best first.
    pub(crate) schulze: Vec<Vec<String>>,
    /// The head-to-head counts, one entry per pair.
    pub(crate) pairwise: Vec<PairView>,
}

/// One instant-runoff round.
#[derive(Debug, Serialize)]
pub(crate) struct RoundView {
    /// The round's number, from 1.
    pub(crate) number: usize,
    /// Every option still standing, with its votes.
    pub(crate) counts: Vec<(String, u64)>,
    /// Ballots with no standing option left.
    pub(crate) exhausted: u64,
    /// The option eliminated after the round.
    pub(crate) eliminated: Option<String>,
}

/// One pair's head-to-head counts.
#[derive(Debug, Serialize)]
pub(crate) struct PairView {
    pub(crate) a: String,
    pub(crate) b: String,
    pub(crate) a_over_b: u64,
    pub(crate) b_over_a: u64,
}

/// One row of results.
#[derive(Debug, Serialize)]
pub(crate) struct RowView {
    pub(crate) option_id: u32,
    pub(crate) label: String,
    pub(crate) count: u64,
    /// One decimal, as text: `<progress value>` and the label show the same figure.
    pub(crate) percent: String,
    pub(crate) leading: bool,
    /// Shares the most votes with another option.
    pub(crate) tied: bool,
}

impl From<&Results> for ResultsView {
    fn from(results: &Results) -> Self {
        Self {
            rows: results
                .rows
                .iter()
                .map(|row| RowView {
                    option_id: row.option_id.get(),
                    label: row.label.clone(),
                    count: row.count,
                    percent: format!("{:.1}", row.percent),
                    leading: row.leading,
                    tied: row.tied,
                })
                .collect(),
            tied: results
                .rows
                .iter()
                .filter(|row| row.tied)
                .map(|row| row.label.clone())
                .collect(),
            total: results.total,
            seq: results.seq,
            method: results.method.as_str(),
            ranked: results.ranked.as_ref().map(|ranked| {
                let label = |option: OptionId| {
                    results
                        .rows
                        .iter()
                        .find(|row| row.option_id == option)
                        .map_or_else(|| format!("option {option}"), |row| row.label.clone())
                };
                let runoff = &ranked.instant_runoff;
                let check = &ranked.condorcet;
                RankedView {
                    rounds: runoff
                        .rounds
                        .iter()
                        .enumerate()
                        .map(|(at, round)| RoundView {
                            number: at + 1,
                            counts: round
                                .counts
                                .iter()
                                .map(|&(option, count)| (label(option), count))
                                .collect(),
                            exhausted: round.exhausted,
                            eliminated: round.eliminated.map(label),
                        })
                        .collect(),
                    winner: runoff.winner.map(label),
                    tied: runoff.tied.iter().copied().map(label).collect(),
                    condorcet_winner: check.winner.map(label),
                    schulze: check
                        .schulze_ranking
                        .iter()
                        .map(|group| group.iter().copied().map(label).collect())
                        .collect(),
                    pairwise: check
                        .pairwise
                        .iter()
                        .map(|pair| PairView {
                            a: label(pair.a),
                            b: label(pair.b),
                            a_over_b: pair.a_over_b,
                            b_over_a: pair.b_over_a,
                        })
                        .collect(),
                }
            }),
        }
    }
}

/// A ballot on the dashboard.
#[derive(Debug, Serialize)]
pub(crate) struct DashboardEntry {
    pub(crate) id: String,
    pub(crate) measure: String,
    pub(crate) status: &'static str,
    pub(crate) status_label: String,
    /// `None` while the viewer may not see the ballot's results.
    pub(crate) total_votes: Option<u64>,
    pub(crate) vote_url: String,
    pub(crate) results_url: String,
}

/// The address of this instance as the request reached it, for links the
/// owner copies elsewhere: `https` when cookies are `Secure` (staging and
/// production), `http` otherwise, and the request's `Host`. A `Host` that
/// is not a plain host name (or is missing) gives a path alone.
pub(crate) fn origin(secure: bool, headers: &poem::http::HeaderMap) -> String {
    let host = headers
        .get(poem::http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| {
            !host.is_empty()
                && host.len() <= 255
                && host
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b".-:[]".contains(&byte))
        });
    match host {
        Some(host) => format!("{}://{host}", if secure { "https" } else { "http" }),
        None => String::new(),
    }
}

/// The voting link of `token`: `{origin}/i/{token}`.
pub(crate) fn invitation_link(origin: &str, token: &oponn_core::domain::InvitationToken) -> String {
    format!("{origin}/i/{}", token.as_str())
}

/// A ballot's bulletin rows as JSON: each counted vote's receipt and its
/// choice, as the cast-vote record writes a choice (ids, then labels).
pub(crate) fn bulletin_rows(bulletin: &oponn_core::PublishedBulletin) -> Vec<serde_json::Value> {
    bulletin
        .rows
        .iter()
        .map(|row| {
            serde_json::json!({
                "receipt": row.receipt.as_str(),
                "option_ids": row.choice.iter().map(|option| option.get()).collect::<Vec<_>>(),
                "labels": row.choice.iter().map(|option| {
                    bulletin
                        .ballot
                        .option(*option)
                        .map_or_else(|| format!("option {option}"), |found| found.label().to_owned())
                }).collect::<Vec<_>>(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use oponn_testkit::{TestOponn, block_on};

    use super::{VoteAccess, VotePageKey};

    #[test]
    fn a_vote_page_key_matches_only_the_same_ballot_status_origin_and_access() {
        block_on(async {
            let oponn = TestOponn::new();
            let lunch = oponn.create_ballot("Lunch?", &["pizza", "sushi"]).await;
            let dinner = oponn.create_ballot("Lunch?", &["pizza", "sushi"]).await;
            let access = VoteAccess {
                sign_in_required: false,
                invited_only: false,
                invited_voter: false,
            };
            let key = |ballot, label: &str, origin: &'static str, access| VotePageKey {
                ballot: Cow::Borrowed(ballot),
                status: ("active", label.to_owned()),
                origin: Cow::Borrowed(origin),
                access,
            };
            let kept = key(&lunch, "voting open", "http://a", access).into_owned();
            assert_eq!(kept, key(&lunch, "voting open", "http://a", access));
            // Another ballot with the same text, another countdown,
            // another host, another voter's access: another page.
            assert_ne!(kept, key(&dinner, "voting open", "http://a", access));
            assert_ne!(kept, key(&lunch, "ends in 2 hours", "http://a", access));
            assert_ne!(kept, key(&lunch, "voting open", "http://b", access));
            let invited = VoteAccess {
                invited_voter: true,
                ..access
            };
            assert_ne!(kept, key(&lunch, "voting open", "http://a", invited));
        });
    }
}
