//! The life of one upgraded connection: a reader and a writer joined in one task. The reader
//! decodes frames (tungstenite) and answers the protocol; what it and tungstenite send (pongs,
//! close replies) goes through the connection's outbox like everything else, so frames never
//! interleave. The writer drains the outbox when the socket is full and owns pings, the pong
//! deadline, the idle timeout, the deadline to authenticate and the close handshake. Every
//! wait also watches the connection's cancel token, so a dropped connection never leaves a
//! task behind. The reader holds each connection to `websocket.limits.messages_per_second`.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::access::Bucket;
use super::client::ClientConnection;
use super::delivery::Delivery;
use super::hub::Hub;
use super::outbox::{self, Pushed, WriterEvent};
use super::protocol::{self, ClientMessage, ProtocolError};
use crate::routing::channels::RatePolicy;

type Ws = WebSocketStream<ReadSide>;
/// How long a close handshake may take before the connection is dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// The socket as tungstenite sees it: reads from the socket, writes into the outbox.
struct ReadSide {
    rd: ReadHalf<TokioIo<Upgraded>>,
    conn: Arc<ClientConnection>,
    hub: Arc<Hub>,
}

impl AsyncRead for ReadSide {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.rd).poll_read(cx, buf)
    }
}

impl AsyncWrite for ReadSide {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        // Pongs and close replies; dropped once the connection is closing or full (and then
        // the connection goes away anyway).
        if self.conn.out.push(Bytes::copy_from_slice(buf), 0) == Pushed::Full {
            self.conn.cancel.cancel();
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.hub.count_sent(self.conn.write_now());
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Serves an upgraded connection until it closes or is dropped.
pub(super) async fn run(hub: &Arc<Hub>, conn: &Arc<ClientConnection>, upgraded: Upgraded) {
    let max = hub.settings.max_message_size.max(1024);
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let (rd, wr) = tokio::io::split(TokioIo::new(upgraded));
    conn.out.attach(Box::pin(wr));
    let side = ReadSide {
        rd,
        conn: conn.clone(),
        hub: hub.clone(),
    };
    let ws: Ws = WebSocketStream::from_raw_socket(side, Role::Server, Some(config)).await;
    tokio::join!(read_loop(hub, conn, ws), write_loop(hub, conn));
}

async fn read_loop(hub: &Hub, conn: &Arc<ClientConnection>, mut stream: Ws) {
    let mut buckets: HashMap<String, Bucket> = HashMap::new();
    // `websocket.limits.messages_per_second`: every data frame takes a token.
    let mut frames = hub.settings.limits.message_rate.map(|(per_second, burst)| {
        let rate = RatePolicy {
            per_minute: per_second.saturating_mul(60),
            burst,
        };
        (Bucket::new(&rate), rate)
    });
    let mut within_rate = move || frames.as_mut().is_none_or(|(b, rate)| b.take(rate));
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
                    Message::Text(_) | Message::Binary(_) if !within_rate() => {
                        conn.touch_activity();
                        hub.count_received(conn, msg.len());
                        hub.error_to(conn, &too_fast(hub));
                    }
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
                            // tungstenite queued its reply to the peer's close: hand it to
                            // the outbox, which the writer drains before closing.
                            let _ = stream.flush().await;
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

async fn handle_text(
    hub: &Hub,
    conn: &Arc<ClientConnection>,
    text: &str,
    buckets: &mut HashMap<String, Bucket>,
) {
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
                    hub.send(conn, Delivery::Frame(frame));
                    Ok(())
                }
            },
            Err(e) => Err(ProtocolError::new("unauthorized", e.to_string())),
        },
        ClientMessage::Subscribe { channel } => hub.subscribe(conn, &channel).await,
        ClientMessage::Unsubscribe { channel } => {
            hub.unsubscribe(conn, &channel);
            forget_buckets(hub, conn, buckets);
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

/// The answer to a frame beyond `websocket.limits.messages_per_second`.
fn too_fast(hub: &Hub) -> ProtocolError {
    let (per_second, burst) = hub.settings.limits.message_rate.unwrap_or_default();
    ProtocolError::new(
        "rate_limited",
        format!("more than {per_second} messages per second (burst {burst}) on this connection"),
    )
}

/// Forgets the Broadcast buckets that no longer hold anything back: those of channels the
/// connection left whose bucket is full again (a fresh one would be the same). A bucket that
/// is not yet full stays, so that leaving and joining again does not refill it. Runs only
/// once there are more buckets than subscriptions allowed.
fn forget_buckets(hub: &Hub, conn: &ClientConnection, buckets: &mut HashMap<String, Bucket>) {
    let allowed = hub.settings.limits.max_subscriptions.unwrap_or(100);
    if buckets.len() <= allowed {
        return;
    }
    buckets.retain(|channel, bucket| {
        conn.is_subscribed(channel)
            || hub
                .policy(channel)
                .rate_limit
                .as_ref()
                .is_some_and(|rate| !bucket.is_full(rate))
    });
}

async fn write_loop(hub: &Hub, conn: &Arc<ClientConnection>) {
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
    // A connection without a token on a hub that admits no anonymous clients has until then
    // to authenticate.
    let mut auth_due = s
        .auth_deadline()
        .filter(|_| conn.identity().is_none())
        .map(|d| Instant::now() + d);
    let timer = tokio::time::sleep(far);
    tokio::pin!(timer);
    loop {
        let mut wake = next_ping.min(idle_at);
        if let Some((d, _)) = pong_due {
            wake = wake.min(d);
        }
        if let Some(d) = auth_due {
            wake = wake.min(d);
        }
        if timer.deadline() != wake {
            timer.as_mut().reset(wake);
        }
        tokio::select! {
            biased;
            _ = conn.cancel.cancelled() => return,
            ev = std::future::poll_fn(|cx| conn.out.poll_writer(cx)) => match ev {
                WriterEvent::Wrote(n) => {
                    if n > 0 {
                        conn.touch_activity();
                        hub.count_sent(n);
                    }
                }
                WriterEvent::Close(frame) => {
                    finish(hub, conn, frame).await;
                    return;
                }
                WriterEvent::Failed => {
                    conn.cancel.cancel();
                    return;
                }
            },
            _ = &mut timer => {
                let now = Instant::now();
                if auth_due.is_some_and(|d| now >= d) {
                    auth_due = None;
                    if conn.identity().is_none() {
                        conn.close(CloseCode::Policy, "authentication timeout");
                        continue;
                    }
                }
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
                        // Queued behind any backlog; the writer's next turn writes it.
                        if conn.out.push(outbox::ping(), 0) == Pushed::Full {
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

/// Sends our close frame (or completes the peer's) and waits briefly for the other side.
async fn finish(
    hub: &Hub,
    conn: &ClientConnection,
    frame: Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>,
) {
    hub.mark_closing(conn);
    let peer_started = frame.is_none();
    // The peer's close was answered by tungstenite through the outbox already.
    conn.out.push_last(frame.map(|f| outbox::close(Some(f))));
    tokio::select! {
        biased;
        _ = conn.cancel.cancelled() => return,
        _ = tokio::time::timeout(Duration::from_secs(1), std::future::poll_fn(|cx| conn.out.poll_drained(cx))) => {}
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
