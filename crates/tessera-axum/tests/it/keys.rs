//! Server keys: a token issued before tokens carried a key id keeps working, through a rotation,
//! until its key is retired; the ring changes at run time.

use crate::both_backends;
use chrono::TimeDelta;
use std::sync::Arc;
use tessera_core::store::TokenFilter;
use tessera_core::{KeyId, KeyRing, NewToken, Revoker, ServerKey, TokenDigest, TokenSeed};

/// A token made by Tessera before tokens carried a key id (the codec of commit 8357ce6, with this
/// key and seed, prefix `tsr_`, length 64) and its digest as that version stored it.
const LEGACY_KEY: &str = "3f8a1c9e5b7d2046e1f9a3c58b0d7e2614a9c3f5e7b1d8204c6a9e3f1b5d7c09";
const LEGACY_TOKEN: &str = "tsr_N59HnvH09AL9daqobRhSUWyK9ZyqDLqRRsm1KmiOFDrOYzvbdhtQYt0QXpT8";
const LEGACY_DIGEST: &str = "17a682e973d56b2f59e838c9e1fbcfbdb0a2255a43c66e5615ee21d3e626b127";

fn legacy_seed() -> TokenSeed {
    TokenSeed(std::array::from_fn(|i| (i as u8).wrapping_mul(29).wrapping_add(7)))
}

fn legacy_digest() -> TokenDigest {
    TokenDigest(std::array::from_fn(|i| u8::from_str_radix(&LEGACY_DIGEST[2 * i..2 * i + 2], 16).expect("hex")))
}

both_backends!(
    async fn a_legacy_token_works_through_a_rotation_until_its_key_is_retired(app) {
        let alice = app.user("alice").await;
        let web = app.client("web", "1d").await;
        app.client("ios", "1d").await;
        let legacy_key = ServerKey::from_hex(LEGACY_KEY).expect("key");
        assert!(app.tessera.set_key_ring(KeyRing::from(legacy_key.clone())));
        // Stored as the Tessera before key ids stored it (the store reads it back with key 0).
        let new = NewToken {
            user_id: alice.id,
            client_id: web.id,
            digest: legacy_digest(),
            seed: legacy_seed(),
            key_id: KeyId::LEGACY,
            created: app.now(),
            expiry: Some(app.now() + TimeDelta::days(1)),
            user_agent: None,
            ip: None,
        };
        app.tessera.store().create_token(new).await.expect("legacy token");
        assert_eq!(app.get("/api/hello/", Some(LEGACY_TOKEN)).await.0, 200);
        assert_eq!(app.get("/api/hello-cached/", Some(LEGACY_TOKEN)).await.0, 200);
        // durin's second login hands the same token back, in the format it was issued in.
        assert_eq!(app.login("alice", "web").await, LEGACY_TOKEN);

        // Rotation: a new current key; the old one verifies only.
        let (ring, new_id) = KeyRing::from(legacy_key).rotated().expect("rotate");
        assert!(app.tessera.set_key_ring(ring.clone()));
        assert!(!app.tessera.set_key_ring(ring.clone()), "the same ring again changes nothing");
        assert_eq!(app.get("/api/hello/", Some(LEGACY_TOKEN)).await.0, 200);
        assert_eq!(app.get("/api/hello-cached/", Some(LEGACY_TOKEN)).await.0, 200);
        assert_eq!(app.login("alice", "web").await, LEGACY_TOKEN);
        let fresh = app.login("alice", "ios").await;
        assert_eq!(&fresh[4..5], new_id.to_string(), "new logins use the new key");
        assert_eq!(app.get("/api/hello/", Some(&fresh)).await.0, 200);
        let of_key = |id| TokenFilter { key: Some(id), ..TokenFilter::default() };
        assert_eq!(app.tessera.store().list_tokens(of_key(KeyId::LEGACY)).await.expect("old").len(), 1);
        assert_eq!(app.tessera.store().list_tokens(of_key(new_id)).await.expect("new").len(), 1);

        // Retiring: revoke the old key's tokens, then drop the key.
        let revoked = app.tessera.revoke_key_tokens(KeyId::LEGACY, Revoker::Cli).await.expect("revoke");
        assert_eq!(revoked.len(), 1);
        assert!(app.tessera.set_key_ring(ring.without(KeyId::LEGACY).expect("retire")));
        for path in ["/api/hello/", "/api/hello-cached/"] {
            let (status, body) = app.get(path, Some(LEGACY_TOKEN)).await;
            assert_eq!((status, body["detail"].as_str()), (401, Some("Invalid token.")), "{path}");
        }
        assert_eq!(app.get("/api/hello/", Some(&fresh)).await.0, 200);
        let again = app.login("alice", "web").await;
        assert_ne!(again, LEGACY_TOKEN);
        assert_eq!(&again[4..5], new_id.to_string());
    }
);

both_backends!(
    /// A stored token whose key left the ring (removed without revoking its tokens) is not handed
    /// back at login: it would not authenticate. It is replaced, with a `TokenExpired` event.
    async fn a_token_whose_key_left_the_ring_is_replaced_at_login(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        let old = app.login("alice", "web").await;
        let (ring, new_id) = app.tessera.key_ring().rotated().expect("rotate");
        let old_id = KeyId::from_char(old.as_bytes()[4] as char).expect("key id");
        app.tessera.set_key_ring(ring.without(old_id).expect("drop"));
        assert_eq!(app.get("/api/hello/", Some(&old)).await.0, 401);
        let new = app.login("alice", "web").await;
        assert_ne!(new, old);
        assert_eq!(&new[4..5], new_id.to_string());
        let expired = app.events_named("token_expired");
        assert!(expired.iter().any(|e| e["source"] == "server key retired"), "{expired:?}");
        assert_eq!(app.get("/api/hello/", Some(&new)).await.0, 200);
    }
);

both_backends!(
    /// A cached verdict does not outlive its key: a hit on the cached route finds the token by its
    /// name and skips the token's format check, so it must still ask whether the key the token
    /// names is in the ring. Once the key leaves it (its tokens not even revoked) the token is
    /// refused at once, as on the uncached route.
    async fn a_cached_token_is_refused_once_its_key_leaves_the_ring(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        let old = app.login("alice", "web").await;
        for _ in 0..3 {
            assert_eq!(app.get("/api/hello-cached/", Some(&old)).await.0, 200);
        }
        assert_eq!(app.tessera.cached_entries(), 1);
        let (ring, _) = app.tessera.key_ring().rotated().expect("rotate");
        assert!(app.tessera.set_key_ring(ring.clone()));
        assert_eq!(app.get("/api/hello-cached/", Some(&old)).await.0, 200, "the old key still verifies");
        let old_id = KeyId::from_char(old.as_bytes()[4] as char).expect("key id");
        assert!(app.tessera.set_key_ring(ring.without(old_id).expect("drop")));
        assert_eq!(app.tessera.cached_entries(), 1, "the entry is still there, unrevoked");
        for path in ["/api/hello-cached/", "/api/hello/"] {
            let (status, body) = app.get(path, Some(&old)).await;
            assert_eq!((status, body["detail"].as_str()), (401, Some("Invalid token.")), "{path}");
        }
    }
);

/// A store that counts the token lookups authentication makes.
mod counting {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tessera_core::TokenDigest;
    use tessera_core::forward_store;
    use tessera_core::store::{Store, StoreError, TokenWithOwner};

    #[derive(Debug)]
    pub struct LookupsCounted {
        pub inner: Arc<dyn Store>,
        pub lookups: Arc<AtomicUsize>,
    }

    forward_store! {
        impl UserStore for LookupsCounted {
            forward to inner: create_user, user_by_id, user_by_username, list_users, search_users, set_password_hash, upgrade_password_hash, set_active,
                set_staff, delete_user;
        }
    }
    forward_store! {
        impl ClientStore for LookupsCounted {
            forward to inner: create_client, client_by_id, client_by_name, list_clients, update_client, delete_client;
        }
    }
    forward_store! {
        impl TokenStore for LookupsCounted {
            forward to inner: ping, create_token, get_or_create_token, token_by_id, token_by_digest, token_for,
                list_tokens, count_tokens, delete_token, delete_tokens, extend_expiry, set_expiry, record_last_used,
                purge_expired, create_device_token, keep_one_token_per_pair;
        }
    }
    forward_store! {
        impl Store for LookupsCounted {
            forward to inner: latest_invalidation, invalidations_after, prune_invalidations, user_and_client, search_tokens;

            async fn token_with_owner(&self, digest: &TokenDigest) -> Result<Option<TokenWithOwner>, StoreError> {
                self.lookups.fetch_add(1, Ordering::SeqCst);
                self.inner.token_with_owner(digest).await
            }
        }
    }
}

/// A token naming a key the ring does not hold is refused like any invalid token, without a store
/// lookup, and whoever reloads the ring is told which key was asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_key_id_is_refused_and_reported() {
    use tower::ServiceExt;
    let db = tessera_sql::testing::sqlite().await;
    let store: Arc<dyn tessera_core::store::Store> = Arc::new(db.store.clone());
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = asked.clone();
    let ring = KeyRing::from(ServerKey::generate());
    let (rotated, new_id) = ring.rotated().expect("rotate");
    // Another instance already rotated: it issues tokens with the new key.
    let elsewhere = tessera_axum::Tessera::builder(store.clone(), rotated.clone()).build().expect("elsewhere");
    let lookups = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::new(counting::LookupsCounted { inner: store.clone(), lookups: lookups.clone() });
    let here = tessera_axum::Tessera::builder(counted, ring)
        .on_unknown_key(move |id| seen.lock().unwrap_or_else(|p| p.into_inner()).push(id))
        .build()
        .expect("here");
    let alice = store
        .create_user(tessera_core::NewUser {
            username: "alice".parse().expect("name"),
            password_hash: "!".into(),
            is_staff: false,
            is_active: true,
        })
        .await
        .expect("alice");
    let web = store
        .create_client(tessera_core::NewClient::new("web".parse().expect("name"), "1d".parse().expect("ttl")))
        .await
        .expect("web");
    let (_, secret) = elsewhere.issue_token(&alice, &web).await.expect("token");
    let call = |tessera: &tessera_axum::Tessera| {
        let app: axum::Router = tessera.auth_router();
        let request = axum::http::Request::get("/sessions/")
            .header("authorization", format!("Token {}", secret.expose()))
            .body(axum::body::Body::empty())
            .expect("request");
        async move { app.oneshot(request).await.expect("response").status() }
    };
    assert_eq!(call(&here).await, 401);
    assert_eq!(*asked.lock().unwrap_or_else(|p| p.into_inner()), vec![new_id]);
    assert_eq!(lookups.load(std::sync::atomic::Ordering::SeqCst), 0, "refused without a lookup");
    // Once the ring is reloaded here, the same token works: one lookup.
    assert!(here.set_key_ring(rotated));
    assert_eq!(call(&here).await, 200);
    assert_eq!(lookups.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(asked.lock().unwrap_or_else(|p| p.into_inner()).len(), 1);
}
