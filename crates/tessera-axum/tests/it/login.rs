//! `POST login/`: the validation table in order, the body formats, one token per (user, client),
//! the response and its datetime formats, and what login records.

use crate::both_backends;
use crate::support::*;
use chrono::{DateTime, TimeDelta};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;
use tessera_core::settings::DateTimeFormat;
use tessera_core::store::UserStore;

const BAD_CREDENTIALS: &str = "Unable to log in with provided credentials.";

fn credentials(client: &str) -> Value {
    json!({"username": "alice", "password": PASSWORD, "client": client})
}

both_backends!(
    async fn field_validation_table(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        let required = json!(["This field is required."]);
        let blank = json!(["This field may not be blank."]);
        let not_null = json!(["This field may not be null."]);
        let cases = [
            (json!({}), json!({"username": required, "password": required})),
            (json!({"client": "web"}), json!({"username": required, "password": required})),
            (json!({"password": PASSWORD, "client": "web"}), json!({"username": required})),
            (json!({"username": "alice", "client": "web"}), json!({"password": required})),
            (json!({"username": "", "password": PASSWORD}), json!({"username": blank})),
            (json!({"username": "   ", "password": PASSWORD}), json!({"username": blank})),
            (json!({"username": "alice", "password": ""}), json!({"password": blank})),
            (json!({"username": "", "password": ""}), json!({"username": blank, "password": blank})),
            (json!({"username": null, "password": PASSWORD}), json!({"username": not_null})),
            (json!({"username": "alice", "password": null}), json!({"password": not_null})),
            (json!({"username": null, "password": ""}), json!({"username": not_null, "password": blank})),
            (json!({"username": null}), json!({"username": not_null, "password": required})),
            (json!({"username": ["alice"], "password": PASSWORD}), json!({"username": ["Not a valid string."]})),
            (json!({"username": {"a": 1}, "password": true}), json!({"username": ["Not a valid string."], "password": ["Not a valid string."]})),
            (json!([]), json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]})),
            (json!(["alice", PASSWORD]), json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]})),
            (json!("alice"), json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]})),
            (json!(42), json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got int."]})),
            (json!(4.5), json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got float."]})),
            (json!(true), json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got bool."]})),
            (json!(null), json!({"non_field_errors": ["No data provided"]})),
        ];
        for (body, expected) in cases {
            let reply = app.login_with(body.clone()).await;
            assert_eq!((reply.status, &reply.body), (400, &expected), "body {body}");
            assert_eq!(reply.header("content-type"), Some("application/json"));
        }
        assert!(app.tokens().await.is_empty());
        assert!(app.events_named("login_failed").is_empty(), "malformed requests are not login attempts");
    }
);

both_backends!(
    async fn credential_and_client_errors_in_order(app) {
        app.user("alice").await;
        let bob = app.user("bob").await;
        app.store().set_active(bob.id, false).await.expect("deactivate");
        app.client("web", "1d").await;
        let bad = json!({"non_field_errors": [BAD_CREDENTIALS]});
        let cases = [
            // Credentials are checked before the client, whatever the client says.
            (json!({"username": "alice", "password": "wrong password", "client": "web"}), bad.clone()),
            (json!({"username": "alice", "password": "wrong password"}), bad.clone()),
            (json!({"username": "nobody", "password": PASSWORD, "client": "nope"}), bad.clone()),
            (json!({"username": "ALICE", "password": PASSWORD, "client": "web"}), bad.clone()),
            (json!({"username": "alice", "password": format!(" {PASSWORD}"), "client": "web"}), bad.clone()),
            (json!({"username": "bob", "password": PASSWORD, "client": "web"}), bad.clone()),
            (json!({"username": "alice", "password": PASSWORD}), json!({"detail": "No client specified."})),
            (json!({"username": "alice", "password": PASSWORD, "client": ""}), json!({"detail": "No client specified."})),
            (json!({"username": "alice", "password": PASSWORD, "client": null}), json!({"detail": "No client specified."})),
            (json!({"username": "alice", "password": PASSWORD, "client": "nope"}), json!({"detail": "No client with that name."})),
            (json!({"username": "alice", "password": PASSWORD, "client": "WEB"}), json!({"detail": "No client with that name."})),
            (json!({"username": "alice", "password": PASSWORD, "client": " web"}), json!({"detail": "No client with that name."})),
        ];
        for (body, expected) in cases {
            let reply = app.login_with(body.clone()).await;
            assert_eq!((reply.status, &reply.body), (400, &expected), "body {body}");
        }
        assert!(app.tokens().await.is_empty(), "no failed login creates a token");
    }
);

both_backends!(
    async fn success_response_is_expiry_and_token(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        let reply = app.login_with(credentials("web")).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let body = reply.body.as_object().expect("object");
        assert_eq!(body.keys().collect::<Vec<_>>(), ["expiry", "token"]);
        let token = body["token"].as_str().expect("token");
        assert_eq!(token.len(), 64);
        assert!(token.starts_with("tsr_"), "{token}");
        assert_eq!(body["expiry"], json!(wire(app.now() + TimeDelta::days(1))));
        // The token works, and the Authorization header of the login itself was irrelevant.
        assert_eq!(app.get("/api/hello/", Some(token)).await, (200, json!({"hello": "alice"})));
        let reply = app.send(app.req(Method::POST, "/api/auth/login/", Some("garbage")).json(&credentials("web"))).await;
        assert_eq!((reply.status, reply.body["token"].as_str()), (200, Some(token)));
    }
);

both_backends!(
    async fn form_multipart_and_empty_bodies(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        let form = format!("username=alice&password={}&client=web", PASSWORD.replace(' ', "+"));
        let reply = app
            .send(app.req(Method::POST, "/api/auth/login/", None).header("content-type", "application/x-www-form-urlencoded").body(form))
            .await;
        assert_eq!(reply.status, 200, "form: {}", reply.text);
        let token = reply.body["token"].as_str().expect("token").to_string();

        let boundary = "XyZzy0123";
        let mut multipart = String::new();
        for (name, value) in [("username", "alice"), ("password", PASSWORD), ("client", "web")] {
            multipart.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"));
        }
        multipart.push_str(&format!("--{boundary}--\r\n"));
        let reply = app
            .send(
                app.req(Method::POST, "/api/auth/login/", None)
                    .header("content-type", format!("multipart/form-data; boundary={boundary}"))
                    .body(multipart),
            )
            .await;
        assert_eq!((reply.status, reply.body["token"].as_str()), (200, Some(token.as_str())), "multipart: {}", reply.text);

        let required = json!({"username": ["This field is required."], "password": ["This field is required."]});
        for content_type in [None, Some("application/json"), Some("application/x-www-form-urlencoded")] {
            let mut req = app.req(Method::POST, "/api/auth/login/", None);
            if let Some(ct) = content_type {
                req = req.header("content-type", ct);
            }
            let reply = app.send(req).await;
            assert_eq!((reply.status, &reply.body), (400, &required), "empty body, {content_type:?}");
        }
        let empty_form = app
            .send(app.req(Method::POST, "/api/auth/login/", None).header("content-type", "application/x-www-form-urlencoded").body("username=&password="))
            .await;
        assert_eq!(
            (empty_form.status, empty_form.body),
            (400, json!({"username": ["This field may not be blank."], "password": ["This field may not be blank."]}))
        );
    }
);

both_backends!(
    async fn username_is_trimmed_password_is_not(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        let reply = app.login_with(json!({"username": "  alice\t", "password": PASSWORD, "client": "web"})).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let reply = app.login_with(json!({"username": "alice", "password": format!("{PASSWORD} "), "client": "web"})).await;
        assert_eq!((reply.status, reply.body), (400, json!({"non_field_errors": [BAD_CREDENTIALS]})));
    }
);

both_backends!(
    async fn a_name_logs_in_under_its_normalised_form(app) {
        // Stored names are NFKC (as Django stores them), and login normalises what it is given:
        // fullwidth `ａｌｉｃｅ` and `ａlice` are alice, and get alice's one token for the pair.
        let alice = app.user("alice").await;
        let web = app.client("web", "1d").await;
        let plain = app.login_with(credentials("web")).await;
        assert_eq!(plain.status, 200, "{}", plain.text);
        for name in ["ａｌｉｃｅ", "ａlice", " ａｌｉｃｅ "] {
            let reply = app.login_with(json!({"username": name, "password": PASSWORD, "client": "web"})).await;
            assert_eq!(reply.status, 200, "{name:?}: {}", reply.text);
            assert_eq!(reply.body["token"], plain.body["token"], "{name:?} is alice");
        }
        assert_eq!(app.tokens().await.len(), 1);
        assert!(app.token_for(&alice, &web).await.is_some());
        // Normalising does not make a wrong password right, nor an unknown name known.
        let wrong = app.login_with(json!({"username": "ａｌｉｃｅ", "password": "wrong", "client": "web"})).await;
        assert_eq!((wrong.status, wrong.body), (400, json!({"non_field_errors": [BAD_CREDENTIALS]})));
        let unknown = app.login_with(json!({"username": "ａｌｉｃｅｓ", "password": PASSWORD, "client": "web"})).await;
        assert_eq!((unknown.status, unknown.body), (400, json!({"non_field_errors": [BAD_CREDENTIALS]})));
        let failed = app.events_named("login_failed");
        assert_eq!(failed.iter().map(|e| e["reason"].as_str().unwrap_or("")).collect::<Vec<_>>(), ["wrong password", "unknown user"]);
    }
);

both_backends!(
    async fn second_login_returns_the_same_token_and_expiry(app) {
        let alice = app.user("alice").await;
        let web = app.client("web", "1d").await;
        let first = app.login_with(credentials("web")).await;
        app.advance(TimeDelta::minutes(10));
        let second = app.login_with(credentials("web")).await;
        assert_eq!((first.status, second.status), (200, 200));
        assert_eq!(first.body, second.body, "same token, same expiry");
        assert_eq!(app.tokens().await.len(), 1);
        assert_eq!(app.events_named("token_created").len(), 1);
        assert!(app.events_named("token_renewed").is_empty());
        let stored = app.token_for(&alice, &web).await.expect("token");
        assert_eq!(first.body["expiry"], json!(wire(stored.expiry.expect("expiry"))));
    }
);

both_backends!(
    options = Options::with(|s| s.refresh_token_on_login = true),
    async fn refresh_token_on_login_renews_the_expiry(app) {
        let alice = app.user("alice").await;
        let web = app.client("web", "1d").await;
        let first = app.login_with(credentials("web")).await;
        app.advance(TimeDelta::minutes(10));
        let second = app.login_with(credentials("web")).await;
        assert_eq!(first.body["token"], second.body["token"]);
        assert_eq!(second.body["expiry"], json!(wire(app.now() + TimeDelta::days(1))));
        assert_ne!(first.body["expiry"], second.body["expiry"]);
        let stored = app.token_for(&alice, &web).await.expect("token");
        assert_eq!(stored.expiry, Some(micros(app.now() + TimeDelta::days(1))));
        assert_eq!(app.events_named("token_renewed").len(), 1);
    }
);

both_backends!(
    async fn different_clients_get_different_tokens(app) {
        app.user("alice").await;
        app.user("bob").await;
        app.client("web", "1d").await;
        app.client("cli", "1h").await;
        let web = app.login("alice", "web").await;
        let cli = app.login("alice", "cli").await;
        let bob = app.login("bob", "web").await;
        assert!(web != cli && web != bob && cli != bob);
        assert_eq!(app.tokens().await.len(), 3);
        for token in [&web, &cli, &bob] {
            assert_eq!(app.get("/api/hello/", Some(token)).await.0, 200);
        }
    }
);

both_backends!(
    async fn an_expired_token_is_replaced_at_login(app) {
        let alice = app.user("alice").await;
        let web = app.client("web", "1h").await;
        let old = app.login("alice", "web").await;
        app.advance(TimeDelta::hours(2));
        let reply = app.login_with(credentials("web")).await;
        assert_eq!(reply.status, 200);
        let new = reply.body["token"].as_str().expect("token");
        assert_ne!(new, old);
        assert_eq!(reply.body["expiry"], json!(wire(app.now() + TimeDelta::hours(1))));
        assert_eq!(app.get("/api/hello/", Some(new)).await.0, 200);
        assert_eq!(app.get("/api/hello/", Some(&old)).await, (401, json!({"detail": "Invalid token."})));
        assert_eq!(app.tokens().await.len(), 1);
        assert_eq!(app.token_for(&alice, &web).await.map(|t| t.created), Some(micros(app.now())));
        let expired = app.events_named("token_expired");
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0]["source"], "login");
    }
);

both_backends!(
    options = Options::with(|s| s.login_response_user_fields = vec!["username".into()]),
    async fn configured_user_fields_are_returned(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        let reply = app.login_with(credentials("web")).await;
        let body = reply.body.as_object().expect("object");
        assert_eq!(body.keys().collect::<Vec<_>>(), ["expiry", "token", "user"]);
        assert_eq!(body["user"], json!({"username": "alice"}));
    }
);

both_backends!(
    options = Options::with(|s| s.login_client_header = Some("X-Client".into())),
    async fn client_from_the_configured_header(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        let body = json!({"username": "alice", "password": PASSWORD});
        let reply = app.send(app.req(Method::POST, "/api/auth/login/", None).header("X-Client", "web").json(&body)).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let token = reply.body["token"].as_str().expect("token");
        let (_, sessions) = app.get("/api/auth/sessions/", Some(token)).await;
        assert_eq!(sessions[0]["client"], "web");
        // The header is the source: a body client does not count.
        let reply = app.login_with(credentials("web")).await;
        assert_eq!((reply.status, reply.body), (400, json!({"detail": "No client specified."})));
        let reply = app.send(app.req(Method::POST, "/api/auth/login/", None).header("x-client", "nope").json(&body)).await;
        assert_eq!((reply.status, reply.body), (400, json!({"detail": "No client with that name."})));
    }
);

both_backends!(
    async fn expiry_is_iso8601_with_z_and_microseconds_only_when_non_zero(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        app.client("cli", "1d").await;
        let at = |s: &str| DateTime::parse_from_rfc3339(s).expect("time").to_utc();
        app.clock.set(at("2026-11-22T07:04:05Z"));
        let reply = app.login_with(credentials("cli")).await;
        assert_eq!(reply.body["expiry"], "2026-11-23T07:04:05Z");
        app.clock.set(at("2026-11-22T07:04:05.556704Z"));
        let reply = app.login_with(credentials("web")).await;
        assert_eq!(reply.body["expiry"], "2026-11-23T07:04:05.556704Z");
        let (_, sessions) = app.get("/api/auth/sessions/", reply.body["token"].as_str()).await;
        assert_eq!(sessions[0]["created"], "2026-11-22T07:04:05Z");
        assert_eq!(sessions[1]["created"], "2026-11-22T07:04:05.556704Z");
        assert_eq!(sessions[1]["expiry"], "2026-11-23T07:04:05.556704Z");
    }
);

both_backends!(
    options = Options::with(|s| s.expiry_datetime_format = DateTimeFormat::Strftime("%H:%M %d/%m/%y".into())),
    async fn expiry_follows_a_strftime_format(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        app.clock.set(DateTime::parse_from_rfc3339("2026-11-22T07:05:59.5Z").expect("time").to_utc());
        let reply = app.login_with(credentials("web")).await;
        assert_eq!(reply.body["expiry"], "07:05 23/11/26");
        let token = reply.body["token"].as_str().expect("token");
        assert_eq!(app.post("/api/auth/refresh/", Some(token)).await, (200, json!({"expiry": "07:05 23/11/26"})));
        // Only login and refresh use it: sessions stay ISO-8601.
        let (_, sessions) = app.get("/api/auth/sessions/", Some(token)).await;
        assert_eq!(sessions[0]["expiry"], "2026-11-23T07:05:59.500000Z");
    }
);

both_backends!(
    async fn login_records_user_agent_and_ip(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        let reply = app
            .send(app.req(Method::POST, "/api/auth/login/", None).header("User-Agent", "tessera-tests/1.0 (x)").json(&credentials("web")))
            .await;
        let token = reply.body["token"].as_str().expect("token");
        let (_, sessions) = app.get("/api/auth/sessions/", Some(token)).await;
        assert_eq!(sessions[0]["user_agent"], "tessera-tests/1.0 (x)");
        assert_eq!(sessions[0]["ip"], "127.0.0.1");
        // A user agent is stored at most 512 characters long.
        app.client("cli", "1d").await;
        app.advance(TimeDelta::seconds(1)); // listed after the first
        let long = "x".repeat(8 * 1024);
        let reply = app
            .send(app.req(Method::POST, "/api/auth/login/", None).header("User-Agent", long.as_str()).json(&credentials("cli")))
            .await;
        assert_eq!(reply.status, 200);
        let (_, sessions) = app.get("/api/auth/sessions/", Some(token)).await;
        assert_eq!(sessions[1]["user_agent"].as_str().map(str::len), Some(512));
    }
);

both_backends!(
    options = Options::with(|s| s.time_zone = tessera_core::settings::TimeZone(chrono::FixedOffset::east_opt(2 * 3600).expect("offset"))),
    async fn datetimes_are_written_in_the_configured_time_zone(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        app.clock.set(DateTime::parse_from_rfc3339("2026-11-22T07:04:05Z").expect("time").to_utc());
        let reply = app.login_with(credentials("web")).await;
        assert_eq!(reply.body["expiry"], "2026-11-23T09:04:05+02:00");
        let (_, sessions) = app.get("/api/auth/sessions/", reply.body["token"].as_str()).await;
        assert_eq!(sessions[0]["created"], "2026-11-22T09:04:05+02:00");
    }
);

/// A store on which the user is deactivated at the very moment a token is issued for them: a
/// login racing a deactivation, made deterministic.
mod racing_deactivation {
    use std::sync::Arc;
    use tessera_core::forward_store;
    use tessera_core::store::{Store, StoreError};
    use tessera_core::{AuthToken, NewToken};

    #[derive(Debug)]
    pub struct DeactivateOnIssue {
        pub inner: Arc<dyn Store>,
    }

    forward_store! {
        impl UserStore for DeactivateOnIssue {
            forward to inner: create_user, user_by_id, user_by_username, list_users, search_users, set_password_hash, upgrade_password_hash, set_active,
                set_staff, delete_user;
        }
    }
    forward_store! {
        impl ClientStore for DeactivateOnIssue {
            forward to inner: create_client, client_by_id, client_by_name, list_clients, update_client, delete_client;
        }
    }
    forward_store! {
        impl TokenStore for DeactivateOnIssue {
            forward to inner: ping, create_token, token_by_id, token_by_digest, token_for, list_tokens, count_tokens,
                delete_token, delete_tokens, extend_expiry, set_expiry, record_last_used, purge_expired,
                create_device_token, keep_one_token_per_pair;

            async fn get_or_create_token(&self, token: NewToken) -> Result<(AuthToken, bool), StoreError> {
                self.inner.set_active(token.user_id, false).await?;
                self.inner.get_or_create_token(token).await
            }
        }
    }
    forward_store! {
        impl Store for DeactivateOnIssue {
            forward to inner: latest_invalidation, invalidations_after, prune_invalidations, token_with_owner,
                user_and_client, search_tokens;
        }
    }
}

/// A login racing a deactivation never hands out a token: the activity holds when the token is
/// issued, and the trail shows a failed login, never a successful one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_racing_a_deactivation_gets_no_token() {
    use tower::ServiceExt;
    let db = tessera_sql::testing::sqlite().await;
    let inner: Arc<dyn tessera_core::store::Store> = Arc::new(db.store.clone());
    let store = Arc::new(racing_deactivation::DeactivateOnIssue { inner: inner.clone() });
    let events = Arc::new(std::sync::Mutex::new(Vec::<tessera_core::Event>::new()));
    let sink = events.clone();
    let tessera = tessera_axum::Tessera::builder(store, tessera_core::ServerKey::generate())
        .on_event(move |e| sink.lock().unwrap_or_else(|p| p.into_inner()).push(e.clone()))
        .build()
        .expect("tessera");
    let hash = tessera_core::password::hash_password(PASSWORD).expect("hash");
    let alice = inner
        .create_user(tessera_core::NewUser {
            username: "alice".parse().expect("name"),
            password_hash: hash,
            is_staff: false,
            is_active: true,
        })
        .await
        .expect("alice");
    inner
        .create_client(tessera_core::NewClient::new("web".parse().expect("name"), "1d".parse().expect("ttl")))
        .await
        .expect("web");
    let app: axum::Router = tessera.auth_router();
    let body = json!({"username": "alice", "password": PASSWORD, "client": "web"}).to_string();
    let request = axum::http::Request::post("/login/")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .expect("request");
    let response = app.oneshot(request).await.expect("response");
    assert_eq!(response.status(), 400);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.expect("body");
    let reply: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(reply, json!({"non_field_errors": ["Unable to log in with provided credentials."]}));
    assert!(inner.list_tokens(Default::default()).await.expect("tokens").is_empty(), "no token is left");
    assert!(!inner.user_by_id(alice.id).await.expect("read").expect("alice").is_active);
    let kinds: Vec<String> = events
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|e| serde_json::to_value(e).expect("json")["event"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(!kinds.iter().any(|k| k == "user_logged_in"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "login_failed"), "{kinds:?}");
}

/// After `token_character_length` (or the prefix, or the key) changes, a pair's stored token can
/// no longer be re-derived: it is replaced, not handed back — else its owner would get a token
/// nothing accepts, login after login, until it expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_another_format_is_replaced_not_handed_back() {
    let db = tessera_sql::testing::sqlite().await;
    let store: Arc<dyn tessera_core::store::Store> = Arc::new(db.store.clone());
    let key = tessera_core::ServerKey::generate();
    let events = Arc::new(std::sync::Mutex::new(Vec::<tessera_core::Event>::new()));
    let sink = events.clone();
    let before = tessera_axum::Tessera::builder(store.clone(), key.clone()).build().expect("tessera");
    let longer = tessera_core::Settings { token_character_length: 70, ..tessera_core::Settings::default() };
    let after = tessera_axum::Tessera::builder(store.clone(), key)
        .settings(longer)
        .on_event(move |e| sink.lock().unwrap_or_else(|p| p.into_inner()).push(e.clone()))
        .build()
        .expect("tessera");
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
    let (old, old_secret) = before.issue_token(&alice, &web).await.expect("old");
    assert_eq!(old_secret.expose().len(), 64);
    let (new, new_secret) = after.issue_token(&alice, &web).await.expect("new");
    assert_ne!(new.id, old.id, "a fresh token, not the old one re-derived in the new shape");
    assert_eq!(new_secret.expose().len(), 70);
    assert_eq!(after.codec().parse(new_secret.expose()).expect("parses"), new.digest);
    let kinds: Vec<serde_json::Value> = events
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|e| serde_json::to_value(e).expect("json"))
        .collect();
    assert!(kinds.iter().any(|e| e["event"] == "token_expired" && e["source"] == "token format changed"), "{kinds:?}");
    // The same format again: the pair's token is handed back, as durin does.
    let (again, again_secret) = after.issue_token(&alice, &web).await.expect("again");
    assert_eq!((again.id, again_secret.expose()), (new.id, new_secret.expose()));
}
