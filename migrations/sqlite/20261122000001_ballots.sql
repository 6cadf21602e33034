-- oponn schema, version 1: ballots, their wrapped keys, options and votes.
-- every user-written text (measure, option labels, write-ins) is stored
-- sealed with the ballot's data key; voters are stored as keyed hashes.
-- times are integer microseconds since the unix epoch (utc): exact and sortable.

-- one row per ballot. tally_seq counts the ballot's votes and numbers its
-- tallies: it grows by one in the same transaction as each vote.
create table ballots (
    id             blob    primary key check (length(id) = 16),
    owner_id       text,
    created_at     integer not null,
    starts_at      integer not null,
    ends_at        integer,
    closed_at      integer,
    allow_write_in integer not null,
    measure        blob    not null,
    tally_seq      integer not null default 0
) strict;

-- the dashboard lists an owner's ballots, newest first.
create index ballots_by_owner on ballots (owner_id, created_at desc);

-- each ballot's data key, wrapped by the key service; deleted first when
-- its ballot is (crypto-shredding).
create table ballot_keys (
    ballot_id   blob primary key references ballots (id) on delete cascade,
    wrapped_key blob not null
) strict;

-- options, predefined and written in; label_key makes equal labels meet
-- without plaintext; vote_count keeps the tally without scanning votes.
create table ballot_options (
    ballot_id  blob    not null references ballots (id) on delete cascade,
    option_id  integer not null check (option_id > 0),
    label      blob    not null,
    label_key  blob    not null check (length(label_key) = 32),
    write_in   integer not null,
    vote_count integer not null default 0,
    primary key (ballot_id, option_id),
    unique (ballot_id, label_key)
) strict;

-- one row per vote; the primary key guarantees one vote per voter per ballot.
create table votes (
    ballot_id  blob    not null,
    voter_hash blob    not null check (length(voter_hash) = 32),
    option_id  integer not null,
    cast_at    integer not null,
    primary key (ballot_id, voter_hash),
    foreign key (ballot_id, option_id)
        references ballot_options (ballot_id, option_id) on delete cascade
) strict;
