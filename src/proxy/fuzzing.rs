//! Entry points for the fuzz targets in `fuzz/`: the parsers that read what clients and
//! upstreams send, and the path normalisation routing relies on, each run on arbitrary bytes
//! with the properties it must keep. Built for `cargo fuzz` (`--cfg fuzzing`) and for the unit
//! tests below, which run each entry point on a few inputs so that it keeps compiling and keeps
//! its properties on known cases.

use bytes::BytesMut;
use http::Method;

use super::body::ClientBody;
use super::client::{self, Chunk, State, Step};
use super::fields::MAX_FIELDS;
use super::path::{read_path, PathReading};
use super::server::h1::{self, Next};
use crate::settings::{EscapedSlashes, PathParameters, PathsConfig};

/// The head limit the request entry point parses with.
const MAX_HEAD: usize = 4096;

/// Request heads, as the proxy listener reads them, pipelined one after another. Whatever the
/// bytes, the parse does not panic, and each request the fast path takes is the one `httparse`
/// reads at the same place, with its declared body.
pub fn request_heads(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.clone().freeze();
        let general = |path: &str| path.starts_with("/ws");
        match h1::parse(&mut buf, MAX_HEAD, &general) {
            Next::Fast(parsed) => {
                let taken = before.len() - buf.len();
                assert!(taken > 0, "a request taken without its bytes");
                assert_eq!(&before[taken..], &buf[..], "bytes after the request changed");
                let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
                let mut req = httparse::Request::new(&mut fields);
                let Ok(httparse::Status::Complete(head)) = req.parse(&before) else {
                    panic!("a request httparse does not read whole was taken");
                };
                assert!(head <= MAX_HEAD);
                let request = &parsed.request;
                assert_eq!(Some(request.method().as_str()), req.method);
                // A fragment has no place in a request target; the URI leaves it out, as
                // hyper's server does.
                let target = req.path.map(|p| p.split('#').next().unwrap_or(p));
                assert_eq!(Some(request.uri().to_string().as_str()), target);
                assert!(!general(request.uri().path()));
                assert_eq!(request.headers().len(), req.headers.len());
                let body = match request.body() {
                    ClientBody::Read(b) => b.len(),
                    _ => panic!("a fast request without its body read"),
                };
                assert_eq!(head + body, taken, "the body is not the declared one");
                if parsed.close {
                    break;
                }
            }
            Next::Partial => {
                assert!(buf.len() <= MAX_HEAD);
                assert_eq!(&before[..], &buf[..], "a partial head was changed");
                break;
            }
            Next::Other => {
                assert_eq!(&before[..], &buf[..], "a head for the general server was changed");
                break;
            }
            Next::Refused(_) => break,
        }
    }
}

/// Response heads, as the upstream client reads them. The first byte picks the request method
/// (`HEAD` or `GET`). Whatever the bytes, the parse does not panic, and when the fields can be
/// kept in wire form they are the same fields, with each name's values in the same order, as
/// the ones kept in a map.
pub fn response_heads(data: &[u8]) {
    let Some((&pick, data)) = data.split_first() else {
        return;
    };
    let method = if pick & 1 == 1 { Method::HEAD } else { Method::GET };
    let mut as_map = BytesMut::from(data);
    let mut as_wire = BytesMut::from(data);
    let map = client::parse_head(&mut as_map, &method, false);
    let wire = client::parse_head(&mut as_wire, &method, true);
    let (map, wire) = match (map, wire) {
        (Ok(Some(m)), Ok(Some(w))) => (m, w),
        (Ok(None), Ok(None)) => {
            assert_eq!(&as_map[..], data, "a partial head was taken");
            return;
        }
        (Err(_), Err(_)) => return,
        (m, w) => panic!("the two parses disagree: {:?} and {:?}", m.is_ok(), w.is_ok()),
    };
    assert_eq!(as_map, as_wire, "the two parses took different lengths");
    assert_eq!(map.status, wire.status);
    let Some(fields) = wire.wire.as_ref() else {
        assert_eq!(map.headers, wire.headers);
        return;
    };
    assert!(wire.headers.is_empty());
    let mut from_wire = http::HeaderMap::new();
    fields.append_to(&mut from_wire);
    let mut expected = map.headers.clone();
    super::headers::strip_hop_by_hop(&mut expected);
    expected.remove("x-request-id");
    // By name: a map's removals reorder its names, but never the values of one name.
    let pairs = |m: &http::HeaderMap| {
        let mut all = m
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect::<Vec<_>>();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    };
    assert_eq!(
        pairs(&from_wire),
        pairs(&expected),
        "wire form and map form differ"
    );
}

/// A chunked body, as the upstream client decodes it. The first two bytes pick where the
/// input is cut in two, as if it came in two reads. Whatever the bytes, decoding does not
/// panic, never yields more than it was given, and yields the same data, end and error
/// whether the input comes whole or cut.
pub fn chunked_body(data: &[u8]) {
    let (cut, data) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])) % (rest.len() + 1), rest),
        _ => return,
    };
    let whole = decode_all(&[data]);
    let parts = decode_all(&[&data[..cut], &data[cut..]]);
    assert_eq!(whole, parts, "cut at {cut}");
    assert!(whole.0.len() <= data.len());
}

/// Request paths, as routing reads them, under every `server.paths` setting. Whatever the
/// bytes, the path of a target that `http` takes is refused only for what the setting refuses;
/// otherwise its normal form is one `http` takes too, starts with `/`, has no dot-segments,
/// nothing the setting unescapes or strips, no `//` when slashes are merged, and is its own
/// normal form; a redirect's path is no network-path reference (`//host`).
pub fn paths(data: &[u8]) {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    // The path as a request's URI gives it: no query, no fragment.
    let Ok(pq) = http::uri::PathAndQuery::try_from(path) else {
        return;
    };
    let path = pq.path();
    if !path.starts_with('/') {
        return;
    }
    for cfg in all_path_settings() {
        let normal = match read_path(path, &cfg) {
            PathReading::Normal => continue,
            PathReading::Refused(_) => {
                let refusable = (cfg.parameters == PathParameters::Reject && path.contains(';'))
                    || (cfg.escaped_slashes != EscapedSlashes::Keep
                        && ["%2f", "%5c", "\\"]
                            .iter()
                            .any(|s| path.to_ascii_lowercase().contains(s)));
                assert!(refusable, "{path:?} refused ({cfg:?})");
                continue;
            }
            PathReading::Rewritten(normal) => normal,
            PathReading::Redirect(normal) => {
                assert_eq!(cfg.escaped_slashes, EscapedSlashes::UnescapeAndRedirect);
                assert!(!normal.starts_with("//"), "{path:?} -> {normal:?} ({cfg:?})");
                normal
            }
        };
        let said = format!("{path:?} -> {normal:?} ({cfg:?})");
        assert!(normal.starts_with('/'), "{said}");
        assert!(
            http::uri::PathAndQuery::try_from(normal.as_str()).is_ok(),
            "{said}"
        );
        assert!(normal.split('/').all(|s| s != "." && s != ".."), "{said}");
        assert!(!cfg.merge_slashes || !normal.contains("//"), "{said}");
        assert!(
            cfg.parameters == PathParameters::Keep || !normal.contains(';'),
            "{said}"
        );
        assert_eq!(read_path(&normal, &cfg), PathReading::Normal, "{said}");
    }
}

/// Every combination of the `server.paths` settings.
fn all_path_settings() -> impl Iterator<Item = PathsConfig> {
    let escaped = [
        EscapedSlashes::Keep,
        EscapedSlashes::Reject,
        EscapedSlashes::UnescapeAndForward,
        EscapedSlashes::UnescapeAndRedirect,
    ];
    let parameters = [
        PathParameters::Keep,
        PathParameters::Reject,
        PathParameters::Strip,
    ];
    [false, true].into_iter().flat_map(move |merge_slashes| {
        escaped.into_iter().flat_map(move |escaped_slashes| {
            parameters.into_iter().map(move |parameters| PathsConfig {
                merge_slashes,
                escaped_slashes,
                parameters,
            })
        })
    })
}

/// The body decoded from `reads` fed one after another: its data, and how it ended (`Some`
/// true at its end, false on an error; `None` if it wants more).
fn decode_all(reads: &[&[u8]]) -> (Vec<u8>, Option<bool>) {
    let mut state = State::Chunked(Chunk::Size);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for read in reads {
        buf.extend_from_slice(read);
        loop {
            match state.decode(&mut buf) {
                Ok(Step::Data(d)) => {
                    assert!(!d.is_empty(), "an empty piece of body");
                    out.extend_from_slice(&d);
                }
                Ok(Step::More) => break,
                Ok(Step::End) => return (out, Some(true)),
                Err(_) => return (out, Some(false)),
            }
        }
    }
    (out, None)
}

/// Bytes for the unit tests: a valid request, response or chunked body, cut and mangled in
/// every simple way.
#[cfg(test)]
fn variants(valid: &[u8]) -> Vec<Vec<u8>> {
    let mut all = vec![valid.to_vec()];
    for i in 0..valid.len() {
        all.push(valid[..i].to_vec());
        let mut v = valid.to_vec();
        v.remove(i);
        all.push(v);
        for b in [b'\n', b'\r', b':', b' ', 0, 0x80, b'0'] {
            let mut v = valid.to_vec();
            v[i] = b;
            all.push(v);
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads_keep_their_properties() {
        let valid = b"GET /a?b=c HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
                      POST /p HTTP/1.1\r\nhost: y\r\nconnection: close\r\n\r\n";
        for v in variants(valid) {
            request_heads(&v);
        }
    }

    #[test]
    fn response_heads_keep_their_properties() {
        let valid = b"\0HTTP/1.1 200 OK\r\nDate: now\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\
                      X-Request-Id: up\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\nX-B: 2\r\n\r\nhi";
        for v in variants(valid) {
            response_heads(&v);
        }
    }

    #[test]
    fn paths_keep_their_properties() {
        for v in variants(b"/a/%2e%2E/b/./%61%2Fc/..") {
            paths(&v);
        }
        for v in variants(b"//a;b/..;/%5c\\c//%2F%2e./d;") {
            paths(&v);
        }
    }

    #[test]
    fn chunked_bodies_keep_their_properties() {
        let valid = b"\x07\x005;x=1\r\nhello\r\n6\r\n world\r\n0\r\nT: 1\r\n\r\n";
        for v in variants(valid) {
            chunked_body(&v);
        }
        let (data, end) = decode_all(&[&valid[2..]]);
        assert_eq!((&data[..], end), (&b"hello world"[..], Some(true)));
    }
}
