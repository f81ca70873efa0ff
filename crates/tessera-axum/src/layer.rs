//! The authentication layer: runs once per request, before any extractor or guard, and leaves its
//! verdict in the request's extensions.

use crate::authn::Verdict;
use crate::client_ip::client_ip;
use crate::error::AuthError;
use crate::meter::{ClientMeter, GuardRefusal, Meter, Observed, outcome_of};
use crate::principal::Principal;
use crate::state::Core;
use axum::extract::Request;
use axum::response::Response;
use pin_project_lite::pin_project;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};
use tracing::Instrument;

/// The verdict of the layer, read by extractors and guards.
#[derive(Clone)]
pub(crate) struct AuthContext {
    pub(crate) outcome: Result<Option<Arc<Principal>>, AuthError>,
    pub(crate) core: Arc<Core>,
}

/// Authenticates every request passing through it (see [`Tessera::layer`](crate::Tessera::layer)).
#[derive(Clone)]
pub struct AuthLayer {
    core: Arc<Core>,
    cached: bool,
}

impl std::fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthLayer").field("cached", &self.cached).finish_non_exhaustive()
    }
}

impl AuthLayer {
    pub(crate) fn new(core: Arc<Core>, cached: bool) -> Self {
        Self { core, cached }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, core: self.core.clone(), cached: self.cached }
    }
}

/// The service [`AuthLayer`] wraps around a route.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    core: Arc<Core>,
    cached: bool,
}

impl<S> std::fmt::Debug for AuthService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService").field("cached", &self.cached).finish_non_exhaustive()
    }
}

impl<S> Service<Request> for AuthService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = AuthFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        if req.extensions().get::<AuthContext>().is_some() {
            // An outer layer already authenticated this request: once is enough.
            return AuthFuture::now(self.inner.call(req), None, None);
        }
        // The one reading of the monotonic clock: the cache's freshness, its entry's age and the
        // metrics' duration all use it.
        let at = std::time::Instant::now();
        let mut observed = Observed::default();
        if let Some(outcome) = self.core.authenticate_now(req.headers(), self.cached, at, &mut observed) {
            // Decided without waiting (a cache hit, no credentials, a malformed header): the inner
            // service is called now, on the request as it is, and the future only counts the
            // outcome once the response is there. No box, no clone of the inner service.
            let (span, count_after) = settle(&self.core, &outcome, at, observed);
            req.extensions_mut().insert(AuthContext { outcome, core: self.core.clone() });
            return AuthFuture::now(self.inner.call(req), span, count_after);
        }
        // The store is asked (or a sliding expiry written) before the inner service may be called:
        // a boxed future that owns the request. The service that was polled ready is the one to
        // call; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let core = self.core.clone();
        let cached = self.cached;
        AuthFuture::later(Box::pin(async move {
            // The client's address, for the events a verification may emit (an expired token).
            let ip = client_ip(req.extensions(), req.headers(), &core.settings.trusted_proxies);
            let mut observed = Observed::default();
            let outcome = core.authenticate(req.headers(), cached, ip, &mut observed).await;
            let (span, count_after) = settle(&core, &outcome, at, observed);
            req.extensions_mut().insert(AuthContext { outcome, core });
            let response = inner.call(req).instrument(span.unwrap_or_else(tracing::Span::none)).await;
            if let (Some(count_after), Ok(response)) = (count_after, &response) {
                count_after.count(response);
            }
            response
        }))
    }
}

/// What the layer counts once the response tells whether a guard refused the request: an
/// authenticated request's outcome, under its client (metrics or analytics on).
struct CountAfter {
    meter: Arc<Meter>,
    client: Option<Arc<ClientMeter>>,
}

impl CountAfter {
    fn count(self, response: &Response) {
        let refused = response.extensions().get::<GuardRefusal>();
        let outcome = refused.map_or(tessera_core::AuthOutcome::Ok, |r| r.0);
        self.meter.outcome(self.client.as_deref(), outcome);
    }
}

/// Counts what the verdict already tells (with metrics or analytics on) and makes the request's
/// span: the verdict's part of the layer's work, whichever way it was reached. `at`: when the
/// request reached the layer.
fn settle(
    core: &Core,
    outcome: &Verdict,
    at: std::time::Instant,
    observed: Observed,
) -> (Option<tracing::Span>, Option<CountAfter>) {
    // Counted once per request: a failure now, a success once the response tells whether a guard
    // refused it.
    let mut count_after = None;
    if let Some(meter) = &core.meter {
        if !matches!(outcome, Ok(None)) {
            // Only requests that presented a token were verified.
            meter.verification(at, &observed);
        }
        match outcome {
            Ok(Some(_)) => count_after = Some(CountAfter { meter: meter.clone(), client: observed.client }),
            Ok(None) => {}
            Err(e) => {
                if let Some(o) = outcome_of(e) {
                    meter.outcome(observed.client.as_deref(), o);
                }
            }
        }
    }
    let span = match outcome {
        Ok(Some(p)) => principal_span(p),
        _ => None,
    };
    (span, count_after)
}

/// The request's span for an authenticated caller. The service's own request span, when it
/// declares `user_id` and `client` (as `tracing::field::Empty`), says who called; a span without
/// them ignores this. Then a `tessera` debug span of its own, which the inner service runs in.
///
/// All of it is skipped while no subscriber anywhere is interested in any span: with the global
/// maximum level off, no span can be enabled, so the current one cannot take the fields and ours
/// would be disabled. (A disabled span is not free: through the `log` compatibility that sqlx
/// turns on, entering, leaving and dropping one each ask `log` whether it wants a line.) `None`:
/// no span at all, not even `Span::none()`, whose drop alone is a few dozen instructions.
fn principal_span(p: &Principal) -> Option<tracing::Span> {
    if tracing::level_filters::LevelFilter::current() == tracing::level_filters::LevelFilter::OFF {
        return None;
    }
    let request_span = tracing::Span::current();
    request_span.record("user_id", tracing::field::display(p.user.id));
    request_span.record("client", tracing::field::display(&p.client.name));
    let span = tracing::debug_span!("tessera", user_id = %p.user.id, client = %p.client.name);
    // Disabled (the usual case below the debug level): entering, leaving and dropping it through
    // `Instrumented` would do nothing but cost about a hundred instructions per request.
    (!span.is_disabled()).then_some(span)
}

pin_project! {
    /// The response future of [`AuthService`]: the inner service's own future when the request was
    /// verified without waiting (the cached authenticator's hits), else a boxed future that
    /// verifies, then calls the inner service.
    pub struct AuthFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Now {
            #[pin]
            inner: F,
            count_after: Option<CountAfter>,
        },
        // Apart from `Now` so that a request without a span pays nothing for one: entering,
        // leaving and dropping even `Span::none()` through `Instrumented` is a few dozen
        // instructions per request.
        Traced {
            #[pin]
            inner: tracing::instrument::Instrumented<F>,
            count_after: Option<CountAfter>,
        },
        Later {
            future: Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>,
        },
    }
}

impl<F> AuthFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    fn now(inner: F, span: Option<tracing::Span>, count_after: Option<CountAfter>) -> Self {
        let state = match span {
            None => State::Now { inner, count_after },
            Some(span) => State::Traced { inner: inner.instrument(span), count_after },
        };
        AuthFuture { state }
    }

    fn later(future: Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>) -> Self {
        AuthFuture { state: State::Later { future } }
    }
}

impl<F> Future for AuthFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (response, count_after) = match self.project().state.project() {
            StateProj::Now { inner, count_after } => (std::task::ready!(inner.poll(cx)), count_after),
            StateProj::Traced { inner, count_after } => (std::task::ready!(inner.poll(cx)), count_after),
            StateProj::Later { future } => return future.as_mut().poll(cx),
        };
        if let (Some(count_after), Ok(response)) = (count_after.take(), &response) {
            count_after.count(response);
        }
        Poll::Ready(response)
    }
}

impl<F> std::fmt::Debug for AuthFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Now { .. } | State::Traced { .. } => "verified",
            State::Later { .. } => "verifying",
        };
        f.debug_struct("AuthFuture").field("state", &state).finish_non_exhaustive()
    }
}
