//! What the SQL adapters share: row conversions, error mapping, setup errors.

use oponn_core::crypto::{LabelKey, Sealed, WrappedKey};
use oponn_core::domain::{
    BallotId, BallotSettings, Eligibility, OptionId, OwnerId, ResultsVisibility, Tally,
};
use oponn_core::ports::{BallotRecord, OptionRecord, RepositoryError};
use time::OffsetDateTime;

/// A ballot row, with its wrapped key, as both dialects read it.
pub(crate) struct BallotRow {
    pub(crate) id: Vec<u8>,
    pub(crate) owner_id: Option<String>,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) starts_at: OffsetDateTime,
    pub(crate) ends_at: Option<OffsetDateTime>,
    pub(crate) closed_at: Option<OffsetDateTime>,
    pub(crate) allow_write_in: bool,
    pub(crate) measure: Vec<u8>,
    pub(crate) wrapped_key: Vec<u8>,
    pub(crate) eligibility: String,
    pub(crate) allow_vote_change: bool,
    pub(crate) results_visibility: String,
}

/// An option row, as both dialects read it.
#[derive(sqlx::FromRow)]
pub(crate) struct OptionRow {
    pub(crate) option_id: i64,
    pub(crate) label: Vec<u8>,
    pub(crate) label_key: Vec<u8>,
    pub(crate) write_in: bool,
}

/// A row that cannot be what this schema wrote: reported as unavailable
/// storage rather than a panic.
pub(crate) fn corrupt(what: &str) -> RepositoryError {
    RepositoryError::Unavailable(format!("corrupt row: {what}").into())
}

/// An account-storage failure.
pub(crate) fn account_unavailable(error: sqlx::Error) -> oponn_core::ports::AccountError {
    oponn_core::ports::AccountError::Unavailable(Box::new(error))
}

pub(crate) fn unavailable(error: sqlx::Error) -> RepositoryError {
    RepositoryError::Unavailable(Box::new(error))
}

pub(crate) fn ballot_id(bytes: &[u8]) -> Result<BallotId, RepositoryError> {
    let bytes: [u8; 16] = bytes.try_into().map_err(|_| corrupt("ballot id"))?;
    Ok(BallotId::from_bytes(bytes))
}

pub(crate) fn option_id(number: i64) -> Result<OptionId, RepositoryError> {
    u32::try_from(number)
        .map(OptionId::new)
        .map_err(|_| corrupt("option id"))
}

pub(crate) fn seq(number: i64) -> Result<u64, RepositoryError> {
    u64::try_from(number).map_err(|_| corrupt("sequence"))
}

pub(crate) fn option_record(row: OptionRow) -> Result<OptionRecord, RepositoryError> {
    let label_key: [u8; 32] = row
        .label_key
        .as_slice()
        .try_into()
        .map_err(|_| corrupt("label key"))?;
    Ok(OptionRecord {
        id: option_id(row.option_id)?,
        label: Sealed::from_bytes(row.label),
        label_key: LabelKey::from_bytes(label_key),
        write_in: row.write_in,
    })
}

pub(crate) fn ballot_record(
    row: BallotRow,
    options: Vec<OptionRow>,
) -> Result<BallotRecord, RepositoryError> {
    Ok(BallotRecord {
        id: ballot_id(&row.id)?,
        owner: row.owner_id.map(OwnerId::new),
        created_at: row.created_at,
        starts_at: row.starts_at,
        ends_at: row.ends_at,
        closed_at: row.closed_at,
        allow_write_in: row.allow_write_in,
        settings: BallotSettings {
            eligibility: Eligibility::parse(&row.eligibility)
                .ok_or_else(|| corrupt("eligibility"))?,
            allow_vote_change: row.allow_vote_change,
            results_visibility: ResultsVisibility::parse(&row.results_visibility)
                .ok_or_else(|| corrupt("results visibility"))?,
        },
        wrapped_key: WrappedKey::from_bytes(row.wrapped_key),
        measure: Sealed::from_bytes(row.measure),
        options: options
            .into_iter()
            .map(option_record)
            .collect::<Result<_, _>>()?,
    })
}

pub(crate) fn tally(
    tally_seq: i64,
    counts: impl IntoIterator<Item = (i64, i64)>,
) -> Result<Tally, RepositoryError> {
    let counts = counts
        .into_iter()
        .map(|(option, count)| Ok((option_id(option)?, seq(count)?)))
        .collect::<Result<Vec<_>, RepositoryError>>()?;
    Ok(Tally::new(seq(tally_seq)?, counts))
}

/// The receipt of a recorded vote, from the rows as read back: the option
/// it counts toward, the ballot's sequence and counts after it, and the
/// option it moved from when it changed an earlier vote.
pub(crate) fn recorded(
    option: i64,
    tally_seq: i64,
    counts: Vec<(i64, i64)>,
    changed_from: Option<i64>,
) -> Result<oponn_core::ports::RecordedVote, oponn_core::ports::RecordVoteError> {
    let outage = |error: RepositoryError| match error {
        RepositoryError::Unavailable(source) => {
            oponn_core::ports::RecordVoteError::Unavailable(source)
        }
        other => oponn_core::ports::RecordVoteError::Unavailable(Box::new(other)),
    };
    Ok(oponn_core::ports::RecordedVote {
        option_id: option_id(option).map_err(outage)?,
        tally: tally(tally_seq, counts).map_err(outage)?,
        changed_from: changed_from.map(option_id).transpose().map_err(outage)?,
    })
}

/// Every vote of a batch failed as one: the same cause, told to each.
pub(crate) fn batch_failed(
    count: usize,
    cause: &dyn std::fmt::Display,
) -> Vec<Result<oponn_core::ports::RecordedVote, oponn_core::ports::RecordVoteError>> {
    (0..count)
        .map(|_| {
            Err(oponn_core::ports::RecordVoteError::Unavailable(
                format!("the batch was not recorded: {cause}").into(),
            ))
        })
        .collect()
}

/// True for a failure of storage itself, after which a transaction may
/// hold half a vote and must not commit.
pub(crate) fn is_outage(
    outcome: &Result<oponn_core::ports::RecordedVote, oponn_core::ports::RecordVoteError>,
) -> bool {
    matches!(
        outcome,
        Err(oponn_core::ports::RecordVoteError::Unavailable(_))
    )
}

/// Why a SQL repository could not be opened or brought up to date.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqlSetupError {
    /// The database cannot be reached or opened.
    #[error("cannot open the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// Applying migrations failed.
    #[error("applying migrations failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// Reading which migrations were applied failed.
    #[error("reading applied migrations failed: {0}")]
    Inspect(#[source] sqlx::Error),
}

/// The migrations of `migrator` not yet applied, given the applied versions.
pub(crate) fn pending(migrator: &sqlx::migrate::Migrator, applied: &[i64]) -> Vec<String> {
    migrator
        .iter()
        .filter(|migration| !applied.contains(&migration.version))
        .map(|migration| format!("{} {}", migration.version, migration.description))
        .collect()
}

/// An account row as both dialects read it.
pub(crate) fn account(
    (id, email, created_at): (String, String, OffsetDateTime),
) -> Result<oponn_core::domain::Account, oponn_core::ports::AccountError> {
    let email = oponn_core::domain::Email::parse(&email).map_err(|_| {
        oponn_core::ports::AccountError::Unavailable("corrupt row: account email".into())
    })?;
    Ok(oponn_core::domain::Account::new(
        oponn_core::domain::AccountId::new(id),
        email,
        created_at,
    ))
}
