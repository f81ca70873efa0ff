//! The audit log as a service records it: every event kind in `audit_events` with its actor, read
//! back through the SQL store; nothing lost at shutdown; another instance's events in the same log;
//! retention; never a token or a password in a row.

use crate::both_backends;
use crate::support::*;
use chrono::TimeDelta;
use reqwest::Method;
use serde_json::{Value, json};
use tessera_core::store::ClientUpdate;
use tessera_core::{Actor, AuditLog, AuditQuery, AuditRecord, EventKind, NewClient, NewUser, Revoker};

fn audited() -> Options {
    Options { audit: Some(TimeDelta::days(90)), ..Options::default() }
}

/// Every record, oldest first (after writing what is buffered).
async fn records(app: &TestApp) -> Vec<AuditRecord> {
    app.tessera.shutdown().await;
    let mut all = app.store().audit_events(&AuditQuery { limit: 10_000, ..AuditQuery::default() }).await.expect("read");
    all.reverse();
    all
}

/// The one record of `kind`.
#[track_caller]
fn one<'a>(records: &'a [AuditRecord], kind: &str) -> &'a AuditRecord {
    let found: Vec<&AuditRecord> = records.iter().filter(|r| r.kind == kind).collect();
    assert_eq!(found.len(), 1, "{kind}: {found:?}");
    found[0]
}

const AGENT: &str = "audit-test/1.0 (phone)";

async fn login_as_agent(app: &TestApp, user: &str, password: &str, client: &str) -> Reply {
    let body = json!({"username": user, "password": password, "client": client});
    app.send(app.req(Method::POST, "/api/auth/login/", None).header("User-Agent", AGENT).json(&body)).await
}

both_backends!(
    options = audited(),
    async fn every_kind_lands_with_its_actor(app) {
        let wrong = "not-the-password-at-all";
        let alice = app.user("alice").await;
        let (_web, cli) = (app.client("web", "1h").await, app.client("cli", "1d").await);
        assert_eq!(login_as_agent(&app, "alice", wrong, "web").await.status, 400);
        let login = login_as_agent(&app, "alice", PASSWORD, "web").await;
        assert_eq!(login.status, 200, "{}", login.text);
        let token = login.body["token"].as_str().expect("token").to_string();
        let mut issued = vec![token.clone()];
        assert_eq!(app.post("/api/auth/refresh/", Some(&token)).await.0, 200);
        // The sessions API revokes another of her tokens (the user's revocation).
        let (_, cli_secret) = app.tessera.issue_token(&alice, &cli).await.expect("issue");
        issued.push(cli_secret.expose().to_string());
        let cli_id = app.token_for(&alice, &cli).await.expect("cli token").id;
        assert_eq!(app.delete(&format!("/api/auth/sessions/{cli_id}"), Some(&token)).await.0, 204);
        // The CLI's, then an admin's.
        let (_, s) = app.tessera.issue_token(&alice, &cli).await.expect("issue");
        issued.push(s.expose().to_string());
        let stored = app.token_for(&alice, &cli).await.expect("cli token");
        assert!(app.tessera.revoke_token(&stored, Revoker::Cli).await.expect("revoke"));
        let (_, s) = app.tessera.issue_token(&alice, &cli).await.expect("issue");
        issued.push(s.expose().to_string());
        assert_eq!(app.tessera.revoke_tokens(&alice, Some(&cli), Revoker::Admin).await.expect("revoke").len(), 1);
        // Expired by the CLI, then found expired by authentication.
        let (_, s) = app.tessera.issue_token(&alice, &cli).await.expect("issue");
        issued.push(s.expose().to_string());
        let stored = app.token_for(&alice, &cli).await.expect("cli token");
        assert!(app.tessera.expire_token(&stored, Revoker::Cli).await.expect("expire"));
        app.advance(TimeDelta::hours(2));
        assert_eq!(app.get("/api/hello/", Some(&token)).await.0, 401);
        // Logout, logout-all.
        let token = app.login("alice", "web").await;
        issued.push(token.clone());
        assert_eq!(app.post("/api/auth/logout/", Some(&token)).await.0, 204);
        let token = app.login("alice", "web").await;
        issued.push(token.clone());
        let (_, s) = app.tessera.issue_token(&alice, &cli).await.expect("issue");
        issued.push(s.expose().to_string());
        assert_eq!(app.post("/api/auth/logoutall/", Some(&token)).await.0, 204);
        // Admin changes, as the CLI makes them.
        let hash = tessera_core::password::hash_password(wrong).expect("hash");
        let bob = app
            .tessera
            .create_user(NewUser { username: "bob".parse().expect("name"), password_hash: hash.clone(), is_staff: true, is_active: true }, Revoker::Cli)
            .await
            .expect("bob");
        app.tessera.set_user_active(&bob, false, Revoker::Cli).await.expect("deactivate");
        app.tessera.set_user_active(&bob, true, Revoker::Admin).await.expect("activate");
        app.tessera.change_password(&bob, &hash, Revoker::Cli).await.expect("password");
        app.tessera.delete_user(&bob, Revoker::Cli).await.expect("delete");
        let ios = app.tessera.create_client(NewClient::new("ios".parse().expect("name"), "1d".parse().expect("ttl")), Revoker::Cli).await.expect("ios");
        let update = ClientUpdate { name: Some("iphone".parse().expect("name")), token_ttl: Some("2d".parse().expect("ttl")), ..ClientUpdate::default() };
        let (iphone, _) = app.tessera.update_client(&ios, update, Revoker::Cli).await.expect("update");
        app.tessera.delete_client(&iphone, Revoker::Cli).await.expect("delete");
        // Key changes happen in the key file; the CLI records them through the same path.
        let rotated = EventKind::KeyRotated { key: "2".into(), verify_only: vec!["1".into()] };
        app.tessera.key_changed(rotated, Revoker::Cli);
        app.tessera.key_changed(EventKind::KeyRetired { key: "1".into(), tokens_revoked: 3 }, Revoker::Cli);
        // `tessera import durin`'s one event for the whole import.
        let imported = tessera_core::EventKind::Imported {
            source: "durin sqlite:///srv/app/db.sqlite3".into(),
            users_created: 2,
            users_updated: 0,
            clients_created: 1,
            clients_updated: 0,
            tokens: 3,
        };
        app.tessera.record_import(imported, Revoker::Cli);

        let records = records(&app).await;
        let kinds: std::collections::BTreeSet<&str> = records.iter().map(|r| r.kind.as_str()).collect();
        let every: std::collections::BTreeSet<&str> = tessera_core::EventKind::NAMES.iter().copied().collect();
        assert_eq!(kinds, every, "every kind is recorded");

        assert_eq!(one(&records, "imported").actor, Actor::Cli);
        let failed = one(&records, "login_failed");
        assert_eq!((failed.actor, failed.username.as_deref(), failed.detail.clone()), (Actor::User, Some("alice"), json!({"reason": "wrong password"})));
        assert_eq!((failed.ip.as_deref(), failed.user_agent.as_deref()), (Some("127.0.0.1"), Some(AGENT)));
        let first_login = records.iter().find(|r| r.kind == "user_logged_in").expect("login");
        assert_eq!((first_login.actor, first_login.client.as_deref(), first_login.user_agent.as_deref()), (Actor::User, Some("web"), Some(AGENT)));
        assert_eq!((first_login.user_id, first_login.at), (Some(alice.id), failed.at));
        assert!(first_login.token_id.is_some());
        let created = records.iter().find(|r| r.kind == "token_created").expect("created");
        assert_eq!((created.actor, created.token_id, created.user_agent.as_deref()), (Actor::User, first_login.token_id, Some(AGENT)));
        assert_eq!(one(&records, "token_renewed").actor, Actor::User);
        let revoked: Vec<(Actor, Value)> =
            records.iter().filter(|r| r.kind == "token_revoked").map(|r| (r.actor, r.detail.clone())).collect();
        assert_eq!(
            revoked[..3],
            [(Actor::User, json!({"by": "user"})), (Actor::Cli, json!({"by": "cli"})), (Actor::Admin, json!({"by": "admin"}))]
        );
        let expired: Vec<(Actor, Value)> =
            records.iter().filter(|r| r.kind == "token_expired").map(|r| (r.actor, r.detail.clone())).collect();
        assert!(expired.contains(&(Actor::Cli, json!({"source": "cli"}))), "{expired:?}");
        assert!(expired.contains(&(Actor::System, json!({"source": "authentication"}))), "{expired:?}");
        let logout = one(&records, "user_logged_out");
        assert!(logout.token_id.is_some() && logout.actor == Actor::User);
        assert_eq!(one(&records, "logout_all").detail, json!({"tokens": 2}));
        let rotated = one(&records, "key_rotated");
        assert_eq!((rotated.actor, rotated.detail.clone()), (Actor::Cli, json!({"key": "2", "verify_only": ["1"]})));
        assert_eq!((rotated.user_id, rotated.client.as_deref()), (None, None));
        assert_eq!(one(&records, "key_retired").detail, json!({"key": "1", "tokens_revoked": 3}));
        let bob_events: Vec<(&str, Actor)> = records
            .iter()
            .filter(|r| r.username.as_deref() == Some("bob") && r.client.is_none())
            .map(|r| (r.kind.as_str(), r.actor))
            .collect();
        assert_eq!(
            bob_events,
            [
                ("user_created", Actor::Cli),
                ("user_deactivated", Actor::Cli),
                ("user_activated", Actor::Admin),
                ("password_changed", Actor::Cli),
                ("user_deleted", Actor::Cli)
            ]
        );
        assert_eq!(one(&records, "user_created").detail, json!({"staff": true}));
        assert_eq!(one(&records, "client_created").client.as_deref(), Some("ios"));
        let changed = one(&records, "client_changed");
        assert_eq!((changed.client.as_deref(), changed.detail.clone()), (Some("iphone"), json!({"fields": ["name", "token_ttl"], "renamed_from": "ios"})));
        assert_eq!((one(&records, "client_deleted").actor, one(&records, "client_deleted").client.as_deref()), (Actor::Cli, Some("iphone")));

        // No token and no password anywhere in the log.
        let everything = serde_json::to_string(&records).expect("json");
        for secret in issued.iter().map(String::as_str).chain([PASSWORD, wrong]) {
            assert!(!everything.contains(secret), "{secret} is in the audit log");
        }
        // The hooks heard the same events.
        assert_eq!(app.all_events().len(), records.len());
    }
);

both_backends!(
    options = audited(),
    async fn a_logout_all_on_one_instance_is_in_the_log_read_through_the_other(app) {
        let alice = app.user("alice").await;
        let (_web, cli) = (app.client("web", "1d").await, app.client("cli", "1d").await);
        app.mint(&alice, &cli).await;
        let other = app.second_instance().await;
        let body = json!({"username": "alice", "password": PASSWORD, "client": "web"});
        let login = app.http.post(format!("{}/api/auth/login/", other.base)).json(&body).send().await.expect("login");
        let token = login.json::<Value>().await.expect("json")["token"].as_str().expect("token").to_string();
        let reply = app.http.post(format!("{}/api/auth/logoutall/", other.base)).header("Authorization", format!("Token {token}")).send().await.expect("logoutall");
        assert_eq!(reply.status(), 204);
        // Written by the other instance's recorder (within its second), read through this one's store.
        let query = AuditQuery { kind: Some("logout_all".into()), ..AuditQuery::default() };
        let seen = within(std::time::Duration::from_secs(5), || async {
            !app.store().audit_events(&query).await.expect("read").is_empty()
        })
        .await;
        assert!(seen.is_some(), "the other instance's logout-all never reached the log");
        let found = app.store().audit_events(&query).await.expect("read");
        assert_eq!((found[0].username.as_deref(), found[0].actor, found[0].detail.clone()), (Some("alice"), Actor::User, json!({"tokens": 2})));
        other.tessera.shutdown().await;
    }
);

both_backends!(
    options = audited(),
    async fn shutdown_writes_every_buffered_record(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        // Logins in quick succession, and at once the shutdown: whatever the background task has
        // not written yet, shutdown does (waiting for a batch in flight).
        for _ in 0..30 {
            app.login("alice", "web").await;
        }
        app.tessera.shutdown().await;
        let query = AuditQuery { kind: Some("user_logged_in".into()), limit: 1_000, ..AuditQuery::default() };
        assert_eq!(app.store().audit_events(&query).await.expect("read").len(), 30);
    }
);

both_backends!(
    options = Options { audit: Some(TimeDelta::days(1)), ..Options::default() },
    async fn retention_prunes_old_records(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        app.login("alice", "web").await;
        app.tessera.shutdown().await;
        app.advance(TimeDelta::hours(25));
        app.login("alice", "web").await;
        app.tessera.shutdown().await;
        let all = AuditQuery::default();
        let before = app.store().audit_events(&all).await.expect("read").len();
        assert_eq!(before, 5, "two logins, each with its token created, and the first token's expiry");
        let pruned = app.tessera.prune_audit().await.expect("prune");
        assert_eq!(pruned, 2, "the first login's records are past the day's retention");
        let kept = app.store().audit_events(&all).await.expect("read");
        assert!(kept.len() == 3 && kept.iter().all(|r| r.at == micros(app.now())), "{kept:?}");
    }
);

both_backends!(
    async fn without_a_sink_nothing_is_recorded(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        app.login("alice", "web").await;
        app.tessera.shutdown().await;
        assert!(app.store().audit_events(&AuditQuery::default()).await.expect("read").is_empty());
        assert_eq!(app.tessera.prune_audit().await.expect("prune"), 0);
    }
);
