-- Invalidations pushed at once: each trigger that writes the invalidation log also notifies the
-- channel `tessera_invalidations` (`tessera_sql::PgListenBus` listens to it), in the same
-- transaction, so the notification is delivered at commit and never for a rolled-back change.
-- The payload is the log entry's position then the change, as the Redis bus spells it:
-- `<seq> t:<hex digest>`, `<seq> u:<user id>`, `<seq> c:<client id>` (under 100 bytes, far below
-- PostgreSQL's 8000-byte limit). The log stays the record; instances still poll it.

CREATE OR REPLACE FUNCTION tessera_token_invalidated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    position BIGINT;
BEGIN
    INSERT INTO invalidations (digest) VALUES (OLD.digest) RETURNING seq INTO position;
    PERFORM pg_notify('tessera_invalidations', position || ' t:' || encode(OLD.digest, 'hex'));
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION tessera_user_invalidated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    position BIGINT;
BEGIN
    INSERT INTO invalidations (user_id) VALUES (OLD.id) RETURNING seq INTO position;
    PERFORM pg_notify('tessera_invalidations', position || ' u:' || OLD.id);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION tessera_client_invalidated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    position BIGINT;
BEGIN
    INSERT INTO invalidations (client_id) VALUES (OLD.id) RETURNING seq INTO position;
    PERFORM pg_notify('tessera_invalidations', position || ' c:' || OLD.id);
    RETURN NULL;
END
$$;
