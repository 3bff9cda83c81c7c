//! Tests of the phases: the route phase's outcomes, and the one table a request reads from
//! its arrival to its answer.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

use super::route::{route, RouteMiss};
use super::state::ProxyState;
use crate::api::{GatewayRoute, GatewayRouteSpec, GatewayUpstream, GatewayUpstreamSpec};
use crate::auth::{ClaimNames, JwtSettings};
use crate::compile::{compile, CompileOptions, Snapshot};
use crate::proxy::body::ClientBody;
use crate::proxy::context::{Arrival, RequestCtx};
use crate::proxy::error::ProxyError;
use crate::proxy::headers::ClientFields;
use crate::routing::{RoutingTable, TableHandle};
use crate::telemetry::Metrics;

const KEY_A: &str = "the-key-of-table-a-at-least-32-bytes!";
const KEY_B: &str = "the-key-of-table-b-at-least-32-bytes!";

/// A table with `/private` (authentication required) and `/read` (GET only), whose tokens
/// are HS256 with `key`.
fn table(key: &str) -> Arc<RoutingTable> {
    let route = |name: &str, spec: GatewayRouteSpec| {
        let mut r = GatewayRoute::new(name, spec);
        r.metadata.namespace = Some("default".into());
        r
    };
    let mut upstream = GatewayUpstream::new(
        "up",
        GatewayUpstreamSpec {
            endpoints: vec!["http://127.0.0.1:9".into()],
            ..Default::default()
        },
    );
    upstream.metadata.namespace = Some("default".into());
    let snapshot = Snapshot {
        routes: vec![
            route(
                "private",
                GatewayRouteSpec {
                    path: "/private".into(),
                    upstream: "up".into(),
                    auth_required: true,
                    ..Default::default()
                },
            ),
            route(
                "read",
                GatewayRouteSpec {
                    path: "/read".into(),
                    methods: vec!["GET".into()],
                    upstream: "up".into(),
                    ..Default::default()
                },
            ),
        ],
        upstreams: vec![upstream],
        ..Default::default()
    };
    let options = CompileOptions {
        jwt: Some(JwtSettings {
            inline_secret: Some(key.into()),
            secret_ref: None,
            algorithm: Some(Algorithm::HS256),
            issuer: None,
            audience: None,
            leeway: 60,
            claims: ClaimNames::default(),
            allow_weak_secret: false,
        }),
        ..CompileOptions::default()
    };
    let compiled = compile(&snapshot, &options);
    assert_eq!(compiled.table.routes().len(), 2, "{:?}", compiled.verdicts);
    Arc::new(compiled.table)
}

fn token(key: &str) -> String {
    let claims = serde_json::json!({
        "sub": "user-1",
        "exp": jsonwebtoken::get_current_timestamp() + 600,
    });
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key.as_bytes()),
    )
    .expect("sign")
}

fn state(handle: &TableHandle) -> ProxyState {
    ProxyState::new(
        handle.clone(),
        Metrics::new().expect("metrics"),
        Arc::new(AtomicBool::new(true)),
        Duration::from_secs(1),
        1024,
    )
}

fn request(method: Method, path: &str, bearer: Option<&str>) -> Request<ClientBody> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "gw.test");
    if let Some(t) = bearer {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(ClientBody::Read(Bytes::new())).expect("request")
}

const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40000);

/// The arrival of `req` with its fields `client`, as the pipeline makes it: the table loaded
/// as the request arrives.
fn arrive<'c>(state: &ProxyState, req: &Request<ClientBody>, client: &'c ClientFields) -> Arrival<'c> {
    Arrival::new(req, client, PEER, state.proto, &state.table)
}

/// The context of a request that arrived as `arrival`: the route found in its table.
fn routed<'a>(arrival: &'a Arrival<'a>, req: &Request<ClientBody>) -> RequestCtx<'a> {
    let route = route(arrival, req).ok().expect("a route");
    RequestCtx {
        arrival,
        route,
        user: None,
        gateway: None,
    }
}

/// A table published while a request is under way does not mix with the one it arrived
/// with: the route of table A is checked with A's key set, not with B's.
#[tokio::test]
async fn a_request_reads_the_table_it_arrived_with_to_the_end() {
    let handle = TableHandle::default();
    handle.store(table(KEY_A));
    let state = state(&handle);
    let req = request(Method::GET, "/private", Some(&token(KEY_A)));
    let client = ClientFields::of(req.headers());
    let arrival = arrive(&state, &req, &client);
    let ctx = routed(&arrival, &req);

    // Table B, whose key set takes other keys, goes live before the request is authenticated.
    handle.store(table(KEY_B));
    let user = state
        .authenticate(&ctx, &req)
        .expect("checked with the key set of table A")
        .expect("a caller");
    assert_eq!(user.user_id, "user-1");

    // A request that arrives now reads table B.
    let later = arrive(&state, &req, &client);
    assert!(matches!(
        state.authenticate(&routed(&later, &req), &req),
        Err(ProxyError::Unauthorized(_))
    ));
    let req_b = request(Method::GET, "/private", Some(&token(KEY_B)));
    let client_b = ClientFields::of(req_b.headers());
    let arrival_b = arrive(&state, &req_b, &client_b);
    assert!(state
        .authenticate(&routed(&arrival_b, &req_b), &req_b)
        .is_ok_and(|u| u.is_some()));
}

/// The route phase says why a request has no route, as a value: the respond phase makes the
/// answer.
#[tokio::test]
async fn the_route_phase_says_why_there_is_no_route() {
    let handle = TableHandle::default();
    handle.store(table(KEY_A));
    let state = state(&handle);
    let miss = |method: Method, path: &str| {
        let req = request(method, path, None);
        let client = ClientFields::of(req.headers());
        let arrival = arrive(&state, &req, &client);
        match route(&arrival, &req) {
            Ok(r) => format!("found {}", r.id),
            Err(RouteMiss::NotFound) => "not found".to_string(),
            Err(RouteMiss::MethodNotAllowed { allow }) => format!("allow {allow}"),
            Err(RouteMiss::Preflight { .. }) => "preflight".to_string(),
        }
    };
    assert_eq!(miss(Method::GET, "/read"), "found default/read");
    assert_eq!(miss(Method::GET, "/nowhere"), "not found");
    let allowed = miss(Method::DELETE, "/read");
    assert!(
        allowed.starts_with("allow ") && allowed.contains("GET"),
        "{allowed}"
    );

    let req = request(Method::DELETE, "/read", None);
    let client = ClientFields::of(req.headers());
    let arrival = arrive(&state, &req, &client);
    let Err(miss) = route(&arrival, &req) else {
        panic!("routed")
    };
    let resp = state.unrouted(&arrival, miss, req.uri().path());
    assert_eq!(resp.status(), 405);
    assert!(resp.headers()[header::ALLOW]
        .to_str()
        .is_ok_and(|a| a.contains("GET")));
}
