//! The server's connection limits against a real `tessera serve`, probed with raw TCP as a slow or
//! hostile client would: half a request head, a stalled body, an idle keep-alive, more connections
//! than the cap, and a shutdown with connections still open.

use crate::TESSERA;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tessera_testkit::{Backend, Server, TestEnv};

/// Slack for a loaded machine on top of a configured timeout.
const SLACK: Duration = Duration::from_millis(1_500);

fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    stream
}

/// Reads until the server closes the connection (EOF or reset), failing after `limit`; returns
/// what arrived and when the connection closed, measured from `since`.
fn until_closed(stream: &mut TcpStream, since: Instant, limit: Duration) -> (String, Duration) {
    stream.set_read_timeout(Some(limit)).expect("read timeout");
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "still open after {:?} ({e}); received {:?}",
                since.elapsed(),
                String::from_utf8_lossy(&received)
            ),
        }
    }
    (String::from_utf8_lossy(&received).into_owned(), since.elapsed())
}

/// Sends one request and reads one response (head and `Content-Length` body), leaving the
/// connection open.
fn exchange(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).expect("send");
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                return text;
            }
        }
        let n = stream.read(&mut buf).expect("response");
        assert!(n > 0, "closed mid-response: {text}");
        received.extend_from_slice(&buf[..n]);
    }
}

const HEALTH: &str = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";

fn serve_with(limits: &[(&str, &str)]) -> Option<(TestEnv, Server)> {
    let mut env = TestEnv::new(TESSERA, Backend::Sqlite)?;
    for (key, value) in limits {
        env.env.insert(format!("TESSERA_{}", key.to_ascii_uppercase()), value.to_string());
    }
    let server = env.serve(&[]);
    Some((env, server))
}

/// Header, body and idle timeouts, each on its own connection at once, then a graceful stop with
/// connections open.
#[test]
fn slow_and_idle_connections_are_closed() {
    let header = Duration::from_secs(1);
    let idle = Duration::from_secs(2);
    let body = Duration::from_secs(1);
    let Some((_env, server)) =
        serve_with(&[("header_read_timeout", "1s"), ("idle_timeout", "2s"), ("request_body_timeout", "1s")])
    else {
        return;
    };
    let addr = server.base.trim_start_matches("http://");
    std::thread::scope(|s| {
        // A head that never ends: closed after the header timeout, without an answer.
        s.spawn(|| {
            let mut stream = connect(addr);
            let start = Instant::now();
            stream.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ").expect("partial head");
            std::thread::sleep(Duration::from_millis(300));
            stream.write_all(b"a").expect("one more byte");
            let (received, took) = until_closed(&mut stream, start, header + SLACK);
            assert!(received.is_empty(), "{received}");
            assert!(took >= header - Duration::from_millis(100), "closed early: {took:?}");
        });
        // A connection that never sends anything: the same bound.
        s.spawn(|| {
            let mut stream = connect(addr);
            let start = Instant::now();
            let (received, took) = until_closed(&mut stream, start, header + SLACK);
            assert!(received.is_empty(), "{received}");
            assert!(took >= header - Duration::from_millis(100), "closed early: {took:?}");
        });
        // A body that stalls after 10 of its 100 bytes: 408 with the API's error body, then closed.
        s.spawn(|| {
            let mut stream = connect(addr);
            let start = Instant::now();
            let head = "POST /api/auth/login/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n";
            stream.write_all(head.as_bytes()).expect("head");
            stream.write_all(b"{\"username").expect("10 bytes");
            let (received, took) = until_closed(&mut stream, start, body + SLACK);
            assert!(received.starts_with("HTTP/1.1 408 "), "{received}");
            assert!(received.to_ascii_lowercase().contains("content-type: application/json"), "{received}");
            assert!(
                received.ends_with(r#"{"detail":"The request body was not received in time."}"#),
                "{received}"
            );
            assert!(took >= body - Duration::from_millis(100), "answered early: {took:?}");
        });
        // An idle keep-alive: still usable past the header timeout, closed after the idle timeout.
        s.spawn(|| {
            let mut stream = connect(addr);
            assert!(exchange(&mut stream, HEALTH).starts_with("HTTP/1.1 200 "));
            std::thread::sleep(header + Duration::from_millis(300));
            assert!(exchange(&mut stream, HEALTH).starts_with("HTTP/1.1 200 "), "reused after a pause");
            let idle_from = Instant::now();
            let (received, took) = until_closed(&mut stream, idle_from, idle + SLACK);
            assert!(received.is_empty(), "{received}");
            assert!(took >= idle - Duration::from_millis(100), "closed early: {took:?}");
        });
    });
    // Normal requests are unaffected.
    assert_eq!(server.get("/health").0, 200);

    // A graceful stop with an idle keep-alive and a silent connection open: a clean exit, at once.
    let mut idle_conn = connect(addr);
    assert!(exchange(&mut idle_conn, HEALTH).starts_with("HTTP/1.1 200 "));
    let _silent = connect(addr);
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    let (_, log) = server.stop();
    assert!(start.elapsed() < Duration::from_secs(5), "stop took {:?}", start.elapsed());
    assert!(log.iter().any(|l| l.contains("shutting down")), "{log:?}");
    let (received, _) = until_closed(&mut idle_conn, start, Duration::from_secs(1));
    assert!(received.is_empty(), "{received}");
}

/// With `max_connections = 2`, a third connection waits (in the listen backlog) until one of the
/// two closes, and is then served; the server keeps working.
#[test]
fn connections_over_the_cap_wait_for_a_free_slot() {
    let Some((_env, server)) = serve_with(&[("max_connections", "2"), ("idle_timeout", "30s")]) else { return };
    let addr = server.base.trim_start_matches("http://");
    let mut first = connect(addr);
    let mut second = connect(addr);
    assert!(exchange(&mut first, HEALTH).starts_with("HTTP/1.1 200 "));
    assert!(exchange(&mut second, HEALTH).starts_with("HTTP/1.1 200 "));

    let mut third = connect(addr);
    third.write_all(HEALTH.as_bytes()).expect("send");
    third.set_read_timeout(Some(Duration::from_millis(500))).expect("read timeout");
    let mut buf = [0u8; 1024];
    match third.read(&mut buf) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("the third connection was served over the cap: {other:?}"),
    }
    server.wait_for_log("connection limit reached", Duration::from_secs(2));

    // One closes: the waiting connection is served at once.
    let start = Instant::now();
    drop(first);
    third.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
    let n = third.read(&mut buf).expect("served once a slot is free");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200 "));
    assert!(start.elapsed() < Duration::from_secs(2), "served after {:?}", start.elapsed());

    drop(second);
    drop(third);
    for _ in 0..5 {
        assert_eq!(server.get("/health").0, 200);
    }
    server.stop();
}

/// A client that pipelines requests and never reads the answers: once the server's writes stall
/// for the idle timeout, the connection is closed (the writer sees it reset) instead of being held.
#[test]
fn a_client_that_does_not_read_is_disconnected() {
    let Some((_env, server)) = serve_with(&[("idle_timeout", "1s")]) else { return };
    let mut stream = connect(server.base.trim_start_matches("http://"));
    stream.set_write_timeout(Some(Duration::from_secs(20))).expect("write timeout");
    let batch = HEALTH.repeat(1_000);
    let start = Instant::now();
    let error = loop {
        if let Err(e) = stream.write_all(batch.as_bytes()) {
            break e;
        }
    };
    assert!(
        matches!(error.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
        "after {:?}: {error}",
        start.elapsed()
    );
    assert!(start.elapsed() < Duration::from_secs(15), "{:?}", start.elapsed());
    assert_eq!(server.get("/health").0, 200);
    server.stop();
}

/// RFC 9112 §3.2: an HTTP/1.1 request without `Host`, or with two, is a 400 (and HTTP/1.0 needs
/// none); bare-LF line endings are accepted (§2.2).
#[test]
fn host_is_required_once_and_bare_lf_is_accepted() {
    let Some(env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    let server = env.serve(&[]);
    let addr = server.base.trim_start_matches("http://").to_string();
    let ask = |request: &str| {
        let mut stream = connect(&addr);
        stream.write_all(request.as_bytes()).expect("send");
        until_closed(&mut stream, Instant::now(), Duration::from_secs(5)).0
    };
    let missing = ask("GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(missing.starts_with("HTTP/1.1 400"), "{missing}");
    assert!(missing.contains("requires a Host header"), "{missing}");
    let twice = ask("GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n");
    assert!(twice.starts_with("HTTP/1.1 400") && twice.contains("more than one Host"), "{twice}");
    let old = ask("GET /health HTTP/1.0\r\n\r\n");
    assert!(old.starts_with("HTTP/1.0 200") || old.starts_with("HTTP/1.1 200"), "{old}");
    let bare_lf = ask("GET /health HTTP/1.1\nHost: a\nConnection: close\n\n");
    assert!(bare_lf.starts_with("HTTP/1.1 200"), "{bare_lf}");
    assert_eq!(server.get("/health").0, 200);
    server.stop();
}

/// The metrics listener (`metrics_bind`) under a slow, aborting or hostile client: the same
/// connection limits as the API — a dribbled head is closed after the header timeout without an
/// answer while scrapes go on, aborted requests leave it working, and huge or malformed requests
/// get a 4xx, never a 500 or a hang.
#[test]
fn the_metrics_listener_withstands_slow_aborted_and_malformed_requests() {
    let header = Duration::from_secs(1);
    let Some(mut env) = TestEnv::new(TESSERA, Backend::Sqlite) else { return };
    env.env.insert("TESSERA_HEADER_READ_TIMEOUT".into(), "1s".into());
    let server = env.serve(&["--metrics-bind", "127.0.0.1:0"]);
    let line = server.wait_for_log("metrics at http://", Duration::from_secs(10));
    let addr: String = line
        .split("metrics at http://")
        .nth(1)
        .map(|rest| rest.chars().take_while(|c| !c.is_whitespace() && *c != '"' && *c != '/').collect())
        .expect("the metrics address");
    let addr = addr.as_str();
    const SCRAPE: &str = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    let scrape = || {
        let reply = exchange(&mut connect(addr), SCRAPE);
        assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
        assert!(reply.contains("# TYPE tessera_authentications_total counter"), "{reply}");
    };
    std::thread::scope(|s| {
        // A scrape dribbled a byte at a time: closed after the header timeout, unanswered.
        s.spawn(|| {
            let mut stream = connect(addr);
            let start = Instant::now();
            for byte in SCRAPE.as_bytes()[..20].iter() {
                if stream.write_all(&[*byte]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let (received, took) = until_closed(&mut stream, start, header + SLACK + Duration::from_secs(2));
            assert!(received.is_empty(), "{received}");
            assert!(took >= header - Duration::from_millis(100), "closed early: {took:?}");
        });
        // Meanwhile scrapes are answered.
        std::thread::sleep(Duration::from_millis(300));
        scrape();
    });
    // Aborted: half a head then gone; a whole request then gone before the answer is read.
    drop(connect(addr).write_all(b"GET /metrics HTTP/1.1\r\nHo"));
    drop(connect(addr).write_all(SCRAPE.as_bytes()));
    scrape();
    // Huge and malformed requests: a clear 4xx each.
    let cases: Vec<(String, &str)> = vec![
        (format!("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(100_000)), "431"),
        (format!("GET /metrics?{} HTTP/1.1\r\nHost: x\r\n\r\n", "q".repeat(100_000)), "4"),
        ("BLAH\r\n\r\n".into(), "400"),
        ("GET /metrics HTTP/1.1\r\n\r\n".into(), "400"),
        ("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello".into(), "405"),
        ("GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n".into(), "404"),
    ];
    for (request, want) in &cases {
        let mut stream = connect(addr);
        let _ = stream.write_all(request.as_bytes());
        let (received, _) = until_closed_or_answered(&mut stream);
        assert!(received.starts_with(&format!("HTTP/1.1 {want}")), "{}: {received}", &request[..request.len().min(40)]);
        assert!(!received.starts_with("HTTP/1.1 5"), "{received}");
    }
    let reply = exchange(&mut connect(addr), "GET /metrics?name=x HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 200 "), "a query string is ignored: {reply}");
    scrape();
    assert_eq!(server.get("/health").0, 200, "the API is unaffected");
}

/// Reads one response head (the connection may stay open): what arrived, once the head ended or
/// the server closed.
fn until_closed_or_answered(stream: &mut TcpStream) -> (String, bool) {
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if String::from_utf8_lossy(&received).contains("\r\n\r\n") {
            return (String::from_utf8_lossy(&received).into_owned(), true);
        }
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&received).into_owned(), false),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&received).into_owned(), false);
            }
            Err(e) => panic!("no answer within 10 s: {e}"),
        }
    }
}
