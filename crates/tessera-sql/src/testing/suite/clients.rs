//! API clients: create, read, list, update each field, delete, and every error.

use super::*;
use tessera_core::store::ClientUpdate;
use tessera_core::{ClientId, Devices, OnDeviceLimit, Rate};

fn rate(text: &str) -> Rate {
    text.parse().expect("rate")
}

pub async fn clients_crud(store: DynStore) {
    let before = now_micros();
    let web = store
        .create_client(NewClient {
            name: client_name("web"),
            token_ttl: ttl("1d 2h"),
            throttle_rate: Some(rate("100/h")),
            sliding_expiry: true,
            max_lifetime: Some(ttl("30d")),
            description: "The web app — ünïcode".into(),
            devices: Devices::Many { max_devices: 3, on_device_limit: OnDeviceLimit::Refuse },
        })
        .await
        .expect("create web");
    assert!(before <= web.created && web.created <= now_micros());
    assert_eq!(web.name.as_str(), "web");
    assert_eq!(web.token_ttl, ttl("1d 2h"));
    assert_eq!(web.throttle_rate, Some(rate("100/h")));
    assert!(web.sliding_expiry);
    assert_eq!(web.max_lifetime, Some(ttl("30d")));
    assert_eq!(web.description, "The web app — ünïcode");

    let cli = store.create_client(NewClient::new(client_name("api access v2"), Ttl::Never)).await.expect("create cli");
    assert_eq!(cli.token_ttl, Ttl::Never);
    assert_eq!((cli.throttle_rate, cli.max_lifetime, cli.sliding_expiry), (None, None, false));
    assert_eq!(cli.description, "");

    assert_eq!(store.client_by_id(web.id).await.expect("by id"), Some(web.clone()));
    assert_eq!(store.client_by_name(&client_name("web")).await.expect("by name"), Some(web.clone()));
    assert_eq!(store.client_by_name(&client_name("api access v2")).await.expect("by name"), Some(cli.clone()));
    assert_eq!(store.client_by_name(&client_name("Web")).await.expect("by name"), None);
    assert_eq!(store.client_by_id(ClientId(web.id.0 + 1000)).await.expect("by id"), None);

    let ios = store.create_client(new_client("ios")).await.expect("create ios");
    let names: Vec<String> = store.list_clients().await.expect("list").iter().map(|c| c.name.to_string()).collect();
    assert_eq!(names, ["api access v2", "ios", "web"]);

    assert_eq!(store.delete_client(ios.id).await.expect("delete"), 0);
    assert_eq!(store.client_by_id(ios.id).await.expect("by id"), None);
    assert_eq!(store.list_clients().await.expect("list"), vec![cli, web]);
}

pub async fn client_conflicts_and_missing_clients(store: DynStore) {
    let web = store.create_client(new_client("web")).await.expect("create");
    let mut again = new_client("web");
    again.description = "second".into();
    assert_conflict(store.create_client(again).await, "a client named 'web' already exists");
    assert_eq!(store.list_clients().await.expect("list"), vec![web.clone()]);

    let missing = ClientId(web.id.0 + 1000);
    let want = format!("no client with id {missing}");
    let update = ClientUpdate { description: Some("x".into()), ..ClientUpdate::default() };
    assert_not_found(store.update_client(missing, update).await, &want);
    assert_not_found(store.update_client(missing, ClientUpdate::default()).await, &want);
    assert_not_found(store.delete_client(missing).await, &want);
    assert_eq!(store.delete_client(web.id).await.expect("delete"), 0);
    assert_not_found(store.delete_client(web.id).await, &format!("no client with id {}", web.id));
}

pub async fn client_updates(store: DynStore) {
    let original = store
        .create_client(NewClient {
            name: client_name("web"),
            token_ttl: ttl("1h"),
            throttle_rate: Some(rate("10/m")),
            sliding_expiry: false,
            max_lifetime: Some(ttl("7d")),
            description: "before".into(),
            devices: Devices::One,
        })
        .await
        .expect("create");
    let other = store.create_client(new_client("ios")).await.expect("create ios");
    let mut expected = original.clone();

    // An empty update changes nothing and returns the client as stored.
    assert_eq!(store.update_client(original.id, ClientUpdate::default()).await.expect("no-op"), expected);

    // Each field on its own; the result is what is stored, and equals ClientUpdate::apply.
    let updates = [
        ClientUpdate { name: Some(client_name("web-2")), ..Default::default() },
        ClientUpdate { token_ttl: Some(ttl("2d")), ..Default::default() },
        ClientUpdate { throttle_rate: Some(Some(rate("5/s"))), ..Default::default() },
        ClientUpdate { sliding_expiry: Some(true), ..Default::default() },
        ClientUpdate { max_lifetime: Some(Some(ttl("90d"))), ..Default::default() },
        ClientUpdate { description: Some("after".into()), ..Default::default() },
        // Clearing the rate and the cap, and a never-expiring TTL.
        ClientUpdate { throttle_rate: Some(None), ..Default::default() },
        ClientUpdate { max_lifetime: Some(None), ..Default::default() },
        ClientUpdate { token_ttl: Some(Ttl::Never), ..Default::default() },
        ClientUpdate { description: Some(String::new()), sliding_expiry: Some(false), ..Default::default() },
        ClientUpdate { devices: Some(Devices::many()), ..Default::default() },
        ClientUpdate {
            devices: Some(Devices::Many { max_devices: 1000, on_device_limit: OnDeviceLimit::Refuse }),
            ..Default::default()
        },
        ClientUpdate { devices: Some(Devices::One), ..Default::default() },
    ];
    for update in updates {
        update.apply(&mut expected);
        let got = store.update_client(original.id, update.clone()).await.expect("update");
        assert_eq!(got, expected, "after {update:?}");
        assert_eq!(store.client_by_id(original.id).await.expect("by id"), Some(expected.clone()));
    }
    assert_eq!(expected.name.as_str(), "web-2");
    assert_eq!((expected.throttle_rate, expected.max_lifetime, expected.token_ttl), (None, None, Ttl::Never));
    assert_eq!(store.client_by_name(&client_name("web")).await.expect("old name"), None);

    // Several fields at once.
    let all = ClientUpdate {
        name: Some(client_name("web")),
        token_ttl: Some(ttl("15m")),
        throttle_rate: Some(Some(rate("1000/d"))),
        sliding_expiry: Some(true),
        max_lifetime: Some(Some(ttl("12h"))),
        description: Some("all at once".into()),
        devices: Some(Devices::Many { max_devices: 2, on_device_limit: OnDeviceLimit::EvictOldest }),
    };
    all.apply(&mut expected);
    assert_eq!(store.update_client(original.id, all).await.expect("update"), expected);

    // Renaming to a taken name: Conflict, and nothing changed — not even the other fields.
    let clash = ClientUpdate {
        name: Some(client_name("ios")),
        description: Some("must not be stored".into()),
        throttle_rate: Some(None),
        ..Default::default()
    };
    assert_conflict(store.update_client(original.id, clash).await, "a client named 'ios' already exists");
    assert_eq!(store.client_by_id(original.id).await.expect("by id"), Some(expected.clone()));
    assert_eq!(store.client_by_id(other.id).await.expect("by id"), Some(other.clone()));
    // Renaming to its own name is fine.
    let same = ClientUpdate { name: Some(client_name("web")), ..Default::default() };
    assert_eq!(store.update_client(original.id, same).await.expect("same name"), expected);
    // The other client was never touched.
    assert_eq!(store.client_by_id(other.id).await.expect("by id"), Some(other));
}
