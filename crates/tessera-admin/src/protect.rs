//! Cross-site request forgery and the security headers, for every admin response.
//!
//! CSRF: a state-changing request (anything but GET, HEAD, OPTIONS) must come from the admin's own
//! pages. Browsers say where a request comes from in `Sec-Fetch-Site` (every current browser) and
//! `Origin` (every POST): `same-origin` passes, anything else (`cross-site`, `same-site` — a
//! sibling subdomain is not the admin) is refused; without `Sec-Fetch-Site`, `Origin` must be this
//! host; with neither, the request is refused (fail closed: the admin is for browsers). The session
//! cookie is also `SameSite=Strict`, so a cross-site request carries no session in the first place.
//! (tower-http 0.6 has no CSRF layer; this is the whole of ours.)

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The Content-Security-Policy: our own stylesheet and script only, no inline script or style, no
/// framing, forms only to ourselves.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Refuses cross-site state changes, then adds the security headers to whatever is answered.
pub(crate) async fn protect(req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let mut response = if safe || same_origin(req.headers()) {
        next.run(req).await
    } else {
        (StatusCode::FORBIDDEN, "Cross-site request refused (CSRF protection).").into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        // Pages show tokens once and personal data: never kept by the browser or a proxy.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Whether a state-changing request comes from this origin.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    let (Some(origin), Some(host)) = (headers.get(header::ORIGIN), headers.get(header::HOST)) else {
        return false;
    };
    let (Ok(origin), Ok(host)) = (origin.to_str(), host.to_str()) else { return false };
    // The scheme is not compared: behind a TLS-terminating proxy the server sees `http`.
    origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")).is_some_and(|o| o == host)
}

#[cfg(test)]
mod tests {
    use super::same_origin;
    use axum::http::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.parse().expect("name"), HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn only_the_same_origin_may_change_things() {
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site"), ("origin", "http://a"), ("host", "a")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "none")])));
        assert!(same_origin(&headers(&[("origin", "http://a:8000"), ("host", "a:8000")])));
        assert!(!same_origin(&headers(&[("origin", "http://evil.example"), ("host", "a:8000")])));
        assert!(!same_origin(&headers(&[("origin", "null"), ("host", "a:8000")])));
        assert!(!same_origin(&headers(&[("host", "a:8000")])));
        assert!(!same_origin(&headers(&[])));
    }
}
