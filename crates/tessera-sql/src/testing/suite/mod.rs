//! The shared store test suite: every case takes a fresh, empty [`Store`] and checks one part of
//! the contract in `tessera_core::store`. It uses nothing but `tessera-core`, so every store —
//! SQLite, PostgreSQL, and the Redis token store — runs the same cases.
//!
//! Cases take `Arc<dyn Store>` rather than a reference so that the concurrency cases can hand the
//! store to spawned tasks.

#![allow(missing_docs)] // test cases: their names are their documentation
#![allow(clippy::unwrap_used)]

pub mod clients;
pub mod devices;
pub mod token_sets;
pub mod tokens;
pub mod users;

pub use clients::*;
pub use devices::*;
pub use token_sets::*;
pub use tokens::*;
pub use users::*;

use chrono::{DateTime, TimeDelta, Utc};
use std::sync::Arc;
use tessera_core::store::{Store, StoreError};
use tessera_core::{
    Client, ClientName, IssuedToken, NewClient, NewToken, NewUser, ServerKey, TokenCodec, Ttl, User, Username,
};

/// A store under test.
pub type DynStore = Arc<dyn Store>;

/// A fixed instant with a microsecond part, the precision stores keep.
pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_714_564_800, 123_456_000).expect("valid instant")
}

/// `t0` plus `secs` seconds.
pub fn at(secs: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(secs)
}

/// Now, cut to whole microseconds.
pub fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).expect("valid instant")
}

/// A codec with a fresh key.
pub fn codec() -> TokenCodec {
    TokenCodec::new(ServerKey::generate(), "tsr_", 64).expect("codec")
}

pub fn new_user(name: &str) -> NewUser {
    NewUser {
        username: name.parse().expect("username"),
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$fake${name}"),
        is_staff: false,
        is_active: true,
    }
}

pub fn client_name(name: &str) -> ClientName {
    name.parse().expect("client name")
}

pub fn username(name: &str) -> Username {
    name.parse().expect("username")
}

pub fn new_client(name: &str) -> NewClient {
    NewClient::new(client_name(name), "1h".parse().expect("ttl"))
}

/// A token for (user, client) issued at `created`, expiring at `expiry`.
pub fn new_token(user: &User, client: &Client, created: DateTime<Utc>, expiry: Option<DateTime<Utc>>) -> NewToken {
    new_token_from(&codec().issue(), user, client, created, expiry)
}

pub fn new_token_from(
    issued: &IssuedToken,
    user: &User,
    client: &Client,
    created: DateTime<Utc>,
    expiry: Option<DateTime<Utc>>,
) -> NewToken {
    NewToken {
        user_id: user.id,
        client_id: client.id,
        digest: issued.digest,
        seed: issued.seed,
        key_id: issued.key_id,
        created,
        expiry,
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) tessera-tests".into()),
        ip: Some("203.0.113.7".into()),
    }
}

/// A user and a client to hang tokens on.
pub async fn user_and_client(store: &DynStore, user: &str, client: &str) -> (User, Client) {
    let u = store.create_user(new_user(user)).await.expect("create user");
    let c = store.create_client(new_client(client)).await.expect("create client");
    (u, c)
}

/// Asserts `result` is a `Conflict` whose message is `want`.
#[track_caller]
pub fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, want: &str) {
    match result {
        Err(StoreError::Conflict(msg)) => assert_eq!(msg, want),
        other => panic!("expected Conflict({want:?}), got {other:?}"),
    }
}

/// Asserts `result` is a `NotFound` whose message is `want`.
#[track_caller]
pub fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, want: &str) {
    match result {
        Err(StoreError::NotFound(msg)) => assert_eq!(msg, want),
        other => panic!("expected NotFound({want:?}), got {other:?}"),
    }
}

/// The TTL `text` parses to.
pub fn ttl(text: &str) -> Ttl {
    text.parse().expect("ttl")
}

/// `ping` answers on a working store.
pub async fn ping(store: DynStore) {
    store.ping().await.expect("ping");
}

/// Calls the macro `$m` with the name of every case of the suite, so that each store's test binary
/// runs them all — a case added here reaches every store.
#[macro_export]
macro_rules! for_each_suite_case {
    ($m:ident) => {
        $m! {
        ping,
        users_crud,
        users_are_listed_by_username,
        user_conflicts_and_missing_users,
        clients_crud,
        client_conflicts_and_missing_clients,
        client_updates,
        tokens_crud,
        token_conflicts_and_missing_owners,
        get_or_create_returns_the_pairs_token,
        get_or_create_is_atomic_under_concurrency,
        deleting_a_client_deletes_its_tokens_only,
        deleting_a_user_deletes_their_tokens,
        deactivating_a_user_keeps_their_tokens,
        token_with_owner_joins_user_and_client,
        user_and_client_reads_both_or_either,
        listing_and_bulk_deleting_tokens,
        tokens_keep_their_key_id_and_are_counted_and_revoked_per_key,
        legacy_tokens_are_kept_listed_counted_and_deleted,
        password_hash_upgrades_only_over_the_hash_verified,
        purge_expired_removes_only_expired_tokens,
        set_expiry_changes_and_clears_expiry,
        record_last_used_in_batches,
        device_tokens_coexist_and_the_least_recently_used_goes,
        device_limit_refuse_changes_nothing,
        device_tokens_need_their_owners,
        device_limits_hold_under_concurrency,
        the_pairs_token_counts_as_a_device,
        keeping_one_token_per_pair,
        }
    };
}
