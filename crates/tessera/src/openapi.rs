//! The OpenAPI 3.1 document of every route `tessera serve` answers, and a viewer for it.
//!
//! The document is written by hand (`docs/openapi.json`, compiled in and served as it is at
//! `/api/openapi.json`) rather than generated: annotating the library's routes would put an
//! OpenAPI generator into every service built on `tessera-axum`. What keeps it true instead:
//! the server's routes are built from path tables ([`route_paths`]), and the tests
//! (`crates/tessera/tests/it/openapi.rs`) fail when a route is missing from the document or the
//! document names a route the server lacks, when a documented method is not served, and when
//! schemathesis finds an answer that does not match the document.
//!
//! The viewer at `/api/docs` is RapiDoc, vendored (`assets/rapidoc/`): the page loads nothing
//! from another origin.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The document, as committed.
pub const DOCUMENT: &str = include_str!("../../../docs/openapi.json");
/// Where it is served.
pub const DOCUMENT_PATH: &str = "/api/openapi.json";
/// The viewer's page.
pub const VIEWER_PATH: &str = "/api/docs";
/// The viewer's script.
pub const SCRIPT_PATH: &str = "/api/docs/rapidoc-min.js";

/// RapiDoc 9.3.8's `dist/rapidoc-min.js.gz`, unchanged.
const SCRIPT_GZ: &[u8] = include_bytes!("../assets/rapidoc/rapidoc-min.js.gz");

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tessera API</title>
<script type="module" src="/api/docs/rapidoc-min.js"></script>
</head>
<body>
<rapi-doc spec-url="/api/openapi.json" render-style="read" show-header="false" allow-server-selection="false"
  allow-authentication="true" schema-style="table" theme="light"></rapi-doc>
</body>
</html>
"#;

/// The paths of the document and the viewer.
pub const PATHS: [&str; 3] = [DOCUMENT_PATH, VIEWER_PATH, SCRIPT_PATH];

/// The routes of the document and the viewer.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route(DOCUMENT_PATH, get(document)).route(VIEWER_PATH, get(page)).route(SCRIPT_PATH, get(script))
}

async fn document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT).into_response()
}

async fn page() -> Response {
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response();
    // Nothing from elsewhere; RapiDoc styles its shadow DOM inline.
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    response
}

/// The script, gzip-encoded as vendored: every browser accepts gzip; a client that says it does
/// not gets 406 rather than bytes it cannot read.
async fn script(headers: HeaderMap) -> Response {
    let gzip =
        headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
            |coding| {
                let mut parts = coding.split(';');
                let name = parts.next().unwrap_or("").trim();
                let refused =
                    parts.any(|p| matches!(p.trim().replace(' ', "").as_str(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
                (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
            },
        );
    if !gzip {
        return (
            StatusCode::NOT_ACCEPTABLE,
            [(header::CONTENT_TYPE, "text/plain")],
            "the script is served gzip-encoded only\n",
        )
            .into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "text/javascript"),
            (header::CONTENT_ENCODING, "gzip"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        SCRIPT_GZ,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_json() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).expect("docs/openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["paths"].as_object().is_some_and(|p| p.len() > 10));
    }
}
