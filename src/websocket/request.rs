//! Reading the HTTP request that opens a connection: the upgrade headers and the query string.

use http::HeaderMap;

/// `Connection: upgrade` and `Upgrade: websocket` (any case, any list position).
pub fn is_websocket_upgrade(h: &HeaderMap) -> bool {
    let has = |name: http::header::HeaderName, token: &str| {
        h.get_all(name).iter().any(|v| {
            v.to_str()
                .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    has(http::header::CONNECTION, "upgrade") && has(http::header::UPGRADE, "websocket")
}

/// The percent-decoded value of `name` in a query string.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_tokens_are_found_and_decoded() {
        assert_eq!(query_param("a=1&token=x.y.z", "token").as_deref(), Some("x.y.z"));
        assert_eq!(query_param("token=a%2Eb%3d", "token").as_deref(), Some("a.b="));
        assert_eq!(query_param("tokens=1", "token"), None);
        assert_eq!(query_param("token=%zz%4", "token").as_deref(), Some("%zz%4"));
    }

    #[test]
    fn upgrade_headers_are_read_as_token_lists() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, Upgrade".parse().expect("value"));
        h.insert("upgrade", "WebSocket".parse().expect("value"));
        assert!(is_websocket_upgrade(&h));
        h.insert("upgrade", "h2c".parse().expect("value"));
        assert!(!is_websocket_upgrade(&h));
    }
}
