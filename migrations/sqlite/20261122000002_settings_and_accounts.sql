-- oponn schema, version 2: ballot settings, and accounts.

-- who may vote ('anyone' or 'signed_in'), whether a voter may change their
-- vote while the ballot is open, and when results may be seen ('always',
-- 'after_voting' or 'after_close'). existing ballots keep the old rules.
alter table ballots add column eligibility text not null default 'anyone'
    check (eligibility in ('anyone', 'signed_in'));
alter table ballots add column allow_vote_change integer not null default 0;
alter table ballots add column results_visibility text not null default 'always'
    check (results_visibility in ('always', 'after_voting', 'after_close'));

-- people who signed in; one account per verified email.
create table accounts (
    id         text    primary key,
    email      text    not null unique,
    created_at integer not null
) strict;

-- which provider identities sign in to which account.
create table account_identities (
    provider   text not null,
    subject    text not null,
    account_id text not null references accounts (id) on delete cascade,
    primary key (provider, subject)
) strict;
