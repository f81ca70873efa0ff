//! How a token is written to Redis and read back: hex digests and seeds, timestamps as integer
//! microseconds since the Unix epoch, absent optional fields as absent hash fields.

use crate::RedisError;
use chrono::{DateTime, Utc};
use tessera_core::{AuthToken, ClientId, KeyId, TokenDigest, TokenId, TokenSeed, UserId};

/// A record as the scripts return it: digest, id, user_id, client_id, seed, created, expiry,
/// last_used, user_agent, ip, key_id.
pub(super) type Row = Vec<Option<String>>;

const FIELDS: [&str; 11] =
    ["digest", "id", "user_id", "client_id", "seed", "created", "expiry", "last_used", "user_agent", "ip", "key_id"];

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// 32 bytes from 64 hex digits.
pub(crate) fn unhex32(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let high = (pair[0] as char).to_digit(16)?;
        let low = (pair[1] as char).to_digit(16)?;
        out[i] = (high * 16 + low) as u8;
    }
    Some(out)
}

/// Microseconds since the epoch, as stored.
pub(super) fn micros(t: DateTime<Utc>) -> String {
    t.timestamp_micros().to_string()
}

/// An optional text field as the create script takes it: `-` absent, `+value` present.
pub(super) fn optional(value: Option<&str>) -> String {
    match value {
        None => "-".to_string(),
        Some(v) => format!("+{v}"),
    }
}

/// The token a script returned.
pub(super) fn token(row: Row) -> Result<AuthToken, RedisError> {
    if row.len() != FIELDS.len() {
        return Err(malformed(&format!("{} fields instead of {}", row.len(), FIELDS.len())));
    }
    let mut fields = row.into_iter();
    let mut next = || fields.next().flatten();
    let digest_hex = next().ok_or_else(|| missing("digest"))?;
    let digest = unhex32(&digest_hex).map(TokenDigest).ok_or_else(|| malformed("the digest is not 64 hex digits"))?;
    let id = integer(next(), "id")?;
    let user_id = integer(next(), "user_id")?;
    let client_id = integer(next(), "client_id")?;
    let seed_hex = next().ok_or_else(|| missing("seed"))?;
    let seed = unhex32(&seed_hex).map(TokenSeed).ok_or_else(|| malformed("the seed is not 64 hex digits"))?;
    let created = instant(next(), "created")?.ok_or_else(|| missing("created"))?;
    let expiry = instant(next(), "expiry")?;
    let last_used = instant(next(), "last_used")?;
    let user_agent = next();
    let ip = next();
    // Absent: stored before tokens carried a key id, made with the one key there was.
    let key_id = match next() {
        None => KeyId::LEGACY,
        Some(text) => text.parse().map_err(|_| malformed("key_id is not a key id"))?,
    };
    Ok(AuthToken {
        id: TokenId(id),
        user_id: UserId(user_id),
        client_id: ClientId(client_id),
        digest,
        seed,
        created,
        expiry,
        last_used,
        user_agent,
        ip,
        key_id,
    })
}

fn integer(value: Option<String>, field: &str) -> Result<i64, RedisError> {
    let value = value.ok_or_else(|| missing(field))?;
    value.parse().map_err(|_| malformed(&format!("{field} is not an integer")))
}

fn instant(value: Option<String>, field: &str) -> Result<Option<DateTime<Utc>>, RedisError> {
    match value {
        None => Ok(None),
        Some(text) => {
            let micros: i64 = text.parse().map_err(|_| malformed(&format!("{field} is not an integer")))?;
            DateTime::from_timestamp_micros(micros)
                .map(Some)
                .ok_or_else(|| malformed(&format!("{field} is out of range")))
        }
    }
}

fn missing(field: &str) -> RedisError {
    malformed(&format!("{field} is missing"))
}

fn malformed(what: &str) -> RedisError {
    RedisError::Command(format!("a token record in Redis is malformed: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
        assert_eq!(unhex32(&hex(&bytes)), Some(bytes));
        assert_eq!(unhex32("00"), None);
        assert_eq!(unhex32(&"g".repeat(64)), None);
    }

    #[test]
    fn records_parse_and_bad_ones_are_named() {
        let digest = hex(&[1; 32]);
        let seed = hex(&[2; 32]);
        let row = |created: Option<&str>| -> Row {
            vec![
                Some(digest.clone()),
                Some("7".into()),
                Some("3".into()),
                Some("4".into()),
                Some(seed.clone()),
                created.map(String::from),
                None,
                Some("1714564800123456".into()),
                Some(String::new()),
                None,
                None,
            ]
        };
        let t = token(row(Some("1714564800000001"))).expect("parses");
        assert_eq!((t.id, t.user_id, t.client_id), (TokenId(7), UserId(3), ClientId(4)));
        assert_eq!(t.digest, TokenDigest([1; 32]));
        assert_eq!(t.expiry, None);
        assert_eq!(t.last_used.map(|l| l.timestamp_micros()), Some(1_714_564_800_123_456));
        assert_eq!(t.user_agent.as_deref(), Some(""));
        assert_eq!(t.ip, None);
        assert_eq!(t.key_id, KeyId::LEGACY, "absent: a token stored before key ids");
        let mut with_key = row(Some("1714564800000001"));
        with_key[10] = Some("k".into());
        assert_eq!(token(with_key.clone()).expect("parses").key_id, KeyId::from_char('k').expect("id"));
        with_key[10] = Some("kk".into());
        assert!(token(with_key).expect_err("bad key id").to_string().contains("key_id is not a key id"));
        let err = token(row(None)).expect_err("no created").to_string();
        assert!(err.contains("created is missing"), "{err}");
        let err = token(row(Some("soon"))).expect_err("bad created").to_string();
        assert!(err.contains("created is not an integer"), "{err}");
        assert!(token(vec![None]).is_err());
    }
}
