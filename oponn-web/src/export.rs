//! Result exports, as both front ends serve them: the pages'
//! `/results/{id}/export.{json,csv}` and the API's
//! `GET /api/v1/ballots/{id}/results`. One rendering, so the two cannot
//! drift.

use oponn_core::domain::{Ballot, Results};
use serde_json::json;
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
        },
        "exported_at": timestamp(now),
        "seq": results.seq,
        "total": results.total,
        "options": results.rows.iter().map(|row| json!({
            "option": row.label,
            "count": row.count,
            "percentage": (row.percent * 10.0).round() / 10.0,
        })).collect::<Vec<_>>(),
    })
}

/// The export as CSV: a header row, then `option,count,percentage` rows.
pub(crate) fn export_csv_text(results: &Results) -> Result<String, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(["option", "count", "percentage"])?;
    for row in &results.rows {
        writer.write_record([
            spreadsheet_safe(&row.label),
            row.count.to_string(),
            format!("{:.1}", row.percent),
        ])?;
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
