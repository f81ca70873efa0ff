//! The `Authorization` header, parsed exactly as durin (DRF) does: split on runs of ASCII
//! whitespace, keyword compared case-insensitively, exactly one credential after it.

use crate::error::AuthError;

/// What the header says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Credentials<'a> {
    /// No header, an empty one, or another scheme: the request is anonymous.
    Anonymous,
    /// A token to verify (bytes: it may not even be UTF-8).
    Token(&'a [u8]),
    /// A malformed header for our scheme.
    Invalid(AuthError),
}

/// Python's `bytes.split()` whitespace.
fn is_space(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// The request's credentials: what its one `Authorization` header says. Several headers are
/// refused, whatever they hold: a proxy or another service may read a different one than we do.
pub(crate) fn credentials<'a>(headers: &'a axum::http::HeaderMap, keyword: &str) -> Credentials<'a> {
    let mut values = headers.get_all(axum::http::header::AUTHORIZATION).iter();
    let first = values.next();
    if values.next().is_some() {
        return Credentials::Invalid(AuthError::SeveralHeaders);
    }
    parse(first.map(|v| v.as_bytes()), keyword)
}

pub(crate) fn parse<'a>(value: Option<&'a [u8]>, keyword: &str) -> Credentials<'a> {
    let Some(value) = value else { return Credentials::Anonymous };
    let mut parts = value.split(is_space).filter(|p| !p.is_empty());
    let Some(scheme) = parts.next() else { return Credentials::Anonymous };
    if !scheme.eq_ignore_ascii_case(keyword.as_bytes()) {
        return Credentials::Anonymous;
    }
    match (parts.next(), parts.next()) {
        (None, _) => Credentials::Invalid(AuthError::NoCredentials),
        (Some(_), Some(_)) => Credentials::Invalid(AuthError::TokenHasSpaces),
        (Some(token), None) => Credentials::Token(token),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_table() {
        let p = |v: &'static str| parse(Some(v.as_bytes()), "Token");
        assert_eq!(parse(None, "Token"), Credentials::Anonymous);
        assert_eq!(p(""), Credentials::Anonymous);
        assert_eq!(p("   "), Credentials::Anonymous);
        assert_eq!(p("Bearer x"), Credentials::Anonymous);
        assert_eq!(p("TokenX x"), Credentials::Anonymous);
        assert_eq!(p("Token"), Credentials::Invalid(AuthError::NoCredentials));
        assert_eq!(p("Token   "), Credentials::Invalid(AuthError::NoCredentials));
        assert_eq!(p("Token a b"), Credentials::Invalid(AuthError::TokenHasSpaces));
        assert_eq!(p("Token abc"), Credentials::Token(b"abc"));
        assert_eq!(p("token abc"), Credentials::Token(b"abc"));
        assert_eq!(p("TOKEN \t abc  "), Credentials::Token(b"abc"));
        assert_eq!(parse(Some(b"Token \xff\xfe"), "Token"), Credentials::Token(b"\xff\xfe"));
        assert_eq!(parse(Some(b"Bearer abc"), "Bearer"), Credentials::Token(b"abc"));
    }
}
