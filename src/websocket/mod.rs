//! The WebSocket hub (SPEC §5): connections on `websocket.server.path`, channels with
//! policies from `WebSocketChannel` resources and `websocket.channels`, history, the backend
//! webhook, and fan-out across replicas through Redis.
//!
//! ```text
//!  client ──upgrade──> Hub::upgrade ──> Conn (reader + writer, bounded queue)
//!                         │                    ▲
//!  webhook / admin ──> Hub::publish ──> channel subscribers (local) ──> Redis PUBLISH ──> other replicas
//! ```
//!
//! Channel policies are compiled with the routing table (`RoutingTable::channels`), so a
//! changed resource applies through the same swap as routes.

pub mod auth;
mod connection;
mod error;
pub mod fanout;
mod hub;
mod outbox;
pub mod protocol;
mod request;
mod settings;
mod webhook;

pub use auth::{Identity, TokenVerifier};
pub use error::{Error, Result};
pub use hub::{Conn, Hub};
pub use request::{is_websocket_upgrade, query_param};
pub use settings::{HubSettings, QUEUE_CAPACITY};

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;

impl Hub {
    /// Builds the hub and, when Redis is configured, starts its fan-out.
    pub fn start(
        settings: HubSettings,
        table: crate::routing::TableHandle,
        verifier: Arc<dyn TokenVerifier>,
        metrics: crate::telemetry::Metrics,
    ) -> Result<Arc<Hub>> {
        let url = settings.redis_url.clone();
        let unheard = url.is_none() && !settings.pubsub_channels.is_empty();
        let hub = Arc::new(Hub::new(settings, table, verifier, metrics));
        if let Some(url) = url {
            fanout::Fanout::start(&hub, &url)?;
        }
        if unheard {
            tracing::warn!("websocket.integration.redis_pubsub.channels are set but no Redis URL is: nothing will be heard on them");
        }
        Ok(hub)
    }

    /// Whether the proxy should hand a request for `path` to the hub.
    pub fn claims(&self, path: &str) -> bool {
        path == self.settings.path || self.settings.webhook_path.as_deref() == Some(path)
    }

    /// Serves a request the hub claimed: the webhook or an upgrade.
    pub async fn handle<B>(self: &Arc<Self>, peer: SocketAddr, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if self.settings.webhook_path.as_deref() == Some(req.uri().path()) {
            self.webhook(req).await
        } else {
            self.upgrade(peer, req)
        }
    }
}
