//! RabbitMQ (AMQP 0-9-1): backends publish webhook bodies on an exchange
//! (`integration.message_queue.exchange`) and every replica delivers each message to its own
//! subscribers, exactly as if the webhook had been called on it.
//!
//! Each replica declares the exchange (durable, `exchange_type`, `topic` by default) when it
//! is missing, and an exclusive, auto-delete, server-named queue of its own bound to it with
//! `binding_key` (`#`: everything). So each replica gets each message once; it delivers it
//! locally only (never through the Redis fan-out, which would deliver it a second time on
//! every other replica). A message is acknowledged once it was handed to the hub; a malformed
//! one is rejected without requeue, logged and counted, and consumption goes on.
//!
//! The broker being away never stops the gateway: the intake reconnects with backoff (0.5 s
//! doubling to 30 s), `websocket_queue_connected` says 0 meanwhile, and `/ready` is unaffected.
//! While no queue of a replica is bound, the exchange drops what is published to it.

use std::sync::Weak;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};

use super::hub::Hub;
use super::settings::{redact_url, QueueSettings};
use crate::routing::{SecretUrl, TableHandle};

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the table is looked at for a URL from `url_secret_ref` (a first one, a new one).
const URL_POLL: Duration = Duration::from_secs(1);

/// Starts consuming for `hub` until it is gone.
pub(crate) fn start(settings: QueueSettings, hub: Weak<Hub>) {
    tokio::spawn(intake(settings, hub));
}

/// The URL to connect to: `url`, or the one the live table read from `url_secret_ref`
/// (`None` while there is none: the Secret or its key is missing or invalid, a problem the
/// publisher logs).
fn current_url(settings: &QueueSettings, table: &TableHandle) -> Option<String> {
    if let Some(url) = &settings.url {
        return Some(url.clone());
    }
    match &table.load().queue_url {
        Some(SecretUrl::Ready(url)) => Some(url.to_string()),
        _ => None,
    }
}

/// Why a session ended without an error.
enum Ended {
    /// The broker closed the consumer, or the hub is gone.
    Closed,
    /// The Secret now holds another URL (a rotated password).
    UrlChanged,
}

async fn intake(settings: QueueSettings, hub: Weak<Hub>) {
    let mut backoff = FIRST_BACKOFF;
    let mut waiting_said = false;
    loop {
        let Some((gauge, table)) = hub
            .upgrade()
            .map(|h| (h.metrics.ws.queue_connected.clone(), h.table.clone()))
        else {
            return;
        };
        let Some(url) = current_url(&settings, &table) else {
            if !waiting_said {
                tracing::warn!(
                    exchange = %settings.exchange,
                    "WebSocket hub: the RabbitMQ intake waits for a usable URL in its Secret (url_secret_ref)"
                );
                waiting_said = true;
            }
            tokio::time::sleep(URL_POLL).await;
            continue;
        };
        waiting_said = false;
        let shown = redact_url(&url);
        let outcome = session(&settings, &url, &shown, &hub, &table, &mut backoff).await;
        gauge.set(0);
        match outcome {
            Ok(_) if hub.strong_count() == 0 => return,
            Ok(Ended::UrlChanged) => {
                tracing::info!(
                    url = %shown,
                    exchange = %settings.exchange,
                    "WebSocket hub: the RabbitMQ URL in the Secret changed; reconnecting"
                );
                backoff = FIRST_BACKOFF;
                continue;
            }
            Ok(Ended::Closed) => tracing::warn!(
                url = %shown,
                exchange = %settings.exchange,
                "WebSocket hub: the RabbitMQ intake is down (the broker closed the consumer); reconnecting in {backoff:?}"
            ),
            Err(e) => tracing::warn!(
                url = %shown,
                exchange = %settings.exchange,
                "WebSocket hub: the RabbitMQ intake is down ({e}); reconnecting in {backoff:?}"
            ),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection: declare, bind, consume until the connection or the hub goes, or the URL
/// from the Secret changes.
async fn session(
    settings: &QueueSettings,
    url: &str,
    shown: &str,
    hub: &Weak<Hub>,
    table: &TableHandle,
    backoff: &mut Duration,
) -> Result<Ended, String> {
    let conn = tokio::time::timeout(
        CONNECT_TIMEOUT,
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await
    .map_err(|_| format!("connecting timed out after {CONNECT_TIMEOUT:?}"))?
    .map_err(|e| format!("connecting: {}", redact_error(&e.to_string(), url)))?;
    let channel = conn
        .create_channel()
        .await
        .map_err(|e| format!("opening a channel: {e}"))?;
    channel
        .basic_qos(settings.prefetch, BasicQosOptions::default())
        .await
        .map_err(|e| format!("basic.qos: {e}"))?;
    let kind = match settings.exchange_type.as_str() {
        "topic" => ExchangeKind::Topic,
        "direct" => ExchangeKind::Direct,
        "fanout" => ExchangeKind::Fanout,
        "headers" => ExchangeKind::Headers,
        other => ExchangeKind::Custom(other.to_string()),
    };
    channel
        .exchange_declare(
            settings.exchange.as_str().into(),
            kind,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("declaring exchange `{}`: {e}", settings.exchange))?;
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("declaring this replica's queue: {e}"))?;
    let name = queue.name().clone();
    channel
        .queue_bind(
            name.clone(),
            settings.exchange.as_str().into(),
            settings.binding_key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("binding this replica's queue: {e}"))?;
    let mut consumer = channel
        .basic_consume(
            name.clone(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("consuming: {e}"))?;
    let Some(metrics) = hub.upgrade().map(|h| h.metrics.ws.clone()) else {
        return Ok(Ended::Closed);
    };
    metrics.queue_connected.set(1);
    *backoff = FIRST_BACKOFF;
    tracing::info!(
        url = %shown,
        exchange = %settings.exchange,
        queue = %name,
        "WebSocket hub consumes from RabbitMQ"
    );
    let mut poll = tokio::time::interval(URL_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let delivery = tokio::select! {
            d = consumer.next() => match d {
                Some(d) => d,
                None => return Ok(Ended::Closed),
            },
            _ = poll.tick() => {
                // A Secret that went missing or turned invalid leaves this connection be.
                if settings.url.is_none() && current_url(settings, table).is_some_and(|u| u != url) {
                    let _ = conn.close(200, "URL changed".into()).await;
                    return Ok(Ended::UrlChanged);
                }
                continue;
            }
        };
        let delivery = delivery.map_err(|e| format!("consuming: {e}"))?;
        let Some(hub) = hub.upgrade() else {
            // The gateway is stopping: leave the message to the broker.
            return Ok(Ended::Closed);
        };
        let routing_key = delivery.routing_key.as_str();
        match hub.deliver_queue_message(routing_key, &delivery.data) {
            Ok(delivered) => {
                metrics.queue_messages_consumed_total.inc();
                tracing::debug!(routing_key, delivered, "message from RabbitMQ delivered");
                delivery
                    .acker
                    .ack(BasicAckOptions::default())
                    .await
                    .map_err(|e| format!("acknowledging: {e}"))?;
            }
            Err(e) => {
                metrics.queue_messages_rejected_total.inc();
                tracing::warn!(
                    routing_key,
                    bytes = delivery.data.len(),
                    "WebSocket hub rejects a malformed message from RabbitMQ: {e}"
                );
                delivery
                    .acker
                    .reject(BasicRejectOptions { requeue: false })
                    .await
                    .map_err(|e| format!("rejecting: {e}"))?;
            }
        }
    }
}

/// `error` with `url`'s password hidden, should the error quote the URL.
fn redact_error(error: &str, url: &str) -> String {
    error.replace(url, &redact_url(url))
}
