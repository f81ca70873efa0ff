-- Tessera's schema on PostgreSQL. Timestamps are microseconds since the Unix epoch (UTC), lifetimes
-- whole seconds (NULL = never). No column holds a usable token: only its keyed digest and the seed
-- the server key re-derives it from. Names use the "C" collation so that ordering is by code
-- point, as on SQLite, whatever the database's locale.

CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT COLLATE "C" NOT NULL,
    password_hash TEXT    NOT NULL,
    is_active     BOOLEAN NOT NULL DEFAULT TRUE,
    is_staff      BOOLEAN NOT NULL DEFAULT FALSE,
    created       BIGINT  NOT NULL,
    CONSTRAINT users_username_key UNIQUE (username)
);

CREATE TABLE clients (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name              TEXT COLLATE "C" NOT NULL,
    token_ttl_secs    BIGINT CHECK (token_ttl_secs > 0),
    throttle_rate     TEXT,
    sliding_expiry    BOOLEAN NOT NULL DEFAULT FALSE,
    max_lifetime_secs BIGINT CHECK (max_lifetime_secs > 0),
    description       TEXT    NOT NULL DEFAULT '',
    created           BIGINT  NOT NULL,
    CONSTRAINT clients_name_key UNIQUE (name)
);

CREATE TABLE auth_tokens (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  BIGINT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    digest     BYTEA  NOT NULL CHECK (length(digest) = 32),
    seed       BYTEA  NOT NULL CHECK (length(seed) = 32),
    created    BIGINT NOT NULL,
    expiry     BIGINT,
    last_used  BIGINT,
    user_agent TEXT,
    ip         TEXT,
    CONSTRAINT auth_tokens_digest_key UNIQUE (digest),
    CONSTRAINT auth_tokens_user_id_client_id_key UNIQUE (user_id, client_id)
);

-- (user_id, client_id) is indexed by its UNIQUE constraint; a client's tokens need their own.
CREATE INDEX auth_tokens_client_id ON auth_tokens (client_id);
-- purge_expired scans expiring tokens only.
CREATE INDEX auth_tokens_expiry ON auth_tokens (expiry) WHERE expiry IS NOT NULL;
