//! Cross-site request forgery and the security headers, for every admin response.
//!
//! CSRF: a state-changing request (anything but GET, HEAD, OPTIONS) must come from the admin's own
//! pages. Browsers say where a request comes from in `Sec-Fetch-Site` (every current browser) and
//! `Origin` (every POST): `same-origin` passes, anything else (`cross-site`, `same-site` — a
//! sibling subdomain is not the admin) is refused; without `Sec-Fetch-Site`, `Origin` must be this
//! host; with neither, the request is refused (fail closed: the admin is for browsers). The session
//! cookie is also `SameSite=Strict`, so a cross-site request carries no session in the first place.
//! (tower-http 0.6 has no CSRF layer; this is the whole of ours.)

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

/// The Content-Security-Policy: our own stylesheet and script only, no inline script or style, no
/// framing, forms only to ourselves.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The largest form body the admin reads: its forms are a few short fields (a bulk revocation of
/// 500 ids is about 10 KiB).
pub(crate) const FORM_MAX: usize = 64 * 1024;

/// Refuses cross-site state changes and form bodies no admin page sends, then adds the security
/// headers to whatever is answered.
pub(crate) async fn protect(State(state): crate::State, req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let mut response = if safe {
        next.run(req).await
    } else if !same_origin(req.headers()) {
        // A page of the admin's own (a person whose browser sent no origin sees where they are).
        crate::view::error_page(
            &state,
            StatusCode::FORBIDDEN,
            "Cross-site request refused (CSRF protection): nothing changed. Submit the form from this admin's own pages.",
        )
    } else {
        match checked_form(&state, req).await {
            Ok(req) => next.run(req).await,
            Err(refusal) => refusal,
        }
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

/// The request with its body read (at most [`FORM_MAX`]) and checked: a form's fields must be
/// UTF-8 once decoded — `%FF` or raw non-UTF-8 bytes would otherwise reach the handlers as U+FFFD
/// and could be saved as part of a name. Refused requests change nothing.
async fn checked_form(state: &crate::AdminState, req: Request) -> Result<Request, Response> {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, FORM_MAX).await else {
        let message = "That form is too large; nothing changed.";
        return Err(crate::view::error_page(state, StatusCode::PAYLOAD_TOO_LARGE, message));
    };
    if !form_is_utf8(&bytes) {
        let message = "That form is not valid UTF-8; nothing changed.";
        return Err(crate::view::error_page(state, StatusCode::BAD_REQUEST, message));
    }
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

/// Whether every field of an `application/x-www-form-urlencoded` body decodes to UTF-8 (a text a
/// browser sends always does).
fn form_is_utf8(body: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(body) else { return false };
    text.split('&').all(|pair| {
        let decoded: Vec<u8> = percent_decode(&pair.replace('+', " "));
        std::str::from_utf8(&decoded).is_ok()
    })
}

/// `%XX` decoding; a `%` not followed by two hex digits stays as it is (as browsers and
/// `form_urlencoded` read it).
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
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
    use super::{form_is_utf8, same_origin};
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

    #[test]
    fn forms_must_decode_to_utf8() {
        assert!(form_is_utf8(b"name=caf%C3%A9&ttl=1h+2&x=%&y=%zz"));
        assert!(form_is_utf8(b""));
        assert!(!form_is_utf8(b"name=caf%FF"), "percent-encoded bytes that are not UTF-8");
        assert!(!form_is_utf8(b"name=caf\xff"), "raw bytes that are not UTF-8");
        assert!(!form_is_utf8(b"na%E9me=x"), "names too");
    }
}
