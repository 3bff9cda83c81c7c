//! The Gateways' sockets end to end, on real sockets: tables built by hand and published as
//! the publisher does (the table goes live and its listeners reach the socket manager), echo
//! backends on loopback, HTTP/1.1 and TLS clients. Each Gateway socket gets an address of its
//! own in 127.0.1.0/24 (a free port found by binding port 0 first). The rules of HTTPRoutes are
//! tested in `server/tests.rs`, with these helpers.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::super::accept::{serve_proxy, Shutdown};
use super::super::limits::ConnLimits;
use super::{serve_gateways, GatewaySockets};
use crate::auth::AuthPolicy;
use crate::proxy::pipeline::ProxyState;
use crate::routing::gateway::{PathMatch, WeightedBackend};
use crate::routing::{
    GatewayListeners, GatewayRule, ListenerSocket, MethodSet, PathPattern, Route, RoutingTable, TableBuilder,
    TableHandle,
};
use crate::telemetry::Metrics;
use crate::upstream::{Balancer, Endpoint, Protocol, Upstream};

/// The proxy listener and the Gateway socket manager over one table handle.
pub(crate) struct Harness {
    handle: TableHandle,
    feed: watch::Sender<Arc<GatewayListeners>>,
    stop: watch::Sender<bool>,
    /// The proxy listener (routed by the main table).
    pub(crate) main: SocketAddr,
}

impl Harness {
    pub(crate) async fn start() -> Harness {
        let handle = TableHandle::default();
        let state = Arc::new(ProxyState::new(
            handle.clone(),
            Metrics::new().unwrap(),
            Arc::new(AtomicBool::new(true)),
            Duration::from_secs(2),
            1 << 20,
        ));
        let (stop, stop_rx) = watch::channel(false);
        let shutdown = Shutdown {
            stop: stop_rx,
            grace: Duration::from_secs(1),
        };
        let limits = ConnLimits {
            max_header_size: 16 * 1024,
            keepalive: Some(Duration::from_secs(30)),
            send: None,
            h2_idle: None,
        };
        let (feed, listeners) = watch::channel(Arc::new(GatewayListeners::default()));
        let sockets = GatewaySockets {
            listeners,
            table: handle.clone(),
            tls: crate::proxy::tls::server_config(handle.clone(), None).unwrap(),
        };
        let s = state.clone();
        tokio::spawn(serve_gateways(
            sockets,
            move |local, peer, req| s.clone().handle_gateway(local, peer, req),
            |_: &str| false,
            |_: StatusCode| {},
            shutdown.clone(),
            limits,
        ));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let main = listener.local_addr().unwrap();
        tokio::spawn(serve_proxy(
            listener,
            None,
            move |peer, req| state.clone().handle(peer, req),
            |_: &str| false,
            |_: StatusCode| {},
            shutdown,
            limits,
        ));
        Harness {
            handle,
            feed,
            stop,
            main,
        }
    }

    /// Publishes `table`: it goes live, and its listeners reach the socket manager.
    pub(crate) fn publish(&self, table: RoutingTable) {
        let table = Arc::new(table);
        self.handle.store(table.clone());
        self.feed.send_replace(table.listeners.clone());
    }
}

impl Harness {
    /// Makes `table` live without telling the socket manager (as in the instant between a
    /// publish and the manager's turn).
    pub(crate) fn store_only(&self, table: RoutingTable) {
        self.handle.store(Arc::new(table));
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A free port on 127.0.1.`host` (bound, then let go).
pub(crate) fn free_addr(host: u8) -> SocketAddr {
    let l = std::net::TcpListener::bind((Ipv4Addr::new(127, 0, 1, host), 0)).unwrap();
    l.local_addr().unwrap()
}

/// Waits until `addr` takes connections.
pub(crate) async fn wait_bound(addr: SocketAddr) {
    let until = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < until, "{addr} was never bound");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `addr` refuses connections.
async fn wait_refused(addr: SocketAddr) {
    let until = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < until, "{addr} still takes connections");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An echo backend named `name`: it answers every request with
/// `{"backend","method","uri","headers":{name:[values]}}` and the field `x-from-backend: yes`.
pub(crate) async fn backend(name: &str) -> Arc<Upstream> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let own = name.to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let name = own.clone();
            let svc = service_fn(move |req: Request<Incoming>| {
                let mut headers = serde_json::Map::new();
                for (k, v) in req.headers() {
                    let values = headers.entry(k.as_str()).or_insert_with(|| serde_json::json!([]));
                    if let Some(a) = values.as_array_mut() {
                        a.push(String::from_utf8_lossy(v.as_bytes()).into());
                    }
                }
                let body = serde_json::json!({
                    "backend": name,
                    "method": req.method().as_str(),
                    "uri": req.uri().to_string(),
                    "headers": headers,
                });
                let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
                resp.headers_mut()
                    .insert("x-from-backend", HeaderValue::from_static("yes"));
                async move { Ok::<_, Infallible>(resp) }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let endpoint = Endpoint::parse(&format!("http://{addr}"), Protocol::Http).unwrap();
    Arc::new(Upstream::new(
        format!("default/{name}"),
        Protocol::Http,
        vec![endpoint],
        Balancer::RoundRobin,
        None,
        None,
        None,
        None,
    ))
}

/// A rule for `path` with these backends and weights (and no matches or filters).
pub(crate) fn rule(path: PathMatch, backends: &[(&Arc<Upstream>, u32)]) -> GatewayRule {
    GatewayRule {
        source: "default/route".into(),
        path,
        backends: backends
            .iter()
            .map(|(u, weight)| WeightedBackend {
                upstream: Some((*u).clone()),
                weight: *weight,
            })
            .collect(),
        ..GatewayRule::default()
    }
}

fn route(name: &str, path: &str, hosts: &[&str], methods: &[&str], upstream: Arc<Upstream>) -> Route {
    Route {
        id: format!("default/{name}"),
        namespace: "default".into(),
        name: name.into(),
        path: path.into(),
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        methods: MethodSet::parse(methods).unwrap(),
        upstream,
        timeout: Some(Duration::from_secs(5)),
        auth: AuthPolicy::default(),
        rate_limit: None,
        cors: None,
        rewrite: None,
        websocket: false,
        tls_secret: None,
        gateway: None,
        series: Default::default(),
    }
}

/// A route of a compiled HTTPRoute rule for `hosts` and `methods` (none: all). Its own
/// upstream has no endpoints: only the rule's backends can answer.
pub(crate) fn rule_route(
    name: &str,
    hosts: &[&str],
    methods: &[&str],
    rule: GatewayRule,
) -> (Route, PathPattern) {
    let pattern = match &rule.path {
        PathMatch::Exact(p) => PathPattern::literal(p, false),
        PathMatch::Prefix(p) if p.is_empty() => PathPattern::literal("/", true),
        PathMatch::Prefix(p) => PathPattern::literal(p, true),
    };
    let placeholder = Arc::new(Upstream::empty("default/none".into()));
    let mut r = route(name, &pattern.raw, hosts, methods, placeholder);
    r.gateway = Some(Arc::new(rule));
    (r, pattern)
}

/// A Gateway socket's (strict) table of these routes, oldest first.
pub(crate) fn socket_table(routes: Vec<(Route, PathPattern)>) -> RoutingTable {
    let mut b = TableBuilder::strict();
    for (r, p) in routes {
        b.add(Arc::new(r), &p);
    }
    b.build()
}

/// A plain HTTP socket at `addr` with `table`.
pub(crate) fn socket(addr: SocketAddr, table: RoutingTable) -> ListenerSocket {
    ListenerSocket {
        addr,
        tls: false,
        gateway: "default/gw".into(),
        table: Arc::new(table),
    }
}

/// The main table: an ordinary route `main_path` (prefix) to `upstream`, and `sockets`.
pub(crate) fn main_table(
    main_path: &str,
    upstream: &Arc<Upstream>,
    sockets: Vec<ListenerSocket>,
) -> RoutingTable {
    let mut b = TableBuilder::default();
    let pattern = PathPattern::parse(main_path).unwrap();
    b.add(
        Arc::new(route("main", main_path, &[], &[], upstream.clone())),
        &pattern,
    );
    let mut t = b.build();
    t.listeners = Arc::new(GatewayListeners { sockets });
    t
}

/// An answer as the client got it.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The backend that answered.
    pub(crate) fn backend(&self) -> String {
        self.json()["backend"].as_str().unwrap_or_default().to_string()
    }

    /// The values of the request field `name` the backend got, joined by `,`.
    pub(crate) fn sent(&self, name: &str) -> Option<String> {
        let values = self.json()["headers"][name].as_array()?.clone();
        Some(
            values
                .iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(","),
        )
    }
}

/// An HTTP/1.1 client connection, kept alive between requests.
pub(crate) struct Conn(SendRequest<Full<Bytes>>);

impl Conn {
    pub(crate) async fn open(addr: SocketAddr) -> Conn {
        Conn::over(TcpStream::connect(addr).await.unwrap()).await
    }

    pub(crate) async fn over<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(stream: S) -> Conn {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        Conn(sender)
    }

    /// `method target` with `Host: host` and `fields`.
    pub(crate) async fn send(
        &mut self,
        method: Method,
        host: &str,
        target: &str,
        fields: &[(&str, &str)],
    ) -> Result<Reply, hyper::Error> {
        self.0.ready().await?;
        let mut req = Request::builder().method(method).uri(target).header("host", host);
        for (k, v) in fields {
            req = req.header(*k, *v);
        }
        let resp = self
            .0
            .send_request(req.body(Full::new(Bytes::new())).unwrap())
            .await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into(),
        })
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// `GET target` with `Host: host` and `fields` on a new connection to `addr`.
pub(crate) async fn get(addr: SocketAddr, host: &str, target: &str, fields: &[(&str, &str)]) -> Reply {
    let mut c = Conn::open(addr).await;
    c.send(Method::GET, host, target, fields).await.unwrap()
}

/// A socket a new table drops stops accepting and its idle connections close, as on
/// shutdown; a socket the new table keeps is not bound again: its kept-alive connection
/// goes on, now routed by the new table. A dropped socket listed again is bound again.
#[tokio::test]
async fn dropped_sockets_stop_and_kept_ones_keep_their_connections() {
    let (one, two, three) = (backend("one").await, backend("two").await, backend("three").await);
    let (a, b) = (free_addr(10), free_addr(11));
    let everything = |up: &Arc<Upstream>| {
        socket_table(vec![rule_route(
            "all",
            &[],
            &[],
            rule(PathMatch::default(), &[(up, 1)]),
        )])
    };
    let gw = Harness::start().await;
    gw.publish(main_table(
        "/main",
        &one,
        vec![socket(a, everything(&one)), socket(b, everything(&two))],
    ));
    wait_bound(a).await;
    wait_bound(b).await;
    let mut on_a = Conn::open(a).await;
    let mut on_b = Conn::open(b).await;
    let r = on_a.send(Method::GET, "gw.test", "/x", &[]).await.unwrap();
    assert_eq!(r.backend(), "one");
    assert_eq!(
        on_b.send(Method::GET, "gw.test", "/x", &[])
            .await
            .unwrap()
            .backend(),
        "two"
    );

    gw.publish(main_table("/main", &one, vec![socket(a, everything(&three))]));
    wait_refused(b).await;
    let until = Instant::now() + Duration::from_secs(5);
    while !on_b.is_closed() {
        assert!(
            Instant::now() < until,
            "the dropped socket's idle connection stayed open"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = on_a.send(Method::GET, "gw.test", "/x", &[]).await.unwrap();
    assert_eq!(
        r.backend(),
        "three",
        "the kept connection is routed by the new table"
    );

    gw.publish(main_table(
        "/main",
        &one,
        vec![socket(a, everything(&three)), socket(b, everything(&two))],
    ));
    wait_bound(b).await;
    assert_eq!(get(b, "gw.test", "/x", &[]).await.backend(), "two");
    let r = on_a.send(Method::GET, "gw.test", "/x", &[]).await.unwrap();
    assert_eq!(r.backend(), "three", "still the first connection");
}

/// An address that cannot be bound does not stop the other sockets, and is bound once it
/// is free and a table is published again.
#[tokio::test]
async fn a_socket_that_cannot_be_bound_is_tried_again() {
    let one = backend("one").await;
    let (taken, free) = (free_addr(12), free_addr(13));
    let blocker = std::net::TcpListener::bind(taken).unwrap();
    let table = || {
        let t = |addr| {
            socket(
                addr,
                socket_table(vec![rule_route(
                    "all",
                    &[],
                    &[],
                    rule(PathMatch::default(), &[(&one, 1)]),
                )]),
            )
        };
        main_table("/main", &one, vec![t(taken), t(free)])
    };
    let gw = Harness::start().await;
    gw.publish(table());
    wait_bound(free).await;
    assert_eq!(get(free, "gw.test", "/", &[]).await.backend(), "one");
    drop(blocker);
    gw.publish(table());
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(s) = TcpStream::connect(taken).await {
            let mut c = Conn::over(s).await;
            if let Ok(r) = c.send(Method::GET, "gw.test", "/", &[]).await {
                assert_eq!(r.backend(), "one");
                break;
            }
        }
        assert!(Instant::now() < until, "{taken} was never bound");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A certificate authority for the TLS test, and leaves it signs.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: rustls::pki_types::CertificateDer<'static>,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "gateway socket test CA");
        let cert = p.self_signed(&key).unwrap();
        Ca {
            der: cert.der().clone(),
            issuer: Issuer::new(p, key),
        }
    }

    /// A TLS Secret `default/name` for `host`, and the leaf's DER.
    fn secret(&self, name: &str, host: &str) -> (Secret, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![host.to_string()])
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        let mut s = Secret::default();
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some("default".into());
        s.type_ = Some("kubernetes.io/tls".into());
        s.data = Some(BTreeMap::from([
            ("tls.crt".to_string(), ByteString(cert.pem().into_bytes())),
            (
                "tls.key".to_string(),
                ByteString(key.serialize_pem().into_bytes()),
            ),
        ]));
        (s, cert.der().to_vec())
    }
}

/// An HTTPS socket serves, for each SNI name, the certificate its own table holds for it
/// (the main table has none); a socket that turns from plain HTTP to HTTPS is bound again.
#[tokio::test]
async fn an_https_socket_serves_the_certificates_of_its_table() {
    let one = backend("one").await;
    let ca = Ca::new();
    let (sa, der_a) = ca.secret("a", "a.example");
    let (sb, der_b) = ca.secret("b", "b.example");
    let secrets = vec![sa, sb];
    let addr = free_addr(14);
    let table = |tls: bool| {
        let mut t = socket_table(vec![rule_route(
            "all",
            &[],
            &[],
            rule(PathMatch::default(), &[(&one, 1)]),
        )]);
        let mut store = crate::tls::StoreBuilder::new(&secrets);
        store.add_route("default", "a", &["a.example".into()]).unwrap();
        store.add_route("default", "b", &["b.example".into()]).unwrap();
        t.tls = store.build();
        let mut s = socket(addr, t);
        s.tls = tls;
        main_table("/main", &one, vec![s])
    };
    let gw = Harness::start().await;
    gw.publish(table(false));
    wait_bound(addr).await;
    assert_eq!(get(addr, "a.example", "/", &[]).await.backend(), "one");

    gw.publish(table(true));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let handshake = |name: &'static str| {
        let connector = connector.clone();
        async move {
            let tcp = TcpStream::connect(addr).await.ok()?;
            let sni = rustls::pki_types::ServerName::try_from(name).ok()?;
            connector.connect(sni, tcp).await.ok()
        }
    };
    let until = Instant::now() + Duration::from_secs(10);
    let tls = loop {
        if let Some(tls) = handshake("a.example").await {
            break tls;
        }
        assert!(Instant::now() < until, "{addr} never spoke TLS");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let presented = |tls: &tokio_rustls::client::TlsStream<TcpStream>| {
        tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    };
    assert!(presented(&tls) == der_a, "a.example's certificate");
    let mut c = Conn::over(tls).await;
    let r = c.send(Method::GET, "a.example", "/", &[]).await.unwrap();
    assert_eq!(r.backend(), "one");
    assert_eq!(r.sent("x-forwarded-proto").as_deref(), Some("https"));
    let tls = handshake("b.example").await.unwrap();
    assert!(presented(&tls) == der_b, "b.example's certificate");
    assert!(
        handshake("c.example").await.is_none(),
        "no certificate for a name the table does not serve"
    );
}
