-- Multi-device clients. A client's `devices` policy: 'one' (durin: at most one token per (user,
-- client), the pair's token) or 'many' (djforge: a token per device, at most `max_devices` per
-- (user, client); at the limit the least recently used goes, or the login is refused).
--
-- A token is the pair's token (per_device = 0) or a device token (per_device = 1). The
-- uniqueness of the pair's token is a partial unique index; device tokens are counted and evicted
-- by the store in one write transaction. SQLite cannot drop the old UNIQUE (user_id, client_id)
-- table constraint, so auth_tokens is rebuilt (with its indexes and invalidation triggers).

ALTER TABLE clients ADD COLUMN devices TEXT NOT NULL DEFAULT 'one' CHECK (devices IN ('one', 'many'));
ALTER TABLE clients ADD COLUMN max_devices INTEGER NOT NULL DEFAULT 10 CHECK (max_devices BETWEEN 1 AND 1000);
ALTER TABLE clients ADD COLUMN on_device_limit TEXT NOT NULL DEFAULT 'evict-oldest'
    CHECK (on_device_limit IN ('evict-oldest', 'refuse'));

ALTER TABLE auth_tokens RENAME TO auth_tokens_before_devices;

CREATE TABLE auth_tokens (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  INTEGER NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    digest     BLOB    NOT NULL UNIQUE CHECK (length(digest) = 32),
    seed       BLOB    NOT NULL CHECK (length(seed) = 32),
    created    INTEGER NOT NULL,
    expiry     INTEGER,
    last_used  INTEGER,
    user_agent TEXT,
    ip         TEXT,
    per_device INTEGER NOT NULL DEFAULT 0 CHECK (per_device IN (0, 1))
) STRICT;

INSERT INTO auth_tokens (id, user_id, client_id, digest, seed, created, expiry, last_used, user_agent, ip)
    SELECT id, user_id, client_id, digest, seed, created, expiry, last_used, user_agent, ip
    FROM auth_tokens_before_devices;
-- Its indexes and invalidation triggers go with it (the tokens stay, so nothing is logged).
DROP TABLE auth_tokens_before_devices;

-- The pair's token: at most one per (user, client).
CREATE UNIQUE INDEX auth_tokens_pair ON auth_tokens (user_id, client_id) WHERE per_device = 0;
-- A user's tokens on a client, whatever their kind (device limits, sessions).
CREATE INDEX auth_tokens_user_client ON auth_tokens (user_id, client_id);
CREATE INDEX auth_tokens_client_id ON auth_tokens (client_id);
CREATE INDEX auth_tokens_expiry ON auth_tokens (expiry) WHERE expiry IS NOT NULL;

CREATE TRIGGER auth_tokens_deleted AFTER DELETE ON auth_tokens
BEGIN
    INSERT INTO invalidations (digest) VALUES (OLD.digest);
END;

CREATE TRIGGER auth_tokens_shortened AFTER UPDATE OF expiry ON auth_tokens
WHEN NEW.expiry IS NOT NULL AND (OLD.expiry IS NULL OR NEW.expiry < OLD.expiry)
BEGIN
    INSERT INTO invalidations (digest) VALUES (OLD.digest);
END;
