//! `compile(snapshot) -> table + verdicts`: pure, no I/O, no clock.
//!
//! A bad resource becomes a verdict (`Accepted=False` with a reason and a message), never an
//! error, and never a reason to drop the rest. The same verdicts feed `gatehouse check`, the
//! logs of the folder provider and the status writer of the controller.

mod channels;
mod error;
#[cfg(fuzzing)]
pub mod fuzzing;
#[cfg(all(test, not(fuzzing)))]
mod fuzzing;
pub mod gateway_api;
mod queue_url;
mod snapshot;
mod status;
mod tenancy;
mod tls;
mod upstreams;

pub use error::Invalid;
pub use snapshot::{GatewayApiObjects, Kind, ServiceEndpoints, ServicePort, Snapshot, Verdict};
pub use status::{satisfies, StatusLookup, StatusView};
pub use tenancy::Tenancy;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;

use crate::api::{reasons, types, Condition, CorsPolicy, GatewayRoute};
use crate::auth::AuthPolicy;
use crate::routing::{
    CorsRules, MethodSet, PathKind, PathPattern, RateKey, RateLimitPolicy, Rewrite, Route, RoutingTable,
    TableBuilder,
};
use crate::settings::parse_duration;

/// Gateway-wide settings that shape compiled routes.
#[derive(Clone, Debug, PartialEq)]
pub struct CompileOptions {
    /// Timeout of routes that set none.
    pub default_timeout: Option<Duration>,
    /// `middleware.cors`, used by routes without their own.
    pub default_cors: Option<CorsPolicy>,
    /// Paths the gateway answers itself (`/health`, `/ready`, the hub path).
    pub reserved_paths: Vec<String>,
    /// `auth.jwt`: the verifier of each table is built from it and `Snapshot::secrets`.
    pub jwt: Option<crate::auth::JwtSettings>,
    /// `server.tls.default_certificate`: the Secret (namespace, name) served without SNI.
    pub default_certificate: Option<(String, String)>,
    /// `websocket.channels` and friends: what undeclared channels and resources inherit.
    pub channels: crate::routing::ChannelDefaults,
    /// Who may claim hosts, channels and static endpoints, and where endpoints may point.
    pub tenancy: Tenancy,
    /// `websocket.integration.message_queue.url_secret_ref` (namespace filled in): the Secret
    /// key whose AMQP URL goes into `RoutingTable::queue_url`.
    pub queue_url_secret: Option<crate::settings::SecretKeyRef>,
    /// `gateway_api` (`None`: off): which GatewayClasses are ours and the address pool.
    pub gateway_api: Option<gateway_api::GatewayApiOptions>,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            default_timeout: Some(Duration::from_secs(30)),
            default_cors: None,
            reserved_paths: vec!["/health".into(), "/ready".into()],
            jwt: None,
            default_certificate: None,
            channels: Default::default(),
            tenancy: Tenancy::default(),
            queue_url_secret: None,
            gateway_api: None,
        }
    }
}

/// What `compile` produces.
#[derive(Debug, Default)]
pub struct Compiled {
    pub table: RoutingTable,
    pub verdicts: Vec<Verdict>,
    /// The status of the Gateway API objects this gateway owns.
    pub gateway_status: Vec<gateway_api::ApiStatus>,
    /// What the next compile may reuse (`compile_after`).
    pub cache: gateway_api::RouteCache,
}

/// Compiles a snapshot into a routing table and one verdict per resource.
pub fn compile(snapshot: &Snapshot, options: &CompileOptions) -> Compiled {
    compile_after(snapshot, options, None)
}

/// `compile`, given the snapshot of the last compile with the same options and the cache it
/// left: the plans of HTTPRoutes that are the same objects are reused when nothing else they
/// read changed. The result is the same as `compile`'s.
pub fn compile_after(
    snapshot: &Snapshot,
    options: &CompileOptions,
    prev: Option<(&Snapshot, &gateway_api::RouteCache)>,
) -> Compiled {
    let mut verdicts = Vec::new();
    let mut builder = TableBuilder::default();

    let upstreams = upstreams::compile_upstreams(snapshot, &options.tenancy, &mut verdicts);
    for u in upstreams.values().flatten() {
        builder.add_upstream(u.clone());
    }
    let mut certs = crate::tls::StoreBuilder::new(&snapshot.secrets);
    tls::upstream_settings(snapshot, &upstreams, &mut certs, &mut verdicts);

    let default_cors = options
        .default_cors
        .as_ref()
        .and_then(|c| compile_cors(c).ok())
        .map(Arc::new);

    // Oldest first: creationTimestamp, then namespace/name.
    let mut routes: Vec<&GatewayRoute> = snapshot.routes.iter().collect();
    routes.sort_by(|a, b| {
        let ka = (
            &a.metadata.creation_timestamp,
            a.metadata.namespace.as_deref(),
            a.metadata.name.as_deref(),
        );
        let kb = (
            &b.metadata.creation_timestamp,
            b.metadata.namespace.as_deref(),
            b.metadata.name.as_deref(),
        );
        ka.cmp(&kb)
    });

    // (host or "", normalized path) -> claims of accepted routes: methods and who holds them.
    let mut claims: HashMap<(String, String), Vec<(MethodSet, String)>> = HashMap::new();
    // Hosts: which namespaces hold them.
    let mut hosts_held = tenancy::HostClaims::new(&options.tenancy.hosts);
    for r in routes {
        let ns = r.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let name = r.metadata.name.clone().unwrap_or_default();
        let mut v = Verdict::new(Kind::GatewayRoute, &ns, &name, r.metadata.generation);
        let pattern = match PathPattern::parse(&r.spec.path) {
            Ok(p) => p,
            Err(msg) => {
                v.reject(reasons::INVALID_PATH, msg.to_string());
                verdicts.push(v);
                continue;
            }
        };
        let spec = match RouteParts::parse(r, &pattern, options, default_cors.as_ref()) {
            Ok(s) => s,
            Err(msg) => {
                v.reject(reasons::INVALID_SPEC, msg);
                verdicts.push(v);
                continue;
            }
        };
        // Hosts belong to a namespace (or the ones tenancy.hosts lists).
        let host_claims = tenancy::claims_of(&r.spec.hosts);
        if let Err((reason, msg)) = hosts_held.check(&ns, &host_claims) {
            v.reject(reason, msg);
            verdicts.push(v);
            continue;
        }
        // Conflicts: same host, same path shape, overlapping methods; the older one stays.
        let hosts: Vec<String> = if r.spec.hosts.is_empty() {
            vec![String::new()]
        } else {
            r.spec.hosts.iter().map(|h| h.to_ascii_lowercase()).collect()
        };
        let id = format!("{ns}/{name}");
        let conflict = hosts.iter().find_map(|h| {
            claims
                .get(&(h.clone(), pattern.normalized.clone()))
                .and_then(|c| c.iter().find(|(m, _)| m.intersects(spec.methods)))
                .map(|(_, holder)| (h.clone(), holder.clone()))
        });
        if let Some((host, holder)) = conflict {
            let host = if host.is_empty() {
                "any host".to_string()
            } else {
                format!("host {host}")
            };
            v.reject(
                reasons::CONFLICTED,
                format!(
                    "path {} on {host} with overlapping methods is already served by the older route {holder}",
                    r.spec.path
                ),
            );
            verdicts.push(v);
            continue;
        }
        for h in hosts {
            claims
                .entry((h, pattern.normalized.clone()))
                .or_default()
                .push((spec.methods, id.clone()));
        }
        hosts_held.record(&ns, &id, &host_claims);
        for h in r.spec.hosts.iter().map(|h| h.to_ascii_lowercase()) {
            builder.claim_host(&h, &ns);
            certs.claim_host(&h, &ns);
        }
        v.set(Condition::new(
            types::ACCEPTED,
            true,
            reasons::ACCEPTED,
            "route is valid",
        ));

        let upstream_key = format!("{ns}/{}", r.spec.upstream);
        let upstream = match upstreams.get(&upstream_key) {
            Some(Some(u)) => u.clone(),
            Some(None) => {
                v.set(Condition::new(
                    types::RESOLVED_REFS,
                    false,
                    reasons::UPSTREAM_NOT_ACCEPTED,
                    format!("GatewayUpstream {upstream_key} is not accepted; see its status"),
                ));
                v.set(not_programmed("its upstream is not accepted"));
                verdicts.push(v);
                continue;
            }
            None => {
                v.set(Condition::new(
                    types::RESOLVED_REFS,
                    false,
                    reasons::UPSTREAM_NOT_FOUND,
                    format!("GatewayUpstream {upstream_key} does not exist"),
                ));
                v.set(not_programmed("its upstream does not exist"));
                verdicts.push(v);
                continue;
            }
        };
        v.set(Condition::new(
            types::RESOLVED_REFS,
            true,
            reasons::RESOLVED_REFS,
            "upstream found",
        ));
        tls::route_certificate(&mut certs, r, &ns, &mut v);
        if pattern.kind == PathKind::Exact && options.reserved_paths.contains(&pattern.raw) {
            v.set(not_programmed(&format!(
                "{} is answered by the gateway itself",
                pattern.raw
            )));
            verdicts.push(v);
            continue;
        }
        let route = Route {
            id,
            namespace: ns,
            name,
            path: r.spec.path.clone(),
            hosts: r.spec.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            methods: spec.methods,
            upstream,
            timeout: spec.timeout,
            auth: spec.auth,
            rate_limit: spec.rate_limit,
            cors: spec.cors,
            rewrite: spec.rewrite,
            websocket: r.spec.websocket,
            tls_secret: r.spec.tls.as_ref().map(|t| t.secret_name.clone()),
            gateway: None,
            series: Default::default(),
        };
        builder.add(Arc::new(route), &pattern);
        v.set(Condition::new(
            types::PROGRAMMED,
            true,
            reasons::PROGRAMMED,
            "live in the routing table",
        ));
        verdicts.push(v);
    }

    let declared = channels::compile_channels(snapshot, &options.channels, &options.tenancy, &mut verdicts);
    let mut table = builder.build();
    table.egress = options.tenancy.egress.clone();
    table.channels = Arc::new(crate::routing::ChannelTable::build(&options.channels, &declared));
    table.auth = options
        .jwt
        .as_ref()
        .map(|jwt| Arc::new(crate::auth::Verifier::new(jwt, &snapshot.secrets)));
    if let Some((ns, name)) = &options.default_certificate {
        certs.set_default(ns, name);
    }
    table.tls = certs.build();
    table.queue_url = options
        .queue_url_secret
        .as_ref()
        .map(|r| queue_url::resolve(r, &snapshot.secrets));
    let mut gateway_status = Vec::new();
    let mut cache = gateway_api::RouteCache::default();
    if let Some(gw) = &options.gateway_api {
        let out = gateway_api::compile(snapshot, options, gw, &table, prev);
        for u in out.upstreams {
            table.upstreams.insert(u.key.clone(), u);
        }
        table.listeners = Arc::new(out.listeners);
        gateway_status = out.status;
        cache = out.cache;
    }
    Compiled {
        table,
        verdicts,
        gateway_status,
        cache,
    }
}

fn not_programmed(why: &str) -> Condition {
    Condition::new(
        types::PROGRAMMED,
        false,
        reasons::NOT_PROGRAMMED,
        format!("not in the routing table: {why}"),
    )
}

/// The parts of a route spec that need parsing.
struct RouteParts {
    methods: MethodSet,
    timeout: Option<Duration>,
    auth: AuthPolicy,
    rate_limit: Option<RateLimitPolicy>,
    cors: Option<Arc<CorsRules>>,
    rewrite: Option<Rewrite>,
}

impl RouteParts {
    fn parse(
        r: &GatewayRoute,
        pattern: &PathPattern,
        options: &CompileOptions,
        default_cors: Option<&Arc<CorsRules>>,
    ) -> Result<Self, Invalid> {
        let s = &r.spec;
        let methods = MethodSet::parse(&s.methods)?;
        for h in &s.hosts {
            validate_host(h)?;
        }
        if s.upstream.is_empty() {
            return Err("upstream must name a GatewayUpstream".into());
        }
        let timeout = match &s.timeout {
            Some(t) => {
                let d = parse_duration(t).map_err(|e| format!("timeout: {e}"))?;
                (!d.is_zero()).then_some(d)
            }
            None => options.default_timeout,
        };
        let rate_limit = match &s.rate_limit {
            None => None,
            Some(rl) => {
                let window = parse_duration(&rl.window).map_err(|e| format!("rateLimit.window: {e}"))?;
                if window.is_zero() || rl.requests == 0 {
                    return Err("rateLimit needs requests > 0 and a window > 0".into());
                }
                Some(RateLimitPolicy {
                    requests: rl.requests,
                    window,
                    key: parse_rate_key(rl.key.as_deref())?,
                })
            }
        };
        let cors = match &s.cors {
            Some(c) => Some(Arc::new(compile_cors(c).map_err(|e| format!("cors: {e}"))?)),
            None => default_cors.cloned(),
        };
        let rewrite = match &s.rewrite_prefix {
            None => None,
            Some(p) if p.starts_with('/') => Some(Rewrite {
                static_prefix: pattern.static_prefix.clone(),
                replacement: p.clone(),
            }),
            Some(p) => return Err(Invalid::Field(format!("rewritePrefix `{p}` must start with '/'"))),
        };
        if s.required_roles
            .iter()
            .chain(&s.required_permissions)
            .any(|x| x.trim().is_empty())
        {
            return Err("requiredRoles and requiredPermissions may not contain empty names".into());
        }
        let auth = AuthPolicy {
            required: s.auth_required || !s.required_roles.is_empty() || !s.required_permissions.is_empty(),
            roles: s.required_roles.clone(),
            permissions: s.required_permissions.clone(),
        };
        Ok(RouteParts {
            methods,
            timeout,
            auth,
            rate_limit,
            cors,
            rewrite,
        })
    }
}

fn validate_host(h: &str) -> Result<(), Invalid> {
    let body = h.strip_prefix("*.").unwrap_or(h);
    let ok = !body.is_empty()
        && body.len() <= 253
        && body.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(Invalid::Field(format!(
            "host `{h}` is not a DNS name (wildcards only as a leading `*.`)"
        )))
    }
}

/// Parses a rate-limit key: `ip` (default), `user` or `header:NAME`.
pub fn parse_rate_key(key: Option<&str>) -> Result<RateKey, Invalid> {
    match key.map(str::trim) {
        None | Some("") | Some("ip") => Ok(RateKey::Ip),
        Some("user") => Ok(RateKey::User),
        Some(k) => match k.strip_prefix("header:") {
            Some(name) => http::HeaderName::from_bytes(name.trim().as_bytes())
                .map(RateKey::Header)
                .map_err(|_| Invalid::Field(format!("rateLimit.key: `{name}` is not a header name"))),
            None => Err(Invalid::Field(format!(
                "rateLimit.key `{k}` must be ip, user or header:NAME"
            ))),
        },
    }
}

/// Compiles a CORS policy into ready-to-send header values.
pub fn compile_cors(c: &CorsPolicy) -> Result<CorsRules, Invalid> {
    let any_origin = c.allowed_origins.iter().any(|o| o == "*");
    if any_origin && c.allow_credentials {
        return Err("allowedOrigins `*` cannot be combined with allowCredentials".into());
    }
    let methods = if c.allowed_methods.is_empty() {
        "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS".to_string()
    } else {
        MethodSet::parse(&c.allowed_methods)?;
        c.allowed_methods
            .iter()
            .map(|m| m.trim().to_ascii_uppercase())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let value = |v: String| {
        HeaderValue::from_str(&v).map_err(|_| Invalid::Field(format!("`{v}` is not a valid header value")))
    };
    let list = |v: &[String]| -> Result<Option<HeaderValue>, Invalid> {
        if v.is_empty() {
            Ok(None)
        } else {
            value(v.join(", ")).map(Some)
        }
    };
    Ok(CorsRules {
        any_origin,
        origins: c.allowed_origins.iter().filter(|o| *o != "*").cloned().collect(),
        allow_methods: value(methods)?,
        allow_headers: list(&c.allowed_headers)?,
        expose_headers: list(&c.exposed_headers)?,
        max_age: c.max_age.map(HeaderValue::from),
        allow_credentials: c.allow_credentials,
    })
}

#[cfg(test)]
mod tests;
