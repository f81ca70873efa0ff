-- The server key each token was made with (one base62 character): a second login re-derives a
-- token with its own key, and `tessera key list` / `key retire` count and revoke a key's tokens.
-- Tokens issued before key rotation existed were made with the one key there was: '0'.
ALTER TABLE auth_tokens ADD COLUMN key_id TEXT NOT NULL DEFAULT '0' CHECK (length(key_id) = 1);
-- The key-rotation commands count and delete one key's tokens.
CREATE INDEX auth_tokens_key_id ON auth_tokens (key_id);
