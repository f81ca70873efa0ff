//! What a staff member does in the admin, step by step, in the browser.

use super::{REFUSED, Site, seed};
use crate::cluster::refused_within;
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use tessera_testkit::{Backend, Method, PASSWORD, test_each_backend};

/// Staff login; non-staff, inactive, unknown and wrong password all refused alike; the cookie's
/// flags; the session token is useless on the API; every page renders without console errors;
/// logout ends the session.
fn sign_in_and_out(backend: Backend) {
    let Some(site) = Site::new("login", backend) else { return };
    let b = &site.browser;
    site.env.create_user("plain", &[]);
    site.env.create_user("gone", &["--staff"]);
    site.env.ok(&["user", "deactivate", "gone"]);

    site.open("/");
    assert!(b.url().ends_with("/admin/login"), "not sent to the login page: {}", b.url());
    b.assert_no_console_errors("login");
    for (user, password) in [("admin", "wrong password"), ("plain", PASSWORD), ("gone", PASSWORD), ("nobody", PASSWORD)]
    {
        site.sign_in(user, password);
        assert!(b.url().ends_with("/admin/login"), "{user}: {}", b.url());
        assert_eq!(b.text("#login-error"), REFUSED, "{user}");
        assert!(b.cookies().iter().all(|c| c.name != "tessera_admin"), "{user} got a session cookie");
    }
    b.screenshot("refused");

    site.sign_in_as_admin();
    let cookies = b.cookies();
    let session = cookies.iter().find(|c| c.name == "tessera_admin").expect("session cookie");
    assert_eq!(session.http_only, Some(true), "HttpOnly");
    assert_eq!(session.same_site.as_deref(), Some("Strict"), "SameSite");
    assert_eq!(session.path.as_deref(), Some("/"), "Path");
    assert_ne!(session.secure, Some(true), "not Secure without admin_secure_cookie");
    assert_eq!(b.script("return document.cookie"), "", "scripts cannot read the session cookie");
    // The session is a Tessera token, and the API refuses it.
    let token = session.value.clone();
    assert!(token.starts_with("tsr_"), "{token}");
    let (status, body) = site.server.call(Method::GET, "/api/auth/sessions/", Some(&token));
    assert_eq!(status, 401, "a staff session on the API: {body}");
    assert_eq!(body["detail"], "Invalid token.", "refused like any invalid token: {body}");

    for (path, shot) in [
        ("/", "dashboard"),
        ("/clients", "clients"),
        ("/clients/new", "client-new"),
        ("/tokens", "tokens"),
        ("/users", "users"),
        ("/audit", "audit"),
    ] {
        site.visit(path, shot);
        assert!(b.exists("#staff-name"), "{path} is not an admin page");
    }

    b.click("#logout");
    assert!(b.url().ends_with("/admin/login"), "{}", b.url());
    assert!(b.cookies().iter().all(|c| c.name != "tessera_admin"), "cookie kept after logout");
    site.open("/clients");
    assert!(b.url().ends_with("/admin/login"), "still signed in after logout");
    // The token itself is gone: presenting it again (as a stolen cookie would) is refused.
    let stolen = raw_request(&site, "GET", "/admin/clients", &format!("Cookie: tessera_admin={token}\r\n"), "");
    assert!(stolen.starts_with("HTTP/1.1 303"), "{stolen}");
    let tokens = site.env.ok(&["token", "list", "--json"]);
    assert!(!tokens.contains("tessera-admin"), "the session token outlived the logout: {tokens}");
    b.assert_no_console_errors("after logout");
}

test_each_backend!(sign_in_and_out => sign_in_and_out_on_sqlite, sign_in_and_out_on_postgres);

/// One raw HTTP/1.1 request (no browser, no Origin, no Sec-Fetch-Site); the whole answer.
fn raw_request(site: &Site, method: &str, path: &str, headers: &str, body: &str) -> String {
    let addr = site.server.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("write");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// Clients: a bad TTL is an error beside its field and nothing is saved; a good one is created;
/// a cross-site POST is refused; delete asks first, saying how many tokens go.
fn clients(backend: Backend) {
    let Some(site) = Site::new("clients", backend) else { return };
    let b = &site.browser;
    site.sign_in_as_admin();
    let before = site.env.ok(&["client", "list", "--json"]);

    site.open("/clients/new");
    b.fill("#name", "web");
    b.fill("#token_ttl", "10 parsecs");
    b.fill("#throttle_rate", "lots");
    b.click("#save");
    assert!(b.text("#token_ttl-error").contains("Token TTL"), "{}", b.text("#token_ttl-error"));
    assert!(b.text("#throttle_rate-error").contains("Throttle rate"), "{}", b.text("#throttle_rate-error"));
    assert!(b.exists("#form-errors"));
    // What was typed is kept, to correct.
    assert_eq!(b.script("return document.getElementById('token_ttl').value"), "10 parsecs");
    b.assert_no_console_errors("client form with errors");
    b.screenshot("bad-ttl");
    assert_eq!(site.env.ok(&["client", "list", "--json"]), before, "a refused form saved something");

    b.fill("#token_ttl", "1d");
    b.fill("#throttle_rate", "100/m");
    b.fill("#description", "The web app");
    b.click("#save");
    assert!(b.url().contains("/admin/clients?done=client_created"), "{}", b.url());
    assert!(b.page_text().contains("Client created."));
    assert!(b.exists("tr[data-client='web']"));
    b.screenshot("created");
    let list = tessera_testkit::json(&site.env.ok(&["client", "list", "--json"]));
    let web = list.as_array().expect("list").iter().find(|c| c["name"] == "web").expect("web saved");
    assert_eq!(web["token_ttl"], "1d", "{web}");
    assert_eq!(web["throttle_rate"], "100/m", "{web}");

    // A cross-site form POST, from a page of another origin (a data: URL is opaque: cross-site).
    let form = format!(
        "data:text/html,<form method=post action='{}/clients'><input name=name value=evil><input name=token_ttl value=1d></form><script>document.forms[0].submit()</script>",
        site.admin
    );
    b.goto(&form);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !b.page_text().contains("Cross-site request refused") {
        assert!(Instant::now() < deadline, "cross-site POST not refused: {}", b.page_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    b.screenshot("csrf-refused");
    let _ = b.console_errors(); // the refused POST's 403 is logged on that foreign page
    // Without any origin header, even with the session cookie: refused (fail closed).
    let cookie = b.cookies();
    site.open("/clients");
    let session = b.cookies().into_iter().chain(cookie).find(|c| c.name == "tessera_admin").expect("cookie").value;
    let answer = raw_request(
        &site,
        "POST",
        "/admin/clients",
        &format!("Cookie: tessera_admin={session}\r\n"),
        "name=evil&token_ttl=1d",
    );
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    // The same request from the admin's own origin goes through (the check is the origin).
    let answer = raw_request(
        &site,
        "POST",
        "/admin/clients",
        &format!("Cookie: tessera_admin={session}\r\nSec-Fetch-Site: same-origin\r\n"),
        "name=ok&token_ttl=1d",
    );
    assert!(answer.starts_with("HTTP/1.1 303"), "{answer}");
    let names = site.env.ok(&["client", "list", "--json"]);
    assert!(!names.contains("evil"), "a cross-site POST created a client: {names}");

    // Security headers on every page.
    let page = raw_request(&site, "GET", "/admin/login", "", "");
    for header in [
        "content-security-policy: default-src 'none'; script-src 'self'; style-src 'self'",
        "frame-ancestors 'none'",
        "x-content-type-options: nosniff",
        "referrer-policy: same-origin",
    ] {
        assert!(page.to_lowercase().contains(header), "{header} missing: {page}");
    }

    // Delete: a confirmation that counts the tokens.
    site.env.create_user("alice", &[]);
    site.server.token("alice", "web");
    site.open("/clients");
    b.click("tr[data-client='web'] a.danger");
    assert!(b.text("#delete-summary").contains("1 token"), "{}", b.text("#delete-summary"));
    b.assert_no_console_errors("delete confirmation");
    b.screenshot("delete-confirm");
    b.click("#confirm-delete");
    assert!(b.page_text().contains("Client deleted"), "{}", b.page_text());
    assert!(!b.exists("tr[data-client='web']"));
}

test_each_backend!(clients => clients_on_sqlite, clients_on_postgres);

/// Users and tokens across two instances: create a user and a token (shown once); revoke it in
/// the UI and the other instance refuses it within a second; deactivate a user and their token
/// is refused; bulk revoke; search; the audit log names the admin.
fn tokens_and_users(backend: Backend) {
    let Some(site) = Site::new("tokens", backend) else { return };
    let b = &site.browser;
    site.env.ok(&["client", "create", "web"]);
    site.env.ok(&["client", "create", "ios"]);
    site.env.create_user("alice", &[]);
    site.env.create_user("bob", &[]);
    let other = site.env.serve(&[]);
    site.sign_in_as_admin();

    // A user, with the password twice.
    site.open("/users");
    b.fill("#new-username", "carol");
    b.fill("#new-password", "s3cret-enough");
    b.fill("#new-password2", "not the same");
    b.click("#create-user");
    assert!(b.text("#password-error").contains("differ"), "{}", b.text("#password-error"));
    assert!(!site.env.ok(&["user", "list", "--json"]).contains("carol"), "saved despite the error");
    b.fill("#new-username", "carol");
    b.fill("#new-password", "s3cret-enough");
    b.fill("#new-password2", "s3cret-enough");
    b.click("#create-user");
    assert!(b.page_text().contains("User created."), "{}", b.page_text());
    b.assert_no_console_errors("user page");
    b.screenshot("user-created");

    // A token for (carol, web): shown once, and it works on the other instance.
    site.open("/tokens");
    b.fill("#c-user", "carol");
    b.select("#c-client", "web");
    b.click("#create-token");
    let secret = b.text("#new-secret");
    assert!(secret.starts_with("tsr_"), "{secret}");
    b.assert_no_console_errors("token created");
    b.screenshot("token-created");
    let (status, body) = other.call(Method::GET, "/api/auth/sessions/", Some(&secret));
    assert_eq!(status, 200, "{body}");
    site.open("/tokens");
    assert!(!b.exists("#new-secret"), "the secret was shown twice");
    assert!(!b.page_text().contains(&secret), "the secret was shown twice");
    // A second token for the pair is refused, not handed out again.
    b.fill("#c-user", "carol");
    b.select("#c-client", "web");
    b.click("#create-token");
    assert!(b.text("#token-error").contains("already holds a token"), "{}", b.text("#token-error"));
    assert!(!b.exists("#new-secret"));

    // Search by username; revoke that one token; the other instance refuses it within 1 s.
    site.open("/tokens?user=carol");
    assert_eq!(b.count("tr[data-token]"), 1);
    b.click("tr[data-token] button[name=one]");
    assert!(b.page_text().contains("Tokens revoked."), "{}", b.page_text());
    let took = refused_within(&other, &secret, Duration::from_secs(1));
    eprintln!("revoked in the admin, refused by the other instance after {took:?}");

    // Deactivate a user: their token stops working everywhere.
    let alice = other.token("alice", "web");
    site.open("/users?q=ali");
    assert_eq!(b.count("tr[data-user]"), 1, "search");
    b.click("tr[data-user='alice'] a");
    b.click("#deactivate");
    assert_eq!(b.text("#user-status"), "inactive");
    b.screenshot("user-deactivated");
    let (status, _) = other.call(Method::GET, "/api/auth/sessions/", Some(&alice));
    let refused = status == 401 || { refused_within(&other, &alice, Duration::from_secs(1)) < Duration::from_secs(1) };
    assert!(refused);

    // Bulk: tick two tokens of the client filter, revoke them together.
    let bob_web = other.token("bob", "web");
    let bob_ios = other.token("bob", "ios");
    let (status, body) = site.server.login("carol", "web");
    assert_eq!(status, 400, "carol's password is not the test one: {body}");
    site.open("/tokens");
    b.select("#f-client", "ios");
    b.click("#search");
    assert_eq!(b.count("tr[data-token]"), 1, "filter by client");
    site.open("/tokens?user=bob");
    assert_eq!(b.count("tr[data-token]"), 2);
    for checkbox in 0..2 {
        b.script(&format!("document.querySelectorAll(\"input[name=token]\")[{checkbox}].click()"));
    }
    b.screenshot("bulk-selected");
    b.click("#revoke-selected");
    assert!(b.page_text().contains("Tokens revoked."));
    assert_eq!(b.count("tr[data-token]"), 0);
    refused_within(&other, &bob_web, Duration::from_secs(1));
    refused_within(&other, &bob_ios, Duration::from_secs(1));

    // The audit log names the admin, by name, as the actor of those changes.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        site.open("/audit?actor=admin&by=admin&kind=token_revoked");
        if b.count("#audit tbody tr") >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "the admin's revocations are not in the audit log: {}", b.page_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    let actors = b.script("return [...document.querySelectorAll('#audit td.actor')].map(td => td.textContent)");
    assert!(actors.as_array().expect("actors").iter().all(|a| a == "admin (admin)"), "{actors}");
    site.open("/audit?actor=admin&by=someone-else&kind=token_revoked");
    assert_eq!(b.count("#audit tbody tr"), 0, "filtered by the staff member's name");
    site.open("/audit?actor=admin&by=admin&kind=token_revoked");
    let cli = site.env.ok(&["audit", "--json", "--kind", "token_revoked"]);
    let cli: serde_json::Value = serde_json::from_str(&cli).expect("audit json");
    let by_admin = cli.as_array().expect("records").iter().filter(|r| r["actor_name"] == "admin").count();
    assert!(by_admin >= 3, "tessera audit --json names the admin: {cli}");
    // ... and the address the admin acted from (the browser, on loopback).
    let records = cli.as_array().expect("records").iter().filter(|r| r["actor_name"] == "admin");
    assert!(records.clone().all(|r| r["ip"] == "127.0.0.1"), "the admin's address: {cli}");
    let table = site.env.ok(&["audit", "--kind", "token_revoked"]);
    assert!(table.contains("admin (admin)"), "{table}");
    b.assert_no_console_errors("audit");
    b.screenshot("audit");
    // The CSV export of the same filter, as the browser would fetch it (with its session cookie).
    let csv = b.script(&format!(
        "return fetch('{}/audit.csv?actor=admin&kind=token_revoked').then(r => r.text())",
        site.admin
    ));
    let csv = csv.as_str().expect("csv");
    assert!(csv.starts_with("at,kind,actor,username,client,token_id,ip,user_agent,detail\r\n"), "{csv}");
    assert!(csv.lines().skip(1).all(|l| l.contains(",token_revoked,admin (admin),")), "{csv}");
    assert!(csv.lines().count() >= 4, "{csv}");

    // Set carol's password: the new one logs in (and her tokens went with the old one).
    site.open("/users?q=carol");
    b.click("tr[data-user='carol'] a");
    b.fill("#pw1", "another-long-one");
    b.fill("#pw2", "another-long-one");
    b.click("#set-password");
    assert!(b.page_text().contains("User saved."), "{}", b.page_text());
    let login = serde_json::json!({"username": "carol", "password": "another-long-one", "client": "web"});
    let (status, body) =
        tessera_testkit::http(Method::POST, &format!("{}/api/auth/login/", other.base), None, Some(login));
    assert_eq!(status, 200, "{body}");
    let carol = body["token"].as_str().expect("token").to_string();
    // Log out everywhere: her token is refused on the other instance within a second.
    site.open("/users?q=carol");
    b.click("tr[data-user='carol'] a");
    b.click("#logout-all");
    refused_within(&other, &carol, Duration::from_secs(1));
    // Delete her, after a confirmation that counts her tokens.
    b.click("#delete-user");
    assert!(b.text("#delete-summary").contains("0 tokens"), "{}", b.text("#delete-summary"));
    b.assert_no_console_errors("user delete confirmation");
    b.click("#confirm-delete");
    assert!(b.page_text().contains("User deleted"), "{}", b.page_text());
    assert!(!site.env.ok(&["user", "list", "--json"]).contains("carol"));
    site.visit("/", "dashboard");
}

test_each_backend!(tokens_and_users => tokens_and_users_on_sqlite, tokens_and_users_on_postgres);

/// Pagination over 10,000 tokens: 50 a page, pages disjoint, a search narrows server-side.
fn pagination(backend: Backend) {
    let Some(site) = Site::new("pages", backend) else { return };
    let b = &site.browser;
    let url = match site.env.database_url() {
        Some(url) => url.to_string(),
        None => format!("sqlite://{}", site.env.data_dir().join("tessera.db").display()),
    };
    seed::tokens(&url, 100, 100);
    site.sign_in_as_admin();
    let started = Instant::now();
    site.open("/tokens");
    eprintln!("first page of 10,000 tokens in {:?}", started.elapsed());
    assert!(b.text("#token-count").starts_with("10000 tokens · page 1 of 200"), "{}", b.text("#token-count"));
    assert_eq!(b.count("tr[data-token]"), 50);
    let ids = |b: &super::Browser| {
        b.script("return [...document.querySelectorAll('tr[data-token]')].map(r => r.dataset.token)")
    };
    let first = ids(b);
    b.screenshot("page-1");
    b.click("#next-page");
    assert!(b.text("#token-count").contains("page 2 of 200"));
    let second = ids(b);
    let first: Vec<_> = first.as_array().expect("ids").clone();
    assert!(second.as_array().expect("ids").iter().all(|id| !first.contains(id)), "pages overlap");
    b.assert_no_console_errors("page 2");
    // Back by cursor: the same first page.
    b.click("#prev-page");
    assert!(b.text("#token-count").contains("page 1 of 200"), "{}", b.text("#token-count"));
    assert_eq!(ids(b).as_array().expect("ids"), &first, "previous is the first page again");
    // Part of a name, in any case: every user whose name contains it.
    site.open("/tokens?user=U9");
    assert!(b.text("#token-count").starts_with("1100 tokens"), "u9, u90 … u99: {}", b.text("#token-count"));
    site.open("/tokens?user=U7_");
    assert!(b.text("#token-count").starts_with("0 tokens"), "`_` is literal: {}", b.text("#token-count"));
    site.open("/tokens?user=u7&sort=created");
    assert!(b.text("#token-count").starts_with("100 tokens"), "{}", b.text("#token-count"));
    // Users: pages of 50 by name, searched server-side.
    site.open("/users");
    assert!(b.text("#user-count").starts_with("101 users"), "{}", b.text("#user-count"));
    assert_eq!(b.count("tr[data-user]"), 50);
    let names = |b: &super::Browser| {
        b.script("return [...document.querySelectorAll('tr[data-user]')].map(r => r.dataset.user)")
    };
    let first_users = names(b);
    b.click("#next-users");
    let second_users = names(b);
    let first_users = first_users.as_array().expect("names").clone();
    assert!(second_users.as_array().expect("names").iter().all(|n| !first_users.contains(n)), "user pages overlap");
    b.click("#prev-users");
    assert_eq!(names(b).as_array().expect("names"), &first_users);
    b.assert_no_console_errors("users page");
    site.open("/users?q=U9");
    assert!(b.text("#user-count").starts_with("11 users"), "{}", b.text("#user-count"));
    site.open("/tokens?user=u7&client=c3");
    assert!(b.text("#token-count").starts_with("1 token"), "{}", b.text("#token-count"));
    b.screenshot("search");
}

test_each_backend!(pagination => pagination_on_sqlite, pagination_on_postgres);

/// Served over TLS (`admin_secure_cookie`): the session cookie is `Secure` and `__Host-` prefixed,
/// and only that name is read back.
fn secure_cookie(backend: Backend) {
    let Some(mut env) = tessera_testkit::TestEnv::new(crate::TESSERA, backend) else { return };
    env.env.insert("TESSERA_ADMIN_SECURE_COOKIE".into(), "true".into());
    env.create_user("admin", &["--staff"]);
    let server = env.serve(&[]);
    let addr = server.base.trim_start_matches("http://").to_string();
    let send = |request: String| {
        let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        stream.write_all(request.as_bytes()).expect("write");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    };
    let body = format!("username=admin&password={}", PASSWORD.replace(' ', "+"));
    let answer = send(format!(
        "POST /admin/login HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nSec-Fetch-Site: same-origin\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    let cookie =
        answer.lines().find_map(|l| l.strip_prefix("set-cookie: ")).unwrap_or_else(|| panic!("no cookie: {answer}"));
    assert!(cookie.starts_with("__Host-tessera_admin=tsr_"), "{cookie}");
    assert!(cookie.ends_with("; Path=/; HttpOnly; SameSite=Strict; Secure"), "{cookie}");
    let value = cookie.split(';').next().expect("pair").to_string();
    let get = |cookie: &str| {
        send(format!("GET /admin/clients HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nCookie: {cookie}\r\n\r\n"))
    };
    assert!(get(&value).starts_with("HTTP/1.1 200"), "the __Host- cookie is the session");
    let unprefixed = value.replacen("__Host-", "", 1);
    assert!(get(&unprefixed).starts_with("HTTP/1.1 303"), "an unprefixed cookie is not read");
}

test_each_backend!(secure_cookie => secure_cookie_on_sqlite, secure_cookie_on_postgres);
