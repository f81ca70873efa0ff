//! Usernames against Django 5.2's own rules, never a table from memory:
//! `tests/usernames/django-5.2.19.txt` was written by Django (`tests/usernames/normalize.py` calls
//! `AbstractBaseUser.normalize_username` and `UnicodeUsernameValidator`) over every assigned BMP
//! and plane-1 code point, samples beyond, tricky strings and random short strings. Each must
//! normalise as Django normalises, and be accepted exactly when Django accepts it.
//!
//! With `TESSERA_TEST_PYTHON` naming a Python that has Django 5.2.19 (CI makes one) the script runs
//! again and its output must equal the committed fixture. Unset, the live comparison prints why
//! and passes, unless `TESSERA_REQUIRE_SERVICES=1`; set to a Python without that Django, it fails.
//!
//! Python 3.11's `unicodedata` is Unicode 14 and the Rust crates are newer: the script sweeps only
//! code points assigned in Python's Unicode version (category other than Cn), since Python treats
//! later ones as unassigned. Normalisation of assigned code points never changes between versions
//! (Unicode's stability policy), so the fixture stays true for the newer crates.

use std::path::{Path, PathBuf};
use std::process::Command;

use tessera_core::Username;

const FIXTURE: &str = include_str!("../usernames/django-5.2.19.txt");
const DJANGO: &str = "5.2.19";

fn usernames_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/usernames")
}

fn cp(hex: &str) -> char {
    u32::from_str_radix(hex, 16).ok().and_then(char::from_u32).unwrap_or_else(|| panic!("bad code point {hex:?}"))
}

fn text(seq: &str) -> String {
    if seq == "-" { String::new() } else { seq.split('.').map(cp).collect() }
}

fn ranges(list: &str) -> Vec<char> {
    list.split_ascii_whitespace()
        .flat_map(|r| {
            let (a, b) = r.split_once('-').unwrap_or((r, r));
            (cp(a) as u32..=cp(b) as u32).filter_map(char::from_u32)
        })
        .collect()
}

/// The fixture line starting with `key`, without it.
fn line(key: &str) -> &'static str {
    FIXTURE
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("the fixture has no {key} line"))
}

/// `input`, what Django stores, whether Django accepts it: as the fixture says, for a name.
fn check(input: &str, want: &str, accepted: bool, wrong: &mut Vec<String>) {
    let got = Username::normalize(input);
    if got != want {
        wrong.push(format!(
            "{:?}: Django normalises to {:?}, Tessera to {:?}",
            input.escape_unicode().to_string(),
            want,
            got
        ));
    }
    match (input.parse::<Username>(), accepted) {
        (Ok(name), true) if name.as_str() == want => {}
        (Ok(name), true) => wrong.push(format!("{:?}: parsed as {:?}, Django stores {want:?}", input, name.as_str())),
        (Err(_), false) => {}
        (Ok(_), false) => {
            wrong.push(format!("{:?} ({}): Django refuses it, Tessera accepts it", input, input.escape_unicode()))
        }
        (Err(e), true) => {
            wrong.push(format!("{:?} ({}): Django accepts it, Tessera refuses it: {e}", input, input.escape_unicode()))
        }
    }
}

fn assert_none_wrong(wrong: &[String], of: usize) {
    assert!(
        wrong.is_empty(),
        "{} of {of} differ from Django {DJANGO}:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(40)].join("\n")
    );
}

#[test]
fn every_swept_code_point_is_normalised_and_checked_as_django_does() {
    assert_eq!(line("unicode"), "14.0.0", "the fixture's Unicode version");
    assert_eq!(line("django"), DJANGO);
    let swept = ranges(line("swept"));
    let valid: std::collections::HashSet<char> = ranges(line("valid")).into_iter().collect();
    let changed: std::collections::HashMap<char, String> = FIXTURE
        .lines()
        .filter_map(|l| l.strip_prefix("changed "))
        .map(|l| {
            let (from, to) = l.split_once(' ').unwrap_or_else(|| panic!("bad changed line {l:?}"));
            (cp(from), text(to))
        })
        .collect();
    // The whole BMP less unassigned and surrogates is about 55,000 in Unicode 14; plane 1 adds
    // about 27,000.
    assert!(swept.len() > 80_000, "{} code points swept", swept.len());
    assert!(changed.len() > 4_500 && valid.len() > 50_000, "{} changed, {} valid", changed.len(), valid.len());
    let mut wrong = Vec::new();
    for &c in &swept {
        let input = c.to_string();
        let want = changed.get(&c).cloned().unwrap_or_else(|| input.clone());
        check(&input, &want, valid.contains(&c), &mut wrong);
    }
    assert_none_wrong(&wrong, swept.len());
}

#[test]
fn every_string_is_normalised_and_checked_as_django_does() {
    let mut wrong = Vec::new();
    let mut count = 0;
    for l in FIXTURE.lines().filter_map(|l| l.strip_prefix("string ")) {
        let fields: Vec<&str> = l.split(' ').collect();
        let [input, want, accepted] = fields[..] else { panic!("bad string line {l:?}") };
        check(&text(input), &text(want), accepted == "1", &mut wrong);
        count += 1;
    }
    assert!(count > 4_000, "{count} strings");
    assert_none_wrong(&wrong, count);
}

#[test]
fn the_fixture_holds_the_cases_that_matter() {
    let strings: Vec<(String, String)> = FIXTURE
        .lines()
        .filter_map(|l| l.strip_prefix("string "))
        .map(|l| {
            let mut f = l.split(' ');
            (text(f.next().unwrap_or("-")), text(f.next().unwrap_or("-")))
        })
        .collect();
    for (input, want) in [
        ("ａｌｉｃｅ", "alice"),
        ("ﬁona", "fiona"),
        ("ℌello", "Hello"),
        ("x²", "x2"),
        ("\u{1100}\u{1161}\u{11a8}", "각"),
    ] {
        assert!(strings.contains(&(input.to_string(), want.to_string())), "{input:?} → {want:?} is not in the fixture");
    }
}

/// The Python with Django 5.2.19, or why there is none: `Ok(None)` when none was named.
fn python() -> Result<Option<String>, String> {
    let Ok(python) = std::env::var("TESSERA_TEST_PYTHON") else {
        return Ok(None);
    };
    let out = Command::new(&python)
        .args(["-c", "import django; print(django.__version__)"])
        .output()
        .map_err(|e| format!("TESSERA_TEST_PYTHON={python} does not run: {e}"))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || version != DJANGO {
        return Err(format!(
            "TESSERA_TEST_PYTHON={python} has no Django {DJANGO} (version {version:?}; .ci/run installs Django=={DJANGO}): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(Some(python))
}

#[test]
fn fixture_is_what_django_5_2_19_generates() {
    let python = match python() {
        Ok(Some(python)) => python,
        Err(why) => panic!("{why}"),
        Ok(None) if std::env::var("TESSERA_REQUIRE_SERVICES").is_ok_and(|v| v == "1") => {
            panic!(
                "TESSERA_TEST_PYTHON is not set (a Python with Django=={DJANGO}; .ci/run makes one), and TESSERA_REQUIRE_SERVICES=1"
            )
        }
        Ok(None) => {
            eprintln!("skipping the live Django comparison: TESSERA_TEST_PYTHON is not set");
            return;
        }
    };
    let out = std::env::temp_dir().join(format!("tessera-usernames-{}.txt", std::process::id()));
    let status =
        Command::new(&python).arg(usernames_dir().join("normalize.py")).arg(&out).status().expect("run normalize.py");
    let generated = std::fs::read_to_string(&out);
    let _ = std::fs::remove_file(&out);
    assert!(status.success(), "normalize.py failed: {status}");
    let generated = generated.expect("read the generated fixture");
    if generated != FIXTURE {
        let diff = generated.lines().zip(FIXTURE.lines()).find(|(g, f)| g != f);
        panic!(
            "tests/usernames/django-{DJANGO}.txt is not what Django {DJANGO} generates with this Python \
             ({} lines generated, {} committed; first difference: {diff:?}); regenerate it with normalize.py",
            generated.lines().count(),
            FIXTURE.lines().count(),
        );
    }
}
