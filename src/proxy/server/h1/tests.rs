//! Tests of the fast path: what it takes, what it leaves to the general server, what it
//! refuses; how it frames responses; shutdown, flushing, and the hand-off stream.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::Version;
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use tokio::net::TcpStream;

use super::parse::MAX_FAST_BODY;
use super::*;
use crate::proxy::error::ProxyError;
use crate::proxy::fields::MAX_FIELDS;
use crate::proxy::server::rewind::Rewind;

const LIMITS: ConnLimits = ConnLimits {
    max_header_size: 8192,
    keepalive: None,
    send: None,
    h2_idle: None,
};

fn none(_: &str) -> bool {
    false
}

fn next(raw: &str) -> (Next, BytesMut) {
    let mut buf = BytesMut::from(raw);
    let n = parse(&mut buf, 8192, &none);
    (n, buf)
}

fn fast(raw: &str) -> (Parsed, BytesMut) {
    match next(raw) {
        (Next::Fast(p), rest) => (p, rest),
        _ => panic!("not taken: {raw:?}"),
    }
}

fn is_other(raw: &str) -> bool {
    matches!(next(raw).0, Next::Other)
}

#[test]
fn plain_requests_are_taken_with_their_body() {
    let (p, rest) = fast("GET /a/b?c=d HTTP/1.1\r\nHost: x\r\nX-Two: 1\r\nx-two: 2\r\n\r\nGET /next");
    let req = p.request;
    assert_eq!(
        (req.method(), req.uri().path(), req.uri().query()),
        (&Method::GET, "/a/b", Some("c=d"))
    );
    assert_eq!(req.version(), Version::HTTP_11);
    assert_eq!(req.headers()["host"], "x");
    assert_eq!(req.headers().get_all("x-two").iter().count(), 2);
    assert!(req.body().is_end_stream());
    assert!(!p.close);
    assert_eq!(&rest[..], b"GET /next", "the next request stays in the buffer");

    let (p, rest) =
        fast("POST / HTTP/1.1\r\nContent-Length: 3\r\nConnection: keep-alive, close\r\n\r\nabcdef");
    assert!(p.close);
    match p.request.body() {
        ClientBody::Read(b) => assert_eq!(&b[..], b"abc"),
        ClientBody::Streamed(_) => panic!("streamed"),
    }
    assert_eq!(&rest[..], b"def");
}

#[test]
fn everything_else_is_left_to_the_general_server() {
    assert!(matches!(next("GET / HTTP/1.1\r\nHost: x\r\n").0, Next::Partial));
    assert!(matches!(next("").0, Next::Partial));
    for raw in [
        "GET / HTTP/1.0\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "GET http://x/ HTTP/1.1\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "GET / HTTP/1.1\r\nConnection: upgrade\r\n\r\n",
        "PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabc",
    ] {
        assert!(is_other(raw), "{raw:?}");
    }
    let big = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", MAX_FAST_BODY + 1);
    assert!(is_other(&big));
    // Paths the general server claims.
    let mut buf = BytesMut::from("GET /ws?token=1 HTTP/1.1\r\n\r\n");
    assert!(matches!(
        parse(&mut buf, 8192, &|p: &str| p == "/ws"),
        Next::Other
    ));
    // Nothing is taken from the buffer of a request left alone.
    let raw = "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    let (n, rest) = next(raw);
    assert!(matches!(n, Next::Other));
    assert_eq!(&rest[..], raw.as_bytes());
}

#[test]
fn heads_no_server_can_serve_are_refused() {
    for raw in [
        "GARBAGE\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        "GET / HTTP/1.1\r\nX: \x01\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\na",
        "GET /a<b> HTTP/1.1\r\n\r\n",
        "GET /a`b HTTP/1.1\r\n\r\n",
        // Versions neither server takes (HTTP/2 only with its preface).
        "GET / HTTP/2.0\r\n\r\n",
        "GET / HTTP/1.2\r\n\r\n",
        "GET / HTTP/3\r\n\r\n",
    ] {
        assert!(
            matches!(next(raw).0, Next::Refused(ProxyError::BadRequest(_))),
            "{raw:?}"
        );
    }
    // A head over the limit, whole or not, or with too many fields.
    let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
    let many: String = (0..=MAX_FIELDS).map(|i| format!("X-{i}: v\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
    let long_10 = long.replace("HTTP/1.1", "HTTP/1.0");
    for raw in [&long, &long[..8500], &many, &long_10] {
        assert!(matches!(next(raw).0, Next::Refused(ProxyError::HeadersTooLarge)));
    }
}

impl<S> WireHead for StreamBody<S> {}

async fn written<B: Body<Data = Bytes> + WireHead>(resp: Response<B>, head: bool, close: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    let mut out = Vec::new();
    write_response(&mut server, &mut out, resp, head, close)
        .await
        .unwrap();
    drop(server);
    let mut got = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut client, &mut got)
        .await
        .unwrap();
    String::from_utf8(got).unwrap()
}

#[tokio::test]
async fn responses_are_framed_as_rfc_9112_says() {
    let mut resp = Response::new(Full::new(Bytes::from_static(b"{}")));
    resp.headers_mut().insert("x-a", HeaderValue::from_static("1"));
    let text = written(resp, false, false).await;
    assert!(
        text.starts_with("HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 2\r\ndate: "),
        "{text}"
    );
    assert!(text.ends_with(" GMT\r\n\r\n{}"), "{text}");

    // Unknown length: chunked, ended by the last chunk; close is announced.
    let frames = futures_util::stream::iter(
        ["ab", "", "cde"].map(|s| Ok::<_, Infallible>(Frame::data(Bytes::from_static(s.as_bytes())))),
    );
    let mut resp = Response::new(StreamBody::new(frames));
    resp.headers_mut()
        .insert(header::DATE, HeaderValue::from_static("then"));
    let text = written(resp, false, true).await;
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\ndate: then\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"
    );

    // HEAD: the length of the body that would be, and no body.
    let text = written(Response::new(Full::new(Bytes::from_static(b"abc"))), true, false).await;
    assert!(
        text.contains("content-length: 3\r\n") && text.ends_with("\r\n\r\n"),
        "{text}"
    );

    // 204 and 304: no body, and no length made up for them.
    for status in [StatusCode::NO_CONTENT, StatusCode::NOT_MODIFIED] {
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = status;
        let text = written(resp, false, false).await;
        assert!(
            !text.contains("content-length") && !text.contains("chunked"),
            "{text}"
        );
        assert!(text.ends_with("\r\n\r\n"));
    }

    // A body that fails midway: the connection can not go on.
    let frames = futures_util::stream::iter([
        Ok(Frame::data(Bytes::from_static(b"ab"))),
        Err(io::Error::other("cut")),
    ]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let _client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    let resp = Response::new(StreamBody::new(frames));
    assert!(write_response(&mut server, &mut Vec::new(), resp, false, false)
        .await
        .is_err());
}

/// Shutdown closes a connection waiting for its next request, also after it served some.
#[tokio::test]
async fn an_idle_connection_closes_when_told_to_stop() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    let (server, peer) = listener.accept().await.unwrap();
    let (tx, mut rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let handler = |_: SocketAddr, _: Request<ClientBody>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        };
        serve_connection(server, peer, &handler, &none, &|_| {}, LIMITS, &mut rx).await
    });
    let mut got = Vec::new();
    for _ in 0..2 {
        got.clear();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        while !got.ends_with(b"\r\n\r\nok") {
            let mut more = [0u8; 1024];
            let n = tokio::io::AsyncReadExt::read(&mut client, &mut more)
                .await
                .unwrap();
            assert!(n > 0, "closed early");
            got.extend_from_slice(&more[..n]);
        }
    }
    tx.send(true).unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the idle connection ends")
        .unwrap();
    assert!(matches!(ended, Ended::Closed));
    let mut rest = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut client, &mut rest)
        .await
        .unwrap();
    assert!(rest.is_empty());
}

/// On a stream that buffers what is written (as TLS does when the socket is full), each
/// answer is flushed, and so is a streamed body's data before the wait for more.
#[tokio::test]
async fn answers_are_flushed_through_a_buffering_stream() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    let (server, peer) = listener.accept().await.unwrap();
    let (more_tx, more_rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let more_rx = std::sync::Mutex::new(Some(more_rx));
    let (_stop, mut rx) = watch::channel(false);
    tokio::spawn(async move {
        let handler = |_: SocketAddr, req: Request<ClientBody>| {
            let streamed = req.uri().path() == "/stream";
            let rx = streamed.then(|| more_rx.lock().unwrap().take()).flatten();
            async move {
                let body: http_body_util::Either<Full<Bytes>, _> = match rx {
                    None => http_body_util::Either::Left(Full::new(Bytes::from_static(b"ok"))),
                    Some(rx) => http_body_util::Either::Right(StreamBody::new(futures_util::stream::unfold(
                        rx,
                        |mut rx| async move { Some((Ok::<_, io::Error>(Frame::data(rx.recv().await?)), rx)) },
                    ))),
                };
                Ok::<_, Infallible>(Response::new(body))
            }
        };
        let stream = tokio::io::BufWriter::new(server);
        serve_connection(stream, peer, &handler, &none, &|_| {}, LIMITS, &mut rx).await
    });
    let mut got = Vec::new();
    let mut read_until = async |client: &mut TcpStream, end: &[u8]| {
        while !got.ends_with(end) {
            let mut more = [0u8; 1024];
            let n = tokio::time::timeout(
                Duration::from_secs(5),
                tokio::io::AsyncReadExt::read(client, &mut more),
            )
            .await
            .unwrap_or_else(|_| panic!("no {:?} within 5 s", String::from_utf8_lossy(end)))
            .unwrap();
            assert!(n > 0, "closed early");
            got.extend_from_slice(&more[..n]);
        }
    };
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    read_until(&mut client, b"\r\n\r\nok").await;
    client
        .write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    more_tx.send(Bytes::from_static(b"first")).await.unwrap();
    read_until(&mut client, b"5\r\nfirst\r\n").await;
    more_tx.send(Bytes::from_static(b"second")).await.unwrap();
    read_until(&mut client, b"6\r\nsecond\r\n").await;
    drop(more_tx);
    read_until(&mut client, b"0\r\n\r\n").await;
}

#[tokio::test]
async fn rewind_reads_the_taken_bytes_first() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    client.write_all(b" world").await.unwrap();
    drop(client);
    let mut io = Rewind::new(server, Bytes::from_static(b"hello"));
    let mut got = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut io, &mut got)
        .await
        .unwrap();
    assert_eq!(got, b"hello world");
    let body = ClientBody::Read(Bytes::from_static(b"x"));
    assert_eq!(body.collect().await.unwrap().to_bytes(), "x");
}
