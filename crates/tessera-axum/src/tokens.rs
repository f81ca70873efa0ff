//! The token lifecycle: the only code that issues, renews on login, expires or revokes a token.
//! Login, the API-access view, the sessions API, logout, `Tessera::issue_token`, the admin CLI
//! (and any admin tool) all come here, so they emit the same events and forget the same cache
//! entries.

use crate::state::{Core, Who};
use std::collections::HashMap;
use tessera_core::store::{ClientUpdate, DeviceToken, StoreError, TokenFilter};
use tessera_core::{
    Actor, AuthToken, Client, Devices, EventKind, IssuedToken, KeyId, NewToken, Revoker, TokenCodec, TokenSecret, User,
};

/// What to do when the (user, client) pair already has a token that has not expired. (An expired
/// one is always replaced, with a `TokenExpired` event.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IfPairHasToken {
    /// Hand the existing token back, re-derived (durin's login).
    Reuse,
    /// Hand it back with its expiry renewed (durin's `REFRESH_TOKEN_ON_LOGIN`).
    Renew,
    /// Refuse with [`PairTokenError::Exists`] (the API-access view, the CLI's `token create`).
    Refuse,
    /// Revoke it and issue a new one (the CLI's `token create --replace`).
    Replace,
}

/// A request for the token of a (user, client) pair; see [`Tessera::token_for_pair`](crate::Tessera::token_for_pair).
#[derive(Debug, Clone)]
pub struct TokenRequest<'a> {
    user: &'a User,
    client: &'a Client,
    if_exists: IfPairHasToken,
    user_agent: Option<String>,
    ip: Option<String>,
    by: Revoker,
    source: &'static str,
}

impl<'a> TokenRequest<'a> {
    /// The token of `user` on `client`: reused when it exists, made by an admin tool.
    pub fn new(user: &'a User, client: &'a Client) -> Self {
        Self {
            user,
            client,
            if_exists: IfPairHasToken::Reuse,
            user_agent: None,
            ip: None,
            by: Revoker::Admin,
            source: "admin",
        }
    }

    /// What to do when the pair has a live token (default: [`IfPairHasToken::Reuse`]).
    pub fn if_exists(mut self, policy: IfPairHasToken) -> Self {
        self.if_exists = policy;
        self
    }

    /// The user agent and address recorded on a new token (shown in the sessions list).
    pub fn device(mut self, user_agent: Option<String>, ip: Option<String>) -> Self {
        self.user_agent = user_agent;
        self.ip = ip;
        self
    }

    /// Who asks (default: [`Revoker::Admin`]): named in the events of a token this replaces.
    pub fn by(mut self, by: Revoker) -> Self {
        self.by = by;
        self.source = by.as_str();
        self
    }

    /// Where an expired token of the pair was found, for its `TokenExpired` event.
    pub(crate) fn source(mut self, source: &'static str) -> Self {
        self.source = source;
        self
    }
}

/// The pair's token, with the secret to hand to the caller.
#[derive(Debug)]
pub struct PairToken {
    /// The token as stored.
    pub token: AuthToken,
    /// The token itself (new, or re-derived from the server key).
    pub secret: TokenSecret,
    /// Whether it was issued by this call.
    pub created: bool,
}

/// A fresh token for a (user, client) pair that is not stored yet: its secret can be delivered
/// (printed, flushed) before anything changes, and only then stored with
/// [`Tessera::store_pending_token`](crate::Tessera::store_pending_token), which also revokes the
/// token it replaces. Dropped unstored, it never existed: the pair keeps the token it had.
#[derive(Debug)]
pub struct PendingToken<'a> {
    request: TokenRequest<'a>,
    issued: IssuedToken,
    replaces: Option<AuthToken>,
}

impl PendingToken<'_> {
    /// The token itself, to deliver before storing it.
    pub fn secret(&self) -> &TokenSecret {
        &self.issued.token
    }

    /// The pair's live token that storing this one will revoke ([`IfPairHasToken::Replace`]).
    pub fn replaces(&self) -> Option<&AuthToken> {
        self.replaces.as_ref()
    }
}

/// Why [`Tessera::token_for_pair`](crate::Tessera::token_for_pair) issued nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PairTokenError {
    /// The pair has a live token and the request said [`IfPairHasToken::Refuse`].
    #[error("the pair already has a token (id {})", .0.id)]
    Exists(AuthToken),
    /// A `devices = many` client with `on_device_limit = refuse`, and the user holds its
    /// `max_devices` tokens already: nothing was issued.
    #[error("the user holds the client's limit of {max_devices} device tokens")]
    DeviceLimit {
        /// The client's limit.
        max_devices: u32,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a token goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Revocation {
    /// Its owner logged out with it (`UserLoggedOut`).
    Logout,
    /// Its owner, an admin or the CLI revoked it (`TokenRevoked`).
    Revoked(Revoker),
}

impl Core {
    /// The pair's token: the existing one (per `if_exists`), or a fresh one when there is none or
    /// it has expired. Concurrent calls for one pair end with one token.
    pub(crate) async fn token_for_pair(&self, req: TokenRequest<'_>) -> Result<PairToken, PairTokenError> {
        if let Devices::Many { .. } = req.client.devices {
            let issued = self.codec().issue();
            return self.store_device_token(req, issued).await;
        }
        let now = self.now();
        let who = Some((req.user, req.client.name.as_str()));
        let codec = self.codec();
        if let Some(mut existing) = self.store.token_for(req.user.id, req.client.id).await? {
            if existing.is_legacy() && !existing.has_expired(now) {
                // A durin token (imported) cannot be handed back: only its digest is kept, so
                // durin's "same token on re-login" is impossible. The login gets a native token
                // and the legacy one is revoked (its holder's next request is "Invalid token.").
                if req.if_exists == IfPairHasToken::Refuse {
                    return Err(PairTokenError::Exists(existing));
                }
                self.revoke(&existing, Revocation::Revoked(req.by), who, req.ip.clone()).await?;
            } else {
                // Re-derived with the key it was made with, in the format it was issued in.
                match codec.rederive(existing.key_id, &existing.seed, &existing.digest) {
                    Some(secret) if !existing.has_expired(now) => match req.if_exists {
                        IfPairHasToken::Reuse => return Ok(PairToken { token: existing, secret, created: false }),
                        IfPairHasToken::Renew => {
                            let new_expiry = req.client.expiry_from(now, existing.created);
                            if self.store.extend_expiry(existing.id, new_expiry, now).await? {
                                existing.expiry = new_expiry;
                                self.forget(&existing);
                                self.emit_for(&req, EventKind::TokenRenewed { token_id: existing.id, new_expiry });
                            }
                            return Ok(PairToken { token: existing, secret, created: false });
                        }
                        IfPairHasToken::Refuse => return Err(PairTokenError::Exists(existing)),
                        IfPairHasToken::Replace => {
                            self.revoke(&existing, Revocation::Revoked(req.by), who, req.ip.clone()).await?;
                        }
                    },
                    rederived => {
                        // Tessera: an expired token is replaced, not handed back (durin returns the
                        // dead token). So is one this codec cannot re-derive — issued under another
                        // token format (`token_prefix`, `token_character_length`) or with a server
                        // key the ring no longer holds: it no longer parses, so handing it back
                        // would leave its owner with a token nothing accepts, login after login.
                        let stale = rederived.is_none() && !existing.is_legacy();
                        let deleted = self.store.delete_token(existing.id).await?;
                        self.forget(&existing);
                        if deleted {
                            let source = match (stale, codec.has_key(existing.key_id)) {
                                (false, _) => req.source,
                                (true, true) => "token format changed",
                                (true, false) => "server key retired",
                            };
                            let kind = EventKind::TokenExpired { token_id: existing.id, source: source.into() };
                            self.emit(kind, who, req.ip.clone());
                        }
                    }
                }
            }
        }
        let issued = codec.issue();
        let new = NewToken {
            user_agent: req.user_agent.as_ref().map(|ua| ua.chars().take(512).collect()),
            ip: req.ip.clone(),
            ..NewToken::issued(&issued, req.user.id, req.client, now)
        };
        let (token, created) = self.store.get_or_create_token(new).await?;
        if created {
            self.emit_for(&req, EventKind::TokenCreated { token_id: token.id });
            return Ok(PairToken { token, secret: issued.token, created: true });
        }
        // A concurrent request for the same pair won the race: its token is the pair's.
        match req.if_exists {
            IfPairHasToken::Refuse => Err(PairTokenError::Exists(token)),
            _ => Ok(self.handed_back(&codec, token)?),
        }
    }

    /// A fresh token for the pair, not stored: nothing changes until [`Core::store_pending`]. A
    /// live token of the pair is refused unless the policy is [`IfPairHasToken::Replace`] (this
    /// path never hands an existing token back).
    pub(crate) async fn prepare_token<'a>(&self, req: TokenRequest<'a>) -> Result<PendingToken<'a>, PairTokenError> {
        if let Devices::Many { .. } = req.client.devices {
            // Every token of a `many` client is a new device's: nothing to refuse or replace.
            return Ok(PendingToken { request: req, issued: self.codec().issue(), replaces: None });
        }
        let replaces = match self.store.token_for(req.user.id, req.client.id).await? {
            Some(live) if !live.has_expired(self.now()) => match req.if_exists {
                IfPairHasToken::Replace => Some(live),
                _ => return Err(PairTokenError::Exists(live)),
            },
            _ => None,
        };
        Ok(PendingToken { request: req, issued: self.codec().issue(), replaces })
    }

    /// Stores a pending token: revokes the token it replaces (an expired one of the pair goes with
    /// `TokenExpired`), then stores it. Refused with [`PairTokenError::Exists`], storing nothing,
    /// when the pair gained another live token since it was prepared.
    pub(crate) async fn store_pending(&self, pending: PendingToken<'_>) -> Result<PairToken, PairTokenError> {
        let PendingToken { request: req, issued, replaces } = pending;
        if let Devices::Many { .. } = req.client.devices {
            return self.store_device_token(req, issued).await;
        }
        let now = self.now();
        let who = Some((req.user, req.client.name.as_str()));
        if let Some(current) = self.store.token_for(req.user.id, req.client.id).await? {
            if current.has_expired(now) {
                if self.store.delete_token(current.id).await? {
                    let kind = EventKind::TokenExpired { token_id: current.id, source: req.source.into() };
                    self.emit(kind, who, req.ip.clone());
                }
                self.forget(&current);
            } else if replaces.as_ref().is_some_and(|old| old.id == current.id) {
                self.revoke(&current, Revocation::Revoked(req.by), who, req.ip.clone()).await?;
            } else {
                return Err(PairTokenError::Exists(current));
            }
        }
        let new = NewToken {
            user_agent: req.user_agent.as_ref().map(|ua| ua.chars().take(512).collect()),
            ip: req.ip.clone(),
            ..NewToken::issued(&issued, req.user.id, req.client, now)
        };
        let (token, created) = self.store.get_or_create_token(new).await?;
        if !created {
            // A concurrent request for the same pair won the race: its token is the pair's.
            return Err(PairTokenError::Exists(token));
        }
        self.emit_for(&req, EventKind::TokenCreated { token_id: token.id });
        Ok(PairToken { token, secret: issued.token, created: true })
    }

    /// Stores `issued` as a new device token of a `devices = many` client: every login is a new
    /// device. At the client's limit the user's least recently used tokens there are revoked
    /// (`TokenRevoked` by [`Revoker::DeviceLimit`]), or nothing is issued with `refuse`. The
    /// request's `if_exists` has no meaning here (there is no pair's token to reuse or renew).
    async fn store_device_token(
        &self,
        req: TokenRequest<'_>,
        issued: IssuedToken,
    ) -> Result<PairToken, PairTokenError> {
        let Devices::Many { max_devices, on_device_limit } = req.client.devices else {
            unreachable!("store_device_token is only called for devices = many");
        };
        let now = self.now();
        let who = Some((req.user, req.client.name.as_str()));
        let new = NewToken {
            user_agent: req.user_agent.as_ref().map(|ua| ua.chars().take(512).collect()),
            ip: req.ip.clone(),
            ..NewToken::issued(&issued, req.user.id, req.client, now)
        };
        match self.store.create_device_token(new, max_devices, on_device_limit).await? {
            DeviceToken::AtLimit => Err(PairTokenError::DeviceLimit { max_devices }),
            DeviceToken::Created { token, evicted } => {
                for old in &evicted {
                    self.forget(old);
                    let kind = EventKind::TokenRevoked { token_id: old.id, by: Revoker::DeviceLimit };
                    self.emit(kind, who, req.ip.clone());
                }
                self.emit_for(&req, EventKind::TokenCreated { token_id: token.id });
                Ok(PairToken { token, secret: issued.token, created: true })
            }
        }
    }

    /// Changes a client; from `devices = many` to `one`, each user keeps their most recently used
    /// token there as the pair's token and the others are revoked (`TokenRevoked { by }` each).
    /// Returns the client as stored and the tokens revoked.
    pub(crate) async fn update_client(
        &self,
        client: &Client,
        update: ClientUpdate,
        by: Revoker,
    ) -> Result<(Client, Vec<AuthToken>), StoreError> {
        let collapse = matches!(client.devices, Devices::Many { .. }) && update.devices == Some(Devices::One);
        let updated = self.store.update_client(client.id, update).await?;
        if !collapse {
            return Ok((updated, Vec::new()));
        }
        let revoked = self.store.keep_one_token_per_pair(client.id).await?;
        if !revoked.is_empty() {
            let ids: Vec<_> = revoked.iter().map(|t| t.user_id).collect();
            let users: HashMap<_, _> =
                self.store.list_users().await?.into_iter().filter(|u| ids.contains(&u.id)).map(|u| (u.id, u)).collect();
            for token in &revoked {
                self.forget(token);
                let who = users.get(&token.user_id).map(|u| (u, updated.name.as_str()));
                self.emit(EventKind::TokenRevoked { token_id: token.id, by }, who, None);
            }
        }
        Ok((updated, revoked))
    }

    /// Emits `kind` about the request's pair, by whoever asks, with the request's device.
    fn emit_for(&self, req: &TokenRequest<'_>, kind: EventKind) {
        let mut event = self.event(kind, Some((req.user, req.client.name.as_str())), req.ip.clone(), req.by.into());
        event.user_agent = req.user_agent.clone();
        self.publish(event);
    }

    /// The pair's token made by a concurrent request, re-derived to hand back.
    fn handed_back(&self, codec: &TokenCodec, token: AuthToken) -> Result<PairToken, StoreError> {
        match codec.rederive(token.key_id, &token.seed, &token.digest) {
            Some(secret) => Ok(PairToken { token, secret, created: false }),
            // Only when the ring changed in between: the caller may simply ask again.
            None => Err(StoreError::Unavailable(format!(
                "token {} was just made with a key or format no longer in force; try again",
                token.id
            ))),
        }
    }

    /// Deletes one token and forgets it; `false` when it was already gone. A logout is always
    /// reported; a revocation only when it deleted something.
    pub(crate) async fn revoke(
        &self,
        token: &AuthToken,
        why: Revocation,
        who: Who<'_>,
        ip: Option<String>,
    ) -> Result<bool, StoreError> {
        let deleted = self.store.delete_token(token.id).await?;
        self.forget(token);
        match why {
            Revocation::Logout => {
                let mut event = self.event(EventKind::UserLoggedOut, who, ip, Actor::User);
                (event.token_id, event.user_agent) = (Some(token.id), token.user_agent.clone());
                self.publish(event);
            }
            Revocation::Revoked(by) if deleted => {
                self.emit(EventKind::TokenRevoked { token_id: token.id, by }, who, ip)
            }
            Revocation::Revoked(_) => {}
        }
        Ok(deleted)
    }

    /// The user's logout-all: every token of `user` goes; one `LogoutAll` event.
    pub(crate) async fn logout_all(&self, user: &User, client: &str, ip: Option<String>) -> Result<u64, StoreError> {
        let deleted =
            self.delete_all(TokenFilter { user: Some(user.id), client: None, key: None, legacy: false }).await?;
        self.emit(EventKind::LogoutAll { tokens: deleted.len() as u64 }, Some((user, client)), ip);
        Ok(deleted.len() as u64)
    }

    /// Revokes every token of `user` (on `client`, or on all); one `TokenRevoked` per token.
    pub(crate) async fn revoke_tokens(
        &self,
        user: &User,
        client: Option<&Client>,
        by: Revoker,
        ip: Option<String>,
    ) -> Result<Vec<AuthToken>, StoreError> {
        let deleted = self
            .delete_all(TokenFilter { user: Some(user.id), client: client.map(|c| c.id), key: None, legacy: false })
            .await?;
        if deleted.is_empty() {
            return Ok(deleted);
        }
        let names: HashMap<_, _> = match client {
            Some(c) => HashMap::from([(c.id, c.name.to_string())]),
            None => self.store.list_clients().await?.into_iter().map(|c| (c.id, c.name.to_string())).collect(),
        };
        for token in &deleted {
            let name = names.get(&token.client_id).map(String::as_str).unwrap_or_default();
            self.emit(EventKind::TokenRevoked { token_id: token.id, by }, Some((user, name)), ip.clone());
        }
        Ok(deleted)
    }

    /// Revokes every token of every user (on `client`, or on all): the operator's "log everyone
    /// out". Each is forgotten here at once, published to every instance by the store, and gets a
    /// `TokenRevoked { by }` event.
    pub(crate) async fn revoke_everyone(
        &self,
        client: Option<&Client>,
        by: Revoker,
    ) -> Result<Vec<AuthToken>, StoreError> {
        self.revoke_matching(TokenFilter { user: None, client: client.map(|c| c.id), key: None, legacy: false }, by)
            .await
    }

    /// Revokes every token made with the server key `key`, before it leaves the ring: the same
    /// path as [`Core::revoke_everyone`], so every instance forgets them within a second.
    pub(crate) async fn revoke_key_tokens(&self, key: KeyId, by: Revoker) -> Result<Vec<AuthToken>, StoreError> {
        self.revoke_matching(TokenFilter { key: Some(key), ..TokenFilter::default() }, by).await
    }

    async fn revoke_matching(&self, filter: TokenFilter, by: Revoker) -> Result<Vec<AuthToken>, StoreError> {
        let deleted = self.delete_all(filter).await?;
        if deleted.is_empty() {
            return Ok(deleted);
        }
        let users: HashMap<_, _> = self.store.list_users().await?.into_iter().map(|u| (u.id, u)).collect();
        let clients: HashMap<_, _> =
            self.store.list_clients().await?.into_iter().map(|c| (c.id, c.name.to_string())).collect();
        for token in &deleted {
            let who = users.get(&token.user_id).zip(clients.get(&token.client_id).map(String::as_str));
            self.emit(EventKind::TokenRevoked { token_id: token.id, by }, who, None);
        }
        Ok(deleted)
    }

    async fn delete_all(&self, filter: TokenFilter) -> Result<Vec<AuthToken>, StoreError> {
        let deleted = self.store.delete_tokens(filter).await?;
        for token in &deleted {
            self.forget(token);
        }
        Ok(deleted)
    }

    /// Changes a user's password hash and, unless `revoke_tokens_on_password_change` is off, revokes
    /// every token of theirs (`TokenRevoked { by }` each): whoever held one loses it, on every
    /// instance within a second. Returns the tokens revoked.
    pub(crate) async fn change_password(
        &self,
        user: &User,
        password_hash: &str,
        by: Revoker,
    ) -> Result<Vec<AuthToken>, StoreError> {
        self.store.set_password_hash(user.id, password_hash).await?;
        let revoked = if self.settings.revoke_tokens_on_password_change {
            self.revoke_tokens(user, None, by, None).await?
        } else {
            Vec::new()
        };
        let kind = EventKind::PasswordChanged { tokens_revoked: revoked.len() as u64 };
        self.publish(self.user_event(kind, user, by));
        Ok(revoked)
    }

    /// Expires a token now (an admin's "expire"): its next use is refused as expired, on every
    /// instance, and a `TokenExpired` event names who expired it. `false` when it did not exist.
    pub(crate) async fn expire(&self, token: &AuthToken, who: Who<'_>, by: Revoker) -> Result<bool, StoreError> {
        let changed = self.store.set_expiry(token.id, Some(self.now())).await?;
        self.forget(token);
        if changed {
            let kind = EventKind::TokenExpired { token_id: token.id, source: by.as_str().into() };
            self.publish(self.event(kind, who, None, by.into()));
        }
        Ok(changed)
    }
}
