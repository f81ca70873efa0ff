//! Blocking HTTP for tests: one runtime and one client for every request of a test binary.

use serde_json::Value;
use std::sync::OnceLock;
use std::time::Duration;

/// The runtime the requests run on, and its client. The client's pooled connections belong to
/// this runtime, which lives as long as the test binary: a client shared across the runtimes of
/// `#[tokio::test]`s would keep connections whose runtime is gone.
fn runtime() -> &'static (tokio::runtime::Runtime, reqwest::Client) {
    static RUNTIME: OnceLock<(tokio::runtime::Runtime, reqwest::Client)> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let client = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().expect("client");
        (rt, client)
    })
}

/// A request with an optional token (`Authorization: Token …`) and JSON body; blocks until the
/// answer: its status and body — JSON, `null` when empty, a JSON string when not JSON.
///
/// Call it from plain `#[test]`s (or threads of theirs), not from inside an async runtime.
pub fn http(method: reqwest::Method, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let (rt, client) = runtime();
    rt.block_on(async {
        let mut req = client.request(method, url);
        if let Some(token) = token {
            req = req.header("Authorization", format!("Token {token}"));
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, body)
    })
}

/// A GET without a token: [`http`].
pub fn http_get(url: &str) -> (u16, Value) {
    http(reqwest::Method::GET, url, None, None)
}

/// A GET without a token, for a body that is not JSON: status, `Content-Type`, the text.
pub fn http_text(url: &str) -> (u16, String, String) {
    let (rt, client) = runtime();
    rt.block_on(async {
        let response = client.get(url).send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = response.status().as_u16();
        let kind = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        (status, kind, response.text().await.unwrap_or_default())
    })
}
