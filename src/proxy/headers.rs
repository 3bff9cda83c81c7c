//! Header work on the way through: hop-by-hop removal, forwarding headers, request ids and
//! W3C trace context.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

use crate::auth::USER_HEADERS;
use crate::telemetry::valid_traceparent;

/// `Connection` first: its tokens are read before it goes (see `strip_hop_by_hop`).
pub(super) static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

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
fn hop_by_hop_index(name: &str) -> Option<usize> {
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

/// The client's fields the pipeline reads, found in one pass over the request's fields rather
/// than by a hashed lookup each (the first value of each).
#[derive(Default)]
pub struct ClientFields {
    pub host: Option<HeaderValue>,
    /// How many `Host` fields there are (counted up to 2).
    pub hosts: u8,
    pub origin: Option<HeaderValue>,
    pub content_length: Option<HeaderValue>,
    pub request_id: Option<HeaderValue>,
    pub forwarded_for: Option<HeaderValue>,
    pub traceparent: Option<HeaderValue>,
}

impl ClientFields {
    pub fn of(headers: &HeaderMap) -> Self {
        let mut f = ClientFields::default();
        for (name, value) in headers {
            let slot = match name.as_str() {
                "host" => {
                    f.hosts = f.hosts.saturating_add(1).min(2);
                    &mut f.host
                }
                "origin" => &mut f.origin,
                "content-length" => &mut f.content_length,
                "x-request-id" => &mut f.request_id,
                "x-forwarded-for" => &mut f.forwarded_for,
                "traceparent" => &mut f.traceparent,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value.clone());
            }
        }
        f
    }

    /// Why the request's `Host` fields name no single host (RFC 9112 §3.2): an HTTP/1.1
    /// request without one, more than one, or one that is not `host[:port]`. Such a request
    /// gets 400: a proxy in front that read them another way would otherwise pick other routes
    /// than the gateway.
    pub fn host_problem(&self, version: http::Version) -> Option<&'static str> {
        match (&self.host, self.hosts) {
            (_, 2..) => Some("more than one Host field"),
            (None, _) if version == http::Version::HTTP_11 => Some("an HTTP/1.1 request needs a Host field"),
            (Some(h), _) if !is_host(h.as_bytes()) => Some("the Host field is not host[:port]"),
            _ => None,
        }
    }
}

/// RFC 9110 §7.2 `uri-host [ ":" port ]`: a registered name or IPv4 address (unreserved
/// characters, sub-delimiters and escapes) or a bracketed IP literal, then an optional port.
/// Empty is allowed, as for a target without an authority. One pass, a table lookup a byte.
pub fn is_host(v: &[u8]) -> bool {
    let rest = match v.split_first() {
        Some((b'[', literal)) => {
            let Some(end) = literal.iter().position(|&b| b == b']') else {
                return false;
            };
            if end == 0 || !literal[..end].iter().all(|&b| b == b':' || HOST_BYTE[b as usize]) {
                return false;
            }
            &literal[end + 1..]
        }
        _ => match v.iter().position(|&b| !HOST_BYTE[b as usize]) {
            None => return true,
            Some(i) => &v[i..],
        },
    };
    match rest.split_first() {
        None => true,
        Some((b':', digits)) => digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

/// The bytes of a registered name: unreserved, sub-delims and `%` (RFC 3986 §3.2.2).
const HOST_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b'%'
            );
        i += 1;
    }
    table
};

/// The client's `X-Request-ID` (`client`) when it is sane, else a new random id.
pub fn request_id_from(client: Option<&HeaderValue>) -> HeaderValue {
    if let Some(v) = client {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= 200 && b.iter().all(|c| c.is_ascii_graphic()) {
            return v.clone();
        }
    }
    let mut bytes = [0u8; 16];
    random_bytes(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut out = [0u8; 36];
    let mut j = 0;
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[j] = b'-';
            j += 1;
        }
        out[j] = HEX[(b >> 4) as usize];
        out[j + 1] = HEX[(b & 0xf) as usize];
        j += 2;
    }
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

thread_local! {
    /// Ids need to be unique, not secret: a small generator per thread, seeded from the
    /// operating system's, costs a fraction of the cryptographic one per request.
    static IDS: std::cell::RefCell<SmallRng> = std::cell::RefCell::new(SmallRng::from_rng(&mut rand::rng()));
}

fn random_bytes(out: &mut [u8]) {
    IDS.with(|r| r.borrow_mut().fill_bytes(out));
}

fn hex_into(out: &mut [u8], bytes: &[u8]) {
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 0xf) as usize];
    }
}

/// The `traceparent` to send upstream, as text: the client's trace (`incoming`) continued with
/// a new parent id (this hop), or a new trace when the client sent none or an invalid one.
pub fn traceparent_text(incoming: Option<&HeaderValue>, sampled_if_new: bool) -> [u8; 55] {
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
    let mut span = [0u8; 8];
    while span == [0; 8] {
        random_bytes(&mut span);
    }
    hex_into(&mut out[36..52], &span);
    match incoming
        .map(HeaderValue::as_bytes)
        .filter(|b| valid_traceparent(b))
    {
        Some(incoming) => {
            out[3..35].copy_from_slice(&incoming[3..35]);
            out[53..55].copy_from_slice(&incoming[53..55]);
        }
        None => {
            let mut trace = [0u8; 16];
            while trace == [0; 16] {
                random_bytes(&mut trace);
            }
            hex_into(&mut out[3..35], &trace);
            if sampled_if_new {
                out[54] = b'1';
            }
        }
    }
    out
}

/// Removes the identity headers a client may not set (the auth step sets them for real).
pub fn strip_user_headers(headers: &mut HeaderMap) {
    let is_user_header =
        |k: &HeaderName| matches!(k.as_str(), "x-user-id" | "x-user-roles" | "x-user-permissions");
    if !headers.keys().any(is_user_header) {
        return;
    }
    for name in &USER_HEADERS {
        headers.remove(name);
    }
}

/// The fields the gateway sets on a request going upstream, worked out once: `Host` (the
/// endpoint's), `X-Forwarded-For` / `-Proto` / `-Host`, `X-Request-ID` and, unless distributed
/// tracing writes its own, `traceparent`. They replace the client's fields of the same names.
/// The general client gets them in the request's `HeaderMap` ([`Forwarding::apply`]); the
/// HTTP/1.1 client writes them into the head ahead of the client's fields
/// ([`Forwarding::write_to`]), and builds no header values for them.
pub struct Forwarding {
    /// The client's first `X-Forwarded-For`, which the peer is appended to.
    prior_for: Option<HeaderValue>,
    peer: std::net::IpAddr,
    proto: &'static str,
    forwarded_host: Option<HeaderValue>,
    request_id: HeaderValue,
    /// The client's `traceparent`, continued by each try's own.
    client_trace: Option<HeaderValue>,
    /// Per try: the endpoint's `Host`.
    pub host: Option<HeaderValue>,
    /// Per try: the hop's `traceparent`; `None` when tracing put its own in the map.
    pub traceparent: Option<[u8; 55]>,
}

impl Forwarding {
    /// For a request with the client's fields `client`.
    pub fn new(
        client: &ClientFields,
        peer: std::net::IpAddr,
        proto: &'static str,
        forwarded_host: Option<HeaderValue>,
        request_id: HeaderValue,
    ) -> Self {
        let client_trace = client.traceparent.clone();
        Forwarding {
            prior_for: client
                .forwarded_for
                .clone()
                .filter(|v| !v.as_bytes().trim_ascii().is_empty()),
            peer,
            proto,
            forwarded_host,
            request_id,
            client_trace,
            host: None,
            traceparent: None,
        }
    }

    /// A new `traceparent` for the next try, continuing the client's trace.
    pub fn next_traceparent(&mut self) {
        self.traceparent = Some(traceparent_text(self.client_trace.as_ref(), false));
    }

    /// Whether a client field named `name` gives way to one of these.
    pub fn replaces(&self, name: &str) -> bool {
        match name {
            "host" => self.host.is_some(),
            "x-forwarded-for" | "x-forwarded-proto" | "x-request-id" => true,
            "x-forwarded-host" => self.forwarded_host.is_some(),
            "traceparent" => self.traceparent.is_some(),
            _ => false,
        }
    }

    fn forwarded_for(&self, out: &mut Vec<u8>) {
        if let Some(prior) = &self.prior_for {
            out.extend_from_slice(prior.as_bytes());
            out.extend_from_slice(b", ");
        }
        write_ip(out, self.peer);
    }

    /// Writes the fields as head lines; `Host` first.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        if let Some(h) = &self.host {
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"x-forwarded-for: ");
        self.forwarded_for(out);
        out.extend_from_slice(b"\r\nx-forwarded-proto: ");
        out.extend_from_slice(self.proto.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(h) = &self.forwarded_host {
            out.extend_from_slice(b"x-forwarded-host: ");
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"x-request-id: ");
        out.extend_from_slice(self.request_id.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(tp) = &self.traceparent {
            out.extend_from_slice(b"traceparent: ");
            out.extend_from_slice(tp);
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Sets the fields in `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        if let Some(h) = &self.host {
            headers.insert(header::HOST, h.clone());
        }
        let mut xff = Vec::with_capacity(64);
        self.forwarded_for(&mut xff);
        if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(xff)) {
            headers.insert(X_FORWARDED_FOR.clone(), v);
        }
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(self.proto));
        if let Some(h) = &self.forwarded_host {
            headers.insert(X_FORWARDED_HOST.clone(), h.clone());
        }
        headers.insert(X_REQUEST_ID.clone(), self.request_id.clone());
        if let Some(tp) = self
            .traceparent
            .as_ref()
            .and_then(|t| HeaderValue::from_bytes(t).ok())
        {
            headers.insert(TRACEPARENT.clone(), tp);
        }
    }
}

/// `ip` in its usual text form (IPv4 without going through `fmt`: it is on every request).
fn write_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
        }
        std::net::IpAddr::V6(_) => out.extend_from_slice(ip.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_names_are_found_by_their_text() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_index(name.as_str()), Some(i), "{name}");
        }
        assert_eq!(hop_by_hop_index("host"), None);
        let mut h = HeaderMap::new();
        for name in USER_HEADERS.iter().chain([&X_REQUEST_ID]) {
            h.insert(name, HeaderValue::from_static("x"));
        }
        strip_user_headers(&mut h);
        assert_eq!(h.len(), 1, "only the identity headers go: {h:?}");
    }

    #[test]
    fn te_trailers_is_found_among_other_codings() {
        for (values, want) in [
            (&["trailers"][..], true),
            (&["gzip;q=0.5, Trailers"][..], true),
            (&["deflate", "trailers;q=1"][..], true),
            (&["gzip"][..], false),
            (&["trailersx"][..], false),
            (&[][..], false),
        ] {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(header::TE, HeaderValue::from_static(v));
            }
            assert_eq!(accepts_trailers(&h), want, "{values:?}");
        }
    }

    #[test]
    fn forwarding_fields_are_the_same_written_or_in_a_map() {
        const SET: [&str; 6] = [
            "host",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "x-request-id",
            "traceparent",
        ];
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut client = HeaderMap::new();
        client.append(&X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.9"));
        client.append(&X_FORWARDED_FOR, HeaderValue::from_static("198.51.100.1"));
        client.insert(&TRACEPARENT, HeaderValue::from_static(incoming));
        client.insert(&X_REQUEST_ID, HeaderValue::from_static("theirs"));
        client.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        let peer = "10.1.2.3".parse().unwrap();
        let mut fwd = Forwarding::new(
            &ClientFields::of(&client),
            peer,
            "https",
            Some(HeaderValue::from_static("api.test")),
            HeaderValue::from_static("rid-1"),
        );
        fwd.host = Some(HeaderValue::from_static("up:8080"));
        fwd.next_traceparent();
        for name in SET {
            assert!(fwd.replaces(name), "{name}");
        }
        assert!(!fwd.replaces("accept"));

        let mut written = Vec::new();
        fwd.write_to(&mut written);
        let written = String::from_utf8(written).unwrap();
        let tp = std::str::from_utf8(fwd.traceparent.as_ref().unwrap())
            .unwrap()
            .to_string();
        assert_eq!(&tp[..36], &incoming[..36]);
        assert_eq!(
            written,
            format!(
                "host: up:8080\r\nx-forwarded-for: 203.0.113.9, 10.1.2.3\r\nx-forwarded-proto: https\r\n\
                 x-forwarded-host: api.test\r\nx-request-id: rid-1\r\ntraceparent: {tp}\r\n"
            )
        );
        let mut map = client.clone();
        fwd.apply(&mut map);
        let mut from_map = String::new();
        for name in SET {
            let all: Vec<_> = map.get_all(name).iter().map(|v| v.to_str().unwrap()).collect();
            assert_eq!(all.len(), 1, "{name}: {all:?}");
            from_map.push_str(&format!("{name}: {}\r\n", all[0]));
        }
        assert_eq!(from_map, written);

        // Tracing writes its own traceparent; an empty client list is no list.
        fwd.traceparent = None;
        assert!(!fwd.replaces("traceparent"));
        let mut client = HeaderMap::new();
        client.insert(&X_FORWARDED_FOR, HeaderValue::from_static(" "));
        let fwd = Forwarding::new(
            &ClientFields::of(&client),
            peer,
            "http",
            None,
            HeaderValue::from_static("r"),
        );
        let mut written = Vec::new();
        fwd.write_to(&mut written);
        assert_eq!(
            String::from_utf8(written).unwrap(),
            "x-forwarded-for: 10.1.2.3\r\nx-forwarded-proto: http\r\nx-request-id: r\r\n"
        );
        assert!(!fwd.replaces("host") && !fwd.replaces("x-forwarded-host"));
    }

    #[test]
    fn traceparent_continues_or_starts() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let out = traceparent_text(Some(&HeaderValue::from_static(incoming)), false);
        let out = std::str::from_utf8(&out).expect("ascii");
        assert!(valid_traceparent(out.as_bytes()));
        assert_eq!(&out[..36], &incoming[..36]);
        assert_ne!(&out[36..52], &incoming[36..52]);
        assert!(out.ends_with("-01"));

        let fresh = traceparent_text(Some(&HeaderValue::from_static("garbage")), true);
        let fresh = std::str::from_utf8(&fresh).expect("ascii");
        assert!(valid_traceparent(fresh.as_bytes()), "{fresh}");
        assert!(fresh.ends_with("-01"));
    }

    /// Sets the forwarding fields of a request from `peer` in `h`.
    fn forwarded(h: &mut HeaderMap, peer: &str, proto: &'static str) {
        let fwd = Forwarding::new(
            &ClientFields::of(h),
            peer.parse().expect("ip"),
            proto,
            None,
            HeaderValue::from_static("r"),
        );
        fwd.apply(h);
    }

    #[test]
    fn forwarded_for_is_appended_in_text_form() {
        for ip in [
            "127.0.0.1",
            "10.200.3.45",
            "0.0.0.0",
            "255.255.255.255",
            "2001:db8::1",
        ] {
            let mut h = HeaderMap::new();
            forwarded(&mut h, ip, "http");
            assert_eq!(h[&X_FORWARDED_FOR], ip);
        }
        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.9"));
        forwarded(&mut h, "192.168.1.20", "https");
        assert_eq!(h[&X_FORWARDED_FOR], "203.0.113.9, 192.168.1.20");
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
    }

    #[test]
    fn request_ids_are_kept_or_made() {
        let made = request_id_from(None);
        assert_eq!(made.len(), 36);
        assert_eq!(made.as_bytes()[14], b'4');
        assert_eq!(
            request_id_from(Some(&HeaderValue::from_static("abc-123"))),
            "abc-123"
        );
    }

    #[test]
    fn hop_by_hop_and_connection_tokens_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn identity_headers_from_clients_go() {
        let mut h = HeaderMap::new();
        h.insert("x-user-id", HeaderValue::from_static("admin"));
        h.append("x-user-roles", HeaderValue::from_static("admin"));
        h.append("x-user-roles", HeaderValue::from_static("root"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_user_headers(&mut h);
        assert_eq!(h.len(), 1);
        strip_user_headers(&mut h);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn hosts_are_host_and_optional_port() {
        for ok in [
            "a.test",
            "a.test:8080",
            "a.test:",
            "A-b_c~1.test.",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:443",
            "xn--bcher-kva.example",
            "a%2Eb",
            "",
        ] {
            assert!(is_host(ok.as_bytes()), "{ok:?}");
        }
        for bad in [
            "a b",
            "a.test/x",
            "u@a.test",
            "a.test:8x",
            "a.test:123456",
            "a:b:80",
            "[::1",
            "[]",
            "[::1]x",
            "a.test?",
            "a\\b",
        ] {
            assert!(!is_host(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn one_host_field_is_needed_in_http_1_1_and_two_are_refused() {
        let fields = |hosts: &[&str]| {
            let mut h = HeaderMap::new();
            for v in hosts {
                h.append(header::HOST, HeaderValue::from_str(v).unwrap());
            }
            ClientFields::of(&h)
        };
        use http::Version;
        assert_eq!(fields(&["a.test"]).host_problem(Version::HTTP_11), None);
        assert!(fields(&[]).host_problem(Version::HTTP_11).is_some());
        assert_eq!(fields(&[]).host_problem(Version::HTTP_10), None);
        assert_eq!(fields(&[]).host_problem(Version::HTTP_2), None);
        assert!(fields(&["a.test", "a.test"])
            .host_problem(Version::HTTP_11)
            .is_some());
        assert!(fields(&["a.test", "b", "c"])
            .host_problem(Version::HTTP_2)
            .is_some());
        assert!(fields(&["a/b"]).host_problem(Version::HTTP_10).is_some());
    }
}
