//! The token format, the server keys, and the keyed digest stores see instead of tokens.
//!
//! A token is `<prefix><key id><base62 body><6-char base62 checksum>`, `length` characters in all.
//! The key id (one base62 character, see [`KeyRing`]) names the server key the token was made
//! with, so that verifying it is one digest with the right key and one store lookup, however
//! many keys the ring holds. The body is derived from a 256-bit random seed with that key
//! (HMAC-SHA256 in counter mode), so that a store keeps only the seed and the keyed digest:
//! neither is a usable token, and a dump of the database yields none, yet a second login to the
//! same client can hand the same token back.
//!
//! The checksum is a CRC32 over a fixed tag and the token's text before it. Tokens issued before
//! tokens carried a key id (`<prefix><body><checksum>`, the checksum a CRC32 of the text alone)
//! are told apart by their checksum alone: they verify with key [`KeyId::LEGACY`]. A presented
//! token costs at most two CRC32s, then exactly one HMAC with the key it names; an unknown key id
//! is rejected before any store lookup.

mod ring;

pub use ring::{KeyId, KeyRing, RingError};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const CHECKSUM_LEN: usize = 6;
/// The key id: one character.
const KEY_ID_LEN: usize = 1;
/// What the checksum of a token with a key id covers before the token's text, so that it never
/// matches the checksum of a token without one (except by a 2^-32 chance; see [`TokenCodec::parse`]).
const CHECKSUM_TAG: &[u8] = b"tessera/token-checksum/v2\0";
/// Body characters needed for 256 random bits: 43 × log2(62) ≈ 256.03.
pub const MIN_BODY_LEN: usize = 43;
/// The longest token accepted by configuration.
pub const MAX_TOKEN_LEN: usize = 255;
/// The longest prefix.
pub const MAX_PREFIX_LEN: usize = 16;
/// The length of a durin token (64 hexadecimal characters).
pub const DURIN_TOKEN_LEN: usize = 64;

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

    /// Constant-time equality of the key bytes.
    pub fn ct_eq(&self, other: &ServerKey) -> bool {
        self.0.len() == other.0.len() && bool::from(self.0.ct_eq(&other.0))
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

    /// From 64 hex digits (either case), as buses and Redis keys carry it; `None` otherwise.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(TokenDigest(out))
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
    /// The seed of a token Tessera did not derive — a durin token brought in by `tessera import
    /// durin` (a *legacy* token): all zeros, which no random seed is but with probability 2^-256.
    /// Such a token cannot be re-derived (its text exists only in its holder's hands), so the seed
    /// is what marks it: every store keeps it as it keeps any seed, and a listing filters on it.
    pub const NONE: TokenSeed = TokenSeed([0; 32]);
}

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

/// A newly issued token: the secret for the client, the seed, digest and key id for the store.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// Hand this to the client.
    pub token: TokenSecret,
    /// Store this.
    pub seed: TokenSeed,
    /// Store and index this.
    pub digest: TokenDigest,
    /// The key it was made with (the ring's current key): store this, to re-derive it.
    pub key_id: KeyId,
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
    /// The token names a key the ring does not hold (retired, or not yet loaded here).
    #[error("the token names a server key this server does not have")]
    UnknownKey(KeyId),
}

/// Why a token format was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Length too small for 256 random bits.
    #[error(
        "token_character_length {length} is too small: with the prefix '{prefix}' ({prefix_len} characters), the \
         {KEY_ID_LEN}-character key id and the {CHECKSUM_LEN}-character checksum it leaves {body} random characters, \
         and 256 random bits need {MIN_BODY_LEN}; the minimum is {min}"
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

/// One key's two derived MACs: one derives token bodies from seeds, one digests tokens.
#[derive(Clone)]
struct KeyMacs {
    derive: HmacSha256,
    digest: HmacSha256,
}

impl KeyMacs {
    fn new(key: &ServerKey) -> Self {
        Self { derive: key.subkey(b"tessera/token-derive/v1"), digest: key.subkey(b"tessera/token-digest/v1") }
    }
}

/// Issues, re-derives, checks and digests tokens with the keys of a [`KeyRing`]. Cheap to clone.
#[derive(Clone)]
pub struct TokenCodec {
    prefix: String,
    length: usize,
    current: KeyId,
    /// Indexed by the key id's position in the base62 alphabet: one array index per lookup.
    keys: std::sync::Arc<[Option<KeyMacs>]>,
    ids: String,
}

impl fmt::Debug for TokenCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCodec")
            .field("prefix", &self.prefix)
            .field("length", &self.length)
            .field("key_ids", &self.ids)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl TokenCodec {
    /// A codec for tokens of `length` characters starting with `prefix`, keyed by `keys`: a
    /// [`KeyRing`], or a single [`ServerKey`] (a ring of one, id `0`).
    pub fn new(keys: impl Into<KeyRing>, prefix: &str, length: usize) -> Result<Self, FormatError> {
        if prefix.len() > MAX_PREFIX_LEN || !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(FormatError::BadPrefix(prefix.to_string()));
        }
        let min = Self::min_length(prefix);
        if length < min {
            return Err(FormatError::TooShort {
                length,
                prefix: prefix.to_string(),
                prefix_len: prefix.len(),
                body: length as i64 - prefix.len() as i64 - (KEY_ID_LEN + CHECKSUM_LEN) as i64,
                min,
            });
        }
        if length > MAX_TOKEN_LEN {
            return Err(FormatError::TooLong(length));
        }
        let ring = keys.into();
        let mut keys: Vec<Option<KeyMacs>> = vec![None; ALPHABET.len()];
        for (id, key) in ring.keys() {
            keys[id.index()] = Some(KeyMacs::new(key));
        }
        Ok(Self {
            prefix: prefix.to_string(),
            length,
            current: ring.current(),
            keys: keys.into(),
            ids: ring.ids().map(KeyId::as_char).collect(),
        })
    }

    /// This codec's format (prefix, length) with the keys of `ring`: what a server uses after
    /// the ring changed.
    pub fn with_keys(&self, ring: impl Into<KeyRing>) -> Self {
        // The format was checked when `self` was made.
        Self::new(ring, &self.prefix, self.length).unwrap_or_else(|_| unreachable!("the format was already checked"))
    }

    /// The smallest `token_character_length` that works with `prefix`.
    pub fn min_length(prefix: &str) -> usize {
        prefix.len() + KEY_ID_LEN + MIN_BODY_LEN + CHECKSUM_LEN
    }

    /// The configured prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The configured length.
    pub fn length(&self) -> usize {
        self.length
    }

    /// The id of the key new tokens are made with.
    pub fn current_key(&self) -> KeyId {
        self.current
    }

    /// Whether the ring holds the key `id`.
    pub fn has_key(&self, id: KeyId) -> bool {
        self.macs(id).is_some()
    }

    fn macs(&self, id: KeyId) -> Option<&KeyMacs> {
        self.keys.get(id.index()).and_then(Option::as_ref)
    }

    fn current_macs(&self) -> &KeyMacs {
        // `new` put the current key in the table.
        self.macs(self.current).unwrap_or_else(|| unreachable!("the current key is in the table"))
    }

    /// Issues a new token from a fresh 256-bit random seed, with the current key.
    pub fn issue(&self) -> IssuedToken {
        let seed = TokenSeed(random_bytes::<32>());
        let macs = self.current_macs();
        let token = self.derive_with(macs, Some(self.current), &seed);
        let digest = digest(macs, token.expose());
        IssuedToken { token, seed, digest, key_id: self.current }
    }

    /// Re-derives the token issued from `seed` with the key `key`: `None` when the ring no longer
    /// holds that key. (A token issued before tokens carried a key id is re-derived by
    /// [`TokenCodec::rederive`], which knows its digest.)
    pub fn derive(&self, key: KeyId, seed: &TokenSeed) -> Option<TokenSecret> {
        Some(self.derive_with(self.macs(key)?, Some(key), seed))
    }

    /// The stored token (key id, seed, digest) as its owner holds it: re-derived with its key, in
    /// the format it was issued in, and checked against its digest (constant-time). `None` when the
    /// ring no longer holds its key, or when this codec makes another token from it (the prefix,
    /// length or key changed since): a token that would not authenticate is never handed back.
    pub fn rederive(&self, key: KeyId, seed: &TokenSeed, stored: &TokenDigest) -> Option<TokenSecret> {
        let macs = self.macs(key)?;
        let verifies = |token: &TokenSecret| self.parse(token.expose()).is_ok_and(|digest| digest.ct_eq(stored));
        let current_format = self.derive_with(macs, Some(key), seed);
        if verifies(&current_format) {
            return Some(current_format);
        }
        if key != KeyId::LEGACY {
            return None;
        }
        Some(self.derive_with(macs, None, seed)).filter(verifies)
    }

    /// The token of `seed` under `macs`: with the key id `key`, or in the format without one
    /// (`None`: a body one character longer, the untagged checksum).
    fn derive_with(&self, macs: &KeyMacs, key: Option<KeyId>, seed: &TokenSeed) -> TokenSecret {
        let mut out = String::with_capacity(self.length);
        out.push_str(&self.prefix);
        if let Some(key) = key {
            out.push(key.as_char());
        }
        let end = self.length - CHECKSUM_LEN;
        let mut counter: u32 = 0;
        'fill: loop {
            let mut mac = macs.derive.clone();
            mac.update(&seed.0);
            mac.update(&counter.to_be_bytes());
            for b in mac.finalize().into_bytes() {
                // 248 = 4 × 62: rejecting the top 8 byte values keeps every character equally likely.
                if b < 248 {
                    out.push(ALPHABET[(b % 62) as usize] as char);
                    if out.len() == end {
                        break 'fill;
                    }
                }
            }
            counter += 1;
        }
        let sum = if key.is_some() { checksum(out.as_bytes()) } else { legacy_checksum(out.as_bytes()) };
        out.push_str(&sum);
        TokenSecret(out)
    }

    /// Checks a presented token's format and checksum, then returns its digest (under the key it
    /// names) for lookup. Malformed tokens, and tokens naming a key the ring does not hold, are
    /// rejected here, before any store is asked.
    ///
    /// A token issued before tokens carried a key id is recognised by its checksum (a CRC32 of
    /// its text without the tag) and verified with key `0`. One such token in 2^32 also has a
    /// valid tagged checksum by chance: it is then read as naming a key by its first body
    /// character and is refused; its owner's next login replaces it (see
    /// [`TokenCodec::rederive`]).
    pub fn parse(&self, presented: &str) -> Result<TokenDigest, MalformedToken> {
        let key = self.check(presented)?;
        Ok(self.digest_of(key, presented))
    }

    /// Whether `presented` has durin's token format: 64 lowercase hexadecimal characters
    /// (`binascii.hexlify(os.urandom(32))`, durin's default `TOKEN_CHARACTER_LENGTH`).
    pub fn is_durin_token(presented: &str) -> bool {
        presented.len() == DURIN_TOKEN_LEN && presented.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    /// The keyed digest of a durin token under the server key `key` (`None`: not a durin token,
    /// or a key this codec does not hold). The same digest as a native token's: a store cannot
    /// tell them apart by it, and never holds the token itself.
    pub fn legacy_digest(&self, key: KeyId, presented: &str) -> Option<TokenDigest> {
        if !Self::is_durin_token(presented) {
            return None;
        }
        Some(digest(self.macs(key)?, presented))
    }

    /// The durin token's digest under each key of the ring, the current key first: an imported
    /// token was digested with the key current at its import, which a rotation may since have
    /// demoted.
    pub fn legacy_digests<'a>(&'a self, presented: &'a str) -> impl Iterator<Item = (KeyId, TokenDigest)> + 'a {
        let ids = std::iter::once(self.current).chain(self.ids.chars().filter_map(KeyId::from_char)).enumerate();
        ids.filter(move |(i, id)| *i == 0 || *id != self.current)
            .filter_map(move |(_, id)| self.legacy_digest(id, presented).map(|d| (id, d)))
    }

    /// [`TokenCodec::parse`]'s checks alone — format, checksum, a key the ring holds — without
    /// the digest: the key the token names. For a cache keyed by something cheaper than the
    /// digest; whatever it finds must still be a token that passed these checks.
    pub fn check(&self, presented: &str) -> Result<KeyId, MalformedToken> {
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
        let key = if checksum(payload).as_bytes() == sum {
            KeyId::from_byte(payload[self.prefix.len()]).ok_or(MalformedToken::Alphabet)?
        } else if legacy_checksum(payload).as_bytes() == sum {
            KeyId::LEGACY
        } else {
            return Err(MalformedToken::Checksum);
        };
        match self.macs(key) {
            Some(_) => Ok(key),
            None => Err(MalformedToken::UnknownKey(key)),
        }
    }

    /// The digest of a token that [`TokenCodec::check`] accepted as naming `key`.
    pub fn digest_of(&self, key: KeyId, checked: &str) -> TokenDigest {
        match self.macs(key) {
            Some(macs) => digest(macs, checked),
            // `check` only names keys the ring holds, and a codec's ring never changes.
            None => unreachable!("digest_of is given the key check returned"),
        }
    }
}

fn digest(macs: &KeyMacs, token: &str) -> TokenDigest {
    let mut mac = macs.digest.clone();
    mac.update(token.as_bytes());
    TokenDigest(mac.finalize().into_bytes().into())
}

/// A token's checksum: six base62 characters, made without allocating (it is checked on every
/// request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checksum([u8; CHECKSUM_LEN]);

impl Checksum {
    fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::Deref for Checksum {
    type Target = str;

    fn deref(&self) -> &str {
        // Base62 characters only: ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// The checksum of a token with a key id: CRC32 over [`CHECKSUM_TAG`] and the text.
fn checksum(payload: &[u8]) -> Checksum {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(CHECKSUM_TAG);
    hasher.update(payload);
    base62_checksum(hasher.finalize())
}

/// The checksum of a token issued before tokens carried a key id: CRC32 over the text.
fn legacy_checksum(payload: &[u8]) -> Checksum {
    base62_checksum(crc32fast::hash(payload))
}

fn base62_checksum(crc: u32) -> Checksum {
    let mut n = crc as u64;
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    Checksum(out)
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
    fn a_key_ids_index_is_its_position_in_the_alphabet() {
        for (i, b) in ALPHABET.iter().enumerate() {
            let id = KeyId::from_byte(*b).expect("an alphanumeric");
            assert_eq!(id.index(), i, "{}", *b as char);
        }
    }

    #[test]
    fn issued_tokens_have_the_format_and_parse_back() {
        let codec = codec();
        let issued = codec.issue();
        let t = issued.token.expose();
        assert_eq!(t.len(), 64);
        assert!(t.starts_with("tsr_"));
        assert!(t[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(&t[4..5], "0", "a ring of one key has id 0");
        assert_eq!(issued.key_id, KeyId::LEGACY);
        assert_eq!(codec.parse(t), Ok(issued.digest));
        assert_eq!(codec.derive(KeyId::LEGACY, &issued.seed), Some(issued.token.clone()));
        assert_eq!(codec.rederive(KeyId::LEGACY, &issued.seed, &issued.digest), Some(issued.token));
    }

    #[test]
    fn tokens_are_unique_and_use_the_whole_alphabet() {
        let codec = codec();
        let mut seen = HashSet::new();
        let mut chars = HashSet::new();
        for _ in 0..500 {
            let t = codec.issue().token;
            chars.extend(t.expose()[5..58].bytes());
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
        assert_ne!(b.derive(KeyId::LEGACY, &issued.seed), Some(issued.token.clone()));
        assert_ne!(b.parse(issued.token.expose()), Ok(issued.digest));
        assert_eq!(b.rederive(KeyId::LEGACY, &issued.seed, &issued.digest), None);
    }

    #[test]
    fn a_key_round_trips_through_hex_and_bad_keys_are_named() {
        let key = ServerKey::generate();
        let again = ServerKey::from_hex(&key.to_hex()).expect("hex");
        let a = TokenCodec::new(key, "", 64).expect("a");
        let b = TokenCodec::new(again, "", 64).expect("b");
        let issued = a.issue();
        assert_eq!(b.derive(KeyId::LEGACY, &issued.seed), Some(issued.token));
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
        // Prefix + key id + 43 random characters + checksum.
        assert_eq!(TokenCodec::min_length("tsr_"), 54);
        assert!(TokenCodec::new(ServerKey::generate(), "tsr_", 54).is_ok());
        let err = TokenCodec::new(ServerKey::generate(), "tsr_", 53).expect_err("53").to_string();
        assert!(err.contains("token_character_length 53 is too small"), "{err}");
        assert!(err.contains("the 1-character key id"), "{err}");
        assert!(err.contains("it leaves 42 random characters"), "{err}");
        assert!(err.contains("the minimum is 54"), "{err}");
        assert!(TokenCodec::new(ServerKey::generate(), "", 50).is_ok());
        assert!(TokenCodec::new(ServerKey::generate(), "", 49).is_err());
        assert!(TokenCodec::new(ServerKey::generate(), "tsr_", 256).is_err());
        assert!(TokenCodec::new(ServerKey::generate(), "bad prefix", 64).is_err());
        let t = TokenCodec::new(ServerKey::generate(), "", 50).expect("50").issue().token;
        assert_eq!(t.expose().len(), 50);
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let issued = codec().issue();
        let shown = format!("{issued:?}");
        assert!(!shown.contains(issued.token.expose()), "{shown}");
        assert!(shown.contains("redacted"));
    }

    /// A token made by Tessera before tokens carried a key id (the codec of commit 8357ce6, key
    /// and seed below, prefix `tsr_`, length 64), and its digest as stored then.
    const LEGACY_KEY: &str = "3f8a1c9e5b7d2046e1f9a3c58b0d7e2614a9c3f5e7b1d8204c6a9e3f1b5d7c09";
    const LEGACY_TOKEN: &str = "tsr_N59HnvH09AL9daqobRhSUWyK9ZyqDLqRRsm1KmiOFDrOYzvbdhtQYt0QXpT8";
    const LEGACY_DIGEST: &str = "17a682e973d56b2f59e838c9e1fbcfbdb0a2255a43c66e5615ee21d3e626b127";
    /// The same seed and key with no prefix, length 49 (the old minimum).
    const LEGACY_TOKEN_49: &str = "N59HnvH09AL9daqobRhSUWyK9ZyqDLqRRsm1KmiOFDr0R7Tn0";

    fn legacy_seed() -> TokenSeed {
        TokenSeed(std::array::from_fn(|i| (i as u8).wrapping_mul(29).wrapping_add(7)))
    }

    fn unhex(text: &str) -> [u8; 32] {
        std::array::from_fn(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex"))
    }

    fn legacy_key() -> ServerKey {
        ServerKey::from_hex(LEGACY_KEY).expect("key")
    }

    #[test]
    fn tokens_issued_before_key_ids_still_verify_with_key_0() {
        let digest = TokenDigest(unhex(LEGACY_DIGEST));
        // Alone, and in a ring where another key is current.
        let alone = TokenCodec::new(legacy_key(), "tsr_", 64).expect("codec");
        let (rotated, new_id) = KeyRing::from(legacy_key()).rotated().expect("rotate");
        let ring = TokenCodec::new(rotated.clone(), "tsr_", 64).expect("codec");
        for codec in [&alone, &ring] {
            assert_eq!(codec.parse(LEGACY_TOKEN), Ok(digest));
            // Re-derived in the format it was issued in, so a second login hands it back.
            let again = codec.rederive(KeyId::LEGACY, &legacy_seed(), &digest).expect("rederives");
            assert_eq!(again.expose(), LEGACY_TOKEN);
        }
        assert_eq!(ring.issue().token.expose().as_bytes()[4], new_id.as_char() as u8);
        // The old minimum length no longer leaves room: such a deployment must lengthen its
        // tokens, which replaces them at next login (they do not parse).
        assert!(TokenCodec::new(legacy_key(), "", 49).is_err());
        assert_eq!(LEGACY_TOKEN_49.len(), 49);
        // Without key 0, a legacy token names an unknown key.
        let without = TokenCodec::new(rotated.without(KeyId::LEGACY).expect("retire"), "tsr_", 64).expect("codec");
        assert_eq!(without.parse(LEGACY_TOKEN), Err(MalformedToken::UnknownKey(KeyId::LEGACY)));
        assert_eq!(without.rederive(KeyId::LEGACY, &legacy_seed(), &digest), None);
    }

    #[test]
    fn the_checksums_are_domain_separated() {
        let codec = TokenCodec::new(legacy_key(), "tsr_", 64).expect("codec");
        // The legacy token's checksum is the untagged one; the tagged one differs.
        let (payload, sum) = LEGACY_TOKEN.as_bytes().split_at(58);
        assert_eq!(legacy_checksum(payload).as_bytes(), sum);
        assert_ne!(checksum(payload).as_bytes(), sum);
        // A new token carries the tagged checksum; re-checksummed the old way it is refused.
        let issued = codec.issue();
        let t = issued.token.expose();
        let (payload, sum) = t.as_bytes().split_at(58);
        assert_eq!(checksum(payload).as_bytes(), sum);
        assert_ne!(legacy_checksum(payload).as_bytes(), sum);
        let mut untagged = String::from_utf8(payload.to_vec()).expect("utf8");
        untagged.push_str(&legacy_checksum(payload));
        // Read as a legacy token (key 0) it has another digest: it is not the token issued.
        assert_ne!(codec.parse(&untagged), Ok(issued.digest));
        // Over many tokens, the two checksums never agree.
        for _ in 0..2_000 {
            let t = codec.issue().token;
            let (payload, _) = t.expose().as_bytes().split_at(58);
            assert_ne!(checksum(payload), legacy_checksum(payload));
        }
    }

    #[test]
    fn a_ring_verifies_each_token_with_the_key_it_names() {
        let first = KeyRing::from(ServerKey::generate());
        let old = TokenCodec::new(first.clone(), "tsr_", 64).expect("codec");
        let before = old.issue();
        let (ring, id) = first.rotated().expect("rotate");
        assert_eq!(id.as_char(), '1', "the next id after 0");
        let codec = old.with_keys(ring.clone());
        assert_eq!(codec.current_key(), id);
        let after = codec.issue();
        assert_eq!(after.key_id, id);
        assert_eq!(&after.token.expose()[4..5], "1");
        // Both verify, each with its own key.
        assert_eq!(codec.parse(before.token.expose()), Ok(before.digest));
        assert_eq!(codec.parse(after.token.expose()), Ok(after.digest));
        assert_eq!(codec.rederive(KeyId::LEGACY, &before.seed, &before.digest), Some(before.token.clone()));
        assert_eq!(codec.rederive(id, &after.seed, &after.digest), Some(after.token.clone()));
        // The old codec does not know key 1: refused by name, before any lookup.
        assert_eq!(old.parse(after.token.expose()), Err(MalformedToken::UnknownKey(id)));
        // A token whose key id was changed (checksum fixed up) names another key: another digest.
        let mut forged = before.token.expose()[..58].to_string();
        forged.replace_range(4..5, "1");
        forged.push_str(&checksum(forged.as_bytes()));
        assert!(codec.parse(&forged).is_ok_and(|d| d != before.digest));
        // An id no key has: refused without a digest.
        let mut unknown = after.token.expose()[..58].to_string();
        unknown.replace_range(4..5, "Z");
        unknown.push_str(&checksum(unknown.as_bytes()));
        assert_eq!(codec.parse(&unknown), Err(MalformedToken::UnknownKey(KeyId::from_char('Z').expect("id"))));
        // Retired: the old key's tokens stop verifying; the new one's keep working.
        let retired = codec.with_keys(ring.without(KeyId::LEGACY).expect("retire"));
        assert_eq!(retired.parse(before.token.expose()), Err(MalformedToken::UnknownKey(KeyId::LEGACY)));
        assert_eq!(retired.parse(after.token.expose()), Ok(after.digest));
        assert_eq!(retired.derive(KeyId::LEGACY, &before.seed), None);
    }

    #[test]
    fn rings_are_checked_and_rotate_through_free_ids() {
        let k = ServerKey::generate;
        let id = |c| KeyId::from_char(c).expect("id");
        assert_eq!(KeyRing::new(vec![]).err(), Some(RingError::Empty));
        assert_eq!(KeyRing::new(vec![(id('a'), k()), (id('a'), k())]).err(), Some(RingError::Duplicate(id('a'))));
        assert!("ab".parse::<KeyId>().is_err());
        assert!("-".parse::<KeyId>().is_err());
        assert!("".parse::<KeyId>().is_err());
        assert_eq!("z".parse::<KeyId>(), Ok(id('z')));
        let ring = KeyRing::new(vec![(id('z'), k()), (id('0'), k())]).expect("ring");
        // After z comes 0 (taken), then 1.
        let (rotated, next) = ring.rotated().expect("rotate");
        assert_eq!(next, id('1'));
        assert_eq!(rotated.ids().map(KeyId::as_char).collect::<String>(), "1z0");
        assert_eq!(rotated.without(id('1')).err(), Some(RingError::Current(id('1'))));
        assert_eq!(rotated.without(id('q')).err(), Some(RingError::Unknown(id('q'))));
        assert!(rotated.same_as(&rotated.clone()));
        assert!(!rotated.same_as(&ring));
        let mut full = KeyRing::from(k());
        for _ in 1..62 {
            full = full.rotated().expect("rotate").0;
        }
        assert_eq!(full.rotated().err(), Some(RingError::Full));
        let shown = format!("{rotated:?}");
        assert_eq!(shown, "KeyRing(ids: \"1z0\", current: 1)");
        assert!(!format!("{:?}", TokenCodec::new(rotated, "", 64).expect("codec")).contains(&k().to_hex()[..8]));
    }
}
