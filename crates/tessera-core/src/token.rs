//! The token format, the server key, and the keyed digest stores see instead of tokens.
//!
//! A token is `<prefix><base62 body><6-char base62 CRC32>`, `length` characters in all. The body is
//! derived from a 256-bit random seed with the server key (HMAC-SHA256 in counter mode), so that a
//! store keeps only the seed and the keyed digest: neither is a usable token, and a dump of the
//! database yields none, yet a second login to the same client can hand the same token back.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const CHECKSUM_LEN: usize = 6;
/// Body characters needed for 256 random bits: 43 × log2(62) ≈ 256.03.
pub const MIN_BODY_LEN: usize = 43;
/// The longest token accepted by configuration.
pub const MAX_TOKEN_LEN: usize = 255;
/// The longest prefix.
pub const MAX_PREFIX_LEN: usize = 16;

/// Why the server key was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not hex.
    #[error("the secret key must be hexadecimal (0-9, a-f); found '{0}'")]
    NotHex(char),
    /// Odd number of hex digits.
    #[error("the secret key has an odd number of hex digits ({0})")]
    OddLength(usize),
    /// Too short or long.
    #[error("the secret key must be 32 to 64 bytes (64 to 128 hex digits); it has {0} bytes")]
    BadLength(usize),
    /// Not random: all zeros, a short repeated pattern, or a counting sequence.
    #[error(
        "the secret key is not random (too few distinct bytes, or a counting sequence); generate one with `tessera key generate`"
    )]
    LowEntropy,
}

/// Whether key bytes were typed rather than drawn: fewer than 16 distinct values (all zeros, a
/// short repeated pattern) or a constant step (`00 01 02 …`). 32 random bytes have about 30
/// distinct values; fewer than 16 happens with a probability far below 2^-100.
fn looks_made_up(bytes: &[u8]) -> bool {
    let mut seen = [false; 256];
    for b in bytes {
        seen[*b as usize] = true;
    }
    let distinct = seen.iter().filter(|s| **s).count();
    let step = bytes[1].wrapping_sub(bytes[0]);
    let counting = bytes.windows(2).all(|w| w[1].wrapping_sub(w[0]) == step);
    distinct < 16 || counting
}

/// The server key: 32–64 secret bytes. Its `Debug` never shows it.
#[derive(Clone)]
pub struct ServerKey(Vec<u8>);

impl ServerKey {
    /// A fresh random 32-byte key from the OS generator.
    pub fn generate() -> Self {
        ServerKey(random_bytes::<32>().to_vec())
    }

    /// Parses a key written as 64–128 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if let Some(bad) = text.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(KeyError::NotHex(bad));
        }
        if !text.len().is_multiple_of(2) {
            return Err(KeyError::OddLength(text.len()));
        }
        let bytes: Vec<u8> =
            (0..text.len()).step_by(2).filter_map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect();
        if !(32..=64).contains(&bytes.len()) {
            return Err(KeyError::BadLength(bytes.len()));
        }
        if looks_made_up(&bytes) {
            return Err(KeyError::LowEntropy);
        }
        Ok(ServerKey(bytes))
    }

    /// The key as lowercase hex, for writing the key file. Handle with care.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn subkey(&self, purpose: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).unwrap_or_else(|_| unreachable_hmac());
        mac.update(purpose);
        let derived = mac.finalize().into_bytes();
        HmacSha256::new_from_slice(&derived).unwrap_or_else(|_| unreachable_hmac())
    }
}

/// HMAC accepts keys of any length; this cannot happen.
fn unreachable_hmac() -> HmacSha256 {
    unreachable!("HMAC-SHA256 accepts keys of any length")
}

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerKey([redacted])")
    }
}

/// A token as handed to a client. Its `Debug` is redacted; read it with [`TokenSecret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl TokenSecret {
    /// The token string. Show it to its owner once; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret([redacted])")
    }
}

/// The keyed digest (HMAC-SHA256) of a token: what stores index tokens by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenDigest(pub [u8; 32]);

impl TokenDigest {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// From stored bytes; `None` unless exactly 32.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(TokenDigest)
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &TokenDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A digest is not a credential, but a short form keeps logs readable.
        write!(f, "TokenDigest({:02x}{:02x}{:02x}{:02x}…)", self.0[0], self.0[1], self.0[2], self.0[3])
    }
}

/// The random seed a token is derived from. Without the server key it yields nothing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenSeed(pub [u8; 32]);

impl TokenSeed {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// From stored bytes; `None` unless exactly 32.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(TokenSeed)
    }
}

impl fmt::Debug for TokenSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSeed([redacted])")
    }
}

/// A newly issued token: the secret for the client, the seed and digest for the store.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// Hand this to the client.
    pub token: TokenSecret,
    /// Store this.
    pub seed: TokenSeed,
    /// Store and index this.
    pub digest: TokenDigest,
}

/// Why a presented token was rejected before any store lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MalformedToken {
    /// Wrong length.
    #[error("the token has the wrong length")]
    Length,
    /// Wrong prefix.
    #[error("the token has the wrong prefix")]
    Prefix,
    /// A character outside base62.
    #[error("the token contains a character that is not base62")]
    Alphabet,
    /// The checksum does not match.
    #[error("the token's checksum does not match")]
    Checksum,
}

/// Why a token format was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Length too small for 256 random bits.
    #[error(
        "token_character_length {length} is too small: with the prefix '{prefix}' ({prefix_len} characters) and the \
         {CHECKSUM_LEN}-character checksum it leaves {body} random characters, and 256 random bits need {MIN_BODY_LEN}; \
         the minimum is {min}"
    )]
    TooShort {
        /// Requested length.
        length: usize,
        /// The prefix.
        prefix: String,
        /// Its length.
        prefix_len: usize,
        /// Characters left for the body.
        body: i64,
        /// The smallest acceptable length.
        min: usize,
    },
    /// Length too large.
    #[error("token_character_length {0} is too large; the maximum is {MAX_TOKEN_LEN}")]
    TooLong(usize),
    /// Bad prefix.
    #[error("token_prefix '{0}' is invalid: use at most {MAX_PREFIX_LEN} ASCII letters, digits, '_' or '-'")]
    BadPrefix(String),
}

/// Issues, re-derives, checks and digests tokens. Cheap to clone.
#[derive(Clone)]
pub struct TokenCodec {
    prefix: String,
    length: usize,
    body_len: usize,
    derive_mac: HmacSha256,
    digest_mac: HmacSha256,
}

impl fmt::Debug for TokenCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCodec").field("prefix", &self.prefix).field("length", &self.length).finish_non_exhaustive()
    }
}

impl TokenCodec {
    /// A codec for tokens of `length` characters starting with `prefix`, keyed by `key`.
    pub fn new(key: ServerKey, prefix: &str, length: usize) -> Result<Self, FormatError> {
        if prefix.len() > MAX_PREFIX_LEN || !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(FormatError::BadPrefix(prefix.to_string()));
        }
        let min = prefix.len() + MIN_BODY_LEN + CHECKSUM_LEN;
        if length < min {
            return Err(FormatError::TooShort {
                length,
                prefix: prefix.to_string(),
                prefix_len: prefix.len(),
                body: length as i64 - prefix.len() as i64 - CHECKSUM_LEN as i64,
                min,
            });
        }
        if length > MAX_TOKEN_LEN {
            return Err(FormatError::TooLong(length));
        }
        Ok(Self {
            prefix: prefix.to_string(),
            length,
            body_len: length - prefix.len() - CHECKSUM_LEN,
            derive_mac: key.subkey(b"tessera/token-derive/v1"),
            digest_mac: key.subkey(b"tessera/token-digest/v1"),
        })
    }

    /// The smallest `token_character_length` that works with `prefix`.
    pub fn min_length(prefix: &str) -> usize {
        prefix.len() + MIN_BODY_LEN + CHECKSUM_LEN
    }

    /// The configured prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Issues a new token from a fresh 256-bit random seed.
    pub fn issue(&self) -> IssuedToken {
        let seed = TokenSeed(random_bytes::<32>());
        let token = self.derive(&seed);
        let digest = self.digest_unchecked(token.expose());
        IssuedToken { token, seed, digest }
    }

    /// Re-derives the token issued from `seed`.
    pub fn derive(&self, seed: &TokenSeed) -> TokenSecret {
        let mut out = String::with_capacity(self.length);
        out.push_str(&self.prefix);
        let mut counter: u32 = 0;
        'fill: loop {
            let mut mac = self.derive_mac.clone();
            mac.update(&seed.0);
            mac.update(&counter.to_be_bytes());
            for b in mac.finalize().into_bytes() {
                // 248 = 4 × 62: rejecting the top 8 byte values keeps every character equally likely.
                if b < 248 {
                    out.push(ALPHABET[(b % 62) as usize] as char);
                    if out.len() == self.prefix.len() + self.body_len {
                        break 'fill;
                    }
                }
            }
            counter += 1;
        }
        let checksum = checksum(out.as_bytes());
        out.push_str(&checksum);
        TokenSecret(out)
    }

    /// Checks a presented token's format and checksum, then returns its digest for lookup.
    /// Malformed tokens are rejected here, before any store is asked.
    pub fn parse(&self, presented: &str) -> Result<TokenDigest, MalformedToken> {
        let bytes = presented.as_bytes();
        if bytes.len() != self.length {
            return Err(MalformedToken::Length);
        }
        if !bytes.starts_with(self.prefix.as_bytes()) {
            return Err(MalformedToken::Prefix);
        }
        let (payload, sum) = bytes.split_at(self.length - CHECKSUM_LEN);
        if !payload[self.prefix.len()..].iter().chain(sum).all(u8::is_ascii_alphanumeric) {
            return Err(MalformedToken::Alphabet);
        }
        if checksum(payload).as_bytes() != sum {
            return Err(MalformedToken::Checksum);
        }
        Ok(self.digest_unchecked(presented))
    }

    fn digest_unchecked(&self, token: &str) -> TokenDigest {
        let mut mac = self.digest_mac.clone();
        mac.update(token.as_bytes());
        TokenDigest(mac.finalize().into_bytes().into())
    }
}

fn checksum(payload: &[u8]) -> String {
    let mut n = crc32fast::hash(payload) as u64;
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    out.iter().map(|&b| b as char).collect()
}

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS generator failing is not something a caller can recover from; every platform Tessera
    // supports provides one.
    if let Err(e) = getrandom::getrandom(&mut buf) {
        panic!("the operating system's random number generator failed: {e}");
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn codec() -> TokenCodec {
        TokenCodec::new(ServerKey::generate(), "tsr_", 64).expect("codec")
    }

    #[test]
    fn issued_tokens_have_the_format_and_parse_back() {
        let codec = codec();
        let issued = codec.issue();
        let t = issued.token.expose();
        assert_eq!(t.len(), 64);
        assert!(t.starts_with("tsr_"));
        assert!(t[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(codec.parse(t), Ok(issued.digest));
        assert_eq!(codec.derive(&issued.seed), issued.token);
    }

    #[test]
    fn tokens_are_unique_and_use_the_whole_alphabet() {
        let codec = codec();
        let mut seen = HashSet::new();
        let mut chars = HashSet::new();
        for _ in 0..500 {
            let t = codec.issue().token;
            chars.extend(t.expose()[4..58].bytes());
            assert!(seen.insert(t.expose().to_string()));
        }
        assert_eq!(chars.len(), 62);
    }

    #[test]
    fn malformed_tokens_are_rejected_before_lookup() {
        let codec = codec();
        let good = codec.issue().token.expose().to_string();
        assert_eq!(codec.parse(&good[..63]), Err(MalformedToken::Length));
        assert_eq!(codec.parse(&format!("xsr_{}", &good[4..])), Err(MalformedToken::Prefix));
        let mut bad = good.clone().into_bytes();
        bad[10] = b'!';
        assert_eq!(codec.parse(&String::from_utf8_lossy(&bad)), Err(MalformedToken::Alphabet));
        // Change one body character: the checksum no longer matches.
        let mut flipped = good.clone().into_bytes();
        flipped[20] = if flipped[20] == b'a' { b'b' } else { b'a' };
        assert_eq!(codec.parse(&String::from_utf8_lossy(&flipped)), Err(MalformedToken::Checksum));
        // Wrong case is a different token: checksum fails.
        let swapped: String = good
            .chars()
            .map(|c| if c.is_ascii_lowercase() { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
            .collect();
        assert!(codec.parse(&swapped).is_err());
    }

    #[test]
    fn another_key_derives_other_tokens_and_digests() {
        let a = codec();
        let b = codec();
        let issued = a.issue();
        assert_ne!(b.derive(&issued.seed), issued.token);
        assert_ne!(b.parse(issued.token.expose()), Ok(issued.digest));
    }

    #[test]
    fn a_key_round_trips_through_hex_and_bad_keys_are_named() {
        let key = ServerKey::generate();
        let again = ServerKey::from_hex(&key.to_hex()).expect("hex");
        let a = TokenCodec::new(key, "", 64).expect("a");
        let b = TokenCodec::new(again, "", 64).expect("b");
        let issued = a.issue();
        assert_eq!(b.derive(&issued.seed), issued.token);
        assert!(matches!(ServerKey::from_hex("zz"), Err(KeyError::NotHex('z'))));
        assert!(matches!(ServerKey::from_hex("abc"), Err(KeyError::OddLength(3))));
        assert!(matches!(ServerKey::from_hex(&"ab".repeat(16)), Err(KeyError::BadLength(16))));
        assert!(matches!(ServerKey::from_hex(&"ab".repeat(65)), Err(KeyError::BadLength(65))));
        // Typed, not drawn: refused.
        let counting: String = (0u8..32).map(|b| format!("{b:02x}")).collect();
        let down: String = (0u8..40).map(|b| format!("{:02x}", 200u8.wrapping_sub(b * 3))).collect();
        for made_up in ["00".repeat(32), "ff".repeat(64), "0123456789abcdef".repeat(4), counting, down] {
            assert!(matches!(ServerKey::from_hex(&made_up), Err(KeyError::LowEntropy)), "{made_up}");
        }
        // Drawn: accepted, every time.
        for _ in 0..10_000 {
            let key = ServerKey::generate();
            assert!(ServerKey::from_hex(&key.to_hex()).is_ok());
        }
        assert_eq!(format!("{:?}", ServerKey::generate()), "ServerKey([redacted])");
    }

    #[test]
    fn length_limits_keep_256_random_bits() {
        assert_eq!(TokenCodec::min_length("tsr_"), 53);
        assert!(TokenCodec::new(ServerKey::generate(), "tsr_", 53).is_ok());
        let err = TokenCodec::new(ServerKey::generate(), "tsr_", 52).expect_err("52").to_string();
        assert!(err.contains("token_character_length 52 is too small"), "{err}");
        assert!(err.contains("the minimum is 53"), "{err}");
        assert!(TokenCodec::new(ServerKey::generate(), "", 49).is_ok());
        assert!(TokenCodec::new(ServerKey::generate(), "tsr_", 256).is_err());
        assert!(TokenCodec::new(ServerKey::generate(), "bad prefix", 64).is_err());
        let t = TokenCodec::new(ServerKey::generate(), "", 49).expect("49").issue().token;
        assert_eq!(t.expose().len(), 49);
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let issued = codec().issue();
        let shown = format!("{issued:?}");
        assert!(!shown.contains(issued.token.expose()), "{shown}");
        assert!(shown.contains("redacted"));
    }
}
