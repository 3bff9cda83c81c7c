//! The hub as the gateway uses it: started with its Redis fan-out, its RabbitMQ intake and the
//! sweeper of expired history, claiming its paths, and serving a request on them (the webhook or
//! an upgrade).

use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::auth::TokenVerifier;
use super::error::Result;
use super::fanout::{Fanout, Inbound};
use super::hub::Hub;
use super::settings::HubSettings;

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
            let inbound: Weak<dyn Inbound> = Arc::<Hub>::downgrade(&hub);
            let fanout = Fanout::start(&url, &hub.node_id, hub.settings.pubsub_channels.clone(), inbound)?;
            let _ = hub.fanout.set(fanout);
        }
        if unheard {
            tracing::warn!("websocket.integration.redis_pubsub.channels are set but no Redis URL is: nothing will be heard on them");
        }
        if let Some(queue) = hub.settings.message_queue.clone() {
            super::queue::start(queue, Arc::downgrade(&hub));
        }
        tokio::spawn(sweeper(Arc::downgrade(&hub)));
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

/// Drops expired history and idle channels now and then, until the hub is gone.
async fn sweeper(hub: Weak<Hub>) {
    let Some(every) = hub.upgrade().map(|h| h.sweep_interval()) else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(hub) = hub.upgrade() else { return };
        let removed = hub.sweep(std::time::Instant::now());
        if removed > 0 {
            tracing::debug!(
                removed,
                "removed WebSocket channels left without subscribers or history"
            );
        }
    }
}

impl Inbound for Hub {
    fn remote_frame(&self, channel: &str, frame: Utf8Bytes, target: Option<&str>) {
        self.deliver_remote(channel, frame, target);
    }

    fn backend_message(&self, channel: &str, payload: &[u8]) -> Result<usize> {
        self.deliver_backend_message(channel, payload)
    }
}
