//! Seeding many tokens straight into a test's database (through the store, not SQL of our own):
//! the admin's pagination is tested over 10,000 of them. They are not usable tokens (their
//! digests are not of any token), which the listing does not need.

use chrono::{TimeDelta, Utc};
use tessera_core::store::{ClientStore, TokenStore, UserStore};
use tessera_core::{ClientName, KeyId, NewClient, NewToken, NewUser, TokenDigest, TokenSeed, Ttl, Username};
use tessera_sql::SqlStore;

/// `users` users (`u0`, `u1`, …) each with a token on each of `clients` clients (`c0`, …).
pub fn tokens(database_url: &str, users: usize, clients: usize) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let store = SqlStore::connect(database_url).await.expect("connect");
        let now = Utc::now();
        let mut client_list = Vec::new();
        for c in 0..clients {
            let name: ClientName = format!("c{c}").parse().expect("name");
            client_list.push(
                store.create_client(NewClient::new(name, Ttl::After(TimeDelta::days(30)))).await.expect("client"),
            );
        }
        // A few users at a time: PostgreSQL takes them in parallel (SQLite queues them).
        let mut tasks = tokio::task::JoinSet::new();
        for u in 0..users {
            let (store, client_list) = (store.clone(), client_list.clone());
            if tasks.len() >= 8 {
                tasks.join_next().await.expect("task").expect("seeding");
            }
            tasks.spawn(async move {
                let username: Username = format!("u{u}").parse().expect("username");
                let new = NewUser { username, password_hash: "unusable".into(), is_staff: false, is_active: true };
                let user = store.create_user(new).await.expect("user");
                for (c, client) in client_list.iter().enumerate() {
                    let n = (u * client_list.len() + c + 1) as u64;
                    let digest = TokenDigest::from_hex(&format!("{n:064x}")).expect("digest");
                    let seed = TokenSeed::from_slice(&[(n % 251) as u8; 32]).expect("seed");
                    let token = NewToken {
                        user_id: user.id,
                        client_id: client.id,
                        digest,
                        seed,
                        key_id: KeyId::LEGACY,
                        created: now - TimeDelta::seconds(n as i64),
                        expiry: Some(now + TimeDelta::days(30)),
                        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36".into()),
                        ip: Some("192.0.2.7".into()),
                    };
                    store.create_token(token).await.expect("token");
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("seeding");
        }
        store.close().await;
    });
}
