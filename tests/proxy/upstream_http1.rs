//! The gateway's own HTTP/1.1 client towards plain `http` upstreams, end to end: the real
//! binary in front of a scripted upstream on loopback that writes exact bytes, so that every
//! way of delimiting a response body (RFC 9112 §6.3), interim answers, keep-alive reuse and
//! upstreams closing pooled connections are exercised as a real server would produce them.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::support::scripted::{gateway_for, Scripted, BIG};
use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};

async fn call(c: &TestClient, method: &str, url: &str, body: &'static str) -> Result<Reply, String> {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    send(c, req).await
}

#[tokio::test]
async fn every_kind_of_response_body_arrives_whole_on_reused_connections() {
    let up = Scripted::start().await;
    let gw = gateway_for(&up).await;
    let c = client();

    let r = call(&c, "GET", &gw.url("/chunked"), "").await.unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &b"hello world"[..]));
    assert!(r.header("transfer-encoding").is_none() || r.header("transfer-encoding") == Some("chunked"));

    let r = call(&c, "HEAD", &gw.url("/plain"), "").await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    let r = call(&c, "GET", &gw.url("/no-content"), "").await.unwrap();
    assert_eq!((r.status, r.body.len()), (204, 0));
    let r = call(&c, "GET", &gw.url("/continue"), "").await.unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &b"ok"[..]));

    // The request body is sent with its length; the head carries the gateway's headers.
    let r = call(&c, "POST", &gw.url("/echo?q=1"), "name=value")
        .await
        .unwrap();
    let seen = String::from_utf8_lossy(&r.body).to_string();
    assert!(seen.starts_with("POST /echo?q=1 HTTP/1.1\r\n"), "{seen}");
    assert!(seen.contains("\r\ncontent-length: 10\r\n"), "{seen}");
    assert!(seen.contains("\r\nx-request-id: "), "{seen}");
    assert!(seen.contains("\r\ntraceparent: 00-"), "{seen}");
    assert!(seen.ends_with("\r\n\r\nname=value"), "{seen}");

    let r = call(&c, "GET", &gw.url("/big"), "").await.unwrap();
    assert_eq!(r.body.len(), BIG);
    assert!(r
        .body
        .iter()
        .enumerate()
        .all(|(i, b)| *b == ((i % (64 * 1024)) % 251) as u8));

    // All of that went over one upstream connection, kept alive between requests.
    assert_eq!(up.connections(), 1, "one kept-alive upstream connection");

    // A body delimited by the end of the connection arrives whole; that connection is not
    // used again.
    let r = call(&c, "GET", &gw.url("/until-close"), "").await.unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &b"all of this, then the end"[..]));
    let r = call(&c, "GET", &gw.url("/plain"), "").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(up.connections(), 2);
}

#[tokio::test]
async fn connections_the_upstream_closed_are_replaced_without_an_error() {
    let up = Scripted::start().await;
    let gw = gateway_for(&up).await;
    let c = client();

    // The upstream closes the connection after answering: the next request gets a new one.
    for _ in 0..3 {
        let r = call(&c, "GET", &gw.url("/bye"), "").await.unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"bye"[..]));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(up.connections(), 3);

    // The upstream closes a pooled connection just as a request arrives on it. The request
    // had no answer, and GET may be sent twice: it is sent again on a new connection.
    let r = call(&c, "GET", &gw.url("/race"), "").await.unwrap();
    assert_eq!(r.status, 200);
    let r = call(&c, "GET", &gw.url("/race"), "").await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(up.connections(), 5);

    // A POST that was written whole is not sent again: the upstream may have acted on it.
    let r = call(&c, "POST", &gw.url("/race"), "x").await.unwrap();
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"]["code"], "bad_gateway");
    assert_eq!(up.connections(), 5);
}

#[tokio::test]
async fn broken_upstream_answers_are_bad_gateway_or_a_cut_body() {
    let up = Scripted::start().await;
    let gw = gateway_for(&up).await;
    let c = client();

    let r = call(&c, "GET", &gw.url("/garbage"), "").await.unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"]["code"], "bad_gateway");

    // The head promised 100 bytes and the upstream hung up after 10: the client must see an
    // incomplete message, not a short body passed off as whole.
    // (The gateway may not have flushed the head yet when the cut comes; then the whole
    // response fails.)
    match c
        .request(Request::get(gw.url("/cut")).body(Full::default()).unwrap())
        .await
    {
        Ok(resp) => assert!(
            resp.into_body().collect().await.is_err(),
            "a cut body is an error"
        ),
        Err(e) => assert!(format!("{e:?}").contains("IncompleteMessage"), "{e:?}"),
    }

    // The gateway goes on serving.
    let r = call(&c, "GET", &gw.url("/plain"), "").await.unwrap();
    assert_eq!(r.status, 200);
}
