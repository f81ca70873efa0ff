//! One adapter per proxy convention: where each proxy puts the original request, read into an
//! [`OriginalRequest`]; the endpoints that serve them.
//!
//! | endpoint (under the mount point) | convention | original request from |
//! |---|---|---|
//! | `/nginx` | nginx `auth_request` | `X-Original-Method`, `X-Original-URI`, `X-Original-Host` (else `Host`, unless a rule names a host) |
//! | `/traefik`, `/caddy` | Traefik `forwardAuth`, Caddy `forward_auth` | `X-Forwarded-Method`, `-Uri`, `-Host` (else `Host`, unless a rule names a host), `-Proto` |
//! | `/envoy/<path>` | Envoy `ext_authz` (HTTP service) | the method, the path after `/envoy`, `Host` |
//!
//! Forwarded headers are read only when the peer is a trusted proxy; each must appear at most
//! once (a repeated `X-Forwarded-Uri` is refused, never resolved by picking one), be text and at
//! most [`MAX_PATH_LEN`] bytes. From an untrusted peer they are ignored and the request is judged
//! by its own method, host and path.

use super::{ForwardAuth, OriginalRequest};
use crate::client_ip::client_ip;
use crate::error::AuthError;
use axum::Router;
use axum::extract::{ConnectInfo, OriginalUri, Request, State};
use axum::http::{HeaderMap, HeaderName, Method};
use axum::response::Response;
use axum::routing::any;
use std::net::SocketAddr;
use std::sync::Arc;
use tessera_core::route_rules::{MAX_PATH_LEN, normalize_host, normalize_path};

/// Every path [`ForwardAuth::router`] serves (under its mount point); the router is built from
/// this table, so a document of the API can be checked against it.
pub const PATHS: [&str; 6] = ["/nginx", "/traefik", "/caddy", "/envoy", "/envoy/", "/envoy/{*path}"];

/// A proxy's convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convention {
    /// nginx `auth_request`: only 2xx, 401, 403 understood.
    Nginx,
    /// Traefik `forwardAuth` and Caddy `forward_auth`: `X-Forwarded-*`; any answer relayed.
    Forwarded,
    /// Envoy `ext_authz` HTTP service: the original path after the endpoint's; 200 only allows.
    Envoy,
}

/// The one value of header `name`, if any: refused when repeated, not text, or too long.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, AuthError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else { return Ok(None) };
    if values.next().is_some() || first.len() > MAX_PATH_LEN {
        return Err(AuthError::BadForwardedRequest);
    }
    first.to_str().map(Some).map_err(|_| AuthError::BadForwardedRequest)
}

fn method_of(text: &str) -> Result<Method, AuthError> {
    Method::from_bytes(text.trim().as_bytes()).map_err(|_| AuthError::BadForwardedRequest)
}

fn path_of(target: &str) -> Result<String, AuthError> {
    normalize_path(target).map_err(|_| AuthError::BadForwardedRequest)
}

impl ForwardAuth {
    /// The original host from a trusted proxy's `header`. Without it, the proxy's subrequest's
    /// own `Host` (often Tessera's address, not the original one) — refused when a rule names a
    /// host, so that a request cannot escape a host's rule for one covering any host.
    fn forwarded_host(&self, headers: &HeaderMap, header: &HeaderName) -> Result<Option<String>, AuthError> {
        match single(headers, header)? {
            Some(host) => host_of(headers, Some(host)),
            None if self.config.rules.names_hosts() => Err(AuthError::BadForwardedRequest),
            None => host_of(headers, None),
        }
    }
}

fn host_of(headers: &HeaderMap, forwarded: Option<&str>) -> Result<Option<String>, AuthError> {
    let raw = match forwarded {
        Some(h) => Some(h),
        None => single(headers, &axum::http::header::HOST)?,
    };
    raw.map(|h| normalize_host(h).map_err(|_| AuthError::BadForwardedRequest)).transpose()
}

impl ForwardAuth {
    /// The original request as `convention` describes it in `req`.
    pub fn original_request(&self, convention: Convention, req: &Request) -> Result<OriginalRequest, AuthError> {
        let headers = req.headers();
        let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let trusted = peer.is_some_and(|ip| self.config.trusted_proxies.iter().any(|n| n.contains(ip)));
        // What Tessera itself sees: the path it was asked on (before any `nest` stripped it).
        let own_target = req.extensions().get::<OriginalUri>().map(|u| &u.0).unwrap_or(req.uri());
        let own_target = own_target.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let own = || -> Result<OriginalRequest, AuthError> {
            Ok(OriginalRequest {
                method: req.method().clone(),
                host: host_of(headers, None)?,
                path: path_of(own_target)?,
            })
        };
        match convention {
            Convention::Envoy => {
                // The path after `/envoy` of the (possibly nested) router's view of the request
                // (after the mount point of `router_at`).
                let target = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
                let rest = target
                    .strip_prefix(&*self.mount)
                    .and_then(|t| t.strip_prefix("/envoy"))
                    .ok_or(AuthError::BadForwardedRequest)?;
                let rest = if rest.is_empty() || rest.starts_with('?') { format!("/{rest}") } else { rest.to_string() };
                Ok(OriginalRequest {
                    method: req.method().clone(),
                    host: host_of(headers, None)?,
                    path: path_of(&rest)?,
                })
            }
            _ if !trusted => own(),
            Convention::Nginx => {
                let nginx = &self.config.nginx;
                let uri = single(headers, &nginx.uri_header)?.ok_or(AuthError::BadForwardedRequest)?;
                let method = single(headers, &nginx.method_header)?.map(method_of).transpose()?;
                Ok(OriginalRequest {
                    method: method.unwrap_or_else(|| req.method().clone()),
                    host: self.forwarded_host(headers, &nginx.host_header)?,
                    path: path_of(uri)?,
                })
            }
            Convention::Forwarded => {
                let name = |n: &'static str| HeaderName::from_static(n);
                let uri = single(headers, &name("x-forwarded-uri"))?.ok_or(AuthError::BadForwardedRequest)?;
                let method = single(headers, &name("x-forwarded-method"))?.map(method_of).transpose()?;
                if let Some(proto) = single(headers, &name("x-forwarded-proto"))?
                    && !matches!(proto.trim(), "http" | "https" | "ws" | "wss")
                {
                    return Err(AuthError::BadForwardedRequest);
                }
                Ok(OriginalRequest {
                    method: method.unwrap_or_else(|| req.method().clone()),
                    host: self.forwarded_host(headers, &name("x-forwarded-host"))?,
                    path: path_of(uri)?,
                })
            }
        }
    }

    /// Reads the original request, decides and answers, in `convention`'s terms.
    pub async fn handle(&self, convention: Convention, req: Request) -> Response {
        let ip = client_ip(req.extensions(), req.headers(), &self.config.trusted_proxies);
        match self.original_request(convention, &req) {
            Ok(original) => {
                let verdict = self.decide(req.headers(), &original, ip).await;
                tracing::debug!(?convention, method = %original.method, host = ?original.host, path = %original.path,
                    allowed = matches!(verdict, super::Verdict::Allow(_)), "forward-auth decision");
                // The rules are searched again for the audience only when it is used.
                let audience = self.config.identity_token.as_ref().and_then(|_| self.audience(&original));
                self.respond(verdict, audience, convention)
            }
            Err(e) => self.respond(super::Verdict::Refuse(e), None, convention),
        }
    }

    /// The endpoints, to [`nest`](Router::nest) where the proxies reach them (`tessera serve`
    /// mounts them at `/auth/forward`): `/nginx`, `/traefik`, `/caddy`, and `/envoy/*`. Every
    /// method is accepted (Envoy asks with the original method).
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        self.routes("")
    }

    /// The same endpoints at their full paths under `prefix` (`/auth/forward`), to
    /// [`merge`](Router::merge) rather than nest: the same answers, without the per-request
    /// rewriting of the URI that `nest` does (about 3,000 instructions of the 40,000 a cached
    /// decision costs, `bench/cost`). `prefix` starts with `/` and has no trailing slash.
    pub fn router_at<S: Clone + Send + Sync + 'static>(&self, prefix: &str) -> Router<S> {
        assert!(prefix.starts_with('/') && !prefix.ends_with('/'), "a mount point like /auth/forward");
        self.routes(prefix)
    }

    fn routes<S: Clone + Send + Sync + 'static>(&self, prefix: &str) -> Router<S> {
        async fn nginx(State(f): State<ForwardAuth>, req: Request) -> Response {
            f.handle(Convention::Nginx, req).await
        }
        async fn forwarded(State(f): State<ForwardAuth>, req: Request) -> Response {
            f.handle(Convention::Forwarded, req).await
        }
        async fn envoy(State(f): State<ForwardAuth>, req: Request) -> Response {
            f.handle(Convention::Envoy, req).await
        }
        let handlers = [any(nginx), any(forwarded), any(forwarded), any(envoy), any(envoy), any(envoy)];
        let mut router = Router::new();
        for (path, handler) in PATHS.into_iter().zip(handlers) {
            router = router.route(&format!("{prefix}{path}"), handler);
        }
        router.with_state(ForwardAuth { mount: Arc::from(prefix), ..self.clone() })
    }
}
