-- The audit log: one row per event (login, logout, token and admin changes), written in batches by
-- each instance's recorder. Never a token or a password. Times are microseconds since the Unix
-- epoch (UTC); `detail` is a small JSON object (the event's own fields), kept as text so that both
-- backends run the same SQL. Nothing refers to a row by its id, so an identity column serves: it
-- only orders rows of the same time, and concurrent writers never collide on it.
CREATE TABLE audit_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         BIGINT NOT NULL,
    kind       TEXT   NOT NULL,
    actor      TEXT   NOT NULL,
    user_id    BIGINT,
    username   TEXT,
    client     TEXT,
    token_id   BIGINT,
    ip         TEXT,
    user_agent TEXT,
    detail     TEXT   NOT NULL DEFAULT '{}'
);

-- `tessera audit`'s filters, each newest first; retention prunes by time.
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_username_at ON audit_events (username, at);
CREATE INDEX audit_events_client_at ON audit_events (client, at);
CREATE INDEX audit_events_kind_at ON audit_events (kind, at);
