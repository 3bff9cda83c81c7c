//! The index. Exact paths are one hash lookup; templated and prefix paths live in a segment
//! trie searched depth-first (static child before parameter child) without allocating.
//!
//! Precedence, as the SPEC orders it: a route with a matching host beats one without (exact
//! host, then the longest wildcard host, then any host); within a host, exact path over
//! templated over prefix, and among prefixes the longest. When a path matches but the method
//! does not, the search goes on to the next match; only when no match takes the method is the
//! answer 405 with the union of their methods.
//!
//! A host belongs to the namespaces that claimed it (compile decides who may): a request for a
//! claimed host that none of their routes takes goes on to wildcard and host-less routes of
//! those namespaces only, never to another namespace's.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use http::Method;

use super::path::{PathKind, PathPattern, Segment};
use super::{MethodSet, Route};
use crate::upstream::Upstream;
use crate::wire::{lowercase_host, strip_port};

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The result of a lookup.
#[derive(Debug)]
pub enum Lookup<'a> {
    Found(&'a Arc<Route>),
    /// A path matched but no match takes this method; the set is for `Allow`.
    MethodNotAllowed(MethodSet),
    NotFound,
}

/// An immutable routing table.
#[derive(Debug, Default)]
pub struct RoutingTable {
    routes: Vec<Arc<Route>>,
    any_host: PathIndex,
    exact_hosts: Map<Box<str>, PathIndex>,
    /// `(".example.com", index)` for `*.example.com`, longest suffix first.
    wildcard_hosts: Vec<(Box<str>, PathIndex)>,
    /// The namespace (an index into `namespaces`) of each route.
    route_ns: Vec<u32>,
    namespaces: Vec<Box<str>>,
    /// Accepted upstreams by `namespace/name`.
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
    /// The JWT verifier built with this table (`None` without `auth.jwt`).
    pub auth: Option<Arc<crate::auth::Verifier>>,
    /// Certificates for the HTTPS listener and TLS settings towards upstreams.
    pub tls: crate::tls::CertStore,
    /// WebSocket channel policies compiled with this table.
    pub channels: Arc<super::ChannelTable>,
    /// Where upstream connections may go (checked when one is opened).
    pub egress: Arc<crate::upstream::Egress>,
    /// `websocket.integration.message_queue.url_secret_ref` read from its Secret (`None`
    /// without one); the RabbitMQ intake connects to it.
    pub queue_url: Option<SecretUrl>,
    /// The sockets of the Gateway API Gateways, each with its own (strict) table.
    pub listeners: Arc<super::GatewayListeners>,
    /// A Gateway listener's table: only the most specific host is searched, and a path whose
    /// routes take other methods is not found (no 405).
    strict: bool,
}

/// A URL read from a Secret (credentials inside), or why none could be. Its `Debug` never
/// shows the URL.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretUrl {
    Ready(Arc<str>),
    Problem(String),
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretUrl::Ready(_) => f.write_str("Ready(***)"),
            SecretUrl::Problem(p) => f.debug_tuple("Problem").field(p).finish(),
        }
    }
}

#[derive(Debug, Default)]
struct PathIndex {
    exact: Map<Box<str>, Vec<u32>>,
    nodes: Vec<Node>,
    /// The namespaces that claimed this host (sorted).
    owners: Vec<u32>,
}

#[derive(Debug, Default)]
struct Node {
    statics: Map<Box<str>, u32>,
    param: Option<u32>,
    /// Templated routes ending here.
    template: Vec<u32>,
    /// Prefix routes whose `/*` stands here.
    prefix: Vec<u32>,
    depth: u16,
    params: u16,
}

/// Prefix candidates collected on one lookup; more than this many nested prefix routes along
/// one path is not a real configuration, and the extra (shortest) ones are not considered.
const MAX_PREFIX_CANDIDATES: usize = 16;

struct Search<'t> {
    routes: &'t [Arc<Route>],
    route_ns: &'t [u32],
    /// When the host is claimed: its owners, the only namespaces whose routes may answer.
    allowed: Option<&'t [u32]>,
    method: MethodSet,
    allow: MethodSet,
    matched: bool,
    /// The request's headers and query, for the matches of Gateway API rules.
    headers: Option<&'t http::HeaderMap>,
    query: Option<&'t str>,
}

impl Search<'_> {
    /// First route in `ids` (oldest first) that takes the method.
    fn pick(&mut self, ids: &[u32]) -> Option<u32> {
        for &id in ids {
            if let Some(owners) = self.allowed {
                if !owners.contains(&self.route_ns[id as usize]) {
                    continue;
                }
            }
            let r = &self.routes[id as usize];
            if let Some(g) = &r.gateway {
                let ok = match self.headers {
                    Some(h) => g.matches(h, self.query),
                    None => g.headers.is_empty() && g.query.is_empty(),
                };
                if !ok {
                    continue;
                }
            }
            if r.methods.contains(self.method) {
                return Some(id);
            }
            self.matched = true;
            self.allow = self.allow.union(r.methods);
        }
        None
    }
}

impl PathIndex {
    fn node(&mut self, parent: u32, seg: &Segment) -> u32 {
        let next = self.nodes.len() as u32;
        let (depth, params) = {
            let p = &self.nodes[parent as usize];
            (
                p.depth + 1,
                p.params + u16::from(matches!(seg, Segment::Param(_))),
            )
        };
        let p = &mut self.nodes[parent as usize];
        let slot = match seg {
            Segment::Static(s) => *p.statics.entry(s.as_str().into()).or_insert(next),
            Segment::Param(_) => *p.param.get_or_insert(next),
        };
        if slot == next {
            self.nodes.push(Node {
                depth,
                params,
                ..Node::default()
            });
        }
        slot
    }

    fn insert(&mut self, pattern: &PathPattern, id: u32) {
        if pattern.kind == PathKind::Exact {
            self.exact
                .entry(pattern.normalized.as_str().into())
                .or_default()
                .push(id);
            return;
        }
        if self.nodes.is_empty() {
            self.nodes.push(Node::default());
        }
        let mut at = 0u32;
        for seg in &pattern.segments {
            at = self.node(at, seg);
        }
        let node = &mut self.nodes[at as usize];
        match pattern.kind {
            PathKind::Prefix => node.prefix.push(id),
            _ => node.template.push(id),
        }
    }

    fn find(&self, path: &str, s: &mut Search<'_>) -> Option<u32> {
        if let Some(ids) = self.exact.get(path) {
            if let Some(id) = s.pick(ids) {
                return Some(id);
            }
        }
        if self.nodes.is_empty() {
            return None;
        }
        let segs = path.strip_prefix('/').unwrap_or(path).split('/');
        let segs_empty = path.len() <= 1;
        if let Some(id) = self.find_template(0, segs.clone(), segs_empty, s) {
            return Some(id);
        }
        let mut cands = [(0u16, 0u16, 0u32); MAX_PREFIX_CANDIDATES];
        let mut n = 0usize;
        self.collect_prefixes(0, segs, segs_empty, &mut cands, &mut n);
        let cands = &mut cands[..n];
        // Longest first; at equal length the one with fewer parameters.
        cands.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for &(_, _, node) in cands.iter() {
            if let Some(id) = s.pick(&self.nodes[node as usize].prefix) {
                return Some(id);
            }
        }
        None
    }

    fn find_template(
        &self,
        at: u32,
        mut segs: std::str::Split<'_, char>,
        done: bool,
        s: &mut Search<'_>,
    ) -> Option<u32> {
        let node = &self.nodes[at as usize];
        let seg = if done { None } else { segs.next() };
        let Some(seg) = seg else {
            return if node.template.is_empty() {
                None
            } else {
                s.pick(&node.template)
            };
        };
        if let Some(&child) = node.statics.get(seg) {
            if let Some(id) = self.find_template(child, segs.clone(), false, s) {
                return Some(id);
            }
        }
        match node.param {
            Some(child) if !seg.is_empty() => self.find_template(child, segs, false, s),
            _ => None,
        }
    }

    fn collect_prefixes(
        &self,
        at: u32,
        mut segs: std::str::Split<'_, char>,
        done: bool,
        cands: &mut [(u16, u16, u32); MAX_PREFIX_CANDIDATES],
        n: &mut usize,
    ) {
        let node = &self.nodes[at as usize];
        if !node.prefix.is_empty() {
            if *n < MAX_PREFIX_CANDIDATES {
                cands[*n] = (node.depth, node.params, at);
                *n += 1;
            } else if let Some(min) = cands.iter_mut().min_by_key(|c| c.0) {
                if min.0 < node.depth {
                    *min = (node.depth, node.params, at);
                }
            }
        }
        let seg = if done { None } else { segs.next() };
        let Some(seg) = seg else { return };
        if let Some(&child) = node.statics.get(seg) {
            self.collect_prefixes(child, segs.clone(), false, cands, n);
        }
        if let Some(child) = node.param {
            if !seg.is_empty() {
                self.collect_prefixes(child, segs, false, cands, n);
            }
        }
    }
}

impl RoutingTable {
    /// Finds the route for a request. `host` may carry a port, any case and the trailing dot of
    /// a fully qualified name.
    pub fn lookup(&self, host: Option<&str>, path: &str, method: &Method) -> Lookup<'_> {
        self.lookup_request(host, path, method, None, None)
    }

    /// [`Self::lookup`] with the request's headers and query, which the rules of Gateway API
    /// HTTPRoutes may match on (without them, such rules match only when they have no header
    /// or query matches).
    pub fn lookup_request<'t>(
        &'t self,
        host: Option<&str>,
        path: &str,
        method: &Method,
        headers: Option<&'t http::HeaderMap>,
        query: Option<&'t str>,
    ) -> Lookup<'t> {
        let mut s = Search {
            routes: &self.routes,
            route_ns: &self.route_ns,
            allowed: None,
            method: MethodSet::of(method),
            allow: MethodSet::EMPTY,
            matched: false,
            headers,
            query,
        };
        if self.strict {
            return self.lookup_strict(host, path, &mut s);
        }
        let host = host.map(strip_port).map(|h| h.strip_suffix('.').unwrap_or(h));
        // The owners of the most specific claim of the host, once its own routes are searched.
        let mut owners: Option<&[u32]> = None;
        if let Some(host) = host.filter(|h| !h.is_empty()) {
            if !self.exact_hosts.is_empty() || !self.wildcard_hosts.is_empty() {
                let host = lowercase_host(host);
                let host = host.as_ref();
                if let Some(idx) = self.exact_hosts.get(host) {
                    if let Some(id) = idx.find(path, &mut s) {
                        return Lookup::Found(&self.routes[id as usize]);
                    }
                    owners = Some(&idx.owners);
                }
                for (suffix, idx) in &self.wildcard_hosts {
                    if host.len() > suffix.len() && host.ends_with(&**suffix) {
                        s.allowed = owners;
                        if let Some(id) = idx.find(path, &mut s) {
                            return Lookup::Found(&self.routes[id as usize]);
                        }
                        owners = owners.or(Some(&idx.owners));
                    }
                }
            }
        }
        s.allowed = owners;
        if let Some(id) = self.any_host.find(path, &mut s) {
            return Lookup::Found(&self.routes[id as usize]);
        }
        if s.matched {
            Lookup::MethodNotAllowed(s.allow)
        } else {
            Lookup::NotFound
        }
    }

    /// A Gateway listener's lookup: the exact host's index if there is one, else the longest
    /// wildcard that covers the host, else the host-less routes; never more than one of them.
    fn lookup_strict<'t>(&'t self, host: Option<&str>, path: &str, s: &mut Search<'t>) -> Lookup<'t> {
        let host = host.map(strip_port).map(|h| h.strip_suffix('.').unwrap_or(h));
        let mut idx = &self.any_host;
        if let Some(host) = host.filter(|h| !h.is_empty()) {
            let host = lowercase_host(host);
            let host = host.as_ref();
            if let Some(i) = self.exact_hosts.get(host) {
                idx = i;
            } else if let Some((_, i)) = self
                .wildcard_hosts
                .iter()
                .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(&**suffix))
            {
                idx = i;
            }
        }
        match idx.find(path, s) {
            Some(id) => Lookup::Found(&self.routes[id as usize]),
            None => Lookup::NotFound,
        }
    }

    /// Whether this is a Gateway listener's table.
    pub fn is_strict(&self) -> bool {
        self.strict
    }

    /// Programmed routes, in the order they were added (oldest first).
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// What `gatehouse check` and the logs say about this table's key set.
    pub fn auth_report(&self) -> crate::auth::Report {
        let protected = self.routes.iter().filter(|r| r.auth.required).count();
        crate::auth::report(self.auth.as_deref(), protected)
    }
}

/// Builds a table; routes must be added oldest first (that is the order among equals).
#[derive(Default)]
pub struct TableBuilder {
    table: RoutingTable,
    ns_ids: HashMap<Box<str>, u32>,
}

impl TableBuilder {
    /// A builder of a Gateway listener's table (see [`RoutingTable::is_strict`]).
    pub fn strict() -> Self {
        let mut b = TableBuilder::default();
        b.table.strict = true;
        b
    }

    pub fn add(&mut self, route: Arc<Route>, pattern: &PathPattern) {
        let id = self.table.routes.len() as u32;
        let ns = self.ns_id(&route.namespace);
        if route.hosts.is_empty() {
            self.table.any_host.insert(pattern, id);
        }
        for host in &route.hosts {
            self.host_index(host, ns).insert(pattern, id);
        }
        self.table.route_ns.push(ns);
        self.table.routes.push(route);
    }

    /// Records that `namespace` owns `host` (`*.` wildcards allowed), whether or not a route
    /// of it is programmed: requests for the host never go on to another namespace's routes.
    pub fn claim_host(&mut self, host: &str, namespace: &str) {
        let ns = self.ns_id(namespace);
        self.host_index(host, ns);
    }

    fn ns_id(&mut self, namespace: &str) -> u32 {
        if let Some(id) = self.ns_ids.get(namespace) {
            return *id;
        }
        let id = self.table.namespaces.len() as u32;
        self.table.namespaces.push(namespace.into());
        self.ns_ids.insert(namespace.into(), id);
        id
    }

    /// The index of `host`, made if new, with `ns` among its owners.
    fn host_index(&mut self, host: &str, ns: u32) -> &mut PathIndex {
        let host = host.to_ascii_lowercase();
        let idx = if let Some(suffix) = host.strip_prefix('*') {
            let t = &mut self.table.wildcard_hosts;
            let i = match t.iter().position(|(s, _)| **s == *suffix) {
                Some(i) => i,
                None => {
                    t.push((suffix.into(), PathIndex::default()));
                    t.len() - 1
                }
            };
            &mut t[i].1
        } else {
            self.table.exact_hosts.entry(host.into()).or_default()
        };
        if let Err(at) = idx.owners.binary_search(&ns) {
            idx.owners.insert(at, ns);
        }
        idx
    }

    pub fn add_upstream(&mut self, upstream: Arc<Upstream>) {
        self.table.upstreams.insert(upstream.key.clone(), upstream);
    }

    pub fn build(mut self) -> RoutingTable {
        self.table
            .wildcard_hosts
            .sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        self.table
    }
}

#[cfg(test)]
mod tests;
