-- oponn schema, version 3: every identity a voter presents is one voter.

-- a signed-in account voting from a browser presents two identities: the
-- account, and the browser's own guest id (its voter cookie). the vote row
-- is held by one of them (votes.voter_hash); each other identity is an
-- alias here, pointing at the identity holding the vote, so that any of
-- them voting again is the same voter. alias_hash is a keyed hash bound to
-- the ballot, exactly like voter_hash: no raw id is ever stored.
create table vote_aliases (
    ballot_id  blob not null,
    alias_hash blob not null check (length(alias_hash) = 32),
    voter_hash blob not null check (length(voter_hash) = 32),
    primary key (ballot_id, alias_hash),
    foreign key (ballot_id, voter_hash)
        references votes (ballot_id, voter_hash) on delete cascade
) strict;
