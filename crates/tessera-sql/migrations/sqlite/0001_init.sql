-- Tessera's schema on SQLite. Timestamps are microseconds since the Unix epoch (UTC), lifetimes
-- whole seconds (NULL = never). No column holds a usable token: only its keyed digest and the seed
-- the server key re-derives it from. STRICT tables reject values of the wrong type.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    is_active     INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    is_staff      INTEGER NOT NULL DEFAULT 0 CHECK (is_staff IN (0, 1)),
    created       INTEGER NOT NULL
) STRICT;

CREATE TABLE clients (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT    NOT NULL UNIQUE,
    token_ttl_secs    INTEGER CHECK (token_ttl_secs > 0),
    throttle_rate     TEXT,
    sliding_expiry    INTEGER NOT NULL DEFAULT 0 CHECK (sliding_expiry IN (0, 1)),
    max_lifetime_secs INTEGER CHECK (max_lifetime_secs > 0),
    description       TEXT    NOT NULL DEFAULT '',
    created           INTEGER NOT NULL
) STRICT;

CREATE TABLE auth_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  INTEGER NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    digest     BLOB    NOT NULL UNIQUE CHECK (length(digest) = 32),
    seed       BLOB    NOT NULL CHECK (length(seed) = 32),
    created    INTEGER NOT NULL,
    expiry     INTEGER,
    last_used  INTEGER,
    user_agent TEXT,
    ip         TEXT,
    UNIQUE (user_id, client_id)
) STRICT;

-- (user_id, client_id) is indexed by its UNIQUE constraint; a client's tokens need their own.
CREATE INDEX auth_tokens_client_id ON auth_tokens (client_id);
-- purge_expired scans expiring tokens only.
CREATE INDEX auth_tokens_expiry ON auth_tokens (expiry) WHERE expiry IS NOT NULL;
