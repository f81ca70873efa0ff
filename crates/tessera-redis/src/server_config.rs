//! What Tessera needs from the Redis server's own configuration, read (and, when asked, changed)
//! with `CONFIG`: an eviction policy that never drops tokens, and the keyspace notifications that
//! let [`RedisBus`](crate::RedisBus) see tokens leave Redis by a path no instance took.
//!
//! The decisions — refuse to start, warn, enable — belong to whoever runs Tessera (the `tessera`
//! binary); this module only reads, writes and interprets the settings.

use crate::connection::{RedisConnection, RedisError};
use std::collections::HashMap;

/// The only `maxmemory-policy` under which Redis never drops a key to make room.
pub const NOEVICTION: &str = "noeviction";

/// The keyspace-notification classes [`RedisBus::following_token_keys`](crate::RedisBus::following_token_keys)
/// uses: `E` (keyevent channels), `g` (`del`, sent for DEL and UNLINK), `x` (`expired`), `e`
/// (`evicted`).
pub const TOKEN_KEY_EVENTS: &str = "Egxe";

/// Whether a `maxmemory-policy` may drop keys once `maxmemory` is reached: every policy but
/// `noeviction`. `volatile-*` policies drop keys with a TTL, which every expiring token has.
pub fn policy_evicts(policy: &str) -> bool {
    !policy.eq_ignore_ascii_case(NOEVICTION)
}

/// Whether `notify-keyspace-events` (as `CONFIG GET` shows it) makes Redis publish the `del`
/// keyevent — the one an operator's DEL or UNLINK of a token key causes — so following token
/// keys sees something. `expired` and `evicted` are followed too when their classes are on.
pub fn emits_token_deletions(flags: &str) -> bool {
    flags.contains('E') && (flags.contains('g') || flags.contains('A'))
}

/// `flags` with [`TOKEN_KEY_EVENTS`] added: nothing already on is taken away.
pub fn with_token_key_events(flags: &str) -> String {
    let mut out = flags.to_string();
    for c in TOKEN_KEY_EVENTS.chars() {
        // `A` stands for every key-event class but `n` and `m`, so `g`, `x` and `e` among them.
        let covered = out.contains(c) || (c != 'E' && out.contains('A'));
        if !covered {
            out.push(c);
        }
    }
    out
}

impl RedisConnection {
    /// One server setting, as `CONFIG GET <name>` shows it. Fails when the server refuses
    /// `CONFIG` — managed Redis services often rename or disable it — or does not know `name`.
    pub async fn config_get(&self, name: &str) -> Result<String, RedisError> {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("GET").arg(name);
        let mut values: HashMap<String, String> = self.query("CONFIG GET", cmd).await?;
        values.remove(name).ok_or_else(|| {
            RedisError::Command(format!("CONFIG GET {name}: Redis at {} has no such setting", self.server()))
        })
    }

    /// Changes one server setting (`CONFIG SET <name> <value>`), for the running server only:
    /// Redis does not write it to its configuration file unless told to (`CONFIG REWRITE`).
    pub async fn config_set(&self, name: &str, value: &str) -> Result<(), RedisError> {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("SET").arg(name).arg(value);
        let _: redis::Value = self.query("CONFIG SET", cmd).await?;
        Ok(())
    }

    /// The server's `maxmemory-policy` (see [`policy_evicts`]).
    pub async fn maxmemory_policy(&self) -> Result<String, RedisError> {
        self.config_get("maxmemory-policy").await
    }

    /// The server's `notify-keyspace-events` flags (see [`emits_token_deletions`]).
    pub async fn keyspace_events(&self) -> Result<String, RedisError> {
        self.config_get("notify-keyspace-events").await
    }

    /// Adds [`TOKEN_KEY_EVENTS`] to the server's `notify-keyspace-events`, keeping every class
    /// already on (other applications may rely on them); returns the flags now in force.
    pub async fn enable_token_key_events(&self) -> Result<String, RedisError> {
        let flags = self.keyspace_events().await?;
        let wanted = with_token_key_events(&flags);
        if wanted != flags {
            self.config_set("notify-keyspace-events", &wanted).await?;
        }
        self.keyspace_events().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_but_noeviction_evicts() {
        assert!(!policy_evicts("noeviction"));
        for policy in [
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
        ] {
            assert!(policy_evicts(policy), "{policy}");
        }
    }

    #[test]
    fn token_key_events_are_added_never_removed() {
        assert_eq!(with_token_key_events(""), "Egxe");
        assert_eq!(with_token_key_events("Kx"), "KxEge");
        assert_eq!(with_token_key_events("AK"), "AKE");
        assert_eq!(with_token_key_events("AKE"), "AKE");
        assert_eq!(with_token_key_events("gxeE"), "gxeE");
        assert!(!emits_token_deletions(""));
        assert!(!emits_token_deletions("Ex"), "expiry alone does not show a DEL");
        assert!(!emits_token_deletions("Kg"), "keyspace channels only: the bus listens on keyevent channels");
        assert!(emits_token_deletions("gE"));
        assert!(emits_token_deletions("AE"));
        assert!(emits_token_deletions(&with_token_key_events("Kl")));
    }
}
