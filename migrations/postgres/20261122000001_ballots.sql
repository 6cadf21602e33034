-- oponn schema, version 1: ballots, their wrapped keys, options and votes.
-- every user-written text (measure, option labels, write-ins) is stored
-- sealed with the ballot's data key; voters are stored as keyed hashes.

-- one row per ballot. tally_seq counts the ballot's votes and numbers its
-- tallies: it grows by one in the same transaction as each vote.
create table ballots (
    id             bytea       primary key check (length(id) = 16),
    owner_id       text,
    created_at     timestamptz not null,
    starts_at      timestamptz not null,
    ends_at        timestamptz,
    closed_at      timestamptz,
    allow_write_in boolean     not null,
    measure        bytea       not null,
    tally_seq      bigint      not null default 0
);

-- the dashboard lists an owner's ballots, newest first.
create index ballots_by_owner on ballots (owner_id, created_at desc);

-- each ballot's data key, wrapped by the key service. kept apart from the
-- ballot so that deleting a ballot destroys its key first (crypto-shredding)
-- and so that key rows can be backed up and retained on their own terms.
create table ballot_keys (
    ballot_id   bytea primary key references ballots (id) on delete cascade,
    wrapped_key bytea not null
);

-- options, predefined and written in. label_key is a keyed hash of the
-- label's comparison form: it makes equal write-ins meet without any
-- plaintext, and its uniqueness makes racing equal write-ins one option.
-- vote_count keeps the tally so no vote scans the votes table.
create table ballot_options (
    ballot_id  bytea   not null references ballots (id) on delete cascade,
    option_id  integer not null check (option_id > 0),
    label      bytea   not null,
    label_key  bytea   not null check (length(label_key) = 32),
    write_in   boolean not null,
    vote_count bigint  not null default 0,
    constraint ballot_options_pkey primary key (ballot_id, option_id),
    constraint ballot_options_one_per_label unique (ballot_id, label_key)
);

-- one row per vote. the primary key is what guarantees one vote per voter
-- per ballot, even if the distributed lock is lost.
create table votes (
    ballot_id  bytea       not null,
    voter_hash bytea       not null check (length(voter_hash) = 32),
    option_id  integer     not null,
    cast_at    timestamptz not null,
    constraint votes_one_per_voter primary key (ballot_id, voter_hash),
    constraint votes_option_exists foreign key (ballot_id, option_id)
        references ballot_options (ballot_id, option_id) on delete cascade
);
