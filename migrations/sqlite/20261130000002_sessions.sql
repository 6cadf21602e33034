-- oponn schema, version 4: sessions that logout ends.

-- one row per signed-in session. the browser holds a random 256-bit token
-- in its signed cookie; only the token's sha-256 is stored, so a copy of
-- this table signs no one in. logout deletes the row, and every request
-- with a session cookie checks it, so a copied cookie dies with it.
-- times are integer microseconds since the unix epoch (utc).
create table sessions (
    token_hash blob    primary key check (length(token_hash) = 32),
    account_id text    not null references accounts (id) on delete cascade,
    created_at integer not null,
    expires_at integer not null
) strict;

-- pruning expired sessions, and ending an account's sessions.
create index sessions_by_expiry on sessions (expires_at);
create index sessions_by_account on sessions (account_id);
