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

/// Turns a bearer token into an identity, or says why not.
pub trait TokenVerifier: Send + Sync {
    fn verify(&self, token: &str) -> Result<Identity, String>;
}

/// Verifies with the live table's `auth` verifier.
pub struct TableVerifier(pub TableHandle);

impl TokenVerifier for TableVerifier {
    fn verify(&self, token: &str) -> Result<Identity, String> {
        let table = self.0.load();
        let verifier = table
            .auth
            .as_ref()
            .ok_or("token verification is not configured (auth.jwt)")?;
        let user = verifier.verify(token).map_err(|e| e.to_string())?;
        Ok(Identity {
            user_id: user.user_id.clone(),
            roles: user.roles.clone(),
        })
    }
}
