//! A real Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`, with
//! fantoccini): one chromedriver process and one fresh browser profile per test, blocking calls
//! for plain `#[test]`s, full-page screenshots, the browser console's errors.

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tessera_testkit::skip;

/// Chromium's flags: headless, and quiet — without the background-networking flags it keeps
/// calling out to Google, which this closed network answers with nothing but delays.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
];

/// The chromedriver to use: `TESSERA_TEST_CHROMEDRIVER`, else Debian's.
fn chromedriver() -> Option<PathBuf> {
    let path = std::env::var_os("TESSERA_TEST_CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
    path.exists().then_some(path)
}

/// Where screenshots go: `target/admin-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").join("admin-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// A cookie as the browser holds it.
#[derive(Debug, Clone)]
pub struct SeenCookie {
    pub name: String,
    pub value: String,
    pub http_only: Option<bool>,
    pub secure: Option<bool>,
    pub same_site: Option<String>,
    pub path: Option<String>,
}

/// A browser session; the driver is killed (and the profile deleted) when it is dropped.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    _profile: tempfile::TempDir,
    /// The test's name, prefixed to its screenshots.
    name: String,
}

impl Browser {
    /// A fresh browser; `None` (after saying why) when chromedriver is absent and not required.
    pub fn start(name: &str) -> Option<Browser> {
        let Some(driver_path) = chromedriver() else {
            return skip(
                "no chromedriver (set TESSERA_TEST_CHROMEDRIVER, or apt-get install chromium chromium-driver)",
            );
        };
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            listener.local_addr().expect("addr").port()
        };
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver_path.display()));
        let profile = tempfile::tempdir().expect("profile dir");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut options = json!({ "args": args });
        if let Some(binary) = std::env::var_os("TESSERA_TEST_CHROMIUM") {
            options["binary"] = json!(binary.to_string_lossy());
        } else if Path::new("/usr/bin/chromium").exists() {
            options["binary"] = json!("/usr/bin/chromium");
        }
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), options);
        caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let url = format!("http://127.0.0.1:{port}");
        let client = rt.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let connector = hyper_util::client::legacy::connect::HttpConnector::new();
                match ClientBuilder::new(connector).capabilities(caps.clone()).connect(&url).await {
                    Ok(client) => break client,
                    Err(e) if Instant::now() < deadline => {
                        let _ = e;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("cannot start a browser session through chromedriver: {e}"),
                }
            }
        });
        Some(Browser { rt, client: Some(client), driver, _profile: profile, name: name.to_string() })
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("session open")
    }

    /// Opens `url` and waits for the page to load.
    pub fn goto(&self, url: &str) {
        self.rt.block_on(self.client().goto(url)).unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// The current URL.
    pub fn url(&self) -> String {
        self.rt.block_on(self.client().current_url()).expect("current url").to_string()
    }

    /// Types `text` into the field matched by `css` (after clearing it).
    pub fn fill(&self, css: &str, text: &str) {
        self.rt.block_on(async {
            let field = self.client().find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
            field.clear().await.unwrap_or_else(|e| panic!("clear {css}: {e}"));
            field.send_keys(text).await.unwrap_or_else(|e| panic!("type into {css}: {e}"));
        })
    }

    /// Chooses the option with `value` in the select matched by `css`.
    pub fn select(&self, css: &str, value: &str) {
        self.rt.block_on(async {
            let field = self.client().find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
            field.select_by_value(value).await.unwrap_or_else(|e| panic!("select {value} in {css}: {e}"));
        })
    }

    /// Clicks the element matched by `css` and waits until the page it leads to has loaded (the
    /// old document marked first, so that a page still showing is not taken for the new one).
    pub fn click(&self, css: &str) {
        self.script("document.documentElement.dataset.leaving = '1'");
        self.rt.block_on(async {
            let element = self.client().find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
            element.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
        });
        self.wait_loaded();
    }

    /// Clicks the element matched by `css` that changes the page in place (a `<summary>`).
    pub fn click_in_place(&self, css: &str) {
        self.rt.block_on(async {
            let element = self.client().find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
            element.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
        });
    }

    fn wait_loaded(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let loaded = "return document.readyState === 'complete' && !document.documentElement.dataset.leaving";
        while Instant::now() < deadline {
            // Between documents the script may fail: not loaded yet.
            if self.rt.block_on(self.client().execute(loaded, vec![])).ok() == Some(json!(true)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no new page loaded after the click");
    }

    /// The text of the element matched by `css`.
    pub fn text(&self, css: &str) -> String {
        self.rt.block_on(async {
            let element = self.client().find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
            element.text().await.unwrap_or_else(|e| panic!("text of {css}: {e}"))
        })
    }

    /// Whether an element matches `css`.
    pub fn exists(&self, css: &str) -> bool {
        self.rt.block_on(self.client().find_all(Locator::Css(css))).map(|v| !v.is_empty()).unwrap_or(false)
    }

    /// How many elements match `css`.
    pub fn count(&self, css: &str) -> usize {
        self.rt.block_on(self.client().find_all(Locator::Css(css))).map(|v| v.len()).unwrap_or(0)
    }

    /// The whole page's text.
    pub fn page_text(&self) -> String {
        self.text("body")
    }

    /// Runs `script` in the page (WebDriver's execute, outside the page's CSP).
    pub fn script(&self, script: &str) -> Value {
        self.rt.block_on(self.client().execute(script, vec![])).unwrap_or_else(|e| panic!("script: {e}"))
    }

    /// Every cookie the browser holds for the current page.
    pub fn cookies(&self) -> Vec<SeenCookie> {
        let cookies = self.rt.block_on(self.client().get_all_cookies()).expect("cookies");
        cookies
            .iter()
            .map(|c| SeenCookie {
                name: c.name().to_string(),
                value: c.value().to_string(),
                http_only: c.http_only(),
                secure: c.secure(),
                same_site: c.same_site().map(|s| format!("{s:?}")),
                path: c.path().map(str::to_string),
            })
            .collect()
    }

    /// Saves a full-page PNG as `target/admin-screenshots/<test>-<what>.png`: the viewport is made
    /// as tall as the page first (a headless window does not grow past its screen).
    pub fn screenshot(&self, what: &str) -> PathBuf {
        let height = self.script("return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)");
        let height = height.as_u64().unwrap_or(900).clamp(600, 8000);
        let metrics = json!({ "width": 1280, "height": height, "deviceScaleFactor": 1, "mobile": false });
        self.cdp("Emulation.setDeviceMetricsOverride", metrics);
        let png = self.rt.block_on(self.client().screenshot()).expect("screenshot");
        self.cdp("Emulation.clearDeviceMetricsOverride", json!({}));
        let path = screenshot_dir().join(format!("{}-{what}.png", self.name));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// A Chrome DevTools command, through chromedriver.
    fn cdp(&self, cmd: &str, params: Value) -> Value {
        let command = Cdp(json!({ "cmd": cmd, "params": params }));
        self.rt.block_on(self.client().issue_cmd(command)).unwrap_or_else(|e| panic!("{cmd}: {e}"))
    }

    /// The browser console's messages at level SEVERE since the last call (CSP violations,
    /// script errors, failed loads).
    pub fn console_errors(&self) -> Vec<String> {
        let log = self.rt.block_on(self.client().issue_cmd(BrowserLog)).expect("browser log");
        log.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .map(|e| e["message"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Fails the test when the console has errors, naming the page.
    pub fn assert_no_console_errors(&self, page: &str) {
        let errors = self.console_errors();
        assert!(errors.is_empty(), "console errors on {page}: {errors:#?}");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.rt.block_on(client.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// chromedriver's log endpoint (not in W3C WebDriver, but served by chromedriver): the browser
/// console's entries since the last read.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({ "type": "browser" }).to_string()))
    }
}

/// chromedriver's endpoint for a Chrome DevTools Protocol command.
#[derive(Debug)]
struct Cdp(Value);

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/goog/cdp/execute", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.0.to_string()))
    }
}
