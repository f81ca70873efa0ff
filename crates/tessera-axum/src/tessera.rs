//! [`Tessera`]: the handle a service keeps — layers, guards, the auth router, the token lifecycle
//! for admin tools, and the background tasks.

use crate::audit::record_audit;
use crate::builder::TesseraBuilder;
use crate::cache::{follow_bus, follow_invalidations};
use crate::guard::Guard;
use crate::layer::AuthLayer;
use crate::routes;
use crate::state::Core;
use crate::tokens::{PairToken, PairTokenError, PendingToken, Revocation, TokenRequest};
use crate::usage::flush_usage;
use axum::Router;
use std::sync::{Arc, OnceLock};
use tessera_core::store::{Store, StoreError};
use tessera_core::{AuthToken, Client, KeyId, KeyRing, Revoker, Settings, TokenCodec, TokenSecret, User};

/// Tessera for one axum application. Cheap to clone.
#[derive(Clone)]
pub struct Tessera {
    pub(crate) core: Arc<Core>,
    background: Arc<OnceLock<()>>,
}

impl Tessera {
    pub(crate) fn from_core(core: Core) -> Self {
        Tessera { core: Arc::new(core), background: Arc::new(OnceLock::new()) }
    }
}

impl std::fmt::Debug for Tessera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.core.fmt(f)
    }
}

impl Tessera {
    /// Starts configuring Tessera over `store`, with the server keys: one
    /// [`ServerKey`](tessera_core::ServerKey) (a ring of one key, id `0`) or a [`KeyRing`] (its
    /// first key current: new tokens are made with it; the others verify the tokens made with them).
    pub fn builder(store: Arc<dyn Store>, keys: impl Into<KeyRing>) -> TesseraBuilder {
        TesseraBuilder::new(store, keys.into())
    }

    /// Prepares for serving: creates the API-access client when one is configured and missing,
    /// and starts the background tasks (the last-used writer, the invalidation follower, and with
    /// an audit sink the audit recorder).
    /// Call it once at start-up; layers start the tasks themselves if it was not called.
    pub async fn start(&self) -> Result<(), StoreError> {
        routes::api_access_client(&self.core).await?;
        self.ensure_background();
        Ok(())
    }

    /// Writes what is buffered (last-used times, sliding expiries, usage counts, audit records; a batch being
    /// written by the background task is waited for). Call it at graceful shutdown, after the
    /// server stopped taking requests.
    pub async fn shutdown(&self) {
        // Last-used times, then the usage analytics they feed.
        self.core.flush_buffers().await;
        if let Some(audit) = &self.core.audit
            && let Err(e) = audit.flush().await
        {
            tracing::warn!(error = %e, "could not write the audit log at shutdown");
        }
        #[cfg(feature = "metrics")]
        if let Some(meter) = self.core.meter.as_ref().filter(|meter| meter.to_facade) {
            crate::facade::push(meter, self.core.cache.trusted());
        }
    }

    /// Deletes the audit records older than the retention now (the background task does it once
    /// an hour); how many. 0 without an audit sink.
    pub async fn prune_audit(&self) -> Result<u64, StoreError> {
        match &self.core.audit {
            Some(audit) => audit.prune(self.core.now()).await,
            None => Ok(0),
        }
    }

    /// Deletes the usage counts older than the retention now (the background task does it once an
    /// hour); how many rows. 0 without a usage sink.
    pub async fn prune_usage(&self) -> Result<u64, StoreError> {
        match &self.core.analytics {
            Some(analytics) => analytics.prune(self.core.now()).await,
            None => Ok(0),
        }
    }

    /// Every metric in the Prometheus text exposition format (version 0.0.4), as `/metrics`
    /// serves it; `None` when neither [`metrics`](crate::TesseraBuilder::metrics) nor a
    /// [`usage`](crate::TesseraBuilder::usage) sink was configured (nothing is counted).
    pub fn render_metrics(&self) -> Option<String> {
        self.core.meter.as_ref().map(|meter| meter.render(self.core.cache.trusted()))
    }

    /// A router serving [`render_metrics`](Self::render_metrics) at `GET /metrics`, to mount on a
    /// listener of its own (metrics say which clients are used: keep them off the public port).
    /// Without counting configured it answers 404.
    pub fn metrics_router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        use axum::http::{StatusCode, header};
        use axum::response::IntoResponse;
        let tessera = self.clone();
        Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let text = tessera.render_metrics();
                async move {
                    match text {
                        Some(text) => {
                            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
                        }
                        None => StatusCode::NOT_FOUND.into_response(),
                    }
                }
            }),
        )
    }

    /// The authentication layer, reading the store on every request.
    pub fn layer(&self) -> AuthLayer {
        self.ensure_background();
        AuthLayer::new(self.core.clone(), false)
    }

    /// The authentication layer with the cached authenticator: verified lookups are kept up to
    /// `token_cache_timeout`, and dropped at once when this process changes a token and within a
    /// second when another process does.
    pub fn cached_layer(&self) -> AuthLayer {
        self.ensure_background();
        AuthLayer::new(self.core.clone(), true)
    }

    /// A guard to restrict a route to clients and throttle it (apply inside the layer).
    pub fn guard(&self) -> Guard {
        Guard::for_service()
    }

    /// durin's routes, to mount with `Router::nest` (the server uses `/api/auth`). They carry
    /// their own authentication and the per-(user, client) throttle.
    pub fn auth_router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        self.ensure_background();
        routes::router(self.core.clone())
    }

    /// Forward-auth with `config`: the decision and the endpoints for nginx, Traefik, Caddy and
    /// Envoy (see [`forward`](crate::forward)). It uses the cached authenticator.
    pub fn forward_auth(&self, config: crate::forward::ForwardAuthConfig) -> crate::forward::ForwardAuth {
        self.ensure_background();
        crate::forward::ForwardAuth::new(self.core.clone(), config)
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.core.settings
    }

    /// The client's IP address for a request: the peer's, or — when the peer is one of the
    /// `trusted_proxies` — the right-most `X-Forwarded-For` address that is not (the rule the
    /// layer, the login route and forward-auth use; the admin UI uses it for its logins).
    pub fn client_ip(
        &self,
        extensions: &axum::http::Extensions,
        headers: &axum::http::HeaderMap,
    ) -> Option<std::net::IpAddr> {
        crate::client_ip::client_ip(extensions, headers, &self.core.settings.trusted_proxies)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.core.store
    }

    /// The token codec in force (to issue tokens outside the login route, e.g. from an admin
    /// tool). It changes with [`set_key_ring`](Self::set_key_ring).
    pub fn codec(&self) -> Arc<TokenCodec> {
        self.core.codec()
    }

    /// The server keys in force.
    pub fn key_ring(&self) -> KeyRing {
        self.core.keys.ring()
    }

    /// Puts another key ring in force, at once, for every request that starts after it: new
    /// tokens are made with its current key, and tokens made with a key it no longer holds stop
    /// authenticating (refused as invalid, without a lookup). The token format (prefix, length)
    /// stays. Returns `false` when `ring` is the ring already in force.
    ///
    /// Tokens made with a key that leaves the ring stay in the store; revoke them first
    /// (`delete_tokens` with a [`TokenFilter`](tessera_core::store::TokenFilter) on the key) so
    /// that every instance forgets them, as `tessera key retire --revoke` does.
    pub fn set_key_ring(&self, ring: KeyRing) -> bool {
        let changed = self.core.keys.replace(ring);
        if changed {
            let ring = self.core.keys.ring();
            tracing::info!(keys = ring.keys().len(), current = %ring.current(), "server key ring changed");
        }
        changed
    }

    /// The token of `user` on `client`, outside the login route — an admin tool, or a test that
    /// needs a token in one line. Like login it hands back the pair's token when one exists (the
    /// same token, re-derived), and issues a fresh one when there is none or it has expired.
    ///
    /// ```
    /// # async fn demo(tessera: tessera_axum::Tessera, user: tessera_axum::core::User, client: tessera_axum::core::Client) -> Result<(), tessera_axum::core::StoreError> {
    /// let (token, secret) = tessera.issue_token(&user, &client).await?;
    /// let header = format!("Token {}", secret.expose());
    /// # let _ = (token, header); Ok(()) }
    /// ```
    pub async fn issue_token(&self, user: &User, client: &Client) -> Result<(AuthToken, TokenSecret), StoreError> {
        match self.core.token_for_pair(TokenRequest::new(user, client).source("issue_token")).await {
            Ok(pair) => Ok((pair.token, pair.secret)),
            Err(PairTokenError::Store(e)) => Err(e),
            // `Reuse` never refuses; a store that reports a pair as both present and absent does.
            Err(PairTokenError::Exists(t)) => Err(StoreError::Backend(format!("token {} could not be reused", t.id))),
            Err(PairTokenError::DeviceLimit { max_devices }) => Err(StoreError::Conflict(format!(
                "user {} holds the limit of {max_devices} tokens on client '{}'",
                user.username, client.name
            ))),
        }
    }

    /// The token of a (user, client) pair, with a policy for a pair that has one: the one path
    /// that issues tokens (login, the API-access view and admin tools use it), emitting
    /// `TokenCreated`, `TokenRenewed`, `TokenExpired` and `TokenRevoked` as it goes.
    ///
    /// ```
    /// # async fn demo(tessera: tessera_axum::Tessera, user: tessera_axum::core::User, client: tessera_axum::core::Client) -> Result<(), tessera_axum::PairTokenError> {
    /// use tessera_axum::{IfPairHasToken, TokenRequest, core::Revoker};
    /// let fresh = tessera
    ///     .token_for_pair(TokenRequest::new(&user, &client).if_exists(IfPairHasToken::Replace).by(Revoker::Cli))
    ///     .await?;
    /// assert!(fresh.created);
    /// # Ok(()) }
    /// ```
    pub async fn token_for_pair(&self, request: TokenRequest<'_>) -> Result<PairToken, PairTokenError> {
        self.core.token_for_pair(request).await
    }

    /// Deliver before you destroy: a fresh token for the pair, not stored yet, so that its secret
    /// can be handed over (printed and flushed, say) before anything changes. Store it with
    /// [`store_pending_token`](Self::store_pending_token); dropped, it never existed and the pair
    /// keeps its token. A live token is refused unless the policy is [`IfPairHasToken::Replace`],
    /// which revokes it only when the new one is stored. The CLI's `token create` uses this.
    ///
    /// [`IfPairHasToken::Replace`]: crate::IfPairHasToken::Replace
    pub async fn prepare_token<'a>(&self, request: TokenRequest<'a>) -> Result<PendingToken<'a>, PairTokenError> {
        self.core.prepare_token(request).await
    }

    /// Stores a token from [`prepare_token`](Self::prepare_token), revoking the one it replaces
    /// (`TokenRevoked`, then `TokenCreated`). Refused with [`PairTokenError::Exists`], storing
    /// nothing, when the pair gained another live token in between.
    pub async fn store_pending_token(&self, pending: PendingToken<'_>) -> Result<PairToken, PairTokenError> {
        self.core.store_pending(pending).await
    }

    /// Revokes one token (an admin's or the CLI's action): deleted, forgotten by this process at
    /// once and by every other within a second, with a `TokenRevoked { by }` event. `false` when it
    /// was already gone.
    pub async fn revoke_token(&self, token: &AuthToken, by: Revoker) -> Result<bool, StoreError> {
        let (user, client) = self.core.store.user_and_client(token.user_id, token.client_id).await?;
        let who = user.as_ref().zip(client.as_ref().map(|c| c.name.as_str()));
        self.core.revoke(token, Revocation::Revoked(by), who, None).await
    }

    /// Revokes every token of `user`, or only the one(s) on `client`; a `TokenRevoked { by }`
    /// event for each. Returns what was revoked.
    pub async fn revoke_tokens(
        &self,
        user: &User,
        client: Option<&Client>,
        by: Revoker,
    ) -> Result<Vec<AuthToken>, StoreError> {
        self.core.revoke_tokens(user, client, by, None).await
    }

    /// Sets a user's password (already hashed, e.g. with `tessera_core::password::hash_password`)
    /// and, unless `revoke_tokens_on_password_change` is off, revokes every token of theirs.
    /// Returns the tokens revoked.
    pub async fn change_password(
        &self,
        user: &User,
        password_hash: &str,
        by: Revoker,
    ) -> Result<Vec<AuthToken>, StoreError> {
        self.core.change_password(user, password_hash, by).await
    }

    /// Revokes every token of every user — on `client`, or on every client: the supported way to
    /// log everyone out (deleting keys by hand in Redis is not: no instance hears of it). Each
    /// token gets a `TokenRevoked { by }` event. Returns what was revoked.
    pub async fn revoke_all_tokens(&self, client: Option<&Client>, by: Revoker) -> Result<Vec<AuthToken>, StoreError> {
        self.core.revoke_everyone(client, by).await
    }

    /// Revokes every token made with the server key `key` (`TokenRevoked { by }` each), so that
    /// the key can leave the ring: every instance forgets them within a second, like
    /// [`revoke_all_tokens`](Self::revoke_all_tokens). Returns what was revoked.
    pub async fn revoke_key_tokens(&self, key: KeyId, by: Revoker) -> Result<Vec<AuthToken>, StoreError> {
        self.core.revoke_key_tokens(key, by).await
    }

    /// Expires a token now: its next use anywhere is answered "The given token has expired."
    /// A `TokenExpired` event names `by` (its `source` too: `admin`, `cli`, `user`). `false` when
    /// it did not exist.
    pub async fn expire_token(&self, token: &AuthToken, by: Revoker) -> Result<bool, StoreError> {
        let (user, client) = self.core.store.user_and_client(token.user_id, token.client_id).await?;
        let who = user.as_ref().zip(client.as_ref().map(|c| c.name.as_str()));
        self.core.expire(token, who, by).await
    }

    /// Forgets everything the throttle counted (tests; an admin "reset").
    pub async fn reset_throttle(&self) {
        self.core.limiter.reset().await;
        self.core.login_limiter.reset().await;
    }

    /// Login's password checks: their limit, how many run now, the most that ever ran at once.
    pub fn password_checks(&self) -> &crate::PasswordChecks {
        &self.core.password_checks
    }

    /// How many lookups the cache holds now.
    pub fn cached_entries(&self) -> usize {
        self.core.cache.len()
    }

    /// Drops every cached lookup.
    pub fn clear_cache(&self) {
        self.core.cache.clear();
    }

    fn ensure_background(&self) {
        if self.background.get().is_some() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        if self.background.set(()).is_err() {
            return;
        }
        tokio::spawn(flush_usage(Arc::downgrade(&self.core)));
        if self.core.audit.is_some() {
            tokio::spawn(record_audit(Arc::downgrade(&self.core)));
        }
        tokio::spawn(follow_invalidations(Arc::downgrade(&self.core)));
        if let Some(bus) = self.core.bus.clone() {
            tokio::spawn(follow_bus(bus, Arc::downgrade(&self.core)));
        }
        #[cfg(feature = "metrics")]
        if self.core.meter.as_ref().is_some_and(|meter| meter.to_facade) {
            tokio::spawn(crate::facade::publish(Arc::downgrade(&self.core)));
        }
    }
}
