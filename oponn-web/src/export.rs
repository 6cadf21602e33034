//! Result exports, as both front ends serve them: the pages'
//! `/results/{id}/export.{json,csv}` and the API's
//! `GET /api/v1/ballots/{id}/results`; and the cast-vote records
//! (`/results/{id}/ballots.{json,csv}`, `GET /api/v1/ballots/{id}/ballots`)
//! from which anyone can recount. One rendering, so the two cannot drift.

use oponn_core::domain::{Ballot, OptionId, Results};
use poem_openapi::types::ToJSON as _;
use serde_json::json;

use crate::wire::{CondorcetBody, RunoffBody};
use time::format_description::well_known::Rfc3339;

/// The media type of a CSV export.
pub(crate) const CSV_MEDIA_TYPE: &str = "text/csv; charset=utf-8";

fn timestamp(at: time::OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// The export of `ballot`'s results as JSON: its metadata, then one entry
/// per option with count and percentage.
pub(crate) fn export_document(
    ballot: &Ballot,
    results: &Results,
    now: time::OffsetDateTime,
) -> serde_json::Value {
    let settings = ballot.settings();
    json!({
        "ballot": {
            "id": ballot.id().to_string(),
            "measure": ballot.measure(),
            "status": ballot.status_at(now).as_str(),
            "created_at": timestamp(ballot.created_at()),
            "starts_at": timestamp(ballot.schedule().starts_at()),
            "ends_at": ballot.schedule().ends_at().map(timestamp),
            "closed_at": ballot.closed_at().map(timestamp),
            "allow_write_in": ballot.allow_write_in(),
            "eligibility": settings.eligibility.as_str(),
            "allow_vote_change": settings.allow_vote_change,
            "results_visibility": settings.results_visibility.as_str(),
            "method": ballot.method().as_str(),
            "min_choices": ballot.method().min_choices(),
            "max_choices": ballot.method().max_choices(),
        },
        "exported_at": timestamp(now),
        "seq": results.seq,
        "total": results.total,
        "options": results.rows.iter().map(|row| json!({
            "option_id": row.option_id.get(),
            "option": row.label,
            "count": row.count,
            "percentage": (row.percent * 10.0).round() / 10.0,
        })).collect::<Vec<_>>(),
        "instant_runoff": results.ranked.as_ref()
            .and_then(|ranked| RunoffBody::from(&ranked.instant_runoff).to_json()),
        "condorcet": results.ranked.as_ref()
            .and_then(|ranked| CondorcetBody::from(&ranked.condorcet).to_json()),
    })
}

/// The label of `option` on `results`' ballot.
fn label(results: &Results, option: OptionId) -> String {
    results
        .rows
        .iter()
        .find(|row| row.option_id == option)
        .map_or_else(|| format!("option {option}"), |row| row.label.clone())
}

/// Every counted vote, one entry per voter, in choice order (which says
/// nothing about when or by whom): what a cast-vote record lists.
fn each_vote(results: &Results) -> impl Iterator<Item = &[OptionId]> + '_ {
    results.choices.iter().flat_map(|(choice, voters)| {
        std::iter::repeat_n(
            choice.as_slice(),
            usize::try_from(*voters).unwrap_or(usize::MAX),
        )
    })
}

/// The cast-vote record as JSON: the ballot, its options, and one entry
/// per vote with the options chosen in order (rank order for a ranking),
/// by id and label. No voter, no time.
pub(crate) fn ballots_document(ballot: &Ballot, results: &Results) -> serde_json::Value {
    json!({
        "ballot_id": ballot.id().to_string(),
        "measure": ballot.measure(),
        "method": ballot.method().as_str(),
        "seq": results.seq,
        "total": results.total,
        "options": results.rows.iter().map(|row| json!({
            "option_id": row.option_id.get(),
            "label": row.label,
        })).collect::<Vec<_>>(),
        "ballots": each_vote(results).map(|choice| json!({
            "option_ids": choice.iter().map(|option| option.get()).collect::<Vec<_>>(),
            "labels": choice.iter().map(|option| label(results, *option)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// The cast-vote record as CSV: `option_ids` (the ids chosen, separated
/// by spaces, in order), then `choice_1` … one label per column.
pub(crate) fn ballots_csv_text(results: &Results) -> Result<String, csv::Error> {
    let width = results
        .choices
        .iter()
        .map(|(choice, _)| choice.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["option_ids".to_owned()];
    header.extend((1..=width).map(|place| format!("choice_{place}")));
    writer.write_record(&header)?;
    for choice in each_vote(results) {
        let mut record = Vec::with_capacity(width + 1);
        record.push(
            choice
                .iter()
                .map(|option| option.get().to_string())
                .collect::<Vec<_>>()
                .join(" "),
        );
        record.extend(
            choice
                .iter()
                .map(|option| spreadsheet_safe(&label(results, *option))),
        );
        record.resize(width + 1, String::new());
        writer.write_record(&record)?;
    }
    let bytes = writer.into_inner().map_err(|error| error.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The export as CSV: a header row, then `option,count,percentage` rows.
pub(crate) fn export_csv_text(results: &Results) -> Result<String, csv::Error> {
    // Flexible: a ranked ballot's export holds tables of three and four
    // columns.
    let mut writer = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    writer.write_record(["option", "count", "percentage"])?;
    for row in &results.rows {
        writer.write_record([
            spreadsheet_safe(&row.label),
            row.count.to_string(),
            format!("{:.1}", row.percent),
        ])?;
    }
    if let Some(ranked) = &results.ranked {
        // The instant-runoff rounds, then the head-to-head counts, each
        // as a table of its own after an empty row.
        writer.write_record(["", "", ""])?;
        writer.write_record(["round", "option", "votes"])?;
        for (number, round) in ranked.instant_runoff.rounds.iter().enumerate() {
            let number = (number + 1).to_string();
            for &(option, votes) in &round.counts {
                let eliminated = round.eliminated == Some(option);
                let mut name = spreadsheet_safe(&label(results, option));
                if eliminated {
                    name.push_str(" (eliminated)");
                }
                writer.write_record([number.clone(), name, votes.to_string()])?;
            }
            writer.write_record([
                number,
                "(exhausted)".to_owned(),
                round.exhausted.to_string(),
            ])?;
        }
        writer.write_record(["", "", ""])?;
        writer.write_record(["option_a", "option_b", "a_over_b", "b_over_a"])?;
        for pair in &ranked.condorcet.pairwise {
            writer.write_record([
                spreadsheet_safe(&label(results, pair.a)),
                spreadsheet_safe(&label(results, pair.b)),
                pair.a_over_b.to_string(),
                pair.b_over_a.to_string(),
            ])?;
        }
    }
    let bytes = writer.into_inner().map_err(|error| error.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Characters that make a spreadsheet read a cell as a formula (or, for
/// tab and the line breaks, shift it into one) when a cell begins with them;
/// the full-width forms too, which some spreadsheets fold to ASCII.
const FORMULA_TRIGGERS: &[char] = &[
    '=', '+', '-', '@', '\t', '\r', '\n', '\u{FF1D}', '\u{FF0B}', '\u{FF0D}', '\u{FF20}',
];

/// A text cell a spreadsheet will show as text: one that begins with a
/// formula trigger gets a leading `'` (OWASP's advice for CSV injection).
/// For CSV only: JSON keeps text verbatim.
pub(crate) fn spreadsheet_safe(text: &str) -> String {
    if text.starts_with(FORMULA_TRIGGERS) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// The `Content-Disposition` of an export: a download named after the ballot.
pub(crate) fn attachment(ballot: &Ballot, extension: &str) -> String {
    format!("attachment; filename=\"oponn-{}.{extension}\"", ballot.id())
}
