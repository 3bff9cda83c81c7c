//! A set of HTTP methods as a bitmask: membership and union without allocation.

use http::Method;

/// A set of the nine standard HTTP methods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MethodSet(u16);

const NAMES: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
];

impl MethodSet {
    pub const EMPTY: MethodSet = MethodSet(0);
    pub const ALL: MethodSet = MethodSet((1 << NAMES.len()) - 1);

    /// The bit of `m`; extension methods have none and match only `ALL`-routes.
    pub fn of(m: &Method) -> MethodSet {
        let i = match *m {
            Method::GET => 0,
            Method::HEAD => 1,
            Method::POST => 2,
            Method::PUT => 3,
            Method::DELETE => 4,
            Method::PATCH => 5,
            Method::OPTIONS => 6,
            Method::CONNECT => 7,
            Method::TRACE => 8,
            _ => return MethodSet(1 << 15),
        };
        MethodSet(1 << i)
    }

    /// Parses configured method names; empty means all.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<MethodSet, super::SpecError> {
        if names.is_empty() {
            return Ok(MethodSet::ALL);
        }
        let mut set = MethodSet::EMPTY;
        for n in names {
            let upper = n.as_ref().trim().to_ascii_uppercase();
            let i = NAMES
                .iter()
                .position(|x| *x == upper)
                .ok_or_else(|| super::SpecError::UnknownMethod(n.as_ref().to_string()))?;
            set.0 |= 1 << i;
        }
        Ok(set)
    }

    pub fn is_all(self) -> bool {
        self.0 & Self::ALL.0 == Self::ALL.0
    }

    /// Whether `m` (a single-method set from `of`) is in this set.
    pub fn contains(self, m: MethodSet) -> bool {
        self.is_all() || self.0 & m.0 != 0
    }

    pub fn intersects(self, other: MethodSet) -> bool {
        self.0 & other.0 != 0
    }

    pub fn union(self, other: MethodSet) -> MethodSet {
        MethodSet(self.0 | other.0)
    }

    /// `GET, HEAD, POST` as for an `Allow` header.
    pub fn allow_header(self) -> String {
        NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets() {
        let s = MethodSet::parse(&["get", "POST"]).expect("valid");
        assert!(s.contains(MethodSet::of(&Method::GET)));
        assert!(!s.contains(MethodSet::of(&Method::PUT)));
        assert_eq!(s.allow_header(), "GET, POST");
        assert!(MethodSet::parse::<&str>(&[])
            .expect("empty")
            .contains(MethodSet::of(&Method::PATCH)));
        assert!(MethodSet::parse(&["FETCH"]).is_err());
        let ext = Method::from_bytes(b"PROPFIND").expect("method");
        assert!(MethodSet::ALL.contains(MethodSet::of(&ext)));
        assert!(!s.contains(MethodSet::of(&ext)));
    }
}
