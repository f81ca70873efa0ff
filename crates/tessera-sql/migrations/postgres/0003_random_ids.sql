-- Ids are drawn at random by Tessera (`tessera_core::model::fresh_id`), never from a sequence: a
-- sequence that a restore winds back would hand an id out twice, and whatever still refers to the
-- old holder (a cached authentication, a buffered write, tokens in Redis) would reach the new one.
-- Existing rows keep their ids; the identity generators go, so an insert without an id fails.
ALTER TABLE users ALTER COLUMN id DROP IDENTITY;
ALTER TABLE clients ALTER COLUMN id DROP IDENTITY;
ALTER TABLE auth_tokens ALTER COLUMN id DROP IDENTITY;
