//! Proxy errors and the JSON body each becomes: `{"error":{"code","message","request_id"}}`;
//! and the error of an upstream call, which the forward phase turns into one of them.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::wire::json_error;

/// Everything the gateway can answer on its own instead of the upstream's response.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("authentication required: {0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("no route for {method} {path}")]
    RouteNotFound { method: String, path: String },
    #[error("method {method} is not allowed here")]
    MethodNotAllowed { method: String, allow: String },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    #[error("request headers are too large")]
    HeadersTooLarge,
    #[error("rate limit exceeded")]
    RateLimited { limit: u64, reset_secs: u64 },
    #[error("the rate-limit store is unavailable")]
    RateLimitUnavailable,
    #[error("upstream connection failed: {0}")]
    BadGateway(String),
    #[error("{0}")]
    UpstreamUnavailable(String),
    /// A Gateway API rule without a backend for the request (none listed, all of weight 0,
    /// or the chosen one does not resolve): 500, as the Gateway API asks.
    #[error("{0}")]
    NoBackend(String),
    #[error("upstream did not answer within {0:?}")]
    UpstreamTimeout(std::time::Duration),
    #[error("the client did not send its request body within {0:?}")]
    RequestTimeout(std::time::Duration),
    #[error("{0}")]
    BadRequest(String),
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ProxyError::Forbidden(_) => StatusCode::FORBIDDEN,
            ProxyError::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            ProxyError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::RateLimitUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::NoBackend(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ProxyError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The SPEC's machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::Unauthorized(_) => "unauthorized",
            ProxyError::Forbidden(_) => "forbidden",
            ProxyError::RouteNotFound { .. } => "route_not_found",
            ProxyError::MethodNotAllowed { .. } => "method_not_allowed",
            ProxyError::PayloadTooLarge { .. } => "payload_too_large",
            ProxyError::HeadersTooLarge => "headers_too_large",
            ProxyError::RateLimited { .. } => "rate_limited",
            ProxyError::RateLimitUnavailable => "rate_limit_unavailable",
            ProxyError::BadGateway(_) => "bad_gateway",
            ProxyError::UpstreamUnavailable(_) | ProxyError::NoBackend(_) => "upstream_unavailable",
            ProxyError::UpstreamTimeout(_) => "upstream_timeout",
            ProxyError::RequestTimeout(_) => "request_timeout",
            ProxyError::BadRequest(_) => "bad_request",
        }
    }

    /// The JSON error response, with the headers the SPEC asks for on each status.
    pub fn to_response(&self, request_id: &str) -> Response<Full<Bytes>> {
        let mut resp = json_error(self.status(), self.code(), &self.to_string(), request_id);
        let h = resp.headers_mut();
        match self {
            ProxyError::Unauthorized(_) => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            ProxyError::MethodNotAllowed { allow, .. } => {
                if let Ok(v) = HeaderValue::from_str(allow) {
                    h.insert(header::ALLOW, v);
                }
            }
            ProxyError::RateLimited { limit, reset_secs } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(*reset_secs));
                h.insert("ratelimit-limit", HeaderValue::from(*limit));
                h.insert("ratelimit-remaining", HeaderValue::from_static("0"));
                h.insert("ratelimit-reset", HeaderValue::from(*reset_secs));
            }
            ProxyError::RateLimitUnavailable => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        resp
    }
}

/// Why an upstream call failed, through either client: what the forward phase classifies
/// into a retry, a breaker record and a [`ProxyError`].
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CallError {
    connect: bool,
    /// The deadline passed first.
    timeout: bool,
    message: String,
}

impl CallError {
    /// The connection could not be made; nothing reached the upstream.
    pub fn is_connect(&self) -> bool {
        self.connect
    }

    /// The call's deadline passed before the response head arrived.
    pub fn is_timeout(&self) -> bool {
        self.timeout
    }

    pub(in crate::proxy) fn io(what: &str, e: std::io::Error) -> Self {
        CallError {
            connect: false,
            timeout: false,
            message: format!("{what}: {e}"),
        }
    }

    /// The connection could not be made.
    pub(in crate::proxy) fn connect(message: String) -> Self {
        CallError {
            connect: true,
            timeout: false,
            message,
        }
    }

    pub(in crate::proxy) fn protocol(message: impl Into<String>) -> Self {
        CallError {
            connect: false,
            timeout: false,
            message: message.into(),
        }
    }

    pub(in crate::proxy) fn timeout() -> Self {
        CallError {
            connect: false,
            timeout: true,
            message: "no response before the deadline".into(),
        }
    }

    /// From the general client's error, with its whole chain of causes.
    pub fn from_hyper(e: &hyper_util::client::legacy::Error) -> Self {
        CallError {
            connect: e.is_connect(),
            timeout: false,
            message: error_chain(e),
        }
    }
}

/// `e` and its sources, joined by `: `.
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
