//! Request bodies as DRF parses them: JSON, form or multipart; an empty body is `{}`.

use crate::error::AuthError;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{StatusCode, header};
use serde_json::{Map, Value};

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
    let mut form = Multipart::from_request(req, &()).await.map_err(|e| multipart_error(e.body_text()))?;
    let mut fields = Map::new();
    let mut total = 0usize;
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => {
                return Err(if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    AuthError::BodyTooLarge
                } else {
                    multipart_error(e.body_text())
                });
            }
        };
        let name = field.name().unwrap_or_default().to_string();
        let is_file = field.file_name().is_some();
        let bytes = field.bytes().await.map_err(|e| multipart_error(e.body_text()))?;
        total += bytes.len();
        if total > MAX_BODY_BYTES {
            return Err(AuthError::BodyTooLarge);
        }
        // Files are not login fields; text fields that are not UTF-8 are not text.
        if !is_file && let Ok(text) = String::from_utf8(bytes.to_vec()) {
            fields.insert(name, Value::String(text));
        }
    }
    Ok(Value::Object(fields))
}
