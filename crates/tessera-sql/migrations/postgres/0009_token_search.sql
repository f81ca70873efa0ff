-- The admin's token search pages by a sort key with the token id as tie-break (keyset pages):
-- one index per sort, so a page reads its rows in order from an index instead of sorting every
-- token. The expressions must match tessera-sql's search.rs word for word (never-used tokens sort
-- as -1, never-expiring ones as the largest 64-bit integer).
CREATE INDEX auth_tokens_created_id ON auth_tokens (created, id);
CREATE INDEX auth_tokens_last_used_id ON auth_tokens ((COALESCE(last_used, -1)), id);
CREATE INDEX auth_tokens_expiry_id ON auth_tokens ((COALESCE(expiry, 9223372036854775807)), id);
