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
    // What nearly every request sends: the keyword, one space, the token. The keyword has no
    // whitespace (`auth_header_prefix` is one word of visible ASCII), so this is the general
    // reading's answer for exactly these headers, in one pass over the token.
    if let Some(token) = value.get(keyword.len() + 1..)
        && value[keyword.len()] == b' '
        && !token.is_empty()
        && value[..keyword.len()].eq_ignore_ascii_case(keyword.as_bytes())
        && word_end(token) == token.len()
    {
        return Credentials::Token(token);
    }
    // The words of `value.split(is_space).filter(|p| !p.is_empty())`, read by hand: the iterator
    // adaptors cost several times the plain loops.
    let Some((scheme, rest)) = next_word(value) else { return Credentials::Anonymous };
    if !scheme.eq_ignore_ascii_case(keyword.as_bytes()) {
        return Credentials::Anonymous;
    }
    match next_word(rest) {
        None => Credentials::Invalid(AuthError::NoCredentials),
        Some((token, rest)) => match next_word(rest) {
            Some(_) => Credentials::Invalid(AuthError::TokenHasSpaces),
            None => Credentials::Token(token),
        },
    }
}

/// The first word of `bytes` (a run of non-whitespace) and what follows it; `None` when `bytes`
/// is all whitespace.
fn next_word(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let start = bytes.iter().position(|b| !is_space(b))?;
    let word = &bytes[start..];
    Some(word.split_at(word_end(word)))
}

/// Where the word at the start of `bytes` ends: at its first whitespace, or at the end. Every
/// whitespace byte is below 0x21, so eight bytes at a time are skipped while none of them is (a
/// token has 64 such bytes); the word's last eight or fewer are then read one by one.
fn word_end(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut skipped = 0;
    for chunk in bytes.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_ne_bytes(word);
        // Non-zero exactly when a byte of `x` is below 0x21 (the classic "has a byte less than n"
        // test, exact for n <= 0x80).
        if x.wrapping_sub(ONES * 0x21) & !x & HIGH != 0 {
            break;
        }
        skipped += 8;
    }
    let rest = &bytes[skipped..];
    skipped + rest.iter().position(is_space).unwrap_or(rest.len())
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
        assert_eq!(p("\x0b\x0cToken\rabc\n"), Credentials::Token(b"abc"));
        assert_eq!(p("Token abc\t\x0bdef"), Credentials::Invalid(AuthError::TokenHasSpaces));
    }

    /// The hand-written reading against the definition it replaces: Python's `bytes.split()`,
    /// i.e. `split(is_space)` without the empty pieces, on every string of a small alphabet.
    #[test]
    fn the_same_words_as_split() {
        fn by_split<'a>(value: &'a [u8], keyword: &str) -> Credentials<'a> {
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
        let alphabet = [b' ', b'\t', b'\x0b', b'T', b't', b'a', 0xff];
        let mut value = Vec::new();
        for n in 0..=6u32 {
            for mut i in 0..alphabet.len().pow(n) {
                value.clear();
                for _ in 0..n {
                    value.push(alphabet[i % alphabet.len()]);
                    i /= alphabet.len();
                }
                assert_eq!(parse(Some(&value), "T"), by_split(&value, "T"), "{value:?}");
            }
        }
    }
}
