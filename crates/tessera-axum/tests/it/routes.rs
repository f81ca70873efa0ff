//! Every auth route with and without its trailing slash; wrong methods (405 with `Allow`, after
//! authentication); OPTIONS and HEAD.

use crate::both_backends;
use crate::support::*;
use reqwest::Method;
use serde_json::json;

fn with_api_access() -> Options {
    Options::with(|s| s.api_access_client_name = Some("api-access".parse().expect("name")))
}

both_backends!(
    options = with_api_access(),
    async fn every_route_answers_with_and_without_the_slash(app) {
        let alice = app.user("alice").await;
        app.client("web", "1d").await;
        let (cli, ios) = (app.client("cli", "1d").await, app.client("ios", "1d").await);
        for slash in ["/", ""] {
            let path = |p: &str| format!("/api/auth/{p}{slash}");
            let body = json!({"username": "alice", "password": PASSWORD, "client": "web"});
            let (status, login) = app.post_json(&path("login"), None, body).await;
            assert_eq!(status, 200, "login{slash}");
            let token = login["token"].as_str().expect("token").to_string();
            let other = app.mint(&alice, &cli).await;
            assert_eq!(app.post(&path("refresh"), Some(&token)).await.0, 200, "refresh{slash}");
            assert_eq!(app.get(&path("sessions"), Some(&token)).await.0, 200, "sessions{slash}");
            assert_eq!(app.post(&path("apiaccess"), Some(&token)).await.0, 201, "apiaccess{slash}");
            assert_eq!(app.get(&path("apiaccess"), Some(&token)).await.0, 200, "apiaccess{slash}");
            assert_eq!(app.delete(&path("apiaccess"), Some(&token)).await.0, 204, "apiaccess{slash}");
            assert_eq!(app.post(&path("logout"), Some(&other)).await.0, 204, "logout{slash}");
            assert_eq!(app.token_for(&alice, &cli).await, None);
            app.mint(&alice, &ios).await;
            assert_eq!(app.post(&path("logoutall"), Some(&token)).await.0, 204, "logoutall{slash}");
            assert_eq!(app.tokens().await, Vec::new());
        }
    }
);

both_backends!(
    options = with_api_access(),
    async fn wrong_methods_are_405_with_allow_after_authentication(app) {
        let alice = app.user("alice").await;
        let web = app.client("web", "1d").await;
        let token = app.mint(&alice, &web).await;
        let id = app.token_for(&alice, &web).await.expect("token").id.0;
        let detail_path = format!("/api/auth/sessions/{id}");
        let cases: [(&str, &[Method], &str); 7] = [
            ("/api/auth/refresh/", &[Method::GET, Method::PUT, Method::DELETE], "POST, OPTIONS"),
            ("/api/auth/logout/", &[Method::GET, Method::PATCH], "POST, OPTIONS"),
            ("/api/auth/logoutall", &[Method::GET, Method::DELETE], "POST, OPTIONS"),
            ("/api/auth/sessions/", &[Method::POST, Method::DELETE, Method::PUT], "GET, HEAD, OPTIONS"),
            ("/api/auth/sessions", &[Method::POST], "GET, HEAD, OPTIONS"),
            (&detail_path, &[Method::GET, Method::POST, Method::PUT], "DELETE, OPTIONS"),
            ("/api/auth/apiaccess/", &[Method::PUT, Method::PATCH], "GET, POST, DELETE, HEAD, OPTIONS"),
        ];
        for (path, methods, allow) in cases {
            for method in methods {
                let reply = app.send(app.req(method.clone(), path, Some(&token))).await;
                let detail = json!({"detail": format!("Method \"{method}\" not allowed.")});
                assert_eq!((reply.status, &reply.body), (405, &detail), "{method} {path}");
                assert_eq!(reply.header("allow"), Some(allow), "{method} {path}");
                assert_eq!(reply.header("content-type"), Some("application/json"));
                assert_eq!(reply.header("www-authenticate"), None);
                // Anonymous: authentication is checked first.
                let reply = app.send(app.req(method.clone(), path, None)).await;
                reply.assert_401("Authentication credentials were not provided.", "Token");
                let reply = app.send(app.req(method.clone(), path, Some("bad"))).await;
                reply.assert_401("Invalid token.", "Token");
            }
        }
        // Nothing was changed by any of it.
        assert_eq!(app.tokens().await.len(), 1);
        assert_eq!(app.get("/api/hello/", Some(&token)).await.0, 200);
    }
);

both_backends!(
    async fn login_wrong_methods_need_no_token(app) {
        for path in ["/api/auth/login/", "/api/auth/login"] {
            for method in [Method::GET, Method::PUT, Method::PATCH, Method::DELETE, Method::HEAD] {
                let reply = app.send(app.req(method.clone(), path, None)).await;
                assert_eq!(reply.status, 405, "{method} {path}");
                assert_eq!(reply.header("allow"), Some("POST, OPTIONS"));
                if method != Method::HEAD {
                    assert_eq!(reply.body, json!({"detail": format!("Method \"{method}\" not allowed.")}));
                }
            }
        }
    }
);

both_backends!(
    async fn options_describes_the_view(app) {
        let alice = app.user("alice").await;
        let token = app.mint(&alice, &app.client("web", "1d").await).await;
        let parses = json!(["application/json", "application/x-www-form-urlencoded", "multipart/form-data"]);
        let (status, body) = app.request(Method::OPTIONS, "/api/auth/login/", None).await;
        assert_eq!(status, 200);
        assert_eq!(body, json!({"name": "Login", "description": "", "renders": ["application/json"], "parses": parses}));
        for (path, name) in [
            ("/api/auth/refresh/", "Refresh"),
            ("/api/auth/logout", "Logout"),
            ("/api/auth/logoutall/", "Logout All"),
            ("/api/auth/sessions/", "Token Sessions"),
            ("/api/auth/sessions/1", "Token Sessions"),
        ] {
            let (status, body) = app.request(Method::OPTIONS, path, Some(&token)).await;
            assert_eq!((status, &body["name"]), (200, &json!(name)), "{path}");
            let reply = app.send(app.req(Method::OPTIONS, path, None)).await;
            reply.assert_401("Authentication credentials were not provided.", "Token");
        }
        // OPTIONS changes nothing: the token is still there after OPTIONS on logout.
        assert_eq!(app.get("/api/hello/", Some(&token)).await.0, 200);
    }
);

both_backends!(
    async fn head_of_sessions_is_get_without_a_body(app) {
        let alice = app.user("alice").await;
        let token = app.mint(&alice, &app.client("web", "1d").await).await;
        let reply = app.send(app.req(Method::HEAD, "/api/auth/sessions/", Some(&token))).await;
        assert_eq!((reply.status, reply.text.as_str()), (200, ""));
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let reply = app.send(app.req(Method::HEAD, "/api/auth/sessions/", None)).await;
        assert_eq!((reply.status, reply.header("www-authenticate")), (401, Some("Token")));
    }
);

/// Nothing the auth API answers may be stored by a cache (tokens above all: RFC 6749 §5.1), and no
/// JSON answer may be sniffed as another type — successes and errors, every route.
#[track_caller]
fn assert_not_cacheable(reply: &Reply, what: &str) {
    assert_eq!(reply.header("cache-control"), Some("no-store"), "{what}: {}", reply.text);
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"), "{what}");
}

both_backends!(
    options = with_api_access(),
    async fn no_auth_response_is_cacheable_or_sniffable(app) {
        let alice = app.user("alice").await;
        let web = app.client("web", "1d").await;
        let other = app.mint(&alice, &app.client("cli", "1d").await).await;
        let other_id = app.token_for(&alice, &app.client("ios", "1d").await).await.map(|t| t.id.0);
        assert_eq!(other_id, None);
        let login = app.login_with(json!({"username": "alice", "password": PASSWORD, "client": "web"})).await;
        assert_not_cacheable(&login, "login");
        let token = login.body["token"].as_str().expect("token").to_string();
        let cli_id = app.tokens().await.iter().find(|t| t.client_id != web.id).expect("cli token").id.0;
        let requests = [
            (Method::POST, "/api/auth/refresh/".to_string()),
            (Method::GET, "/api/auth/sessions/".to_string()),
            (Method::POST, "/api/auth/apiaccess/".to_string()),
            (Method::GET, "/api/auth/apiaccess/".to_string()),
            (Method::DELETE, "/api/auth/apiaccess/".to_string()),
            (Method::OPTIONS, "/api/auth/login/".to_string()),
            (Method::GET, "/api/auth/login/".to_string()),
            (Method::GET, "/api/auth/nope/".to_string()),
            (Method::DELETE, format!("/api/auth/sessions/{cli_id}")),
            (Method::POST, "/api/auth/logoutall/".to_string()),
        ];
        for (method, path) in requests {
            let reply = app.send(app.req(method.clone(), &path, Some(&token))).await;
            assert_not_cacheable(&reply, &format!("{method} {path}"));
        }
        // Errors: a failed login, an anonymous and an invalid call, and the layer on a service route.
        assert_not_cacheable(&app.login_with(json!({"username": "alice", "password": "nope", "client": "web"})).await, "bad login");
        assert_not_cacheable(&app.send(app.req(Method::POST, "/api/auth/logout/", None)).await, "anonymous logout");
        assert_not_cacheable(&app.send(app.req(Method::POST, "/api/auth/logout/", Some(&token))).await, "logged out token");
        assert_not_cacheable(&app.send(app.req(Method::GET, "/api/hello/", Some(&token))).await, "the layer's 401");
        assert_eq!(app.get("/api/hello/", Some(&other)).await.0, 401, "logoutall ended the cli token too");
    }
);
