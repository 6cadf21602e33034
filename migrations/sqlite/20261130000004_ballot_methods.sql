-- oponn schema, version 6: ballot methods (approval, ranked) and the whole
-- choice each vote makes.

-- how a ballot is voted: one option (single), several (approval, between
-- min_choices and max_choices), or a ranking (ranked).
alter table ballots add column method text not null default 'single'
    check (method in ('single', 'approval', 'ranked'));
alter table ballots add column min_choices integer;
alter table ballots add column max_choices integer;

-- a vote's whole choice, as option ids separated by commas: in rank order
-- for a ranking, in id order for a set. votes.option_id keeps its first
-- option (whose row must exist); null here means that one option alone.
alter table votes add column choice text;

-- how many voters made each distinct choice: what a ranked count reads,
-- so a live update costs the number of distinct choices, not of voters.
-- rows that fall to zero stay, and are not read.
create table ballot_choices (
    ballot_id  blob    not null references ballots (id) on delete cascade,
    choice     text    not null,
    vote_count integer not null default 0,
    primary key (ballot_id, choice)
) strict;

insert into ballot_choices (ballot_id, choice, vote_count)
    select ballot_id, cast(option_id as text), vote_count
    from ballot_options where vote_count > 0;
