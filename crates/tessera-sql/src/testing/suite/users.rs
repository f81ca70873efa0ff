//! Users: create, read, list, change, delete, and every error.

use super::*;
use tessera_core::UserId;

pub async fn users_crud(store: DynStore) {
    let before = now_micros();
    let alice = store.create_user(new_user("alice")).await.expect("create alice");
    let after = now_micros();
    assert_eq!(alice.username.as_str(), "alice");
    assert_eq!(alice.password_hash, new_user("alice").password_hash);
    assert!(alice.is_active && !alice.is_staff);
    assert!(before <= alice.created && alice.created <= after, "{before} <= {} <= {after}", alice.created);

    let mut staff = new_user("root");
    staff.is_staff = true;
    staff.is_active = false;
    let root = store.create_user(staff).await.expect("create root");
    assert!(root.is_staff && !root.is_active);
    assert_ne!(root.id, alice.id);

    assert_eq!(store.user_by_id(alice.id).await.expect("by id"), Some(alice.clone()));
    assert_eq!(store.user_by_username(&username("alice")).await.expect("by name"), Some(alice.clone()));
    // Exact match only.
    assert_eq!(store.user_by_username(&username("Alice")).await.expect("by name"), None);
    assert_eq!(store.user_by_username(&username("alic")).await.expect("by name"), None);
    assert_eq!(store.user_by_id(UserId(alice.id.0 + 1000)).await.expect("by id"), None);

    store.set_password_hash(alice.id, "$argon2id$new").await.expect("set hash");
    store.set_active(alice.id, false).await.expect("deactivate");
    store.set_staff(alice.id, true).await.expect("make staff");
    let changed = store.user_by_id(alice.id).await.expect("by id").expect("alice");
    assert_eq!(changed.password_hash, "$argon2id$new");
    assert!(!changed.is_active && changed.is_staff);
    assert_eq!((changed.username, changed.created), (alice.username.clone(), alice.created));
    store.set_active(alice.id, true).await.expect("activate");
    store.set_staff(alice.id, false).await.expect("unstaff");
    let back = store.user_by_id(alice.id).await.expect("by id").expect("alice");
    assert!(back.is_active && !back.is_staff);

    // The other user is untouched by all of that.
    assert_eq!(store.user_by_id(root.id).await.expect("by id"), Some(root.clone()));

    store.delete_user(alice.id).await.expect("delete");
    assert_eq!(store.user_by_id(alice.id).await.expect("by id"), None);
    assert_eq!(store.user_by_username(&username("alice")).await.expect("by name"), None);
    assert_eq!(store.list_users().await.expect("list"), vec![root]);
}

pub async fn users_are_listed_by_username(store: DynStore) {
    assert_eq!(store.list_users().await.expect("list"), vec![]);
    for name in ["bob", "zoë", "alice", "Alice", "_x", "10"] {
        store.create_user(new_user(name)).await.expect("create");
    }
    let names: Vec<String> =
        store.list_users().await.expect("list").into_iter().map(|u| u.username.to_string()).collect();
    // Code-point order, whatever the database's locale.
    assert_eq!(names, ["10", "Alice", "_x", "alice", "bob", "zoë"]);
}

pub async fn user_conflicts_and_missing_users(store: DynStore) {
    let alice = store.create_user(new_user("alice")).await.expect("create");
    let mut again = new_user("alice");
    again.password_hash = "other".into();
    assert_conflict(store.create_user(again).await, "a user named 'alice' already exists");
    // Nothing changed.
    assert_eq!(store.list_users().await.expect("list"), vec![alice.clone()]);
    // Usernames differing in case are different users.
    store.create_user(new_user("ALICE")).await.expect("a different username");
    // Names are stored normalised (NFKC, as Django): fullwidth `ａｌｉｃｅ` and the ligature in
    // `ﬁona` are `alice` and `fiona`, so the first is the existing user and the second is found
    // under either spelling.
    assert_conflict(store.create_user(new_user("ａｌｉｃｅ")).await, "a user named 'alice' already exists");
    let fiona = store.create_user(new_user("ﬁona")).await.expect("create fiona");
    assert_eq!(fiona.username.as_str(), "fiona");
    assert_eq!(store.user_by_username(&username("fiona")).await.expect("by name"), Some(fiona.clone()));
    assert_eq!(store.user_by_username(&username("ﬁｏｎａ")).await.expect("by name"), Some(fiona.clone()));
    assert_conflict(store.create_user(new_user("fiona")).await, "a user named 'fiona' already exists");
    store.delete_user(fiona.id).await.expect("delete fiona");

    let missing = UserId(alice.id.0 + 1000);
    let want = format!("no user with id {missing}");
    assert_not_found(store.set_password_hash(missing, "x").await, &want);
    assert_not_found(store.set_active(missing, false).await, &want);
    assert_not_found(store.set_staff(missing, true).await, &want);
    assert_not_found(store.delete_user(missing).await, &want);
    store.delete_user(alice.id).await.expect("delete");
    assert_not_found(store.delete_user(alice.id).await, &format!("no user with id {}", alice.id));
    assert_eq!(store.list_users().await.expect("list").len(), 1);
}

/// `upgrade_password_hash` (an imported Django hash re-hashed on login) replaces the hash only
/// while it is the one verified: a password change in between wins.
pub async fn password_hash_upgrades_only_over_the_hash_verified(store: DynStore) {
    let alice = store.create_user(new_user("alice")).await.expect("alice");
    let django = "pbkdf2_sha256$1000000$salt$aGFzaA==";
    store.set_password_hash(alice.id, django).await.expect("set");
    assert!(store.upgrade_password_hash(alice.id, django, "$argon2id$upgraded").await.expect("upgrade"));
    let read = |store: DynStore| async move { store.user_by_id(alice.id).await.expect("read").expect("alice") };
    assert_eq!(read(store.clone()).await.password_hash, "$argon2id$upgraded");
    // The hash verified is no longer there: nothing changes.
    assert!(!store.upgrade_password_hash(alice.id, django, "$argon2id$stale").await.expect("stale"));
    assert_eq!(read(store.clone()).await.password_hash, "$argon2id$upgraded");
    assert!(!store.upgrade_password_hash(UserId(alice.id.0 + 1000), django, "$argon2id$x").await.expect("missing"));
}
