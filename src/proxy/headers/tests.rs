//! Tests of the header work: hop-by-hop removal, client fields, ids, forwarding.

use http::header::{self, HeaderMap, HeaderValue};

use super::client::*;
use super::forwarding::*;
use super::hop::*;
use super::ids::*;
use crate::auth::USER_HEADERS;
use crate::telemetry::valid_traceparent;

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
