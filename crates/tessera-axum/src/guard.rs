//! Guards: authentication required, client permissions and the throttle, checked in durin's order
//! (authentication, then permissions, then the throttle) before the handler runs.

use crate::error::AuthError;
use crate::layer::AuthContext;
use crate::principal::Principal;
use crate::state::Core;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Which clients may use a route.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Clients {
    Any,
    Only(Vec<String>),
    AllBut(Vec<String>),
}

/// A route guard, built from [`Tessera::guard`](crate::Tessera::guard). Apply it with
/// `route_layer` (or `layer` on a method router) *inside* the authentication layer.
///
/// ```
/// # fn demo(tessera: tessera_axum::Tessera) {
/// use axum::{Router, routing::get};
/// let app: Router = Router::new()
///     .route("/web-only", get(|| async { "hi" }).route_layer(tessera.guard().allow_clients(["web"]).throttled()))
///     .layer(tessera.layer());
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Guard {
    clients: Clients,
    throttle: bool,
    /// Set once the "throttled, but no rate to apply" warning was logged (guards a service built;
    /// the auth routes' own guard is throttled only when a rate is configured, by design).
    warned_no_rate: Option<Arc<AtomicBool>>,
}

impl Guard {
    /// The auth routes' guard: silent when there is no rate.
    pub(crate) fn new() -> Self {
        Self { clients: Clients::Any, throttle: false, warned_no_rate: None }
    }

    /// A service's guard: says so once when `throttled()` has no rate to apply.
    pub(crate) fn for_service() -> Self {
        Self { warned_no_rate: Some(Arc::new(AtomicBool::new(false))), ..Self::new() }
    }

    /// Only these clients (durin's `AllowSpecificClients`); others get 403.
    pub fn allow_clients<I: IntoIterator<Item = N>, N: Into<String>>(mut self, names: I) -> Self {
        self.clients = Clients::Only(names.into_iter().map(Into::into).collect());
        self
    }

    /// Every client but these (durin's `DisallowSpecificClients`); these get 403.
    pub fn deny_clients<I: IntoIterator<Item = N>, N: Into<String>>(mut self, names: I) -> Self {
        self.clients = Clients::AllBut(names.into_iter().map(Into::into).collect());
        self
    }

    /// Apply the per-(user, client) throttle: the client's rate, else `default_throttle_rate`.
    /// With neither, requests pass unthrottled, and a warning naming the client is logged once.
    pub fn throttled(mut self) -> Self {
        self.throttle = true;
        self
    }

    /// Runs the checks; `Err` is the response to send instead of calling the handler.
    pub(crate) async fn check(&self, ctx: Option<&AuthContext>) -> Result<(), Response> {
        match self.precheck(ctx)? {
            None => Ok(()),
            Some((principal, core)) => {
                core.throttle(principal, self.warned_no_rate.as_deref()).await.map_err(|e| refusal(core, e))
            }
        }
    }

    /// [`Guard::check`] without waiting, when that can be done (no throttle, or the in-process
    /// limiter): `None` when the throttle must be asked ([`Guard::check`]; Redis).
    // The `Err` is the response sent instead of the handler's, made only on a refusal.
    #[allow(clippy::result_large_err)]
    pub(crate) fn check_now(&self, ctx: Option<&AuthContext>) -> Option<Result<(), Response>> {
        match self.precheck(ctx) {
            Err(response) => Some(Err(response)),
            Ok(None) => Some(Ok(())),
            Ok(Some((principal, core))) => core
                .throttle_now(principal, self.warned_no_rate.as_deref())
                .map(|verdict| verdict.map_err(|e| refusal(core, e))),
        }
    }

    /// The checks before the throttle, in durin's order: authenticated, then the client list.
    /// `Ok(Some(..))`: passed, and the throttle remains to be applied to this principal.
    #[allow(clippy::result_large_err)]
    fn precheck<'a>(&self, ctx: Option<&'a AuthContext>) -> Result<Option<(&'a Principal, &'a Arc<Core>)>, Response> {
        let Some(AuthContext { outcome, core }) = ctx else {
            return Err(crate::error::Rejection::layer_missing().into_response());
        };
        let principal = match outcome {
            Ok(Some(p)) => p,
            Ok(None) => return Err(core.reject(AuthError::NotAuthenticated).into_response()),
            Err(e) => return Err(core.reject(e.clone()).into_response()),
        };
        let name = principal.client.name.as_str();
        let allowed = match &self.clients {
            Clients::Any => true,
            Clients::Only(list) => list.iter().any(|c| c == name),
            Clients::AllBut(list) => !list.iter().any(|c| c == name),
        };
        if !allowed {
            return Err(refusal(core, AuthError::PermissionDenied));
        }
        Ok(self.throttle.then_some((principal.as_ref(), core)))
    }
}

/// A guard's refusal, marked with the outcome the layer counts for this request (it counted
/// nothing yet).
fn refusal(core: &Core, e: AuthError) -> Response {
    let outcome = crate::meter::outcome_of(&e);
    let mut response = core.reject(e).into_response();
    if let Some(outcome) = outcome {
        response.extensions_mut().insert(crate::meter::GuardRefusal(outcome));
    }
    response
}

impl<S> Layer<S> for Guard {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService { inner, guard: self.clone() }
    }
}

/// The service a [`Guard`] wraps around a route.
#[derive(Clone, Debug)]
pub struct GuardService<S> {
    inner: S,
    guard: Guard,
}

impl<S> Service<Request> for GuardService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = GuardFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // Decided without waiting (no throttle, or the in-process limiter): the inner service that
        // was polled ready is called now, and nothing is boxed.
        match self.guard.check_now(req.extensions().get::<AuthContext>()) {
            Some(Ok(())) => return GuardFuture { state: GuardState::Inner { inner: self.inner.call(req) } },
            Some(Err(response)) => return GuardFuture { state: GuardState::Refused { response: Some(response) } },
            None => {}
        }
        // The throttle is asked (Redis): a boxed future that owns the request. The service that
        // was polled ready is the one to call; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        let future = Box::pin(async move {
            let ctx = req.extensions().get::<AuthContext>().cloned();
            match guard.check(ctx.as_ref()).await {
                Ok(()) => inner.call(req).await,
                Err(response) => Ok(response),
            }
        });
        GuardFuture { state: GuardState::Later { future } }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`GuardService`]: the inner service's own future when the guard
    /// decided without waiting, its refusal, or a boxed future that asks the throttle first.
    pub struct GuardFuture<F> {
        #[pin]
        state: GuardState<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = GuardStateProj]
    enum GuardState<F> {
        Inner {
            #[pin]
            inner: F,
        },
        Refused {
            response: Option<Response>,
        },
        Later {
            future: Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>,
        },
    }
}

impl<F> Future for GuardFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            GuardStateProj::Inner { inner } => inner.poll(cx),
            GuardStateProj::Refused { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled again after it answered: a contract violation by the caller.
                None => panic!("GuardFuture polled after completion"),
            },
            GuardStateProj::Later { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F> std::fmt::Debug for GuardFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            GuardState::Inner { .. } => "passed",
            GuardState::Refused { .. } => "refused",
            GuardState::Later { .. } => "checking",
        };
        f.debug_struct("GuardFuture").field("state", &state).finish_non_exhaustive()
    }
}
