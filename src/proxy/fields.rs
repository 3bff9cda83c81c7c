//! What the two HTTP/1.1 heads the gateway parses share: the request the proxy listener reads
//! and the response the upstream client reads.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue, InvalidHeaderName};

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

/// Runs of lines a [`WireFields`] holds; a head whose kept lines are more scattered than this
/// goes through a `HeaderMap` instead.
const MAX_RUNS: usize = 4;

/// Header fields of a message kept as the peer wrote them: runs of whole `name: value\r\n`
/// lines of its head, less the lines the gateway drops. Written on with one copy per run
/// instead of a `HeaderMap` built and walked field by field.
#[derive(Debug)]
pub struct WireFields {
    head: Bytes,
    runs: [(u32, u32); MAX_RUNS],
    count: usize,
    /// A `Content-Length` line is among them.
    pub has_length: bool,
    /// A `Date` line is among them.
    pub has_date: bool,
    /// The gateway's `X-Request-ID`, written after the lines (the peer's is never among them).
    pub request_id: Option<HeaderValue>,
}

impl WireFields {
    /// The fields of `head` (a whole head, CRLF line endings) whose lines `keep` says to
    /// keep, given their spans; `None` when the kept lines make more than `MAX_RUNS` runs or a
    /// line does not end in CRLF.
    pub fn of(head: &Bytes, spans: &[Span], mut keep: impl FnMut(usize) -> bool) -> Option<Self> {
        let mut runs = [(0u32, 0u32); MAX_RUNS];
        let mut count = 0;
        if !head.ends_with(b"\r\n\r\n") {
            return None;
        }
        let fields_end = (head.len() - 2) as u32;
        for (i, &(ns, ..)) in spans.iter().enumerate() {
            let end = spans.get(i + 1).map_or(fields_end, |s| s.0);
            if end < ns + 2 || &head[end as usize - 2..end as usize] != b"\r\n" {
                return None;
            }
            if !keep(i) {
                continue;
            }
            match runs[..count].last_mut() {
                Some(run) if run.1 == ns => run.1 = end,
                _ if count == MAX_RUNS => return None,
                _ => {
                    runs[count] = (ns, end);
                    count += 1;
                }
            }
        }
        Some(WireFields {
            head: head.clone(),
            runs,
            count,
            has_length: false,
            has_date: false,
            request_id: None,
        })
    }

    /// Appends the lines, as they were written.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        for &(start, end) in &self.runs[..self.count] {
            out.extend_from_slice(&self.head[start as usize..end as usize]);
        }
        if let Some(id) = &self.request_id {
            out.extend_from_slice(b"x-request-id: ");
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Appends the fields to `map`, for code that edits a message's fields.
    pub fn append_to(&self, map: &mut HeaderMap) {
        let mut lines = Vec::with_capacity(self.head.len());
        self.write_to(&mut lines);
        lines.extend_from_slice(b"\r\n");
        let mut slots = [httparse::EMPTY_HEADER; MAX_FIELDS];
        let Ok(httparse::Status::Complete((_, fields))) = httparse::parse_headers(&lines, &mut slots) else {
            return; // not reached: the lines were parsed once already
        };
        for f in fields.iter() {
            if let (Ok(name), Ok(value)) = (field_name(f.name.as_bytes()), HeaderValue::from_bytes(f.value)) {
                map.append(name, value);
            }
        }
    }
}

/// The number `digits` (in `radix`, 10 or 16) spell: digits only, no sign, no overflow.
pub fn number(digits: &[u8], radix: u32) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        let d = char::from(d).to_digit(radix)?;
        n.checked_mul(u64::from(radix))?.checked_add(u64::from(d))
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

    fn spans_of(head: &str) -> Vec<Span> {
        let mut slots = [httparse::EMPTY_HEADER; MAX_FIELDS];
        let mut resp = httparse::Response::new(&mut slots);
        assert!(resp.parse(head.as_bytes()).unwrap().is_complete());
        let mut spans = Spans::new();
        spans.record(head.as_bytes(), resp.headers);
        spans.as_slice().to_vec()
    }

    #[test]
    fn wire_fields_keep_whole_lines_in_runs() {
        let head = "HTTP/1.1 200 OK\r\nA: 1\r\nConnection: keep-alive\r\nB:2  \r\nc: 3\r\nD: 4\r\n\r\n";
        let bytes = Bytes::from(head);
        let spans = spans_of(head);
        let mut w = WireFields::of(&bytes, &spans, |i| i != 1 && i != 4).unwrap();
        let mut out = Vec::new();
        w.write_to(&mut out);
        assert_eq!(
            out, b"A: 1\r\nB:2  \r\nc: 3\r\n",
            "two runs, the value as written"
        );
        let mut map = HeaderMap::new();
        map.insert("z", HeaderValue::from_static("0"));
        w.append_to(&mut map);
        let got: Vec<_> = map
            .iter()
            .map(|(k, v)| format!("{k}={}", v.to_str().unwrap()))
            .collect();
        assert_eq!(got, ["z=0", "a=1", "b=2", "c=3"]);
        w.request_id = Some(HeaderValue::from_static("r-1"));
        out.clear();
        w.write_to(&mut out);
        assert_eq!(out, b"A: 1\r\nB:2  \r\nc: 3\r\nx-request-id: r-1\r\n");
        let mut map = HeaderMap::new();
        w.append_to(&mut map);
        assert_eq!(map["x-request-id"], "r-1");

        // Nothing kept, and nothing at all.
        let w = WireFields::of(&bytes, &spans, |_| false).unwrap();
        out.clear();
        w.write_to(&mut out);
        assert!(out.is_empty());
        let bare = "HTTP/1.1 204 No Content\r\n\r\n";
        assert!(WireFields::of(&Bytes::from(bare), &spans_of(bare), |_| true).is_some());

        // Too scattered, and bare LF line ends: left to a HeaderMap.
        let many: String = (0..9).map(|i| format!("f{i}: x\r\n")).collect();
        let head = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        assert!(WireFields::of(&Bytes::from(head.clone()), &spans_of(&head), |i| i % 2 == 0).is_none());
        for lf in [
            "HTTP/1.1 200 OK\nA: 1\n\n",
            "HTTP/1.1 200 OK\r\nA: 1\nB: 2\r\n\r\n",
        ] {
            assert!(
                WireFields::of(&Bytes::from(lf), &spans_of(lf), |_| true).is_none(),
                "{lf:?}"
            );
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
