//! Argon2id password hashing, with a verification path for unknown users that costs the same as a
//! wrong password (no user enumeration by timing).

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

/// Checks `password` against a stored PHC hash. A malformed hash or an over-long password is `false`.
pub fn verify_password(hash: &str, password: &str) -> bool {
    if password.len() > PASSWORD_MAX_BYTES {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
}

/// Verifies against the user's hash when there is a user, and against a fixed dummy hash with the
/// same parameters when there is none, so both paths cost one Argon2id evaluation. Unknown users
/// always fail.
pub fn verify_password_or_dummy(hash: Option<&str>, password: &str) -> bool {
    match hash {
        Some(hash) => verify_password(hash, password),
        None => {
            static DUMMY: OnceLock<String> = OnceLock::new();
            let dummy = DUMMY.get_or_init(|| hash_unchecked("tessera-dummy-password").unwrap_or_default());
            let _ = verify_password(dummy, password);
            false
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
}
