//! Tests of the header work: hop-by-hop removal, client fields and those that do not go
//! upstream, ids, forwarding.

use http::header::{self, HeaderMap, HeaderValue};

use super::client::*;
use super::forwarding::*;
use super::hop::*;
use super::ids::*;
use super::owned::*;
use crate::auth::USER_HEADERS;
use crate::settings::{HeadersConfig, MethodOverride, Underscores};
use crate::telemetry::valid_traceparent;

/// The client's fields that do not go upstream by default, gone from `h`.
fn strip_user_headers(h: &mut HeaderMap) {
    let marks = ClientFields::of(h).marks;
    strip_client_fields(h, marks, &HeadersConfig::default());
}

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

/// The names of `h` that are left after `strip_client_fields` under `cfg`, sorted.
fn left_after(h: &HeaderMap, cfg: HeadersConfig) -> Vec<String> {
    let mut h = h.clone();
    let marks = ClientFields::of(&h).marks;
    strip_client_fields(&mut h, marks, &cfg);
    let mut names: Vec<String> = h.keys().map(|k| k.to_string()).collect();
    names.sort();
    names
}

fn client_headers(names: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for n in names {
        h.append(
            header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_static("admin"),
        );
    }
    h
}

#[test]
fn names_are_marked_as_they_are_first_read() {
    for (name, want) in [
        ("accept", 0),
        ("x-user-id", IDENTITY),
        ("x-user-email", IDENTITY),
        ("x_user_id", UNDERSCORE),
        ("x-http-method-override", METHOD_OVERRIDE),
        ("x-http-method", METHOD_OVERRIDE),
        ("x-method-override", METHOD_OVERRIDE),
        ("x_http_method_override", UNDERSCORE),
        ("x-user_id", UNDERSCORE),
        ("x_user-id", UNDERSCORE),
        ("x-users", 0),
    ] {
        assert_eq!(marks(name), want, "{name}");
    }
    let h = client_headers(&["accept", "host", "x_forwarded_for"]);
    assert_eq!(ClientFields::of(&h).marks, UNDERSCORE);
    assert_eq!(
        ClientFields::of(&client_headers(&["accept", "x-request-id"])).marks,
        0
    );
}

#[test]
fn underscore_names_go_all_or_the_gateways_own_or_none() {
    let h = client_headers(&[
        "accept",
        "x_user_id",
        "X_User_Roles",
        "x-user_permissions",
        "x_forwarded_for",
        "x_forwarded_proto",
        "x_request_id",
        "x_http_method_override",
        "my_field",
        "x-user-email",
        "x-http-method-override",
        "x-method-override",
        "x-http-method",
    ]);
    let with = |underscores, method_override| HeadersConfig {
        underscores,
        method_override,
    };
    assert_eq!(
        left_after(&h, HeadersConfig::default()),
        ["accept"],
        "by default: every underscore name, every X-User-*, every method override"
    );
    assert_eq!(
        left_after(&h, with(Underscores::StripOwned, MethodOverride::Strip)),
        ["accept", "my_field"]
    );
    assert_eq!(
        left_after(&h, with(Underscores::StripOwned, MethodOverride::Keep)),
        [
            "accept",
            "my_field",
            "x-http-method",
            "x-http-method-override",
            "x-method-override",
            "x_http_method_override"
        ]
    );
    assert_eq!(
        left_after(&h, with(Underscores::Keep, MethodOverride::Strip)),
        [
            "accept",
            "my_field",
            "x-user_permissions",
            "x_forwarded_for",
            "x_forwarded_proto",
            "x_request_id",
            "x_user_id",
            "x_user_roles"
        ],
        "kept underscore names; X-User-* and method overrides still go"
    );
}
