//! Guards: authentication required, client permissions and the throttle, checked in durin's order
//! (authentication, then permissions, then the throttle) before the handler runs.

use crate::error::AuthError;
use crate::layer::AuthContext;
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
    pub(crate) async fn check(&self, ctx: Option<AuthContext>) -> Result<(), Response> {
        let Some(AuthContext { outcome, core, .. }) = ctx else {
            return Err(crate::error::Rejection::layer_missing().into_response());
        };
        let principal = match outcome {
            Ok(Some(p)) => p,
            Ok(None) => return Err(core.reject(AuthError::NotAuthenticated).into_response()),
            Err(e) => return Err(core.reject(e).into_response()),
        };
        let name = principal.client.name.as_str();
        let allowed = match &self.clients {
            Clients::Any => true,
            Clients::Only(list) => list.iter().any(|c| c == name),
            Clients::AllBut(list) => !list.iter().any(|c| c == name),
        };
        // The refusals the layer counts as this request's outcome (it counted nothing yet).
        let refused = |e: AuthError| {
            let outcome = crate::meter::outcome_of(&e);
            let mut response = core.reject(e).into_response();
            if let Some(outcome) = outcome {
                response.extensions_mut().insert(crate::meter::GuardRefusal(outcome));
            }
            response
        };
        if !allowed {
            return Err(refused(AuthError::PermissionDenied));
        }
        if self.throttle
            && let Err(e) = core.throttle(&principal, self.warned_no_rate.as_deref()).await
        {
            return Err(refused(e));
        }
        Ok(())
    }
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
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        Box::pin(async move {
            match guard.check(req.extensions().get::<AuthContext>().cloned()).await {
                Ok(()) => inner.call(req).await,
                Err(response) => Ok(response),
            }
        })
    }
}
