-- oponn schema, version 7: vote receipts, personal voting links
-- (invitations) and the public bulletin of counted votes.

-- who may vote gains 'invited': holders of the owner's voting links only.
-- sqlite cannot change a check constraint, so the column is rebuilt: a new
-- column with the wider check takes the old one's values, the old one is
-- dropped, and the new one takes its name.
alter table ballots add column who_may_vote text not null default 'anyone'
    check (who_may_vote in ('anyone', 'signed_in', 'invited'));
update ballots set who_may_vote = eligibility;
alter table ballots drop column eligibility;
alter table ballots rename column who_may_vote to eligibility;

-- whether every counted vote is published as (receipt, choice), under the
-- same rules as the results. existing ballots publish nothing.
alter table ballots add column publish_bulletin integer not null default 0;

-- each vote's receipt: a random code the voter can look up afterwards.
-- null for votes cast before receipts existed. unique within its ballot
-- (sqlite lets any number of nulls share an index).
alter table votes add column receipt text check (length(receipt) = 10);
create unique index votes_one_per_receipt on votes (ballot_id, receipt);

-- receipts of votes changed since: they read as replaced by a later vote,
-- and are never given again on their ballot.
create table retired_receipts (
    ballot_id blob not null references ballots (id) on delete cascade,
    receipt   text not null check (length(receipt) = 10),
    primary key (ballot_id, receipt)
) strict;

-- personal voting links of invite-only ballots, numbered from 1 within
-- their ballot. only a keyed hash of each link's token is stored, so a
-- copy of this table opens no link; the owner's label is sealed with the
-- ballot's data key. a link a vote was cast with (used_at) can no longer
-- be revoked, and a revoked one can no longer vote: never both.
create table invitations (
    ballot_id     blob    not null references ballots (id) on delete cascade,
    invitation_id integer not null check (invitation_id > 0),
    token_hash    blob    not null unique check (length(token_hash) = 32),
    label         blob,
    created_at    integer not null,
    used_at       integer,
    revoked_at    integer,
    primary key (ballot_id, invitation_id),
    check (used_at is null or revoked_at is null)
) strict;
