//! The floor for a durable vote on the embedded default: what committing a
//! vote to a SQLite file cannot avoid, and nothing else.
//!
//! One thread holds the one connection (WAL, `synchronous=FULL`, as
//! Oponn's file is). Votes queue for it; it takes every vote waiting, up
//! to [`MAX_VOTES_PER_COMMIT`], and commits them together: one row each in
//! a `votes` table keyed as Oponn's is (ballot and a 32-byte voter hash,
//! uniformly random as an HMAC's output is, so each lands on a random
//! index page), with a unique index on a random 10-character receipt, and
//! one counter update per option and one sequence update per commit. Then
//! it answers every vote of the commit. No read, no foreign keys, no
//! encryption, no statement built per batch: each is a cost Oponn's design
//! adds above this floor.

use std::io;
use std::sync::mpsc;
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, TransactionBehavior, params};
use tokio::sync::oneshot;

/// The most votes one commit takes; the rest wait for the next.
pub(crate) const MAX_VOTES_PER_COMMIT: usize = 512;

/// The options of the floor's one ballot.
pub(crate) const OPTIONS: i64 = 4;

/// The ballot's id, 16 bytes as Oponn's are.
const BALLOT_ID: [u8; 16] = *b"floor-ballot-000";

/// The schema: Oponn's `votes` key and receipt index, its counters.
const SCHEMA: &str = "
    create table if not exists ballots (
        id        blob    primary key,
        tally_seq integer not null default 0
    ) strict;
    create table if not exists ballot_options (
        ballot_id  blob    not null,
        option_id  integer not null,
        vote_count integer not null default 0,
        primary key (ballot_id, option_id)
    ) strict;
    create table if not exists votes (
        ballot_id  blob    not null,
        voter_hash blob    not null,
        option_id  integer not null,
        cast_at    integer not null,
        receipt    text    not null,
        primary key (ballot_id, voter_hash)
    ) strict;
    create unique index if not exists votes_one_per_receipt on votes (ballot_id, receipt);
";

/// A vote waiting for its commit: its option, and where to say it is on
/// disk (`true`) or failed (`false`).
struct Pending {
    option: i64,
    done: oneshot::Sender<bool>,
}

/// The queue to the writer thread.
#[derive(Clone)]
pub(crate) struct Votes {
    queue: mpsc::Sender<Pending>,
}

impl Votes {
    /// Opens (creating) the database at `path` and starts its writer.
    pub(crate) fn open(path: &str) -> io::Result<Self> {
        let connection = prepare(path).map_err(io::Error::other)?;
        let (queue, waiting) = mpsc::channel();
        thread::Builder::new()
            .name("floor-writer".to_owned())
            .spawn(move || write(connection, &waiting))?;
        Ok(Self { queue })
    }

    /// Commits a vote for `option` (1 to [`OPTIONS`]); true once it is
    /// on disk, false if it could not be.
    pub(crate) async fn cast(&self, option: i64) -> bool {
        let (done, committed) = oneshot::channel();
        if self.queue.send(Pending { option, done }).is_err() {
            return false;
        }
        committed.await.unwrap_or(false)
    }
}

/// The database at `path`, in WAL mode with `synchronous=FULL`, holding
/// the schema, the ballot and its options.
fn prepare(path: &str) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    connection.pragma_update(None, "journal_mode", "wal")?;
    connection.pragma_update(None, "synchronous", "full")?;
    connection.execute_batch(SCHEMA)?;
    connection.execute(
        "insert or ignore into ballots (id) values (?1)",
        params![BALLOT_ID],
    )?;
    for option in 1..=OPTIONS {
        connection.execute(
            "insert or ignore into ballot_options (ballot_id, option_id) values (?1, ?2)",
            params![BALLOT_ID, option],
        )?;
    }
    Ok(connection)
}

/// The writer thread: waits for a vote, takes every other one waiting,
/// commits them together and answers each.
fn write(mut connection: Connection, waiting: &mpsc::Receiver<Pending>) {
    let mut random = SplitMix64::seeded();
    let mut batch = Vec::with_capacity(MAX_VOTES_PER_COMMIT);
    while take_batch(waiting, &mut batch) {
        let committed = commit(&mut connection, &batch, &mut random).is_ok();
        for pending in batch.drain(..) {
            let _ = pending.done.send(committed);
        }
    }
}

/// Waits for a vote, then adds it and every other one waiting to
/// `batch`, up to [`MAX_VOTES_PER_COMMIT`]; false once no vote can come.
fn take_batch(waiting: &mpsc::Receiver<Pending>, batch: &mut Vec<Pending>) -> bool {
    let Ok(first) = waiting.recv() else {
        return false;
    };
    batch.push(first);
    batch.extend(waiting.try_iter().take(MAX_VOTES_PER_COMMIT - 1));
    true
}

/// One transaction: every vote's row, each option's count, the sequence.
fn commit(
    connection: &mut Connection,
    batch: &[Pending],
    random: &mut SplitMix64,
) -> rusqlite::Result<()> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let cast_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
        });
    let mut counts = [0_i64; OPTIONS as usize];
    {
        let mut insert = transaction.prepare_cached(
            "insert into votes (ballot_id, voter_hash, option_id, cast_at, receipt) \
             values (?1, ?2, ?3, ?4, ?5)",
        )?;
        for pending in batch {
            insert.execute(params![
                BALLOT_ID,
                random.bytes32(),
                pending.option,
                cast_at,
                random.receipt(),
            ])?;
            if let Some(count) = usize::try_from(pending.option - 1)
                .ok()
                .and_then(|index| counts.get_mut(index))
            {
                *count += 1;
            }
        }
        let mut count = transaction.prepare_cached(
            "update ballot_options set vote_count = vote_count + ?1 \
             where ballot_id = ?2 and option_id = ?3",
        )?;
        for (option, by) in (1..).zip(counts) {
            if by > 0 {
                count.execute(params![by, BALLOT_ID, option])?;
            }
        }
        transaction
            .prepare_cached("update ballots set tally_seq = tally_seq + ?1 where id = ?2")?
            .execute(params![batch.len(), BALLOT_ID])?;
    }
    transaction.commit()
}

/// A fast generator of uniformly random bytes (splitmix64): the floor
/// needs keys spread as an HMAC's are, not unpredictable ones.
struct SplitMix64(u64);

impl SplitMix64 {
    /// Seeded from the clock, so two runs on one file draw different keys.
    fn seeded() -> Self {
        Self(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_nanos() as u64),
        )
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A 32-byte voter hash.
    fn bytes32(&mut self) -> [u8; 32] {
        let mut bytes = [0; 32];
        for chunk in bytes.chunks_exact_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        bytes
    }

    /// A receipt: 10 characters of Oponn's 32-letter alphabet.
    fn receipt(&mut self) -> String {
        const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        let mut bits = self.next();
        (0..10)
            .map(|_| {
                let letter = ALPHABET[(bits & 31) as usize];
                bits >>= 5;
                char::from(letter)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use std::sync::mpsc;

    use tokio::sync::oneshot;

    use super::{MAX_VOTES_PER_COMMIT, OPTIONS, Pending, Votes, take_batch};

    #[test]
    fn a_commit_takes_at_most_its_limit_and_leaves_the_rest_waiting() {
        let (queue, waiting) = mpsc::channel();
        for _ in 0..=MAX_VOTES_PER_COMMIT {
            let (done, _) = oneshot::channel();
            queue
                .send(Pending { option: 1, done })
                .expect("the queue is open");
        }
        let mut batch = Vec::new();
        assert!(take_batch(&waiting, &mut batch));
        assert_eq!(batch.len(), MAX_VOTES_PER_COMMIT);
        batch.clear();
        assert!(take_batch(&waiting, &mut batch));
        assert_eq!(batch.len(), 1);
        drop(queue);
        batch.clear();
        assert!(!take_batch(&waiting, &mut batch));
        assert!(batch.is_empty());
    }

    #[tokio::test]
    async fn each_vote_is_committed_with_its_count_and_a_receipt_of_its_own() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let path = directory.path().join("floor.db");
        let path = path.to_str().expect("a UTF-8 path");
        let votes = Votes::open(path).expect("the database opens");
        // Spawned together, so votes queue while a commit runs and share
        // the next one.
        let mut casting = tokio::task::JoinSet::new();
        for vote in 0..40 {
            let votes = votes.clone();
            casting.spawn(async move { votes.cast(vote % OPTIONS + 1).await });
        }
        while let Some(committed) = casting.join_next().await {
            assert!(committed.expect("a vote's task ends"));
        }

        let read = Connection::open(path).expect("the database opens again");
        let (rows, receipts): (i64, i64) = read
            .query_row(
                "select count(*), count(distinct receipt) from votes",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .expect("the votes read");
        assert_eq!((rows, receipts), (40, 40));
        let counts: Vec<i64> = read
            .prepare("select vote_count from ballot_options order by option_id")
            .and_then(|mut select| select.query_map([], |row| row.get(0))?.collect())
            .expect("the counts read");
        assert_eq!(counts, [10, 10, 10, 10]);
        let sequence: i64 = read
            .query_row("select tally_seq from ballots", [], |row| row.get(0))
            .expect("the sequence reads");
        assert_eq!(sequence, 40);
    }
}
