-- Each notification says when it was sent, so that a listening instance can measure the age of an
-- invalidation when it applies it (`tessera_invalidation_lag_seconds{source="bus"}`): the payload
-- gains `at:<Unix microseconds>` (the trigger's clock_timestamp(), by the database server's clock)
-- after the log position: `<seq> at:<µs> t:<hex digest>`, `<seq> at:<µs> u:<id>`,
-- `<seq> at:<µs> c:<id>`. A reader of the old payload skips nothing it needs: the changes are as before.

CREATE OR REPLACE FUNCTION tessera_token_invalidated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    position BIGINT;
BEGIN
    INSERT INTO invalidations (digest) VALUES (OLD.digest) RETURNING seq INTO position;
    PERFORM pg_notify('tessera_invalidations', position || ' at:'
        || floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint || ' t:' || encode(OLD.digest, 'hex'));
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION tessera_user_invalidated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    position BIGINT;
BEGIN
    INSERT INTO invalidations (user_id) VALUES (OLD.id) RETURNING seq INTO position;
    PERFORM pg_notify('tessera_invalidations', position || ' at:'
        || floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint || ' u:' || OLD.id);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION tessera_client_invalidated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    position BIGINT;
BEGIN
    INSERT INTO invalidations (client_id) VALUES (OLD.id) RETURNING seq INTO position;
    PERFORM pg_notify('tessera_invalidations', position || ' at:'
        || floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint || ' c:' || OLD.id);
    RETURN NULL;
END
$$;
