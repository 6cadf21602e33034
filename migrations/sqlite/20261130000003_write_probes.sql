-- oponn schema: a table for readiness checks. a check inserts a row of a
-- few pages and deletes it in one committed transaction, proving storage
-- still accepts writes (a full disk fails it). it stays empty.
create table write_probes (
    id      integer primary key,
    padding blob    not null
) strict;
