//! The HTTPS side: a rustls server config whose certificate resolver reads the live routing
//! table on every handshake (for a Gateway's HTTPS socket, the certificates of that socket's
//! table), and the 308 redirect of plain HTTP.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::routing::TableHandle;
use crate::wire::strip_port;

/// Marks requests that arrived over TLS (a request extension set by the HTTPS listener).
#[derive(Clone, Copy, Debug)]
pub struct TlsConn;

/// Picks the certificate by SNI from the table that is live at handshake time.
pub struct SniResolver {
    table: TableHandle,
    /// A Gateway's socket: the certificates are those of its table in the live one.
    listener: Option<SocketAddr>,
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SniResolver")
    }
}

impl SniResolver {
    pub fn new(table: TableHandle) -> Self {
        SniResolver {
            table,
            listener: None,
        }
    }

    /// The resolver of the Gateway socket bound to `listener`.
    pub fn listener(table: TableHandle, listener: SocketAddr) -> Self {
        SniResolver {
            table,
            listener: Some(listener),
        }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let table = self.table.load();
        let cert = match self.listener {
            None => table.tls.resolve(hello.server_name()),
            Some(addr) => table
                .listeners
                .get(addr)
                .and_then(|s| s.table.tls.resolve(hello.server_name())),
        };
        if cert.is_none() {
            tracing::debug!(sni = ?hello.server_name(), listener = ?self.listener, "no certificate for this handshake");
        }
        cert
    }
}

/// Why the HTTPS listener's config cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ServerConfigError {
    #[error("server.tls.min_version `{0}` must be \"1.2\" or \"1.3\"")]
    MinVersion(String),
    #[error("TLS versions: {0}")]
    Versions(rustls::Error),
    #[error("TLS session tickets: {0}")]
    Tickets(rustls::Error),
}

/// The server config of the HTTPS listener: TLS 1.2 and 1.3 (or 1.3 only when `min_version`
/// is "1.3"), ALPN h2 and http/1.1, certificates from the live table.
pub fn server_config(
    table: TableHandle,
    min_version: Option<&str>,
) -> Result<Arc<ServerConfig>, ServerConfigError> {
    let versions: &[&'static rustls::SupportedProtocolVersion] = match min_version.map(str::trim) {
        None | Some("") | Some("1.2") | Some("TLSv1.2") => {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        }
        Some("1.3") | Some("TLSv1.3") => &[&rustls::version::TLS13],
        Some(v) => return Err(ServerConfigError::MinVersion(v.to_string())),
    };
    let mut cfg = ServerConfig::builder_with_provider(crate::tls::provider())
        .with_protocol_versions(versions)
        .map_err(ServerConfigError::Versions)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver::new(table)));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    cfg.ticketer = rustls::crypto::ring::Ticketer::new().map_err(ServerConfigError::Tickets)?;
    Ok(Arc::new(cfg))
}

/// The config of the Gateway HTTPS socket bound to `listener`: the HTTPS listener's
/// (`template`: its versions and ALPN), with the certificates of the socket's table and
/// session tickets and a session cache of its own (a session of one Gateway never resumes on
/// another's socket).
pub fn listener_config(
    template: &ServerConfig,
    table: TableHandle,
    listener: SocketAddr,
) -> Result<Arc<ServerConfig>, ServerConfigError> {
    let mut cfg = template.clone();
    cfg.cert_resolver = Arc::new(SniResolver::listener(table, listener));
    cfg.ticketer = rustls::crypto::ring::Ticketer::new().map_err(ServerConfigError::Tickets)?;
    cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(256);
    Ok(Arc::new(cfg))
}

/// With `server.tls.redirect_http`: the 308 to `https://host[:https_port]/path?query` for a
/// plain-HTTP request. `None` for `/health` and `/ready`, which probes call over plain HTTP.
pub fn https_redirect<B>(req: &Request<B>, https_port: u16) -> Option<Response<Full<Bytes>>> {
    if matches!(req.uri().path(), "/health" | "/ready") {
        return None;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .map(strip_port)
        .filter(|h| !h.is_empty());
    let Some(host) = host else {
        let mut resp = Response::new(Full::new(Bytes::from_static(
            br#"{"error":{"code":"bad_request","message":"a Host header is needed to redirect to https","request_id":""}}"#,
        )));
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Some(resp);
    };
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = if https_port == 443 {
        format!("https://{host}{pq}")
    } else {
        format!("https://{host}:{https_port}{pq}")
    };
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_keep_host_path_and_query() {
        let req = Request::get("/a/b?x=1")
            .header("host", "api.example.com:8080")
            .body(())
            .expect("request");
        let r = https_redirect(&req, 8443).expect("redirect");
        assert_eq!(r.status(), 308);
        assert_eq!(r.headers()["location"], "https://api.example.com:8443/a/b?x=1");
        let r = https_redirect(&req, 443).expect("redirect");
        assert_eq!(r.headers()["location"], "https://api.example.com/a/b?x=1");
        let probe = Request::get("/ready").body(()).expect("request");
        assert!(https_redirect(&probe, 443).is_none());
        let v6 = Request::get("/")
            .header("host", "[::1]:80")
            .body(())
            .expect("request");
        assert_eq!(
            https_redirect(&v6, 8443).expect("redirect").headers()["location"],
            "https://[::1]:8443/"
        );
    }

    #[test]
    fn min_version_is_checked() {
        assert!(server_config(TableHandle::default(), Some("1.3")).is_ok());
        assert!(server_config(TableHandle::default(), None).is_ok());
        assert!(server_config(TableHandle::default(), Some("1.1")).is_err());
    }
}
