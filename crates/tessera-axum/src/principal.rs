//! Who is calling.

use tessera_core::{AuthToken, Client, User};

/// Who is calling: the authenticated user, the client and the token of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user.
    pub user: User,
    /// The API client the token belongs to.
    pub client: Client,
    /// The token (never the secret: its digest and metadata).
    pub token: AuthToken,
}
