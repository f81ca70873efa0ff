//! Forward-auth: a proxy in front of a service in any language asks "may this request through,
//! and who is it?" before passing it on.
//!
//! One decision ([`ForwardAuth::decide`]) and one small adapter per proxy convention
//! ([`adapters`]): nginx `auth_request`, Traefik `forwardAuth`, Caddy `forward_auth`, Envoy
//! `ext_authz` (HTTP service). The decision authenticates the request's `Authorization` header
//! exactly as the API does (the cached authenticator: a revocation anywhere is honoured within a
//! second), finds the [route rule](tessera_core::route_rules) for the original host and path, and
//! answers 200 with identity headers, or 401, 403, 429 (`Retry-After`), 503.
//!
//! The description of the original request (`X-Original-*`, `X-Forwarded-*`) is believed only
//! from a trusted proxy's address; anyone else is judged by what Tessera itself sees (its own
//! path, which no rule should cover: denied by default).
//!
//! ```
//! # fn demo(tessera: tessera_axum::Tessera) {
//! use tessera_axum::forward::ForwardAuthConfig;
//! use tessera_axum::core::route_rules::{NoMatch, RouteRule, RouteRules};
//! let mut api = RouteRule::new(None, "/api").expect("rule");
//! api.throttle = true;
//! let config = ForwardAuthConfig {
//!     rules: RouteRules::new(vec![api], NoMatch::Deny).expect("rules"),
//!     ..ForwardAuthConfig::default()
//! };
//! let app: axum::Router = axum::Router::new().nest("/auth/forward", tessera.forward_auth(config).router());
//! # let _ = app; }
//! ```

pub mod adapters;
pub mod identity;

use crate::error::AuthError;
use crate::principal::Principal;
use crate::state::Core;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tessera_core::net::IpNet;
use tessera_core::route_rules::{NoMatch, RouteRules};

pub use adapters::Convention;
pub use identity::IdentitySigner;

/// The signed identity ([`identity`]): a JWT on every authenticated 200, for upstreams to verify.
#[derive(Debug, Clone)]
pub struct IdentityToken {
    /// The header that carries it (`X-Tessera-Identity`). The proxy must strip a client's copy,
    /// like the other identity headers.
    pub header: HeaderName,
    /// Its lifetime (`exp - iat`), at most [`identity::MAX_TTL`]; 30 s by default.
    pub ttl: Duration,
    /// `iss` (default `tessera`).
    pub issuer: String,
    /// `aud` when the route rule names none (and for requests no rule covers). With neither, an
    /// authenticated request is answered 503: a token without an audience would be good at every
    /// upstream.
    pub audience: Option<String>,
    /// The keys.
    pub signer: IdentitySigner,
}

impl IdentityToken {
    /// The default header, lifetime and issuer, signed by `signer`.
    pub fn new(signer: IdentitySigner) -> Self {
        IdentityToken {
            header: HeaderName::from_static("x-tessera-identity"),
            ttl: Duration::from_secs(30),
            issuer: "tessera".to_string(),
            audience: None,
            signer,
        }
    }
}

/// The names of the headers that carry the identity to the upstream on a 200.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    /// The user's id (`X-Tessera-User-Id`).
    pub user_id: HeaderName,
    /// The username (`X-Tessera-User`).
    pub user: HeaderName,
    /// The client's name (`X-Tessera-Client`).
    pub client: HeaderName,
    /// The token's id — its id, never the token (`X-Tessera-Token-Id`).
    pub token_id: HeaderName,
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        Self {
            user_id: HeaderName::from_static("x-tessera-user-id"),
            user: HeaderName::from_static("x-tessera-user"),
            client: HeaderName::from_static("x-tessera-client"),
            token_id: HeaderName::from_static("x-tessera-token-id"),
        }
    }
}

/// nginx `auth_request` specifics.
#[derive(Debug, Clone)]
pub struct NginxConfig {
    /// The original method (`X-Original-Method`).
    pub method_header: HeaderName,
    /// The original request target, as `$request_uri` (`X-Original-URI`).
    pub uri_header: HeaderName,
    /// The original host (`X-Original-Host`); without it, the subrequest's `Host`.
    pub host_header: HeaderName,
    /// What "throttled" becomes: nginx turns any status but 2xx, 401 and 403 into a 500. 403 by
    /// default: a 401 tells durin's clients their token is bad, and they throw it away and log
    /// in again — which the throttle then counts too. `Retry-After` is sent either way.
    pub throttled_status: StatusCode,
}

impl Default for NginxConfig {
    fn default() -> Self {
        Self {
            method_header: HeaderName::from_static("x-original-method"),
            uri_header: HeaderName::from_static("x-original-uri"),
            host_header: HeaderName::from_static("x-original-host"),
            throttled_status: StatusCode::FORBIDDEN,
        }
    }
}

/// The forward-auth configuration: route rules, trusted proxies, header names.
#[derive(Debug, Clone)]
pub struct ForwardAuthConfig {
    /// What passes where. The default has no rule and denies everything.
    pub rules: RouteRules,
    /// The proxies whose `X-Forwarded-*` / `X-Original-*` headers are believed (default: loopback).
    pub trusted_proxies: Vec<IpNet>,
    /// The identity headers' names.
    pub identity: IdentityHeaders,
    /// nginx's header names and throttled status.
    pub nginx: NginxConfig,
    /// The signed identity on authenticated 200s; off (`None`) by default.
    pub identity_token: Option<IdentityToken>,
}

impl Default for ForwardAuthConfig {
    fn default() -> Self {
        Self {
            rules: RouteRules::default(),
            trusted_proxies: default_trusted_proxies(),
            identity: IdentityHeaders::default(),
            nginx: NginxConfig::default(),
            identity_token: None,
        }
    }
}

/// Loopback, IPv4 and IPv6: a proxy on the same machine.
pub fn default_trusted_proxies() -> Vec<IpNet> {
    ["127.0.0.0/8", "::1/128"].iter().filter_map(|n| n.parse().ok()).collect()
}

/// The request the proxy asks about, as the rules read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalRequest {
    /// Its method.
    pub method: Method,
    /// Its host, normalised (lower-case, no port); `None` when unknown (only rules for any host
    /// match).
    pub host: Option<String>,
    /// Its path in its one reading ([`normalize_path`](tessera_core::route_rules::normalize_path)).
    pub path: String,
}

/// What the decision says.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Let it through: as this principal, or anonymously (`None`).
    Allow(Option<Arc<Principal>>),
    /// Refuse it, with this error.
    Refuse(AuthError),
}

/// Forward-auth for one [`Tessera`](crate::Tessera): the decision and the endpoints. Cheap to
/// clone; build it with [`Tessera::forward_auth`](crate::Tessera::forward_auth).
#[derive(Clone)]
pub struct ForwardAuth {
    core: Arc<Core>,
    config: Arc<ForwardAuthConfig>,
    /// Where [`ForwardAuth::router_at`] put the endpoints (empty for [`ForwardAuth::router`],
    /// which is nested): what precedes `/envoy` in the path the handler sees.
    mount: Arc<str>,
}

impl std::fmt::Debug for ForwardAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardAuth").field("config", &self.config).finish_non_exhaustive()
    }
}

impl ForwardAuth {
    pub(crate) fn new(core: Arc<Core>, config: ForwardAuthConfig) -> Self {
        Self { core, config: Arc::new(config), mount: Arc::from("") }
    }

    /// The configuration in force.
    pub fn config(&self) -> &ForwardAuthConfig {
        &self.config
    }

    /// The decision, shared by every convention: authenticate the `Authorization` header of
    /// `headers` (cached), then apply the rule for `original`'s host and path. `ip` is the
    /// client's address, for events.
    pub async fn decide(&self, headers: &HeaderMap, original: &OriginalRequest, ip: Option<IpAddr>) -> Verdict {
        let started = self.core.meter.is_some().then(std::time::Instant::now);
        let mut observed = crate::meter::Observed::default();
        let verdict = self.decide_observed(headers, original, ip, &mut observed).await;
        // Counted as the layer counts: a request that presented a token, by how it ended.
        if let (Some(meter), Some(started)) = (&self.core.meter, started) {
            let outcome = match &verdict {
                Verdict::Allow(Some(_)) => Some(tessera_core::AuthOutcome::Ok),
                Verdict::Allow(None) => None,
                Verdict::Refuse(e) => crate::meter::outcome_of(e),
            };
            // Only requests that presented a token were verified.
            if observed.cache.is_some() || outcome.is_some() {
                meter.verification(started, &observed);
            }
            // A refusal after a token was found (a rule's clients, its throttle) is its client's.
            if let Some(outcome) = outcome {
                meter.outcome(observed.client.as_deref(), outcome);
            }
        }
        verdict
    }

    async fn decide_observed(
        &self,
        headers: &HeaderMap,
        original: &OriginalRequest,
        ip: Option<IpAddr>,
        observed: &mut crate::meter::Observed,
    ) -> Verdict {
        // Credentials first, exactly as the API: a bad token is a 401 even where anonymous
        // requests pass, and a store that cannot answer is a 503, never a pass.
        // A cache hit is decided without waiting, as in the layer; anything else asks the store.
        let verdict = match self.core.authenticate_now(headers, true, std::time::Instant::now(), observed) {
            Some(verdict) => verdict,
            None => self.core.authenticate(headers, true, ip, observed).await,
        };
        let principal = match verdict {
            Ok(p) => p,
            Err(e) => return Verdict::Refuse(e),
        };
        let rule = self.config.rules.find(original.host.as_deref(), &original.path);
        let Some(rule) = rule else {
            return match (self.config.rules.no_match, principal) {
                (NoMatch::Authenticated, Some(p)) => Verdict::Allow(Some(p)),
                (NoMatch::Authenticated, None) => Verdict::Refuse(AuthError::NotAuthenticated),
                (NoMatch::Deny, _) => Verdict::Refuse(AuthError::RouteDenied),
            };
        };
        let Some(principal) = principal else {
            return if rule.anonymous { Verdict::Allow(None) } else { Verdict::Refuse(AuthError::NotAuthenticated) };
        };
        if !rule.clients.allows(principal.client.name.as_str()) {
            return Verdict::Refuse(AuthError::PermissionDenied);
        }
        if rule.throttle
            && let Err(e) = self.core.throttle(&principal, None).await
        {
            return Verdict::Refuse(e);
        }
        Verdict::Allow(Some(principal))
    }

    /// The audience of the signed identity for `original`: its rule's, else the default.
    pub fn audience(&self, original: &OriginalRequest) -> Option<&str> {
        let rule = self.config.rules.find(original.host.as_deref(), &original.path);
        rule.and_then(|r| r.audience.as_deref())
            .or_else(|| self.config.identity_token.as_ref().and_then(|t| t.audience.as_deref()))
    }

    /// The signed identity of `principal` for `audience`: `Ok(None)` when it is not configured,
    /// an error (503) when it is but cannot be made — no key, no audience — rather than let the
    /// request through without the identity the upstream expects.
    fn identity_token(&self, principal: &Principal, audience: Option<&str>) -> Result<Option<HeaderValue>, AuthError> {
        let Some(config) = &self.config.identity_token else { return Ok(None) };
        let Some(audience) = audience else {
            tracing::warn!("forward-auth: no audience for the identity token (set the route's audience); refusing");
            return Err(AuthError::Unavailable);
        };
        let claims = identity::IdentityClaims {
            user_id: principal.user.id.0,
            username: principal.user.username.as_str(),
            client: principal.client.name.as_str(),
            token_id: principal.token.id.0,
            audience,
            issuer: &config.issuer,
            issued_at: self.core.now().timestamp(),
            ttl: config.ttl,
        };
        let Some(jwt) = config.signer.sign(&claims) else {
            tracing::warn!("forward-auth: no identity key loaded; refusing");
            return Err(AuthError::Unavailable);
        };
        HeaderValue::try_from(jwt).map(Some).map_err(|_| AuthError::Unavailable)
    }

    /// The answer to the proxy for `verdict`, in `convention`'s terms; `audience` is the signed
    /// identity's ([`ForwardAuth::audience`]). Every answer says `Cache-Control: no-store`: it is
    /// about this request's credentials, and a cache keyed without them would hand one user's
    /// "yes" to everyone.
    pub fn respond(&self, verdict: Verdict, audience: Option<&str>, convention: Convention) -> Response {
        let verdict = match verdict {
            Verdict::Allow(Some(p)) => match self.identity_token(&p, audience) {
                Ok(token) => Ok((Some(p), token)),
                Err(e) => Err(e),
            },
            Verdict::Allow(None) => Ok((None, None)),
            Verdict::Refuse(e) => Err(e),
        };
        let mut response = match verdict {
            Ok((principal, signed)) => {
                let mut response = StatusCode::OK.into_response();
                let ids = &self.config.identity;
                let headers = response.headers_mut();
                if let Some(config) = &self.config.identity_token {
                    headers.insert(config.header.clone(), signed.unwrap_or_else(|| HeaderValue::from_static("")));
                }
                // Anonymous: the identity headers are there, empty, so that a proxy copying them
                // (Caddy's copy_headers, Traefik's authResponseHeaders, Envoy's
                // allowed_upstream_headers) overwrites a client's copies instead of leaving them,
                // or — Caddy 2.6 — copying its own unreplaced placeholder. nginx drops an empty
                // header.
                let empty = || HeaderValue::from_static("");
                let text = |s: &str| HeaderValue::from_str(s).unwrap_or_else(|_| empty());
                let [user_id, user, client, token_id] = match principal {
                    Some(p) => [
                        HeaderValue::from(p.user.id.0),
                        text(p.user.username.as_str()),
                        text(p.client.name.as_str()),
                        HeaderValue::from(p.token.id.0),
                    ],
                    None => [empty(), empty(), empty(), empty()],
                };
                headers.reserve(6);
                headers.insert(ids.user_id.clone(), user_id);
                headers.insert(ids.user.clone(), user);
                headers.insert(ids.client.clone(), client);
                headers.insert(ids.token_id.clone(), token_id);
                response
            }
            Err(e) => {
                let status = e.status();
                let mut response = self.core.reject(e).into_response();
                if convention == Convention::Nginx {
                    // nginx understands 2xx, 401 and 403; anything else is a 500 at the client
                    // (a 5xx stays one: the store being down is an error, and never a pass).
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        *response.status_mut() = self.config.nginx.throttled_status;
                    } else if status.is_client_error() && status != StatusCode::UNAUTHORIZED {
                        *response.status_mut() = StatusCode::FORBIDDEN;
                    }
                }
                response
            }
        };
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}
