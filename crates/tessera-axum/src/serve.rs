//! Serving a router with the limits `axum::serve` does not have: axum's router on hyper's HTTP/1
//! connections. `tessera serve` and `durin-example` serve through it; so can any service.
//!
//! ```no_run
//! # async fn demo(app: axum::Router) -> std::io::Result<()> {
//! use tessera_axum::serve::{ServerLimits, serve};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! serve(listener, app, ServerLimits::default(), async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
//!
//! `axum::serve` has no timer: a client that sends half a request head, stalls in a body or keeps
//! an idle connection open holds a socket, a task and buffers for as long as it likes, and nothing
//! caps how many it may hold. [`serve`] bounds every phase of a connection:
//!
//! | phase | bound | then |
//! |---|---|---|
//! | waiting for the first request | `header_read_timeout` from accept | closed |
//! | reading a request head | `header_read_timeout` from its first byte (on a keep-alive connection, up to one more `header_read_timeout`) | closed |
//! | reading a request body | `request_body_timeout` from the end of the head | `408`, closed |
//! | idle between requests (keep-alive) | `idle_timeout` from the end of the last response | closed |
//! | writing to a client that does not read | `idle_timeout` from the first refused write | closed |
//! | open connections | `max_connections` | further connections wait in the listen backlog |
//!
//! Requests are held to RFC 9112 where it protects the service: an HTTP/1.1 request without a
//! `Host`, or any request with several, is answered `400` (a proxy and the service could route it
//! differently). Bare-LF line endings in a head are accepted, as RFC 9112 §2.2 allows a recipient
//! to (hyper's parser does): they are unambiguous to every parser that accepts them, and refusing
//! them would break old clients without closing a smuggling path, since bodies are framed by
//! `Content-Length` / chunked encoding, which hyper parses strictly.
//!
//! The bounds cost no work per request: a watchdog per connection looks at its state when a
//! deadline falls due, and at least every `header_read_timeout` (a request only flips counters),
//! and a request without a body gets no body timer.
//!
//! The head and idle bounds are kept here rather than by hyper's `header_read_timeout`, because
//! hyper starts that timer as soon as a connection goes idle: an idle keep-alive would be cut
//! after the (short) header timeout, and the idle timeout could not be longer than it.
//!
//! At the cap the server stops accepting rather than accepting and refusing: the kernel's listen
//! backlog (bounded by `somaxconn`) holds the waiting connections, memory stays bounded, a short
//! burst is served late instead of failing, and a slot frees within the longest timeout above
//! because no connection can hold one longer without making progress.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

/// How long a graceful shutdown waits for requests in progress before closing what is left.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The largest request head: nginx's default (4 × 8 KiB buffers); larger heads get `431`.
const MAX_HEAD_BYTES: usize = 32 * 1024;

/// The largest read or write buffer of one connection: a bound on its memory.
const MAX_BUF_BYTES: usize = 64 * 1024;

/// The detail of the `408` answered when a request body does not arrive in time.
pub const BODY_TIMEOUT_DETAIL: &str = "The request body was not received in time.";

/// The connection limits and timeouts of [`serve`]; every one is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// The longest a client may take to send a request head (from accept for the first request,
    /// from the head's first byte after that).
    pub header_read_timeout: Duration,
    /// The longest a client may take to send a request body, from the end of its head.
    pub request_body_timeout: Duration,
    /// The longest a keep-alive connection may stay open between requests.
    pub idle_timeout: Duration,
    /// The most connections open at once.
    pub max_connections: usize,
}

impl ServerLimits {
    /// The default header read timeout: a real client sends its head in one packet.
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// The default request body timeout: the auth routes read at most 64 KiB.
    pub const DEFAULT_REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(30);
    /// The default idle timeout: longer than common client pools' (reqwest 90 s aside), shorter
    /// than typical proxy ones, so a proxy does not reuse a connection this server just closed.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// The default connection cap never exceeds this.
    pub const MAX_DEFAULT_CONNECTIONS: usize = 10_000;

    /// The default connection cap: half the process's open-file limit (each connection is a file
    /// descriptor; the rest is left to the database pool, Redis, logs), at most
    /// [`Self::MAX_DEFAULT_CONNECTIONS`].
    pub fn default_max_connections() -> usize {
        let cap = Self::MAX_DEFAULT_CONNECTIONS;
        #[cfg(unix)]
        {
            let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
            if let Some(files) = limit {
                return usize::try_from(files / 2).unwrap_or(cap).clamp(16, cap);
            }
        }
        cap
    }
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Self::DEFAULT_HEADER_READ_TIMEOUT,
            request_body_timeout: Self::DEFAULT_REQUEST_BODY_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            max_connections: Self::default_max_connections(),
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves; then stops accepting,
/// lets requests in progress finish (closing idle connections at once) for up to
/// [`SHUTDOWN_GRACE`], and returns.
///
/// Handlers see the peer address as `ConnectInfo<SocketAddr>`, as with axum's
/// `into_make_service_with_connect_info::<SocketAddr>()` (the login throttle counts per IP).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Head and idle timers are ours (see the module docs); hyper's would cut idle keep-alives.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true)
        .max_header_size(MAX_HEAD_BYTES)
        .max_buf_size(MAX_BUF_BYTES);
    let builder = Arc::new(builder);
    // Given its state once, as `axum::serve`'s `into_make_service` does: every route's handler and
    // layers become its service now. A `Router` called as it is redoes that conversion on every
    // request (`into_route`, and `Route::layer` with its boxes for each layered route: several
    // hundred instructions a request, more than a cached authentication's own work).
    let router = router.with_state(());
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut warned_full: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        // Once a minute at most: at the cap under load this would otherwise log per connection.
        if slots.available_permits() == 0 && warned_full.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
            tracing::warn!(
                max_connections = limits.max_connections,
                "connection limit reached: new connections wait until one closes"
            );
            warned_full = Some(Instant::now());
        }
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_per_connection(&e) => continue,
                Err(e) => {
                    // Out of file descriptors or memory: wait a little rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    }
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection { router: router.clone(), builder: builder.clone(), limits, peer, permit };
        tokio::spawn(connection.run(stream, graceful.watcher()));
    }
    // Stop accepting: connections still in the backlog are refused from here on.
    drop(listener);
    let open = graceful.count();
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!(open, "connections still open after {SHUTDOWN_GRACE:?} of shutdown; closing them");
    }
    Ok(())
}

/// Errors of one connection that do not concern the listener.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}

/// One accepted connection and what it holds.
struct Connection {
    router: Router,
    builder: Arc<hyper::server::conn::http1::Builder>,
    limits: ServerLimits,
    peer: SocketAddr,
    /// Its slot under `max_connections`, given back when the connection ends.
    permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn run(self, stream: TcpStream, watcher: Watcher) {
        let Connection { router, builder, limits, peer, permit } = self;
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(WatchedIo { inner: stream, activity: activity.clone(), blocked: false });
        let service_activity = activity.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let router = router.clone();
            let in_flight = InFlight::start(service_activity.clone());
            async move { Ok::<_, Infallible>(handle(router, request, peer, limits, in_flight).await) }
        });
        let conn = watcher.watch(builder.serve_connection(io, service));
        tokio::select! {
            result = conn => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            }
            phase = activity.expired(&limits) => tracing::debug!(%peer, phase, "connection closed: timed out"),
        }
        drop(permit);
    }
}

/// One request: the peer address in, the body under its deadline, the router, and a `408` in
/// place of whatever the handler made of a body that timed out.
async fn handle(
    router: Router,
    request: Request<Incoming>,
    peer: SocketAddr,
    limits: ServerLimits,
    in_flight: InFlight,
) -> Response<TrackedBody> {
    let (mut parts, body) = request.into_parts();
    // RFC 9112 §3.2: an HTTP/1.1 request without a Host, or with more than one, is answered 400.
    let hosts = parts.headers.get_all(header::HOST).iter().count();
    if (parts.version == axum::http::Version::HTTP_11 && hosts == 0) || hosts > 1 {
        return bad_host_response(hosts).map(|inner| TrackedBody { inner, _in_flight: in_flight });
    }
    parts.extensions.insert(ConnectInfo(peer));
    // A request without a body (most: GET, HEAD, an empty POST) needs no body deadline: no timer.
    let (body, timed_out) = if hyper::body::Body::is_end_stream(&body) {
        (Body::new(body), None)
    } else {
        let timed_out = Arc::new(AtomicBool::new(false));
        let deadline = Box::pin(tokio::time::sleep(limits.request_body_timeout));
        (Body::new(DeadlineBody { inner: body, deadline, timed_out: timed_out.clone() }), Some(timed_out))
    };
    let response = match router.oneshot(Request::from_parts(parts, body)).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let body_timed_out = timed_out.is_some_and(|t| t.load(Ordering::Acquire));
    let response = if body_timed_out { body_timeout_response() } else { response };
    response.map(|inner| TrackedBody { inner, _in_flight: in_flight })
}

/// `400` for a request whose `Host` is missing (HTTP/1.1) or repeated.
fn bad_host_response(hosts: usize) -> Response<Body> {
    let detail = if hosts == 0 {
        "Bad request: HTTP/1.1 requires a Host header."
    } else {
        "Bad request: more than one Host header."
    };
    closing_error(StatusCode::BAD_REQUEST, detail)
}

/// `408`: the connection is closed after it (the rest of the body may still be on its way).
fn body_timeout_response() -> Response<Body> {
    closing_error(StatusCode::REQUEST_TIMEOUT, BODY_TIMEOUT_DETAIL)
}

/// An error in the API's shape (`{"detail": …}`) after which the connection is closed.
fn closing_error(status: StatusCode, detail: &str) -> Response<Body> {
    let body = serde_json::json!({ "detail": detail }).to_string();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// What a connection is doing, for its head and idle deadlines.
#[derive(Debug)]
struct Activity {
    state: Mutex<ActivityState>,
}

#[derive(Debug, Clone, Copy)]
struct ActivityState {
    /// Requests handled and not yet answered in full.
    in_flight: usize,
    /// Whether a request has been answered on this connection.
    served: bool,
    /// When the connection was accepted or last became idle.
    idle_since: Instant,
    /// When the first byte of the next request head arrived, while idle.
    head_started: Option<Instant>,
    /// Since when the socket has not taken what the server writes (the client does not read).
    write_blocked: Option<Instant>,
}

impl Activity {
    fn new() -> Activity {
        let state = ActivityState {
            in_flight: 0,
            served: false,
            idle_since: Instant::now(),
            head_started: None,
            write_blocked: None,
        };
        Activity { state: Mutex::new(state) }
    }

    /// Changes the state. The watchdog is not woken: it re-reads the state at its next check
    /// (see [`Activity::expired`]), so a request costs no task wake-up.
    fn update(&self, change: impl FnOnce(&mut ActivityState)) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        change(&mut state);
    }

    fn snapshot(&self) -> ActivityState {
        *self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn on_read(&self) {
        let state = self.snapshot();
        if state.in_flight == 0 && state.head_started.is_none() {
            self.update(|s| {
                if s.in_flight == 0 && s.head_started.is_none() {
                    s.head_started = Some(Instant::now());
                }
            });
        }
    }

    /// Resolves when the connection has overstayed its current phase; names the phase. Never
    /// while a request is being handled (its body has its own deadline), but a response the
    /// client does not read for `idle_timeout` ends the connection too.
    ///
    /// The watchdog is not woken by each request (that would cost a wake-up and a timer per
    /// request): it sleeps until the current phase's deadline, at most `header_read_timeout` at a
    /// time, and looks again. A deadline that a state change brings forward — a request head
    /// starting on an idle keep-alive connection — is therefore enforced at most one
    /// `header_read_timeout` late; every other deadline on time.
    async fn expired(&self, limits: &ServerLimits) -> &'static str {
        loop {
            let state = self.snapshot();
            let deadline = if let Some(blocked) = state.write_blocked {
                Some((blocked + limits.idle_timeout, "the client does not read its response"))
            } else if state.in_flight > 0 {
                None
            } else if let Some(started) = state.head_started {
                Some((started + limits.header_read_timeout, "reading a request head"))
            } else if state.served {
                Some((state.idle_since + limits.idle_timeout, "idle"))
            } else {
                Some((state.idle_since + limits.header_read_timeout, "waiting for a request"))
            };
            let now = Instant::now();
            let next_look = now + limits.header_read_timeout;
            match deadline {
                Some((at, phase)) if now >= at => return phase,
                Some((at, _)) => tokio::time::sleep_until(at.min(next_look)).await,
                None => tokio::time::sleep_until(next_look).await,
            }
        }
    }
}

/// A request being handled: counted from its head until its response body is written or dropped.
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: Arc<Activity>) -> InFlight {
        activity.update(|s| {
            s.in_flight += 1;
            s.head_started = None;
        });
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.update(|s| {
            s.in_flight = s.in_flight.saturating_sub(1);
            if s.in_flight == 0 {
                s.served = true;
                s.idle_since = Instant::now();
                s.head_started = None;
            }
        });
    }
}

/// The socket, noting when bytes arrive and when writes stall.
struct WatchedIo {
    inner: TcpStream,
    activity: Arc<Activity>,
    /// Whether the last write was refused for a full send buffer.
    blocked: bool,
}

impl WatchedIo {
    fn on_write<T>(&mut self, result: Poll<T>) -> Poll<T> {
        let blocked = result.is_pending();
        if blocked != self.blocked {
            self.blocked = blocked;
            self.activity.update(|s| s.write_blocked = blocked.then(Instant::now));
        }
        result
    }
}

impl AsyncRead for WatchedIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.on_read();
        }
        result
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.on_write(result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.on_write(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The request body, failing once its deadline has passed.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timed_out: Arc<AtomicBool>,
}

/// The error a [`DeadlineBody`] reads after its deadline.
#[derive(Debug)]
struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body timed out")
    }
}

impl std::error::Error for BodyTimedOut {}

impl hyper::body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.timed_out.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The response body, holding its request's [`InFlight`] until hyper has written or dropped it.
struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
