//! The `Authorization` header table of the spec: anonymous, malformed, invalid, expired and inactive,
//! on an uncached route, the cached route and an auth route; every 401 with `WWW-Authenticate`.

use crate::both_backends;
use crate::support::*;
use chrono::TimeDelta;
use serde_json::json;
use tessera_core::store::UserStore;

const NOT_PROVIDED: &str = "Authentication credentials were not provided.";
const NO_CREDENTIALS: &str = "Invalid token header. No credentials provided.";
const HAS_SPACES: &str = "Invalid token header. Token string should not contain spaces.";
const INVALID: &str = "Invalid token.";
const EXPIRED: &str = "The given token has expired.";
const INACTIVE: &str = "User inactive or deleted.";

/// Routes that need a token, of every kind: uncached, cached, guarded, and durin's own.
const PROTECTED: [&str; 4] = ["/api/hello/", "/api/hello-cached/", "/api/web-only/", "/api/auth/sessions/"];

/// Swaps the case of the first letter after the prefix: same token, wrong case.
fn wrong_case(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let i = chars.iter().enumerate().skip(4).find(|(_, c)| c.is_ascii_alphabetic()).map(|(i, _)| i).expect("letter");
    chars[i] =
        if chars[i].is_ascii_uppercase() { chars[i].to_ascii_lowercase() } else { chars[i].to_ascii_uppercase() };
    chars.into_iter().collect()
}

both_backends!(
    async fn absent_empty_or_other_scheme_is_anonymous(app) {
        let (alice, web) = (app.user("alice").await, app.client("web", "1d").await);
        let token = app.mint(&alice, &web).await;
        for path in PROTECTED {
            let reply = app.send(app.http.get(app.url(path))).await;
            reply.assert_401(NOT_PROVIDED, "Token");
            for header in ["", "   ", "Bearer x", &format!("Bearer {token}"), "TokenX x", &format!("Tokens {token}"), "Basic YTpi"] {
                app.get_with_header(path, header.as_bytes()).await.assert_401(NOT_PROVIDED, "Token");
            }
            // Not UTF-8, and not our scheme: anonymous too.
            app.get_with_header(path, b"\xffToken x").await.assert_401(NOT_PROVIDED, "Token");
        }
        // The public route does not care.
        assert_eq!(app.get("/api/ping/", None).await, (200, json!({"ping": "pong"})));
    }
);

both_backends!(
    async fn keyword_without_token_or_with_spaces(app) {
        for path in PROTECTED {
            for header in ["Token", "Token   ", "token", "TOKEN\t"] {
                app.get_with_header(path, header.as_bytes()).await.assert_401(NO_CREDENTIALS, "Token");
            }
            for header in ["Token a b", "Token a  b c", "token a\tb", "Token tsr_x tsr_y"] {
                app.get_with_header(path, header.as_bytes()).await.assert_401(HAS_SPACES, "Token");
            }
        }
    }
);

both_backends!(
    async fn unknown_malformed_and_wrong_case_tokens_are_invalid(app) {
        let (alice, web) = (app.user("alice").await, app.client("web", "1d").await);
        let token = app.mint(&alice, &web).await;
        // Well-formed (right length, prefix, checksum) but never stored.
        let unknown = app.tessera.codec().issue().token.expose().to_string();
        let truncated = token[..token.len() - 1].to_string();
        let longer = format!("{token}0");
        let no_prefix = format!("xxx_{}", &token[4..]);
        let bad_checksum = {
            let mut t = token.clone();
            let last = t.pop().expect("char");
            t.push(if last == '0' { '1' } else { '0' });
            t
        };
        let candidates =
            [unknown, truncated, longer, no_prefix, bad_checksum, wrong_case(&token), token.to_uppercase(), "abc".into()];
        for path in PROTECTED {
            for candidate in &candidates {
                app.get_with_header(path, format!("Token {candidate}").as_bytes()).await.assert_401(INVALID, "Token");
            }
        }
        // None of it disturbed the real token.
        assert_eq!(app.get("/api/hello/", Some(&token)).await, (200, json!({"hello": "alice"})));
        assert_eq!(app.tokens().await.len(), 1);
    }
);

both_backends!(
    async fn keyword_is_case_insensitive_and_whitespace_runs_split(app) {
        let (alice, web) = (app.user("alice").await, app.client("web", "1d").await);
        let token = app.mint(&alice, &web).await;
        for header in [
            format!("Token {token}"),
            format!("token {token}"),
            format!("TOKEN {token}"),
            format!("tOkEn {token}"),
            format!("Token    {token}"),
            format!("Token\t{token}"),
            format!("Token \t \t{token}   "),
            format!("  Token {token}"),
        ] {
            for path in ["/api/hello/", "/api/hello-cached/"] {
                let reply = app.get_with_header(path, header.as_bytes()).await;
                assert_eq!((reply.status, &reply.body), (200, &json!({"hello": "alice"})), "{header:?} on {path}");
            }
        }
    }
);

both_backends!(
    async fn revoked_token_is_invalid(app) {
        let (alice, web) = (app.user("alice").await, app.client("web", "1d").await);
        let token = app.mint(&alice, &web).await;
        // Warm the cache too: revocation must win over it.
        assert_eq!(app.get("/api/hello-cached/", Some(&token)).await.0, 200);
        assert_eq!(app.post("/api/auth/logout/", Some(&token)).await.0, 204);
        for path in PROTECTED {
            app.get_with_header(path, format!("Token {token}").as_bytes()).await.assert_401(INVALID, "Token");
        }
    }
);

both_backends!(
    async fn expired_token_is_reported_once_then_invalid(app) {
        let (alice, web) = (app.user("alice").await, app.client("web", "1h").await);
        for path in PROTECTED {
            let token = app.mint(&alice, &web).await;
            // Cached before it expires: the cache must not outlive the expiry.
            assert_eq!(app.get("/api/hello-cached/", Some(&token)).await.0, 200);
            app.advance(TimeDelta::hours(1) - TimeDelta::seconds(1));
            assert_eq!(app.get("/api/hello/", Some(&token)).await.0, 200, "a second before the expiry");
            app.advance(TimeDelta::seconds(2));
            let header = format!("Token {token}");
            app.get_with_header(path, header.as_bytes()).await.assert_401(EXPIRED, "Token");
            assert_eq!(app.token_for(&alice, &web).await, None, "the expired token is deleted");
            for again in PROTECTED {
                app.get_with_header(again, header.as_bytes()).await.assert_401(INVALID, "Token");
            }
        }
        let expired = app.events_named("token_expired");
        assert_eq!(expired.len(), PROTECTED.len(), "{expired:?}");
        for event in &expired {
            assert_eq!(event["username"], "alice");
            assert_eq!(event["client"], "web");
            assert_eq!(event["source"], "authentication");
            assert_eq!(event["user_id"], alice.id.0);
        }
    }
);

both_backends!(
    async fn inactive_user_is_refused(app) {
        let (alice, web) = (app.user("alice").await, app.client("web", "1d").await);
        let token = app.mint(&alice, &web).await;
        assert_eq!(app.get("/api/hello-cached/", Some(&token)).await.0, 200);
        app.store().set_active(alice.id, false).await.expect("deactivate");
        for path in ["/api/hello/", "/api/web-only/", "/api/auth/sessions/"] {
            app.get_with_header(path, format!("Token {token}").as_bytes()).await.assert_401(INACTIVE, "Token");
        }
        // The cached route learns it from the invalidation log (see cache.rs for the timing).
        let refused = within(std::time::Duration::from_millis(1_500), || async {
            app.get_with_header("/api/hello-cached/", format!("Token {token}").as_bytes()).await.status == 401
        })
        .await;
        assert!(refused.is_some(), "the cached route still accepts a deactivated user");
        app.get_with_header("/api/hello-cached/", format!("Token {token}").as_bytes()).await.assert_401(INACTIVE, "Token");
        // The token is kept: reactivating the user makes it work again.
        app.store().set_active(alice.id, true).await.expect("activate");
        assert_eq!(app.get("/api/hello/", Some(&token)).await.0, 200);
    }
);

both_backends!(
    async fn token_bytes_that_are_not_utf8_are_invalid(app) {
        for path in PROTECTED {
            for header in [&b"Token \xff\xfe\xfd"[..], b"Token tsr_\xc3\x28abc", b"token \x80", b"Token \xe2\x82"] {
                app.get_with_header(path, header).await.assert_401(INVALID, "Token");
            }
        }
    }
);

both_backends!(
    async fn overlong_token_header_is_invalid(app) {
        let long = format!("Token {}", "a".repeat(8 * 1024));
        for path in PROTECTED {
            app.get_with_header(path, long.as_bytes()).await.assert_401(INVALID, "Token");
        }
    }
);

both_backends!(
    options = Options::with(|s| s.auth_header_prefix = "Bearer".into()),
    async fn configured_prefix_is_the_keyword_and_the_challenge(app) {
        let (alice, web) = (app.user("alice").await, app.client("web", "1d").await);
        let token = app.mint(&alice, &web).await;
        for path in ["/api/hello/", "/api/hello-cached/"] {
            for header in [format!("Bearer {token}"), format!("bearer {token}"), format!("BEARER\t{token}")] {
                let reply = app.get_with_header(path, header.as_bytes()).await;
                assert_eq!((reply.status, reply.body), (200, json!({"hello": "alice"})), "{header}");
            }
        }
        for path in PROTECTED {
            // The default keyword is now another scheme.
            app.get_with_header(path, format!("Token {token}").as_bytes()).await.assert_401(NOT_PROVIDED, "Bearer");
            app.send(app.http.get(app.url(path))).await.assert_401(NOT_PROVIDED, "Bearer");
            app.get_with_header(path, b"Bearer").await.assert_401(NO_CREDENTIALS, "Bearer");
            app.get_with_header(path, b"Bearer a b").await.assert_401(HAS_SPACES, "Bearer");
            app.get_with_header(path, b"Bearer nope").await.assert_401(INVALID, "Bearer");
        }
    }
);

both_backends!(
    async fn several_authorization_headers_are_refused(app) {
        let alice = app.user("alice").await;
        let token = app.mint(&alice, &app.client("web", "1d").await).await;
        let detail = "Invalid token header. Only one Authorization header is allowed.";
        // Two of ours, the same token twice, or ours beside another scheme: all ambiguous.
        let pairs = [
            (format!("Token {token}"), format!("Token {token}")),
            (format!("Token {token}"), "Basic YWxpY2U6cHc=".to_string()),
            ("Basic YWxpY2U6cHc=".to_string(), format!("Token {token}")),
        ];
        for (first, second) in pairs {
            for path in ["/api/hello/", "/api/hello-cached/", "/api/auth/sessions/"] {
                let req = app.http.get(app.url(path)).header("Authorization", &first).header("Authorization", &second);
                app.send(req).await.assert_401(detail, "Token");
            }
            let req = app.http.post(app.url("/api/auth/logout/")).header("Authorization", &first).header("Authorization", &second);
            app.send(req).await.assert_401(detail, "Token");
        }
        // Nothing was changed, and one header still works.
        assert_eq!(app.get("/api/hello/", Some(&token)).await.0, 200);
        assert_eq!(app.tokens().await.len(), 1);
    }
);
