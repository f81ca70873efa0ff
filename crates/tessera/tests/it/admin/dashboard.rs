//! The dashboard's usage charts: requests with a known outcome mix on another instance, flushed by
//! its graceful stop, show up exactly in the charts' summaries, data tables and the per-client
//! usage table; with usage analytics off, the dashboard says so and charts the audit log's logins.

use super::Site;
use std::time::Duration;
use tessera_testkit::{Backend, Method, PASSWORD, test_each_backend};

/// The `aria-label` of the element `css`.
fn aria_label(site: &Site, css: &str) -> String {
    let script = format!("return document.querySelector({css:?}).getAttribute('aria-label')");
    site.browser.script(&script).as_str().unwrap_or_default().to_string()
}

/// The cells of the data table `css`'s footer (the totals), hidden in a closed `<details>` or not.
fn footer(site: &Site, css: &str) -> Vec<String> {
    let script = format!(
        "return Array.from(document.querySelectorAll({:?})).map(c => c.textContent.trim())",
        format!("{css} tfoot td")
    );
    let cells = site.browser.script(&script);
    cells.as_array().map(|a| a.iter().map(|c| c.as_str().unwrap_or_default().to_string()).collect()).unwrap_or_default()
}

fn usage_charts(backend: Backend) {
    let Some(site) = Site::new("dashboard-usage", backend) else { return };
    let env = &site.env;
    env.ok(&["client", "create", "web", "--token-ttl", "1d"]);
    env.ok(&["client", "create", "brief", "--token-ttl", "1s"]);
    env.create_user("alice", &[]);
    let token = |client: &str| {
        let out = env.ok(&["token", "create", "--user", "alice", "--client", client]);
        out.lines().next().expect("the token").trim().to_string()
    };
    let (good, brief) = (token("web"), token("brief"));

    // Another instance takes the traffic: 5 good requests, 2 invalid tokens, 1 expired token,
    // a failed login and a good one; its graceful stop writes the counts.
    let other = env.serve(&[]);
    let call = |token: &str| other.call(Method::GET, "/api/auth/sessions/", Some(token)).0;
    assert!((0..5).all(|_| call(&good) == 200));
    let forged = tessera_testkit::forged(&good);
    assert_eq!((call(&forged), call("tsr_nonsense")), (401, 401));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(call(&brief), 401, "the 1 s token has expired");
    let body = serde_json::json!({"username": "alice", "password": "wrong password", "client": "web"});
    let (status, _) = tessera_testkit::http(Method::POST, &format!("{}/api/auth/login/", other.base), None, Some(body));
    assert_eq!(status, 400);
    let body = serde_json::json!({"username": "alice", "password": PASSWORD, "client": "web"});
    let (status, _) = tessera_testkit::http(Method::POST, &format!("{}/api/auth/login/", other.base), None, Some(body));
    assert_eq!(status, 200);
    other.stop();

    site.sign_in_as_admin();
    site.visit("/", "dashboard-usage");
    let b = &site.browser;
    assert!(!b.exists("#usage-off"));
    let requests = aria_label(&site, "#requests-chart");
    assert!(
        requests.contains(": 5 ok, 2 invalid token, 1 expired, 0 inactive user, 0 forbidden client, 0 throttled;"),
        "{requests}"
    );
    assert!(requests.contains("the busiest day had 8."), "{requests}");
    assert_eq!(footer(&site, "#requests-chart-data"), ["5", "2", "1", "0", "0", "0", ""]);
    let logins = aria_label(&site, "#logins-chart");
    assert!(logins.contains(": 1 ok, 1 failed, 0 throttled;"), "{logins}");
    assert_eq!(footer(&site, "#logins-chart-data"), ["1", "1", "0", ""]);
    // 14 bars, each with a hover title; today's names its figures.
    assert_eq!(b.count("#requests-chart g.bar title"), 14);
    let today = chrono::Utc::now().date_naive().to_string();
    let titles =
        b.script("return Array.from(document.querySelectorAll('#requests-chart title')).map(t => t.textContent)");
    let titles = titles.as_array().cloned().unwrap_or_default();
    assert!(
        titles.iter().any(|t| t.as_str().is_some_and(|t| t.starts_with(&today) && t.contains("5 ok, 2 invalid token"))),
        "{titles:?}"
    );
    // The y axis is labelled: 0, half and the top of the scale (10 for a busiest day of 8).
    let ticks =
        b.script("return Array.from(document.querySelectorAll('#requests-chart text.tick')).map(t => t.textContent)");
    assert_eq!(ticks, serde_json::json!(["0", "5", "10"]));
    // The per-client usage table: ok, refused, throttled, active users, logins, failed logins.
    let row = |client: &str| -> Vec<String> {
        let script = format!(
            "return Array.from(document.querySelectorAll(\"#usage-totals tr[data-client='{client}'] td.num\")).map(c => c.textContent)"
        );
        b.script(&script)
            .as_array()
            .map(|a| a.iter().map(|c| c.as_str().unwrap_or_default().to_string()).collect())
            .unwrap_or_default()
    };
    assert_eq!(row("web")[..6], ["5", "0", "0", "1", "1", "0"], "{:?}", row("web"));
    assert_eq!(row("brief")[..4], ["0", "1", "0", "0"], "{:?}", row("brief"));
    assert_eq!(row("unknown")[..6], ["0", "2", "0", "0", "0", "1"], "{:?}", row("unknown"));
    // The admin's own sessions are not API usage.
    assert_eq!(b.count("#usage-totals tr[data-client='tessera-admin']"), 0);
    // The data table opens without script.
    assert_eq!(b.text("#requests-chart-data"), "", "closed at first");
    b.click_in_place("#requests-chart-data-toggle");
    let table = b.text("#requests-chart-data");
    assert!(table.contains(&today) && table.to_lowercase().contains("total 5 2 1 0 0 0"), "{table}");
    b.screenshot("dashboard-usage-table");
    b.assert_no_console_errors("dashboard with usage");
}

test_each_backend!(usage_charts => usage_charts_on_sqlite, usage_charts_on_postgres);

/// Usage analytics off: the dashboard says how to turn it on, and charts the audit log's logins
/// (with a labelled scale).
fn usage_off(backend: Backend) {
    let Some(site) = Site::with_env("dashboard-usage-off", backend, &[("TESSERA_USAGE", "false")]) else { return };
    site.env.ok(&["client", "create", "web", "--token-ttl", "1d"]);
    site.env.create_user("alice", &[]);
    // Two good logins and three failed ones on another instance, whose graceful stop writes them
    // to the audit log.
    let other = site.env.serve(&[]);
    for password in [PASSWORD, "wrong", "wrong", PASSWORD, "wrong"] {
        let body = serde_json::json!({"username": "alice", "password": password, "client": "web"});
        tessera_testkit::http(Method::POST, &format!("{}/api/auth/login/", other.base), None, Some(body));
    }
    other.stop();
    site.sign_in_as_admin();
    site.visit("/", "dashboard-usage-off");
    let b = &site.browser;
    let off = b.text("#usage-off");
    assert!(off.contains("Usage analytics is off") && off.contains("usage = true"), "{off}");
    assert!(!b.exists("#requests-chart"));
    // The staff sign-in is a login too, written by this server's audit writer when it gets to it.
    let logins = aria_label(&site, "#logins-chart");
    assert!(logins.contains(": 2 ok, 3 failed;") || logins.contains(": 3 ok, 3 failed;"), "{logins}");
    let totals = footer(&site, "#logins-chart-data");
    assert!(totals == ["2", "3", ""] || totals == ["3", "3", ""], "{totals:?}");
    let ticks =
        b.script("return Array.from(document.querySelectorAll('#logins-chart text.tick')).map(t => t.textContent)");
    assert!(ticks == serde_json::json!(["0", "5", "10"]) || ticks == serde_json::json!(["0", "2", "4"]), "{ticks}");
    b.assert_no_console_errors("dashboard without usage");
}

test_each_backend!(usage_off => usage_off_on_sqlite, usage_off_on_postgres);
