//! Who a connection speaks for. The hub depends only on the `TokenVerifier` seam; the gateway
//! wires it to the JWT verifier published with the routing table (`auth.jwt`, keys from
//! Secrets), so key rotation applies to WebSocket tokens as it does to requests.

use crate::routing::TableHandle;

/// The verified identity of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    pub roles: Vec<String>,
}

/// Why a token was not accepted; the text is what the client is told.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("token verification is not configured (auth.jwt)")]
    NotConfigured,
    #[error(transparent)]
    Rejected(#[from] crate::auth::AuthError),
}

/// Turns a bearer token into an identity, or says why not.
pub trait TokenVerifier: Send + Sync {
    fn verify(&self, token: &str) -> Result<Identity, VerifyError>;
}

/// Verifies with the live table's `auth` verifier.
pub struct TableVerifier(pub TableHandle);

impl TokenVerifier for TableVerifier {
    fn verify(&self, token: &str) -> Result<Identity, VerifyError> {
        let table = self.0.load();
        let verifier = table.auth.as_ref().ok_or(VerifyError::NotConfigured)?;
        let user = verifier.verify(token)?;
        Ok(Identity {
            user_id: user.user_id.clone(),
            roles: user.roles.clone(),
        })
    }
}
