//! What the SQL adapters share: row conversions, error mapping, setup
//! errors, and the batch path around the core's vote decision
//! ([`oponn_core::recording::decide_batch`]): a dialect reads rows and
//! writes rows, nothing more.

use oponn_core::crypto::{LabelKey, Sealed, WrappedKey};
use oponn_core::domain::{
    BallotId, BallotMethod, BallotSettings, BulletinRow, Eligibility, InvitationHash, InvitationId,
    OptionId, OwnerId, ReceiptCode, ResultsVisibility, Tally, VoterHash,
};
use oponn_core::ports::{
    BallotRecord, BoxError, Bulletin, InvitationRecord, NewVote, OptionRecord, RecordVoteError,
    RepositoryError,
};
use oponn_core::recording::{BatchWrites, StoredVotes, VoteOutcome, decide_batch};
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
    pub(crate) publish_bulletin: bool,
    pub(crate) method: String,
    pub(crate) min_choices: Option<i64>,
    pub(crate) max_choices: Option<i64>,
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
            publish_bulletin: row.publish_bulletin,
        },
        method: method(&row.method, row.min_choices, row.max_choices)?,
        wrapped_key: WrappedKey::from_bytes(row.wrapped_key),
        measure: Sealed::from_bytes(row.measure),
        options: options
            .into_iter()
            .map(option_record)
            .collect::<Result<_, _>>()?,
    })
}

/// A row of a tally's one read: `(kind, a, b, choice)`, as
/// [`tally_of_rows`] reads it.
pub(crate) type TallyRow = (i64, Option<i64>, Option<i64>, Option<String>);

/// A tally from the rows of one read, each `(kind, a, b, choice)`: kind 0
/// is the ballot's sequence (`a`), kind 1 an option and its count (`a`,
/// `b`), kind 2 a choice and its voters (`choice`, `b`); `None` when there
/// is no ballot row.
///
/// # Errors
/// A corrupt-row outage for a value that cannot be what it stands for.
pub(crate) fn tally_of_rows(rows: Vec<TallyRow>) -> Result<Option<Tally>, RepositoryError> {
    let mut tally_seq = None;
    let mut counts = Vec::new();
    let mut choices = Vec::new();
    for (kind, a, b, choice) in rows {
        match (kind, a, b, choice) {
            (0, Some(seq), _, _) => tally_seq = Some(seq),
            (1, Some(option), Some(count), _) => counts.push((option, count)),
            (2, _, Some(voters), Some(choice)) => choices.push((choice, voters)),
            _ => return Err(corrupt("tally row")),
        }
    }
    tally_seq
        .map(|tally_seq| tally(tally_seq, counts, choices))
        .transpose()
}

/// A stored method: its name and, for approval, its bounds.
pub(crate) fn method(
    name: &str,
    min_choices: Option<i64>,
    max_choices: Option<i64>,
) -> Result<BallotMethod, RepositoryError> {
    let bound = |value: Option<i64>| value.map(u32::try_from).transpose();
    let (min, max) = bound(min_choices)
        .and_then(|min| Ok((min, bound(max_choices)?)))
        .map_err(|_| corrupt("choice bounds"))?;
    BallotMethod::from_parts(name, min, max).ok_or_else(|| corrupt("method"))
}

/// A method's bounds as stored: null unless it is approval.
#[cfg(feature = "sqlite")]
pub(crate) fn method_bounds(method: BallotMethod) -> (Option<i64>, Option<i64>) {
    (
        method.min_choices().map(i64::from),
        method.max_choices().map(i64::from),
    )
}

/// A choice as stored: option ids separated by commas, in its order.
pub(crate) fn choice_text(choice: &[OptionId]) -> String {
    let mut text = String::with_capacity(choice.len() * 3);
    for (at, option) in choice.iter().enumerate() {
        if at > 0 {
            text.push(',');
        }
        text.push_str(&option.get().to_string());
    }
    text
}

/// A stored choice; `first` (the row's `option_id`) when there is none.
///
/// # Errors
/// A corrupt-row outage for text that is not ids separated by commas.
pub(crate) fn parse_choice(
    text: Option<&str>,
    first: i64,
) -> Result<Vec<OptionId>, RepositoryError> {
    match text {
        None => Ok(vec![option_id(first)?]),
        Some(text) => text
            .split(',')
            .map(|id| {
                id.parse::<u32>()
                    .map(OptionId::new)
                    .map_err(|_| corrupt("choice"))
            })
            .collect(),
    }
}

pub(crate) fn tally(
    tally_seq: i64,
    counts: impl IntoIterator<Item = (i64, i64)>,
    choices: impl IntoIterator<Item = (String, i64)>,
) -> Result<Tally, RepositoryError> {
    let counts = counts
        .into_iter()
        .map(|(option, count)| Ok((option_id(option)?, seq(count)?)))
        .collect::<Result<Vec<_>, RepositoryError>>()?;
    let choices = choices
        .into_iter()
        .map(|(choice, voters)| Ok((parse_choice(Some(&choice), 0)?, seq(voters)?)))
        .collect::<Result<Vec<_>, RepositoryError>>()?;
    Ok(Tally::new(seq(tally_seq)?, counts).with_choices(choices))
}

/// Why every vote of a batch failed: the one cause they share, with its
/// chain of sources.
#[derive(Debug, thiserror::Error)]
#[error("the batch was not recorded")]
struct BatchNotRecorded(#[source] std::sync::Arc<dyn std::error::Error + Send + Sync>);

/// A failure several votes share, told to each of them.
type SharedCause = std::sync::Arc<dyn std::error::Error + Send + Sync>;

/// Every vote of a batch failed as one: the same cause, told to each.
pub(crate) fn batch_failed(count: usize, cause: impl Into<BoxError>) -> Vec<VoteOutcome> {
    failed_with(count, &SharedCause::from(cause.into()))
}

/// `count` outcomes, each the outage `cause`.
fn failed_with(count: usize, cause: &SharedCause) -> Vec<VoteOutcome> {
    (0..count)
        .map(|_| {
            Err(RecordVoteError::Unavailable(Box::new(BatchNotRecorded(
                std::sync::Arc::clone(cause),
            ))))
        })
        .collect()
}

/// A ballot as a batch of votes reads it: its sequence and close time, as
/// rows hold them, before its options and votes are added with
/// [`read_option`] and [`read_vote`].
///
/// # Errors
/// A corrupt-row outage when the sequence is negative.
pub(crate) fn stored_votes(
    tally_seq: i64,
    closed_at: Option<OffsetDateTime>,
    method: BallotMethod,
) -> Result<StoredVotes, RepositoryError> {
    Ok(StoredVotes::new(seq(tally_seq)?, closed_at, method))
}

/// Adds one distinct choice with its voters, as read.
///
/// # Errors
/// A corrupt-row outage when the choice or the count cannot be one.
pub(crate) fn read_choice(
    state: &mut StoredVotes,
    choice: &str,
    voters: i64,
) -> Result<(), RepositoryError> {
    let voters = u64::try_from(voters).map_err(|_| corrupt("choice count"))?;
    state.add_choice(parse_choice(Some(choice), 0)?, voters);
    Ok(())
}

/// Adds one of the ballot's options, as read.
///
/// # Errors
/// A corrupt-row outage when the id, the label key or the count cannot be one.
pub(crate) fn read_option(
    state: &mut StoredVotes,
    option: i64,
    label_key: &[u8],
    vote_count: i64,
) -> Result<(), RepositoryError> {
    let label_key: [u8; 32] = label_key.try_into().map_err(|_| corrupt("label key"))?;
    let vote_count = u64::try_from(vote_count).map_err(|_| corrupt("vote count"))?;
    state.add_option(
        option_id(option)?,
        LabelKey::from_bytes(label_key),
        vote_count,
    );
    Ok(())
}

/// Adds a stored vote one of the batch's voters holds or is an alias of,
/// with its receipt (none for a vote cast before receipts) and the alias
/// that led to it, if any, as read.
///
/// # Errors
/// A corrupt-row outage when a hash, the option id or the receipt cannot
/// be one.
pub(crate) fn read_vote(
    state: &mut StoredVotes,
    voter_hash: &[u8],
    option: i64,
    choice: Option<&str>,
    receipt: Option<&str>,
    alias: Option<&[u8]>,
) -> Result<(), RepositoryError> {
    let holder = voter_hash_of(voter_hash)?;
    let choice = parse_choice(choice, option)?;
    let receipt = receipt.map(receipt_code).transpose()?;
    if let Some(alias) = alias {
        state.add_alias(voter_hash_of(alias)?, holder);
    }
    state.add_vote(holder, choice, receipt);
    Ok(())
}

/// Adds a receipt of the batch's votes that the ballot already gave (to a
/// counted or a replaced vote), as read.
///
/// # Errors
/// A corrupt-row outage when the text is not a receipt code.
pub(crate) fn read_taken_receipt(
    state: &mut StoredVotes,
    receipt: &str,
) -> Result<(), RepositoryError> {
    state.add_taken_receipt(receipt_code(receipt)?);
    Ok(())
}

/// Adds an invitation of the batch's votes that its owner revoked, as read.
///
/// # Errors
/// A corrupt-row outage when the number cannot be an invitation's.
pub(crate) fn read_revoked_invitation(
    state: &mut StoredVotes,
    invitation: i64,
) -> Result<(), RepositoryError> {
    state.add_revoked_invitation(invitation_id(invitation)?);
    Ok(())
}

/// A stored receipt code.
///
/// # Errors
/// A corrupt-row outage for text that is not a code as the core writes it.
pub(crate) fn receipt_code(text: &str) -> Result<ReceiptCode, RepositoryError> {
    ReceiptCode::parse(text)
        .filter(|code| code.as_str() == text)
        .ok_or_else(|| corrupt("receipt"))
}

/// A stored invitation number.
///
/// # Errors
/// A corrupt-row outage for a number no invitation has.
pub(crate) fn invitation_id(number: i64) -> Result<InvitationId, RepositoryError> {
    u32::try_from(number)
        .ok()
        .filter(|&number| number > 0)
        .map(InvitationId::new)
        .ok_or_else(|| corrupt("invitation id"))
}

/// The invitations a decided batch marks used, each once with the time of
/// the first vote cast with it (later ones leave `used_at` as it is).
pub(crate) fn first_uses(
    used: &[(InvitationId, OffsetDateTime)],
) -> Vec<(InvitationId, OffsetDateTime)> {
    let mut seen = std::collections::HashSet::with_capacity(used.len());
    used.iter()
        .copied()
        .filter(|(invitation, _)| seen.insert(*invitation))
        .collect()
}

/// An invitation row as both dialects read it, times converted.
pub(crate) struct InvitationRow {
    pub(crate) ballot_id: Vec<u8>,
    pub(crate) invitation_id: i64,
    pub(crate) token_hash: Vec<u8>,
    pub(crate) label: Option<Vec<u8>>,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) used_at: Option<OffsetDateTime>,
    pub(crate) revoked_at: Option<OffsetDateTime>,
}

/// An invitation row as the port's record.
///
/// # Errors
/// A corrupt-row outage when the ballot id, the number or the token hash
/// cannot be one.
pub(crate) fn invitation_record(row: InvitationRow) -> Result<InvitationRecord, RepositoryError> {
    let token_hash: [u8; 32] = row
        .token_hash
        .as_slice()
        .try_into()
        .map_err(|_| corrupt("invitation token hash"))?;
    Ok(InvitationRecord {
        ballot_id: ballot_id(&row.ballot_id)?,
        id: invitation_id(row.invitation_id)?,
        token_hash: InvitationHash::from_bytes(token_hash),
        label: row.label.map(Sealed::from_bytes),
        created_at: row.created_at,
        used_at: row.used_at,
        revoked_at: row.revoked_at,
    })
}

/// A row of a bulletin's one read: `(tally_seq, receipt, option_id,
/// choice)`, as [`bulletin_of_rows`] reads it.
pub(crate) type BulletinReadRow = (Option<i64>, Option<String>, Option<i64>, Option<String>);

/// A bulletin from the rows of one read (one snapshot): the ballot's row
/// carries its sequence (`tally_seq`), each other row one counted vote
/// with a receipt (`receipt`, its first option and whole choice); `None`
/// when there is no ballot row. The rows come out sorted by receipt, as
/// the core orders codes.
///
/// # Errors
/// A corrupt-row outage for a value that cannot be what it stands for.
pub(crate) fn bulletin_of_rows(
    rows: Vec<BulletinReadRow>,
) -> Result<Option<Bulletin>, RepositoryError> {
    let mut tally_seq = None;
    let mut votes = Vec::with_capacity(rows.len());
    for row in rows {
        match row {
            (Some(ballot_seq), None, None, None) => tally_seq = Some(seq(ballot_seq)?),
            (None, Some(receipt), Some(option), choice) => votes.push(BulletinRow {
                receipt: receipt_code(&receipt)?,
                choice: parse_choice(choice.as_deref(), option)?,
            }),
            _ => return Err(corrupt("bulletin row")),
        }
    }
    votes.sort_by(|a, b| a.receipt.cmp(&b.receipt));
    Ok(tally_seq.map(|tally_seq| Bulletin {
        tally_seq,
        rows: votes,
    }))
}

/// A stored voter or alias hash.
fn voter_hash_of(bytes: &[u8]) -> Result<VoterHash, RepositoryError> {
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| corrupt("voter hash"))?;
    Ok(VoterHash::from_bytes(bytes))
}

/// An option id as a SQL integer.
#[cfg(feature = "sqlite")]
pub(crate) fn option_number(option: OptionId) -> i64 {
    i64::from(option.get())
}

/// A count or sequence as a SQL integer; `None` past `i64::MAX`, which no
/// real ballot reaches.
pub(crate) fn sql_count(count: u64) -> Result<i64, BoxError> {
    i64::try_from(count).map_err(|_| "a count past the largest SQL integer".into())
}

/// How one SQL dialect reads and writes a vote batch; [`record_batches`]
/// runs what the dialects share around them.
pub(crate) trait BatchDialect {
    /// The transaction a turn's batches are written in.
    type Batch: Send;
    /// The largest option id the schema stores: a new write-in above it is
    /// refused as taken.
    const MAX_OPTION_ID: OptionId;

    /// Begins a transaction that may write the ballots' votes (or gets
    /// ready to: a dialect may send its `BEGIN` with the first read).
    fn begin_batch(&self) -> impl Future<Output = Result<Self::Batch, sqlx::Error>> + Send;

    /// Reads what deciding the batch needs (the ballot's sequence and
    /// close, its options, the stored votes every identity of the batch's
    /// voters holds or is an alias of, and those aliases) inside `batch`;
    /// `None` when there is no such ballot.
    fn batch_state(
        batch: &mut Self::Batch,
        ballot: &[u8],
        votes: &[NewVote],
    ) -> impl Future<Output = Result<Option<StoredVotes>, BoxError>> + Send;

    /// Writes what a decided batch changed inside `batch`. `last`: no
    /// read or write follows in this transaction, so a dialect may send
    /// its `COMMIT` with this write.
    fn write_batch(
        batch: &mut Self::Batch,
        ballot: &[u8],
        writes: &BatchWrites<'_>,
        last: bool,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// Commits `batch` (or confirms the commit its last write carried).
    /// A batch dropped before this rolls back.
    fn commit_batch(batch: Self::Batch) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// The outcome of a batch of one vote.
pub(crate) fn only_outcome(outcomes: Vec<VoteOutcome>) -> VoteOutcome {
    outcomes.into_iter().next().unwrap_or_else(|| {
        Err(RecordVoteError::Unavailable(
            "the vote got no outcome".into(),
        ))
    })
}

/// Records each of `votes` alone, in order, with `record`: how votes of
/// several ballots are recorded, since a batch is one ballot's.
pub(crate) async fn each_alone<'a, F, Fut>(votes: &'a [NewVote], mut record: F) -> Vec<VoteOutcome>
where
    F: FnMut(&'a NewVote) -> Fut,
    Fut: Future<Output = VoteOutcome>,
{
    let mut outcomes = Vec::with_capacity(votes.len());
    for vote in votes {
        outcomes.push(record(vote).await);
    }
    outcomes
}

/// Records the batches of several ballots in one transaction: each is
/// read (one read), its votes decided in memory, and written (one write);
/// one commit makes them all durable (one flush to disk for all). Nothing
/// is acknowledged before the commit. The outcomes are per batch, in
/// order. If anything fails, every vote of every batch gets the outage
/// error and the dropped transaction rolls back whatever was written.
///
/// The batches come in ballot id order ([`crate::writer::VoteWriter`]
/// takes them so): where writers run side by side (PostgreSQL, several
/// instances), transactions that lock several ballots then lock them in
/// one order, and never wait for each other in a cycle.
pub(crate) async fn record_batches<D: BatchDialect + Sync>(
    dialect: &D,
    batches: &[(&BallotId, &[NewVote])],
) -> Vec<Vec<VoteOutcome>> {
    let all_failed = |error: BoxError| {
        let cause = SharedCause::from(error);
        batches
            .iter()
            .map(|(_, votes)| failed_with(votes.len(), &cause))
            .collect()
    };
    let mut batch = match dialect.begin_batch().await {
        Ok(batch) => batch,
        Err(error) => return all_failed(error.into()),
    };
    let mut outcomes = Vec::with_capacity(batches.len());
    for (index, (ballot, votes)) in batches.iter().enumerate() {
        let id = ballot.as_bytes().as_slice();
        let last = index + 1 == batches.len();
        let decided: Result<Vec<VoteOutcome>, BoxError> = async {
            let Some(state) = D::batch_state(&mut batch, id, votes).await? else {
                return Ok(votes
                    .iter()
                    .map(|_| Err(RecordVoteError::BallotNotFound))
                    .collect());
            };
            let decided = decide_batch(state, votes, D::MAX_OPTION_ID);
            D::write_batch(&mut batch, id, &decided.writes, last).await?;
            Ok(decided.outcomes)
        }
        .await;
        match decided {
            Ok(decided) => outcomes.push(decided),
            Err(error) => return all_failed(error),
        }
    }
    match D::commit_batch(batch).await {
        Ok(()) => outcomes,
        Err(error) => all_failed(error),
    }
}

/// The ballot every vote of `votes` is on, or `None` when they are on
/// several (or there are none): only a one-ballot batch is read and
/// decided as one.
pub(crate) fn one_ballot(votes: &[NewVote]) -> Option<BallotId> {
    let first = votes.first()?.ballot_id;
    votes
        .iter()
        .all(|vote| vote.ballot_id == first)
        .then_some(first)
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

#[cfg(test)]
mod tests {
    // A test fails by panicking.
    #![allow(clippy::unwrap_used)]

    use oponn_core::domain::{BallotId, InvitationId, OptionId, VoterHash};
    use oponn_core::ports::{NewVote, VoteTarget};
    use time::OffsetDateTime;

    use super::{
        bulletin_of_rows, choice_text, first_uses, one_ballot, parse_choice, read_choice,
        read_option, read_revoked_invitation, read_taken_receipt, read_vote, stored_votes,
    };
    use oponn_core::domain::BallotMethod;

    fn ballot() -> BallotId {
        BallotId::from_bytes([7; 16])
    }

    fn to(option: u32) -> impl Fn(u8) -> NewVote {
        move |n| NewVote {
            ballot_id: ballot(),
            voter: VoterHash::from_bytes([n; 32]),
            aliases: Vec::new(),
            choice: vec![VoteTarget::Existing(OptionId::new(option))],
            cast_at: OffsetDateTime::UNIX_EPOCH,
            allow_change: false,
            receipt: oponn_core::domain::ReceiptCode::generate(),
            invitation: None,
        }
    }

    #[test]
    fn corrupt_values_are_refused_as_they_are_read() {
        assert!(stored_votes(-1, None, BallotMethod::Single).is_err());
        let mut state = stored_votes(4, None, BallotMethod::Single).unwrap();
        assert!(read_option(&mut state, 1, &[1; 32], 3).is_ok());
        assert!(read_option(&mut state, 3, &[3; 32], -1).is_err());
        assert!(read_option(&mut state, i64::from(u32::MAX) + 1, &[3; 32], 0).is_err());
        assert!(read_option(&mut state, 3, &[3; 31], 0).is_err());
        assert!(read_vote(&mut state, &[1; 32], -2, None, None, None).is_err());
        assert!(read_vote(&mut state, &[1; 31], 1, None, None, None).is_err());
        assert!(read_vote(&mut state, &[2; 33], 1, None, None, Some(&[1; 32])).is_err());
        assert!(read_vote(&mut state, &[2; 32], 1, None, None, Some(&[1; 31])).is_err());
        assert!(read_vote(&mut state, &[2; 32], 1, Some("1,x"), None, None).is_err());
        assert!(read_vote(&mut state, &[2; 32], 1, None, Some("0123"), None).is_err());
        assert!(read_vote(&mut state, &[2; 32], 1, Some("2,1"), None, None).is_ok());
        assert!(read_vote(&mut state, &[3; 32], 1, None, Some("0123456789"), None).is_ok());
        // A code as a person might type it is not how the core stores one.
        assert!(read_taken_receipt(&mut state, "0123-45678").is_err());
        assert!(read_taken_receipt(&mut state, "o123456789").is_err());
        assert!(read_taken_receipt(&mut state, "ABCDEFGHJK").is_ok());
        assert!(read_revoked_invitation(&mut state, 0).is_err());
        assert!(read_revoked_invitation(&mut state, i64::from(u32::MAX) + 1).is_err());
        assert!(read_revoked_invitation(&mut state, 3).is_ok());
        assert!(read_choice(&mut state, "1,2", -1).is_err());
        assert!(read_choice(&mut state, "", 1).is_err());
        assert!(read_choice(&mut state, "3,1", 1).is_ok());
    }

    #[test]
    fn choices_are_stored_as_ids_in_order() {
        let choice = [3, 1, 20].map(OptionId::new);
        assert_eq!(choice_text(&choice), "3,1,20");
        assert_eq!(parse_choice(Some("3,1,20"), 0).unwrap(), choice);
        assert_eq!(parse_choice(None, 7).unwrap(), [OptionId::new(7)]);
    }

    #[test]
    fn a_bulletin_is_sorted_by_receipt_and_refuses_corrupt_rows() {
        let vote = |receipt: &str, option: i64, choice: Option<&str>| {
            (
                None,
                Some(receipt.to_owned()),
                Some(option),
                choice.map(str::to_owned),
            )
        };
        let bulletin = bulletin_of_rows(vec![
            vote("Z000000000", 2, Some("2,1")),
            (Some(7), None, None, None),
            vote("0000000001", 1, None),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(bulletin.tally_seq, 7);
        let rows: Vec<(&str, Vec<OptionId>)> = bulletin
            .rows
            .iter()
            .map(|row| (row.receipt.as_str(), row.choice.clone()))
            .collect();
        assert_eq!(
            rows,
            [
                ("0000000001", vec![OptionId::new(1)]),
                ("Z000000000", vec![OptionId::new(2), OptionId::new(1)]),
            ]
        );
        assert_eq!(bulletin_of_rows(Vec::new()).unwrap(), None);
        assert!(bulletin_of_rows(vec![vote("short", 1, None)]).is_err());
        assert!(bulletin_of_rows(vec![(Some(-1), None, None, None)]).is_err());
        assert!(bulletin_of_rows(vec![(None, None, Some(1), None)]).is_err());
    }

    #[test]
    fn an_invitation_is_marked_used_by_its_first_vote() {
        let at = |seconds| OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(seconds);
        let (one, two) = (InvitationId::new(1), InvitationId::new(2));
        assert_eq!(
            first_uses(&[(one, at(1)), (two, at(2)), (one, at(3))]),
            [(one, at(1)), (two, at(2))]
        );
    }

    #[test]
    fn only_a_one_ballot_batch_is_decided_as_one() {
        let mut other = to(1)(2);
        other.ballot_id = BallotId::from_bytes([8; 16]);
        assert_eq!(one_ballot(&[to(1)(1), to(2)(2)]), Some(ballot()));
        assert_eq!(one_ballot(&[to(1)(1), other]), None);
        assert_eq!(one_ballot(&[]), None);
    }
}
