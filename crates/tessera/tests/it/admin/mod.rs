//! The admin web UI in a real Chromium, against real `tessera serve` processes, on SQLite and
//! PostgreSQL. Every test saves full-page screenshots under `target/admin-screenshots/` and fails
//! on any console error (a CSP violation, a script error, a failed load).

mod browser;
mod dashboard;
mod flows;
mod probe;
mod seed;

use crate::TESSERA;
use browser::Browser;
use tessera_testkit::{Backend, PASSWORD, Server, TestEnv};

/// The one message every refused staff login gets.
const REFUSED: &str = "Please enter a correct username and password for a staff account.";

/// A test's world: its environment (with a staff user `admin`), a server, a browser.
pub struct Site {
    pub env: TestEnv,
    pub server: Server,
    pub browser: Browser,
    /// `http://127.0.0.1:PORT/admin`.
    pub admin: String,
}

impl Site {
    /// `None` when a service the test needs is absent (and not required).
    pub fn new(name: &str, backend: Backend) -> Option<Site> {
        Site::with_env(name, backend, &[])
    }

    /// [`Site::new`] with more environment variables for the server (and the CLI).
    pub fn with_env(name: &str, backend: Backend, vars: &[(&str, &str)]) -> Option<Site> {
        let mut env = TestEnv::new(TESSERA, backend)?;
        env.env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        // The tests sign in many times from one address.
        env.env.insert("TESSERA_LOGIN_THROTTLE_PER_IP".into(), "off".into());
        env.create_user("admin", &["--staff"]);
        let server = env.serve(&[]);
        let backend = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        let browser = Browser::start(&format!("{name}-{backend}"))?;
        let admin = format!("{}/admin", server.base);
        Some(Site { env, server, browser, admin })
    }

    /// Opens an admin page (`path` after `/admin`).
    pub fn open(&self, path: &str) {
        self.browser.goto(&format!("{}{path}", self.admin));
    }

    /// Signs in on the login page with `username` and `password`.
    pub fn sign_in(&self, username: &str, password: &str) {
        self.open("/login");
        self.browser.fill("#username", username);
        self.browser.fill("#password", password);
        self.browser.click("#sign-in");
    }

    /// Signs in as the staff user `admin` and checks it worked.
    pub fn sign_in_as_admin(&self) {
        self.sign_in("admin", PASSWORD);
        assert!(self.browser.url().ends_with("/admin/"), "not signed in: {}", self.browser.url());
        assert_eq!(self.browser.text("#staff-name"), "admin");
    }

    /// Opens a page, checks it has no console errors, and saves its screenshot.
    pub fn visit(&self, path: &str, shot: &str) {
        self.open(path);
        self.browser.assert_no_console_errors(path);
        self.browser.screenshot(shot);
    }
}
