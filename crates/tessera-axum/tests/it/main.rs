//! Black-box HTTP tests of Tessera's axum face: a real server on a loopback port, on SQLite and on
//! PostgreSQL.

mod support;

mod abuse;
mod apiaccess;
mod audit;
mod auth_header;
mod cache;
mod concurrency;
mod devices;
mod durin_import;
mod events;
mod facade;
mod forward;
mod fuzz;
mod keys;
mod lag;
mod login;
mod permissions;
mod pg_notify;
mod refresh_logout;
mod renderer;
mod request_span;
mod routes;
mod sessions;
mod staff;
mod throttle;
mod token_ids;
mod usage;

mod smoke {
    use crate::both_backends;

    both_backends!(
        async fn login_hello_logout(app) {
            app.user("alice").await;
            app.client("web", "1d").await;
            let token = app.login("alice", "web").await;
            assert_eq!(app.get("/api/hello/", Some(&token)).await, (200, serde_json::json!({"hello": "alice"})));
            assert_eq!(app.get("/api/hello-cached/", Some(&token)).await.0, 200);
            assert_eq!(app.post("/api/auth/logout/", Some(&token)).await, (204, serde_json::Value::Null));
            let (status, body) = app.get("/api/hello/", Some(&token)).await;
            assert_eq!((status, body["detail"].as_str()), (401, Some("Invalid token.")));
            let (status, _) = app.get("/api/hello-cached/", Some(&token)).await;
            assert_eq!(status, 401);
        }
    );
}
