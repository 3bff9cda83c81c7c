//! Hop-by-hop fields (RFC 9110 §7.6.1): the fixed list and those a `Connection` field names,
//! removed from every message that crosses the gateway.

use http::header::{self, HeaderMap, HeaderName};

/// `Connection` first: its tokens are read before it goes (see `strip_hop_by_hop`).
pub(in crate::proxy) static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, including those named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none or one (an upstream's `Connection: keep-alive`): one pass over
    // the names present finds them, and only those are removed by a hashed lookup.
    let mut present = [false; HOP_BY_HOP.len()];
    let mut any = false;
    for k in headers.keys() {
        if let Some(i) = hop_by_hop_index(k.as_str()) {
            present[i] = true;
            any = true;
        }
    }
    if !any {
        return;
    }
    let has_connection = present[0];
    if has_connection {
        if let Some(conn) = headers
            .get(header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.split(',').any(|t| !is_hop_by_hop_token(t.trim())))
            .map(str::to_owned)
        {
            for name in conn.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                    headers.remove(name);
                }
            }
        }
    }
    for (h, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, p)| *p) {
        headers.remove(h);
    }
}

/// Whether the client's `TE` lists `trailers`.
pub fn accepts_trailers(headers: &HeaderMap) -> bool {
    headers.get_all(header::TE).iter().any(|v| {
        v.as_bytes().split(|&c| c == b',').any(|t| {
            t.split(|&c| c == b';')
                .next()
                .unwrap_or_default()
                .trim_ascii()
                .eq_ignore_ascii_case(b"trailers")
        })
    })
}

/// The place of `name` in `HOP_BY_HOP`: a match on the text, cheaper than comparing names.
pub(super) fn hop_by_hop_index(name: &str) -> Option<usize> {
    Some(match name {
        "connection" => 0,
        "keep-alive" => 1,
        "proxy-authenticate" => 2,
        "proxy-authorization" => 3,
        "te" => 4,
        "trailer" => 5,
        "transfer-encoding" => 6,
        "upgrade" => 7,
        _ => return None,
    })
}

/// `Connection` tokens that name no other header to remove.
fn is_hop_by_hop_token(t: &str) -> bool {
    t.is_empty() || t.eq_ignore_ascii_case("keep-alive") || t.eq_ignore_ascii_case("close")
}
