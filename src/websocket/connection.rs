//! The upgrade on the hub path and the life of one connection: a reader and a writer joined in
//! one task. The writer owns pings, the pong deadline and the idle timeout; the reader answers
//! the protocol. Every wait also watches the connection's cancel token, so a dropped
//! connection never leaves a task behind.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::hub::{Conn, Hub, Outgoing};
use super::policy::RatePolicy;
use super::protocol::{self, ClientMessage, ProtocolError};
use super::{is_websocket_upgrade, query_param};
use crate::proxy::json_error;

type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// Frames written per flush when the queue has a backlog.
const WRITE_BATCH: usize = 64;
/// How long a close handshake may take before the connection is dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

fn refuse(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json_error(status, code, message, "")
}

impl Hub {
    /// Answers a request on the hub path: `101` and a new connection, or a JSON refusal.
    pub fn upgrade<B>(self: &Arc<Self>, peer: SocketAddr, mut req: Request<B>) -> Response<Full<Bytes>> {
        if self.is_stopping() {
            self.refused("shutting_down");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the gateway is shutting down",
            );
        }
        if req.method() != Method::GET {
            let mut r = refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "the WebSocket endpoint takes GET upgrades",
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET"));
            return r;
        }
        let h = req.headers();
        if !is_websocket_upgrade(h) {
            let mut r = refuse(
                StatusCode::UPGRADE_REQUIRED,
                "upgrade_required",
                "this is the WebSocket endpoint: send an HTTP/1.1 `Upgrade: websocket` request",
            );
            r.headers_mut()
                .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            return r;
        }
        if h.get(header::SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
            let mut r = refuse(
                StatusCode::UPGRADE_REQUIRED,
                "bad_request",
                "Sec-WebSocket-Version must be 13",
            );
            r.headers_mut()
                .insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            return r;
        }
        let Some(key) = h.get(header::SEC_WEBSOCKET_KEY).filter(|k| !k.is_empty()) else {
            return refuse(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Sec-WebSocket-Key is missing",
            );
        };
        let accept = derive_accept_key(key.as_bytes());
        let origin = h
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if !self
            .table
            .load()
            .channels
            .origin_allowed_anywhere(origin.as_deref())
        {
            self.refused("origin");
            return refuse(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this origin may not open WebSocket connections",
            );
        }
        let token = req
            .uri()
            .query()
            .and_then(|q| query_param(q, "token"))
            .filter(|t| !t.is_empty())
            .or_else(|| {
                h.get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(|t| t.trim().to_string())
            });
        let identity = match token {
            Some(t) => match self.verifier.verify(&t) {
                Ok(id) => Some(id),
                Err(e) => {
                    self.refused("unauthorized");
                    let mut r = refuse(StatusCode::UNAUTHORIZED, "unauthorized", &e);
                    r.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer error=\"invalid_token\""),
                    );
                    return r;
                }
            },
            None => None,
        };
        if !self.reserve() {
            self.refused("max_connections");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_connections",
                &format!(
                    "the gateway holds its maximum of {} WebSocket connections",
                    self.settings.max_connections
                ),
            );
        }
        let user_agent = h
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(200).collect());
        let (conn, rx) = self.register(peer, origin, user_agent, identity);
        let on_upgrade = hyper::upgrade::on(&mut req);
        let hub = self.clone();
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => run(&hub, &conn, rx, upgraded).await,
                Err(e) => tracing::debug!(connection = %conn.id, "WebSocket upgrade failed: {e}"),
            }
            hub.unregister(&conn);
        });
        let mut resp = Response::new(Full::default());
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let rh = resp.headers_mut();
        rh.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        rh.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(v) = HeaderValue::from_str(&accept) {
            rh.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        resp
    }
}

async fn run(hub: &Arc<Hub>, conn: &Arc<Conn>, rx: mpsc::Receiver<Outgoing>, upgraded: Upgraded) {
    let max = hub.settings.max_message_size.max(1024);
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(8 * 1024)
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let ws: Ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
    let (sink, stream) = ws.split();
    tokio::join!(read_loop(hub, conn, stream), write_loop(hub, conn, rx, sink));
}

async fn read_loop(hub: &Hub, conn: &Arc<Conn>, mut stream: SplitStream<Ws>) {
    let mut buckets: HashMap<String, Bucket> = HashMap::new();
    loop {
        let next = tokio::select! {
            biased;
            _ = conn.cancel.cancelled() => return,
            m = stream.next() => m,
        };
        match next {
            Some(Ok(msg)) => {
                conn.touch_rx();
                match msg {
                    Message::Text(text) => {
                        conn.touch_activity();
                        hub.count_received(conn, text.len());
                        handle_text(hub, conn, text.as_str(), &mut buckets).await;
                    }
                    Message::Binary(b) => {
                        conn.touch_activity();
                        hub.count_received(conn, b.len());
                        hub.error_to(
                            conn,
                            &ProtocolError::new(
                                "unsupported_frame",
                                "binary frames are not part of the protocol; send JSON text",
                            ),
                        );
                    }
                    Message::Close(_) => {
                        conn.reader_done.store(true, Ordering::SeqCst);
                        if conn.close_sent.load(Ordering::SeqCst) {
                            conn.cancel.cancel();
                        } else {
                            conn.close_with(None);
                        }
                        return;
                    }
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                }
            }
            Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
                tracing::debug!(connection = %conn.id, size, max_size, "WebSocket message too big");
                conn.reader_done.store(true, Ordering::SeqCst);
                conn.close(CloseCode::Size, "message too big");
                conn.cancel.cancelled().await;
                return;
            }
            Some(Err(_)) | None => {
                conn.cancel.cancel();
                return;
            }
        }
    }
}

async fn handle_text(hub: &Hub, conn: &Arc<Conn>, text: &str, buckets: &mut HashMap<String, Bucket>) {
    let msg = match ClientMessage::parse(text) {
        Ok(m) => m,
        Err(e) => return hub.error_to(conn, &e),
    };
    let result = match msg {
        ClientMessage::Auth { token } => match hub.verifier.verify(&token) {
            Ok(id) => match conn.identity() {
                Some(cur) if cur.user_id != id.user_id => Err(ProtocolError::new(
                    "forbidden",
                    format!(
                        "this connection is authenticated as {}; open a new one for another user",
                        cur.user_id
                    ),
                )),
                _ => {
                    let frame = protocol::auth_success(&id.user_id);
                    conn.set_identity(id);
                    hub.send(conn, Outgoing::Frame(frame));
                    Ok(())
                }
            },
            Err(e) => Err(ProtocolError::new("unauthorized", e)),
        },
        ClientMessage::Subscribe { channel } => hub.subscribe(conn, &channel).await,
        ClientMessage::Unsubscribe { channel } => {
            hub.unsubscribe(conn, &channel);
            Ok(())
        }
        ClientMessage::Broadcast { channel, message } => hub
            .client_broadcast(conn, &channel, &message, |rate| {
                buckets
                    .entry(channel.clone())
                    .or_insert_with(|| Bucket::new(rate))
                    .take(rate)
            })
            .map(|_| ()),
    };
    if let Err(e) = result {
        hub.error_to(conn, &e);
    }
}

/// Token bucket for one connection on one channel.
pub(crate) struct Bucket {
    tokens: f64,
    last: std::time::Instant,
}

impl Bucket {
    pub(crate) fn new(rate: &RatePolicy) -> Self {
        Bucket {
            tokens: f64::from(rate.burst),
            last: std::time::Instant::now(),
        }
    }

    /// Takes one token if there is one (the policy may have changed since the bucket was made).
    pub(crate) fn take(&mut self, rate: &RatePolicy) -> bool {
        let now = std::time::Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * f64::from(rate.per_minute) / 60.0;
        self.tokens = (self.tokens + refill).min(f64::from(rate.burst));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

async fn write_loop(
    hub: &Hub,
    conn: &Arc<Conn>,
    mut rx: mpsc::Receiver<Outgoing>,
    mut sink: SplitSink<Ws, Message>,
) {
    let s = &hub.settings;
    let ping_every = (!s.ping_interval.is_zero()).then_some(s.ping_interval);
    let idle = (!s.idle_timeout.is_zero()).then_some(s.idle_timeout);
    let far = Duration::from_secs(86400 * 365);
    let mut next_ping = Instant::now() + ping_every.unwrap_or(far);
    // (deadline, connection clock in ms when the ping went out)
    let mut pong_due: Option<(Instant, u64)> = None;
    // The idle deadline only moves later with activity, so it is re-read when the timer fires
    // rather than re-arming the timer on every message.
    let mut idle_at = idle.map_or(Instant::now() + far, |d| Instant::now() + d);
    let timer = tokio::time::sleep(far);
    tokio::pin!(timer);
    let mut batch: Vec<Message> = Vec::with_capacity(8);
    loop {
        let mut wake = next_ping.min(idle_at);
        if let Some((d, _)) = pong_due {
            wake = wake.min(d);
        }
        if timer.deadline() != wake {
            timer.as_mut().reset(wake);
        }
        tokio::select! {
            biased;
            _ = conn.cancel.cancelled() => return,
            out = rx.recv() => {
                let Some(out) = out else { return };
                let mut close = None;
                push(out, &mut batch, &mut close);
                while close.is_none() && batch.len() < WRITE_BATCH {
                    match rx.try_recv() {
                        Ok(more) => push(more, &mut batch, &mut close),
                        Err(_) => break,
                    }
                }
                if !batch.is_empty() {
                    let n = batch.len() as u64;
                    let sent = tokio::select! {
                        biased;
                        _ = conn.cancel.cancelled() => return,
                        r = send_all(&mut sink, &mut batch) => r,
                    };
                    if sent.is_err() {
                        conn.cancel.cancel();
                        return;
                    }
                    conn.counted_sent(n);
                    conn.touch_activity();
                    hub.metrics.ws.messages_sent_total.inc_by(n);
                }
                if let Some(frame) = close {
                    finish(hub, conn, &mut sink, frame).await;
                    return;
                }
            }
            _ = &mut timer => {
                let now = Instant::now();
                if let Some((deadline, sent_ms)) = pong_due {
                    if now >= deadline {
                        pong_due = None;
                        if conn.last_rx_ms() < sent_ms {
                            conn.close(CloseCode::Away, "ping timeout");
                            continue;
                        }
                    }
                }
                if let Some(idle) = idle {
                    idle_at = Instant::from_std(conn.last_activity()) + idle;
                    if now >= idle_at {
                        idle_at = now + far;
                        conn.close(CloseCode::Normal, "idle timeout");
                        continue;
                    }
                }
                if let Some(every) = ping_every {
                    if now >= next_ping {
                        next_ping = now + every;
                        let sent_ms = conn.now_ms();
                        let r = tokio::select! {
                            biased;
                            _ = conn.cancel.cancelled() => return,
                            r = sink.send(Message::Ping(Bytes::new())) => r,
                        };
                        if r.is_err() {
                            conn.cancel.cancel();
                            return;
                        }
                        pong_due = Some((now + s.pong_timeout, sent_ms));
                    }
                }
            }
        }
    }
}

fn push(
    out: Outgoing,
    batch: &mut Vec<Message>,
    close: &mut Option<Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>>,
) {
    match out {
        Outgoing::Frame(t) => batch.push(Message::Text(t)),
        Outgoing::Batch(list) => batch.extend(list.into_iter().map(Message::Text)),
        Outgoing::Close(f) => *close = Some(f),
    }
}

async fn send_all(sink: &mut SplitSink<Ws, Message>, batch: &mut Vec<Message>) -> Result<(), WsError> {
    for m in batch.drain(..) {
        sink.feed(m).await?;
    }
    sink.flush().await
}

/// Sends our close frame (or completes the peer's) and waits briefly for the other side.
async fn finish(
    hub: &Hub,
    conn: &Conn,
    sink: &mut SplitSink<Ws, Message>,
    frame: Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>,
) {
    hub.mark_closing(conn);
    let peer_started = frame.is_none();
    let send = async {
        if peer_started {
            let _ = sink.close().await;
        } else {
            let _ = sink.send(Message::Close(frame)).await;
        }
    };
    tokio::select! {
        biased;
        _ = conn.cancel.cancelled() => return,
        _ = tokio::time::timeout(Duration::from_secs(1), send) => {}
    }
    conn.close_sent.store(true, Ordering::SeqCst);
    if peer_started || conn.reader_done.load(Ordering::SeqCst) {
        conn.cancel.cancel();
        return;
    }
    tokio::select! {
        _ = conn.cancel.cancelled() => {}
        _ = tokio::time::sleep(CLOSE_WAIT) => conn.cancel.cancel(),
    }
}
