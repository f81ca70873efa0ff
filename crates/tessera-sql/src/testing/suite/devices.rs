//! Device tokens of `devices = many` clients: several per (user, client), bounded by the client's
//! limit atomically, the least recently used evicted first (or the login refused), and the switch
//! back to one token per pair.

use super::*;
use std::collections::HashSet;
use tessera_core::store::{DeviceToken, TokenFilter};
use tessera_core::{AuthToken, OnDeviceLimit, TokenId};

async fn device(
    store: &DynStore,
    user: &User,
    client: &Client,
    created: DateTime<Utc>,
    max: u32,
    on_limit: OnDeviceLimit,
) -> DeviceToken {
    store.create_device_token(new_token(user, client, created, None), max, on_limit).await.expect("device token")
}

fn created(outcome: DeviceToken) -> (AuthToken, Vec<AuthToken>) {
    match outcome {
        DeviceToken::Created { token, evicted } => (token, evicted),
        DeviceToken::AtLimit => panic!("refused at the device limit"),
    }
}

fn ids(tokens: &[AuthToken]) -> HashSet<TokenId> {
    tokens.iter().map(|t| t.id).collect()
}

async fn pair_tokens(store: &DynStore, user: &User, client: &Client) -> Vec<AuthToken> {
    store
        .list_tokens(TokenFilter { user: Some(user.id), client: Some(client.id), key: None, legacy: false })
        .await
        .expect("list")
}

pub async fn device_tokens_coexist_and_the_least_recently_used_goes(store: DynStore) {
    let (alice, ios) = user_and_client(&store, "alice", "ios").await;
    let web = store.create_client(new_client("web")).await.expect("web");
    let evict = OnDeviceLimit::EvictOldest;
    let (phone, none) = created(device(&store, &alice, &ios, at(0), 3, evict).await);
    assert!(none.is_empty());
    let (tablet, _) = created(device(&store, &alice, &ios, at(10), 3, evict).await);
    let (laptop, _) = created(device(&store, &alice, &ios, at(20), 3, evict).await);
    // Another client's token does not count against this client's limit.
    created(device(&store, &alice, &web, at(5), 1, evict).await);
    assert_eq!(ids(&pair_tokens(&store, &alice, &ios).await), ids(&[phone.clone(), tablet.clone(), laptop.clone()]));
    // Device tokens are not the pair's token.
    assert_eq!(store.token_for(alice.id, ios.id).await.expect("token_for"), None);

    // The phone was used lately: the tablet (created before the laptop, never used) is the least
    // recently used.
    store.record_last_used(&[(phone.id, at(30))]).await.expect("used");
    let (watch, evicted) = created(device(&store, &alice, &ios, at(40), 3, evict).await);
    assert_eq!(ids(&evicted), ids(std::slice::from_ref(&tablet)));
    assert_eq!(store.token_by_id(tablet.id).await.expect("read"), None);
    assert_eq!(ids(&pair_tokens(&store, &alice, &ios).await), ids(&[phone.clone(), laptop.clone(), watch.clone()]));

    // A lower limit evicts down to it in one go: the laptop (20) and the phone (used at 30).
    let (_, evicted) = created(device(&store, &alice, &ios, at(50), 2, evict).await);
    assert_eq!(ids(&evicted), ids(&[laptop, phone]));
    assert_eq!(pair_tokens(&store, &alice, &ios).await.len(), 2);

    // Deleting one device's token leaves the other.
    assert!(store.delete_token(watch.id).await.expect("delete"));
    assert_eq!(pair_tokens(&store, &alice, &ios).await.len(), 1);
}

pub async fn device_limit_refuse_changes_nothing(store: DynStore) {
    let (alice, ios) = user_and_client(&store, "alice", "ios").await;
    let refuse = OnDeviceLimit::Refuse;
    created(device(&store, &alice, &ios, at(0), 2, refuse).await);
    created(device(&store, &alice, &ios, at(1), 2, refuse).await);
    let before = pair_tokens(&store, &alice, &ios).await;
    assert_eq!(device(&store, &alice, &ios, at(2), 2, refuse).await, DeviceToken::AtLimit);
    assert_eq!(pair_tokens(&store, &alice, &ios).await, before);
    // Another user is not limited by alice's devices.
    let bob = store.create_user(new_user("bob")).await.expect("bob");
    created(device(&store, &bob, &ios, at(3), 2, refuse).await);
}

pub async fn device_tokens_need_their_owners(store: DynStore) {
    let (alice, ios) = user_and_client(&store, "alice", "ios").await;
    store.delete_client(ios.id).await.expect("delete client");
    let result = store.create_device_token(new_token(&alice, &ios, at(0), None), 3, OnDeviceLimit::EvictOldest).await;
    assert_not_found(result, &format!("no client with id {}", ios.id));
}

/// Twenty logins at once with a limit of five: exactly five tokens remain (evicting), or exactly
/// five are created and fifteen refused (refusing).
pub async fn device_limits_hold_under_concurrency(store: DynStore) {
    let (alice, ios) = user_and_client(&store, "alice", "ios").await;
    let cli = store.create_client(new_client("cli")).await.expect("cli");
    for (client, on_limit) in [(&ios, OnDeviceLimit::EvictOldest), (&cli, OnDeviceLimit::Refuse)] {
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let (store, new) = (store.clone(), new_token(&alice, client, at(i), None));
                tokio::spawn(async move { store.create_device_token(new, 5, on_limit).await })
            })
            .collect();
        let mut made = 0;
        let mut refused = 0;
        for task in tasks {
            match task.await.expect("task").expect("device token") {
                DeviceToken::Created { .. } => made += 1,
                DeviceToken::AtLimit => refused += 1,
            }
        }
        assert_eq!(pair_tokens(&store, &alice, client).await.len(), 5, "{on_limit}");
        match on_limit {
            OnDeviceLimit::EvictOldest => assert_eq!((made, refused), (20, 0)),
            OnDeviceLimit::Refuse => assert_eq!((made, refused), (5, 15)),
        }
    }
}

/// A client that was `one` keeps the pair's token when it becomes `many`; it counts against the
/// limit like a device token.
pub async fn the_pairs_token_counts_as_a_device(store: DynStore) {
    let (alice, ios) = user_and_client(&store, "alice", "ios").await;
    let (pair, created_now) =
        store.get_or_create_token(new_token(&alice, &ios, at(0), None)).await.expect("pair token");
    assert!(created_now);
    let (first, evicted) = created(device(&store, &alice, &ios, at(10), 2, OnDeviceLimit::EvictOldest).await);
    assert!(evicted.is_empty());
    assert_eq!(store.token_for(alice.id, ios.id).await.expect("pair"), Some(pair.clone()));
    let (_, evicted) = created(device(&store, &alice, &ios, at(20), 2, OnDeviceLimit::EvictOldest).await);
    assert_eq!(ids(&evicted), ids(&[pair]));
    assert_eq!(store.token_for(alice.id, ios.id).await.expect("pair"), None);
    assert!(pair_tokens(&store, &alice, &ios).await.iter().any(|t| t.id == first.id));
}

/// From `many` back to `one`: each user keeps the most recently used token, which becomes the
/// pair's token; the others go, and are returned.
pub async fn keeping_one_token_per_pair(store: DynStore) {
    let (alice, ios) = user_and_client(&store, "alice", "ios").await;
    let bob = store.create_user(new_user("bob")).await.expect("bob");
    let web = store.create_client(new_client("web")).await.expect("web");
    let evict = OnDeviceLimit::EvictOldest;
    let (a1, _) = created(device(&store, &alice, &ios, at(0), 10, evict).await);
    let (a2, _) = created(device(&store, &alice, &ios, at(10), 10, evict).await);
    let (a3, _) = created(device(&store, &alice, &ios, at(20), 10, evict).await);
    let (b1, _) = created(device(&store, &bob, &ios, at(5), 10, evict).await);
    let (b2, _) = created(device(&store, &bob, &ios, at(6), 10, evict).await);
    let (w1, _) = created(device(&store, &alice, &web, at(7), 10, evict).await);
    let (w2, _) = created(device(&store, &alice, &web, at(8), 10, evict).await);
    // Alice used her first device last; bob never used either (the newer one stays).
    store.record_last_used(&[(a1.id, at(100))]).await.expect("used");

    let deleted = store.keep_one_token_per_pair(ios.id).await.expect("keep one");
    assert_eq!(ids(&deleted), ids(&[a2, a3, b1]));
    assert_eq!(store.token_for(alice.id, ios.id).await.expect("alice").map(|t| t.id), Some(a1.id));
    assert_eq!(store.token_for(bob.id, ios.id).await.expect("bob").map(|t| t.id), Some(b2.id));
    // The kept token is the pair's token now: get_or_create hands it back.
    let (again, created_now) = store.get_or_create_token(new_token(&alice, &ios, at(200), None)).await.expect("again");
    assert_eq!((again.id, created_now), (a1.id, false));
    // Another client is untouched; a second call finds nothing to do.
    assert_eq!(ids(&pair_tokens(&store, &alice, &web).await), ids(&[w1, w2]));
    assert_eq!(store.keep_one_token_per_pair(ios.id).await.expect("again"), vec![]);
}
