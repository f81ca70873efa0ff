//! The authentication layer: runs once per request, before any extractor or guard, and leaves its
//! verdict in the request's extensions.

use crate::client_ip::client_ip;
use crate::error::AuthError;
use crate::meter::{GuardRefusal, Observed, outcome_of};
use crate::principal::Principal;
use crate::state::Core;
use axum::extract::Request;
use axum::response::Response;
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
    /// The client's address (for events), as login records it.
    pub(crate) ip: Option<std::net::IpAddr>,
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
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // The service that was polled ready is the one to call; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if req.extensions().get::<AuthContext>().is_some() {
            // An outer layer already authenticated this request: once is enough.
            return Box::pin(inner.call(req));
        }
        let core = self.core.clone();
        let cached = self.cached;
        Box::pin(async move {
            let ip = client_ip(req.extensions(), req.headers(), &core.settings.trusted_proxies);
            let started = core.meter.is_some().then(std::time::Instant::now);
            let mut observed = Observed::default();
            let outcome = core.authenticate(req.headers(), cached, ip, &mut observed).await;
            // Counted once per request: a failure now, a success once the response tells whether
            // a guard refused it.
            let mut count_after = None;
            if let (Some(meter), Some(started)) = (&core.meter, started) {
                if !matches!(outcome, Ok(None)) {
                    // Only requests that presented a token were verified.
                    meter.verification(started, &observed);
                }
                match &outcome {
                    Ok(Some(_)) => count_after = Some((meter.clone(), observed.client)),
                    Ok(None) => {}
                    Err(e) => {
                        if let Some(o) = outcome_of(e) {
                            meter.outcome(observed.client.as_deref(), o);
                        }
                    }
                }
            }
            let span = match &outcome {
                Ok(Some(p)) => {
                    // The service's own request span, when it declares `user_id` and `client`
                    // (as `tracing::field::Empty`), says who called; a span without them ignores this.
                    let request_span = tracing::Span::current();
                    request_span.record("user_id", tracing::field::display(p.user.id));
                    request_span.record("client", tracing::field::display(&p.client.name));
                    tracing::debug_span!("tessera", user_id = %p.user.id, client = %p.client.name)
                }
                _ => tracing::Span::none(),
            };
            req.extensions_mut().insert(AuthContext { outcome, core, ip });
            let response = inner.call(req).instrument(span).await;
            if let (Some((meter, client)), Ok(response)) = (count_after, &response) {
                let refused = response.extensions().get::<GuardRefusal>();
                meter.outcome(client.as_deref(), refused.map_or(tessera_core::AuthOutcome::Ok, |r| r.0));
            }
            response
        })
    }
}
