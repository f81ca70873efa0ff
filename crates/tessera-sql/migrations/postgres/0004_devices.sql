-- Multi-device clients. A client's `devices` policy: 'one' (durin: at most one token per (user,
-- client), the pair's token) or 'many' (djforge: a token per device, at most `max_devices` per
-- (user, client); at the limit the least recently used goes, or the login is refused).
--
-- A token is the pair's token (per_device = 0) or a device token (per_device = 1). The
-- uniqueness of the pair's token becomes a partial unique index; device tokens are counted and
-- evicted by the store in one transaction that holds the user's row lock.

ALTER TABLE clients
    ADD COLUMN devices TEXT NOT NULL DEFAULT 'one' CHECK (devices IN ('one', 'many')),
    ADD COLUMN max_devices BIGINT NOT NULL DEFAULT 10 CHECK (max_devices BETWEEN 1 AND 1000),
    ADD COLUMN on_device_limit TEXT NOT NULL DEFAULT 'evict-oldest'
        CHECK (on_device_limit IN ('evict-oldest', 'refuse'));

ALTER TABLE auth_tokens ADD COLUMN per_device INTEGER NOT NULL DEFAULT 0 CHECK (per_device IN (0, 1));
ALTER TABLE auth_tokens DROP CONSTRAINT auth_tokens_user_id_client_id_key;
-- The pair's token: at most one per (user, client).
CREATE UNIQUE INDEX auth_tokens_pair ON auth_tokens (user_id, client_id) WHERE per_device = 0;
-- A user's tokens on a client, whatever their kind (device limits, sessions).
CREATE INDEX auth_tokens_user_client ON auth_tokens (user_id, client_id);
