//! The per-(user, client) throttle with DRF's semantics, on protected and auth routes, and the
//! login throttle per IP and per username.

use crate::both_backends;
use crate::support::*;
use chrono::TimeDelta;
use reqwest::Method;
use serde_json::json;

fn rate(s: &str) -> Option<tessera_core::Rate> {
    Some(s.parse().expect("rate"))
}

#[track_caller]
fn assert_throttled(reply: &Reply, wait: u64) {
    let unit = if wait == 1 { "second" } else { "seconds" };
    let detail = json!({"detail": format!("Request was throttled. Expected available in {wait} {unit}.")});
    assert_eq!((reply.status, &reply.body), (429, &detail), "{}", reply.text);
    assert_eq!(reply.header("retry-after"), Some(wait.to_string().as_str()));
    assert_eq!(reply.header("www-authenticate"), None);
    assert_eq!(reply.header("content-type"), Some("application/json"));
}

both_backends!(
    options = Options::with(|s| s.default_throttle_rate = rate("2/m")),
    async fn the_client_rate_overrides_the_default(app) {
        let alice = app.user("alice").await;
        let web = app.mint(&alice, &app.client_with("web", "1d", |c| c.throttle_rate = rate("3/m")).await).await;
        let cli = app.mint(&alice, &app.client("cli", "1d").await).await;
        for _ in 0..3 {
            assert_eq!(app.get("/api/hello/", Some(&web)).await.0, 200);
        }
        assert_throttled(&app.send(app.req(Method::GET, "/api/hello/", Some(&web))).await, 60);
        for _ in 0..2 {
            assert_eq!(app.get("/api/hello/", Some(&cli)).await.0, 200);
        }
        assert_throttled(&app.send(app.req(Method::GET, "/api/hello/", Some(&cli))).await, 60);
    }
);

both_backends!(
    options = Options::with(|s| s.default_throttle_rate = rate("2/m")),
    async fn the_wait_counts_down_to_the_oldest_request_leaving_the_window(app) {
        let alice = app.user("alice").await;
        let token = app.mint(&alice, &app.client("web", "1d").await).await;
        let hello = || app.send(app.req(Method::GET, "/api/hello/", Some(&token)));
        assert_eq!(hello().await.status, 200);
        app.advance(TimeDelta::seconds(20));
        assert_eq!(hello().await.status, 200);
        app.advance(TimeDelta::seconds(10));
        assert_throttled(&hello().await, 30);
        app.advance(TimeDelta::seconds(29));
        assert_throttled(&hello().await, 1);
        app.advance(TimeDelta::milliseconds(500));
        assert_throttled(&hello().await, 1);
        app.advance(TimeDelta::milliseconds(500));
        assert_eq!(hello().await.status, 200, "the first request left the window");
        // Refused requests were not counted: the second (t=20 s) is now the oldest.
        assert_throttled(&hello().await, 20);
        app.advance(TimeDelta::seconds(20));
        assert_eq!(hello().await.status, 200);
    }
);

both_backends!(
    options = Options::with(|s| s.default_throttle_rate = rate("1/m")),
    async fn budgets_are_per_user_and_client(app) {
        let (alice, bob) = (app.user("alice").await, app.user("bob").await);
        let (web, cli) = (app.client("web", "1d").await, app.client("cli", "1d").await);
        let tokens = [app.mint(&alice, &web).await, app.mint(&alice, &cli).await, app.mint(&bob, &web).await];
        for token in &tokens {
            assert_eq!(app.get("/api/hello/", Some(token)).await.0, 200);
        }
        for token in &tokens {
            assert_eq!(app.get("/api/hello/", Some(token)).await.0, 429);
        }
        app.advance(TimeDelta::minutes(1));
        for token in &tokens {
            assert_eq!(app.get("/api/hello-cached/", Some(token)).await.0, 200);
        }
    }
);

both_backends!(
    options = Options::with(|s| s.default_throttle_rate = rate("2/h")),
    async fn auth_routes_share_the_budget(app) {
        let alice = app.user("alice").await;
        let web = app.client("web", "1d").await;
        let token = app.mint(&alice, &web).await;
        assert_eq!(app.get("/api/auth/sessions/", Some(&token)).await.0, 200);
        assert_eq!(app.get("/api/hello-cached/", Some(&token)).await.0, 200);
        for (method, path) in [
            (Method::GET, "/api/auth/sessions/"),
            (Method::POST, "/api/auth/refresh/"),
            (Method::POST, "/api/auth/logout/"),
            (Method::POST, "/api/auth/logoutall/"),
            (Method::GET, "/api/web-only/"),
            (Method::GET, "/api/hello/"),
        ] {
            assert_throttled(&app.send(app.req(method.clone(), path, Some(&token))).await, 3_600);
        }
        assert!(app.token_for(&alice, &web).await.is_some(), "a throttled logout deletes nothing");
        app.advance(TimeDelta::hours(1));
        assert_eq!(app.post("/api/auth/logout/", Some(&token)).await.0, 204);
    }
);

both_backends!(
    async fn no_rate_means_no_throttle(app) {
        let alice = app.user("alice").await;
        let token = app.mint(&alice, &app.client("web", "1d").await).await;
        for _ in 0..40 {
            assert_eq!(app.get("/api/hello-cached/", Some(&token)).await.0, 200);
        }
    }
);

both_backends!(
    options = Options::with(|s| s.login_throttle_per_ip = rate("3/m")),
    async fn login_is_throttled_per_ip(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        // Every attempt counts, whatever its outcome.
        assert_eq!(app.login_with(json!({})).await.status, 400);
        assert_eq!(app.login_with(json!({"username": "alice", "password": "nope"})).await.status, 400);
        app.login("alice", "web").await;
        app.advance(TimeDelta::seconds(15));
        let ok = json!({"username": "alice", "password": PASSWORD, "client": "web"});
        assert_throttled(&app.login_with(ok.clone()).await, 45);
        // Not even the body is read: malformed JSON is throttled too.
        let reply =
            app.send(app.req(Method::POST, "/api/auth/login/", None).header("content-type", "application/json").body("{")).await;
        assert_throttled(&reply, 45);
        app.advance(TimeDelta::seconds(45));
        assert_eq!(app.login_with(ok).await.status, 200);
        assert_eq!(app.tokens().await.len(), 1);
    }
);

both_backends!(
    options = Options::with(|s| s.login_throttle_per_username = rate("2/m")),
    async fn login_failures_are_throttled_per_username(app) {
        let alice = app.user("alice").await;
        app.user("bob").await;
        let web = app.client("web", "1d").await;
        // Successes do not count.
        for _ in 0..3 {
            app.login("bob", "web").await;
        }
        let wrong = json!({"username": "alice", "password": "wrong password", "client": "web"});
        assert_eq!(app.login_with(wrong.clone()).await.status, 400);
        app.advance(TimeDelta::seconds(10));
        assert_eq!(app.login_with(wrong).await.status, 400);
        // Now even the right password is refused, and the trimmed name is the same name, and so
        // is every spelling that normalises to it (NFKC): no budget per spelling.
        let right = json!({"username": " alice ", "password": PASSWORD, "client": "web"});
        assert_throttled(&app.login_with(right.clone()).await, 50);
        let fullwidth = json!({"username": "ａｌｉｃｅ", "password": PASSWORD, "client": "web"});
        assert_throttled(&app.login_with(fullwidth).await, 50);
        assert_eq!(app.token_for(&alice, &web).await, None);
        // Other usernames are not affected.
        app.login("bob", "web").await;
        app.advance(TimeDelta::seconds(50));
        assert_eq!(app.login_with(right).await.status, 200);
    }
);

/// The login throttle's settings with the source taken from `X-Forwarded-For` (the tests' peer,
/// 127.0.0.1, is a trusted proxy), so one test speaks from many addresses.
fn login_options(change: impl FnOnce(&mut tessera_core::Settings)) -> Options {
    Options::with(|s| {
        s.trusted_proxies = vec!["127.0.0.1".parse().expect("net")];
        change(s);
    })
}

/// A login of `username` with `password` from `ip`.
async fn login_from(app: &TestApp, ip: &str, username: &str, password: &str) -> Reply {
    let body = json!({"username": username, "password": password, "client": "web"});
    app.send(app.req(Method::POST, "/api/auth/login/", None).header("x-forwarded-for", ip).json(&body)).await
}

both_backends!(
    options = login_options(|s| s.login_throttle_per_username = rate("5/h")),
    async fn concurrent_guesses_never_run_more_checks_than_the_budget(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        // 30 guesses at once, each from its own address: check and record are one step, so
        // exactly five are verified (400) and the rest are refused unverified (429).
        let ips: Vec<String> = (0..30).map(|i| format!("203.0.113.{i}")).collect();
        let replies = join_all(ips.iter().map(|ip| login_from(&app, ip, "alice", "guess"))).await;
        let mut statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [[400; 5].as_slice(), &[429; 25]].concat());
        assert_eq!(app.events_named("login_failed").len(), 5, "five password checks ran");
        for reply in replies.iter().filter(|r| r.status == 429) {
            assert_throttled(reply, 3_600);
        }
        // Unknown usernames have the same budget: the throttle does not tell which names exist.
        let replies = join_all(ips.iter().map(|ip| login_from(&app, ip, "nobody", "guess"))).await;
        assert_eq!(replies.iter().filter(|r| r.status == 400).count(), 5);
    }
);

both_backends!(
    options = login_options(|s| s.login_throttle_per_username_and_ip = rate("3/h")),
    async fn one_source_gets_a_small_budget_per_username(app) {
        app.user("alice").await;
        app.user("bob").await;
        app.client("web", "1d").await;
        let replies = join_all((0..10).map(|_| login_from(&app, "203.0.113.9", "alice", "guess"))).await;
        assert_eq!(replies.iter().filter(|r| r.status == 400).count(), 3);
        assert_throttled(&login_from(&app, "203.0.113.9", "alice", PASSWORD).await, 3_600);
        // The same IPv6 subscriber (one /64) is one source, whatever address it picks.
        for i in 1..=3 {
            assert_eq!(login_from(&app, &format!("2001:db8:0:7::{i}"), "alice", "guess").await.status, 400);
        }
        assert_throttled(&login_from(&app, "2001:db8:0:7:ffff::1", "alice", PASSWORD).await, 3_600);
        // Other sources, and other names from the same source, are not affected; successes
        // give their slot back.
        for _ in 0..5 {
            assert_eq!(login_from(&app, "2001:db8:0:8::1", "alice", PASSWORD).await.status, 200);
            assert_eq!(login_from(&app, "203.0.113.9", "bob", PASSWORD).await.status, 200);
        }
    }
);

both_backends!(
    options = login_options(|s| {
        s.login_throttle_per_username = rate("4/h");
        s.login_throttle_per_username_and_ip = rate("2/h");
    }),
    async fn someone_elses_failures_do_not_lock_the_owner_out(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        // The owner logs in from home once.
        assert_eq!(login_from(&app, "198.51.100.7", "alice", PASSWORD).await.status, 200);
        // An attacker spends the account's budget from several addresses...
        let mut verified = 0;
        for i in 0..20 {
            let reply = login_from(&app, &format!("203.0.113.{}", i / 2), "alice", "guess").await;
            assert!(reply.status == 400 || reply.status == 429, "{}", reply.text);
            verified += usize::from(reply.status == 400);
        }
        assert_eq!(verified, 4, "no more guesses than the account's budget");
        // ...and cannot guess on from a fresh one,
        assert_throttled(&login_from(&app, "192.0.2.1", "alice", "guess").await, 3_600);
        // but the owner still gets in from home, right away and again,
        for _ in 0..3 {
            assert_eq!(login_from(&app, "198.51.100.7", "alice", PASSWORD).await.status, 200);
        }
        // and a typo at home is held only to home's own small budget.
        assert_eq!(login_from(&app, "198.51.100.7", "alice", "typo").await.status, 400);
        assert_eq!(login_from(&app, "198.51.100.7", "alice", PASSWORD).await.status, 200);
        // A source is known for `login_known_source_ttl` (30 days) after its last login.
        app.advance(TimeDelta::days(29));
        let ips: Vec<String> = (0..6).map(|i| format!("192.0.2.{}", 10 + i)).collect();
        let replies = join_all(ips.iter().map(|ip| login_from(&app, ip, "alice", "guess"))).await;
        assert_eq!(replies.iter().filter(|r| r.status == 400).count(), 4);
        assert_eq!(login_from(&app, "198.51.100.7", "alice", PASSWORD).await.status, 200);
        app.advance(TimeDelta::days(30) + TimeDelta::minutes(30));
        let ips: Vec<String> = (0..6).map(|i| format!("192.0.2.{}", 20 + i)).collect();
        let replies = join_all(ips.iter().map(|ip| login_from(&app, ip, "alice", "guess"))).await;
        assert_eq!(replies.iter().filter(|r| r.status == 400).count(), 4);
        assert_throttled(&login_from(&app, "198.51.100.7", "alice", PASSWORD).await, 3_600);
    }
);

both_backends!(
    options = login_options(|s| s.login_throttle_per_ip = rate("3/m")),
    async fn an_ipv6_subscriber_is_one_source(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        for i in 1..=3 {
            assert_eq!(login_from(&app, &format!("2001:db8:1:2::{i:x}"), "alice", PASSWORD).await.status, 200);
        }
        assert_throttled(&login_from(&app, "2001:db8:1:2:dead:beef::1", "alice", PASSWORD).await, 60);
        assert_eq!(login_from(&app, "2001:db8:1:3::1", "alice", PASSWORD).await.status, 200);
        // An IPv4-mapped address is its IPv4 address.
        for _ in 0..3 {
            assert_eq!(login_from(&app, "192.0.2.55", "alice", PASSWORD).await.status, 200);
        }
        assert_throttled(&login_from(&app, "::ffff:192.0.2.55", "alice", PASSWORD).await, 60);
    }
);

both_backends!(
    options = login_options(|s| {
        s.login_throttle_per_username = rate("1/h");
        s.login_throttle_per_username_and_ip = rate("1/h");
    }),
    async fn a_name_no_user_can_have_is_refused_before_any_work(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        let bad = json!({"non_field_errors": ["Unable to log in with provided credentials."]});
        // Django's limit is 150 characters: 151 and 60 000 are refused as bad credentials (as
        // durin does), without a password check and without a throttle key, again and again.
        for name in ["a".repeat(151), "é".repeat(151), "x".repeat(60_000), "has space".into(), "nul\0".into()] {
            for _ in 0..3 {
                let reply = login_from(&app, "203.0.113.1", &name, PASSWORD).await;
                assert_eq!((reply.status, &reply.body), (400, &bad), "{}", reply.text);
            }
        }
        assert_eq!(app.tessera.password_checks().peak(), 0, "no password was checked");
        let failed = app.events_named("login_failed");
        assert_eq!(failed.len(), 15);
        assert!(failed.iter().all(|e| e["reason"] == "invalid username" && e["username"].is_null()));
        // 150 characters is a name: it is checked and throttled like any other.
        let longest = "a".repeat(150);
        assert_eq!(login_from(&app, "203.0.113.1", &longest, PASSWORD).await.status, 400);
        assert_throttled(&login_from(&app, "203.0.113.1", &longest, PASSWORD).await, 3_600);
        assert_eq!(app.tessera.password_checks().peak(), 1);
    }
);

both_backends!(
    options = Options {
        // Room for about two keys per shard.
        limiter: Some(std::sync::Arc::new(tessera_core::throttle::MemoryRateLimiter::with_max_bytes(16 * 400))),
        ..login_options(|s| s.login_throttle_per_username = rate("2/d"))
    },
    async fn a_full_limiter_refuses_rather_than_stops_counting(app) {
        app.user("alice").await;
        app.client("web", "1d").await;
        for _ in 0..2 {
            assert_eq!(login_from(&app, "203.0.113.1", "alice", "guess").await.status, 400);
        }
        // A flood of made-up names fills the limiter; then a new name is refused unchecked.
        let mut refused = None;
        for i in 0..100 {
            let reply = login_from(&app, "203.0.113.2", &format!("made-up-{i}"), "guess").await;
            if reply.status == 503 {
                refused = Some((i, reply));
                break;
            }
            assert_eq!(reply.status, 400, "{}", reply.text);
        }
        let (i, reply) = refused.expect("a full limiter refuses");
        assert_eq!(reply.body, json!({"detail": "Service unavailable."}));
        assert_eq!(login_from(&app, "203.0.113.2", &format!("made-up-{i}"), "guess").await.status, 503);
        assert_eq!(app.events_named("login_failed").len(), 2 + i, "the refused were not checked");
        // What it already tracks, it still counts: alice's budget is spent.
        assert_throttled(&login_from(&app, "203.0.113.1", "alice", "guess").await, 86_400);
        // The authenticated routes' throttle is the same limiter here; by default it is another.
    }
);
