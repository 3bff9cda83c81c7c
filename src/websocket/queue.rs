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
use super::settings::QueueSettings;

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts consuming for `hub` until it is gone.
pub(crate) fn start(settings: QueueSettings, hub: Weak<Hub>) {
    tokio::spawn(intake(settings, hub));
}

async fn intake(settings: QueueSettings, hub: Weak<Hub>) {
    let shown = settings.shown_url();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let Some(gauge) = hub.upgrade().map(|h| h.metrics.ws.queue_connected.clone()) else {
            return;
        };
        let outcome = session(&settings, &shown, &hub, &mut backoff).await;
        gauge.set(0);
        match outcome {
            Ok(()) if hub.strong_count() == 0 => return,
            Ok(()) => tracing::warn!(
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

/// One connection: declare, bind, consume until the connection or the hub goes.
async fn session(
    settings: &QueueSettings,
    shown: &str,
    hub: &Weak<Hub>,
    backoff: &mut Duration,
) -> Result<(), String> {
    let conn = tokio::time::timeout(
        CONNECT_TIMEOUT,
        Connection::connect(&settings.url, ConnectionProperties::default()),
    )
    .await
    .map_err(|_| format!("connecting timed out after {CONNECT_TIMEOUT:?}"))?
    .map_err(|e| format!("connecting: {e}"))?;
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
        return Ok(());
    };
    metrics.queue_connected.set(1);
    *backoff = FIRST_BACKOFF;
    tracing::info!(
        url = %shown,
        exchange = %settings.exchange,
        queue = %name,
        "WebSocket hub consumes from RabbitMQ"
    );
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery.map_err(|e| format!("consuming: {e}"))?;
        let Some(hub) = hub.upgrade() else {
            // The gateway is stopping: leave the message to the broker.
            return Ok(());
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
    Ok(())
}
