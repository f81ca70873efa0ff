//! Many tokens: listings, bulk deletions, expiry and purging, last use, and how users and clients
//! carry their tokens with them.

use super::*;
use std::collections::HashSet;
use tessera_core::store::TokenFilter;
use tessera_core::{AuthToken, ClientId, KeyId, TokenDigest, TokenId, UserId};

pub async fn deleting_a_client_deletes_its_tokens_only(store: DynStore) {
    let (alice, web) = user_and_client(&store, "alice", "web").await;
    let (bob, ios) = user_and_client(&store, "bob", "ios").await;
    store.create_token(new_token(&alice, &web, at(0), None)).await.expect("t1");
    store.create_token(new_token(&bob, &web, at(1), None)).await.expect("t2");
    let kept = store.create_token(new_token(&alice, &ios, at(2), None)).await.expect("t3");

    assert_eq!(store.delete_client(web.id).await.expect("delete web"), 2);
    assert_eq!(store.list_tokens(TokenFilter::default()).await.expect("list"), vec![kept]);
    assert_eq!(store.list_users().await.expect("users").len(), 2);
    assert_eq!(store.list_clients().await.expect("clients"), vec![ios]);
}

pub async fn deleting_a_user_deletes_their_tokens(store: DynStore) {
    let (alice, web) = user_and_client(&store, "alice", "web").await;
    let (bob, ios) = user_and_client(&store, "bob", "ios").await;
    let a1 = store.create_token(new_token(&alice, &web, at(0), None)).await.expect("a1");
    store.create_token(new_token(&alice, &ios, at(1), None)).await.expect("a2");
    let b1 = store.create_token(new_token(&bob, &web, at(2), None)).await.expect("b1");

    store.delete_user(alice.id).await.expect("delete alice");
    assert_eq!(store.list_tokens(TokenFilter::default()).await.expect("list"), vec![b1]);
    assert_eq!(store.token_by_digest(&a1.digest).await.expect("by digest"), None);
    assert_eq!(store.token_with_owner(&a1.digest).await.expect("with owner"), None);
    assert_eq!(store.list_clients().await.expect("clients").len(), 2);
}

pub async fn deactivating_a_user_keeps_their_tokens(store: DynStore) {
    let (alice, web) = user_and_client(&store, "alice", "web").await;
    let token = store.create_token(new_token(&alice, &web, at(0), None)).await.expect("token");
    store.set_active(alice.id, false).await.expect("deactivate");
    assert_eq!(store.token_by_id(token.id).await.expect("by id"), Some(token.clone()));
    let owned = store.token_with_owner(&token.digest).await.expect("with owner").expect("found");
    assert_eq!(owned.token, token);
    assert!(!owned.user.is_active);
    assert_eq!(owned.user.id, alice.id);
}

/// A client with every optional field set, so that reading it back checks every column.
async fn rich_client(store: &DynStore) -> Client {
    let mut rich = new_client("rich");
    rich.throttle_rate = Some("7/m".parse().expect("rate"));
    rich.max_lifetime = Some(ttl("2d"));
    rich.sliding_expiry = true;
    rich.description = "with every field".into();
    store.create_client(rich).await.expect("rich")
}

pub async fn token_with_owner_joins_user_and_client(store: DynStore) {
    let (alice, web) = user_and_client(&store, "alice", "web").await;
    let (bob, ios) = user_and_client(&store, "bob", "ios").await;
    let rich = rich_client(&store).await;
    for (user, client) in [(&alice, &web), (&bob, &ios), (&bob, &rich)] {
        let token = store.create_token(new_token(user, client, at(0), Some(at(99)))).await.expect("token");
        let owned = store.token_with_owner(&token.digest).await.expect("with owner").expect("found");
        assert_eq!(owned.token, token);
        assert_eq!(owned.user, store.user_by_id(user.id).await.expect("user").expect("exists"));
        assert_eq!(owned.client, store.client_by_id(client.id).await.expect("client").expect("exists"));
    }
    assert_eq!(store.token_with_owner(&TokenDigest([7; 32])).await.expect("unknown"), None);
}

pub async fn user_and_client_reads_both_or_either(store: DynStore) {
    let (alice, web) = user_and_client(&store, "alice", "web").await;
    let rich = rich_client(&store).await;
    let (no_user, no_client) = (UserId(alice.id.0 + 1000), ClientId(rich.id.0 + 1000));

    let both = store.user_and_client(alice.id, web.id).await.expect("both");
    assert_eq!(both, (Some(alice.clone()), Some(web.clone())));
    let both = store.user_and_client(alice.id, rich.id).await.expect("both");
    assert_eq!(both, (Some(alice.clone()), Some(rich.clone())));
    assert_eq!(store.user_and_client(no_user, web.id).await.expect("client only"), (None, Some(web)));
    assert_eq!(store.user_and_client(alice.id, no_client).await.expect("user only"), (Some(alice), None));
    assert_eq!(store.user_and_client(no_user, no_client).await.expect("neither"), (None, None));
}

pub async fn listing_and_bulk_deleting_tokens(store: DynStore) {
    let (alice, web) = user_and_client(&store, "alice", "web").await;
    let (bob, ios) = user_and_client(&store, "bob", "ios").await;
    let cli = store.create_client(new_client("cli")).await.expect("cli");
    // Created out of order, two at the same instant: listings go by created, then id.
    let t_alice_ios = store.create_token(new_token(&alice, &ios, at(20), None)).await.expect("1");
    let t_alice_web = store.create_token(new_token(&alice, &web, at(10), None)).await.expect("2");
    let t_bob_web = store.create_token(new_token(&bob, &web, at(20), None)).await.expect("3");
    let t_bob_cli = store.create_token(new_token(&bob, &cli, at(5), None)).await.expect("4");
    let t_alice_cli = store.create_token(new_token(&alice, &cli, at(20), None)).await.expect("5");

    let list = |user: Option<&User>, client: Option<&Client>| {
        let store = store.clone();
        let filter = TokenFilter { user: user.map(|u| u.id), client: client.map(|c| c.id), key: None, legacy: false };
        async move { store.list_tokens(filter).await.expect("list") }
    };
    // Ids are random: of the three created at 20, the smaller id comes first.
    let by_id = |mut tokens: Vec<AuthToken>| {
        tokens.sort_by_key(|t| t.id);
        tokens
    };
    let at_20 = by_id(vec![t_alice_ios.clone(), t_bob_web.clone(), t_alice_cli.clone()]);
    assert_eq!(list(None, None).await, [vec![t_bob_cli.clone(), t_alice_web.clone()], at_20].concat());
    assert_eq!(
        list(Some(&alice), None).await,
        [vec![t_alice_web.clone()], by_id(vec![t_alice_ios.clone(), t_alice_cli.clone()])].concat()
    );
    assert_eq!(list(None, Some(&web)).await, vec![t_alice_web.clone(), t_bob_web.clone()]);
    assert_eq!(list(Some(&bob), Some(&cli)).await, vec![t_bob_cli.clone()]);
    assert_eq!(list(Some(&bob), Some(&ios)).await, vec![]);

    // Bulk deletion returns what it deleted, in listing order, and nothing else goes.
    let gone = store
        .delete_tokens(TokenFilter { user: Some(bob.id), client: Some(ios.id), key: None, legacy: false })
        .await
        .expect("none");
    assert_eq!(gone, vec![]);
    let gone = store
        .delete_tokens(TokenFilter { user: None, client: Some(cli.id), key: None, legacy: false })
        .await
        .expect("cli");
    assert_eq!(gone, vec![t_bob_cli, t_alice_cli]);
    let gone = store
        .delete_tokens(TokenFilter { user: Some(alice.id), client: None, key: None, legacy: false })
        .await
        .expect("alice");
    assert_eq!(gone, vec![t_alice_web, t_alice_ios]);
    assert_eq!(list(None, None).await, vec![t_bob_web.clone()]);
    let gone = store
        .delete_tokens(TokenFilter { user: Some(bob.id), client: Some(web.id), key: None, legacy: false })
        .await
        .expect("pair");
    assert_eq!(gone, vec![t_bob_web]);

    // No filter: every token.
    store.create_token(new_token(&alice, &web, at(0), None)).await.expect("again");
    store.create_token(new_token(&bob, &web, at(0), None)).await.expect("again");
    assert_eq!(store.delete_tokens(TokenFilter::default()).await.expect("all").len(), 2);
    assert_eq!(list(None, None).await, vec![]);
}

/// Each token keeps the id of the server key it was made with; a filter on the key lists (counts)
/// and deletes that key's tokens only, alone or with a user or client.
pub async fn tokens_keep_their_key_id_and_are_counted_and_revoked_per_key(store: DynStore) {
    let (alice, web) = user_and_client(&store, "alice", "web").await;
    let (bob, ios) = user_and_client(&store, "bob", "ios").await;
    let key = |c| KeyId::from_char(c).expect("key id");
    let made_with = |id: char, user: &User, client: &Client, created| {
        let mut token = new_token(user, client, at(created), None);
        token.key_id = key(id);
        token
    };
    let old_alice_web = store.create_token(made_with('0', &alice, &web, 0)).await.expect("1");
    let old_bob_web = store.create_token(made_with('0', &bob, &web, 1)).await.expect("2");
    let (new_alice_ios, created) = store.get_or_create_token(made_with('Z', &alice, &ios, 2)).await.expect("3");
    assert!(created);
    let new_bob_ios = store.create_token(made_with('Z', &bob, &ios, 3)).await.expect("4");
    // Read back with their key, by every path.
    assert_eq!(old_alice_web.key_id, key('0'));
    assert_eq!(new_alice_ios.key_id, key('Z'));
    assert_eq!(store.token_by_id(new_bob_ios.id).await.expect("by id").expect("found").key_id, key('Z'));
    assert_eq!(store.token_by_digest(&new_alice_ios.digest).await.expect("digest").expect("found").key_id, key('Z'));
    assert_eq!(store.token_for(bob.id, web.id).await.expect("pair").expect("found").key_id, key('0'));
    let owned = store.token_with_owner(&new_bob_ios.digest).await.expect("with owner").expect("found");
    assert_eq!(owned.token, new_bob_ios);
    // The pair's existing token comes back with its own key, not the one asked for.
    let (again, created) = store.get_or_create_token(made_with('Z', &alice, &web, 9)).await.expect("again");
    assert!(!created);
    assert_eq!(again, old_alice_web);

    let by_key = |id: Option<KeyId>, user: Option<&User>| {
        let store = store.clone();
        let filter = TokenFilter { user: user.map(|u| u.id), client: None, key: id, legacy: false };
        async move { store.list_tokens(filter).await.expect("list") }
    };
    assert_eq!(by_key(Some(key('0')), None).await, vec![old_alice_web.clone(), old_bob_web.clone()]);
    assert_eq!(by_key(Some(key('Z')), None).await, vec![new_alice_ios.clone(), new_bob_ios.clone()]);
    assert_eq!(by_key(Some(key('Z')), Some(&bob)).await, vec![new_bob_ios.clone()]);
    assert_eq!(by_key(Some(key('1')), None).await, vec![]);
    assert_eq!(by_key(None, None).await.len(), 4);
    // Counting agrees with listing, for every shape of filter.
    let count = |user: Option<&User>, client: Option<&Client>, id: Option<char>| {
        let store = store.clone();
        let filter =
            TokenFilter { user: user.map(|u| u.id), client: client.map(|c| c.id), key: id.map(key), legacy: false };
        async move { store.count_tokens(filter).await.expect("count") }
    };
    assert_eq!(count(None, None, None).await, 4);
    assert_eq!(count(None, None, Some('0')).await, 2);
    assert_eq!(count(None, None, Some('Z')).await, 2);
    assert_eq!(count(None, None, Some('1')).await, 0);
    assert_eq!(count(Some(&alice), None, None).await, 2);
    assert_eq!(count(Some(&alice), None, Some('Z')).await, 1);
    assert_eq!(count(None, Some(&web), Some('0')).await, 2);
    assert_eq!(count(Some(&bob), Some(&ios), Some('Z')).await, 1);
    assert_eq!(count(Some(&bob), Some(&ios), Some('0')).await, 0);
    let with_client = TokenFilter { user: None, client: Some(web.id), key: Some(key('Z')), legacy: false };
    assert_eq!(store.list_tokens(with_client).await.expect("none"), vec![]);

    // Deleting a key's tokens deletes those, and returns them, and nothing else.
    let none = store.delete_tokens(TokenFilter { key: Some(key('1')), ..TokenFilter::default() }).await;
    assert_eq!(none.expect("none"), vec![]);
    let gone = store.delete_tokens(TokenFilter { key: Some(key('0')), ..TokenFilter::default() }).await;
    assert_eq!(gone.expect("key 0"), vec![old_alice_web.clone(), old_bob_web]);
    assert_eq!(store.token_by_digest(&old_alice_web.digest).await.expect("gone"), None);
    assert_eq!(store.token_with_owner(&old_alice_web.digest).await.expect("gone"), None);
    assert_eq!(by_key(None, None).await, vec![new_alice_ios.clone(), new_bob_ios.clone()]);
    assert_eq!(count(None, None, Some('0')).await, 0);
    let gone = store
        .delete_tokens(TokenFilter { user: Some(alice.id), client: None, key: Some(key('Z')), legacy: false })
        .await;
    assert_eq!(gone.expect("alice's Z"), vec![new_alice_ios]);
    assert_eq!(by_key(None, None).await, vec![new_bob_ios]);
}

pub async fn purge_expired_removes_only_expired_tokens(store: DynStore) {
    let (alice, web) = user_and_client(&store, "alice", "web").await;
    let (bob, ios) = user_and_client(&store, "bob", "ios").await;
    let now = at(1000);
    let expired = store.create_token(new_token(&alice, &web, at(0), Some(at(999)))).await.expect("past");
    let at_now = store.create_token(new_token(&alice, &ios, at(0), Some(now))).await.expect("now");
    let future = store.create_token(new_token(&bob, &web, at(0), Some(at(1001)))).await.expect("future");
    let never = store.create_token(new_token(&bob, &ios, at(0), None)).await.expect("never");
    // One microsecond after `now` is still valid at `now`.
    let cli = store.create_client(new_client("cli")).await.expect("cli");
    let just_after = now + TimeDelta::microseconds(1);
    let barely = store.create_token(new_token(&alice, &cli, at(0), Some(just_after))).await.expect("barely");

    assert_eq!(store.purge_expired(now).await.expect("purge"), 2);
    let left = store.list_tokens(TokenFilter::default()).await.expect("list");
    let left: HashSet<TokenId> = left.iter().map(|t| t.id).collect();
    assert_eq!(left, HashSet::from([future.id, never.id, barely.id]));
    assert_eq!(store.token_by_id(expired.id).await.expect("by id"), None);
    assert_eq!(store.token_by_id(at_now.id).await.expect("by id"), None);
    assert_eq!(store.purge_expired(now).await.expect("purge again"), 0);
    assert_eq!(store.purge_expired(at(1_000_000)).await.expect("purge later"), 2);
    assert_eq!(store.list_tokens(TokenFilter::default()).await.expect("list"), vec![never]);
}

pub async fn set_expiry_changes_and_clears_expiry(store: DynStore) {
    let (alice, web) = user_and_client(&store, "alice", "web").await;
    let token = store.create_token(new_token(&alice, &web, at(0), Some(at(60)))).await.expect("token");
    assert!(store.set_expiry(token.id, Some(at(120))).await.expect("extend"));
    assert_eq!(store.token_by_id(token.id).await.expect("by id").and_then(|t| t.expiry), Some(at(120)));
    assert!(store.set_expiry(token.id, None).await.expect("never"));
    let now_never = store.token_by_id(token.id).await.expect("by id").expect("exists");
    assert_eq!(now_never.expiry, None);
    assert_eq!(AuthToken { expiry: Some(at(60)), ..now_never }, token, "nothing else changed");
    assert!(store.set_expiry(token.id, Some(at(-5))).await.expect("expire"));
    assert_eq!(store.purge_expired(at(0)).await.expect("purge"), 1);
    assert!(!store.set_expiry(token.id, Some(at(1))).await.expect("gone"));
}

pub async fn record_last_used_in_batches(store: DynStore) {
    let (alice, web) = user_and_client(&store, "alice", "web").await;
    let (bob, ios) = user_and_client(&store, "bob", "ios").await;
    let a = store.create_token(new_token(&alice, &web, at(0), None)).await.expect("a");
    let b = store.create_token(new_token(&bob, &ios, at(0), None)).await.expect("b");
    let c = store.create_token(new_token(&bob, &web, at(0), None)).await.expect("c");
    store.record_last_used(&[]).await.expect("empty batch");

    let gone = TokenId(c.id.0 + 1000);
    store.record_last_used(&[(a.id, at(10)), (b.id, at(20)), (gone, at(30))]).await.expect("batch");
    let last_used = |id: TokenId| {
        let store = store.clone();
        async move { store.token_by_id(id).await.expect("by id").expect("exists").last_used }
    };
    assert_eq!(last_used(a.id).await, Some(at(10)));
    assert_eq!(last_used(b.id).await, Some(at(20)));
    assert_eq!(last_used(c.id).await, None);

    // Later uses move it forward; an older use flushed late does not move it back.
    store.record_last_used(&[(a.id, at(15)), (b.id, at(5)), (a.id, at(12))]).await.expect("batch 2");
    assert_eq!(last_used(a.id).await, Some(at(15)));
    assert_eq!(last_used(b.id).await, Some(at(20)));
    let a_now = store.token_by_id(a.id).await.expect("by id").expect("exists");
    assert_eq!(AuthToken { last_used: None, ..a_now }, a, "nothing else changed");
}

/// Legacy tokens (durin's, imported): stored with `TokenSeed::NONE` beside the keyed digest, read
/// back as legacy by every path, and selected by `legacy` in listings, counts and deletions,
/// alone and with every other filter.
pub async fn legacy_tokens_are_kept_listed_counted_and_deleted(store: DynStore) {
    use tessera_core::TokenSeed;
    let (alice, web) = user_and_client(&store, "alice", "web").await;
    let (bob, ios) = user_and_client(&store, "bob", "ios").await;
    let codec = codec();
    let durin = |hex: &str, user: &User, client: &Client, created| {
        let digest = codec.legacy_digest(codec.current_key(), hex).expect("a durin token");
        NewToken {
            seed: TokenSeed::NONE,
            digest,
            key_id: codec.current_key(),
            ..new_token(user, client, at(created), None)
        }
    };
    let alice_web = store.create_token(durin(&"a1".repeat(32), &alice, &web, 0)).await.expect("legacy");
    let bob_ios = store.create_token(durin(&"b2".repeat(32), &bob, &ios, 1)).await.expect("legacy");
    let native = store.create_token(new_token(&alice, &ios, at(2), None)).await.expect("native");
    assert!(alice_web.is_legacy() && bob_ios.is_legacy() && !native.is_legacy());
    let owned = store.token_with_owner(&alice_web.digest).await.expect("with owner").expect("found");
    assert!(owned.token.is_legacy());
    assert_eq!(owned.token, alice_web);
    assert!(store.token_for(alice.id, web.id).await.expect("pair").expect("found").is_legacy());
    // The pair's legacy token is the pair's token: a second one for the pair is a conflict.
    let (again, created) = store.get_or_create_token(new_token(&alice, &web, at(3), None)).await.expect("again");
    assert!(!created && again.is_legacy());

    let legacy = |user: Option<&User>, client: Option<&Client>| TokenFilter {
        user: user.map(|u| u.id),
        client: client.map(|c| c.id),
        key: None,
        legacy: true,
    };
    assert_eq!(store.list_tokens(legacy(None, None)).await.expect("list"), vec![alice_web.clone(), bob_ios.clone()]);
    assert_eq!(store.list_tokens(legacy(Some(&alice), None)).await.expect("list"), vec![alice_web.clone()]);
    assert_eq!(store.list_tokens(legacy(None, Some(&ios))).await.expect("list"), vec![bob_ios.clone()]);
    assert_eq!(store.list_tokens(legacy(Some(&alice), Some(&ios))).await.expect("list"), vec![]);
    assert_eq!(store.count_tokens(legacy(None, None)).await.expect("count"), 2);
    assert_eq!(store.count_tokens(legacy(Some(&bob), None)).await.expect("count"), 1);
    let of_key = TokenFilter { key: Some(codec.current_key()), ..legacy(None, None) };
    assert_eq!(store.count_tokens(of_key).await.expect("count"), 2);
    assert_eq!(store.count_tokens(TokenFilter::default()).await.expect("count"), 3);

    // Deleting the legacy tokens deletes those, and returns them, and nothing else.
    assert_eq!(store.delete_tokens(legacy(Some(&alice), None)).await.expect("delete"), vec![alice_web.clone()]);
    assert_eq!(store.token_with_owner(&alice_web.digest).await.expect("gone"), None);
    assert_eq!(store.delete_tokens(legacy(None, None)).await.expect("delete"), vec![bob_ios]);
    assert_eq!(store.count_tokens(legacy(None, None)).await.expect("count"), 0);
    assert_eq!(store.list_tokens(TokenFilter::default()).await.expect("list"), vec![native]);
}
