//! Signed identity for upstreams: the forward-auth 200 can carry `X-Tessera-Identity`, a JWT
//! (RFC 7519) signed with Ed25519 (`EdDSA`, RFC 8037) that says who the request is, for whom
//! (`aud`, from the route rule) and until when (`exp`, at most a minute). An upstream in any
//! language verifies it with a standard JWT library against the public keys Tessera publishes at
//! `/.well-known/jwks.json` — so a request that reached the upstream around the proxy, or with an
//! identity header of its own making, is told apart from one that came through Tessera.
//!
//! Keys are given to this module as 32-byte Ed25519 seeds; reading and writing them (a file in the
//! data directory, or configuration) is the binary's business. The key id (`kid`) is the key's
//! RFC 7638 thumbprint, so it needs no storing and two keys never share one. Rollover: a new
//! current key signs, the previous ones stay published for verification ([`IdentitySigner::set`]).
//!
//! ```
//! use tessera_axum::forward::identity::{IdentityKeys, IdentitySigner};
//! let signer = IdentitySigner::new(IdentityKeys::new(vec![[7u8; 32]]).expect("keys"));
//! let jwks = signer.jwks();
//! assert_eq!(jwks["keys"][0]["kty"], "OKP");
//! assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
//! ```

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// The longest lifetime an identity token may have: it proves one request, not a session.
pub const MAX_TTL: Duration = Duration::from_secs(60);
/// The most keys a set may hold (the current one and those kept for verification).
pub const MAX_KEYS: usize = 8;

/// Why a key set is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityKeyError {
    /// No key at all.
    #[error("the identity key set is empty")]
    Empty,
    /// More than [`MAX_KEYS`].
    #[error("at most {MAX_KEYS} identity keys may be kept")]
    TooMany,
    /// The same key twice.
    #[error("identity key {0} is given twice")]
    Duplicate(String),
}

/// One Ed25519 key: the signing half and what is published of it.
struct IdentityKey {
    kid: String,
    signing: SigningKey,
    /// `base64url({"alg":"EdDSA","typ":"JWT","kid":…})`, made once.
    header: String,
}

impl IdentityKey {
    fn new(seed: &[u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(seed);
        let kid = thumbprint(&signing.verifying_key());
        let header = B64.encode(json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}).to_string());
        IdentityKey { kid, signing, header }
    }

    fn jwk(&self) -> Value {
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": B64.encode(self.signing.verifying_key().as_bytes()),
            "kid": self.kid,
            "use": "sig",
            "alg": "EdDSA",
        })
    }
}

/// RFC 7638: base64url(SHA-256 of the required members in lexicographic order, no spaces).
fn thumbprint(key: &VerifyingKey) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, B64.encode(key.as_bytes()));
    B64.encode(Sha256::digest(canonical.as_bytes()))
}

/// The keys of one moment: the first signs, all are published. Never shows a private key in
/// `Debug`.
pub struct IdentityKeys {
    keys: Vec<IdentityKey>,
    /// The JWKS document, made once per key set.
    jwks: Value,
}

impl std::fmt::Debug for IdentityKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityKeys").field("kids", &self.kids().collect::<Vec<_>>()).finish()
    }
}

impl IdentityKeys {
    /// A key set from Ed25519 seeds, the current (signing) key first.
    pub fn new(seeds: Vec<[u8; 32]>) -> Result<Self, IdentityKeyError> {
        if seeds.is_empty() {
            return Err(IdentityKeyError::Empty);
        }
        if seeds.len() > MAX_KEYS {
            return Err(IdentityKeyError::TooMany);
        }
        let mut keys: Vec<IdentityKey> = Vec::with_capacity(seeds.len());
        for seed in &seeds {
            let key = IdentityKey::new(seed);
            if keys.iter().any(|k| k.kid == key.kid) {
                return Err(IdentityKeyError::Duplicate(key.kid));
            }
            keys.push(key);
        }
        let jwks = json!({"keys": keys.iter().map(IdentityKey::jwk).collect::<Vec<_>>()});
        Ok(IdentityKeys { keys, jwks })
    }

    /// The key ids, the current first.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.kid.as_str())
    }

    /// The current key's id.
    pub fn current_kid(&self) -> &str {
        &self.keys[0].kid
    }
}

/// A fresh random Ed25519 seed from the operating system.
pub fn generate_seed() -> Result<[u8; 32], getrandom::Error> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed)?;
    Ok(seed)
}

/// The key set in force, swappable while the server runs (a rotation read from a file). Cheap to
/// clone; clones share the keys. Empty until given keys: an empty signer signs nothing, and
/// forward-auth answers 503 rather than pass a request without the identity it promised.
///
/// Signing is the costliest step of an allowed forward-auth request (an Ed25519 signature and the
/// JSON around it; `bench/forward-auth` measured nginx's throughput falling from 0.57× to 0.33× of
/// plain proxying when every answer was signed; about 0.6× either way with reuse), so a token is
/// reused for the same token id, audience and key for [`REUSE`] seconds (a quarter of the lifetime when that is shorter): the
/// decision itself still runs on every request, so a revoked token gets no reused identity. The
/// cache is bounded ([`CACHE_CAP`] entries; full, it is emptied).
#[derive(Clone, Default)]
pub struct IdentitySigner {
    keys: Arc<RwLock<Option<Arc<IdentityKeys>>>>,
    recent: Arc<Mutex<HashMap<(i64, String), Recent>>>,
}

/// How long a signed token is handed out again, at most (seconds).
pub const REUSE: i64 = 5;
/// The most tokens kept for reuse.
pub const CACHE_CAP: usize = 16_384;

/// A token signed recently, with what it was signed for.
struct Recent {
    kid: String,
    issuer: String,
    username: String,
    client: String,
    issued_at: i64,
    ttl: i64,
    jwt: String,
}

impl std::fmt::Debug for IdentitySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("IdentitySigner").field(&self.keys()).finish()
    }
}

/// Who an identity token is about: what forward-auth knows of an authenticated request.
#[derive(Debug, Clone, Copy)]
pub struct IdentityClaims<'a> {
    /// The user's id (`sub`, as a string, as RFC 7519 wants it).
    pub user_id: i64,
    /// The username (`username`).
    pub username: &'a str,
    /// The client's name (`client`).
    pub client: &'a str,
    /// The token's id (`token_id`) — its id, never the token.
    pub token_id: i64,
    /// The audience (`aud`): the upstream the route rule names.
    pub audience: &'a str,
    /// The issuer (`iss`).
    pub issuer: &'a str,
    /// Issued at, seconds since the Unix epoch (`iat`).
    pub issued_at: i64,
    /// Lifetime (`exp` = `iat` + this, whole seconds).
    pub ttl: Duration,
}

impl IdentitySigner {
    /// A signer with `keys` in force.
    pub fn new(keys: IdentityKeys) -> Self {
        let signer = IdentitySigner::default();
        signer.set(keys);
        signer
    }

    /// Puts `keys` in force (a rotation): the next token is signed with its first key, and the
    /// JWKS lists all of them. Returns whether anything changed.
    pub fn set(&self, keys: IdentityKeys) -> bool {
        let mut slot = self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let same = slot.as_ref().is_some_and(|old| old.kids().eq(keys.kids()));
        if !same {
            *slot = Some(Arc::new(keys));
        }
        !same
    }

    /// The keys in force, if any.
    pub fn keys(&self) -> Option<Arc<IdentityKeys>> {
        self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The JWKS document (RFC 7517, OKP keys of RFC 8037): every key in force, the current first.
    /// `{"keys": []}` while there is none.
    pub fn jwks(&self) -> Value {
        self.keys().map(|k| k.jwks.clone()).unwrap_or_else(|| json!({"keys": []}))
    }

    /// A compact JWS for `claims`, signed with the current key; `None` without keys.
    ///
    /// A token signed for the same token id and audience with the same key, issuer, names and
    /// lifetime less than `min(REUSE, ttl / 4)` seconds before is handed out again instead.
    pub fn sign(&self, claims: &IdentityClaims<'_>) -> Option<String> {
        let keys = self.keys()?;
        let key = &keys.keys[0];
        let ttl = i64::try_from(claims.ttl.min(MAX_TTL).as_secs()).unwrap_or(60);
        let reuse = REUSE.min(ttl / 4);
        let cache_key = (claims.token_id, claims.audience.to_string());
        if reuse > 0 {
            let recent = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(r) = recent.get(&cache_key)
                && r.kid == key.kid
                && r.ttl == ttl
                && (0..reuse).contains(&(claims.issued_at - r.issued_at))
                && r.issuer == claims.issuer
                && r.username == claims.username
                && r.client == claims.client
            {
                return Some(r.jwt.clone());
            }
        }
        let jwt = Self::sign_with(key, claims, ttl);
        if reuse > 0 {
            let mut recent = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if recent.len() >= CACHE_CAP {
                recent.clear();
            }
            recent.insert(
                cache_key,
                Recent {
                    kid: key.kid.clone(),
                    issuer: claims.issuer.to_string(),
                    username: claims.username.to_string(),
                    client: claims.client.to_string(),
                    issued_at: claims.issued_at,
                    ttl,
                    jwt: jwt.clone(),
                },
            );
        }
        Some(jwt)
    }

    fn sign_with(key: &IdentityKey, claims: &IdentityClaims<'_>, ttl: i64) -> String {
        let payload = json!({
            "iss": claims.issuer,
            "sub": claims.user_id.to_string(),
            "aud": claims.audience,
            "username": claims.username,
            "client": claims.client,
            "token_id": claims.token_id,
            "iat": claims.issued_at,
            "exp": claims.issued_at.saturating_add(ttl),
        });
        let mut jwt = String::with_capacity(key.header.len() + 400);
        jwt.push_str(&key.header);
        jwt.push('.');
        B64.encode_string(payload.to_string(), &mut jwt);
        let signature = key.signing.sign(jwt.as_bytes());
        jwt.push('.');
        B64.encode_string(signature.to_bytes(), &mut jwt);
        jwt
    }
}

impl IdentitySigner {
    /// `GET /.well-known/jwks.json`: the public keys, to merge into the server's router. Cached by
    /// verifiers for at most a minute: a key that starts signing is published before any token it
    /// signed can reach them only if they refetch on an unknown `kid` (the JWT libraries' JWKS
    /// clients do), so the cache time is short as well.
    pub fn jwks_router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        use axum::http::{HeaderValue, header};
        use axum::response::IntoResponse;
        let signer = self.clone();
        axum::Router::new().route(
            JWKS_PATH,
            axum::routing::get(move || {
                let jwks = signer.jwks();
                async move {
                    let mut response = axum::Json(jwks).into_response();
                    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=60"));
                    response
                }
            }),
        )
    }
}

/// Where the public keys are published.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Verifier;

    fn claims() -> IdentityClaims<'static> {
        IdentityClaims {
            user_id: 42,
            username: "alice",
            client: "web",
            token_id: 7,
            audience: "orders",
            issuer: "tessera",
            issued_at: 1_700_000_000,
            ttl: Duration::from_secs(600),
        }
    }

    #[test]
    fn tokens_verify_with_the_published_key_and_cap_their_lifetime() {
        let signer = IdentitySigner::new(IdentityKeys::new(vec![[1; 32], [2; 32]]).expect("keys"));
        let jwt = signer.sign(&claims()).expect("signed");
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value = serde_json::from_slice(&B64.decode(parts[0]).expect("b64")).expect("json");
        let keys = signer.keys().expect("keys");
        assert_eq!(header, json!({"alg": "EdDSA", "typ": "JWT", "kid": keys.current_kid()}));
        let payload: Value = serde_json::from_slice(&B64.decode(parts[1]).expect("b64")).expect("json");
        assert_eq!(payload["sub"], "42");
        assert_eq!(payload["exp"].as_i64(), Some(1_700_000_060), "600 s asked, 60 s given");
        // The published x verifies the signature over header.payload.
        let jwk = &signer.jwks()["keys"][0];
        let x: [u8; 32] = B64.decode(jwk["x"].as_str().expect("x")).expect("b64").try_into().expect("32 bytes");
        let public = VerifyingKey::from_bytes(&x).expect("point");
        let signature = ed25519_dalek::Signature::from_slice(&B64.decode(parts[2]).expect("b64")).expect("sig");
        public.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature).expect("verifies");
        assert_eq!(signer.jwks()["keys"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn a_token_is_reused_for_a_few_seconds_only() {
        let signer = IdentitySigner::new(IdentityKeys::new(vec![[5; 32]]).expect("keys"));
        let mut c = claims();
        c.ttl = Duration::from_secs(30);
        let first = signer.sign(&c).expect("signed");
        c.issued_at += REUSE - 1;
        assert_eq!(signer.sign(&c).as_deref(), Some(first.as_str()), "reused within the window");
        c.issued_at += 1;
        let later = signer.sign(&c).expect("signed");
        assert_ne!(later, first, "a fresh token after the window");
        // Another audience, another name, or another key: never another's token.
        let other = IdentityClaims { audience: "billing", ..c };
        assert_ne!(signer.sign(&other), Some(later.clone()));
        let renamed = IdentityClaims { username: "alicia", ..c };
        assert_ne!(signer.sign(&renamed), Some(later.clone()));
        signer.set(IdentityKeys::new(vec![[6; 32], [5; 32]]).expect("keys"));
        assert_ne!(signer.sign(&c), Some(later), "a rotation signs anew");
        // A lifetime under 4 s is never reused.
        let short = IdentityClaims { ttl: Duration::from_secs(3), ..c };
        let a = signer.sign(&short);
        assert_ne!(a, None);
        let again = signer.sign(&short);
        // Ed25519 is deterministic: the same claims give the same bytes, so compare the cache.
        assert_eq!(a, again);
        assert!(!signer.recent.lock().expect("lock").values().any(|r| r.ttl == 3), "a 3 s token is not kept");
    }

    #[test]
    fn key_sets_are_checked_and_never_shown() {
        assert_eq!(IdentityKeys::new(vec![]).err(), Some(IdentityKeyError::Empty));
        assert!(matches!(IdentityKeys::new(vec![[3; 32], [3; 32]]), Err(IdentityKeyError::Duplicate(_))));
        assert_eq!(IdentityKeys::new(vec![[0; 32]; MAX_KEYS + 1]).err(), Some(IdentityKeyError::TooMany));
        let shown = format!("{:?}", IdentitySigner::new(IdentityKeys::new(vec![[4; 32]]).expect("keys")));
        assert!(shown.contains("kids"), "{shown}");
        assert!(!shown.contains("0404"), "{shown}");
        // RFC 8037 appendix A.3: the thumbprint of its example key.
        let x = B64.decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").expect("b64");
        let key = VerifyingKey::from_bytes(&x.try_into().expect("32")).expect("point");
        assert_eq!(thumbprint(&key), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        assert!(IdentitySigner::default().sign(&claims()).is_none(), "no keys, no token");
        assert_eq!(IdentitySigner::default().jwks(), json!({"keys": []}));
    }
}
