//! The `metrics` facade (feature `metrics`, `TesseraBuilder::metrics_facade`): every metric of
//! `/metrics` reaches the recorder a service installs, with the same name, type and help text, and
//! the counts move as requests are made. The recorder here is a small one of the test's own,
//! installed once for the whole test binary: only this test opts into the facade.

use crate::support::example_routes;
use metrics::atomics::AtomicU64;
use metrics::{Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tessera_axum::Tessera;
use tessera_core::store::{ClientStore, UserStore};
use tessera_core::{NewClient, NewUser, ServerKey, Ttl};

/// A description: the kind (`counter`, `gauge`, `histogram`), the unit, the help text.
type Description = (&'static str, Option<Unit>, String);

/// What a recorder was told, by series (`name{k=v,...}`, labels sorted) and by name.
#[derive(Debug, Default)]
struct TestRecorder {
    described: Mutex<HashMap<String, Description>>,
    counters: Mutex<HashMap<String, Arc<AtomicU64>>>,
    gauges: Mutex<HashMap<String, Arc<AtomicU64>>>,
    histograms: Mutex<HashMap<String, Arc<Observations>>>,
}

#[derive(Debug, Default)]
struct Observations(Mutex<Vec<f64>>);

impl HistogramFn for Observations {
    fn record(&self, value: f64) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(value);
    }
}

fn series(key: &Key) -> String {
    let mut labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl TestRecorder {
    fn describe(&self, kind: &'static str, key: KeyName, unit: Option<Unit>, help: SharedString) {
        lock(&self.described).insert(key.as_str().to_string(), (kind, unit, help.to_string()));
    }
    fn counter(&self, series: &str) -> Option<u64> {
        lock(&self.counters).get(series).map(|c| c.load(Ordering::Relaxed))
    }
    fn gauge(&self, series: &str) -> Option<f64> {
        lock(&self.gauges).get(series).map(|g| f64::from_bits(g.load(Ordering::Relaxed)))
    }
    fn observations(&self, series: &str) -> usize {
        lock(&self.histograms).get(series).map_or(0, |h| lock(&h.0).len())
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, help: SharedString) {
        self.describe("counter", key, unit, help);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, help: SharedString) {
        self.describe("gauge", key, unit, help);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, help: SharedString) {
        self.describe("histogram", key, unit, help);
    }
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(lock(&self.counters).entry(series(key)).or_default().clone())
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(lock(&self.gauges).entry(series(key)).or_default().clone())
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(lock(&self.histograms).entry(series(key)).or_default().clone())
    }
}

fn recorder() -> &'static TestRecorder {
    static RECORDER: OnceLock<&'static TestRecorder> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let recorder: &'static TestRecorder = Box::leak(Box::default());
        metrics::set_global_recorder(recorder).expect("the only recorder of this test binary");
        recorder
    })
}

/// Waits (up to 10 s: a hang, not a timing) until `cond` holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_reaches_the_facade_and_counts_move() {
    let recorder = recorder();
    let db = tessera_sql::testing::sqlite().await;
    let tessera = Tessera::builder(Arc::new(db.store.clone()), ServerKey::generate())
        .metrics_facade(true)
        .build()
        .expect("tessera");
    tessera.start().await.expect("start");
    // The task describes everything, connects the histograms, then pushes: once a gauge is there,
    // every observation from now on reaches the facade.
    until("the first push", || recorder.gauge("tessera_cache_trusted{}").is_some()).await;

    // Every family of /metrics is described with its type and help text; units are base units.
    let text = tessera.render_metrics().expect("counting is on");
    let described = lock(&recorder.described).clone();
    let mut families = 0;
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut words = line.split(' ').skip(2);
        let (name, kind) = (words.next().expect("name"), words.next().expect("type"));
        let help_line = format!("# HELP {name} ");
        let help = text.lines().find_map(|l| l.strip_prefix(&help_line)).expect("help");
        let (got_kind, unit, got_help) = described.get(name).unwrap_or_else(|| panic!("{name} not described"));
        assert_eq!((*got_kind, got_help.as_str()), (kind, help), "{name}");
        let want_unit = if name.ends_with("_seconds") {
            Some(Unit::Seconds)
        } else if name == "tessera_cache_trusted" {
            None
        } else {
            Some(Unit::Count)
        };
        assert_eq!(*unit, want_unit, "{name}");
        families += 1;
    }
    assert_eq!((families, described.len()), (11, 11), "{described:?}");

    // Requests: three good ones on a cached route, one with a token nobody issued.
    let alice = db
        .store
        .create_user(NewUser {
            username: "alice".parse().expect("name"),
            password_hash: "$argon2id$unused".into(),
            is_staff: false,
            is_active: true,
        })
        .await
        .expect("user");
    let web = db.store.create_client(NewClient::new("web".parse().expect("name"), Ttl::Never)).await.expect("client");
    let token = tessera.issue_token(&alice, &web).await.expect("issue").1.expose().to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = example_routes(&tessera);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    let http = reqwest::Client::new();
    let get = async |token: &str| {
        let reply = http.get(format!("{base}/api/hello-cached/")).header("Authorization", format!("Token {token}"));
        reply.send().await.expect("request").status().as_u16()
    };
    for _ in 0..3 {
        assert_eq!(get(&token).await, 200);
    }
    let forged = format!("tsr_{}", "A".repeat(60));
    assert_eq!(get(&forged).await, 401);

    let ok = "tessera_authentications_total{client=web,outcome=ok}";
    let invalid = "tessera_authentications_total{client=unknown,outcome=invalid_token}";
    until("the counts pushed", || recorder.counter(ok) == Some(3) && recorder.counter(invalid) == Some(1)).await;
    assert_eq!(recorder.counter("tessera_tokens_issued_total{client=web}"), Some(1));
    assert_eq!(recorder.counter("tessera_logins_total{client=web,outcome=ok}"), Some(0));
    assert_eq!(recorder.counter("tessera_tokens_revoked_total{by=user,client=web}"), Some(0));
    assert_eq!(recorder.counter("tessera_throttled_total{client=web}"), Some(0));
    assert_eq!(recorder.counter("tessera_store_errors_total{op=authenticate}"), Some(0));
    let cache: u64 = ["hit", "miss", "bypass"]
        .iter()
        .map(|r| recorder.counter(&format!("tessera_cache_requests_total{{result={r}}}")).expect(r))
        .sum();
    assert!(cache >= 3, "three lookups at least: {cache}");
    assert_eq!(recorder.observations("tessera_authentication_duration_seconds{}"), 4, "each verification, once");
    assert_eq!(recorder.observations("tessera_invalidation_lag_seconds{source=bus}"), 0);
    assert!(lock(&recorder.histograms).contains_key("tessera_invalidation_lag_seconds{source=log}"));

    // A logout: the revocation counter moves, and shutdown pushes what is left at once.
    let reply = http.post(format!("{base}/api/auth/logout/")).header("Authorization", format!("Token {token}"));
    assert_eq!(reply.send().await.expect("logout").status().as_u16(), 204);
    tessera.shutdown().await;
    assert_eq!(recorder.counter("tessera_tokens_revoked_total{by=user,client=web}"), Some(1));
}
