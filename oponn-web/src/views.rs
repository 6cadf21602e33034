//! Templates and the view models they render: the web crate's own wire
//! types, converted from the core's domain types at the edge.

use minijinja::{AutoEscape, Environment};
use oponn_core::domain::{Ballot, Results, Status};
use serde::Serialize;
use time::OffsetDateTime;

use crate::assets::TemplateFiles;

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
#[derive(Debug, Serialize)]
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
            id,
        }
    }
}

/// One option of a ballot.
#[derive(Debug, Serialize)]
pub(crate) struct OptionView {
    pub(crate) id: u32,
    pub(crate) label: String,
}

/// A ballot's results as pages show them.
#[derive(Debug, Serialize)]
pub(crate) struct ResultsView {
    pub(crate) rows: Vec<RowView>,
    pub(crate) total: u64,
    pub(crate) seq: u64,
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
                })
                .collect(),
            total: results.total,
            seq: results.seq,
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
