//! Ballots, votes and tallies in PostgreSQL: the source of truth when
//! several instances serve the same ballots.
//!
//! A batch of votes (group commit) locks its ballot's row first, so
//! batches on one ballot queue there, even with no distributed lock. Under
//! that lock it reads the ballot's sequence, options and its voters' votes
//! once, decides every vote in memory, and writes with a few `unnest`
//! statements, so its cost does not grow with its size in round trips: the
//! sequence number, the per-option counters and the votes move together in
//! one transaction, and a tally is read from the counters without scanning
//! votes. The schema's keys back the invariants up: the votes table's
//! primary key `votes_one_per_voter` keeps one vote per voter per ballot,
//! `ballot_options_one_per_label` one option per label and
//! `votes_one_per_receipt` one vote per receipt; a batch that somehow
//! broke one fails as a whole, recording nothing.
//!
//! Issuing and revoking voter links lock the same ballot row, so they take
//! turns with vote batches: a link's limit and numbering hold under
//! concurrent requests, and a link is never both used and revoked
//! (`invitations_used_or_revoked` backs that up).
//!
//! # Layout
//!
//! - this file: connecting, migrations, and the ballot repository.
//! - `votes.rs`: the vote batch: `FOR UPDATE`, one union read, the core's
//!   decision, one statement of data-modifying CTEs over `unnest`.
//! - `accounts.rs`: accounts and sessions.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oponn_core::domain::{
    BallotId, InvitationHash, InvitationId, OptionId, OwnerId, ReceiptCode, ReceiptStatus, Tally,
    VoterHash,
};
use oponn_core::ports::{
    AddInvitationsError, BallotRecord, BallotRepository, BoxError, Bulletin, InvitationRecord,
    NewInvitation, NewVote, Page, RecordVoteError, RecordedVote, RepositoryError, Revoked,
};
use oponn_core::recording::VoteOutcome;
use sqlx::Row as _;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use time::OffsetDateTime;

mod accounts;
mod votes;

use crate::probe::{WRITE_PROBE_BYTES, WriteProbe};
use crate::sql::{
    BallotRow, BulletinReadRow, InvitationRow, OptionRow, SqlSetupError, TallyRow, ballot_record,
    bulletin_of_rows, corrupt, each_alone, invitation_record, one_ballot, only_outcome,
    parse_choice, pending, tally_of_rows, unavailable,
};
use crate::writer::VoteWriter;

/// The schema's migrations, compiled in.
static MIGRATOR: Migrator = sqlx::migrate!("../migrations/postgres");

/// Tunables of the connection pool.
#[derive(Debug, Clone)]
pub struct PostgresSettings {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long a query waits for a connection before the repository
    /// reports storage unavailable: short, so an outage answers `503`
    /// quickly instead of hanging the voter.
    pub acquire_timeout: Duration,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        Self {
            max_connections: 32,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

/// A [`BallotRepository`] over a PostgreSQL connection pool.
#[derive(Debug, Clone)]
pub struct PostgresRepository {
    pool: PgPool,
    /// When the database last accepted a readiness write.
    probe: Arc<WriteProbe>,
    /// This instance's vote writer: batches waiting for it, of any
    /// ballot, commit together (`crate::writer`).
    vote_writer: Arc<VoteWriter>,
}

impl PostgresRepository {
    /// Connects to `url` with default settings.
    ///
    /// # Errors
    /// [`SqlSetupError::Connect`] when the server cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, SqlSetupError> {
        Self::connect_with(url, &PostgresSettings::default()).await
    }

    /// Connects to `url`.
    ///
    /// # Errors
    /// [`SqlSetupError::Connect`] when the server cannot be reached.
    pub async fn connect_with(
        url: &str,
        settings: &PostgresSettings,
    ) -> Result<Self, SqlSetupError> {
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect(url)
            .await
            .map_err(SqlSetupError::Connect)?;
        Ok(Self {
            pool,
            probe: Arc::new(WriteProbe::default()),
            vote_writer: Arc::new(VoteWriter::default()),
        })
    }

    /// Applies every migration not yet applied.
    ///
    /// # Errors
    /// [`SqlSetupError::Migrate`] when one fails (it is rolled back).
    pub async fn migrate(&self) -> Result<(), SqlSetupError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(SqlSetupError::Migrate)
    }

    /// Migrations this build has that the database lacks ("version description").
    ///
    /// # Errors
    /// [`SqlSetupError::Inspect`] when the database cannot be read.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, SqlSetupError> {
        let exists: bool = sqlx::query_scalar("select to_regclass('_sqlx_migrations') is not null")
            .fetch_one(&self.pool)
            .await
            .map_err(SqlSetupError::Inspect)?;
        let applied: Vec<i64> = if exists {
            sqlx::query_scalar("select version from _sqlx_migrations where success")
                .fetch_all(&self.pool)
                .await
                .map_err(SqlSetupError::Inspect)?
        } else {
            Vec::new()
        };
        Ok(pending(&MIGRATOR, &applied))
    }

    async fn options(
        executor: impl sqlx::PgExecutor<'_>,
        id: &[u8],
    ) -> Result<Vec<OptionRow>, RepositoryError> {
        sqlx::query_as::<_, OptionRow>(
            "select option_id::int8 as option_id, label, label_key, write_in \
             from ballot_options where ballot_id = $1 order by option_id",
        )
        .bind(id)
        .fetch_all(executor)
        .await
        .map_err(unavailable)
    }

    async fn record(&self, row: sqlx::postgres::PgRow) -> Result<BallotRecord, RepositoryError> {
        let ballot = ballot_row(&row)?;
        let options = Self::options(&self.pool, &ballot.id).await?;
        ballot_record(ballot, options)
    }
}

/// An approval bound as the `integer` column holds it.
fn int_bound(bound: Option<u32>) -> Result<Option<i32>, RepositoryError> {
    bound
        .map(i32::try_from)
        .transpose()
        .map_err(|_| corrupt("choice bounds"))
}

const BALLOT_COLUMNS: &str = "b.id, b.owner_id, b.created_at, b.starts_at, b.ends_at, \
     b.closed_at, b.allow_write_in, b.measure, k.wrapped_key, \
     b.eligibility, b.allow_vote_change, b.results_visibility, b.publish_bulletin, \
     b.method, b.min_choices, b.max_choices \
     from ballots b join ballot_keys k on k.ballot_id = b.id";

const INVITATION_COLUMNS: &str = "ballot_id, invitation_id::int8 as invitation_id, token_hash, \
     label, created_at, used_at, revoked_at from invitations";

fn ballot_row(row: &sqlx::postgres::PgRow) -> Result<BallotRow, RepositoryError> {
    Ok(BallotRow {
        id: row.try_get("id").map_err(unavailable)?,
        owner_id: row.try_get("owner_id").map_err(unavailable)?,
        created_at: row.try_get("created_at").map_err(unavailable)?,
        starts_at: row.try_get("starts_at").map_err(unavailable)?,
        ends_at: row.try_get("ends_at").map_err(unavailable)?,
        closed_at: row.try_get("closed_at").map_err(unavailable)?,
        allow_write_in: row.try_get("allow_write_in").map_err(unavailable)?,
        measure: row.try_get("measure").map_err(unavailable)?,
        wrapped_key: row.try_get("wrapped_key").map_err(unavailable)?,
        eligibility: row.try_get("eligibility").map_err(unavailable)?,
        allow_vote_change: row.try_get("allow_vote_change").map_err(unavailable)?,
        results_visibility: row.try_get("results_visibility").map_err(unavailable)?,
        publish_bulletin: row.try_get("publish_bulletin").map_err(unavailable)?,
        method: row.try_get("method").map_err(unavailable)?,
        min_choices: row
            .try_get::<Option<i32>, _>("min_choices")
            .map_err(unavailable)?
            .map(i64::from),
        max_choices: row
            .try_get::<Option<i32>, _>("max_choices")
            .map_err(unavailable)?
            .map(i64::from),
    })
}

fn invitation_row(row: &sqlx::postgres::PgRow) -> Result<InvitationRow, RepositoryError> {
    Ok(InvitationRow {
        ballot_id: row.try_get("ballot_id").map_err(unavailable)?,
        invitation_id: row.try_get("invitation_id").map_err(unavailable)?,
        token_hash: row.try_get("token_hash").map_err(unavailable)?,
        label: row.try_get("label").map_err(unavailable)?,
        created_at: row.try_get("created_at").map_err(unavailable)?,
        used_at: row.try_get("used_at").map_err(unavailable)?,
        revoked_at: row.try_get("revoked_at").map_err(unavailable)?,
    })
}

/// An invitation's number as the `integer` column holds it; `None` past
/// it, where no stored invitation can be.
fn invitation_number(id: InvitationId) -> Option<i32> {
    i32::try_from(id.get()).ok()
}

/// An outage while storing invitations.
fn invitations_unavailable(error: impl Into<BoxError>) -> AddInvitationsError {
    AddInvitationsError::Unavailable(error.into())
}

/// Locks ballot `id`'s row inside `tx` until it ends; `false` when there
/// is no such ballot. Every writer of a ballot's invitations takes it (a
/// vote batch, an issue of links, a revocation), so they take turns: a
/// link is never revoked after a vote that used it was decided, nor used
/// by a vote decided before its revocation, and links are numbered and
/// counted against the limit one request at a time.
async fn lock_ballot(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    id: &[u8],
) -> Result<bool, sqlx::Error> {
    let locked: Option<i32> = sqlx::query_scalar("select 1 from ballots where id = $1 for update")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(locked.is_some())
}

#[async_trait]
impl BallotRepository for PostgresRepository {
    async fn insert_ballot(&self, ballot: &BallotRecord) -> Result<(), RepositoryError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let id = ballot.id.as_bytes().as_slice();
        let inserted = sqlx::query(
            "insert into ballots (id, owner_id, created_at, starts_at, ends_at, closed_at, \
             allow_write_in, measure, eligibility, allow_vote_change, results_visibility, \
             publish_bulletin, method, min_choices, max_choices) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             on conflict (id) do nothing",
        )
        .bind(id)
        .bind(ballot.owner.as_ref().map(OwnerId::as_str))
        .bind(ballot.created_at)
        .bind(ballot.starts_at)
        .bind(ballot.ends_at)
        .bind(ballot.closed_at)
        .bind(ballot.allow_write_in)
        .bind(ballot.measure.as_bytes())
        .bind(ballot.settings.eligibility.as_str())
        .bind(ballot.settings.allow_vote_change)
        .bind(ballot.settings.results_visibility.as_str())
        .bind(ballot.settings.publish_bulletin)
        .bind(ballot.method.as_str())
        .bind(int_bound(ballot.method.min_choices())?)
        .bind(int_bound(ballot.method.max_choices())?)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        if inserted.rows_affected() == 0 {
            return Err(RepositoryError::Conflict);
        }
        sqlx::query("insert into ballot_keys (ballot_id, wrapped_key) values ($1, $2)")
            .bind(id)
            .bind(ballot.wrapped_key.as_bytes())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        for option in &ballot.options {
            sqlx::query(
                "insert into ballot_options (ballot_id, option_id, label, label_key, write_in) \
                 values ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(i32::try_from(option.id.get()).map_err(|_| corrupt("option id"))?)
            .bind(option.label.as_bytes())
            .bind(option.label_key.as_bytes().as_slice())
            .bind(option.write_in)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)
    }

    async fn ballot(&self, id: &BallotId) -> Result<Option<BallotRecord>, RepositoryError> {
        let row = sqlx::query(&format!("select {BALLOT_COLUMNS} where b.id = $1"))
            .bind(id.as_bytes().as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        match row {
            Some(row) => Ok(Some(self.record(row).await?)),
            None => Ok(None),
        }
    }

    async fn ballots_owned_by(
        &self,
        owner: &OwnerId,
        page: Page,
    ) -> Result<Vec<BallotRecord>, RepositoryError> {
        let rows = sqlx::query(&format!(
            "select {BALLOT_COLUMNS} where b.owner_id = $1 \
             order by b.created_at desc, b.id desc limit $2 offset $3"
        ))
        .bind(owner.as_str())
        .bind(i64::from(page.limit))
        .bind(i64::try_from(page.offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        let mut records = Vec::with_capacity(rows.len());
        for row in rows {
            records.push(self.record(row).await?);
        }
        Ok(records)
    }

    async fn record_vote(&self, vote: &NewVote) -> Result<RecordedVote, RecordVoteError> {
        only_outcome(
            self.vote_writer
                .record(self, vote.ballot_id, vec![vote.clone()])
                .await,
        )
    }

    /// Joins the vote writer's queue (`crate::writer`): the batch commits
    /// with every other batch waiting, of any ballot, in one transaction.
    async fn record_votes(&self, votes: &[NewVote]) -> Vec<VoteOutcome> {
        let Some(ballot) = one_ballot(votes) else {
            // Several ballots (or none).
            return each_alone(votes, |vote| self.record_vote(vote)).await;
        };
        self.vote_writer.record(self, ballot, votes.to_vec()).await
    }

    async fn vote_of(
        &self,
        ballot: &BallotId,
        voter: &VoterHash,
    ) -> Result<Option<Vec<OptionId>>, RepositoryError> {
        let vote: Option<(i32, Option<String>)> = sqlx::query_as(
            "select option_id, choice from votes where ballot_id = $1 and voter_hash = $2 \
             union all \
             select v.option_id, v.choice from vote_aliases a join votes v \
             on v.ballot_id = a.ballot_id and v.voter_hash = a.voter_hash \
             where a.ballot_id = $1 and a.alias_hash = $2 limit 1",
        )
        .bind(ballot.as_bytes().as_slice())
        .bind(voter.as_bytes().as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        vote.map(|(option, choice)| parse_choice(choice.as_deref(), i64::from(option)))
            .transpose()
    }

    async fn tally(&self, id: &BallotId) -> Result<Option<Tally>, RepositoryError> {
        // One statement, so one snapshot: the sequence, the option counts
        // and the choices agree.
        let rows: Vec<TallyRow> = sqlx::query_as(
            "select 0::int8, tally_seq, null::int8, null::text from ballots where id = $1 \
             union all \
             select 1, option_id::int8, vote_count, null from ballot_options \
             where ballot_id = $1 and vote_count > 0 \
             union all \
             select 2, null, vote_count, choice from ballot_choices \
             where ballot_id = $1 and vote_count > 0",
        )
        .bind(id.as_bytes().as_slice())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        tally_of_rows(rows)
    }

    async fn close_ballot(
        &self,
        id: &BallotId,
        at: OffsetDateTime,
    ) -> Result<bool, RepositoryError> {
        let closed = sqlx::query(
            "update ballots set closed_at = least(coalesce(closed_at, $2), $2) where id = $1",
        )
        .bind(id.as_bytes().as_slice())
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(closed.rows_affected() > 0)
    }

    async fn delete_ballot(&self, id: &BallotId) -> Result<bool, RepositoryError> {
        let ballot = id.as_bytes().as_slice();
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        // The key first: from here on the rows are unreadable.
        sqlx::query("delete from ballot_keys where ballot_id = $1")
            .bind(ballot)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query("delete from vote_aliases where ballot_id = $1")
            .bind(ballot)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query("delete from votes where ballot_id = $1")
            .bind(ballot)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        // Options, choices, retired receipts and invitations go with the
        // ballot's row (`on delete cascade`); the votes took their receipts.
        let deleted = sqlx::query("delete from ballots where id = $1")
            .bind(ballot)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn add_invitations(
        &self,
        ballot: &BallotId,
        invitations: &[NewInvitation],
        max_per_ballot: u32,
    ) -> Result<Vec<InvitationId>, AddInvitationsError> {
        let id = ballot.as_bytes().as_slice();
        let mut tx = self.pool.begin().await.map_err(invitations_unavailable)?;
        if !lock_ballot(&mut tx, id)
            .await
            .map_err(invitations_unavailable)?
        {
            return Err(AddInvitationsError::BallotNotFound);
        }
        // A statement of its own after the lock, so it sees every link
        // committed before: the count and the last number stay true
        // until this transaction ends.
        let (count, last): (i64, i64) = sqlx::query_as(
            "select count(*), coalesce(max(invitation_id), 0)::int8 \
             from invitations where ballot_id = $1",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(invitations_unavailable)?;
        let (count, last) = u64::try_from(count)
            .ok()
            .zip(i32::try_from(last).ok())
            .ok_or_else(|| invitations_unavailable(corrupt("invitation count")))?;
        let adding = u64::try_from(invitations.len()).unwrap_or(u64::MAX);
        if count.saturating_add(adding) > u64::from(max_per_ballot) {
            return Err(AddInvitationsError::LimitReached);
        }
        let numbers: Vec<i32> = (1..=invitations.len())
            .map(|offset| {
                i32::try_from(offset)
                    .ok()
                    .and_then(|offset| last.checked_add(offset))
            })
            .collect::<Option<_>>()
            .ok_or_else(|| invitations_unavailable("an invitation number past the largest"))?;
        sqlx::query(
            "insert into invitations (ballot_id, invitation_id, token_hash, label, created_at) \
             select $1, i.invitation_id, i.token_hash, i.label, i.created_at \
             from unnest($2::int[], $3::bytea[], $4::bytea[], $5::timestamptz[]) \
             as i(invitation_id, token_hash, label, created_at)",
        )
        .bind(id)
        .bind(&numbers)
        .bind(
            invitations
                .iter()
                .map(|invitation| invitation.token_hash.as_bytes().as_slice())
                .collect::<Vec<_>>(),
        )
        .bind(
            invitations
                .iter()
                .map(|invitation| invitation.label.as_ref().map(|label| label.as_bytes()))
                .collect::<Vec<_>>(),
        )
        .bind(
            invitations
                .iter()
                .map(|invitation| invitation.created_at)
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await
        .map_err(invitations_unavailable)?;
        tx.commit().await.map_err(invitations_unavailable)?;
        Ok(numbers
            .into_iter()
            .map(|number| InvitationId::new(number.unsigned_abs()))
            .collect())
    }

    async fn invitations(
        &self,
        ballot: &BallotId,
    ) -> Result<Vec<InvitationRecord>, RepositoryError> {
        let rows = sqlx::query(&format!(
            "select {INVITATION_COLUMNS} where ballot_id = $1 order by invitation_id"
        ))
        .bind(ballot.as_bytes().as_slice())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| invitation_record(invitation_row(row)?))
            .collect()
    }

    async fn invitation(
        &self,
        token_hash: &InvitationHash,
    ) -> Result<Option<InvitationRecord>, RepositoryError> {
        let row = sqlx::query(&format!(
            "select {INVITATION_COLUMNS} where token_hash = $1"
        ))
        .bind(token_hash.as_bytes().as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        row.map(|row| invitation_record(invitation_row(&row)?))
            .transpose()
    }

    async fn revoke_invitation(
        &self,
        ballot: &BallotId,
        id: InvitationId,
        at: OffsetDateTime,
    ) -> Result<Revoked, RepositoryError> {
        let Some(number) = invitation_number(id) else {
            return Ok(Revoked::NotFound);
        };
        let ballot = ballot.as_bytes().as_slice();
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        // Behind any vote batch on the ballot: a vote it recorded with the
        // link is committed (and seen below) before this decides.
        if !lock_ballot(&mut tx, ballot).await.map_err(unavailable)? {
            return Ok(Revoked::NotFound);
        }
        let (revoked, exists): (bool, bool) = sqlx::query_as(
            "with revoked as ( \
                 update invitations set revoked_at = coalesce(revoked_at, $3) \
                 where ballot_id = $1 and invitation_id = $2 and used_at is null \
                 returning 1) \
             select exists (select 1 from revoked), \
             exists (select 1 from invitations where ballot_id = $1 and invitation_id = $2)",
        )
        .bind(ballot)
        .bind(number)
        .bind(at)
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(match (revoked, exists) {
            (true, _) => Revoked::Revoked,
            (false, true) => Revoked::Used,
            (false, false) => Revoked::NotFound,
        })
    }

    async fn receipt_status(
        &self,
        ballot: &BallotId,
        receipt: &ReceiptCode,
    ) -> Result<ReceiptStatus, RepositoryError> {
        let (counted, replaced): (bool, bool) = sqlx::query_as(
            "select exists (select 1 from votes where ballot_id = $1 and receipt = $2), \
             exists (select 1 from retired_receipts where ballot_id = $1 and receipt = $2)",
        )
        .bind(ballot.as_bytes().as_slice())
        .bind(receipt.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(match (counted, replaced) {
            (true, _) => ReceiptStatus::Counted,
            (false, true) => ReceiptStatus::Replaced,
            (false, false) => ReceiptStatus::Unknown,
        })
    }

    async fn bulletin(&self, ballot: &BallotId) -> Result<Option<Bulletin>, RepositoryError> {
        // One statement, so one snapshot: the rows make the tally whose
        // sequence they carry.
        let rows: Vec<BulletinReadRow> = sqlx::query_as(
            "select tally_seq, null::text, null::int8, null::text from ballots where id = $1 \
             union all \
             select null, receipt, option_id::int8, choice from votes \
             where ballot_id = $1 and receipt is not null",
        )
        .bind(ballot.as_bytes().as_slice())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        bulletin_of_rows(rows)
    }

    async fn transfer_ballots(&self, from: &OwnerId, to: &OwnerId) -> Result<u64, RepositoryError> {
        let moved = sqlx::query("update ballots set owner_id = $1 where owner_id = $2")
            .bind(to.as_str())
            .bind(from.as_str())
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(moved.rows_affected())
    }

    /// Proves the database accepts writes: a row inserted and deleted in
    /// one committed transaction, which a read-only server (a standby
    /// after failover, `default_transaction_read_only`) or a full disk
    /// refuses.
    async fn ping(&self) -> Result<(), RepositoryError> {
        self.probe
            .check(async {
                let mut tx = self.pool.begin().await.map_err(unavailable)?;
                sqlx::query(
                    "insert into write_probes (id, padding) \
                     values (pg_backend_pid(), decode(repeat('00', $1::int), 'hex'))",
                )
                .bind(WRITE_PROBE_BYTES)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
                sqlx::query("delete from write_probes where id = pg_backend_pid()")
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                tx.commit().await.map_err(unavailable)
            })
            .await
    }
}
