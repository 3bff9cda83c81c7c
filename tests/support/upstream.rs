//! The test upstream: a real HTTP server on loopback (HTTP/1.1, or h2c), whose answers are set
//! by a mode that the test can change while it runs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the upstream does with the next requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// 200 with JSON describing the request it received:
    /// `{"server": name, "method", "path", "version", "headers": {..}}`. Paths steer it:
    /// `/sleep/MS` waits first, `/status/CODE` answers that code.
    Echo = 0,
    /// 200 with the upstream's name as the body.
    Ok = 1,
    /// 500 `<name> failed`.
    Fail500 = 2,
    /// Close the connection without answering.
    Close = 3,
    /// Answer `Ok` after 2 seconds, without reading the request body.
    Slow = 4,
    /// Read the whole request body first, then answer `200 <name> read <bytes>`.
    ReadBody = 5,
}

impl Mode {
    fn of(n: u8) -> Option<Mode> {
        [
            Mode::Echo,
            Mode::Ok,
            Mode::Fail500,
            Mode::Close,
            Mode::Slow,
            Mode::ReadBody,
        ]
        .into_iter()
        .find(|m| *m as u8 == n)
    }
}

/// `health_mode` before `set_health`: `/health` is a request like any other.
const LIKE_ANY_PATH: u8 = u8::MAX;

/// A real upstream on loopback. `stop` closes the listener and every connection; `restart`
/// listens again on the same port. Dropping it stops it.
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    h2c: bool,
    mode: Arc<AtomicU8>,
    health_mode: Arc<AtomicU8>,
    hits: Arc<AtomicUsize>,
    health_hits: Arc<AtomicUsize>,
    task: Option<JoinHandle<()>>,
}

impl Upstream {
    /// An HTTP/1.1 upstream in `Mode::Echo`.
    pub async fn start(name: &str) -> Upstream {
        Self::listen(name, Mode::Echo, false).await
    }

    /// An h2c (HTTP/2 with prior knowledge) upstream in `Mode::Echo`.
    pub async fn start_h2c(name: &str) -> Upstream {
        Self::listen(name, Mode::Echo, true).await
    }

    /// An HTTP/1.1 upstream in `mode`.
    pub async fn start_mode(name: &str, mode: Mode) -> Upstream {
        Self::listen(name, mode, false).await
    }

    async fn listen(name: &str, mode: Mode, h2c: bool) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
        let mut u = Upstream {
            name: name.to_string(),
            addr: listener.local_addr().expect("addr"),
            h2c,
            mode: Arc::new(AtomicU8::new(mode as u8)),
            health_mode: Arc::new(AtomicU8::new(LIKE_ANY_PATH)),
            hits: Arc::new(AtomicUsize::new(0)),
            health_hits: Arc::new(AtomicUsize::new(0)),
            task: None,
        };
        u.task = Some(u.serve(listener));
        u
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// From now on `/health` (health checks) is answered in `mode` and counted apart
    /// (`health_hits`), not in `hits`.
    pub fn set_health(&self, mode: Mode) {
        self.health_mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Requests received (health checks left out once `set_health` was called).
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn health_hits(&self) -> usize {
        self.health_hits.load(Ordering::SeqCst)
    }

    pub fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    pub async fn restart(&mut self) {
        self.stop();
        let listener = TcpListener::bind(self.addr).await.expect("rebind upstream");
        self.task = Some(self.serve(listener));
    }

    fn serve(&self, listener: TcpListener) -> JoinHandle<()> {
        let name: Arc<str> = Arc::from(self.name.as_str());
        let h2c = self.h2c;
        let (mode, health_mode) = (self.mode.clone(), self.health_mode.clone());
        let (hits, health_hits) = (self.hits.clone(), self.health_hits.clone());
        tokio::spawn(async move {
            // Connections live in the set, so that stopping the upstream closes them too.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                while conns.try_join_next().is_some() {}
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let name = name.clone();
                let (mode, health_mode) = (mode.clone(), health_mode.clone());
                let (hits, health_hits) = (hits.clone(), health_hits.clone());
                let svc = service_fn(move |req: Request<Incoming>| {
                    let health = health_mode.load(Ordering::SeqCst);
                    let m = if req.uri().path() == "/health" && health != LIKE_ANY_PATH {
                        health_hits.fetch_add(1, Ordering::SeqCst);
                        health
                    } else {
                        hits.fetch_add(1, Ordering::SeqCst);
                        mode.load(Ordering::SeqCst)
                    };
                    answer(name.clone(), Mode::of(m).unwrap_or(Mode::Ok), req)
                });
                conns.spawn(async move {
                    let io = TokioIo::new(stream);
                    if h2c {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, svc)
                            .await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, svc)
                            .await;
                    }
                });
            }
        })
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The answer in `mode`; an error closes the connection.
async fn answer(
    name: Arc<str>,
    mode: Mode,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, &'static str> {
    let (status, body) = match mode {
        Mode::Echo => return Ok(echo(&name, req).await),
        Mode::Ok => (StatusCode::OK, name.to_string()),
        Mode::Fail500 => (StatusCode::INTERNAL_SERVER_ERROR, format!("{name} failed")),
        Mode::Close => return Err("closing"),
        Mode::Slow => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            (StatusCode::OK, name.to_string())
        }
        Mode::ReadBody => match req.into_body().collect().await {
            Ok(b) => (StatusCode::OK, format!("{name} read {}", b.to_bytes().len())),
            Err(_) => return Err("the request body broke off"),
        },
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    Ok(resp)
}

async fn echo(name: &str, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let mut status = StatusCode::OK;
    if let Some(ms) = path.strip_prefix("/sleep/").and_then(|m| m.parse::<u64>().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(code) = path.strip_prefix("/status/").and_then(|c| c.parse::<u16>().ok()) {
        status = StatusCode::from_u16(code).unwrap();
    }
    let headers: HashMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = serde_json::json!({
        "server": name,
        "method": req.method().as_str(),
        "path": req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        "version": format!("{:?}", req.version()),
        "headers": headers,
    });
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    resp.headers_mut()
        .insert("connection", "keep-alive".parse().unwrap());
    resp
}
