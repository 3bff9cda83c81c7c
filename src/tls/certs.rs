//! Reading `kubernetes.io/tls` Secrets: the PEM chain and key (PKCS#1, PKCS#8 or SEC1), the
//! key/certificate match, the leaf's expiry, and CA bundles for upstream verification.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

/// The crypto provider every TLS config of the gateway uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate ready to serve.
#[derive(Clone, Debug)]
pub struct ServerCert {
    pub key: Arc<CertifiedKey>,
    /// The leaf's notAfter, seconds since the Unix epoch.
    pub not_after: Option<i64>,
}

/// The Secret `namespace/name`, if the snapshot has it.
pub fn find<'a>(secrets: &'a [Secret], namespace: &str, name: &str) -> Option<&'a Secret> {
    secrets.iter().find(|s| {
        s.metadata.name.as_deref() == Some(name)
            && s.metadata.namespace.as_deref().unwrap_or("default") == namespace
    })
}

fn field<'a>(secret: &'a Secret, key: &str) -> Option<&'a [u8]> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.as_slice())
        .filter(|b| !b.is_empty())
}

/// Why a Secret's certificate, key or CA bundle cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("the Secret has no {0}")]
    Missing(&'static str),
    #[error("{0} is not PEM: {1}")]
    NotPem(&'static str, String),
    #[error("{0} holds no CERTIFICATE block")]
    NoCertificate(&'static str),
    #[error("tls.crt: the certificate is not valid X.509")]
    NotX509,
    #[error("tls.key is not a PEM private key (PKCS#1, PKCS#8 or SEC1): {0}")]
    NotKey(String),
    #[error("tls.key cannot be used: {0}")]
    UnusableKey(String),
    #[error("tls.key does not belong to the certificate in tls.crt")]
    KeyMismatch,
    #[error("tls.crt: {0}")]
    Certificate(String),
    #[error("ca.crt: a certificate cannot be used as a trust anchor: {0}")]
    TrustAnchor(String),
    #[error("TLS versions: {0}")]
    Versions(String),
}

/// Parses `tls.crt` and `tls.key` of a Secret into a certificate to serve.
pub fn load_server_cert(secret: &Secret) -> Result<ServerCert, CertError> {
    let crt = field(secret, "tls.crt").ok_or(CertError::Missing("tls.crt"))?;
    let key = field(secret, "tls.key").ok_or(CertError::Missing("tls.key"))?;
    let chain = CertificateDer::pem_slice_iter(crt)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::NotPem("tls.crt", e.to_string()))?;
    let leaf = chain.first().ok_or(CertError::NoCertificate("tls.crt"))?;
    let not_after = not_after(leaf).ok_or(CertError::NotX509)?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| CertError::NotKey(e.to_string()))?;
    let signer = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| CertError::UnusableKey(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(CertError::KeyMismatch)
        }
        Err(e) => return Err(CertError::Certificate(e.to_string())),
    }
    Ok(ServerCert {
        key: Arc::new(certified),
        not_after: Some(not_after),
    })
}

/// Parses the CA bundle (`ca.crt`) of a Secret into a root store.
pub fn load_ca(secret: &Secret) -> Result<RootCertStore, CertError> {
    let pem = field(secret, "ca.crt").ok_or(CertError::Missing("ca.crt"))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| CertError::NotPem("ca.crt", e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| CertError::TrustAnchor(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(CertError::NoCertificate("ca.crt"));
    }
    Ok(roots)
}

/// One DER TLV: (tag, content, rest).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The certificate's notAfter (seconds since the Unix epoch).
pub fn not_after(cert: &[u8]) -> Option<i64> {
    let (0x30, cert, _) = tlv(cert)? else { return None };
    let (0x30, tbs, _) = tlv(cert)? else { return None };
    let (mut tag, _, mut rest) = tlv(tbs)?;
    if tag == 0xa0 {
        // Explicit version; the serial number follows.
        (tag, _, rest) = tlv(rest)?;
    }
    if tag != 0x02 {
        return None;
    }
    let (_, _, rest) = tlv(rest)?; // signature algorithm
    let (_, _, rest) = tlv(rest)?; // issuer
    let (0x30, validity, _) = tlv(rest)? else {
        return None;
    };
    let (_, _, validity) = tlv(validity)?; // notBefore
    let (tag, time, _) = tlv(validity)?;
    parse_time(tag, time)
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn parse_time(tag: u8, t: &[u8]) -> Option<i64> {
    let digits = |s: &[u8]| -> Option<i64> {
        s.iter().try_fold(0i64, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let (year, rest) = match tag {
        0x17 if t.len() == 13 => {
            let yy = digits(&t[..2])?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &t[2..])
        }
        0x18 if t.len() == 15 => (digits(&t[..4])?, &t[4..]),
        _ => return None,
    };
    if rest.last() != Some(&b'Z') {
        return None;
    }
    let f = |i: usize| digits(&rest[i..i + 2]);
    let (month, day, h, m, s) = (f(0)?, f(2)?, f(4)?, f(6)?, f(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse() {
        assert_eq!(parse_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(parse_time(0x17, b"300101000000Z"), Some(1_893_456_000));
        assert_eq!(parse_time(0x18, b"20300101000000Z"), Some(1_893_456_000));
        assert_eq!(parse_time(0x18, b"20240229120000Z"), Some(1_709_208_000));
        assert_eq!(parse_time(0x17, b"30010100000Z"), None);
        assert!(not_after(b"\x30\x03\x02\x01\x00").is_none());
    }
}
