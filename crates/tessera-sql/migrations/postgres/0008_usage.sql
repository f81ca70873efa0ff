-- Usage analytics. Each instance adds what it counted since its last write (once a minute) with
-- `INSERT … ON CONFLICT DO UPDATE SET n = n + excluded.n`, so instances writing to one database add
-- up exactly. `day` is the UTC day's midnight in microseconds since the Unix epoch; `client` is a
-- client's name (kept after the client is renamed or deleted) or 'unknown' (invalid tokens).
CREATE TABLE usage_daily (
    day                   BIGINT  NOT NULL,
    client                TEXT    NOT NULL,
    auth_ok               BIGINT  NOT NULL DEFAULT 0,
    auth_invalid_token    BIGINT  NOT NULL DEFAULT 0,
    auth_expired          BIGINT  NOT NULL DEFAULT 0,
    auth_inactive_user    BIGINT  NOT NULL DEFAULT 0,
    auth_forbidden_client BIGINT  NOT NULL DEFAULT 0,
    auth_throttled        BIGINT  NOT NULL DEFAULT 0,
    login_ok              BIGINT  NOT NULL DEFAULT 0,
    login_failed          BIGINT  NOT NULL DEFAULT 0,
    login_throttled       BIGINT  NOT NULL DEFAULT 0,
    tokens_issued         BIGINT  NOT NULL DEFAULT 0,
    tokens_revoked        BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (day, client)
);

-- Distinct active users: one row per (day, client, user), whichever instance saw them first
-- (`ON CONFLICT DO NOTHING`), so a user seen by two instances counts once.
CREATE TABLE usage_active_users (
    day     BIGINT  NOT NULL,
    client  TEXT    NOT NULL,
    user_id BIGINT  NOT NULL,
    PRIMARY KEY (day, client, user_id)
);

-- Requests per token, added up like the daily counts; `last_used` (microseconds) for pruning.
-- Kept here rather than in auth_tokens: tokens may live in Redis, the counts stay in SQL.
CREATE TABLE usage_tokens (
    token_id  BIGINT PRIMARY KEY,
    requests  BIGINT  NOT NULL,
    last_used BIGINT  NOT NULL
);
CREATE INDEX usage_tokens_last_used ON usage_tokens (last_used);
