//! The key ring: the server keys tokens may be made with, each named by a one-character key id
//! that every token carries in its public part. The first key is the current one (new tokens are
//! made with it); the others only verify the tokens made with them, until they are retired.

use super::{ALPHABET, ServerKey};
use std::fmt;
use std::str::FromStr;

/// A key's id: one base62 character, written into every token made with the key, so that a
/// presented token names the one key that verifies it. The key every deployment had before key
/// rotation existed is [`KeyId::LEGACY`] (`0`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(u8);

impl KeyId {
    /// `0`: the key of a ring of one (a single `secret_key`, a key file holding one bare key), and
    /// the key of every token issued before tokens carried a key id.
    pub const LEGACY: KeyId = KeyId(b'0');

    /// The id written as `c`; `None` unless `c` is base62 (`0-9A-Za-z`).
    pub fn from_char(c: char) -> Option<KeyId> {
        (c.is_ascii_alphanumeric()).then_some(KeyId(c as u8))
    }

    /// The id as it appears in tokens and key files.
    pub fn as_char(self) -> char {
        self.0 as char
    }

    /// Its position in the base62 alphabet (0..62), by arithmetic rather than a search of the
    /// alphabet: every token's check asks it.
    pub(super) fn index(self) -> usize {
        let b = self.0;
        match b {
            b'0'..=b'9' => usize::from(b - b'0'),
            b'A'..=b'Z' => usize::from(b - b'A') + 10,
            b'a'..=b'z' => usize::from(b - b'a') + 36,
            // Not made by `from_byte`, which takes alphanumerics only.
            _ => 0,
        }
    }

    pub(super) fn from_byte(b: u8) -> Option<KeyId> {
        b.is_ascii_alphanumeric().then_some(KeyId(b))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_char())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.as_char())
    }
}

impl FromStr for KeyId {
    type Err = RingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => KeyId::from_char(c).ok_or_else(|| RingError::BadId(s.to_string())),
            _ => Err(RingError::BadId(s.to_string())),
        }
    }
}

/// Why a key ring (or a change to one) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// No key at all.
    #[error("the key ring is empty: it needs at least one key")]
    Empty,
    /// Two keys with one id.
    #[error("the key id '{0}' is used twice")]
    Duplicate(KeyId),
    /// Not one base62 character.
    #[error("'{0}' is not a key id: a key id is one character, 0-9, A-Z or a-z")]
    BadId(String),
    /// The id names no key of the ring.
    #[error("there is no key with id '{0}'")]
    Unknown(KeyId),
    /// Retiring the current key.
    #[error("key '{0}' is the current key: rotate first, then retire it")]
    Current(KeyId),
    /// All 62 ids are taken.
    #[error("every key id is in use (62 keys): retire old keys before rotating")]
    Full,
}

/// The server keys, ordered: the first is current (new tokens are made with it), the others
/// verify the tokens made with them. Cheap to clone; its `Debug` shows the ids, never a key.
///
/// ```
/// use tessera_core::token::{KeyId, KeyRing};
/// use tessera_core::ServerKey;
///
/// let ring = KeyRing::from(ServerKey::generate()); // one key, id 0
/// assert_eq!(ring.current(), KeyId::LEGACY);
/// let (rotated, new_id) = ring.rotated().unwrap();
/// assert_eq!(rotated.current(), new_id);
/// assert!(rotated.get(KeyId::LEGACY).is_some()); // the old key still verifies
/// let retired = rotated.without(KeyId::LEGACY).unwrap();
/// assert_eq!(retired.ids().collect::<Vec<_>>(), vec![new_id]);
/// ```
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<(KeyId, ServerKey)>,
}

impl KeyRing {
    /// A ring of these keys, the first current; refused when empty or when an id repeats.
    pub fn new(keys: Vec<(KeyId, ServerKey)>) -> Result<Self, RingError> {
        if keys.is_empty() {
            return Err(RingError::Empty);
        }
        for (i, (id, _)) in keys.iter().enumerate() {
            if keys[..i].iter().any(|(other, _)| other == id) {
                return Err(RingError::Duplicate(*id));
            }
        }
        Ok(Self { keys })
    }

    /// The id of the current key.
    pub fn current(&self) -> KeyId {
        self.keys[0].0
    }

    /// The key with this id.
    pub fn get(&self, id: KeyId) -> Option<&ServerKey> {
        self.keys.iter().find(|(k, _)| *k == id).map(|(_, key)| key)
    }

    /// Every id, the current one first.
    pub fn ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.keys.iter().map(|(id, _)| *id)
    }

    /// Every key with its id, the current one first (to write a key file).
    pub fn keys(&self) -> &[(KeyId, ServerKey)] {
        &self.keys
    }

    /// This ring with a fresh random key as current, under the next free id (after the current
    /// one, in base62 order), the old keys kept to verify. Returns the new id.
    pub fn rotated(&self) -> Result<(Self, KeyId), RingError> {
        let start = self.current().index();
        let id = (1..=ALPHABET.len())
            .map(|step| KeyId(ALPHABET[(start + step) % ALPHABET.len()]))
            .find(|id| self.get(*id).is_none())
            .ok_or(RingError::Full)?;
        let mut keys = vec![(id, ServerKey::generate())];
        keys.extend(self.keys.iter().cloned());
        Ok((Self { keys }, id))
    }

    /// This ring without the key `id`; the current key cannot go.
    pub fn without(&self, id: KeyId) -> Result<Self, RingError> {
        if self.get(id).is_none() {
            return Err(RingError::Unknown(id));
        }
        if id == self.current() {
            return Err(RingError::Current(id));
        }
        Ok(Self { keys: self.keys.iter().filter(|(k, _)| *k != id).cloned().collect() })
    }

    /// Whether both rings hold the same ids and keys in the same order.
    pub fn same_as(&self, other: &KeyRing) -> bool {
        self.keys.len() == other.keys.len()
            && self.keys.iter().zip(&other.keys).all(|((a, ka), (b, kb))| a == b && ka.ct_eq(kb))
    }
}

impl From<ServerKey> for KeyRing {
    /// A ring of one key, with id [`KeyId::LEGACY`].
    fn from(key: ServerKey) -> Self {
        Self { keys: vec![(KeyId::LEGACY, key)] }
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: String = self.ids().map(KeyId::as_char).collect();
        write!(f, "KeyRing(ids: {ids:?}, current: {})", self.current())
    }
}
