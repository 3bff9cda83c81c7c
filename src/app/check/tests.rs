use super::*;
use crate::compile::gateway_api::ApiKind;
use serde_json::json;

const OURS: &str = "gatehouse.dev/gateway-controller";

#[test]
fn gateway_api_status_is_one_line_per_object_and_rejections_count() {
    let status = |kind, ns: Option<&str>, name: &str, status| ApiStatus {
        kind,
        namespace: ns.map(str::to_string),
        name: name.into(),
        generation: Some(1),
        status: std::sync::Arc::new(status),
    };
    let accepted = json!({"type": "Accepted", "status": "True", "reason": "Accepted", "message": "ok"});
    let all = vec![
        status(
            ApiKind::HTTPRoute,
            Some("apps"),
            "r",
            json!({"parents": [{"parentRef": {"name": "gw", "namespace": "infra"}, "controllerName": OURS,
                "conditions": [accepted, {"type": "ResolvedRefs", "status": "False",
                                          "reason": "BackendNotFound", "message": "Service apps/svc does not exist"}]}]}),
        ),
        status(
            ApiKind::Gateway,
            Some("infra"),
            "gw",
            json!({"conditions": [{"type": "Accepted", "status": "False", "reason": "InvalidParameters",
                                   "message": "bad"}], "listeners": []}),
        ),
        status(
            ApiKind::GatewayClass,
            None,
            "gatehouse",
            json!({"conditions": [accepted]}),
        ),
    ];
    let mut out = Vec::new();
    let (n, rejected) = print_gateway_status(&mut out, all, OURS).expect("print");
    assert_eq!((n, rejected), (3, 1));
    assert_eq!(
        String::from_utf8(out).expect("utf-8"),
        "ok       GatewayClass gatehouse: Accepted=True\n\
         rejected Gateway infra/gw: Accepted=False listeners=0 [Accepted InvalidParameters: bad]\n\
         warning  HTTPRoute apps/r: parents=1 [parent infra/gw ResolvedRefs BackendNotFound: Service apps/svc does not exist]\n"
    );
}
