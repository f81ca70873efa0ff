//! `expires_in_str` against humanize 4.17.0's `naturaldelta` itself, never a table from memory:
//! `tests/humanize/naturaldelta-4.17.0.tsv` was written by the package (`tests/humanize/generate.py`),
//! and with `TESSERA_TEST_PYTHON` naming a Python that has `humanize==4.17.0` (CI creates one) the
//! script runs again and its output must equal the committed fixture. Without that Python the
//! live comparison prints why and passes, unless `TESSERA_REQUIRE_SERVICES=1`, where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::TimeDelta;
use tessera_core::expires_in_str;

const FIXTURE: &str = include_str!("../humanize/naturaldelta-4.17.0.tsv");
const VERSION: &str = "4.17.0";

fn humanize_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/humanize")
}

/// The fixture's rows: microseconds and humanize's text.
fn rows() -> Vec<(i64, &'static str)> {
    FIXTURE
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|line| {
            let (micros, text) = line.split_once('\t').unwrap_or_else(|| panic!("bad fixture row {line:?}"));
            (micros.parse().unwrap_or_else(|e| panic!("bad fixture row {line:?}: {e}")), text)
        })
        .collect()
}

#[test]
fn expires_in_str_matches_every_fixture_row() {
    let rows = rows();
    assert!(rows.len() > 10_000, "the fixture has {} rows", rows.len());
    let wrong: Vec<String> = rows
        .iter()
        .filter_map(|&(micros, want)| {
            let got = expires_in_str(TimeDelta::microseconds(micros));
            (got != want).then(|| format!("{micros} µs: humanize {want:?}, Tessera {got:?}"))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} rows differ:\n{}",
        wrong.len(),
        rows.len(),
        wrong[..wrong.len().min(40)].join("\n")
    );
}

#[test]
fn fixture_sweeps_every_boundary() {
    let micros: std::collections::BTreeSet<i64> = rows().iter().map(|r| r.0).collect();
    let s = |n: i64| n * 1_000_000;
    // Every second to 2 hours, every day to 3 years, out to 20 years, negatives.
    assert!((0..=7_200).all(|n| micros.contains(&s(n))));
    assert!((0..=3 * 365).all(|d| micros.contains(&s(d * 86_400)) && micros.contains(&(s(d * 86_400) - 1))));
    assert!(micros.contains(&s(20 * 365 * 86_400)));
    assert!(micros.iter().filter(|&&m| m < 0).count() > 1_000);
}

/// The Python with humanize 4.17.0, or why there is none.
fn python() -> Result<String, String> {
    let python = std::env::var("TESSERA_TEST_PYTHON").map_err(|_| {
        "TESSERA_TEST_PYTHON is not set (a Python with humanize==4.17.0; .ci/run makes one)".to_string()
    })?;
    let out = Command::new(&python)
        .args(["-c", "import humanize; print(humanize.__version__)"])
        .output()
        .map_err(|e| format!("TESSERA_TEST_PYTHON={python} does not run: {e}"))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || version != VERSION {
        return Err(format!(
            "TESSERA_TEST_PYTHON={python} has no humanize {VERSION} (version {version:?}): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(python)
}

#[test]
fn fixture_is_what_humanize_4_17_0_generates() {
    let python = match python() {
        Ok(python) => python,
        Err(why) if std::env::var("TESSERA_REQUIRE_SERVICES").is_ok_and(|v| v == "1") => {
            panic!("{why} (TESSERA_REQUIRE_SERVICES=1, so this is a failure)")
        }
        Err(why) => {
            eprintln!("skipping the live humanize comparison: {why}");
            return;
        }
    };
    let out = std::env::temp_dir().join(format!("tessera-naturaldelta-{}.tsv", std::process::id()));
    let status =
        Command::new(&python).arg(humanize_dir().join("generate.py")).arg(&out).status().expect("run generate.py");
    let generated = std::fs::read_to_string(&out);
    let _ = std::fs::remove_file(&out);
    assert!(status.success(), "generate.py failed: {status}");
    let generated = generated.expect("read the generated fixture");
    if generated != FIXTURE {
        let diff = generated.lines().zip(FIXTURE.lines()).find(|(g, f)| g != f);
        panic!(
            "tests/humanize/naturaldelta-{VERSION}.tsv is not what humanize {VERSION} generates \
             ({} lines generated, {} committed; first difference: {diff:?}); regenerate it with generate.py",
            generated.lines().count(),
            FIXTURE.lines().count(),
        );
    }
}
