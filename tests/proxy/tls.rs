//! HTTPS as a client sees it: certificates by SNI from Secrets, the default certificate,
//! rotation without a restart, bad certificates as conditions, ALPN, TLS versions, the
//! plain-HTTP redirect, and https upstreams verified with a CA from a Secret.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    der: CertificateDer<'static>,
}

/// A leaf certificate: PEM chain, PEM key, DER of the leaf.
struct Leaf {
    cert: String,
    key: String,
    der: Vec<u8>,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, "gatehouse test CA");
        let cert = p.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(p, key),
        }
    }

    fn leaf(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    fn roots(&self) -> RootCertStore {
        let mut r = RootCertStore::empty();
        r.add(self.der.clone()).unwrap();
        r
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

fn tls_secret_yaml(name: &str, leaf: &Leaf) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: default}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        indent(&leaf.cert),
        indent(&leaf.key)
    )
}

fn tls_config(min_version: &str, redirect: bool) -> String {
    format!(
        "server:\n  tls:\n    default_certificate: {{secret_ref: {{name: fallback, namespace: default}}}}\n    min_version: \"{min_version}\"\n    redirect_http: {redirect}\n{BASE_CONFIG}"
    )
}

fn client_config(
    roots: RootCertStore,
    alpn: &[&str],
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut c = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    Arc::new(c)
}

async fn connect(port: u16, name: &str, cfg: Arc<ClientConfig>) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    TlsConnector::from(cfg)
        .connect(ServerName::try_from(name.to_string()).unwrap(), tcp)
        .await
}

fn served(s: &TlsStream<TcpStream>) -> Vec<u8> {
    s.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

type H1 = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn h1(stream: TlsStream<TcpStream>) -> H1 {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn h1_get(sender: &mut H1, host: &str, path: &str) -> (u16, serde_json::Value) {
    let req = Request::get(path)
        .header("host", host)
        .body(Empty::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// A gateway with routes for `a.test` (Secret a), `*.wild.test` (Secret wild) and the
/// default certificate (Secret fallback, for 127.0.0.1), all to one upstream.
struct Setup {
    ca: Ca,
    gw: Gateway,
    up: Upstream,
    a: Leaf,
    wild: Leaf,
    fallback: Leaf,
}

async fn setup(min_version: &str, redirect: bool) -> Setup {
    let ca = Ca::new();
    let (a, wild, fallback) = (
        ca.leaf(&["a.test"]),
        ca.leaf(&["*.wild.test"]),
        ca.leaf(&["127.0.0.1"]),
    );
    let up = Upstream::start("u").await;
    let files = [
        ("up.yaml", upstream_yaml("u", &[up.url()])),
        (
            "a.yaml",
            route_yaml("a", "/*", "u", "hosts: [a.test]\ntls: {secretName: a}"),
        ),
        (
            "wild.yaml",
            route_yaml(
                "wild",
                "/*",
                "u",
                "hosts: [\"*.wild.test\"]\ntls: {secretName: wild}",
            ),
        ),
        ("any.yaml", route_yaml("any", "/any", "u", "")),
        (
            "live.yaml",
            route_yaml("live", "/live", "u", "hosts: [a.test]\nwebsocket: true"),
        ),
        ("secret-a.yaml", tls_secret_yaml("a", &a)),
        ("secret-wild.yaml", tls_secret_yaml("wild", &wild)),
        ("secret-fallback.yaml", tls_secret_yaml("fallback", &fallback)),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let gw = Gateway::start(&tls_config(min_version, redirect), &files).await;
    Setup {
        ca,
        gw,
        up,
        a,
        wild,
        fallback,
    }
}

const BOTH: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

#[tokio::test]
async fn sni_picks_the_certificate_and_alpn_the_protocol() {
    let s = setup("1.2", false).await;
    let h1_only = client_config(s.ca.roots(), &["http/1.1"], BOTH);

    let conn = connect(s.gw.https, "a.test", h1_only.clone()).await.unwrap();
    assert_eq!(served(&conn), s.a.der);
    assert_eq!(conn.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut c = h1(conn).await;
    let (status, body) = h1_get(&mut c, "a.test", "/hello").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["headers"]["x-forwarded-proto"], "https");
    assert_eq!(body["headers"]["x-forwarded-host"], "a.test");
    // A WebSocket upgrade over TLS says so too (the echo upstream answers it without switching).
    let req = Request::get("/live")
        .header("host", "a.test")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(Empty::new())
        .unwrap();
    let resp = c.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["path"], "/live", "{body}");
    assert_eq!(body["headers"]["upgrade"], "websocket", "{body}");
    assert_eq!(body["headers"]["x-forwarded-proto"], "https", "{body}");

    let conn = connect(s.gw.https, "x.wild.test", h1_only.clone()).await.unwrap();
    assert_eq!(served(&conn), s.wild.der);

    // An IP address sends no SNI: the default certificate.
    let conn = connect(s.gw.https, "127.0.0.1", h1_only.clone()).await.unwrap();
    assert_eq!(served(&conn), s.fallback.der);
    let (status, _) = h1_get(&mut h1(conn).await, "127.0.0.1", "/any").await;
    assert_eq!(status, 200);

    // TLS 1.2 clients are served too (min_version 1.2).
    let tls12 = client_config(s.ca.roots(), &[], &[&rustls::version::TLS12]);
    let conn = connect(s.gw.https, "a.test", tls12).await.unwrap();
    assert_eq!(
        conn.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );

    // ALPN h2: HTTP/2 over TLS through the same pipeline.
    let h2 = client_config(s.ca.roots(), &["h2", "http/1.1"], BOTH);
    let conn = connect(s.gw.https, "a.test", h2).await.unwrap();
    assert_eq!(conn.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, driver) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(conn))
            .await
            .unwrap();
    tokio::spawn(driver);
    let req = Request::get("https://a.test/over-h2")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let body: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["path"], "/over-h2");
    assert_eq!(body["headers"]["x-forwarded-proto"], "https");
    assert!(s.up.hits() >= 3);

    // The expiry of each Secret in use is exported.
    let text = s.gw.metrics_text().await;
    for secret in ["default/a", "default/wild", "default/fallback"] {
        assert!(
            text.contains(&format!(
                "gateway_tls_certificate_expiry_seconds{{secret=\"{secret}\"}}"
            )),
            "{text}"
        );
    }
}

#[tokio::test]
async fn rotating_a_secret_changes_new_handshakes_without_dropping_connections() {
    let s = setup("1.2", false).await;
    let cfg = client_config(s.ca.roots(), &["http/1.1"], BOTH);
    let open = connect(s.gw.https, "a.test", cfg.clone()).await.unwrap();
    assert_eq!(served(&open), s.a.der);
    let mut open = h1(open).await;
    assert_eq!(h1_get(&mut open, "a.test", "/before").await.0, 200);

    let rotated = s.ca.leaf(&["a.test"]);
    write_atomic(
        &s.gw.resources().join("secret-a.yaml"),
        &tls_secret_yaml("a", &rotated),
    );
    let start = Instant::now();
    loop {
        let conn = connect(s.gw.https, "a.test", cfg.clone()).await.unwrap();
        if served(&conn) == rotated.der {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the new certificate never served"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("rotated certificate served after {:?}", start.elapsed());
    // The connection opened before the rotation still serves requests.
    assert_eq!(h1_get(&mut open, "a.test", "/after").await.0, 200);
}

#[tokio::test]
async fn a_bad_certificate_is_a_condition_and_other_hosts_keep_working() {
    let s = setup("1.2", false).await;
    let mut broken = s.ca.leaf(&["bad.test"]);
    broken.key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into();
    write_atomic(
        &s.gw.resources().join("secret-bad.yaml"),
        &tls_secret_yaml("bad", &broken),
    );
    write_atomic(
        &s.gw.resources().join("bad.yaml"),
        &route_yaml("bad", "/*", "u", "hosts: [bad.test]\ntls: {secretName: bad}"),
    );
    write_atomic(
        &s.gw.resources().join("missing.yaml"),
        &route_yaml(
            "missing",
            "/*",
            "u",
            "hosts: [missing.test]\ntls: {secretName: nowhere}",
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = s.gw.log();
        if log.contains("ResolvedRefs InvalidCertificate") && log.contains("ResolvedRefs SecretNotFound") {
            break;
        }
        assert!(Instant::now() < deadline, "conditions not reported:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cfg = client_config(s.ca.roots(), &["http/1.1"], BOTH);
    // The bad host falls back to the default certificate (which does not name it).
    let err = connect(s.gw.https, "bad.test", cfg.clone()).await.unwrap_err();
    assert!(err.to_string().contains("not valid for name"), "{err}");
    // Other hosts keep their certificates and the route still serves plain HTTP.
    let conn = connect(s.gw.https, "a.test", cfg.clone()).await.unwrap();
    assert_eq!(served(&conn), s.a.der);
    assert_eq!(h1_get(&mut h1(conn).await, "a.test", "/").await.0, 200);
    let plain = send(
        &client(),
        Request::get(s.gw.url("/x"))
            .header("host", "bad.test")
            .body(Full::default())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(plain.status, 200);

    // `gatehouse check` shows the same condition.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["check", "--resources"])
        .arg(s.gw.resources())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("InvalidCertificate") && text.contains("SecretNotFound"),
        "{text}"
    );
}

#[tokio::test]
async fn min_version_1_3_refuses_a_tls_1_2_only_client() {
    let s = setup("1.3", false).await;
    let tls12 = client_config(s.ca.roots(), &[], &[&rustls::version::TLS12]);
    assert!(connect(s.gw.https, "a.test", tls12).await.is_err());
    let tls13 = client_config(s.ca.roots(), &[], &[&rustls::version::TLS13]);
    let conn = connect(s.gw.https, "a.test", tls13).await.unwrap();
    assert_eq!(
        conn.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    // The listener is still up for the next client.
    let again = client_config(s.ca.roots(), &[], BOTH);
    assert!(connect(s.gw.https, "a.test", again).await.is_ok());
}

#[tokio::test]
async fn redirect_http_sends_plain_requests_to_https() {
    let s = setup("1.2", true).await;
    let r = send(
        &client(),
        Request::get(s.gw.url("/path?q=1"))
            .header("host", "a.test")
            .body(Full::default())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some(format!("https://a.test:{}/path?q=1", s.gw.https).as_str())
    );
    assert_eq!(get(&s.gw.url("/health")).await.unwrap().status, 200);
    assert_eq!(get(&s.gw.url("/ready")).await.unwrap().status, 200);
    let cfg = client_config(s.ca.roots(), &["http/1.1"], BOTH);
    let conn = connect(s.gw.https, "a.test", cfg).await.unwrap();
    assert_eq!(h1_get(&mut h1(conn).await, "a.test", "/path").await.0, 200);
}

/// An HTTPS upstream with a certificate for `name` from `ca`; answers with the SNI it saw.
async fn tls_upstream(ca: &Ca, name: &str) -> (SocketAddr, Arc<Mutex<Vec<Option<String>>>>) {
    let leaf = ca.leaf(&[name]);
    let chain = vec![CertificateDer::from(leaf.der.clone())];
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).unwrap();
    let mut cfg =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, record) = (acceptor.clone(), record.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let sni = tls.get_ref().1.server_name().map(str::to_string);
                record.lock().unwrap().push(sni.clone());
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let body = serde_json::json!({"sni": sni, "path": req.uri().path()}).to_string();
                    async move { Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(body)))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn https_upstreams_are_verified_with_a_ca_from_a_secret_and_get_sni() {
    let ca = Ca::new();
    let (addr, seen) = tls_upstream(&ca, "backend.internal").await;
    let ca_secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: backend-ca, namespace: default}}\nstringData:\n  ca.crt: |\n{}",
        indent(&ca.pem)
    );
    let upstream = |name: &str, tls: &str| {
        format!(
            "apiVersion: gatehouse.dev/v1alpha1\nkind: GatewayUpstream\nmetadata: {{name: {name}, namespace: default}}\n\
             spec:\n  protocol: https\n  endpoints: [\"https://{addr}\"]\n{tls}"
        )
    };
    let files = [
        ("ca.yaml", ca_secret),
        (
            "trusted.yaml",
            upstream(
                "trusted",
                "  tls: {caSecretName: backend-ca, serverName: backend.internal}\n",
            ),
        ),
        (
            "trusted-route.yaml",
            route_yaml("trusted", "/trusted/*", "trusted", ""),
        ),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let gw = Gateway::start(BASE_CONFIG, &files).await;
    let r = get(&gw.url("/trusted/x")).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["sni"], "backend.internal");
    assert_eq!(r.json()["path"], "/trusted/x");
    assert_eq!(
        seen.lock().unwrap().first().cloned().flatten().as_deref(),
        Some("backend.internal")
    );

    // The same endpoint without the CA: the system roots do not trust it, so 502.
    let (addr2, _) = tls_upstream(&ca, "backend.internal").await;
    let untrusted = upstream("untrusted", "").replace(&addr.to_string(), &addr2.to_string());
    write_atomic(&gw.resources().join("untrusted.yaml"), &untrusted);
    write_atomic(
        &gw.resources().join("untrusted-route.yaml"),
        &route_yaml("untrusted", "/untrusted/*", "untrusted", ""),
    );
    gw.wait_status("/untrusted/x", 502).await;
}

/// The WebSocket hub on the HTTPS port: frames written to a TLS stream (some straight from the
/// broadcast, some by the connection's writer once the socket is full) arrive whole and in
/// order.
#[tokio::test]
async fn the_websocket_hub_serves_over_tls_in_order_past_a_full_socket() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let ca = Ca::new();
    let fallback = ca.leaf(&["127.0.0.1"]);
    let config = format!(
        "server:\n  tls:\n    default_certificate: {{secret_ref: {{name: fallback, namespace: default}}}}\n{}",
        crate::support::ws::hub_config("")
    );
    let secret = tls_secret_yaml("fallback", &fallback);
    let gw = Gateway::start(&config, &[("secret-fallback.yaml", secret.as_str())]).await;

    let stream = connect(
        gw.https,
        "127.0.0.1",
        client_config(ca.roots(), &["http/1.1"], BOTH),
    )
    .await
    .unwrap();
    let url = format!(
        "wss://127.0.0.1:{}/ws?token={}",
        gw.https,
        crate::support::ws::token("alice", &["user"])
    );
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    let sub = serde_json::json!({"type": "Subscribe", "data": {"channel": "tls"}});
    ws.send(Message::text(sub.to_string())).await.unwrap();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if m.to_text().unwrap().contains("\"subscribed\"") {
            break;
        }
    }

    // 60 broadcasts of 256 KiB (15 MiB) while the client reads nothing: more than the sockets hold.
    let pad = "x".repeat(256 * 1024);
    let hook = gw.url("/webhook/websocket");
    for i in 0..60 {
        let body = serde_json::json!({"type": "channel_broadcast", "channel": "tls", "message": {"i": i, "pad": pad}});
        let r = send(
            &client(),
            Request::post(&hook)
                .header(
                    "authorization",
                    format!("Bearer {}", crate::support::ws::WEBHOOK_TOKEN),
                )
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 202, "{:?}", r.json());
    }
    for i in 0..60 {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(m.to_text().unwrap()).unwrap();
        let msg = crate::support::ws::broadcast_message(&v);
        assert_eq!(msg["i"], i, "message {i} out of order");
        assert_eq!(msg["pad"].as_str().map(str::len), Some(256 * 1024));
    }
}

/// HTTP/1.1 over TLS is served by the gateway's own HTTP/1.1 loop as on the plain port:
/// keep-alive requests in a row, then a malformed head gets the JSON error and a close.
#[tokio::test]
async fn https_http1_gets_the_own_loop_and_its_json_errors() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = setup("1.2", false).await;
    let h1_only = client_config(s.ca.roots(), &["http/1.1"], BOTH);
    let mut conn = connect(s.gw.https, "a.test", h1_only).await.unwrap();
    for path in ["/one", "/two"] {
        conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: a.test\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            conn.read_exact(&mut b).await.unwrap();
            head.push(b[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.strip_prefix("content-length: ")
                    .or_else(|| l.strip_prefix("Content-Length: "))
            })
            .unwrap()
            .parse()
            .unwrap();
        let mut body = vec![0u8; len];
        conn.read_exact(&mut body).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["path"], path);
        assert_eq!(body["headers"]["x-forwarded-proto"], "https");
    }
    conn.write_all(b"GET /bad HTTP/1.1\r\nHost: a.test\r\nBad Name: x\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut rest)).await;
    let text = String::from_utf8_lossy(&rest);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("connection: close"), "{text}");
    assert!(text.contains("\"code\":\"bad_request\""), "{text}");
}

/// A large response to a client that reads slowly over TLS arrives whole on the own loop.
#[tokio::test]
async fn a_large_response_reaches_a_slow_tls_reader_whole() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = Ca::new();
    let fallback = ca.leaf(&["127.0.0.1"]);
    let up = scripted::Scripted::start().await;
    let files = [
        ("up.yaml", upstream_yaml("s", std::slice::from_ref(&up.url))),
        ("r.yaml", route_yaml("s", "/*", "s", "")),
        ("secret.yaml", tls_secret_yaml("fallback", &fallback)),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let gw = Gateway::start(&tls_config("1.2", false), &files).await;
    // A small receive buffer, so that the gateway's writes fill the socket.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(([127, 0, 0, 1], gw.https).into()).await.unwrap();
    let cfg = client_config(ca.roots(), &["http/1.1"], BOTH);
    let mut conn = TlsConnector::from(cfg)
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    conn.write_all(b"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let want = loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
            assert!(head.starts_with("http/1.1 200"), "{head}");
            break end + 4 + scripted::BIG;
        }
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before the head");
        got.extend_from_slice(&chunk[..n]);
    };
    while got.len() < want {
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("stalled at {} of {want} bytes", got.len()))
            .unwrap();
        assert!(n > 0, "closed at {} of {want} bytes", got.len());
        got.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(got.len(), want);
}

/// Two namespaces' upstreams on one https endpoint: each connects with its own CA and server
/// name (the first namespace's settings used to apply to both), and never on a connection made
/// for the other.
#[tokio::test]
async fn upstreams_sharing_an_endpoint_keep_their_own_tls_settings() {
    let ca = Ca::new();
    let (addr, seen) = tls_upstream(&ca, "backend.internal").await;
    let ca_secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: backend-ca, namespace: team-a}}\nstringData:\n  ca.crt: |\n{}",
        indent(&ca.pem)
    );
    let upstream = |ns: &str, tls: &str| {
        format!(
            "apiVersion: gatehouse.dev/v1alpha1\nkind: GatewayUpstream\nmetadata: {{name: backend, namespace: {ns}}}\n\
             spec:\n  protocol: https\n  endpoints: [\"https://{addr}\"]\n{tls}"
        )
    };
    let route = |ns: &str| {
        format!(
            "apiVersion: gatehouse.dev/v1alpha1\nkind: GatewayRoute\nmetadata: {{name: r, namespace: {ns}}}\n\
             spec:\n  path: /{ns}/*\n  upstream: backend\n"
        )
    };
    // team-b's files load first: its settings used to win the endpoint.
    let files = [
        (
            "a-team-b.yaml",
            upstream("team-b", "  tls: {serverName: evil.internal}\n"),
        ),
        ("a-team-b-route.yaml", route("team-b")),
        ("b-ca.yaml", ca_secret),
        (
            "b-team-a.yaml",
            upstream(
                "team-a",
                "  tls: {caSecretName: backend-ca, serverName: backend.internal}\n",
            ),
        ),
        ("b-team-a-route.yaml", route("team-a")),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let gw = Gateway::start(BASE_CONFIG, &files).await;
    let r = get(&gw.url("/team-a/x")).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["sni"], "backend.internal");
    // team-b's settings are its own: the system roots do not trust the test CA. Nor does it
    // get team-a's pooled, verified connection.
    let r = get(&gw.url("/team-b/x")).await.unwrap();
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    let r = get(&gw.url("/team-a/y")).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|sni| sni.as_deref() == Some("backend.internal")),
        "{seen:?}"
    );
}
