//! Gateway API HTTPRoutes with RoutePolicies through the real binary in standalone folder mode:
//! the Gateway is served on its own address, the policies of the HTTPRoute and of one of its
//! rules apply JWT auth, roles and a rate limit, and the backend is a GatewayUpstream.

use std::time::{Duration, Instant};

use crate::support::{self, Gateway, Upstream};
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

const SECRET: &str = "route-policy-test-secret-of-32-bytes";
/// An address of the loopback pool no other test uses.
const ADDRESS: &str = "127.0.1.231";

fn token(roles: &[&str]) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({"sub": "user-7", "exp": now + 600, "iat": now, "roles": roles});
    let t = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign");
    format!("Bearer {t}")
}

/// A free port on ADDRESS.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind((ADDRESS, 0)).expect("bind the test address");
    l.local_addr().expect("addr").port()
}

async fn get(port: u16, path: &str, auth: Option<&str>) -> u16 {
    let mut req = Request::get(format!("http://{ADDRESS}:{port}{path}")).header("host", "shop.example");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    support::send(
        &support::client(),
        req.body(Full::new(Bytes::new())).expect("request"),
    )
    .await
    .map_or(0, |r| r.status)
}

#[tokio::test]
async fn route_policies_bring_auth_roles_and_rate_limits_to_httproutes() {
    let echo = Upstream::start("echo").await;
    let port = free_port();
    let config = format!(
        "auth:\n  jwt:\n    secret: \"{SECRET}\"\n    algorithm: HS256\n\
         gateway_api:\n  addresses: [\"{ADDRESS}\"]\n"
    );
    let resources = format!(
        r#"
apiVersion: gatehouse.dev/v1alpha1
kind: GatewayUpstream
metadata: {{name: echo, namespace: shop}}
spec: {{endpoints: ["http://{upstream}"]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: gatehouse}}
spec: {{controllerName: gatehouse.dev/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: web, namespace: shop}}
spec:
  gatewayClassName: gatehouse
  listeners: [{{name: http, port: {port}, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: api, namespace: shop}}
spec:
  parentRefs: [{{name: web}}]
  hostnames: [shop.example]
  rules:
  - name: admin
    matches: [{{path: {{type: PathPrefix, value: /admin}}}}]
    backendRefs: [{{group: gatehouse.dev, kind: GatewayUpstream, name: echo}}]
  - matches: [{{path: {{type: PathPrefix, value: /limited}}}}]
    backendRefs: [{{group: gatehouse.dev, kind: GatewayUpstream, name: echo}}]
  - backendRefs: [{{group: gatehouse.dev, kind: GatewayUpstream, name: echo}}]
---
apiVersion: gatehouse.dev/v1alpha1
kind: RoutePolicy
metadata: {{name: signed-in, namespace: shop}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: api}}]
  authRequired: true
---
apiVersion: gatehouse.dev/v1alpha1
kind: RoutePolicy
metadata: {{name: admins, namespace: shop}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: api, sectionName: admin}}]
  requiredRoles: [admin]
---
apiVersion: gatehouse.dev/v1alpha1
kind: RoutePolicy
metadata: {{name: gateway-limit, namespace: shop}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: web, sectionName: http}}]
  rateLimit: {{requests: 3, window: 1m}}
"#,
        upstream = echo.addr
    );
    let gw = Gateway::start(&config, &[("shop.yaml", resources.as_str())]).await;

    // The Gateway's socket comes up with the first table.
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(port, "/", None).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the Gateway socket never answered: {}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let user = token(&["user"]);
    let admin = token(&["admin"]);
    assert_eq!(
        get(port, "/anything", None).await,
        401,
        "the route's policy asks for a JWT"
    );
    assert_eq!(
        get(port, "/admin/x", Some(&user)).await,
        403,
        "the rule's policy asks for admin"
    );
    assert_eq!(get(port, "/admin/x", Some(&admin)).await, 200);
    let hits = echo.hits();
    assert_eq!(hits, 1, "only the admin's request reached the backend");
    // The Gateway listener's policy adds a rate limit to every rule (3 per minute per IP).
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(get(port, "/limited", Some(&user)).await);
    }
    assert!(codes.contains(&429), "no 429 in {codes:?}");
    assert_eq!(codes[0], 200, "{codes:?}");
    // The ordinary listener does not serve the Gateway's routes.
    let plain = support::send(
        &support::client(),
        Request::get(gw.url("/anything"))
            .header("authorization", &admin)
            .body(Full::new(Bytes::new()))
            .expect("request"),
    )
    .await
    .expect("response");
    assert_eq!(plain.status, 404);
}
