//! Argon2id password hashing, with a verification path for unknown users that costs the same as a
//! wrong password (no user enumeration by timing).
//!
//! Users imported from a Django project keep their Django hash ([`django`]) until their first
//! successful login, which re-hashes the password to Argon2id ([`Checked::rehash`]).

pub mod django;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use std::sync::OnceLock;

/// The shortest password accepted when one is set.
pub const PASSWORD_MIN_CHARS: usize = 8;
/// The longest password accepted (hashing is deliberately slow; unbounded input is a DoS lever).
pub const PASSWORD_MAX_BYTES: usize = 1024;

/// Why a password could not be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Too short.
    #[error("the password is too short: it must have at least {PASSWORD_MIN_CHARS} characters")]
    TooShort,
    /// Too long.
    #[error("the password is too long: at most {PASSWORD_MAX_BYTES} bytes")]
    TooLong,
    /// Hashing failed.
    #[error("the password could not be hashed: {0}")]
    Hash(String),
}

/// Hashes a new password with Argon2id (the crate's recommended parameters) and a random salt,
/// after checking its length.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    if password.chars().count() < PASSWORD_MIN_CHARS {
        return Err(PasswordError::TooShort);
    }
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(PasswordError::TooLong);
    }
    hash_unchecked(password)
}

fn hash_unchecked(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Checks `password` against a stored hash: Tessera's Argon2id (PHC), or a Django format an import
/// kept ([`django::DjangoHash`]). A malformed hash, a "must reset" marker or an over-long password is
/// `false`.
pub fn verify_password(hash: &str, password: &str) -> bool {
    if password.len() > PASSWORD_MAX_BYTES {
        return false;
    }
    if hash.starts_with('$') {
        let Ok(parsed) = PasswordHash::new(hash) else {
            return false;
        };
        return Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
    }
    django::DjangoHash::parse(hash).is_ok_and(|h| h.verify(password))
}

/// Whether a stored hash is one Tessera re-hashes on the next successful login: a Django format
/// kept by an import.
pub fn needs_rehash(hash: &str) -> bool {
    !hash.starts_with('$') && django::DjangoHash::parse(hash).is_ok()
}

/// What a login's password check found.
#[derive(Clone, PartialEq, Eq)]
pub struct Checked {
    /// The password is right.
    pub verified: bool,
    /// When it is right and the stored hash is a Django one: the password's Argon2id hash, to
    /// store in its place.
    pub rehash: Option<String>,
}

impl std::fmt::Debug for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checked").field("verified", &self.verified).field("rehash", &self.rehash.is_some()).finish()
    }
}

/// Verifies against the user's hash when there is a user, and against a fixed dummy hash with the
/// same parameters when there is none, so both paths cost one Argon2id evaluation. Unknown users
/// always fail.
pub fn verify_password_or_dummy(hash: Option<&str>, password: &str) -> bool {
    check_password_or_dummy(hash, password).verified
}

/// [`verify_password_or_dummy`], and the Argon2id re-hash of a right password whose stored hash is
/// a Django one. A user who must reset their password (or has none usable) costs what an unknown
/// user costs, and fails.
pub fn check_password_or_dummy(hash: Option<&str>, password: &str) -> Checked {
    let failed = Checked { verified: false, rehash: None };
    match hash {
        Some(hash) if hash.starts_with('$') || needs_rehash(hash) => {
            if !verify_password(hash, password) {
                return failed;
            }
            let rehash = if needs_rehash(hash) { hash_unchecked(password).ok() } else { None };
            Checked { verified: true, rehash }
        }
        _ => {
            static DUMMY: OnceLock<String> = OnceLock::new();
            let dummy = DUMMY.get_or_init(|| hash_unchecked("tessera-dummy-password").unwrap_or_default());
            let _ = verify_password(dummy, password);
            failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_reject() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "wrong horse"));
        assert!(!verify_password("not a hash", "correct horse"));
        assert!(verify_password_or_dummy(Some(&hash), "correct horse"));
        assert!(!verify_password_or_dummy(None, "correct horse"));
        assert_ne!(hash, hash_password("correct horse").expect("hash"), "salted");
    }

    #[test]
    fn length_rules() {
        assert_eq!(hash_password("short"), Err(PasswordError::TooShort));
        assert_eq!(hash_password(&"x".repeat(PASSWORD_MAX_BYTES + 1)), Err(PasswordError::TooLong));
        assert!(!verify_password("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA", &"x".repeat(2000)));
    }

    #[test]
    fn django_hashes_verify_and_are_rehashed_once_right() {
        let django = "pbkdf2_sha256$1000000$OgsXzW3YwJhv9oLBApGmzg$ScFV5FNuqE60YTuzuXfql3mtd4vkYfnfVgFo6u//R+I=";
        assert!(needs_rehash(django));
        let right = check_password_or_dummy(Some(django), "correct horse");
        let rehash = right.rehash.expect("a Django hash is re-hashed");
        assert!(right.verified && rehash.starts_with("$argon2id$") && verify_password(&rehash, "correct horse"));
        assert_eq!(check_password_or_dummy(Some(django), "wrong horse"), Checked { verified: false, rehash: None });
        let native = hash_password("correct horse").expect("hash");
        assert!(!needs_rehash(&native));
        assert_eq!(check_password_or_dummy(Some(&native), "correct horse"), Checked { verified: true, rehash: None });
        let reset = django::must_reset_marker("md5");
        assert!(!needs_rehash(&reset));
        assert!(!check_password_or_dummy(Some(&reset), "").verified);
        assert!(!check_password_or_dummy(Some("md5$$a9515e21efdf07a42f411bddd9c27b1a"), "correct horse").verified);
    }
}
