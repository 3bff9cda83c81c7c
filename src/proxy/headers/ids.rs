//! Request ids (`X-Request-ID`) and the W3C trace context (`traceparent`) of each upstream
//! hop, from a small random generator per thread.

use http::header::{HeaderName, HeaderValue};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

use crate::telemetry::valid_traceparent;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The client's `X-Request-ID` (`client`) when it is sane, else a new random id.
pub fn request_id_from(client: Option<&HeaderValue>) -> HeaderValue {
    if let Some(v) = client {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= 200 && b.iter().all(|c| c.is_ascii_graphic()) {
            return v.clone();
        }
    }
    let mut bytes = [0u8; 16];
    random_bytes(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut out = [0u8; 36];
    let mut j = 0;
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[j] = b'-';
            j += 1;
        }
        out[j] = HEX[(b >> 4) as usize];
        out[j + 1] = HEX[(b & 0xf) as usize];
        j += 2;
    }
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

thread_local! {
    /// Ids need to be unique, not secret: a small generator per thread, seeded from the
    /// operating system's, costs a fraction of the cryptographic one per request.
    static IDS: std::cell::RefCell<SmallRng> = std::cell::RefCell::new(SmallRng::from_rng(&mut rand::rng()));
}

#[inline]
fn random_bytes(out: &mut [u8]) {
    IDS.with(|r| r.borrow_mut().fill_bytes(out));
}

#[inline]
fn hex_into(out: &mut [u8], bytes: &[u8]) {
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 0xf) as usize];
    }
}

/// The `traceparent` to send upstream, as text: the client's trace (`incoming`) continued with
/// a new parent id (this hop), or a new trace when the client sent none or an invalid one.
pub fn traceparent_text(incoming: Option<&HeaderValue>, sampled_if_new: bool) -> [u8; 55] {
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
    let mut span = [0u8; 8];
    while span == [0; 8] {
        random_bytes(&mut span);
    }
    hex_into(&mut out[36..52], &span);
    match incoming
        .map(HeaderValue::as_bytes)
        .filter(|b| valid_traceparent(b))
    {
        Some(incoming) => {
            out[3..35].copy_from_slice(&incoming[3..35]);
            out[53..55].copy_from_slice(&incoming[53..55]);
        }
        None => {
            let mut trace = [0u8; 16];
            while trace == [0; 16] {
                random_bytes(&mut trace);
            }
            hex_into(&mut out[3..35], &trace);
            if sampled_if_new {
                out[54] = b'1';
            }
        }
    }
    out
}
