//! Django's password hashes against Django itself, never a table from memory: `make.py` has Django
//! 5.2.19's own hashers (with argon2-cffi and bcrypt from PyPI) hash several passwords — Unicode,
//! longer than an HMAC block and than bcrypt's 72 bytes, one character — at Django's default costs;
//! each hash must verify with its password and fail with a wrong one, and a weak format (MD5) must be
//! refused. Needs `TESSERA_TEST_PYTHON` (CI's venv); without it the test says why and passes, unless
//! `TESSERA_REQUIRE_SERVICES=1`.

use std::path::Path;
use std::process::Command;
use tessera_core::password::django::{DjangoHash, DjangoHashError};
use tessera_core::password::{check_password_or_dummy, verify_password};

/// The Python named by `TESSERA_TEST_PYTHON` when it has Django, argon2-cffi and bcrypt.
fn python() -> Option<String> {
    let required = std::env::var("TESSERA_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
    let Ok(python) = std::env::var("TESSERA_TEST_PYTHON") else {
        assert!(!required, "TESSERA_TEST_PYTHON is not set (.ci/run makes a venv), and TESSERA_REQUIRE_SERVICES=1");
        eprintln!("skipping the Django hash comparison: TESSERA_TEST_PYTHON is not set");
        return None;
    };
    let ok = Command::new(&python).args(["-c", "import django, argon2, bcrypt"]).status().is_ok_and(|s| s.success());
    assert!(ok, "TESSERA_TEST_PYTHON={python} lacks Django, argon2-cffi or bcrypt (.ci/run installs them)");
    Some(python)
}

#[test]
fn every_django_hasher_verifies_as_django_does() {
    let Some(python) = python() else { return };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/django_hashes/make.py");
    let out = Command::new(&python).arg(script).output().expect("run make.py");
    assert!(out.status.success(), "make.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    let mut seen = std::collections::BTreeSet::new();
    let mut wrong = Vec::new();
    for row in &rows {
        let hasher = row["hasher"].as_str().expect("hasher");
        let password = row["password"].as_str().expect("password");
        let Some(hash) = row["hash"].as_str() else { continue };
        assert_eq!(row["django_checks"], true, "Django does not check its own {hasher} hash");
        seen.insert(hasher.to_string());
        if hasher == "md5" {
            assert!(matches!(DjangoHash::parse(hash), Err(DjangoHashError::Weak(w)) if w == "md5"), "{hash}");
            assert!(!verify_password(hash, password), "an MD5 hash must never verify");
            continue;
        }
        let parsed = DjangoHash::parse(hash).unwrap_or_else(|e| panic!("{hasher}: {e}"));
        assert_eq!(parsed.algorithm(), hasher);
        if !verify_password(hash, password) {
            wrong.push(format!("{hasher}: the right password {password:?} is refused"));
        }
        let wrong_password = format!("{password}!");
        if verify_password(hash, &wrong_password) {
            wrong.push(format!("{hasher}: a wrong password is accepted"));
        }
        // A right password is re-hashed to Argon2id, once.
        let checked = check_password_or_dummy(Some(hash), password);
        let rehash = checked.rehash.unwrap_or_default();
        assert!(checked.verified && rehash.starts_with("$argon2id$") && verify_password(&rehash, password), "{hasher}");
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    let want = ["argon2", "bcrypt", "bcrypt_sha256", "md5", "pbkdf2_sha1", "pbkdf2_sha256", "scrypt"];
    assert_eq!(seen.iter().map(String::as_str).collect::<Vec<_>>(), want, "a hasher made no hash");
    // Python's bcrypt refuses a password over 72 bytes rather than cut it; so does Tessera.
    assert!(rows.iter().any(|r| r["hasher"] == "bcrypt" && r.get("refused").is_some()));
}
