//! Tests of the forward phase's clients.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::general::general_client;

/// Idle pooled connections of the general client are closed by the pool's timer, with no
/// later request to find them: a real HTTP/1.1 and a real h2c server count what is open.
#[tokio::test]
async fn the_general_client_closes_idle_connections() {
    for h2 in [false, true] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicUsize::new(0));
        let counted = open.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let open = counted.clone();
                open.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|_req: Request<Incoming>| async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    if h2 {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, svc)
                            .await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, svc)
                            .await;
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        let client = general_client(HttpConnector::new(), Duration::from_millis(200), h2);
        let req = Request::get(format!("http://{addr}/"))
            .body(Either::Right(Full::new(Bytes::new())))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.into_body().collect().await.unwrap();
        assert_eq!(open.load(Ordering::SeqCst), 1, "h2: {h2}");
        let until = Instant::now() + Duration::from_secs(5);
        while open.load(Ordering::SeqCst) > 0 {
            assert!(
                Instant::now() < until,
                "an idle connection stayed open (h2: {h2})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.abort();
    }
}
