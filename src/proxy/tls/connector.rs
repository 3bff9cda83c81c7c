//! The upstream connector: plain TCP for `http://` endpoints, TCP + rustls for `https://` ones.
//! The TLS settings of an endpoint (CA from a Secret, server name) come from the live table
//! at connect time, by the upstream its pool key names; without any, the system roots verify
//! the endpoint's host name, sent as SNI. Every new connection is held to the table's
//! `Egress` once it reached an address (the gateway's own ports, loopback in a cluster, ...).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::routing::TableHandle;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Connects to upstream endpoints; cheap to clone.
#[derive(Clone)]
pub struct UpstreamConnector {
    http: HttpConnector,
    table: TableHandle,
    system: Arc<ClientConfig>,
    /// `server.timeouts.connect_timeout`, for endpoints whose upstream sets no `connectTimeout`.
    connect_timeout: Duration,
}

/// The `connectTimeout` that applies to `scheme://authority`: the shortest one among the live
/// upstreams listing that endpoint (they share pooled connections), if any sets one.
fn connect_timeout_of(table: &crate::routing::RoutingTable, uri: &Uri) -> Option<Duration> {
    let authority = uri.authority()?;
    table
        .upstreams
        .values()
        .filter_map(|u| {
            let t = u.connect_timeout?;
            u.endpoints
                .iter()
                .any(|e| e.pool_key == *authority && Some(&e.scheme) == uri.scheme())
                .then_some(t)
        })
        .min()
}

impl UpstreamConnector {
    /// `http` must not enforce the `http` scheme (it only dials TCP here); TCP connect and TLS
    /// handshake together get the endpoint's `connectTimeout`, else `connect_timeout`.
    pub fn new(mut http: HttpConnector, table: TableHandle, connect_timeout: Duration) -> Self {
        http.enforce_http(false);
        http.set_connect_timeout(None);
        let system = crate::tls::client_config(crate::tls::system_roots()).unwrap_or_else(|e| {
            tracing::warn!("{e}");
            Arc::new(
                ClientConfig::builder_with_provider(crate::tls::provider())
                    .with_safe_default_protocol_versions()
                    .map(|b| {
                        b.with_root_certificates(RootCertStore::empty())
                            .with_no_client_auth()
                    })
                    .unwrap_or_else(|_| {
                        ClientConfig::builder()
                            .with_root_certificates(RootCertStore::empty())
                            .with_no_client_auth()
                    }),
            )
        });
        UpstreamConnector {
            http,
            table,
            system,
            connect_timeout,
        }
    }
}

/// A connection to an upstream endpoint.
pub enum UpstreamStream {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

impl tower_service::Service<Uri> for UpstreamConnector {
    type Response = UpstreamStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<UpstreamStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let table = self.table.load();
        let settings = if https {
            uri.authority()
                .and_then(|a| crate::upstream::upstream_of_pool_key(a.as_str()))
                .and_then(|key| table.tls.upstream(&key).cloned())
        } else {
            None
        };
        let timeout = connect_timeout_of(&table, &uri).unwrap_or(self.connect_timeout);
        let egress = table.egress.clone();
        let by_name = crate::upstream::egress::is_name(uri.host().unwrap_or_default());
        drop(table);
        let system = self.system.clone();
        let connecting = self.http.call(uri.clone());
        let connect = async move {
            let tcp = connecting.await?;
            egress.check_stream(by_name, tcp.inner())?;
            if !https {
                return Ok(UpstreamStream::Plain(tcp));
            }
            let config = settings.as_ref().and_then(|s| s.config.clone()).unwrap_or(system);
            let name = match settings.as_ref().and_then(|s| s.server_name.clone()) {
                Some(n) => n,
                None => {
                    let host = uri.host().unwrap_or_default();
                    let host = host.trim_start_matches('[').trim_end_matches(']');
                    ServerName::try_from(host.to_string())
                        .map_err(|_| format!("`{host}` is not a valid TLS server name"))?
                }
            };
            let tls = TlsConnector::from(config).connect(name, tcp.into_inner()).await?;
            Ok(UpstreamStream::Tls(Box::new(TokioIo::new(tls))))
        };
        Box::pin(async move {
            match tokio::time::timeout(timeout, connect).await {
                Ok(result) => result,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect timed out after {timeout:?}"),
                )
                .into()),
            }
        })
    }
}

impl Connection for UpstreamStream {
    fn connected(&self) -> Connected {
        match self {
            UpstreamStream::Plain(s) => s.connected(),
            UpstreamStream::Tls(s) => s.inner().get_ref().0.connected(),
        }
    }
}

impl Read for UpstreamStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl Write for UpstreamStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamStream::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamStream::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamStream::Plain(s) => s.is_write_vectored(),
            UpstreamStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamStream::Tls(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::routing::RoutingTable;
    use crate::upstream::Egress;

    /// A connector over a table with `egress`, and a listener on loopback.
    async fn setup(egress: Egress) -> (UpstreamConnector, tokio::net::TcpListener) {
        let mut table = RoutingTable::default();
        table.egress = Arc::new(egress);
        let handle = TableHandle::default();
        handle.store(Arc::new(table));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        (
            UpstreamConnector::new(HttpConnector::new(), handle, Duration::from_secs(2)),
            listener,
        )
    }

    async fn dial(c: &mut UpstreamConnector, url: &str) -> Result<(), String> {
        use tower_service::Service;
        let uri: Uri = url.parse().expect("uri");
        c.call(uri).await.map(|_| ()).map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn connections_are_held_to_the_tables_egress_rules_where_they_arrive() {
        // A name the endpoint check cannot judge: only the connection shows where it went.
        let (mut c, l) = setup(Egress {
            allow_loopback: false,
            ..Egress::default()
        })
        .await;
        let port = l.local_addr().expect("addr").port();
        let e = dial(&mut c, &format!("http://localhost:{port}"))
            .await
            .unwrap_err();
        assert!(e.contains("loopback"), "{e}");

        let (mut c, l) = setup(Egress {
            own_ports: vec![(9, "discard")],
            ..Egress::default()
        })
        .await;
        let port = l.local_addr().expect("addr").port();
        dial(&mut c, &format!("http://localhost:{port}"))
            .await
            .expect("loopback is fine here");
        // The listener stands for the gateway's own metrics port.
        let (mut c, _other) = setup(Egress {
            own_ports: vec![(port, "metrics")],
            ..Egress::default()
        })
        .await;
        let e = dial(&mut c, &format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_err();
        assert!(e.contains("gateway's own metrics port"), "{e}");
        drop(l);
    }
}
