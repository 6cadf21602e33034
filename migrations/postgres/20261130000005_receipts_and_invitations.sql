-- oponn schema, version 7: vote receipts, personal voting links
-- (invitations) and the public bulletin of counted votes.

-- who may vote gains 'invited': holders of the owner's voting links only.
-- the check added with the column in version 2 took postgres's default
-- name, ballots_eligibility_check; it is replaced by a wider one.
alter table ballots
    drop constraint ballots_eligibility_check,
    add constraint ballots_eligibility_check
        check (eligibility in ('anyone', 'signed_in', 'invited'));

-- whether every counted vote is published as (receipt, choice), under the
-- same rules as the results. existing ballots publish nothing.
alter table ballots add column publish_bulletin boolean not null default false;

-- each vote's receipt: a random code the voter can look up afterwards.
-- null for votes cast before receipts existed. unique within its ballot
-- (nulls are distinct, so older votes do not collide).
alter table votes add column receipt text
    constraint votes_receipt_length check (length(receipt) = 10);
create unique index votes_one_per_receipt on votes (ballot_id, receipt);

-- receipts of votes changed since: they read as replaced by a later vote,
-- and are never given again on their ballot.
create table retired_receipts (
    ballot_id bytea not null references ballots (id) on delete cascade,
    receipt   text  not null check (length(receipt) = 10),
    constraint retired_receipts_pkey primary key (ballot_id, receipt)
);

-- personal voting links of invite-only ballots, numbered from 1 within
-- their ballot. only a keyed hash of each link's token is stored, so a
-- copy of this table opens no link; the owner's label is sealed with the
-- ballot's data key. a link a vote was cast with (used_at) can no longer
-- be revoked, and a revoked one can no longer vote: never both. a vote
-- batch, a revocation and an issue of links each lock the ballot's row
-- first, so they take turns.
create table invitations (
    ballot_id     bytea       not null references ballots (id) on delete cascade,
    invitation_id integer     not null check (invitation_id > 0),
    token_hash    bytea       not null check (length(token_hash) = 32),
    label         bytea,
    created_at    timestamptz not null,
    used_at       timestamptz,
    revoked_at    timestamptz,
    constraint invitations_pkey primary key (ballot_id, invitation_id),
    constraint invitations_one_per_token unique (token_hash),
    constraint invitations_used_or_revoked check (used_at is null or revoked_at is null)
);
