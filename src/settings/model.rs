//! The typed sections of `gateway.yaml`. Unknown keys are accepted; known keys are checked.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::inline::{InlineRoute, InlineUpstream};

/// The whole static configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct GatewayConfig {
    pub server: ServerConfig,
    pub admin: AdminConfig,
    pub auth: AuthConfig,
    pub middleware: MiddlewareConfig,
    pub observability: ObservabilityConfig,
    pub websocket: WebSocketConfig,
    pub tenancy: super::tenancy::TenancyConfig,
    /// `gateway_api`: the Gateway API front door.
    pub gateway_api: super::gateway_api::GatewayApiConfig,
    /// Standalone: the seed's inline routes.
    pub routes: Vec<InlineRoute>,
    /// Standalone: the seed's inline upstreams, by name.
    pub upstreams: BTreeMap<String, InlineUpstream>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    pub http_port: u16,
    pub https_port: u16,
    pub admin_port: u16,
    pub metrics_port: u16,
    pub bind_address: String,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub tls: Option<ServerTls>,
    /// `server.paths`: how other spellings of a path are read (see `requests`).
    pub paths: super::requests::PathsConfig,
    /// `server.headers`: the client's fields that are not passed on (see `requests`).
    pub headers: super::requests::HeadersConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            http_port: 8080,
            https_port: 8443,
            admin_port: 8081,
            metrics_port: 9090,
            bind_address: "0.0.0.0".to_string(),
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            tls: None,
            paths: Default::default(),
            headers: Default::default(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct Timeouts {
    /// Default route timeout when a route sets none.
    pub request_timeout: String,
    /// How long an idle client connection is kept open.
    pub keepalive_timeout: String,
    /// Upper bound for one upstream try (connect up to the response head), within the route's
    /// own timeout; `0s` (the default): a try may take all of the route's time.
    pub upstream_timeout: String,
    /// Connect timeout towards upstream endpoints.
    pub connect_timeout: String,
    /// Drain time on SIGTERM.
    pub shutdown_grace: String,
    /// How long writes to a client may find its connection full before it is closed; `0s`:
    /// no limit.
    pub send_timeout: String,
    /// How long an upstream's response body may send nothing before the gateway gives up on
    /// it; `0s`: no limit.
    pub read_timeout: String,
    #[serde(flatten)]
    pub idle: super::IdleTimeouts,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            request_timeout: "30s".into(),
            keepalive_timeout: "60s".into(),
            upstream_timeout: "0s".into(),
            connect_timeout: "2s".into(),
            shutdown_grace: "30s".into(),
            send_timeout: "60s".into(),
            read_timeout: "300s".into(),
            idle: Default::default(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Largest request body accepted, bytes: by `Content-Length`, or as it is read.
    pub max_body_size: u64,
    /// Largest request head accepted, bytes.
    pub max_header_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_size: 10 * 1024 * 1024,
            max_header_size: 64 * 1024,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ServerTls {
    pub default_certificate: Option<CertificateRef>,
    pub min_version: Option<String>,
    pub redirect_http: bool,
}

/// `default_certificate: {secret_ref: {name, namespace}}`: a `kubernetes.io/tls` Secret.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct CertificateRef {
    pub secret_ref: Option<SecretKeyRef>,
}

pub use super::secret_ref::SecretKeyRef;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct AdminConfig {
    /// Bearer token for the admin API (`GATEWAY_ADMIN_TOKEN`).
    pub token: Option<String>,
    /// Whether a proxy JWT with the role `admin` also opens the admin API; off by default, so
    /// that a token issued to users never reaches the gateway's controls.
    pub allow_jwt: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    pub jwt: Option<JwtConfig>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct JwtConfig {
    pub secret: Option<String>,
    pub secret_ref: Option<SecretKeyRef>,
    pub algorithm: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway: Option<u64>,
    pub claims: Option<ClaimMapping>,
    /// Accept an HMAC secret shorter than 32 bytes (RFC 7518 §3.2); off by default.
    pub allow_weak_secret: bool,
    /// Set when the file has no `auth.jwt` and `JWT_SECRET` made this section: a weak secret
    /// is then left unused (and reported) rather than stopping the start.
    #[serde(skip)]
    pub from_env_only: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ClaimMapping {
    pub user_id: Option<OneOrMany>,
    pub roles: Option<String>,
    pub permissions: Option<String>,
}

/// A string or a list of strings.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct MiddlewareConfig {
    pub rate_limiting: RateLimitingConfig,
    pub cors: Option<CorsConfig>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct RateLimitingConfig {
    /// Requests per window per client IP; 0 = off.
    pub default_limit: u64,
    pub window: String,
    /// Exact paths and `/*` globs to a limit per window.
    pub route_limits: BTreeMap<String, u64>,
    pub storage: RateLimitStorage,
    /// `open` or `closed`.
    pub failure_mode: String,
}

impl Default for RateLimitingConfig {
    fn default() -> Self {
        RateLimitingConfig {
            default_limit: 0,
            window: "60s".into(),
            route_limits: BTreeMap::new(),
            storage: RateLimitStorage::default(),
            failure_mode: "open".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct RateLimitStorage {
    /// `Memory` or `Redis`.
    #[serde(rename = "type")]
    pub type_: String,
    pub url: Option<String>,
}

impl Default for RateLimitStorage {
    fn default() -> Self {
        RateLimitStorage {
            type_: "Memory".into(),
            url: None,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
/// `middleware.cors` (and an inline route's `cors`), in the seed's snake_case.
pub struct CorsConfig {
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub exposed_headers: Vec<String>,
    pub allow_credentials: bool,
    pub max_age: Option<u64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ObservabilityConfig {
    pub metrics: MetricsConfig,
    pub logging: LoggingConfig,
    pub tracing: TracingConfig,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    pub prometheus_enabled: bool,
    pub endpoint_path: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            prometheus_enabled: true,
            endpoint_path: "/metrics".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct LoggingConfig {
    pub level: String,
    /// `json` or `text`.
    pub format: String,
    pub output: Option<yaml_serde::Value>,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: "info".into(),
            format: "text".into(),
            output: None,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct TracingConfig {
    pub enabled: bool,
    pub backend: Option<TracingBackend>,
    pub sampling_rate: Option<f64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct TracingBackend {
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub endpoint: Option<String>,
}

/// The `websocket` section of the seed.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct WebSocketConfig {
    pub enabled: bool,
    pub server: WebSocketServer,
    /// `default` and named channel settings.
    pub channels: BTreeMap<String, ChannelSettings>,
    pub routing: WebSocketRouting,
    pub integration: WebSocketIntegration,
    /// Redis for fan-out and history (`GATEWAY_REDIS_URL`); the seed puts it under
    /// `integration.redis_pubsub.url`.
    pub redis_url: Option<String>,
    /// The seed's `security` block; accepted.
    pub security: Option<yaml_serde::Value>,
    pub limits: super::hub_limits::WebSocketLimits,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct WebSocketServer {
    pub path: String,
    pub max_connections: usize,
    pub idle_timeout: String,
    pub max_message_size: usize,
    pub ping_interval: String,
    pub pong_timeout: String,
    pub require_auth: bool,
    pub allow_anonymous: bool,
}

impl Default for WebSocketServer {
    fn default() -> Self {
        WebSocketServer {
            path: "/ws".into(),
            max_connections: 10_000,
            idle_timeout: "300s".into(),
            max_message_size: 1024 * 1024,
            ping_interval: "30s".into(),
            pong_timeout: "10s".into(),
            require_auth: true,
            allow_anonymous: false,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct ChannelSettings {
    pub max_subscribers: Option<u32>,
    pub message_history: Option<u32>,
    pub require_auth: Option<bool>,
    pub user_specific: Option<bool>,
    pub required_roles: Vec<String>,
    pub publish_roles: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub access_control: Option<String>,
    pub rate_limiting: Option<yaml_serde::Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct WebSocketRouting {
    pub service_events: ServiceEvents,
    pub persistence: Persistence,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ServiceEvents {
    pub enabled: bool,
    pub mappings: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Persistence {
    pub enabled: bool,
    pub storage: Option<String>,
    pub ttl: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct WebSocketIntegration {
    pub webhook: Webhook,
    pub redis_pubsub: RedisPubSub,
    pub message_queue: super::message_queue::MessageQueueConfig,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct Webhook {
    pub enabled: bool,
    pub path: String,
    pub auth_token: Option<String>,
}

impl Default for Webhook {
    fn default() -> Self {
        Webhook {
            enabled: true,
            path: "/webhook/websocket".into(),
            auth_token: None,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct RedisPubSub {
    pub enabled: bool,
    pub url: Option<String>,
    pub channels: Vec<String>,
}

impl CorsConfig {
    /// The same policy as the CRD field spells it.
    pub fn to_policy(&self) -> crate::api::CorsPolicy {
        crate::api::CorsPolicy {
            allowed_origins: self.allowed_origins.clone(),
            allowed_methods: self.allowed_methods.clone(),
            allowed_headers: self.allowed_headers.clone(),
            exposed_headers: self.exposed_headers.clone(),
            allow_credentials: self.allow_credentials,
            max_age: self.max_age,
        }
    }
}
