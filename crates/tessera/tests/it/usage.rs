//! Usage analytics and metrics through the binary: requests split across two real `tessera serve`
//! processes on one database add up exactly in `tessera stats` after both stop gracefully; each
//! outcome lands in its column; `/metrics` on its own listener parses by the text format's rules,
//! has every metric with its type, and moves as requests are made.

use crate::TESSERA;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use tessera_testkit::{Backend, Method, Server, TestEnv, http_text, json, test_each_backend};

/// `tessera stats --json ARGS`.
fn stats(env: &TestEnv, args: &[&str]) -> Value {
    let mut all = vec!["stats", "--json"];
    all.extend_from_slice(args);
    json(&env.ok(&all))
}

/// The row of `client` in `rows` (a `days` or `totals` array).
fn row<'a>(rows: &'a Value, client: &str) -> &'a Value {
    rows.as_array()
        .and_then(|rows| rows.iter().find(|r| r["client"] == client))
        .unwrap_or_else(|| panic!("no row for {client}: {rows:#}"))
}

/// `n` authenticated GETs of the sessions list; their statuses.
fn sessions(server: &Server, token: &str, n: usize) -> Vec<u16> {
    (0..n).map(|_| server.call(Method::GET, "/api/auth/sessions/", Some(token)).0).collect()
}

/// One metric family: its type, and its samples by name and labels.
#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: bool,
    samples: BTreeMap<(String, String), f64>,
}

/// Parses the text exposition format (0.0.4): `# HELP`, `# TYPE`, then samples
/// `name{label="value",…} number`; a sample belongs to the family whose name it extends
/// (`_bucket`, `_sum`, `_count` for histograms). Panics on any line the format does not allow.
fn parse_metrics(text: &str) -> BTreeMap<String, Family> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or_else(|| panic!("HELP without text: {line}"));
            assert!(!help.is_empty());
            families.entry(name.into()).or_default().help = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("bad TYPE: {line}"));
            assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind), "{line}");
            let family = families.entry(name.into()).or_default();
            assert!(family.kind.is_empty() && family.samples.is_empty(), "TYPE twice or after samples: {line}");
            family.kind = kind.into();
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment: {line}");
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.strip_suffix('}').unwrap_or_else(|| panic!("bad labels: {line}"))),
            None => (series, ""),
        };
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'), "bad name: {line}");
        for pair in split_labels(labels) {
            let (key, quoted) = pair.split_once('=').unwrap_or_else(|| panic!("bad label: {line}"));
            assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "bad label name: {line}");
            assert!(quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"'), "unquoted: {line}");
        }
        let family = ["_bucket", "_sum", "_count", ""]
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .find(|base| families.get(*base).is_some_and(|f| !f.kind.is_empty()))
            .unwrap_or_else(|| panic!("a sample before its TYPE: {line}"))
            .to_string();
        let samples = &mut families.get_mut(&family).expect("family").samples;
        assert!(samples.insert((name.into(), labels.into()), value).is_none(), "sample twice: {line}");
    }
    families
}

/// `a="x",b="y"` → `["a=\"x\"", "b=\"y\""]`, honouring escaped quotes inside values.
fn split_labels(labels: &str) -> Vec<String> {
    let (mut out, mut current, mut quoted, mut escaped) = (Vec::new(), String::new(), false, false);
    for c in labels.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Scrapes `/metrics`.
fn scrape(metrics: &str) -> BTreeMap<String, Family> {
    let (status, kind, text) = http_text(&format!("{metrics}/metrics"));
    assert_eq!(status, 200, "{text}");
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    parse_metrics(&text)
}

fn sample(families: &BTreeMap<String, Family>, family: &str, name: &str, labels: &str) -> f64 {
    families
        .get(family)
        .and_then(|f| f.samples.get(&(name.to_string(), labels.to_string())))
        .copied()
        .unwrap_or_else(|| panic!("no {name}{{{labels}}}"))
}

fn counts_add_up(backend: Backend) {
    let Some(env) = TestEnv::new(TESSERA, backend) else { return };
    env.ok(&["migrate"]);
    env.ok(&["client", "create", "web", "--token-ttl", "1d"]);
    env.ok(&["client", "create", "slow", "--token-ttl", "1d", "--throttle-rate", "2/m"]);
    env.create_user("alice", &[]);
    env.create_user("bob", &[]);
    env.create_user("carol", &[]);
    let token = |user: &str, client: &str| {
        let out = env.ok(&["token", "create", "--user", user, "--client", client]);
        out.lines().next().expect("the token").trim().to_string()
    };
    let (alice, alice_slow, bob) = (token("alice", "web"), token("alice", "slow"), token("bob", "web"));

    let a = env.serve(&["--metrics-bind", "127.0.0.1:0"]);
    let line = a.wait_for_log("metrics at http://", Duration::from_secs(10));
    let metrics: String = line
        .split("metrics at ")
        .nth(1)
        .map(|rest| rest.chars().take_while(|c| !c.is_whitespace() && *c != '"').collect())
        .expect("the metrics address");
    let metrics = metrics.trim_end_matches("/metrics").to_string();
    let b = env.serve(&[]);
    // Without metrics_bind there is no metrics listener, and the API has no /metrics.
    assert_eq!(b.get("/metrics").0, 404);

    // 40 good requests split 25 / 15; two invalid tokens; a throttled one; an inactive user's;
    // a failed login and a good one.
    assert!(sessions(&a, &alice, 25).iter().all(|s| *s == 200));
    assert!(sessions(&b, &alice, 15).iter().all(|s| *s == 200));
    let forged = tessera_testkit::forged(&alice);
    assert_eq!(sessions(&a, &forged, 1), [401]);
    assert_eq!(sessions(&a, "tsr_nonsense", 1), [401]);
    assert_eq!(sessions(&b, &alice_slow, 3), [200, 200, 429]);
    env.ok(&["user", "deactivate", "bob"]);
    let start = std::time::Instant::now();
    // The deactivation reaches A's cache within a second; the request after it is refused.
    // (bob's token was never used before: A has nothing cached, and reads the store.)
    let mut bob_ok = 0;
    while sessions(&a, &bob, 1) != [401] {
        bob_ok += 1;
        assert!(start.elapsed() < Duration::from_secs(5), "bob's token still works on A");
        std::thread::sleep(Duration::from_millis(100));
    }
    let body = serde_json::json!({"username": "alice", "password": "wrong password", "client": "web"});
    let (status, _) = tessera_testkit::http(Method::POST, &format!("{}/api/auth/login/", a.base), None, Some(body));
    assert_eq!(status, 400);
    b.token("alice", "web");
    // carol logs in and makes no request: still an active user of web today.
    b.token("carol", "web");

    // The metrics of A: every family with its type, and A's own counts.
    let families = scrape(&metrics);
    let expected = [
        ("tessera_authentications_total", "counter"),
        ("tessera_authentication_duration_seconds", "histogram"),
        ("tessera_logins_total", "counter"),
        ("tessera_tokens_issued_total", "counter"),
        ("tessera_tokens_revoked_total", "counter"),
        ("tessera_throttled_total", "counter"),
        ("tessera_cache_requests_total", "counter"),
        ("tessera_cache_trusted", "gauge"),
        ("tessera_store_errors_total", "counter"),
        ("tessera_invalidation_lag_seconds", "histogram"),
        ("tessera_active_tokens", "gauge"),
    ];
    for (name, kind) in expected {
        let family = families.get(name).unwrap_or_else(|| panic!("{name} is missing"));
        assert_eq!((family.kind.as_str(), family.help), (kind, true), "{name}");
    }
    let ok = |f: &BTreeMap<String, Family>| {
        sample(f, "tessera_authentications_total", "tessera_authentications_total", r#"client="web",outcome="ok""#)
    };
    assert_eq!(ok(&families), f64::from(25 + bob_ok));
    let invalid = r#"client="unknown",outcome="invalid_token""#;
    assert_eq!(sample(&families, "tessera_authentications_total", "tessera_authentications_total", invalid), 2.0);
    let inactive = r#"client="web",outcome="inactive_user""#;
    assert_eq!(sample(&families, "tessera_authentications_total", "tessera_authentications_total", inactive), 1.0);
    let failed = r#"client="unknown",outcome="failed""#;
    assert_eq!(sample(&families, "tessera_logins_total", "tessera_logins_total", failed), 1.0);
    assert_eq!(sample(&families, "tessera_cache_trusted", "tessera_cache_trusted", ""), 1.0);
    let hits = sample(&families, "tessera_cache_requests_total", "tessera_cache_requests_total", r#"result="hit""#);
    assert!(hits >= 20.0, "most of A's 25 requests came from its cache: {hits}");
    // A histogram: cumulative buckets up to +Inf, which equals the count.
    let h = &families["tessera_authentication_duration_seconds"].samples;
    let buckets: Vec<f64> = h.iter().filter(|((n, _), _)| n.ends_with("_bucket")).map(|(_, v)| *v).collect();
    let count = h[&("tessera_authentication_duration_seconds_count".to_string(), String::new())];
    assert!(h.keys().any(|(_, l)| l == r#"le="0.0001""#), "sub-millisecond buckets");
    assert_eq!(h[&("tessera_authentication_duration_seconds_bucket".to_string(), r#"le="+Inf""#.to_string())], count);
    assert!(buckets.iter().all(|b| *b <= count) && count >= 28.0, "{h:?}");
    // Counts move as requests are made.
    sessions(&a, &alice, 3);
    assert_eq!(ok(&scrape(&metrics)), f64::from(28 + bob_ok));

    a.stop();
    b.stop();

    let report = stats(&env, &[]);
    assert_eq!(report["days"].as_array().map(Vec::len), Some(3), "{report:#}");
    let web = row(&report["totals"], "web");
    assert_eq!(web["requests"]["ok"], 43 + bob_ok, "25 + 15 + 3 on two instances: {web:#}");
    assert_eq!(web["requests"]["inactive_user"], 1, "{web:#}");
    assert_eq!(web["requests"]["invalid_token"], 0);
    // alice and carol (bob too if his token worked on A before the deactivation reached it);
    // alice's login gave her CLI-made token back, carol's made one.
    let active = if bob_ok > 0 { 3 } else { 2 };
    assert_eq!(
        (&web["logins"]["ok"], &web["tokens_issued"], &web["active_users"]),
        (&2.into(), &3.into(), &active.into())
    );
    let slow = row(&report["totals"], "slow");
    assert_eq!((&slow["requests"]["ok"], &slow["requests"]["throttled"]), (&2.into(), &1.into()), "{slow:#}");
    assert_eq!((&slow["tokens_issued"], &slow["active_users"]), (&1.into(), &1.into()));
    let unknown = row(&report["totals"], "unknown");
    assert_eq!((&unknown["requests"]["invalid_token"], &unknown["logins"]["failed"]), (&2.into(), &1.into()));
    assert_eq!(unknown["requests"]["ok"], 0);
    // The per-day rows say the same, today.
    let today = report["to"].as_str().expect("to").to_string();
    assert!(report["days"].as_array().is_some_and(|d| d.iter().all(|r| r["day"] == today.as_str())));
    assert_eq!(row(&report["days"], "web")["requests"]["ok"], 43 + bob_ok);
    // --client narrows it; the table has a row per day per client, and the totals.
    let only = stats(&env, &["--client", "slow", "--days", "1"]);
    assert_eq!(only["totals"].as_array().map(Vec::len), Some(1));
    let table = env.ok(&["stats"]);
    let header: Vec<&str> = table.lines().next().map(|h| h.split_whitespace().collect()).unwrap_or_default();
    assert_eq!(header[..4], ["DAY", "CLIENT", "OK", "INVALID"], "{table}");
    assert!(
        table.lines().any(|l| l.starts_with(&today) && l.contains("web") && l.contains(&format!(" {} ", 43 + bob_ok))),
        "{table}"
    );

    // Bad flags: one line, nothing read.
    env.fails(&["stats", "--client", " web"], "invalid --client ' web'");
    assert!(env.ok(&["stats", "--client", "never/used"]).contains("no usage counted"));
    for bad in [
        ["stats", "--days", "0"],
        ["stats", "--days", "many"],
        ["stats", "--days", "99999"],
        ["stats", "--days=-5", "--json"],
        ["stats", "--days", "18446744073709551616"],
        ["stats", "--days", ""],
    ] {
        let out = env.run(&bad);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains("--days"), "{stderr}");
    }
    // A metrics address that is not one is refused at start-up.
    env.fails(&["serve", "--metrics-bind", "everywhere"], "invalid metrics_bind 'everywhere'");
}

test_each_backend!(counts_add_up => usage_adds_up_across_instances_on_sqlite, usage_adds_up_across_instances_on_postgres);
