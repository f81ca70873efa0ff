//! Configuration through the real binary: file, environment, flags, and rejected keys.

use crate::TESSERA;
use tessera_testkit::{Backend, TestEnv, json};

#[test]
fn file_environment_and_flags_apply_in_that_order() {
    let Some(mut env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    let file = env.dir.path().join("tessera.toml");
    std::fs::write(&file, "default_token_ttl = \"2h\"\n").expect("write");
    env.env.insert("TESSERA_CONFIG".into(), file.display().to_string());
    env.ok(&["client", "create", "from-file"]);
    env.env.insert("TESSERA_DEFAULT_TOKEN_TTL".into(), "30m".into());
    env.ok(&["client", "create", "from-env"]);
    let clients = json(&env.ok(&["client", "list", "--json"]));
    assert_eq!(clients[0]["name"], "from-env");
    assert_eq!(clients[0]["token_ttl"], "30m");
    assert_eq!(clients[1]["token_ttl"], "2h");

    // --data-dir beats TESSERA_DATA_DIR: the other directory has no clients.
    let other = env.dir.path().join("other");
    let other = other.display().to_string();
    assert_eq!(json(&env.ok(&["--data-dir", &other, "client", "list", "--json"])), serde_json::json!([]));
}

#[test]
fn malformed_config_is_rejected_and_changes_nothing() {
    let Some(mut env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    env.ok(&["client", "create", "web"]);
    let before = env.snapshot();
    let file = env.dir.path().join("bad.toml");
    let cases = [
        ("tokn_ttl = \"1d\"", "unknown key 'tokn_ttl'"),
        ("default_token_ttl = \"forever\"", "invalid value \"forever\" for 'default_token_ttl'"),
        ("default_throttle_rate = \"10/min\"", "invalid period 'min'"),
        ("token_character_length = 32", "the minimum is 54"),
        ("[section]\nkey = 1", "unknown key 'section'"),
        ("default_token_ttl = ", "config file"),
    ];
    for (text, want) in cases {
        std::fs::write(&file, text).expect("write");
        let path = file.display().to_string();
        env.fails(&["--config", &path, "client", "create", "other"], want);
        env.fails(&["--config", &path, "serve", "--bind", "127.0.0.1:0"], want);
    }
    env.env.insert("TESSERA_API_ACCESS_EXCLUDE_FROM_SESSIONS".into(), "perhaps".into());
    env.fails(
        &["client", "create", "other"],
        "TESSERA_API_ACCESS_EXCLUDE_FROM_SESSIONS=\"perhaps\": expected true or false",
    );
    env.env.remove("TESSERA_API_ACCESS_EXCLUDE_FROM_SESSIONS");
    env.fails(&["serve", "--bind", "localhost"], "invalid bind address 'localhost'");
    assert_eq!(env.snapshot(), before);
}
