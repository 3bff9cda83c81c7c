//! `server.paths` and `server.headers`: how the gateway reads a request's path and which of
//! the client's header fields it lets through. The defaults are the safe reading: what the
//! gateway routes and authorises by is what the upstream receives, and the fields the gateway
//! owns reach the upstream in no other spelling.

use serde::Deserialize;

/// `server.paths`: which other spellings of a path are put in normal form, and which are
/// refused (400). Dot-segments and escaped unreserved characters are always resolved.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct PathsConfig {
    /// `//` is `/` (nginx's `merge_slashes on`, Envoy's `merge_slashes`). Default true.
    pub merge_slashes: bool,
    /// `%2F` and `%5C` in a path, and a raw `\`. Default `reject`.
    pub escaped_slashes: EscapedSlashes,
    /// `;` in a path (path parameters: `/a;jsessionid=1/b`, `/x/..;/admin`). Default `reject`.
    pub parameters: PathParameters,
}

impl Default for PathsConfig {
    fn default() -> Self {
        PathsConfig {
            merge_slashes: true,
            escaped_slashes: EscapedSlashes::Reject,
            parameters: PathParameters::Reject,
        }
    }
}

/// What is done with `%2F`, `%5C` (either case) and `\` in a path, after Envoy's
/// `path_with_escaped_slashes_action`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EscapedSlashes {
    /// Routed and forwarded as they are: one segment to the gateway, maybe two to the upstream.
    Keep,
    /// 400 `bad_request`.
    #[default]
    Reject,
    /// Made `/`, then routed and forwarded so.
    UnescapeAndForward,
    /// Made `/`, and the client is sent there with a 307.
    UnescapeAndRedirect,
}

/// What is done with `;` in a path.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PathParameters {
    /// Routed and forwarded as they are (`;` is then part of the segment to the gateway).
    Keep,
    /// 400 `bad_request`.
    #[default]
    Reject,
    /// Each segment loses its parameters (`/a;x/..;/b` is `/a/../b`, so `/b`), as Tomcat and
    /// Spring read them; the upstream receives the path without them.
    Strip,
}

/// `server.headers`: the client's header fields the gateway does not pass on.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct HeadersConfig {
    /// Fields whose name has a `_`. Default `drop`.
    pub underscores: Underscores,
    /// `X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override`. Default `strip`.
    pub method_override: MethodOverride,
}

/// What is done with a client's field whose name has a `_` (CGI, WSGI and older Rack read
/// `X_User_Id` as `X-User-Id`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Underscores {
    /// Every such field is dropped (nginx's `underscores_in_headers off`).
    #[default]
    Drop,
    /// Only those that name a field the gateway owns once `_` is read as `-` (`X_User_*`,
    /// `X_Forwarded_*`, `X_Request_ID`) are dropped.
    StripOwned,
    /// All are passed on.
    Keep,
}

/// What is done with the fields that ask an upstream to take the request as another method.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MethodOverride {
    /// Removed: the method the gateway routed and authorised is the one the upstream serves.
    #[default]
    Strip,
    /// Passed on.
    Keep,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::GatewayConfig;

    fn load(yaml: &str) -> Result<GatewayConfig, String> {
        GatewayConfig::from_yaml_str(yaml, &|_| None).map_err(|e| e.to_string())
    }

    #[test]
    fn the_defaults_are_the_safe_reading() {
        let cfg = load("server: {http_port: 8080}").expect("loads");
        assert_eq!(
            cfg.server.paths,
            PathsConfig {
                merge_slashes: true,
                escaped_slashes: EscapedSlashes::Reject,
                parameters: PathParameters::Reject,
            }
        );
        assert_eq!(
            cfg.server.headers,
            HeadersConfig {
                underscores: Underscores::Drop,
                method_override: MethodOverride::Strip,
            }
        );
    }

    #[test]
    fn every_choice_is_spelled_in_snake_case_and_a_typo_names_its_key() {
        let cfg = load(
            "server:\n  paths: {merge_slashes: false, escaped_slashes: unescape_and_redirect, parameters: strip}\n  \
             headers: {underscores: strip_owned, method_override: keep}\n",
        )
        .expect("loads");
        assert_eq!(
            cfg.server.paths,
            PathsConfig {
                merge_slashes: false,
                escaped_slashes: EscapedSlashes::UnescapeAndRedirect,
                parameters: PathParameters::Strip,
            }
        );
        assert_eq!(cfg.server.headers.underscores, Underscores::StripOwned);
        assert_eq!(cfg.server.headers.method_override, MethodOverride::Keep);
        for (yaml, key) in [
            (
                "server: {paths: {escaped_slashes: decode}}",
                "server.paths.escaped_slashes",
            ),
            ("server: {paths: {parameters: allow}}", "server.paths.parameters"),
            (
                "server: {headers: {underscores: on}}",
                "server.headers.underscores",
            ),
        ] {
            let err = load(yaml).expect_err(yaml);
            assert!(err.contains(key), "{yaml}: {err}");
        }
    }
}
