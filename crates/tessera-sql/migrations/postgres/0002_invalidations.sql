-- The invalidation log: every change that makes a cached authentication stale, written by
-- triggers in the same transaction as the change — whoever makes it (a server, the CLI, or an
-- admin with a SQL shell). Instances follow it to drop cache entries. Sliding-expiry extensions
-- are not logged: a longer expiry never makes a cached verdict unsafe.

CREATE TABLE invalidations (
    seq       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    digest    BYTEA,
    user_id   BIGINT,
    client_id BIGINT,
    created   BIGINT NOT NULL DEFAULT (extract(epoch FROM now())::bigint)
);

CREATE FUNCTION tessera_token_invalidated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO invalidations (digest) VALUES (OLD.digest);
    RETURN NULL;
END
$$;

CREATE FUNCTION tessera_user_invalidated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO invalidations (user_id) VALUES (OLD.id);
    RETURN NULL;
END
$$;

CREATE FUNCTION tessera_client_invalidated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO invalidations (client_id) VALUES (OLD.id);
    RETURN NULL;
END
$$;

CREATE TRIGGER auth_tokens_deleted AFTER DELETE ON auth_tokens
    FOR EACH ROW EXECUTE FUNCTION tessera_token_invalidated();

CREATE TRIGGER auth_tokens_shortened AFTER UPDATE OF expiry ON auth_tokens
    FOR EACH ROW WHEN (NEW.expiry IS NOT NULL AND (OLD.expiry IS NULL OR NEW.expiry < OLD.expiry))
    EXECUTE FUNCTION tessera_token_invalidated();

CREATE TRIGGER users_changed AFTER UPDATE OF username, is_active, is_staff ON users
    FOR EACH ROW WHEN (NEW.username IS DISTINCT FROM OLD.username
                       OR NEW.is_active IS DISTINCT FROM OLD.is_active
                       OR NEW.is_staff IS DISTINCT FROM OLD.is_staff)
    EXECUTE FUNCTION tessera_user_invalidated();

CREATE TRIGGER users_deleted AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION tessera_user_invalidated();

CREATE TRIGGER clients_changed AFTER UPDATE ON clients
    FOR EACH ROW EXECUTE FUNCTION tessera_client_invalidated();

CREATE TRIGGER clients_deleted AFTER DELETE ON clients
    FOR EACH ROW EXECUTE FUNCTION tessera_client_invalidated();
