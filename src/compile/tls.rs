//! TLS references of routes and upstreams: certificates served by SNI, CAs for upstreams.
//! Problems are `ResolvedRefs=False` conditions; the route or upstream stays programmed.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Kind, Snapshot, Verdict};
use crate::api::{types, Condition, GatewayRoute};
use crate::tls::StoreBuilder;
use crate::upstream::{Protocol, Upstream};

/// Serves the route's `tls.secretName` for its hosts; a missing or bad Secret is a condition.
pub(super) fn route_certificate(certs: &mut StoreBuilder<'_>, r: &GatewayRoute, ns: &str, v: &mut Verdict) {
    let Some(tls) = &r.spec.tls else { return };
    let hosts: Vec<String> = r.spec.hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
    if let Err((reason, msg)) = certs.add_route(ns, &tls.secret_name, &hosts) {
        v.set(Condition::new(
            types::RESOLVED_REFS,
            false,
            reason,
            format!("{msg}; HTTPS clients of its hosts get the default certificate"),
        ));
    }
}

/// Registers the TLS settings of accepted `https` upstreams, each under its own name: two
/// upstreams listing one endpoint each connect to it with their own CA and server name.
pub(super) fn upstream_settings(
    snapshot: &Snapshot,
    upstreams: &BTreeMap<String, Option<Arc<Upstream>>>,
    certs: &mut StoreBuilder<'_>,
    verdicts: &mut [Verdict],
) {
    for u in &snapshot.upstreams {
        let ns = u.metadata.namespace.as_deref().unwrap_or("default");
        let name = u.metadata.name.as_deref().unwrap_or_default();
        let Some(Some(up)) = upstreams.get(&format!("{ns}/{name}")) else {
            continue;
        };
        if up.protocol != Protocol::Https
            && !up.endpoints.iter().any(|e| e.scheme == http::uri::Scheme::HTTPS)
        {
            continue;
        }
        let tls = u.spec.tls.clone().unwrap_or_default();
        let result = certs.add_upstream(
            ns,
            tls.ca_secret_name.as_deref(),
            tls.server_name.as_deref(),
            &up.key,
        );
        if let Err((reason, msg)) = result {
            if let Some(v) = verdicts
                .iter_mut()
                .find(|v| v.kind == Kind::GatewayUpstream && v.namespace == ns && v.name == name)
            {
                v.set(Condition::new(types::RESOLVED_REFS, false, reason, msg));
            }
        }
    }
}
