//! Upstream compilation: spec validation, endpoint resolution and policies.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Invalid, Kind, Snapshot, Tenancy, Verdict};
use crate::api::{reasons, types, Condition, EndpointCounts, GatewayUpstream};
use crate::settings::parse_duration;
use crate::upstream::{
    Balancer, BreakerPolicy, Endpoint, HashOn, HealthCheckPolicy, Protocol, RetryPolicy, Upstream,
};

/// Compiles every upstream: `Some` when accepted, `None` when rejected (routes say so).
pub(super) fn compile_upstreams(
    snapshot: &Snapshot,
    tenancy: &Tenancy,
    verdicts: &mut Vec<Verdict>,
) -> BTreeMap<String, Option<Arc<Upstream>>> {
    let mut out = BTreeMap::new();
    for u in &snapshot.upstreams {
        let ns = u.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let name = u.metadata.name.clone().unwrap_or_default();
        let key = format!("{ns}/{name}");
        let mut v = Verdict::new(Kind::GatewayUpstream, &ns, &name, u.metadata.generation);
        match compile_one(u, &key, &ns, snapshot, tenancy, &mut v) {
            Ok(mut up) => {
                up.egress = tenancy.egress.clone();
                let n = up.endpoints.len() as u32;
                v.endpoints = Some(EndpointCounts { total: n, healthy: n });
                v.set(if n > 0 {
                    Condition::new(
                        types::READY,
                        true,
                        reasons::ENDPOINTS_AVAILABLE,
                        format!("{n} endpoint(s)"),
                    )
                } else {
                    Condition::new(
                        types::READY,
                        false,
                        reasons::NO_ENDPOINTS,
                        "no endpoints: requests get 503",
                    )
                });
                out.insert(key, Some(Arc::new(up)));
            }
            Err(e) => {
                v.reject(e.reason(), e);
                out.insert(key, None);
            }
        }
        verdicts.push(v);
    }
    out
}

fn compile_one(
    u: &GatewayUpstream,
    key: &str,
    ns: &str,
    snapshot: &Snapshot,
    tenancy: &Tenancy,
    v: &mut Verdict,
) -> Result<Upstream, Invalid> {
    let s = &u.spec;
    let protocol = match s.protocol.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("http") => Protocol::Http,
        Some("h2c") => Protocol::H2c,
        Some("https") => Protocol::Https,
        Some(p) => {
            return Err(Invalid::Field(format!(
                "protocol `{p}` must be http, h2c or https"
            )))
        }
    };
    let balancer = match &s.load_balancer {
        None => Balancer::RoundRobin,
        Some(lb) => match lb.type_.as_str() {
            "RoundRobin" => Balancer::RoundRobin,
            "LeastRequest" => Balancer::LeastRequest,
            "Random" => Balancer::Random,
            "ConsistentHash" => Balancer::ConsistentHash(parse_hash_on(lb.hash_on.as_deref())?),
            t => {
                return Err(Invalid::Field(format!(
                    "loadBalancer.type `{t}` must be RoundRobin, LeastRequest, Random or ConsistentHash"
                )))
            }
        },
    };
    let dur = |field: &str, v: Option<&String>| -> Result<Option<std::time::Duration>, Invalid> {
        v.map(|s| parse_duration(s).map_err(|e| Invalid::Field(format!("{field}: {e}"))))
            .transpose()
    };
    let connect_timeout = dur("connectTimeout", s.connect_timeout.as_ref())?;
    let health_check = match &s.health_check {
        None => None,
        Some(h) => Some(HealthCheckPolicy {
            path: h.path.clone().unwrap_or_else(|| "/health".into()),
            interval: dur("healthCheck.interval", h.interval.as_ref())?
                .unwrap_or(std::time::Duration::from_secs(10)),
            timeout: dur("healthCheck.timeout", h.timeout.as_ref())?
                .unwrap_or(std::time::Duration::from_secs(2)),
            healthy_threshold: h.healthy_threshold.unwrap_or(2).max(1),
            unhealthy_threshold: h.unhealthy_threshold.unwrap_or(3).max(1),
        }),
    };
    if let Some(h) = &health_check {
        if !h.path.starts_with('/') {
            return Err(Invalid::Field(format!(
                "healthCheck.path `{}` must start with '/'",
                h.path
            )));
        }
    }
    let circuit_breaker = match &s.circuit_breaker {
        None => None,
        Some(c) => Some(BreakerPolicy {
            failure_threshold: c.failure_threshold.unwrap_or(5).max(1),
            open_for: dur("circuitBreaker.timeout", c.timeout.as_ref())?
                .unwrap_or(std::time::Duration::from_secs(30)),
            success_threshold: c.success_threshold.unwrap_or(1).max(1),
        }),
    };
    let retries = match &s.retries {
        None => None,
        Some(r) => {
            for cond in &r.retry_on {
                if !matches!(
                    cond.as_str(),
                    "connect-failure" | "gateway-error" | "5xx" | "reset" | "timeout"
                ) {
                    return Err(Invalid::Field(format!(
                        "retries.retryOn `{cond}` must be connect-failure, gateway-error, 5xx, reset or timeout"
                    )));
                }
            }
            Some(RetryPolicy {
                attempts: r.attempts,
                retry_on: r.retry_on.clone(),
            })
        }
    };
    let endpoints = match (&s.service, s.endpoints.is_empty()) {
        (Some(_), false) => return Err("set exactly one of service and endpoints, not both".into()),
        (None, true) => return Err("set exactly one of service and endpoints".into()),
        (None, false) => {
            let endpoints = s
                .endpoints
                .iter()
                .map(|e| Endpoint::parse(e, protocol))
                .collect::<Result<Vec<_>, _>>()?;
            if !tenancy.static_endpoints_allowed(ns) {
                return Err(Invalid::NotPermitted(format!(
                    "static endpoints are not allowed in namespace {ns}: use service, or list the namespace under tenancy.static_endpoints.namespaces"
                )));
            }
            for e in &endpoints {
                let (host, port) = e.host_port();
                tenancy
                    .egress
                    .check_endpoint(host, port)
                    .map_err(|r| Invalid::NotPermitted(format!("endpoint `{}`: {r}", e.url)))?;
            }
            v.set(Condition::new(
                types::RESOLVED_REFS,
                true,
                reasons::RESOLVED_REFS,
                "static endpoints",
            ));
            endpoints
        }
        (Some(svc), true) => {
            if svc.name.is_empty() {
                return Err("service.name is empty".into());
            }
            let svc_key = format!("{ns}/{}", svc.name);
            match snapshot.services.get(&svc_key) {
                None => {
                    v.set(Condition::new(
                        types::RESOLVED_REFS,
                        false,
                        reasons::SERVICE_NOT_FOUND,
                        format!("Service {svc_key} not found"),
                    ));
                    Vec::new()
                }
                Some(found) => {
                    let port = found.ports.iter().find(|p| match &svc.port {
                        IntOrString::Int(n) => i32::from(p.port) == *n,
                        IntOrString::String(name) => p.name.as_deref() == Some(name.as_str()),
                    });
                    match port {
                        None => {
                            v.set(Condition::new(
                                types::RESOLVED_REFS,
                                false,
                                reasons::SERVICE_NOT_FOUND,
                                format!("Service {svc_key} has no port {:?}", svc.port),
                            ));
                            Vec::new()
                        }
                        Some(p) => {
                            v.set(Condition::new(
                                types::RESOLVED_REFS,
                                true,
                                reasons::RESOLVED_REFS,
                                "Service found",
                            ));
                            let scheme = if protocol == Protocol::Https {
                                "https"
                            } else {
                                "http"
                            };
                            p.addresses
                                .iter()
                                .map(|a| {
                                    let host = if a.contains(':') {
                                        format!("[{a}]")
                                    } else {
                                        a.clone()
                                    };
                                    Endpoint::parse(&format!("{scheme}://{host}:{}", p.target_port), protocol)
                                })
                                .collect::<Result<Vec<_>, _>>()?
                        }
                    }
                }
            }
        }
    };
    v.set(Condition::new(
        types::ACCEPTED,
        true,
        reasons::ACCEPTED,
        "upstream is valid",
    ));
    Ok(Upstream::new(
        key.to_string(),
        protocol,
        endpoints,
        balancer,
        connect_timeout,
        health_check,
        circuit_breaker,
        retries,
    ))
}

fn parse_hash_on(h: Option<&str>) -> Result<HashOn, Invalid> {
    match h.map(str::trim) {
        None | Some("") | Some("ip") => Ok(HashOn::Ip),
        Some(x) => {
            if let Some(name) = x.strip_prefix("header:") {
                http::HeaderName::from_bytes(name.as_bytes())
                    .map(HashOn::Header)
                    .map_err(|_| {
                        Invalid::Field(format!("loadBalancer.hashOn: `{name}` is not a header name"))
                    })
            } else if let Some(claim) = x.strip_prefix("claim:").filter(|c| !c.is_empty()) {
                Ok(HashOn::Claim(claim.to_string()))
            } else {
                Err(Invalid::Field(format!(
                    "loadBalancer.hashOn `{x}` must be ip, header:NAME or claim:NAME"
                )))
            }
        }
    }
}
