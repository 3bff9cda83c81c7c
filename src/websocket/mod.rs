//! The WebSocket hub (SPEC §5): connections on `websocket.server.path`, channels with
//! policies from `WebSocketChannel` resources and `websocket.channels`, history, the backend
//! webhook, fan-out across replicas through Redis, and a RabbitMQ exchange as an intake.
//!
//! ```text
//!  client ──upgrade──> Hub::upgrade ──> ClientConnection (reader + writer, bounded outbox)
//!                         │                    ▲
//!  webhook / admin ──> Hub::publish ──> channel subscribers (local) ──> Redis PUBLISH ──> other replicas
//! ```
//!
//! Channel policies are compiled with the routing table (`RoutingTable::channels`), so a
//! changed resource applies through the same swap as routes. What clients can make the hub
//! keep is bounded by `websocket.limits` (`HubLimits`): subscriptions per connection, channels,
//! history bytes and age, the time to authenticate, and frames per second.
//!
//! # The order of the files
//!
//! Each file uses only files above it in this list (`super::` imports point up the list,
//! never down; a test below checks it):
//!
//! | file | what it owns |
//! |---|---|
//! | `error` | `Error`: the hub's settings, its Redis URL, a backend's pub/sub message |
//! | `locks` | poison-tolerant locking |
//! | `protocol` | the JSON frames in and out, `ProtocolError` |
//! | `request` | the upgrade headers and the query string of the opening request |
//! | `auth` | `Identity` and the `TokenVerifier` seam |
//! | `access` | a channel policy's checks for Subscribe and Broadcast, the rate bucket |
//! | `outbox` | one connection's queue of encoded frames and its socket |
//! | `history` | a channel's kept messages, their bounds (count, bytes, age), what a user is replayed |
//! | `fanout` | Redis: fan-out between replicas, persistent history, backend channels |
//! | `settings` | `HubSettings` and `HubLimits`, read from `gateway.yaml` |
//! | `client` | `ClientConnection`: one connection's identity, subscriptions, clocks |
//! | `delivery` | `Delivery` and the `Courier`: queue, write, drop slow consumers |
//! | `registry` | the open connections, their slots and gauges |
//! | `channels` | the live channels (at most `max_channels`): subscribe with replay, deliver, sweep |
//! | `hub` | `Hub`: joins the above and carries out what is asked of it |
//! | `views` | the admin API's JSON of connections, channels and statistics |
//! | `webhook` | `POST` from backends, and their Redis pub/sub messages |
//! | `queue` | RabbitMQ: each replica's own queue on the backends' exchange, fed to the hub |
//! | `connection` | the life of one upgraded connection (reader, writer, its deadlines and rate) |
//! | `upgrade` | the upgrade request: checks, refusals, `101` |
//! | `service` | `Hub::start` (and its sweeper), the paths the hub claims, serving a claimed request |
//! | `hub_tests` | the hub in-process: clients, channels, delivery, history, policies, bounds |

mod access;
pub mod auth;
mod channels;
mod client;
mod connection;
mod delivery;
mod error;
pub mod fanout;
mod history;
mod hub;
mod locks;
mod outbox;
pub mod protocol;
mod queue;
mod registry;
mod request;
mod service;
mod settings;
mod upgrade;
mod views;
mod webhook;

#[cfg(test)]
mod hub_tests;

pub use auth::{Identity, TokenVerifier, VerifyError};
pub use client::ClientConnection;
pub use error::{Error, Result};
pub use hub::Hub;
pub use request::{is_websocket_upgrade, query_param};
pub use settings::{redact_url, HubLimits, HubSettings, QueueSettings, QUEUE_CAPACITY};

#[cfg(test)]
mod order {
    use std::path::Path;

    /// Modules named after `super::` (single or in a `{...}` group), with their offsets.
    fn siblings_named(code: &str) -> Vec<(usize, String)> {
        let ident = |s: &str| -> String {
            s.trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        };
        let mut out = Vec::new();
        let mut at = 0;
        while let Some(i) = code[at..].find("super::") {
            at += i + "super::".len();
            match code[at..].strip_prefix('{') {
                Some(group) => {
                    let end = group.find('}').unwrap_or(group.len());
                    out.extend(group[..end].split(',').map(|item| (at, ident(item))));
                }
                None => out.push((at, ident(&code[at..]))),
            }
        }
        out
    }

    #[test]
    fn each_file_uses_only_files_above_it_in_the_table() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/websocket");
        let doc = std::fs::read_to_string(dir.join("mod.rs")).expect("mod.rs");
        let order: Vec<&str> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("//! | `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        let rank = |m: &str| order.iter().position(|o| *o == m);
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).expect("src/websocket") {
            let path = entry.expect("entry").path();
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("name")
                .to_string();
            if name == "mod" {
                continue;
            }
            files += 1;
            let own = rank(&name).unwrap_or_else(|| panic!("{name}.rs is missing from the table in mod.rs"));
            let text = std::fs::read_to_string(&path).expect("source");
            let code: String = text
                .lines()
                .map(|l| if l.trim_start().starts_with("//") { "" } else { l })
                .collect::<Vec<_>>()
                .join("\n");
            for (at, used) in siblings_named(&code) {
                if let Some(r) = rank(&used) {
                    let line = code[..at].lines().count();
                    assert!(
                        r < own,
                        "{name}.rs:{line} uses `{used}`, which the table puts below it"
                    );
                }
            }
        }
        assert_eq!(files, order.len(), "every row of the table is a file");
    }
}
