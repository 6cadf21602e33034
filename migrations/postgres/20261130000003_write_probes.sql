-- oponn schema: a table for readiness checks. a check inserts a row and
-- deletes it in one committed transaction, proving storage still accepts
-- writes (a read-only standby or a full disk fails it). it stays empty.
create table write_probes (
    id      bigint primary key,
    padding bytea  not null
);
