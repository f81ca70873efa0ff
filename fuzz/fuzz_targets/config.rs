//! The configuration loader: a fuzz-chosen TOML file and `TESSERA_*` environment. Never panics.
//!
//! Input: segments separated by NUL. The first is the config file; each other one is an
//! environment variable: its first byte picks the name, the rest is the value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use tessera::config::{Config, Overrides};

const VARS: &[&str] = &[
    "TESSERA_CONFIG",
    "TESSERA_DATA_DIR",
    "TESSERA_DATABASE_URL",
    "TESSERA_SECRET_KEY",
    "TESSERA_BIND",
    "TESSERA_REDIS_URL",
    "TESSERA_REDIS_KEY_PREFIX",
    "TESSERA_TOKEN_STORE",
    "TESSERA_THROTTLE_WHEN_REDIS_DOWN",
    "TESSERA_HEADER_READ_TIMEOUT",
    "TESSERA_REQUEST_BODY_TIMEOUT",
    "TESSERA_IDLE_TIMEOUT",
    "TESSERA_MAX_CONNECTIONS",
    "TESSERA_DEFAULT_TOKEN_TTL",
    "TESSERA_TOKEN_CHARACTER_LENGTH",
    "TESSERA_TOKEN_PREFIX",
    "TESSERA_LOGIN_RESPONSE_USER_FIELDS",
    "TESSERA_AUTH_HEADER_PREFIX",
    "TESSERA_EXPIRY_DATETIME_FORMAT",
    "TESSERA_TIME_ZONE",
    "TESSERA_TOKEN_CACHE_TIMEOUT",
    "TESSERA_REFRESH_TOKEN_ON_LOGIN",
    "TESSERA_REVOKE_TOKENS_ON_PASSWORD_CHANGE",
    "TESSERA_API_ACCESS_CLIENT_NAME",
    "TESSERA_API_ACCESS_EXCLUDE_FROM_SESSIONS",
    "TESSERA_API_ACCESS_RESPONSE_INCLUDE_TOKEN",
    "TESSERA_DEFAULT_THROTTLE_RATE",
    "TESSERA_LOGIN_CLIENT_HEADER",
    "TESSERA_TRUSTED_PROXIES",
    "TESSERA_LOGIN_THROTTLE_PER_IP",
    "TESSERA_LOGIN_THROTTLE_PER_USERNAME",
    "TESSERA_LOGIN_THROTTLE_PER_USERNAME_AND_IP",
    "TESSERA_LOGIN_KNOWN_SOURCE_TTL",
    "TESSERA_UNKNOWN_KEY",
];

/// The file each iteration writes its config to (one per process).
fn config_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let shm = PathBuf::from("/dev/shm");
        let dir = if shm.is_dir() { shm } else { std::env::temp_dir() };
        dir.join(format!("tessera-fuzz-config-{}.toml", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let mut segments = data.split(|b| *b == 0);
    let file = segments.next().unwrap_or_default();
    let path = config_path();
    std::fs::write(path, file).expect("write the config file");

    let mut env = BTreeMap::new();
    let mut overrides = Overrides::default();
    for segment in segments {
        let Some((&which, value)) = segment.split_first() else { continue };
        let value = String::from_utf8_lossy(value).into_owned();
        match usize::from(which) % (VARS.len() + 2) {
            // The fuzzed file, by the environment or by the flag.
            n if n == VARS.len() => {
                env.insert("TESSERA_CONFIG".to_string(), path.display().to_string());
            }
            n if n == VARS.len() + 1 => overrides.config_file = Some(path.clone()),
            n => {
                env.insert(VARS[n].to_string(), value);
            }
        }
    }
    if let Ok(config) = Config::load_from(&overrides, &env) {
        assert!(config.settings.validate().is_ok(), "a loaded config validates");
        let _ = config.database_url();
    }
});
