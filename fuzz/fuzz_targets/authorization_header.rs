//! The `Authorization` header: any bytes, any keyword. Never panics; a token is one non-empty run
//! of non-whitespace bytes that followed the keyword.
#![no_main]

use axum::http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use libfuzzer_sys::fuzz_target;
use tessera_axum::fuzzing::{Credentials, authorization, credentials};

const KEYWORDS: [&str; 4] = ["Token", "Bearer", "token", "X"];
const SPACE: &[u8] = b" \t\n\r\x0b\x0c";

fn check(value: &[u8], keyword: &str, found: &Credentials<'_>) {
    if let Credentials::Token(token) = found {
        assert!(!token.is_empty(), "empty token from {value:?}");
        assert!(!token.iter().any(|b| SPACE.contains(b)), "token with whitespace from {value:?}");
        let words: Vec<&[u8]> = value.split(|b| SPACE.contains(b)).filter(|w| !w.is_empty()).collect();
        assert_eq!(words.len(), 2, "{value:?}");
        assert!(words[0].eq_ignore_ascii_case(keyword.as_bytes()), "{value:?}");
        assert_eq!(words[1], *token);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, value)) = data.split_first() else { return };
    let keyword = KEYWORDS[usize::from(selector) % KEYWORDS.len()];
    let found = authorization(Some(value), keyword);
    check(value, keyword, &found);

    // Through a real header map: one header as parsed above, two always refused.
    if let Ok(header) = HeaderValue::from_bytes(value) {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, header.clone());
        let one = credentials(&headers, keyword);
        check(value, keyword, &one);
        assert_eq!(format!("{one:?}"), format!("{found:?}"));
        if selector & 0x80 != 0 {
            headers.append(AUTHORIZATION, header);
            assert!(matches!(credentials(&headers, keyword), Credentials::Invalid(_)));
        }
    }
});
