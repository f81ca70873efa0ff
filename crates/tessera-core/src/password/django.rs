//! Django's password hash formats, for users imported from a Django project (`tessera import
//! durin`): verified as Django's hashers verify them, so an imported user keeps their password,
//! then re-hashed to Argon2id on their first successful login.
//!
//! Every format names its own cost (iterations, memory, rounds); the cost is bounded
//! ([`DjangoHash::parse`] refuses more), because verifying runs in the login path: a database that
//! asked for 2^31 iterations would otherwise turn each login into minutes of CPU. Django's
//! defaults are far below the bounds. Comparisons are constant-time.
//!
//! Formats that store a password weakly (`md5`, `unsalted_md5`, `unsalted_sha1`, `sha1`, `crypt`)
//! are refused: importing them would carry a crackable hash into Tessera. Their users are imported
//! with a "must reset" marker instead of a hash ([`must_reset_marker`]), which never verifies.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The most PBKDF2 iterations accepted (Django 5.2's default is 1,000,000).
pub const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
/// The most memory an Argon2 or scrypt hash may ask for, in KiB (Django's Argon2 default is
/// 102,400 KiB; its scrypt default 16 MiB).
pub const MAX_MEMORY_KIB: u64 = 256 * 1024;
/// The most Argon2 passes or scrypt parallelism accepted.
pub const MAX_PASSES: u32 = 16;
/// The highest bcrypt cost accepted (Django's default is 12; each step doubles the work).
pub const MAX_BCRYPT_COST: u32 = 16;

/// The prefix of a stored hash that is no hash: the user must have their password reset (set by
/// an administrator) before they can log in. What follows it names the refused format.
pub const MUST_RESET_PREFIX: &str = "!must-reset:";

/// The stored value for a user whose Django hash was refused (`algorithm`: what it was).
pub fn must_reset_marker(algorithm: &str) -> String {
    let name: String = algorithm.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(32).collect();
    format!("{MUST_RESET_PREFIX}{name}")
}

/// Whether a stored hash is the "must reset" marker.
pub fn is_must_reset(stored: &str) -> bool {
    stored.starts_with(MUST_RESET_PREFIX)
}

/// A Django password hash Tessera can verify, parsed.
#[derive(Clone, PartialEq, Eq)]
pub enum DjangoHash {
    /// `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>` (Django's default hasher).
    Pbkdf2Sha256 {
        /// Iterations.
        iterations: u32,
        /// The salt, as text (Django uses its UTF-8 bytes).
        salt: String,
        /// The derived key.
        hash: Vec<u8>,
    },
    /// `pbkdf2_sha1$<iterations>$<salt>$<base64 hash>`.
    Pbkdf2Sha1 {
        /// Iterations.
        iterations: u32,
        /// The salt.
        salt: String,
        /// The derived key.
        hash: Vec<u8>,
    },
    /// `argon2$<PHC string without its leading $>` (argon2-cffi's encoding).
    Argon2 {
        /// The PHC string, with its leading `$`.
        phc: String,
    },
    /// `bcrypt_sha256$<bcrypt hash>`: bcrypt over the hex SHA-256 of the password.
    BcryptSha256 {
        /// The modular-crypt bcrypt hash (`$2b$12$…`).
        bcrypt: String,
    },
    /// `bcrypt$<bcrypt hash>`: bcrypt over the password itself (at most 72 bytes).
    Bcrypt {
        /// The modular-crypt bcrypt hash.
        bcrypt: String,
    },
    /// `scrypt$<n>$<salt>$<r>$<p>$<base64 hash>` (Django 4.0+).
    Scrypt {
        /// log2 of the work factor n.
        log_n: u8,
        /// The salt.
        salt: String,
        /// Block size.
        r: u32,
        /// Parallelism.
        p: u32,
        /// The derived key.
        hash: Vec<u8>,
    },
}

impl std::fmt::Debug for DjangoHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DjangoHash({}, [redacted])", self.algorithm())
    }
}

/// Why a Django hash cannot be imported as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DjangoHashError {
    /// A format that stores passwords weakly; the user must reset their password.
    #[error("the '{0}' hasher stores passwords weakly")]
    Weak(String),
    /// A format Tessera does not know.
    #[error("unknown password hash format '{0}'")]
    Unknown(String),
    /// A known format whose fields do not parse.
    #[error("malformed {0} hash: {1}")]
    Malformed(&'static str, &'static str),
    /// A known format that asks for more work than Tessera does per login.
    #[error("the {0} hash asks for more work than Tessera allows per login ({1})")]
    TooCostly(&'static str, String),
    /// Django's unusable password (`!…`: `set_unusable_password`): nobody can log in with it.
    #[error("the user has no usable password")]
    Unusable,
}

impl DjangoHash {
    /// Parses a hash as Django's `auth_user.password` holds it.
    pub fn parse(stored: &str) -> Result<Self, DjangoHashError> {
        if stored.starts_with('!') || stored.is_empty() {
            return Err(DjangoHashError::Unusable);
        }
        // Django's `identify_hasher`: an old unsalted MD5 is 32 hex digits; `md5$$…` is the same.
        if stored.len() == 32 && stored.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DjangoHashError::Weak("unsalted_md5".into()));
        }
        let Some((algorithm, rest)) = stored.split_once('$') else {
            return Err(DjangoHashError::Unknown(printable(stored)));
        };
        match algorithm {
            "pbkdf2_sha256" | "pbkdf2_sha1" => {
                let name = if algorithm == "pbkdf2_sha256" { "pbkdf2_sha256" } else { "pbkdf2_sha1" };
                let mut parts = rest.splitn(3, '$');
                let (Some(iterations), Some(salt), Some(hash)) = (parts.next(), parts.next(), parts.next()) else {
                    return Err(DjangoHashError::Malformed(name, "expected iterations$salt$hash"));
                };
                let iterations: u32 = iterations
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(DjangoHashError::Malformed(name, "the iteration count is not a positive number"))?;
                if iterations > MAX_PBKDF2_ITERATIONS {
                    return Err(DjangoHashError::TooCostly(name, format!("{iterations} iterations")));
                }
                if salt.is_empty() || salt.contains('$') {
                    return Err(DjangoHashError::Malformed(name, "the salt is empty or holds '$'"));
                }
                let hash =
                    STANDARD.decode(hash).map_err(|_| DjangoHashError::Malformed(name, "the hash is not base64"))?;
                let want = if name == "pbkdf2_sha256" { 32 } else { 20 };
                if hash.len() != want {
                    return Err(DjangoHashError::Malformed(name, "the hash has the wrong length"));
                }
                let salt = salt.to_string();
                Ok(if name == "pbkdf2_sha256" {
                    DjangoHash::Pbkdf2Sha256 { iterations, salt, hash }
                } else {
                    DjangoHash::Pbkdf2Sha1 { iterations, salt, hash }
                })
            }
            "argon2" => {
                let phc = format!("${rest}");
                let parsed = argon2::PasswordHash::new(&phc)
                    .map_err(|_| DjangoHashError::Malformed("argon2", "not a PHC string"))?;
                let params = argon2::Params::try_from(&parsed)
                    .map_err(|_| DjangoHashError::Malformed("argon2", "its parameters do not parse"))?;
                if argon2::Algorithm::new(parsed.algorithm.as_str()).is_err() || parsed.hash.is_none() {
                    return Err(DjangoHashError::Malformed("argon2", "not an Argon2 hash"));
                }
                if u64::from(params.m_cost()) > MAX_MEMORY_KIB
                    || params.t_cost() > MAX_PASSES
                    || params.p_cost() > MAX_PASSES
                {
                    let cost = format!("m={}, t={}, p={}", params.m_cost(), params.t_cost(), params.p_cost());
                    return Err(DjangoHashError::TooCostly("argon2", cost));
                }
                Ok(DjangoHash::Argon2 { phc })
            }
            "bcrypt_sha256" | "bcrypt" => {
                let name = if algorithm == "bcrypt" { "bcrypt" } else { "bcrypt_sha256" };
                let parsed = Bcrypt::parse(rest).ok_or(DjangoHashError::Malformed(name, "not a $2b$ bcrypt hash"))?;
                if parsed.cost > MAX_BCRYPT_COST {
                    return Err(DjangoHashError::TooCostly(name, format!("cost {}", parsed.cost)));
                }
                let bcrypt = rest.to_string();
                Ok(if name == "bcrypt" { DjangoHash::Bcrypt { bcrypt } } else { DjangoHash::BcryptSha256 { bcrypt } })
            }
            "scrypt" => {
                let fields: Vec<&str> = rest.split('$').collect();
                let [n, salt, r, p, hash] = fields[..] else {
                    return Err(DjangoHashError::Malformed("scrypt", "expected n$salt$r$p$hash"));
                };
                let bad = |what| DjangoHashError::Malformed("scrypt", what);
                let n: u64 = n.parse().map_err(|_| bad("n is not a number"))?;
                let r: u32 = r.parse().map_err(|_| bad("r is not a number"))?;
                let p: u32 = p.parse().map_err(|_| bad("p is not a number"))?;
                if !n.is_power_of_two() || n < 2 || r == 0 || p == 0 {
                    return Err(bad("n must be a power of two, r and p positive"));
                }
                // scrypt's memory: 128 * r * n bytes.
                let kib = (128 * u64::from(r)).saturating_mul(n) / 1024;
                if kib > MAX_MEMORY_KIB || p > MAX_PASSES {
                    return Err(DjangoHashError::TooCostly("scrypt", format!("n={n}, r={r}, p={p}")));
                }
                if salt.is_empty() {
                    return Err(bad("the salt is empty"));
                }
                let hash = STANDARD.decode(hash).map_err(|_| bad("the hash is not base64"))?;
                if !(10..=64).contains(&hash.len()) {
                    return Err(bad("the hash has the wrong length"));
                }
                Ok(DjangoHash::Scrypt { log_n: n.trailing_zeros() as u8, salt: salt.to_string(), r, p, hash })
            }
            "md5" | "sha1" | "unsalted_md5" | "unsalted_sha1" | "crypt" => {
                Err(DjangoHashError::Weak(if rest.starts_with('$') && algorithm != "crypt" {
                    format!("unsalted_{algorithm}")
                } else {
                    algorithm.to_string()
                }))
            }
            other => Err(DjangoHashError::Unknown(printable(other))),
        }
    }

    /// Django's name for the format (its hasher's `algorithm`).
    pub fn algorithm(&self) -> &'static str {
        match self {
            DjangoHash::Pbkdf2Sha256 { .. } => "pbkdf2_sha256",
            DjangoHash::Pbkdf2Sha1 { .. } => "pbkdf2_sha1",
            DjangoHash::Argon2 { .. } => "argon2",
            DjangoHash::BcryptSha256 { .. } => "bcrypt_sha256",
            DjangoHash::Bcrypt { .. } => "bcrypt",
            DjangoHash::Scrypt { .. } => "scrypt",
        }
    }

    /// Whether `password` is the one this hash was made from, as Django's `check_password`
    /// decides; the comparison is constant-time.
    pub fn verify(&self, password: &str) -> bool {
        let password = password.as_bytes();
        match self {
            DjangoHash::Pbkdf2Sha256 { iterations, salt, hash } => {
                let out = pbkdf2::<8>(&pbkdf2::SHA256, password, salt.as_bytes(), *iterations);
                bool::from(out.as_slice().ct_eq(hash.as_slice()))
            }
            DjangoHash::Pbkdf2Sha1 { iterations, salt, hash } => {
                let out = pbkdf2::<5>(&pbkdf2::SHA1, password, salt.as_bytes(), *iterations);
                bool::from(out.as_slice().ct_eq(hash.as_slice()))
            }
            DjangoHash::Argon2 { phc } => {
                use argon2::PasswordVerifier;
                let Ok(parsed) = argon2::PasswordHash::new(phc) else { return false };
                // The algorithm, version and parameters come from the hash (argon2-cffi may have
                // written argon2i or argon2id); the output comparison is constant-time.
                argon2::Argon2::default().verify_password(password, &parsed).is_ok()
            }
            DjangoHash::BcryptSha256 { bcrypt } => {
                // Django: bcrypt over the hex digest of SHA-256, so long passwords are not cut at 72 bytes.
                let digest = Sha256::digest(password);
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                Bcrypt::parse(bcrypt).is_some_and(|b| b.verify(hex.as_bytes()))
            }
            DjangoHash::Bcrypt { bcrypt } => {
                // bcrypt reads at most 72 bytes; the Python bcrypt Django calls (5.0) refuses longer
                // passwords rather than cut them, so a longer one never verifies.
                password.len() <= 72 && Bcrypt::parse(bcrypt).is_some_and(|b| b.verify(password))
            }
            DjangoHash::Scrypt { log_n, salt, r, p, hash } => {
                let Ok(params) = scrypt::Params::new(*log_n, *r, *p, hash.len()) else { return false };
                let mut out = vec![0u8; hash.len()];
                if scrypt::scrypt(password, salt.as_bytes(), &params, &mut out).is_err() {
                    return false;
                }
                bool::from(out.ct_eq(hash.as_slice()))
            }
        }
    }
}

/// PBKDF2-HMAC with one block of output (Django's `dklen` is the digest size), over the hash's
/// compression function.
///
/// Not the `pbkdf2` crate: its loop is generic, so it is compiled with the calling crate's
/// optimisation level, and unoptimised (every debug build and test) a million iterations took
/// seconds. Here each iteration is two calls of the non-generic, optimised compression function on
/// precomputed HMAC pad states — as OpenSSL does for Django.
fn pbkdf2<const W: usize>(hash: &pbkdf2::Hash<W>, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let len = W * 4;
    // HMAC's key: a password longer than a block is hashed first.
    let mut key = [0u8; 64];
    if password.len() > 64 {
        key[..len].copy_from_slice(&(hash.digest)(&[password]));
    } else {
        key[..password.len()].copy_from_slice(password);
    }
    let pad = |byte: u8| {
        let mut block = [0u8; 64];
        for (b, k) in block.iter_mut().zip(key) {
            *b = k ^ byte;
        }
        block
    };
    let (ipad, opad) = (pad(0x36), pad(0x5c));
    let mut inner = hash.iv;
    (hash.compress)(&mut inner, &ipad);
    let mut outer = hash.iv;
    (hash.compress)(&mut outer, &opad);

    // U1 = HMAC(password, salt || INT(1)), with the full hash (the salt may be long).
    let u1 = (hash.digest)(&[&ipad, salt, &1u32.to_be_bytes()]);
    let u = (hash.digest)(&[&opad, &u1]);
    let mut t = u.clone();
    // Later Us hash one short message: one padded block for each of the inner and outer hashes.
    // The loop works on words, with index loops: it runs a million times, unoptimised in debug
    // builds, where every iterator adapter costs.
    let mut block = [0u8; 64];
    block[len] = 0x80;
    block[56..].copy_from_slice(&(((64 + len) as u64) * 8).to_be_bytes());
    let mut words = [0u32; W];
    for i in 0..W {
        words[i] = u32::from_be_bytes([u[4 * i], u[4 * i + 1], u[4 * i + 2], u[4 * i + 3]]);
    }
    let mut acc = words;
    for _ in 1..iterations {
        let mut s = inner;
        for i in 0..W {
            block[4 * i..4 * i + 4].copy_from_slice(&words[i].to_be_bytes());
        }
        (hash.compress)(&mut s, &block);
        words = outer;
        for i in 0..W {
            block[4 * i..4 * i + 4].copy_from_slice(&s[i].to_be_bytes());
        }
        (hash.compress)(&mut words, &block);
        for i in 0..W {
            acc[i] ^= words[i];
        }
    }
    for i in 0..W {
        t[4 * i..4 * i + 4].copy_from_slice(&acc[i].to_be_bytes());
    }
    t
}

mod pbkdf2 {
    use sha2::Digest;
    use sha2::digest::generic_array::GenericArray;

    /// A Merkle–Damgård hash with 64-byte blocks and 32-bit words, as PBKDF2 needs it.
    pub(super) struct Hash<const W: usize> {
        pub iv: [u32; W],
        pub compress: fn(&mut [u32; W], &[u8; 64]),
        pub digest: fn(&[&[u8]]) -> Vec<u8>,
    }

    pub(super) const SHA256: Hash<8> = Hash {
        iv: [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19],
        compress: |state, block| sha2::compress256(state, core::slice::from_ref(GenericArray::from_slice(block))),
        digest: |parts| parts.iter().fold(sha2::Sha256::new(), |h, p| h.chain_update(p)).finalize().to_vec(),
    };

    pub(super) const SHA1: Hash<5> = Hash {
        iv: [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0],
        compress: |state, block| sha1::compress(state, core::slice::from_ref(GenericArray::from_slice(block))),
        digest: |parts| parts.iter().fold(sha1::Sha1::new(), |h, p| h.chain_update(p)).finalize().to_vec(),
    };
}

/// A `$2b$` (or `$2a$`, `$2y$`) bcrypt hash: cost, salt and the 23-byte output.
struct Bcrypt {
    cost: u32,
    salt: [u8; 16],
    hash: Vec<u8>,
}

impl Bcrypt {
    fn parse(text: &str) -> Option<Self> {
        let rest =
            text.strip_prefix("$2b$").or_else(|| text.strip_prefix("$2a$")).or_else(|| text.strip_prefix("$2y$"))?;
        let (cost, body) = rest.split_once('$')?;
        if cost.len() != 2 || body.len() != 53 || !body.is_ascii() {
            return None;
        }
        let cost: u32 = cost.parse().ok().filter(|c| (4..=31).contains(c))?;
        let (salt, hash) = body.split_at(22);
        let salt: [u8; 16] = bcrypt::BASE_64.decode(salt).ok()?.try_into().ok()?;
        let hash = bcrypt::BASE_64.decode(hash).ok().filter(|h| h.len() == 23)?;
        Some(Bcrypt { cost, salt, hash })
    }

    /// bcrypt's key is the password and a NUL, at most 72 bytes.
    fn verify(&self, password: &[u8]) -> bool {
        let mut key = Vec::with_capacity(password.len() + 1);
        key.extend_from_slice(password);
        key.push(0);
        key.truncate(72);
        let out = bcrypt::bcrypt(self.cost, self.salt, &key);
        bool::from(out[..23].ct_eq(&self.hash))
    }
}

/// A hash's algorithm name for an error message: bounded, printable.
fn printable(text: &str) -> String {
    text.chars().take(32).map(|c| if c.is_ascii_graphic() { c } else { '?' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made by Django 5.2 (`make_password("correct horse", hasher=...)`); the live comparison with
    // Django for every hasher is crates/tessera-core/tests/it/django_hashes.rs.
    const PBKDF2: &str = "pbkdf2_sha256$1000000$OgsXzW3YwJhv9oLBApGmzg$ScFV5FNuqE60YTuzuXfql3mtd4vkYfnfVgFo6u//R+I=";

    #[test]
    fn weak_and_unknown_formats_are_refused() {
        for (hash, weak) in [
            ("md5$T7pOczfcl1BPhzAeVc4ZSv$a9515e21efdf07a42f411bddd9c27b1a", "md5"),
            ("md5$$a9515e21efdf07a42f411bddd9c27b1a", "unsalted_md5"),
            ("a9515e21efdf07a42f411bddd9c27b1a", "unsalted_md5"),
            ("sha1$$0123", "unsalted_sha1"),
        ] {
            assert_eq!(DjangoHash::parse(hash), Err(DjangoHashError::Weak(weak.into())), "{hash}");
        }
        assert_eq!(DjangoHash::parse("!vQo8Gi7s4bFHy4eDMwg44b0IOZBq5PZamelaXUbo"), Err(DjangoHashError::Unusable));
        assert!(matches!(DjangoHash::parse("plaintext"), Err(DjangoHashError::Unknown(_))));
        assert!(matches!(DjangoHash::parse("whirlpool$1$2"), Err(DjangoHashError::Unknown(_))));
    }

    #[test]
    fn costs_are_bounded() {
        let huge = "pbkdf2_sha256$4000000000$salt$ScFV5FNuqE60YTuzuXfql3mtd4vkYfnfVgFo6u//R+I=";
        assert!(matches!(DjangoHash::parse(huge), Err(DjangoHashError::TooCostly(..))));
        let scrypt = "scrypt$1048576$salt$64$5$WGa3z0kVyy8DiKWvSjQZHoW8fGvxjYACHY9du9SBdLM=";
        assert!(matches!(DjangoHash::parse(scrypt), Err(DjangoHashError::TooCostly(..))));
        let argon = "argon2$argon2id$v=19$m=4194304,t=2,p=8$cEkxZ2ptTjZzcUIxaWIzemhmMDZvdg$P4JdDMlVhDz5gxGXzAZtJ9j2AC1vjuKXH3BrzoH+h7g";
        assert!(matches!(DjangoHash::parse(argon), Err(DjangoHashError::TooCostly(..))));
        let bcrypt = "bcrypt_sha256$$2b$31$kRWo3F7Er2o6E06r.xmhHuh1HR5SVs/jklymWgrq4X4cjlyzSAutu";
        assert!(matches!(DjangoHash::parse(bcrypt), Err(DjangoHashError::TooCostly(..))));
        for malformed in ["pbkdf2_sha256$x$salt$aGFzaA==", "pbkdf2_sha256$1$salt$not base64", "scrypt$3$s$8$1$aGFzaA=="]
        {
            assert!(matches!(DjangoHash::parse(malformed), Err(DjangoHashError::Malformed(..))), "{malformed}");
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn pbkdf2_matches_the_published_vectors() {
        // RFC 6070 (SHA-1) and RFC 7914 §11 / the common SHA-256 vectors.
        assert_eq!(hex(&pbkdf2(&pbkdf2::SHA1, b"password", b"salt", 1)), "0c60c80f961f0e71f3a9b524af6012062fe037a6");
        assert_eq!(hex(&pbkdf2(&pbkdf2::SHA1, b"password", b"salt", 2)), "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957");
        assert_eq!(
            hex(&pbkdf2(&pbkdf2::SHA256, b"password", b"salt", 4096)),
            "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"
        );
        assert_eq!(
            hex(&pbkdf2(&pbkdf2::SHA256, b"passwd", b"salt", 1)),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
    }

    #[test]
    fn pbkdf2_verifies_and_debug_is_redacted() {
        let hash = DjangoHash::parse(PBKDF2).expect("parses");
        assert!(hash.verify("correct horse"));
        assert!(!hash.verify("correct horsf"));
        assert_eq!(format!("{hash:?}"), "DjangoHash(pbkdf2_sha256, [redacted])");
        assert!(is_must_reset(&must_reset_marker("unsalted_md5")));
        assert!(!is_must_reset(PBKDF2));
    }
}
