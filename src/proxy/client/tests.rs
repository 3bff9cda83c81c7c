//! Tests of the own client: response heads, framing, chunked bodies, the pool and the
//! connection timer.

use std::sync::Mutex;

use bytes::BytesMut;
use http::header;
use http_body_util::BodyExt;
use tokio::net::TcpStream;

use super::body::{Framing, Step};
use super::head::{role, Head, Role};
use super::pool::Map;
use super::*;

fn head_in(raw: &str, wire: bool) -> Head {
    parse_head(&mut BytesMut::from(raw), &Method::GET, wire)
        .unwrap()
        .unwrap()
}

/// The head of `raw`, read alike with and without wire fields.
fn head(raw: &str) -> Head {
    let (a, b) = (head_in(raw, false), head_in(raw, true));
    assert_eq!(
        (a.framing, a.keep_alive, a.interim, a.status),
        (b.framing, b.keep_alive, b.interim, b.status),
        "{raw:?}"
    );
    a
}

fn wire_text(h: &Head) -> String {
    let mut out = Vec::new();
    h.wire.as_ref().expect("wire fields").write_to(&mut out);
    String::from_utf8(out).unwrap()
}

/// `role` matches names by length for speed; it must know every hop-by-hop name the
/// header module strips, in any case.
#[test]
fn roles_know_every_hop_by_hop_field() {
    for name in &crate::proxy::headers::HOP_BY_HOP {
        for form in [name.as_str().to_string(), name.as_str().to_ascii_uppercase()] {
            let r = role(form.as_bytes());
            assert!(
                matches!(r, Role::HopByHop | Role::Connection | Role::Coding),
                "{form}"
            );
        }
    }
    assert!(role(b"Server") == Role::Other && role(b"X-TE") == Role::Other);
}

#[test]
fn wire_fields_leave_out_what_the_gateway_drops_or_sets() {
    let h = head_in(
        "HTTP/1.1 200 OK\r\nServer: up\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
         X-Request-ID: theirs\r\nContent-Length: 2\r\nX-A: 1\r\nx-a: 2\r\nDate: then\r\n\r\nhi",
        true,
    );
    assert!(h.headers.is_empty());
    assert_eq!(
        wire_text(&h),
        "Server: up\r\nContent-Length: 2\r\nX-A: 1\r\nx-a: 2\r\nDate: then\r\n"
    );
    let w = h.wire.as_ref().unwrap();
    assert!(w.has_length && w.has_date);

    // Chunked: no length passed on, whatever the upstream said.
    let h = head_in(
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nX-B: 1\r\n\r\n",
        true,
    );
    assert_eq!(wire_text(&h), "X-B: 1\r\n");
    assert!(!h.wire.as_ref().unwrap().has_length && !h.wire.as_ref().unwrap().has_date);

    // A 204 has no body, so a length on it is dropped: a client that read one would take
    // the next response for this one's body.
    let h = head_in(
        "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-C: 1\r\n\r\n",
        true,
    );
    assert_eq!(wire_text(&h), "X-C: 1\r\n");
    assert!(!h.wire.as_ref().unwrap().has_length);
    let h = head_in("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", false);
    assert!(!h.headers.contains_key(header::CONTENT_LENGTH));
    // A 304's length is the one the full response would have, and stays.
    let h = head_in("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", true);
    assert_eq!(wire_text(&h), "Content-Length: 5\r\n");

    // `Connection` naming fields: a HeaderMap, for the hop-by-hop strip to read.
    let h = head_in(
        "HTTP/1.1 200 OK\r\nConnection: x-hop\r\nX-Hop: 1\r\nContent-Length: 0\r\n\r\n",
        true,
    );
    assert!(h.wire.is_none());
    assert_eq!(h.headers["x-hop"], "1");
    // Without wire fields asked for: all of them in the map, as before.
    let h = head_in(
        "HTTP/1.1 200 OK\r\nServer: up\r\nContent-Length: 0\r\n\r\n",
        false,
    );
    assert!(h.wire.is_none());
    assert_eq!(h.headers["server"], "up");
}

#[test]
fn framing_follows_rfc_9112() {
    assert_eq!(
        head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n").framing,
        Framing::Length(5)
    );
    assert_eq!(
        head("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").framing,
        Framing::Empty
    );
    let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\ncontent-length: 5\r\n\r\n");
    assert_eq!(h.framing, Framing::Chunked);
    assert!(h.headers.get(header::CONTENT_LENGTH).is_none());
    let h = head("HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!(h.framing, Framing::UntilClose);
    assert!(!h.keep_alive);
    // Without a body, a coding the gateway does not undo does not matter.
    let h = head("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: gzip\r\n\r\n");
    assert_eq!(h.framing, Framing::Empty);
    assert_eq!(
        head("HTTP/1.1 204 No Content\r\ncontent-length: 3\r\n\r\n").framing,
        Framing::Empty
    );
    assert_eq!(head("HTTP/1.1 304 Not Modified\r\n\r\n").framing, Framing::Empty);
    let h = parse_head(
        &mut BytesMut::from("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"),
        &Method::HEAD,
        true,
    )
    .unwrap()
    .unwrap();
    assert_eq!(h.framing, Framing::Empty);
    assert!(h.keep_alive);
    assert!(head("HTTP/1.1 100 Continue\r\n\r\n").interim);
    assert!(!head("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n").keep_alive);
    assert!(
        !head("HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\ncontent-length: 1\r\n\r\n").keep_alive
    );
    assert!(parse_head(
        &mut BytesMut::from("HTTP/1.1 200 OK\r\ncontent-le"),
        &Method::GET,
        false
    )
    .unwrap()
    .is_none());
}

#[test]
fn a_whole_head_is_taken_off_the_buffer_and_a_partial_one_left() {
    let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nX-Served-By: a b\r\n\r\nhi");
    let h = parse_head(&mut buf, &Method::GET, false).unwrap().unwrap();
    assert_eq!(&buf[..], b"hi");
    assert_eq!(h.headers["x-served-by"], "a b");
    assert_eq!(h.headers[header::CONTENT_LENGTH], "2");
    let mut part = BytesMut::from("HTTP/1.1 200 OK\r\nx-a: b\r\n");
    assert!(parse_head(&mut part, &Method::GET, false).unwrap().is_none());
    assert_eq!(part.len(), 25);
}

#[test]
fn bad_heads_are_refused() {
    for raw in [
        "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-length: five\r\n\r\n",
        // A sign is no digit (Rust's integer parser takes one), and a length must fit.
        "HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\n\r\n",
        "SMTP ready\r\n\r\n",
        // Codings the gateway does not undo.
        "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\ntransfer-encoding: identity\r\ncontent-length: 3\r\n\r\n",
    ] {
        for wire in [false, true] {
            assert!(
                parse_head(&mut BytesMut::from(raw), &Method::GET, wire).is_err(),
                "{raw:?}"
            );
        }
    }
}

async fn pair() -> (TcpStream, TcpStream) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    let (b, _) = l.accept().await.unwrap();
    (a, b)
}

/// A chunked body split at awkward places comes out whole, and its connection goes back
/// to the pool only after the last chunk and the trailers.
#[tokio::test]
async fn chunked_bodies_are_decoded_across_reads() {
    let (ours, mut theirs) = pair().await;
    let pool = Arc::new(Pool {
        idle: Mutex::new(Map::default()),
        max_idle_per_host: 4,
        idle_timeout: Duration::from_secs(60),
    });
    let conn = UpstreamConn {
        io: ours,
        buf: BytesMut::new(),
        key: Arc::from("up:80"),
        pool: Arc::downgrade(&pool),
        timer: None,
        out: Vec::new(),
    };
    let mut body = PooledBody {
        state: State::Chunked(Chunk::Size),
        conn: Some(Box::new(conn)),
        keep_alive: true,
        data: None,
        wire: None,
    };
    let writer = tokio::spawn(async move {
        for piece in [
            "5\r\nhel",
            "lo\r\n6;ext=1\r",
            "\n world\r",
            "\n0\r\nx-trailer: 1\r\n",
            "\r\n",
        ] {
            theirs.write_all(piece.as_bytes()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        theirs
    });
    let mut got = Vec::new();
    while let Some(frame) = body.frame().await {
        got.extend_from_slice(&frame.unwrap().into_data().unwrap());
    }
    assert_eq!(got, b"hello world");
    let _theirs = writer.await.unwrap();
    assert_eq!(pool.idle.lock().unwrap().get("up:80").map(Vec::len), Some(1));
}

/// Chunk sizes are hex digits only, with extensions and spaces after them allowed.
#[test]
fn chunk_sizes_are_hex_digits_only() {
    for (line, want) in [
        ("a\r\n", Some(10)),
        ("A ;ext=1\r\n", Some(10)),
        ("ff\r\n", Some(255)),
        ("+a\r\n", None),
        ("-1\r\n", None),
        ("0x1\r\n", None),
        (" a\r\n", None),
        ("\r\n", None),
        ("1 2\r\n", None),
        ("10000000000000000\r\n", None),
    ] {
        let mut state = State::Chunked(Chunk::Size);
        let mut buf = BytesMut::from(line);
        let got = match state.decode(&mut buf) {
            Ok(Step::More) => match state {
                State::Chunked(Chunk::Data(n)) => Some(n),
                other => panic!("{line:?}: {other:?}"),
            },
            Ok(other) => panic!("{line:?}: {other:?}"),
            Err(_) => None,
        };
        assert_eq!(got, want, "{line:?}");
    }
}

/// The connection's one timer serves deadlines later and earlier than the one it was
/// made with.
#[tokio::test]
async fn the_connection_timer_follows_each_deadline() {
    let mut timer = None;
    let pending = std::future::pending::<()>;
    let t0 = Instant::now();
    assert!(
        before(&mut timer, Some(t0 + Duration::from_millis(50)), pending())
            .await
            .is_none()
    );
    assert!(t0.elapsed() >= Duration::from_millis(50));

    // A later deadline: the timer set for the old one has fired and is moved on.
    let t1 = Instant::now();
    let work = tokio::time::sleep(Duration::from_millis(100));
    assert!(before(&mut timer, Some(t1 + Duration::from_millis(300)), work)
        .await
        .is_some());
    let t2 = Instant::now();
    assert!(
        before(&mut timer, Some(t2 + Duration::from_millis(200)), pending())
            .await
            .is_none()
    );
    assert!(t2.elapsed() >= Duration::from_millis(200));

    // An earlier deadline than the timer's: it is moved back at once.
    let far = Instant::now() + Duration::from_secs(30);
    assert!(before(&mut timer, Some(far), async {}).await.is_some());
    let t3 = Instant::now();
    assert!(
        before(&mut timer, Some(t3 + Duration::from_millis(40)), pending())
            .await
            .is_none()
    );
    assert!(t3.elapsed() < Duration::from_secs(5), "fired at the new deadline");
    // No deadline: no timer involved.
    assert_eq!(before(&mut timer, None, async { 7 }).await, Some(7));
}

/// A connection whose peer has closed it is not handed out again.
#[tokio::test]
async fn closed_idle_connections_are_not_reused() {
    let (ours, theirs) = pair().await;
    let pool = Arc::new(Pool {
        idle: Mutex::new(Map::default()),
        max_idle_per_host: 4,
        idle_timeout: Duration::from_secs(60),
    });
    let conn = |io| UpstreamConn {
        io,
        buf: BytesMut::new(),
        key: Arc::from("up:80"),
        pool: Arc::downgrade(&pool),
        timer: None,
        out: Vec::new(),
    };
    pool.put(Box::new(conn(ours)));
    drop(theirs);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(pool.take("up:80").is_none());
    let (ours, _theirs) = pair().await;
    pool.put(Box::new(conn(ours)));
    assert!(pool.take("up:80").is_some());
}
