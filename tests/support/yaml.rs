//! Resource files for standalone gateways (the YAML `kubectl` would apply), and writing them
//! as editors and ConfigMap updates do.

use std::path::Path;

/// A `GatewayUpstream` in namespace default with static `endpoints`.
pub fn upstream_yaml(name: &str, endpoints: &[String]) -> String {
    let eps: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "apiVersion: gatehouse.dev/v1alpha1\nkind: GatewayUpstream\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  endpoints: [{}]\n",
        eps.join(", ")
    )
}

/// A `GatewayRoute` in namespace default; `extra` is more of its spec (one field a line).
pub fn route_yaml(name: &str, path: &str, upstream: &str, extra: &str) -> String {
    let mut s = format!(
        "apiVersion: gatehouse.dev/v1alpha1\nkind: GatewayRoute\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  path: \"{path}\"\n  upstream: {upstream}\n"
    );
    for line in extra.lines().filter(|l| !l.trim().is_empty()) {
        s.push_str("  ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

/// One upstream `svc` with the spec `upstream_spec` (indented lines) and one catch-all route
/// `all` to it with `route_extra` (indented lines) added to its spec.
pub fn resources(upstream_spec: &str, route_extra: &str) -> String {
    format!(
        "apiVersion: gatehouse.dev/v1alpha1\nkind: GatewayUpstream\nmetadata: {{name: svc, namespace: default}}\n\
         spec:\n{upstream_spec}\n---\napiVersion: gatehouse.dev/v1alpha1\nkind: GatewayRoute\n\
         metadata: {{name: all, namespace: default}}\nspec:\n  path: \"/*\"\n  upstream: svc\n{route_extra}\n"
    )
}

/// Writes a file atomically (write + rename), as editors and ConfigMap updates do.
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
