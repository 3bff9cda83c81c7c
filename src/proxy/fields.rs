//! What the two HTTP/1.1 heads the gateway parses share: the request the proxy listener reads
//! and the response the upstream client reads.

use http::header::{self, HeaderName, InvalidHeaderName};

/// The most header fields taken in one head (hyper's server has the same limit).
pub const MAX_FIELDS: usize = 100;

/// Where a field's name and value lie in its head: name start and end, value start and end.
pub type Span = (u32, u32, u32, u32);

/// Where `part` (a slice httparse returned from `buf`) lies in `buf`.
pub fn position(buf: &[u8], part: &[u8]) -> (u32, u32) {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    (start as u32, (start + part.len()) as u32)
}

/// Fields whose spans are kept on the stack; a head with more puts them on the heap.
const INLINE_SPANS: usize = 16;

/// The spans of a head's fields: the usual few on the stack, so that a parse does not clear
/// room for `MAX_FIELDS` of them each time.
pub struct Spans {
    inline: [Span; INLINE_SPANS],
    heap: Vec<Span>,
    len: usize,
}

impl Spans {
    pub fn new() -> Self {
        Spans {
            inline: [(0, 0, 0, 0); INLINE_SPANS],
            heap: Vec::new(),
            len: 0,
        }
    }

    /// Records the spans of `fields`, parsed from `buf`.
    pub fn record(&mut self, buf: &[u8], fields: &[httparse::Header<'_>]) {
        let span = |h: &httparse::Header<'_>| {
            let (ns, ne) = position(buf, h.name.as_bytes());
            let (vs, ve) = position(buf, h.value);
            (ns, ne, vs, ve)
        };
        self.len = fields.len();
        if fields.len() <= INLINE_SPANS {
            for (slot, h) in self.inline.iter_mut().zip(fields) {
                *slot = span(h);
            }
        } else {
            self.heap = fields.iter().map(span).collect();
        }
    }

    pub fn as_slice(&self) -> &[Span] {
        if self.len <= INLINE_SPANS {
            &self.inline[..self.len]
        } else {
            &self.heap
        }
    }
}

/// The field name `raw`, as written in a head.
pub fn field_name(raw: &[u8]) -> Result<HeaderName, InvalidHeaderName> {
    known_name(raw).map_or_else(|| HeaderName::from_bytes(raw), Ok)
}

/// The fields most messages carry, recognised without `HeaderName::from_bytes` (which lowers
/// the case of the name into a scratch buffer first).
fn known_name(raw: &[u8]) -> Option<HeaderName> {
    let is = |s: &str| raw.eq_ignore_ascii_case(s.as_bytes());
    Some(match raw.len() {
        4 if is("date") => header::DATE,
        4 if is("host") => header::HOST,
        4 if is("etag") => header::ETAG,
        6 if is("server") => header::SERVER,
        6 if is("accept") => header::ACCEPT,
        10 if is("connection") => header::CONNECTION,
        10 if is("user-agent") => header::USER_AGENT,
        12 if is("content-type") => header::CONTENT_TYPE,
        13 if is("cache-control") => header::CACHE_CONTROL,
        13 if is("last-modified") => header::LAST_MODIFIED,
        13 if is("authorization") => header::AUTHORIZATION,
        14 if is("content-length") => header::CONTENT_LENGTH,
        15 if is("accept-encoding") => header::ACCEPT_ENCODING,
        16 if is("content-encoding") => header::CONTENT_ENCODING,
        17 if is("transfer-encoding") => header::TRANSFER_ENCODING,
        _ => return None,
    })
}

/// Appends `n` in `radix` (10 or 16, lowercase).
pub fn put_number(out: &mut Vec<u8>, mut n: u64, radix: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[(n % radix) as usize];
        n /= radix;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_are_the_names_http_parses() {
        for name in [
            "date",
            "host",
            "etag",
            "server",
            "accept",
            "connection",
            "user-agent",
            "content-type",
            "cache-control",
            "last-modified",
            "authorization",
            "content-length",
            "accept-encoding",
            "content-encoding",
            "transfer-encoding",
        ] {
            for form in [name.to_string(), name.to_ascii_uppercase()] {
                let known = known_name(form.as_bytes());
                assert_eq!(
                    known,
                    Some(HeaderName::from_bytes(form.as_bytes()).unwrap()),
                    "{form}"
                );
            }
        }
        assert_eq!(known_name(b"x-date"), None);
        assert_eq!(known_name(b"dat\xc3"), None);
    }

    #[test]
    fn spans_of_few_and_many_fields() {
        for n in [0, 1, INLINE_SPANS, INLINE_SPANS + 1, MAX_FIELDS] {
            let head: String = (0..n).map(|i| format!("f{i}: v{i}\r\n")).collect::<String>() + "\r\n";
            let mut slots = [httparse::EMPTY_HEADER; MAX_FIELDS];
            let httparse::Status::Complete((_, fields)) =
                httparse::parse_headers(head.as_bytes(), &mut slots).unwrap()
            else {
                panic!("partial")
            };
            let mut spans = Spans::new();
            spans.record(head.as_bytes(), fields);
            assert_eq!(spans.as_slice().len(), n);
            for (i, &(ns, ne, vs, ve)) in spans.as_slice().iter().enumerate() {
                assert_eq!(&head[ns as usize..ne as usize], format!("f{i}"));
                assert_eq!(&head[vs as usize..ve as usize], format!("v{i}"));
            }
        }
    }

    #[test]
    fn numbers_in_both_radixes() {
        let mut out = Vec::new();
        for (n, radix) in [(0, 10), (1234567, 10), (u64::MAX, 10), (0x1f, 16), (0, 16)] {
            put_number(&mut out, n, radix);
            out.push(b' ');
        }
        assert_eq!(out, format!("0 1234567 {} 1f 0 ", u64::MAX).into_bytes());
    }
}
