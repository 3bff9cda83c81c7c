use super::*;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn expands_variables_with_defaults() {
    let env = env_of(&[("A", "x"), ("EMPTY", "")]);
    assert_eq!(expand("${A}-${B:-dflt}-${EMPTY:-e}-${C}", &env), "x-dflt-e-");
    assert_eq!(expand("no vars", &env), "no vars");
    assert_eq!(expand("broken ${A", &env), "broken ${A");
}

#[test]
fn loads_both_seed_files_unchanged() {
    let env = env_of(&[("JWT_SECRET", "s3cret"), ("WEBHOOK_AUTH_TOKEN", "hook")]);
    let base = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/seed/");
    let Ok(micro) = std::fs::read_to_string(format!("{base}gateway-microservices.yaml")) else {
        return; // shared/ is not beside this checkout
    };
    let cfg = GatewayConfig::from_yaml_str(&micro, &env).expect("microservices seed loads");
    assert_eq!(cfg.routes.len(), 10);
    assert_eq!(cfg.upstreams.len(), 3);
    assert_eq!(
        cfg.auth.jwt.as_ref().and_then(|j| j.secret.as_deref()),
        Some("s3cret")
    );
    assert_eq!(
        cfg.middleware.rate_limiting.route_limits.get("/auth/login"),
        Some(&10)
    );
    assert_eq!(cfg.middleware.rate_limiting.storage.type_, "Redis");
    assert_eq!(cfg.observability.logging.format, "json");

    let ws = std::fs::read_to_string(format!("{base}gateway-websocket.yaml")).expect("read");
    let cfg = GatewayConfig::from_yaml_str(&ws, &env).expect("websocket seed loads");
    assert!(cfg.websocket.enabled);
    assert_eq!(cfg.websocket.server.max_connections, 10_000);
    assert_eq!(
        cfg.websocket.integration.webhook.auth_token.as_deref(),
        Some("hook")
    );
    assert_eq!(
        cfg.websocket
            .routing
            .service_events
            .mappings
            .get("system.alert")
            .map(String::as_str),
        Some("admin")
    );
    assert!(cfg.routes[0].is_hub());
}

#[test]
fn env_overrides_win() {
    let mut cfg = GatewayConfig::from_yaml_str("server:\n  http_port: 1\n", &|_| None).expect("parse");
    cfg.apply_env(&env_of(&[
        ("GATEWAY_SERVER_HTTP_PORT", "18080"),
        ("GATEWAY_LOG_FORMAT", "json"),
        ("GATEWAY_METRICS_ENABLED", "false"),
        ("GATEWAY_ADMIN_TOKEN", "adm"),
    ]))
    .expect("env");
    assert_eq!(cfg.server.http_port, 18080);
    assert_eq!(cfg.observability.logging.format, "json");
    assert!(!cfg.observability.metrics.prometheus_enabled);
    assert_eq!(cfg.admin.token.as_deref(), Some("adm"));
    let err = cfg
        .apply_env(&env_of(&[("GATEWAY_ADMIN_PORT", "eighty")]))
        .expect_err("bad port");
    assert!(err.to_string().contains("GATEWAY_ADMIN_PORT"));
}

#[test]
fn rejects_wrongly_typed_values_with_a_path() {
    let err = GatewayConfig::from_yaml_str("server:\n  http_port: lots\n", &|_| None).expect_err("bad");
    assert!(err.to_string().contains("http_port"), "{err}");
}

#[test]
fn durations() {
    assert_eq!(parse_duration("500ms"), Ok(std::time::Duration::from_millis(500)));
    assert_eq!(parse_duration("24h"), Ok(std::time::Duration::from_secs(86400)));
    assert_eq!(parse_duration("0s"), Ok(std::time::Duration::ZERO));
    assert_eq!(parse_duration("15"), Ok(std::time::Duration::from_secs(15)));
    assert!(parse_duration("soon").is_err());
}

#[test]
fn inline_route_names_are_dns_labels() {
    let r = InlineRoute {
        path: "/api/v1/users/{id}".into(),
        methods: vec!["GET".into()],
        ..Default::default()
    };
    assert_eq!(inline::inline_route_name(&r), "get-api-v1-users-id");
}
