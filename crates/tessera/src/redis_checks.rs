//! `serve`'s start-up checks of the Redis server's own configuration, which two guarantees rest on:
//! tokens kept in Redis are never dropped to make room (`maxmemory-policy noeviction`), and tokens
//! that leave Redis by a path no instance took (an operator's DEL or UNLINK, expiry, eviction)
//! reach every instance's cache through keyspace notifications (`redis_keyspace_events`).
//!
//! tessera-redis reads and writes the settings; the decisions — refuse, warn, follow — are here.

use crate::config::{KeyspaceEvents, RedisSettings, TokenStoreKind};
use anyhow::{Result, bail};
use tessera_redis::server_config::{TOKEN_KEY_EVENTS, emits_token_deletions, policy_evicts};
use tessera_redis::{RedisConnection, RedisError};

/// What a `maxmemory-policy` means for a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to say.
    Fine,
    /// Start, and log this warning.
    Warn(String),
    /// Do not start: this is why.
    Refuse(String),
}

/// The verdict on `policy` (or on why it could not be read), for tokens in Redis or not, with or
/// without `redis_allow_eviction`.
pub fn eviction_verdict(server: &str, policy: Result<&str, &str>, tokens_in_redis: bool, allowed: bool) -> Verdict {
    let policy = match policy {
        Ok(policy) => policy,
        Err(why) => {
            return Verdict::Warn(format!(
                "could not read maxmemory-policy from Redis at {server} ({why}); make sure it is noeviction{}",
                if tokens_in_redis { ": an evicting policy drops tokens" } else { "" }
            ));
        }
    };
    if !policy_evicts(policy) {
        return Verdict::Fine;
    }
    if !tokens_in_redis {
        return Verdict::Warn(format!(
            "Redis at {server} has maxmemory-policy {policy}: when it is full it drops keys, and an evicted \
             throttle key forgets the requests it counted; set maxmemory-policy noeviction"
        ));
    }
    let what = format!(
        "Redis at {server} has maxmemory-policy {policy}: when it is full it drops keys, and with \
         token_store = \"redis\" those are tokens (users logged out at random, sessions and pair indexes \
         left half-deleted)"
    );
    if allowed {
        Verdict::Warn(format!("{what}; starting anyway because redis_allow_eviction = true"))
    } else {
        Verdict::Refuse(format!(
            "{what}. Set `maxmemory-policy noeviction` on the Redis server (redis.conf, or CONFIG SET \
             maxmemory-policy noeviction), or set redis_allow_eviction = true to start anyway"
        ))
    }
}

/// Runs the checks on `conn`'s server. Fails when the instance must not start; otherwise returns
/// whether the invalidation bus should follow token keys through keyspace notifications.
pub async fn check(conn: &RedisConnection, settings: &RedisSettings) -> Result<bool> {
    let tokens_in_redis = settings.token_store == TokenStoreKind::Redis;
    let follow = tokens_in_redis && settings.keyspace_events != KeyspaceEvents::Off;
    let policy = conn.maxmemory_policy().await;
    if let Err(e @ RedisError::Unavailable(_)) = &policy {
        // An instance starts while Redis is down (it connects lazily): say what went unchecked,
        // and do not wait for Redis once more. Following costs nothing if nothing is published.
        tracing::warn!(
            "{e}: its maxmemory-policy (must be noeviction) and notify-keyspace-events were not checked at start-up"
        );
        return Ok(follow);
    }
    let policy = policy.map_err(|e| e.to_string());
    match eviction_verdict(
        conn.server(),
        policy.as_deref().map_err(String::as_str),
        tokens_in_redis,
        settings.allow_eviction,
    ) {
        Verdict::Fine => {}
        Verdict::Warn(message) => tracing::warn!("{message}"),
        Verdict::Refuse(message) => bail!("{message}"),
    }
    // Token keys exist only with tokens in Redis.
    if !tokens_in_redis {
        return Ok(false);
    }
    let unchecked = "tokens deleted from Redis by hand may be accepted by a cached instance until \
                     token_cache_timeout; `tessera token revoke --all` is the supported way to log everyone out";
    match settings.keyspace_events {
        KeyspaceEvents::Off => Ok(false),
        KeyspaceEvents::Auto => match conn.keyspace_events().await {
            Ok(flags) if emits_token_deletions(&flags) => {
                tracing::info!(%flags, "following token keys through Redis keyspace notifications");
                Ok(true)
            }
            Ok(flags) => {
                tracing::info!(
                    %flags,
                    "Redis emits no keyspace notifications for deleted keys (notify-keyspace-events needs E and g): \
                     {unchecked}; redis_keyspace_events = \"on\" enables them"
                );
                Ok(false)
            }
            Err(e) => {
                // Subscribing costs nothing if nothing is published: follow in case they are on.
                tracing::warn!(
                    "could not read notify-keyspace-events ({e}); following token keys in case Redis emits them \
                     (it needs {TOKEN_KEY_EVENTS}); otherwise {unchecked}"
                );
                Ok(true)
            }
        },
        KeyspaceEvents::On => match conn.enable_token_key_events().await {
            Ok(flags) => {
                tracing::info!(%flags, "enabled and following Redis keyspace notifications for token keys");
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(
                    "redis_keyspace_events = \"on\" but notify-keyspace-events could not be set ({e}); set it to \
                     include {TOKEN_KEY_EVENTS} in the Redis server's configuration; following token keys in case \
                     it does"
                );
                Ok(true)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_evicting_policy_refuses_tokens_in_redis_unless_allowed_and_warns_otherwise() {
        let server = "redis://127.0.0.1:6379";
        assert_eq!(eviction_verdict(server, Ok("noeviction"), true, false), Verdict::Fine);
        assert_eq!(eviction_verdict(server, Ok("noeviction"), false, false), Verdict::Fine);
        for policy in ["allkeys-lru", "volatile-ttl", "volatile-lfu", "allkeys-random"] {
            let Verdict::Refuse(why) = eviction_verdict(server, Ok(policy), true, false) else {
                panic!("{policy} with tokens in Redis must refuse")
            };
            for part in [policy, "maxmemory-policy noeviction", "redis_allow_eviction = true", server] {
                assert!(why.contains(part), "{part:?} in {why}");
            }
            let Verdict::Warn(why) = eviction_verdict(server, Ok(policy), true, true) else { panic!("allowed") };
            assert!(why.contains("starting anyway"), "{why}");
            let Verdict::Warn(why) = eviction_verdict(server, Ok(policy), false, false) else { panic!("no tokens") };
            assert!(why.contains("throttle") && why.contains("noeviction"), "{why}");
        }
        let Verdict::Warn(why) = eviction_verdict(server, Err("ERR unknown command 'CONFIG'"), true, false) else {
            panic!("CONFIG disabled: warn and go on")
        };
        assert!(why.contains("could not read maxmemory-policy") && why.contains("unknown command"), "{why}");
    }
}
