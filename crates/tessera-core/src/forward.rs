//! Store wrappers without hand-written forwarding: [`forward_store!`](crate::forward_store).
//!
//! A wrapper ([`NotifyingStore`](crate::bus::NotifyingStore), [`SplitStore`](crate::split::SplitStore),
//! a test's counting store) changes a few methods and passes the rest to a store it holds. Writing
//! the rest by hand is a page of noise per trait, and it hides mistakes: a method with a default
//! body that the wrapper forgot to forward compiles, and then runs the default instead of the inner
//! store's (better) version.
//!
//! So the signature of every store method is written once, in the macro below, and a wrapper names
//! the methods it forwards and writes the ones it changes. Nothing can be missed silently:
//!
//! * the store traits have no default bodies, so a method neither forwarded nor written is a
//!   compile error ("not all trait items implemented");
//! * a method both forwarded and written is a compile error (duplicate definitions);
//! * a name that is not a store method is a compile error (no rule matches it), and one that
//!   belongs to another store trait is too ("not a member of trait");
//! * a method added to a trait breaks every wrapper's build until each one has decided what to do
//!   with it — forwarding is never automatic.

/// What the expansion of [`forward_store!`](crate::forward_store) needs from outside the caller's
/// crate, so that callers need not depend on these crates themselves.
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
    pub use chrono::{DateTime, Utc};
}

/// Implements one store trait for a wrapper: the listed methods are forwarded to a store the
/// wrapper holds, the methods written out are the wrapper's own.
///
/// The target is a field (`forward to inner: …`) or a method of the wrapper returning the store
/// to forward to (`forward via counted(): …`, evaluated on every call). Either way it is anything
/// implementing the trait: a store, an `Arc<dyn Store>`, a `&dyn TokenStore`.
///
/// ```
/// use std::sync::Arc;
/// use tessera_core::forward_store;
/// use tessera_core::store::{StoreError, UserStore};
/// use tessera_core::UserId;
///
/// /// Refuses to delete user 1.
/// #[derive(Debug)]
/// struct KeepFirstUser {
///     inner: Arc<dyn UserStore>,
/// }
///
/// forward_store! {
///     impl UserStore for KeepFirstUser {
///         forward to inner: create_user, user_by_id, user_by_username, list_users, search_users,
///             set_password_hash, upgrade_password_hash, set_active, set_staff;
///
///         async fn delete_user(&self, id: UserId) -> Result<(), StoreError> {
///             if id == UserId(1) {
///                 return Err(StoreError::Conflict("user 1 stays".into()));
///             }
///             self.inner.delete_user(id).await
///         }
///     }
/// }
/// ```
///
/// Leaving a method out (here `set_staff`) does not compile:
///
/// ```compile_fail,E0046
/// # use std::sync::Arc;
/// # use tessera_core::forward_store;
/// # use tessera_core::store::UserStore;
/// # #[derive(Debug)]
/// # struct Forgetful { inner: Arc<dyn UserStore> }
/// forward_store! {
///     impl UserStore for Forgetful {
///         forward to inner: create_user, user_by_id, user_by_username, list_users, search_users,
///             set_password_hash, upgrade_password_hash, set_active, delete_user;
///     }
/// }
/// ```
///
/// Nor does naming a method that is not the trait's (here `ping`, a `TokenStore` method):
///
/// ```compile_fail,E0407
/// # use std::sync::Arc;
/// # use tessera_core::forward_store;
/// # use tessera_core::store::UserStore;
/// # #[derive(Debug)]
/// # struct Confused { inner: Arc<dyn UserStore> }
/// forward_store! {
///     impl UserStore for Confused {
///         forward to inner: create_user, user_by_id, user_by_username, list_users, search_users,
///             set_password_hash, upgrade_password_hash, set_active, set_staff, delete_user, ping;
///     }
/// }
/// ```
#[macro_export]
macro_rules! forward_store {
    // ---- entry points -------------------------------------------------------------------------
    (impl $trait:ident for $ty:ty { forward to $field:ident : $($method:ident),+ $(,)? ; $($own:tt)* }) => {
        $crate::forward_store!(@each [$trait $ty] [$field] [$($method)+] [] [$($own)*]);
    };
    (impl $trait:ident for $ty:ty { forward via $getter:ident () : $($method:ident),+ $(,)? ; $($own:tt)* }) => {
        $crate::forward_store!(@each [$trait $ty] [$getter()] [$($method)+] [] [$($own)*]);
    };

    // ---- done: one impl with the forwarded methods and the wrapper's own ----------------------
    (@each [$trait:ident $ty:ty] $target:tt [] [$($done:tt)*] [$($own:tt)*]) => {
        #[$crate::forward::__private::async_trait]
        impl $crate::store::$trait for $ty {
            $($done)*
            $($own)*
        }
    };

    // ---- one forwarded method ------------------------------------------------------------------
    (@fn [$trait:ident $ty:ty] [$($target:tt)+] $rest:tt [$($done:tt)*] $own:tt
        $name:ident ($($arg:ident : $arg_ty:ty),*) -> $ret:ty) => {
        $crate::forward_store!(@each [$trait $ty] [$($target)+] $rest [
            $($done)*
            async fn $name(&self, $($arg: $arg_ty),*) -> ::core::result::Result<$ret, $crate::store::StoreError> {
                // The target may be a concrete store: its trait must be in scope to call it (a
                // `dyn Store` target does not need it, hence the allow).
                #[allow(unused_imports)]
                use $crate::store::$trait as _;
                self.$($target)+.$name($($arg),*).await
            }
        ] $own);
    };

    // ---- the signature of every store method, once ---------------------------------------------
    // UserStore
    (@each $h:tt $t:tt [create_user $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            create_user(user: $crate::model::NewUser) -> $crate::model::User);
    };
    (@each $h:tt $t:tt [user_by_id $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            user_by_id(id: $crate::model::UserId) -> ::core::option::Option<$crate::model::User>);
    };
    (@each $h:tt $t:tt [user_by_username $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            user_by_username(username: &$crate::model::Username) -> ::core::option::Option<$crate::model::User>);
    };
    (@each $h:tt $t:tt [list_users $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            list_users() -> ::std::vec::Vec<$crate::model::User>);
    };
    (@each $h:tt $t:tt [search_users $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            search_users(search: &$crate::search::UserSearch) -> $crate::search::UserPage);
    };
    (@each $h:tt $t:tt [set_password_hash $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            set_password_hash(id: $crate::model::UserId, hash: &str) -> ());
    };
    (@each $h:tt $t:tt [upgrade_password_hash $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            upgrade_password_hash(id: $crate::model::UserId, old: &str, new: &str) -> bool);
    };
    (@each $h:tt $t:tt [set_active $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            set_active(id: $crate::model::UserId, active: bool) -> ());
    };
    (@each $h:tt $t:tt [set_staff $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            set_staff(id: $crate::model::UserId, staff: bool) -> ());
    };
    (@each $h:tt $t:tt [delete_user $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            delete_user(id: $crate::model::UserId) -> ());
    };
    // ClientStore
    (@each $h:tt $t:tt [create_client $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            create_client(client: $crate::model::NewClient) -> $crate::model::Client);
    };
    (@each $h:tt $t:tt [client_by_id $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            client_by_id(id: $crate::model::ClientId) -> ::core::option::Option<$crate::model::Client>);
    };
    (@each $h:tt $t:tt [client_by_name $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            client_by_name(name: &$crate::model::ClientName) -> ::core::option::Option<$crate::model::Client>);
    };
    (@each $h:tt $t:tt [list_clients $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            list_clients() -> ::std::vec::Vec<$crate::model::Client>);
    };
    (@each $h:tt $t:tt [update_client $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            update_client(id: $crate::model::ClientId, update: $crate::store::ClientUpdate) -> $crate::model::Client);
    };
    (@each $h:tt $t:tt [delete_client $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            delete_client(id: $crate::model::ClientId) -> u64);
    };
    // TokenStore
    (@each $h:tt $t:tt [ping $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            ping() -> ());
    };
    (@each $h:tt $t:tt [create_token $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            create_token(token: $crate::model::NewToken) -> $crate::model::AuthToken);
    };
    (@each $h:tt $t:tt [get_or_create_token $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            get_or_create_token(token: $crate::model::NewToken) -> ($crate::model::AuthToken, bool));
    };
    (@each $h:tt $t:tt [create_device_token $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            create_device_token(
                token: $crate::model::NewToken,
                max_devices: u32,
                on_limit: $crate::model::OnDeviceLimit
            ) -> $crate::store::DeviceToken);
    };
    (@each $h:tt $t:tt [keep_one_token_per_pair $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            keep_one_token_per_pair(client: $crate::model::ClientId) -> ::std::vec::Vec<$crate::model::AuthToken>);
    };
    (@each $h:tt $t:tt [token_by_id $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            token_by_id(id: $crate::model::TokenId) -> ::core::option::Option<$crate::model::AuthToken>);
    };
    (@each $h:tt $t:tt [token_by_digest $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            token_by_digest(digest: &$crate::token::TokenDigest) -> ::core::option::Option<$crate::model::AuthToken>);
    };
    (@each $h:tt $t:tt [token_for $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            token_for(user: $crate::model::UserId, client: $crate::model::ClientId)
                -> ::core::option::Option<$crate::model::AuthToken>);
    };
    (@each $h:tt $t:tt [list_tokens $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            list_tokens(filter: $crate::store::TokenFilter) -> ::std::vec::Vec<$crate::model::AuthToken>);
    };
    (@each $h:tt $t:tt [count_tokens $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            count_tokens(filter: $crate::store::TokenFilter) -> u64);
    };
    (@each $h:tt $t:tt [delete_token $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            delete_token(id: $crate::model::TokenId) -> bool);
    };
    (@each $h:tt $t:tt [delete_tokens $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            delete_tokens(filter: $crate::store::TokenFilter) -> ::std::vec::Vec<$crate::model::AuthToken>);
    };
    (@each $h:tt $t:tt [extend_expiry $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            extend_expiry(
                id: $crate::model::TokenId,
                expiry: ::core::option::Option<
                    $crate::forward::__private::DateTime<$crate::forward::__private::Utc>
                >,
                now: $crate::forward::__private::DateTime<$crate::forward::__private::Utc>
            ) -> bool);
    };
    (@each $h:tt $t:tt [set_expiry $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            set_expiry(
                id: $crate::model::TokenId,
                expiry: ::core::option::Option<
                    $crate::forward::__private::DateTime<$crate::forward::__private::Utc>
                >
            ) -> bool);
    };
    (@each $h:tt $t:tt [record_last_used $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            record_last_used(
                uses: &[(
                    $crate::model::TokenId,
                    $crate::forward::__private::DateTime<$crate::forward::__private::Utc>
                )]
            ) -> ());
    };
    (@each $h:tt $t:tt [purge_expired $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            purge_expired(now: $crate::forward::__private::DateTime<$crate::forward::__private::Utc>) -> u64);
    };
    // Store
    (@each $h:tt $t:tt [latest_invalidation $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            latest_invalidation() -> i64);
    };
    (@each $h:tt $t:tt [invalidations_after $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            invalidations_after(after: i64) -> ::std::vec::Vec<(i64, $crate::store::Invalidation)>);
    };
    (@each $h:tt $t:tt [prune_invalidations $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            prune_invalidations(
                before: $crate::forward::__private::DateTime<$crate::forward::__private::Utc>
            ) -> u64);
    };
    (@each $h:tt $t:tt [token_with_owner $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            token_with_owner(digest: &$crate::token::TokenDigest)
                -> ::core::option::Option<$crate::store::TokenWithOwner>);
    };
    (@each $h:tt $t:tt [search_tokens $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            search_tokens(search: &$crate::search::TokenSearch) -> $crate::search::TokenPage);
    };
    (@each $h:tt $t:tt [user_and_client $($r:ident)*] $d:tt $o:tt) => {
        $crate::forward_store!(@fn $h $t [$($r)*] $d $o
            user_and_client(user: $crate::model::UserId, client: $crate::model::ClientId) -> (
                ::core::option::Option<$crate::model::User>,
                ::core::option::Option<$crate::model::Client>,
            ));
    };
}
