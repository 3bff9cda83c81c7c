//! The general (hyper) client, for `https` and `h2c` endpoints and streamed request bodies:
//! the requests the own client does not take. Its responses are held to the own client's
//! framing rules ([`frame`]).

use std::time::Duration;

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::Connect;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

use super::buffer::GeneralBody;
use crate::proxy::client::{switched_unasked, Codings};
use crate::proxy::error::CallError;
use crate::proxy::headers::Forwarding;
use crate::proxy::tls::UpstreamConnector;
use crate::upstream::Endpoint;

/// Plain TCP for `http` endpoints, rustls for `https` ones (settings from the live table).
pub(super) type GeneralClient = Client<UpstreamConnector, GeneralBody>;

/// The general client. Its pool has a timer, which closes connections idle for `idle`:
/// without one, an idle connection would stay open until a later request to the same endpoint
/// found it expired.
pub(super) fn general_client<C>(connector: C, idle: Duration, h2_only: bool) -> Client<C, GeneralBody>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let mut b = Client::builder(TokioExecutor::new());
    b.pool_idle_timeout(idle).pool_timer(TokioTimer::new());
    if h2_only {
        b.http2_only(true);
    } else {
        b.pool_max_idle_per_host(1024);
    }
    b.build(connector)
}

/// What one request on the general client is: its head, body and forwarding fields, and where
/// it goes.
pub(super) struct GeneralRequest<'a> {
    pub(super) parts: Parts,
    pub(super) body: GeneralBody,
    pub(super) fwd: &'a Forwarding,
    pub(super) endpoint: &'a Endpoint,
    /// Path and query at the endpoint.
    pub(super) target: &'a PathAndQuery,
}

/// Sends `req` on `client` and reads the response head before `until`: the forwarding fields
/// go into the request's map, and the target becomes the endpoint's absolute URI.
pub(super) async fn send(
    client: &GeneralClient,
    req: GeneralRequest<'_>,
    until: Option<Instant>,
) -> Result<Response<Incoming>, CallError> {
    let GeneralRequest {
        mut parts,
        body,
        fwd,
        endpoint,
        target,
    } = req;
    fwd.apply(&mut parts.headers);
    parts.uri = Uri::from_parts({
        let mut u = http::uri::Parts::default();
        u.scheme = Some(endpoint.scheme.clone());
        u.authority = Some(endpoint.pool_key.clone());
        u.path_and_query = Some(target.clone());
        u
    })
    .map_err(|e| CallError::protocol(format!("cannot build the upstream URI: {e}")))?;
    let head_request = parts.method == Method::HEAD;
    let req = Request::from_parts(parts, body);
    let sent = match until {
        Some(t) => tokio::time::timeout_at(t, client.request(req))
            .await
            .map_err(|_| CallError::timeout())?,
        None => client.request(req).await,
    };
    let mut resp = sent.map_err(|e| CallError::from_hyper(&e))?;
    frame(&mut resp, head_request)?;
    Ok(resp)
}

/// Holds a response of the general client to the rules the own client frames by
/// (`client::parse_head`). hyper decodes a chunked body but leaves the fields as they came, so
/// a `Content-Length` beside `Transfer-Encoding: chunked` would go out with the whole decoded
/// body after it, and a client believing the length would read the rest as a second response:
/// the length is dropped. A body in another coding would reach the client still coded, and a
/// `101` answers no request forwarded here (upgrades are tunnelled apart): both are errors, and
/// the upstream connection is not used again (hyper gives up a connection whose response was
/// dropped before its end, and one that switched protocols). (A response with neither field,
/// the usual one, costs two comparisons.)
pub(super) fn frame<B>(resp: &mut Response<B>, head_request: bool) -> Result<(), CallError> {
    let status = resp.status();
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(switched_unasked());
    }
    if !resp.headers().contains_key(TRANSFER_ENCODING) {
        return Ok(());
    }
    let mut codings = Codings::default();
    for value in resp.headers().get_all(TRANSFER_ENCODING) {
        codings.add(value.as_bytes());
    }
    let bodiless = head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    codings.check(bodiless)?;
    if codings.chunked {
        resp.headers_mut().remove(CONTENT_LENGTH);
    }
    Ok(())
}
