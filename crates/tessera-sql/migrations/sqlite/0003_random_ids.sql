-- Ids are drawn at random by Tessera (`tessera_core::model::fresh_id`), never from a sequence: a
-- sequence that a restore winds back would hand an id out twice, and whatever still refers to the
-- old holder (a cached authentication, a buffered write, tokens in Redis) would reach the new one.
-- SQLite takes an explicit id in an AUTOINCREMENT column as it is, so the tables stay; this
-- version only keeps both backends' schema versions in step.
SELECT 1;
