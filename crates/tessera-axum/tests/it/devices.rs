//! Multi-device clients (`devices = many`) over HTTP, on SQLite, PostgreSQL and the Redis token
//! store: a token per login, a logout that ends one device only, the device limit under
//! concurrency, and the switch back to `one`.

use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};
use tessera_core::{Devices, OnDeviceLimit, Revoker};

/// Runs `$body` with a fresh app on each of the three stores.
macro_rules! on_every_store {
    (async fn $name:ident($app:ident) $body:block) => {
        mod $name {
            use super::*;
            async fn run($app: TestApp) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run(TestApp::start(Backend::Sqlite, Options::default()).await.expect("sqlite")).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = TestApp::start(Backend::Postgres, Options::default()).await {
                    run(app).await
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                if let Some(app) = TestApp::start(Backend::SqliteWithRedisTokens, Options::default()).await {
                    run(app).await
                }
            }
        }
    };
}

fn many(max_devices: u32, on_device_limit: OnDeviceLimit) -> Devices {
    Devices::Many { max_devices, on_device_limit }
}

/// A login from a device with this user agent; the whole reply.
async fn login_from(app: &TestApp, client: &str, user_agent: &str) -> Reply {
    let body = json!({"username": "alice", "password": PASSWORD, "client": client});
    app.send(app.req(Method::POST, "/api/auth/login/", None).header("User-Agent", user_agent).json(&body)).await
}

async fn token_from(app: &TestApp, client: &str, user_agent: &str) -> String {
    let reply = login_from(app, client, user_agent).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["token"].as_str().expect("token").to_string()
}

on_every_store!(
    async fn each_login_is_a_device_and_a_logout_ends_only_its_own(app) {
        let alice = app.user("alice").await;
        let ios = app.client_with("ios", "1d", |c| c.devices = Devices::many()).await;
        let phone = token_from(&app, "ios", "phone/1").await;
        app.advance(chrono::TimeDelta::seconds(1));
        let tablet = token_from(&app, "ios", "tablet/1").await;
        assert_ne!(phone, tablet, "two logins, two tokens");
        assert_eq!(app.tessera.store().list_tokens(tessera_core::TokenFilter {
            user: Some(alice.id),
            client: Some(ios.id),
            key: None,
            legacy: false,
        }).await.expect("list").len(), 2);

        // Sessions list both devices, with their user agents; each marks itself current.
        let (status, list) = app.get("/api/auth/sessions/", Some(&phone)).await;
        assert_eq!(status, 200);
        let rows: Vec<(Value, Value, Value)> = list
            .as_array()
            .expect("array")
            .iter()
            .map(|s| (s["client"].clone(), s["user_agent"].clone(), s["is_current"].clone()))
            .collect();
        assert_eq!(rows, [(json!("ios"), json!("phone/1"), json!(true)), (json!("ios"), json!("tablet/1"), json!(false))]);

        // The phone logs out: the tablet still works.
        assert_eq!(app.post("/api/auth/logout/", Some(&phone)).await.0, 204);
        assert_eq!(app.get("/api/hello/", Some(&phone)).await.0, 401);
        assert_eq!(app.get("/api/hello-cached/", Some(&tablet)).await.0, 200);
        // A refresh renews only the tablet's own token.
        assert_eq!(app.post("/api/auth/refresh/", Some(&tablet)).await.0, 200);

        // Logout-all ends every device.
        let laptop = token_from(&app, "ios", "laptop/1").await;
        assert_eq!(app.post("/api/auth/logoutall/", Some(&tablet)).await.0, 204);
        for token in [&tablet, &laptop] {
            assert_eq!(app.get("/api/hello/", Some(token)).await.0, 401);
        }
        assert_eq!(app.tokens().await, vec![]);
    }
);

on_every_store!(
    async fn at_the_limit_the_least_recently_used_device_goes(app) {
        app.user("alice").await;
        app.client_with("ios", "1d", |c| c.devices = many(2, OnDeviceLimit::EvictOldest)).await;
        let phone = token_from(&app, "ios", "phone").await;
        app.advance(chrono::TimeDelta::seconds(1));
        let tablet = token_from(&app, "ios", "tablet").await;
        app.advance(chrono::TimeDelta::seconds(1));
        // The phone is used (and its use written): the tablet is now the least recently used.
        assert_eq!(app.get("/api/hello/", Some(&phone)).await.0, 200);
        app.tessera.shutdown().await;
        app.advance(chrono::TimeDelta::seconds(1));
        let watch = token_from(&app, "ios", "watch").await;
        assert_eq!(app.get("/api/hello-cached/", Some(&tablet)).await.0, 401, "the tablet was evicted");
        for token in [&phone, &watch] {
            assert_eq!(app.get("/api/hello-cached/", Some(token)).await.0, 200);
        }
        let revoked = app.events_named("token_revoked");
        assert_eq!(revoked.len(), 1, "{revoked:?}");
        assert_eq!((revoked[0]["by"].clone(), revoked[0]["client"].clone()), (json!("device_limit"), json!("ios")));
    }
);

on_every_store!(
    async fn with_refuse_the_login_past_the_limit_is_refused(app) {
        app.user("alice").await;
        app.client_with("ios", "1d", |c| c.devices = many(2, OnDeviceLimit::Refuse)).await;
        let first = token_from(&app, "ios", "one").await;
        let second = token_from(&app, "ios", "two").await;
        let reply = login_from(&app, "ios", "three").await;
        assert_eq!(reply.status, 400, "{}", reply.text);
        assert_eq!(
            reply.body,
            json!({"non_field_errors": [
                "You are logged in on 2 devices with this client, the most it allows. Log out on one of them first."
            ]})
        );
        assert_eq!(app.tokens().await.len(), 2, "nothing changed");
        // Logging out on one device makes room.
        assert_eq!(app.post("/api/auth/logout/", Some(&first)).await.0, 204);
        token_from(&app, "ios", "three").await;
        assert_eq!(app.get("/api/hello/", Some(&second)).await.0, 200);
    }
);

on_every_store!(
    async fn twenty_concurrent_logins_leave_the_limit(app) {
        app.user("alice").await;
        app.client_with("ios", "1d", |c| c.devices = many(5, OnDeviceLimit::EvictOldest)).await;
        app.client_with("cli", "1d", |c| c.devices = many(5, OnDeviceLimit::Refuse)).await;
        let app = std::sync::Arc::new(app);
        for (client, want_ok) in [("ios", 20), ("cli", 5)] {
            let logins: Vec<_> = (0..20)
                .map(|i| {
                    let app = app.clone();
                    tokio::spawn(async move { login_from(&app, client, &format!("device/{i}")).await.status })
                })
                .collect();
            let mut statuses = Vec::new();
            for login in logins {
                statuses.push(login.await.expect("login task"));
            }
            assert_eq!(statuses.iter().filter(|s| **s == 200).count(), want_ok, "{client}: {statuses:?}");
            assert!(statuses.iter().all(|s| *s == 200 || *s == 400), "{client}: {statuses:?}");
            let id = client_id_of(&app, client).await;
            assert_eq!(app.tokens().await.into_iter().filter(|t| t.client_id == id).count(), 5, "{client}");
        }
    }
);

async fn client_id_of(app: &TestApp, name: &str) -> tessera_core::ClientId {
    use tessera_core::store::ClientStore;
    app.store().client_by_name(&name.parse().expect("name")).await.expect("store").expect("client").id
}

on_every_store!(
    async fn from_many_back_to_one_keeps_the_most_recently_used(app) {
        let alice = app.user("alice").await;
        let ios = app.client_with("ios", "1d", |c| c.devices = Devices::many()).await;
        let old = token_from(&app, "ios", "old phone").await;
        app.advance(chrono::TimeDelta::seconds(1));
        let new = token_from(&app, "ios", "new phone").await;
        let update = tessera_core::ClientUpdate { devices: Some(Devices::One), ..Default::default() };
        let (client, revoked) = app.tessera.update_client(&ios, update, Revoker::Admin).await.expect("update");
        assert_eq!(client.devices, Devices::One);
        assert_eq!(revoked.len(), 1);
        assert_eq!(app.get("/api/hello-cached/", Some(&old)).await.0, 401);
        assert_eq!(app.get("/api/hello/", Some(&new)).await.0, 200);
        // durin's rule again: a login hands the kept token back.
        assert_eq!(token_from(&app, "ios", "another").await, new);
        assert_eq!(app.token_for(&alice, &client).await.map(|t| t.user_agent), Some(Some("new phone".into())));
        // And back to many: the existing token stays.
        let update = tessera_core::ClientUpdate { devices: Some(Devices::many()), ..Default::default() };
        let (_, revoked) = app.tessera.update_client(&client, update, Revoker::Admin).await.expect("update");
        assert_eq!(revoked, vec![]);
        assert_eq!(app.get("/api/hello/", Some(&new)).await.0, 200);
    }
);

on_every_store!(
    async fn issue_token_makes_a_device_token_on_a_many_client(app) {
        let alice = app.user("alice").await;
        let ios = app.client_with("ios", "1d", |c| c.devices = many(2, OnDeviceLimit::Refuse)).await;
        let (first, a) = app.tessera.issue_token(&alice, &ios).await.expect("first");
        let (second, b) = app.tessera.issue_token(&alice, &ios).await.expect("second");
        assert_ne!((first.id, a.expose()), (second.id, b.expose()), "a new device each time");
        let refused = app.tessera.issue_token(&alice, &ios).await.expect_err("at the limit");
        assert!(refused.to_string().contains("holds the limit of 2 tokens on client 'ios'"), "{refused}");
        assert_eq!(app.tokens().await.len(), 2);
    }
);

// `one` clients are unchanged: the durin conformance behaviour.
on_every_store!(
    async fn a_one_client_still_hands_back_the_same_token(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        let first = token_from(&app, "web", "a").await;
        assert_eq!(token_from(&app, "web", "b").await, first);
        assert_eq!(app.tokens().await.len(), 1);
    }
);
