-- oponn schema, version 2: ballot settings, and accounts.

-- who may vote ('anyone' or 'signed_in'), whether a voter may change their
-- vote while the ballot is open, and when results may be seen ('always',
-- 'after_voting' or 'after_close'). existing ballots keep the old rules.
alter table ballots
    add column eligibility        text    not null default 'anyone'
        check (eligibility in ('anyone', 'signed_in')),
    add column allow_vote_change  boolean not null default false,
    add column results_visibility text    not null default 'always'
        check (results_visibility in ('always', 'after_voting', 'after_close'));

-- people who signed in. the email is unique: one person signing in through
-- two providers with the same verified email is one account.
create table accounts (
    id         text        primary key,
    email      text        not null,
    created_at timestamptz not null,
    constraint accounts_one_per_email unique (email)
);

-- which provider identities sign in to which account. subject is the
-- provider's stable id for the person, not their (changeable) email.
create table account_identities (
    provider   text not null,
    subject    text not null,
    account_id text not null references accounts (id) on delete cascade,
    constraint account_identities_pkey primary key (provider, subject)
);
