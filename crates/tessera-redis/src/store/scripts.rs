//! The token store's Lua scripts. Every mutation is one script, so Redis runs it atomically: no
//! other client sees half a token, two logins cannot both create the pair's token, and a deletion
//! cannot happen without its invalidation message (the script publishes it).
//!
//! Every script takes the key prefix as `ARGV[1]` and builds key names itself: the keys a deletion
//! touches (a user's tokens) are only known inside the script. That suits a standalone Redis (or
//! one primary with replicas), not Redis Cluster.
//!
//! Numbers stay strings: Lua numbers are doubles and Redis formats them in ways PEXPIREAT rejects,
//! so timestamps are passed in, stored and compared (with `tonumber`, exact below 2^53 µs, the
//! year 2255) but never printed from Lua. Token ids come in too: each is a fresh random id drawn
//! by the caller (`tessera_core::model::fresh_id`), never a counter Redis keeps — a counter that a
//! deleted key, a restore or a failover winds back would hand an id out twice.

use redis::Script;
use std::sync::LazyLock;

/// Shared by every script. A token's record, as scripts return it, is the array
/// `{digest, id, user_id, client_id, seed, created, expiry, last_used, user_agent, ip, key_id}` with
/// nil for absent fields (see `record.rs`; an absent `key_id` is `0`, a token stored before tokens
/// carried a key id).
const PRELUDE: &str = r#"
local P = ARGV[1]
local FIELDS = {'id', 'user_id', 'client_id', 'seed', 'created', 'expiry', 'last_used', 'user_agent', 'ip', 'key_id'}

local function tok(d) return P .. 'tok:' .. d end

local function row(d)
  local v = redis.call('HMGET', tok(d), unpack(FIELDS))
  if not v[1] then return nil end
  return {d, v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10]}
end

-- An index set lives as long as its longest-lived member: GT only ever moves its expiry later
-- (and leaves a persistent set alone); a new set takes its first member's.
local function index_expire(k, at, fresh)
  if at == '' then redis.call('PERSIST', k)
  elseif fresh then redis.call('PEXPIREAT', k, at)
  else redis.call('PEXPIREAT', k, at, 'GT') end
end

-- Gives all of a token's keys Redis's expiry `at` (ms since the epoch; '' = never).
local function apply_expiry(r, at, fresh_user, fresh_client)
  for _, k in ipairs({tok(r[1]), P .. 'pair:' .. r[3] .. ':' .. r[4], P .. 'id:' .. r[2]}) do
    if at == '' then redis.call('PERSIST', k) else redis.call('PEXPIREAT', k, at) end
  end
  index_expire(P .. 'user:' .. r[3], at, fresh_user)
  index_expire(P .. 'client:' .. r[4], at, fresh_client)
end

local function remove(r)
  redis.call('DEL', tok(r[1]), P .. 'id:' .. r[2])
  local pk = P .. 'pair:' .. r[3] .. ':' .. r[4]
  if redis.call('GET', pk) == r[1] then redis.call('DEL', pk) end
  redis.call('SREM', P .. 'user:' .. r[3], r[1])
  redis.call('SREM', P .. 'client:' .. r[4], r[1])
end

-- Invalidations for these digests on the bus channel, at most 256 a message, each led by its
-- publish time by Redis's clock, `at:<Unix microseconds>` (subscribers measure the lag).
local function publish(digests)
  local batch = {}
  for i, d in ipairs(digests) do
    if #batch == 0 then
      local t = redis.call('TIME')
      batch[1] = 'at:' .. t[1] .. string.rep('0', 6 - #t[2]) .. t[2]
    end
    batch[#batch + 1] = 't:' .. d
    if #batch == 257 or i == #digests then
      redis.call('PUBLISH', P .. 'invalidations', table.concat(batch, ' '))
      batch = {}
    end
  end
end

-- The records ARGV[i..] selects: 'id' ID | 'digest' D | 'pair' USER CLIENT (the pair's token) |
-- 'user' USER | 'user_client' USER CLIENT (every token of the user on the client, device tokens
-- too) | 'client' CLIENT | 'digests' D..., optionally after 'key' K: only the tokens made with
-- server key K (an absent key_id is '0'). Index-set members whose token Redis expired are dropped
-- here.
local function select_rows(i)
  local key = nil
  if ARGV[i] == 'key' then
    key = ARGV[i + 1]
    i = i + 2
  end
  local kind = ARGV[i]
  local out = {}
  local function add(d)
    local r = row(d)
    if r and (key == nil or (r[11] or '0') == key) then out[#out + 1] = r end
    return r
  end
  if kind == 'id' then
    local d = redis.call('GET', P .. 'id:' .. ARGV[i + 1])
    if d then add(d) end
  elseif kind == 'digest' then
    add(ARGV[i + 1])
  elseif kind == 'pair' then
    local d = redis.call('GET', P .. 'pair:' .. ARGV[i + 1] .. ':' .. ARGV[i + 2])
    if d then add(d) end
  elseif kind == 'user' or kind == 'client' then
    local k = P .. kind .. ':' .. ARGV[i + 1]
    for _, d in ipairs(redis.call('SMEMBERS', k)) do
      if not add(d) then redis.call('SREM', k, d) end
    end
  elseif kind == 'user_client' then
    local k = P .. 'user:' .. ARGV[i + 1]
    for _, d in ipairs(redis.call('SMEMBERS', k)) do
      local r = row(d)
      if not r then redis.call('SREM', k, d)
      elseif r[4] == ARGV[i + 2] then add(d) end
    end
  elseif kind == 'digests' then
    for j = i + 1, #ARGV do add(ARGV[j]) end
  else
    error('unknown token selection: ' .. tostring(kind))
  end
  return out
end
"#;

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

/// ARGV: prefix, mode (`create` | `get_or_create` | `device`), digest, user, client, seed, created,
/// expiry (`''` never), user agent and ip (`-` absent, `+value`), Redis expire-at (`''` never), the
/// new token's id, its server key's id; with `device`, also the most tokens the user may hold on
/// the client and the policy at the limit (`evict-oldest` | `refuse`).
///
/// `create` and `get_or_create` store the pair's token (`P pair:<user>:<client>` points at it);
/// `device` stores a device token of a `many` client (no pair key), first evicting the user's
/// least recently used tokens on the client (last use, else creation) down to the limit.
///
/// Returns `{status, record, evicted records}`: 0 the pair's existing token, 1 created, 2 the pair
/// has a token (create), 3 the digest is taken, 4 the id is taken (the caller draws another), 5 at
/// the device limit with `refuse` (nothing changed).
pub(super) static CREATE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local mode, d, user, client = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local pk = P .. 'pair:' .. user .. ':' .. client
if mode ~= 'device' then
  local existing = redis.call('GET', pk)
  if existing then
    local r = row(existing)
    if r then
      if mode == 'create' then return {2, {}, {}} end
      return {0, r, {}}
    end
  end
end
if redis.call('EXISTS', tok(d)) == 1 then return {3, {}, {}} end
local id = ARGV[12]
if redis.call('EXISTS', P .. 'id:' .. id) == 1 then return {4, {}, {}} end
local uk, ck = P .. 'user:' .. user, P .. 'client:' .. client
local evicted = {}
if mode == 'device' then
  local held = {}
  for _, m in ipairs(redis.call('SMEMBERS', uk)) do
    local r = row(m)
    if not r then redis.call('SREM', uk, m)
    elseif r[4] == client then held[#held + 1] = r end
  end
  local excess = #held + 1 - tonumber(ARGV[14])
  if excess > 0 then
    if ARGV[15] == 'refuse' then return {5, {}, {}} end
    -- Least recently used first: last use, else creation; then creation, then id.
    local function key(r) return tonumber(r[8] or r[6]) end
    table.sort(held, function(a, b)
      if key(a) ~= key(b) then return key(a) < key(b) end
      if tonumber(a[6]) ~= tonumber(b[6]) then return tonumber(a[6]) < tonumber(b[6]) end
      return tonumber(a[2]) < tonumber(b[2])
    end)
    local gone = {}
    for i = 1, excess do
      remove(held[i])
      evicted[#evicted + 1] = held[i]
      gone[#gone + 1] = held[i][1]
    end
    publish(gone)
  end
end
local fields = {'id', id, 'user_id', user, 'client_id', client, 'seed', ARGV[6], 'created', ARGV[7], 'key_id', ARGV[13]}
if ARGV[8] ~= '' then
  fields[#fields + 1] = 'expiry'
  fields[#fields + 1] = ARGV[8]
end
for _, f in ipairs({{'user_agent', ARGV[9]}, {'ip', ARGV[10]}}) do
  if string.sub(f[2], 1, 1) == '+' then
    fields[#fields + 1] = f[1]
    fields[#fields + 1] = string.sub(f[2], 2)
  end
end
local fresh_user = redis.call('EXISTS', uk) == 0
local fresh_client = redis.call('EXISTS', ck) == 0
redis.call('HSET', tok(d), unpack(fields))
if mode ~= 'device' then redis.call('SET', pk, d) end
redis.call('SET', P .. 'id:' .. id, d)
redis.call('SADD', uk, d)
redis.call('SADD', ck, d)
local r = row(d)
apply_expiry(r, ARGV[11], fresh_user, fresh_client)
return {1, r, evicted}
"#,
    )
});

/// ARGV: prefix, client. After the client went from `many` to `one`: of each user's tokens on
/// the client, keeps the most recently used (last use, else creation) as the pair's token, deletes
/// the others and publishes their invalidation. Returns the deleted records.
pub(super) static KEEP_ONE_PER_PAIR: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local client = ARGV[2]
local ck = P .. 'client:' .. client
local latest = {}
local rows = {}
for _, m in ipairs(redis.call('SMEMBERS', ck)) do
  local r = row(m)
  if not r then redis.call('SREM', ck, m) else rows[#rows + 1] = r end
end
local function newer(a, b)
  local ka, kb = tonumber(a[8] or a[6]), tonumber(b[8] or b[6])
  if ka ~= kb then return ka > kb end
  if tonumber(a[6]) ~= tonumber(b[6]) then return tonumber(a[6]) > tonumber(b[6]) end
  return tonumber(a[2]) > tonumber(b[2])
end
for _, r in ipairs(rows) do
  local kept = latest[r[3]]
  if not kept or newer(r, kept) then latest[r[3]] = r end
end
local gone, deleted = {}, {}
for _, r in ipairs(rows) do
  if latest[r[3]][1] ~= r[1] then
    remove(r)
    deleted[#deleted + 1] = r
    gone[#gone + 1] = r[1]
  end
end
for user, r in pairs(latest) do
  local pk = P .. 'pair:' .. user .. ':' .. client
  redis.call('SET', pk, r[1])
  local at = redis.call('PEXPIRETIME', tok(r[1]))
  if at > 0 then redis.call('PEXPIREAT', pk, at) end
end
publish(gone)
return deleted
"#,
    )
});

/// ARGV: prefix, selection (see `select_rows`). Returns the records.
pub(super) static READ: LazyLock<Script> = LazyLock::new(|| script("return select_rows(2)"));

/// ARGV: prefix, selection. Deletes the selected tokens, publishes their invalidation, and
/// returns their records.
pub(super) static DELETE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local rows = select_rows(2)
local gone = {}
for _, r in ipairs(rows) do
  remove(r)
  gone[#gone + 1] = r[1]
end
publish(gone)
return rows
"#,
    )
});

/// ARGV: prefix, id, expiry (`''` never), Redis expire-at (`''` never), now (`''`: set whatever
/// the current expiry; else only when not expired at `now`), publish (`always` | `forward`: only
/// when the expiry moves earlier). Returns 1 when set, 0 when the token is gone or expired.
pub(super) static SET_EXPIRY: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local d = redis.call('GET', P .. 'id:' .. ARGV[2])
if not d then return 0 end
local r = row(d)
if not r then return 0 end
local old, new, now = r[7], ARGV[3], ARGV[5]
if now ~= '' and old and tonumber(old) <= tonumber(now) then return 0 end
if new == '' then
  redis.call('HDEL', tok(d), 'expiry')
else
  redis.call('HSET', tok(d), 'expiry', new)
end
apply_expiry(r, ARGV[4], false, false)
local forward = new ~= '' and (not old or tonumber(new) < tonumber(old))
if forward or ARGV[6] == 'always' then publish({d}) end
return 1
"#,
    )
});

/// ARGV: prefix, then (id, µs) pairs. Moves each token's last use forward, never back; returns
/// how many moved.
pub(super) static RECORD_LAST_USED: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local n = 0
for i = 2, #ARGV, 2 do
  local d = redis.call('GET', P .. 'id:' .. ARGV[i])
  if d then
    local cur = redis.call('HMGET', tok(d), 'id', 'last_used')
    if cur[1] and (not cur[2] or tonumber(cur[2]) < tonumber(ARGV[i + 1])) then
      redis.call('HSET', tok(d), 'last_used', ARGV[i + 1])
      n = n + 1
    end
  end
end
return n
"#,
    )
});

/// ARGV: prefix, now (µs), digests. Deletes those that expired at or before `now`, publishes
/// their invalidation, returns how many.
pub(super) static PURGE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local now = tonumber(ARGV[2])
local gone = {}
for i = 3, #ARGV do
  local r = row(ARGV[i])
  if r and r[7] and tonumber(r[7]) <= now then
    remove(r)
    gone[#gone + 1] = r[1]
  end
end
publish(gone)
return #gone
"#,
    )
});
