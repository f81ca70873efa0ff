//! Single tokens: creation, the one-token-per-(user, client) rule, lookups.

use super::*;
use std::collections::HashSet;
use tessera_core::store::TokenFilter;
use tessera_core::{AuthToken, TokenId};

/// The stored form of `new` with id `id` and no last use.
fn stored(id: TokenId, new: &NewToken) -> AuthToken {
    AuthToken {
        id,
        user_id: new.user_id,
        client_id: new.client_id,
        digest: new.digest,
        seed: new.seed,
        key_id: new.key_id,
        created: new.created,
        expiry: new.expiry,
        last_used: None,
        user_agent: new.user_agent.clone(),
        ip: new.ip.clone(),
    }
}

pub async fn tokens_crud(store: DynStore) {
    let (alice, web) = user_and_client(&store, "alice", "web").await;
    let new = new_token(&alice, &web, at(0), Some(at(3600)));
    let token = store.create_token(new.clone()).await.expect("create");
    assert_eq!(token, stored(token.id, &new));

    assert_eq!(store.token_by_id(token.id).await.expect("by id"), Some(token.clone()));
    assert_eq!(store.token_by_digest(&new.digest).await.expect("by digest"), Some(token.clone()));
    assert_eq!(store.token_for(alice.id, web.id).await.expect("for pair"), Some(token.clone()));
    assert_eq!(store.token_by_id(TokenId(token.id.0 + 1000)).await.expect("by id"), None);
    assert_eq!(store.token_by_digest(&codec().issue().digest).await.expect("by digest"), None);
    let ios = store.create_client(new_client("ios")).await.expect("ios");
    assert_eq!(store.token_for(alice.id, ios.id).await.expect("for pair"), None);

    // Optional fields empty, never expiring.
    let mut bare = new_token(&alice, &ios, at(10), None);
    bare.user_agent = None;
    bare.ip = None;
    let bare_token = store.create_token(bare.clone()).await.expect("create bare");
    assert_eq!(bare_token, stored(bare_token.id, &bare));
    assert_eq!(store.token_by_id(bare_token.id).await.expect("by id"), Some(bare_token.clone()));

    assert!(store.delete_token(token.id).await.expect("delete"));
    assert!(!store.delete_token(token.id).await.expect("delete again"));
    assert_eq!(store.token_by_digest(&new.digest).await.expect("by digest"), None);
    assert_eq!(store.token_for(alice.id, web.id).await.expect("for pair"), None);
    assert_eq!(store.list_tokens(TokenFilter::default()).await.expect("list"), vec![bare_token]);
}

pub async fn token_conflicts_and_missing_owners(store: DynStore) {
    let (alice, web) = user_and_client(&store, "alice", "web").await;
    let first = store.create_token(new_token(&alice, &web, at(0), None)).await.expect("create");

    // A second token for the same pair is a conflict, and the first is untouched.
    let second = new_token(&alice, &web, at(5), Some(at(50)));
    assert_conflict(
        store.create_token(second).await,
        &format!("user {} already has a token for client {}", alice.id, web.id),
    );
    assert_eq!(store.list_tokens(TokenFilter::default()).await.expect("list"), vec![first.clone()]);

    // The same digest for another pair is a conflict too (it cannot happen with random seeds).
    let ios = store.create_client(new_client("ios")).await.expect("ios");
    let mut same_digest = new_token(&alice, &ios, at(0), None);
    same_digest.digest = first.digest;
    assert!(matches!(store.create_token(same_digest).await, Err(StoreError::Conflict(_))));

    // Tokens of users or clients that do not exist.
    let mut ghost_user = alice.clone();
    ghost_user.id.0 += 1000;
    let mut ghost_client = web.clone();
    ghost_client.id.0 += 1000;
    let no_user = format!("no user with id {}", ghost_user.id);
    let no_client = format!("no client with id {}", ghost_client.id);
    assert_not_found(store.create_token(new_token(&ghost_user, &web, at(0), None)).await, &no_user);
    assert_not_found(store.create_token(new_token(&alice, &ghost_client, at(0), None)).await, &no_client);
    assert_not_found(store.get_or_create_token(new_token(&ghost_user, &web, at(0), None)).await, &no_user);
    assert_not_found(store.get_or_create_token(new_token(&alice, &ghost_client, at(0), None)).await, &no_client);
    assert_eq!(store.list_tokens(TokenFilter::default()).await.expect("list"), vec![first]);
}

pub async fn get_or_create_returns_the_pairs_token(store: DynStore) {
    let (alice, web) = user_and_client(&store, "alice", "web").await;
    let new = new_token(&alice, &web, at(0), Some(at(60)));
    let (created, fresh) = store.get_or_create_token(new.clone()).await.expect("first");
    assert!(fresh);
    assert_eq!(created, stored(created.id, &new));

    let other = new_token(&alice, &web, at(30), None);
    let (again, fresh) = store.get_or_create_token(other.clone()).await.expect("second");
    assert!(!fresh);
    assert_eq!(again, created);
    assert_eq!(store.token_by_digest(&other.digest).await.expect("by digest"), None);
}

pub async fn get_or_create_is_atomic_under_concurrency(store: DynStore) {
    let (alice, web) = user_and_client(&store, "alice", "web").await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let store = store.clone();
        let new = new_token(&alice, &web, at(i), None);
        tasks.spawn(async move { store.get_or_create_token(new).await });
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        results.push(joined.expect("task").expect("get_or_create"));
    }
    assert_eq!(results.len(), 20);
    assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1, "exactly one call creates");
    let ids: HashSet<TokenId> = results.iter().map(|(t, _)| t.id).collect();
    assert_eq!(ids.len(), 1, "all calls return the same token");
    let all = store.list_tokens(TokenFilter::default()).await.expect("list");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0], results[0].0);
}
