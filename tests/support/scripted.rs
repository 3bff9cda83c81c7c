//! A scripted HTTP/1.1 upstream on loopback that writes exact bytes, for tests of how the
//! gateway reads upstream responses and what it sends upstream; plain, or over TLS with a
//! certificate of its own test CA (`Scripted::start_tls`), which the gateway reaches through
//! its general client.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// An upstream that answers by path with hand-written bytes. It counts the connections it
/// accepted; the body of a plain answer is the request it received, head and body.
pub struct Scripted {
    pub url: String,
    /// Over TLS: the PEM of the CA that signed its certificate (for `SERVER_NAME`).
    pub ca_pem: Option<String>,
    connections: Arc<AtomicUsize>,
    /// Requests to `/hold` whose connection the gateway closed while they waited.
    released: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub const BIG: usize = 1024 * 1024;
/// More than the socket buffers between a client and the upstream hold.
pub const HUGE: usize = 32 * 1024 * 1024;
/// The response `/smuggle` hides in its body.
pub const SMUGGLED: &str = "HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nsmuggled";
/// The name in the certificate of a TLS scripted upstream.
pub const SERVER_NAME: &str = "scripted.test";

impl Scripted {
    pub async fn start() -> Scripted {
        Self::listen(None).await
    }

    /// The same answers over TLS (ALPN `http/1.1`), with a certificate for [`SERVER_NAME`].
    pub async fn start_tls() -> Scripted {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        use rustls::pki_types::pem::PemObject;
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec![SERVER_NAME.to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
        let mut cfg =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![leaf.der().clone()], key)
                .unwrap();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self::listen(Some((tokio_rustls::TlsAcceptor::from(Arc::new(cfg)), ca_pem))).await
    }

    async fn listen(tls: Option<(tokio_rustls::TlsAcceptor, String)>) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let released = Arc::new(AtomicUsize::new(0));
        let (count, on_release) = (connections.clone(), released.clone());
        let (acceptor, ca_pem) = tls.unzip();
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let on_release = on_release.clone();
                match &acceptor {
                    None => drop(tokio::spawn(serve(s, on_release))),
                    Some(acceptor) => {
                        let accept = acceptor.accept(s);
                        tokio::spawn(async move {
                            if let Ok(s) = accept.await {
                                serve(s, on_release).await;
                            }
                        });
                    }
                }
            }
        });
        Scripted {
            url,
            ca_pem,
            connections,
            released,
            task,
        }
    }

    /// The resource files of an upstream `name` for this one: a TLS one trusts its CA (a
    /// Secret `NAME-ca`) and expects [`SERVER_NAME`].
    pub fn upstream_files(&self, name: &str) -> Vec<(String, String)> {
        let Some(ca) = &self.ca_pem else {
            return vec![(
                format!("{name}.yaml"),
                super::upstream_yaml(name, std::slice::from_ref(&self.url)),
            )];
        };
        let indented: String = ca.lines().map(|l| format!("    {l}\n")).collect();
        vec![
            (
                format!("{name}-ca.yaml"),
                format!(
                    "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}-ca, namespace: default}}\n\
                     stringData:\n  ca.crt: |\n{indented}"
                ),
            ),
            (
                format!("{name}.yaml"),
                format!(
                    "apiVersion: gatehouse.dev/v1alpha1\nkind: GatewayUpstream\n\
                     metadata: {{name: {name}, namespace: default}}\nspec:\n  protocol: https\n  \
                     endpoints: [\"{}\"]\n  tls: {{caSecretName: {name}-ca, serverName: {SERVER_NAME}}}\n",
                    self.url
                ),
            ),
        ]
    }

    pub fn released(&self) -> usize {
        self.released.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Reads one request (head and `Content-Length` body); `None` at end of stream.
async fn read_request<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut more = [0u8; 4096];
                let n = s.read(&mut more).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&more[..n]);
            }
            let body = buf[end + 4..end + 4 + len].to_vec();
            buf.drain(..end + 4 + len);
            return Some((head, body));
        }
        let mut more = [0u8; 4096];
        let n = s.read(&mut more).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&more[..n]);
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, released: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    let mut index = 0;
    while let Some((head, body)) = read_request(&mut s, &mut buf).await {
        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
        let pause = || tokio::time::sleep(Duration::from_millis(15));
        // Echoed as any other path, 200 ms late.
        if path == "/slow" {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        match path.as_str() {
            "/chunked" => {
                for piece in [
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
                    "lo\r\n6;note=x\r",
                    "\n world\r",
                    "\n0\r\nx-checksum: 1\r\n",
                    "\r\n",
                ] {
                    s.write_all(piece.as_bytes()).await.unwrap();
                    pause().await;
                }
            }
            "/until-close" => {
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of ")
                    .await
                    .unwrap();
                pause().await;
                s.write_all(b"this, then the end").await.unwrap();
                return;
            }
            "/no-content" => s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await.unwrap(),
            // A length on a 204, which has no body.
            "/no-content-length" => s
                .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-After: 204\r\n\r\n")
                .await
                .unwrap(),
            // Both framings at once (RFC 9112 §6.3: chunked wins): a reader that believed the
            // length would take the rest of the chunk for a second response.
            "/smuggle" => {
                let chunk = format!("hello{SMUGGLED}");
                s.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
                         {:x}\r\n{chunk}\r\n0\r\n\r\n",
                        chunk.len()
                    )
                    .as_bytes(),
                )
                .await
                .unwrap();
            }
            // Switching protocols on a request that did not ask to.
            "/switch" => s
                .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                .await
                .unwrap(),
            // A transfer coding the gateway does not undo.
            "/gzip-coded" => {
                s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b")
                    .await
                    .unwrap();
                return;
            }
            // Fields of every kind the gateway treats apart, in mixed case.
            "/fields" => s
                .write_all(
                    b"HTTP/1.1 200 OK\r\nServer: scripted\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
                      X-Request-ID: from-upstream\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\
                      Proxy-Authenticate: Basic\r\nX-Mixed-Case: Value\r\nContent-Length: 2\r\n\
                      Date: Tue, 01 Jan 2030 00:00:00 GMT\r\n\r\nok",
                )
                .await
                .unwrap(),
            // `Connection` naming a field of the response, which goes with it.
            "/fields-named" => s
                .write_all(
                    b"HTTP/1.1 200 OK\r\nConnection: X-Hop\r\nX-Hop: secret\r\nX-Kept: 1\r\n\
                      X-Request-ID: from-upstream\r\nContent-Length: 2\r\n\r\nok",
                )
                .await
                .unwrap(),
            "/continue" => s
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap(),
            "/big" | "/huge" => {
                let size = if path == "/big" { BIG } else { HUGE };
                s.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {size}\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
                let block: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
                for _ in 0..size / block.len() {
                    // A gateway that gave up on the client closes this connection.
                    if s.write_all(&block).await.is_err() {
                        return;
                    }
                }
            }
            // A tenth of the body, then nothing until the gateway closes the connection.
            "/stall-body" => {
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nfirst ten.")
                    .await
                    .unwrap();
                let mut rest = [0u8; 64];
                let _ = tokio::time::timeout(Duration::from_secs(30), s.read(&mut rest)).await;
                return;
            }
            "/cut" => {
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten..")
                    .await
                    .unwrap();
                return;
            }
            "/garbage" => {
                s.write_all(b"this is not HTTP\r\n\r\n").await.unwrap();
                return;
            }
            // Answers, then closes the connection without saying so, as an upstream whose
            // keep-alive timeout runs out does.
            "/bye" => {
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nbye")
                    .await
                    .unwrap();
                return;
            }
            // No answer: waits (at most 10 s) for the gateway to close the connection.
            // (What else comes, such as the rest of a chunked body, is read and dropped.)
            "/hold" => {
                let mut more = [0u8; 1024];
                let closed = async {
                    while let Ok(n) = s.read(&mut more).await {
                        if n == 0 {
                            return true;
                        }
                    }
                    false
                };
                if let Ok(true) = tokio::time::timeout(Duration::from_secs(10), closed).await {
                    released.fetch_add(1, Ordering::SeqCst);
                }
                return;
            }
            // The first request of a connection is answered; a later one finds the
            // connection closing under it, the race every keep-alive client meets.
            "/race" if index > 0 => return,
            _ => {
                let mut echo = head.clone().into_bytes();
                echo.extend_from_slice(&body);
                let mut out =
                    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", echo.len()).into_bytes();
                if !head.starts_with("HEAD ") {
                    out.extend_from_slice(&echo);
                }
                s.write_all(&out).await.unwrap();
            }
        }
        index += 1;
    }
}

/// The gateway in front of `up`, on one catch-all route.
pub async fn gateway_for(up: &Scripted) -> super::Gateway {
    gateway_with(up, super::BASE_CONFIG).await
}

/// The gateway with `config` in front of `up`, on one catch-all route.
pub async fn gateway_with(up: &Scripted, config: &str) -> super::Gateway {
    use super::{route_yaml, Gateway};
    let mut files = up.upstream_files("scripted");
    files.push(("r.yaml".into(), route_yaml("scripted", "/*", "scripted", "")));
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    Gateway::start(config, &files).await
}
