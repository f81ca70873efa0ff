-- The invalidation log: every change that makes a cached authentication stale, written by
-- triggers in the same transaction as the change — whoever makes it (a server, the CLI, or an
-- admin with a SQL shell). Instances follow it to drop cache entries. Sliding-expiry extensions
-- are not logged: a longer expiry never makes a cached verdict unsafe.

CREATE TABLE invalidations (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    digest    BLOB,
    user_id   INTEGER,
    client_id INTEGER,
    created   INTEGER NOT NULL DEFAULT (unixepoch())
) STRICT;

CREATE TRIGGER auth_tokens_deleted AFTER DELETE ON auth_tokens
BEGIN
    INSERT INTO invalidations (digest) VALUES (OLD.digest);
END;

CREATE TRIGGER auth_tokens_shortened AFTER UPDATE OF expiry ON auth_tokens
WHEN NEW.expiry IS NOT NULL AND (OLD.expiry IS NULL OR NEW.expiry < OLD.expiry)
BEGIN
    INSERT INTO invalidations (digest) VALUES (OLD.digest);
END;

CREATE TRIGGER users_changed AFTER UPDATE OF username, is_active, is_staff ON users
WHEN NEW.username IS NOT OLD.username OR NEW.is_active IS NOT OLD.is_active OR NEW.is_staff IS NOT OLD.is_staff
BEGIN
    INSERT INTO invalidations (user_id) VALUES (OLD.id);
END;

CREATE TRIGGER users_deleted AFTER DELETE ON users
BEGIN
    INSERT INTO invalidations (user_id) VALUES (OLD.id);
END;

CREATE TRIGGER clients_changed AFTER UPDATE ON clients
BEGIN
    INSERT INTO invalidations (client_id) VALUES (OLD.id);
END;

CREATE TRIGGER clients_deleted AFTER DELETE ON clients
BEGIN
    INSERT INTO invalidations (client_id) VALUES (OLD.id);
END;
