//! The proxy's TLS edges, both reading the live table: the HTTPS listener's rustls config,
//! whose resolver picks a certificate per handshake, with the redirect of plain HTTP; and the
//! connector that dials `http://` and `https://` upstream endpoints.
//!
//! Order (each file uses only those before it): `connector`, `server`.

mod connector;
mod server;

pub use connector::{UpstreamConnector, UpstreamStream};
pub use server::{https_redirect, listener_config, server_config, ServerConfigError, SniResolver, TlsConn};
