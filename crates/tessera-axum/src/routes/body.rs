//! Request bodies as DRF parses them: JSON, form or multipart; an empty body is `{}`.

use crate::error::AuthError;
use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{StatusCode, header};
use futures_core::Stream;
use serde_json::{Map, Value};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

/// The media types the auth routes parse.
pub(crate) const PARSES: [&str; 3] = ["application/json", "application/x-www-form-urlencoded", "multipart/form-data"];

/// The largest body the auth routes read.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

fn multipart_error(text: String) -> AuthError {
    AuthError::MalformedBody(format!("Multipart form parse error - {text}"))
}

/// Reads the body into a JSON value: an object for forms, whatever the JSON was for JSON.
pub(crate) async fn parse(req: Request) -> Result<Value, AuthError> {
    let content_type = match req.headers().get(header::CONTENT_TYPE) {
        None => None,
        Some(v) => match v.to_str() {
            Ok(s) => Some(s.to_string()),
            Err(_) => return Err(AuthError::UnsupportedMediaType(None)),
        },
    };
    if let Some(len) = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && len > MAX_BODY_BYTES as u64
    {
        return Err(AuthError::BodyTooLarge);
    }
    let Some(content_type) = content_type.filter(|c| !c.trim().is_empty()) else {
        // DRF: no content type, no data (whatever the body holds).
        return Ok(Value::Object(Map::new()));
    };
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "multipart/form-data" => multipart(req).await,
        "application/json" | "application/x-www-form-urlencoded" => {
            let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES).await.map_err(|e| {
                if is_length_limit(&e) {
                    AuthError::BodyTooLarge
                } else {
                    AuthError::MalformedBody("Malformed request body.".into())
                }
            })?;
            if bytes.is_empty() {
                return Ok(Value::Object(Map::new()));
            }
            if essence == "application/json" {
                serde_json::from_slice(&bytes).map_err(|e| AuthError::MalformedBody(format!("JSON parse error - {e}")))
            } else {
                let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
                    .map_err(|e| AuthError::MalformedBody(format!("Form parse error - {e}")))?;
                Ok(Value::Object(pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect()))
            }
        }
        _ => Err(AuthError::UnsupportedMediaType(Some(content_type))),
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.to_string().contains("length limit exceeded") {
            return true;
        }
        source = err.source();
    }
    false
}

async fn multipart(req: Request) -> Result<Value, AuthError> {
    // The raw body is capped as it streams in (boundaries and part headers count too), so an
    // oversized part is refused after MAX_BODY_BYTES, not after it has been buffered.
    let over = Arc::new(AtomicBool::new(false));
    let (parts, body) = req.into_parts();
    let capped = CappedStream { inner: body.into_data_stream(), seen: 0, over: over.clone() };
    let req = Request::from_parts(parts, Body::from_stream(capped));
    let too_large = |status: StatusCode| status == StatusCode::PAYLOAD_TOO_LARGE || over.load(Ordering::Acquire);
    let mut form = Multipart::from_request(req, &()).await.map_err(|e| multipart_error(e.body_text()))?;
    let mut fields = Map::new();
    let mut total = 0usize;
    loop {
        let mut field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) if too_large(e.status()) => return Err(AuthError::BodyTooLarge),
            Err(e) => return Err(multipart_error(e.body_text())),
        };
        let name = field.name().unwrap_or_default().to_string();
        let is_file = field.file_name().is_some();
        let mut bytes = Vec::new();
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    total += chunk.len();
                    if total > MAX_BODY_BYTES {
                        return Err(AuthError::BodyTooLarge);
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if too_large(e.status()) => return Err(AuthError::BodyTooLarge),
                Err(e) => return Err(multipart_error(e.body_text())),
            }
        }
        // Files are not login fields; text fields that are not UTF-8 are not text.
        if !is_file && let Ok(text) = String::from_utf8(bytes) {
            fields.insert(name, Value::String(text));
        }
    }
    Ok(Value::Object(fields))
}

/// A body's data that fails once more than [`MAX_BODY_BYTES`] have arrived, noting why in `over`.
struct CappedStream {
    inner: BodyDataStream,
    seen: usize,
    over: Arc<AtomicBool>,
}

impl Stream for CappedStream {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.over.load(Ordering::Acquire) {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.seen = self.seen.saturating_add(chunk.len());
                if self.seen > MAX_BODY_BYTES {
                    self.over.store(true, Ordering::Release);
                    return Poll::Ready(Some(Err(axum::Error::new("request body is too large"))));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(content_type: &str, body: Vec<u8>) -> Request {
        Request::builder()
            .method("POST")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .expect("request")
    }

    /// Found by the `body` fuzz target: a form's bytes that are not UTF-8 become U+FFFD, as in
    /// Django's QueryDict, so its fields may be up to three times the body's size (never more),
    /// while multipart drops text fields that are not UTF-8.
    #[tokio::test]
    async fn form_bytes_that_are_not_utf8_become_replacement_characters() {
        let mut body = b"password=".to_vec();
        body.extend(std::iter::repeat_n(0xff, MAX_BODY_BYTES - body.len()));
        let value = parse(request("application/x-www-form-urlencoded", body)).await.expect("form");
        let password = value["password"].as_str().expect("text");
        assert_eq!(password.chars().count(), MAX_BODY_BYTES - "password=".len());
        assert!(password.chars().all(|c| c == char::REPLACEMENT_CHARACTER));
        assert!(password.len() <= 3 * MAX_BODY_BYTES);

        let multipart =
            b"--b\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n\xff\xfe\r\n--b--\r\n".to_vec();
        let value = parse(request("multipart/form-data; boundary=b", multipart)).await.expect("multipart");
        assert_eq!(value, Value::Object(Map::new()));
    }

    /// One byte over the limit is refused, for every parser.
    #[tokio::test]
    async fn the_limit_holds_for_every_parser() {
        for content_type in ["application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=b"]
        {
            let body = vec![b'a'; MAX_BODY_BYTES + 1];
            let error = parse(request(content_type, body)).await.expect_err(content_type);
            assert!(matches!(error, AuthError::BodyTooLarge), "{content_type}: {error:?}");
        }
    }
}
