-- Tokens imported from durin (legacy tokens) have no seed: 32 zero bytes. "Are there any?" is asked
-- by every server that accepts them automatically and by `tessera token list --legacy`; without
-- an index it reads the whole table, which on a store of a million tokens is a long scan that a
-- stream of 64-hex strings could make a server repeat. This partial index holds the legacy tokens
-- alone (none, for a store that never imported): the queries name the same literal, so the
-- planner can prove the index applies.
CREATE INDEX auth_tokens_legacy ON auth_tokens (id) WHERE seed = '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
