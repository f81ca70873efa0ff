//! No token at rest: after issuing tokens and using the store the way the server does, nothing
//! stored under the prefix — key names, values, serialized dumps — contains a token or its
//! random body. The digests must be there, or the check could not fail.

use chrono::{DateTime, TimeDelta, Utc};
use redis::Value;
use tessera_core::store::{TokenFilter, TokenStore};
use tessera_core::{ClientId, NewToken, ServerKey, TokenCodec, TokenId, UserId};
use tessera_redis::{RedisTokenStore, RedisTokenStoreConfig};

fn now_micros() -> DateTime<Utc> {
    DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap()
}

/// Every byte Redis holds under `prefix`, as one haystack: key names, values read by type, and
/// each key's DUMP.
async fn everything(redis: &tessera_redis::testing::TestRedis) -> (usize, Vec<u8>) {
    let keys = redis.keys().await;
    let mut raw = redis.raw().await;
    let mut hay = Vec::new();
    for key in &keys {
        hay.extend_from_slice(key.as_bytes());
        hay.push(b'\n');
        let kind: String = redis::cmd("TYPE").arg(key).query_async(&mut raw).await.unwrap();
        let value: Value = match kind.as_str() {
            "string" => redis::cmd("GET").arg(key).query_async(&mut raw).await.unwrap(),
            "hash" => redis::cmd("HGETALL").arg(key).query_async(&mut raw).await.unwrap(),
            "set" => redis::cmd("SMEMBERS").arg(key).query_async(&mut raw).await.unwrap(),
            "zset" => {
                redis::cmd("ZRANGE").arg(key).arg(0).arg(-1).arg("WITHSCORES").query_async(&mut raw).await.unwrap()
            }
            other => panic!("unexpected type {other} for {key}"),
        };
        flatten(&value, &mut hay);
        let dump: Value = redis::cmd("DUMP").arg(key).query_async(&mut raw).await.unwrap();
        flatten(&dump, &mut hay);
    }
    (keys.len(), hay)
}

fn flatten(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::BulkString(bytes) => out.extend_from_slice(bytes),
        Value::SimpleString(s) => out.extend_from_slice(s.as_bytes()),
        Value::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::Array(items) | Value::Set(items) => items.iter().for_each(|v| flatten(v, out)),
        Value::Map(pairs) => pairs.iter().for_each(|(k, v)| {
            flatten(k, out);
            flatten(v, out);
        }),
        _ => {}
    }
    out.push(b'\n');
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn no_token_is_stored_only_digests() {
    let Some(redis) = tessera_redis::testing::redis().await else { return };
    let store = RedisTokenStore::new(redis.conn.clone(), RedisTokenStoreConfig::default());
    let codec = TokenCodec::new(ServerKey::generate(), "tsr_", 64).unwrap();
    let mut issued = Vec::new();
    for i in 0..12 {
        let token = codec.issue();
        let new = NewToken {
            user_id: UserId(i % 3),
            client_id: ClientId(i),
            digest: token.digest,
            seed: token.seed,
            key_id: token.key_id,
            created: now_micros(),
            expiry: (i % 2 == 0).then(|| now_micros() + TimeDelta::hours(1)),
            user_agent: Some("curl/8.5.0".into()),
            ip: Some("198.51.100.4".into()),
        };
        let (stored, _) = store.get_or_create_token(new).await.unwrap();
        issued.push((token, stored.id));
    }
    // Use them as the server does: last uses, a renewal, an admin's expiry, one logout.
    let uses: Vec<(TokenId, DateTime<Utc>)> = issued.iter().map(|(_, id)| (*id, now_micros())).collect();
    store.record_last_used(&uses).await.unwrap();
    store.extend_expiry(issued[0].1, Some(now_micros() + TimeDelta::hours(2)), now_micros()).await.unwrap();
    store.set_expiry(issued[1].1, None).await.unwrap();
    store.delete_token(issued[11].1).await.unwrap();
    assert_eq!(store.list_tokens(TokenFilter::default()).await.unwrap().len(), 11);

    let (keys, hay) = everything(&redis).await;
    assert!(keys >= 11 * 3, "{keys} keys");
    for (token, _) in &issued {
        let token_text = token.token.expose();
        let body = &token_text[4..token_text.len() - 6];
        assert!(!contains(&hay, token_text), "a token is stored");
        assert!(!contains(&hay, body), "a token's body is stored");
        assert!(!contains(&hay, &body[..20]), "part of a token's body is stored");
    }
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    for (token, _) in &issued[..11] {
        assert!(contains(&hay, &hex(token.digest.as_bytes())), "the digests are what is stored");
    }
    assert!(contains(&hay, "curl/8.5.0"), "values are read");
}
