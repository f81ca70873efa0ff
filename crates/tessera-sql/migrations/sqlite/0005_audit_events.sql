-- The audit log: one row per event (login, logout, token and admin changes), written in batches by
-- each instance's recorder. Never a token or a password. Times are microseconds since the Unix
-- epoch (UTC); `detail` is a small JSON object (the event's own fields). Nothing refers to a row
-- by its id, so the id is the table's own rowid counter: it only orders rows of the same time.
CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    user_id    INTEGER,
    username   TEXT,
    client     TEXT,
    token_id   INTEGER,
    ip         TEXT,
    user_agent TEXT,
    detail     TEXT    NOT NULL DEFAULT '{}'
) STRICT;

-- `tessera audit`'s filters, each newest first; retention prunes by time.
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_username_at ON audit_events (username, at);
CREATE INDEX audit_events_client_at ON audit_events (client, at);
CREATE INDEX audit_events_kind_at ON audit_events (kind, at);
