//! The filters of an HTTPRoute rule (header modifiers, redirect, rewrite) compiled, and the
//! path rules the CRD's validation would enforce.

use http::{HeaderName, HeaderValue, StatusCode};

use super::refs::valid_hostname;
use crate::api::gateway_api::HTTPRouteFilter;
use crate::routing::gateway::{GatewayRule, HeaderEdit, PathModifier, Redirect, UrlRewrite};

/// The path rules of the CRD: absolute, no `//`, `/./`, `/../`, `%2f`, `#`, at most 1024.
pub(super) fn check_path(v: &str) -> Result<(), String> {
    let bad = !v.starts_with('/')
        || v.len() > 1024
        || v.contains("//")
        || v.contains("/./")
        || v.contains("/../")
        || v.ends_with("/..")
        || v.ends_with("/.")
        || v.to_ascii_lowercase().contains("%2f")
        || v.contains('#')
        || v.contains('?');
    if bad {
        Err(format!("path {v:?} is not a valid path match"))
    } else {
        Ok(())
    }
}

fn header_edit(f: &crate::api::gateway_api::HTTPHeaderFilter) -> Result<HeaderEdit, String> {
    let pair = |n: &str, v: &str| -> Result<(HeaderName, HeaderValue), String> {
        let name = HeaderName::from_bytes(n.as_bytes()).map_err(|_| format!("{n:?} is not a header name"))?;
        let value = HeaderValue::from_str(v).map_err(|_| format!("header {n}: the value is not allowed"))?;
        Ok((name, value))
    };
    let mut e = HeaderEdit::default();
    for h in &f.set {
        e.set.push(pair(&h.name, &h.value)?);
    }
    for h in &f.add {
        e.add.push(pair(&h.name, &h.value)?);
    }
    for n in &f.remove {
        e.remove
            .push(HeaderName::from_bytes(n.as_bytes()).map_err(|_| format!("{n:?} is not a header name"))?);
    }
    Ok(e)
}

fn path_modifier(p: &crate::api::gateway_api::HTTPPathModifier) -> Result<PathModifier, String> {
    match p.type_.as_str() {
        "ReplaceFullPath" => {
            let v = p
                .replace_full_path
                .clone()
                .ok_or("ReplaceFullPath needs replaceFullPath")?;
            check_path(&v)?;
            Ok(PathModifier::Full(v))
        }
        "ReplacePrefixMatch" => {
            let v = p
                .replace_prefix_match
                .clone()
                .ok_or("ReplacePrefixMatch needs replacePrefixMatch")?;
            check_path(&v)?;
            Ok(PathModifier::Prefix(v))
        }
        other => Err(format!("path modifier {other} is not served")),
    }
}

pub(super) fn apply(f: &HTTPRouteFilter, out: &mut GatewayRule) -> Result<(), String> {
    let missing = || format!("filter {} has no settings of its type", f.type_);
    match f.type_.as_str() {
        "RequestHeaderModifier" => {
            out.request_headers = Some(header_edit(
                f.request_header_modifier.as_ref().ok_or_else(missing)?,
            )?)
        }
        "ResponseHeaderModifier" => {
            out.response_headers = Some(header_edit(
                f.response_header_modifier.as_ref().ok_or_else(missing)?,
            )?)
        }
        "RequestRedirect" => {
            let r = f.request_redirect.as_ref().ok_or_else(missing)?;
            let scheme = match r.scheme.as_deref() {
                None => None,
                Some(s @ ("http" | "https")) => Some(s.to_string()),
                Some(s) => return Err(format!("redirect scheme {s} is not http or https")),
            };
            if let Some(h) = &r.hostname {
                if !valid_hostname(h) || h.starts_with('*') {
                    return Err(format!("redirect hostname {h:?} is not a host name"));
                }
            }
            let port = match r.port {
                None => None,
                Some(p) => Some(
                    u16::try_from(p)
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or(format!("redirect port {p} is out of range"))?,
                ),
            };
            let status = match r.status_code.unwrap_or(302) {
                c @ (301 | 302 | 303 | 307 | 308) => {
                    StatusCode::from_u16(c as u16).expect("a redirect status")
                }
                c => return Err(format!("redirect statusCode {c} is not served")),
            };
            out.redirect = Some(Redirect {
                scheme,
                hostname: r.hostname.clone(),
                path: r.path.as_ref().map(path_modifier).transpose()?,
                port,
                status,
            });
        }
        "URLRewrite" => {
            let r = f.url_rewrite.as_ref().ok_or_else(missing)?;
            let hostname = match &r.hostname {
                None => None,
                Some(h) if valid_hostname(h) && !h.starts_with('*') => {
                    Some(HeaderValue::from_str(h).map_err(|_| format!("rewrite hostname {h:?}"))?)
                }
                Some(h) => return Err(format!("rewrite hostname {h:?} is not a host name")),
            };
            out.rewrite = Some(UrlRewrite {
                hostname,
                path: r.path.as_ref().map(path_modifier).transpose()?,
            });
        }
        other => return Err(format!("filter {other} is not served")),
    }
    Ok(())
}
