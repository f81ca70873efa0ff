//! The auth routes' body parser (JSON, form, multipart; DRF's rules): any content type, any
//! bytes, delivered in any chunks, possibly repeated past the 64 KiB limit. Never panics; what
//! parses from JSON or a form was at most 64 KiB; forms and multipart give objects of strings.
#![no_main]

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::OnceLock;
use tessera_axum::fuzzing::{MAX_BODY_BYTES, body};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().expect("runtime"))
}

fuzz_target!(|data: &[u8]| {
    let [kind, flags, repeat, chunk, rest @ ..] = data else { return };
    // The content type: a known one, a multipart boundary from the input, or input bytes.
    let (content_type, payload): (Option<Vec<u8>>, &[u8]) = match kind % 8 {
        0 => (None, rest),
        1 => (Some(b"application/json".to_vec()), rest),
        2 => (Some(b"application/x-www-form-urlencoded".to_vec()), rest),
        3 => (Some(b"Application/JSON; charset=utf-8".to_vec()), rest),
        4 => {
            let n = rest.first().map_or(0, |n| usize::from(*n) % 72).min(rest.len().saturating_sub(1));
            let boundary = rest.get(1..1 + n).unwrap_or_default();
            let mut ct = b"multipart/form-data; boundary=".to_vec();
            ct.extend_from_slice(boundary);
            (Some(ct), rest.get(1 + n..).unwrap_or_default())
        }
        5 => (Some(b"multipart/form-data; boundary=b".to_vec()), rest),
        6 => (Some(b"multipart/form-data".to_vec()), rest),
        _ => {
            let n = rest.first().map_or(0, |n| usize::from(*n) % 64).min(rest.len().saturating_sub(1));
            (Some(rest.get(1..1 + n).unwrap_or_default().to_vec()), rest.get(1 + n..).unwrap_or_default())
        }
    };
    // The body: the payload, repeated to cross the limit when asked.
    let times = if flags & 1 != 0 { usize::from(*repeat).max(1) * 64 } else { 1 };
    let total = payload.len() * times;
    let mut bytes = Vec::with_capacity(total);
    for _ in 0..times {
        bytes.extend_from_slice(payload);
    }
    let chunk = usize::from(*chunk).max(1) * if flags & 2 != 0 { 1 } else { 256 };
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        bytes.chunks(chunk).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    let mut request = Request::builder().method("POST").uri("/api/auth/login/");
    if let Some(ct) = &content_type {
        let Ok(value) = axum::http::HeaderValue::from_bytes(ct) else { return };
        request = request.header(CONTENT_TYPE, value);
    }
    if flags & 4 != 0 {
        request = request.header(CONTENT_LENGTH, total);
    }
    let stream = futures_util::stream::iter(chunks);
    let Ok(request) = request.body(Body::from_stream(stream)) else { return };

    let essence = content_type
        .as_deref()
        .and_then(|ct| std::str::from_utf8(ct).ok())
        .map(|ct| ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    match runtime().block_on(body(request)) {
        Ok(value) => match essence.as_deref() {
            Some("application/json") => assert!(total <= MAX_BODY_BYTES, "{total} bytes of JSON parsed"),
            Some("application/x-www-form-urlencoded" | "multipart/form-data") => {
                if essence.as_deref() != Some("multipart/form-data") {
                    assert!(total <= MAX_BODY_BYTES, "{total} bytes of form parsed");
                }
                let object = value.as_object().expect("forms give objects");
                assert!(object.values().all(Value::is_string));
                let size: usize = object.iter().map(|(k, v)| k.len() + v.as_str().map_or(0, str::len)).sum();
                // A form's bytes that are not UTF-8 become U+FFFD (3 bytes), as in Django's
                // QueryDict; multipart drops such fields, and counts only values.
                let most = if essence.as_deref() == Some("multipart/form-data") { 2 } else { 3 };
                assert!(size <= most * MAX_BODY_BYTES, "{size} bytes of fields");
            }
            _ => assert_eq!(value, Value::Object(Default::default()), "no content type, no data"),
        },
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
