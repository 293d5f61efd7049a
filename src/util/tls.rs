//! TLS for the agent's clients (`https://` webhooks, email over STARTTLS
//! or TLS, HTTPS checks), with rustls and its `ring` provider: no OpenSSL to link into the static binary, and
//! one implementation the validation on the controller and the agent on a
//! host both use, so a CA file that validates is one the agent can load.
//!
//! Whom to trust is one of two answers, never a mix: the host's own CA
//! bundle (what `curl` and the package manager trust there, kept current
//! by the distribution, holding an organisation's internal CA where it
//! was installed), or only the CAs of a PEM file the inventory names —
//! as `curl --cacert` does, so a private CA does not widen into trusting
//! the whole public web, nor the public web into a private endpoint.
//! Verification cannot be switched off for notifications; a health
//! check may go without it, as keepalived's `SSL_GET` always does
//! ([`check_config`]).

use std::sync::{Arc, OnceLock};

use anyhow::{Context, anyhow};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

#[cfg(test)]
pub(crate) mod test_ca;

/// The largest CA file read, in bytes: a bundle of a few hundred
/// certificates (Debian's whole bundle is about 220 KB).
pub const CA_FILE_MAX: u64 = 1 << 20;

/// The trust anchors in `pem`: every `CERTIFICATE` block, each one that
/// webpki accepts as an anchor; other blocks (a key by mistake) are
/// passed over as PEM allows.
///
/// # Errors
/// Text that is not PEM, no certificate in it, or a certificate that does
/// not parse — naming which (1-based), never quoting it.
pub fn roots_from_pem(pem: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for (i, cert) in CertificateDer::pem_slice_iter(pem.as_bytes()).enumerate()
    {
        let cert = cert.map_err(|e| format!("not PEM: {e}"))?;
        roots.add(cert).map_err(|e| {
            format!("certificate {} is not a usable CA: {e}", i + 1)
        })?;
    }
    if roots.is_empty() {
        return Err("holds no `BEGIN CERTIFICATE` block".into());
    }
    Ok(roots)
}

/// The host's CA bundle, loaded once: where OpenSSL's conventions put it
/// (`SSL_CERT_FILE`, `/etc/ssl/certs`, `/etc/pki/tls`…). Certificates of
/// it that do not parse are skipped, as OpenSSL skips them.
fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> =
        OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (_added, _skipped) =
                roots.add_parsable_certificates(found.certs);
            match roots.is_empty() {
                false => Ok(Arc::new(roots)),
                true => Err(format!(
                    "the host has no CA bundle to verify against ({}) — \
                     install ca-certificates or give the CA file",
                    found
                        .errors
                        .first()
                        .map_or("none found".into(), ToString::to_string)
                )),
            }
        })
        .clone()
}

/// A client configuration trusting the CAs of `ca_pem`, or the host's
/// bundle when `None`.
///
/// # Errors
/// A PEM that [`roots_from_pem`] refuses, or a host without a bundle.
pub fn client_config(
    ca_pem: Option<&str>,
) -> anyhow::Result<Arc<ClientConfig>> {
    let roots = match ca_pem {
        Some(pem) => Arc::new(
            roots_from_pem(pem).map_err(|e| anyhow!("the CA file {e}"))?,
        ),
        None => system_roots().map_err(|e| anyhow!(e))?,
    };
    let config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A client configuration for a health check: verifying as
/// [`client_config`] does when `verify`, else accepting any certificate
/// as keepalived's `SSL_GET` does — the handshake's signatures are still
/// checked, so the session is at least with the holder of the key the
/// certificate names.
///
/// # Errors
/// As [`client_config`], when verifying.
pub fn check_config(
    ca_pem: Option<&str>,
    verify: bool,
) -> anyhow::Result<Arc<ClientConfig>> {
    if verify {
        return client_config(ca_pem);
    }
    let builder = ClientConfig::builder();
    let provider = builder.crypto_provider().clone();
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Takes any certificate, checks the handshake's signatures by it.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error>
    {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error>
    {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS handshake over `tcp` with the server named `host` (a DNS name
/// or an address, which its certificate must carry), verified against
/// `config`.
///
/// # Errors
/// A host that is no server name, or a failed handshake: the reason
/// rustls gives (`invalid peer certificate: Expired`, `…: NotValidForName`).
pub async fn connect(
    tcp: TcpStream,
    host: &str,
    config: Arc<ClientConfig>,
) -> anyhow::Result<TlsStream<TcpStream>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(bare.to_owned())
        .map_err(|_| anyhow!("`{host}` is not a server name for TLS"))?;
    TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .with_context(|| format!("TLS handshake with {host}"))
}

/// When the certificate `der` stops being valid (its `notAfter`), read
/// from the DER the server sent — hostile bytes, so every length is
/// checked and anything unexpected is `None`, never a panic. Only the
/// path to `notAfter` is walked: Certificate → TBSCertificate → (version)
/// serial, signature, issuer → Validity (RFC 5280 §4.1).
pub fn not_after(der: &[u8]) -> Option<std::time::SystemTime> {
    const SEQUENCE: u8 = 0x30;
    let (SEQUENCE, certificate, _) = der_element(der)? else { return None };
    let (SEQUENCE, tbs, _) = der_element(certificate)? else { return None };
    let mut rest = tbs;
    // The explicit [0] version is absent from v1 certificates.
    if let (0xa0, _, after) = der_element(rest)? {
        rest = after;
    }
    for want in [0x02, SEQUENCE, SEQUENCE] {
        let (tag, _, after) = der_element(rest)?;
        if tag != want {
            return None;
        }
        rest = after;
    }
    let (SEQUENCE, validity, _) = der_element(rest)? else { return None };
    let (_, _, after) = der_element(validity)?;
    let (tag, time, _) = der_element(after)?;
    der_time(tag, time)
}

/// One DER element at the start of `buf`: its tag, its contents and what
/// follows it. Lengths of more than four bytes, and BER's indefinite
/// length, are not DER here.
fn der_element(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = buf.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81..=0x84 => {
            let (bytes, rest) =
                rest.split_at_checked(usize::from(first & 0x7f))?;
            let len =
                bytes.iter().fold(0usize, |n, &b| n << 8 | usize::from(b));
            (len, rest)
        }
        _ => return None,
    };
    let (contents, after) = rest.split_at_checked(len)?;
    Some((tag, contents, after))
}

/// An X.509 time: UTCTime `YYMMDDHHMMSSZ` (years 1950–2049, RFC 5280
/// §4.1.2.5.1) or GeneralizedTime `YYYYMMDDHHMMSSZ`.
fn der_time(tag: u8, time: &[u8]) -> Option<std::time::SystemTime> {
    let text = std::str::from_utf8(time).ok()?;
    let year = match (tag, text.len()) {
        (0x17, 13) => match text.get(..2)?.parse::<u16>().ok()? {
            yy @ 50.. => format!("19{yy}"),
            yy => format!("20{yy:02}"),
        },
        (0x18, 15) => text.get(..4)?.to_owned(),
        _ => return None,
    };
    let rest = &text[text.len() - 11..];
    let digits = rest.get(..10)?;
    if !rest.ends_with('Z') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let [mo, d, h, mi, s] =
        [0, 2, 4, 6, 8].map(|i| digits.get(i..i + 2).unwrap_or_default());
    humantime::parse_rfc3339(&format!("{year}-{mo}-{d}T{h}:{mi}:{s}Z")).ok()
}

#[cfg(test)]
mod tests {
    use super::test_ca::TestCa;
    use super::*;

    /// A key block: PEM, but not a certificate.
    const KEY: &str =
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";

    #[test]
    fn a_pem_of_certificates_gives_its_anchors() {
        let (a, b) = (TestCa::new("a"), TestCa::new("b"));
        let pem = format!("{}{}", a.pem(), b.pem());
        assert_eq!(roots_from_pem(&pem).unwrap().len(), 2);
        // A key beside the certificate is passed over.
        let with_key = format!("{KEY}{}", a.pem());
        assert_eq!(roots_from_pem(&with_key).unwrap().len(), 1);
    }

    #[test]
    fn a_pem_without_a_usable_certificate_is_refused_by_number() {
        assert!(roots_from_pem("").unwrap_err().contains("no `BEGIN"));
        assert!(roots_from_pem("hello\n").unwrap_err().contains("no `BEGIN"));
        assert!(roots_from_pem(KEY).unwrap_err().contains("no `BEGIN"));
        let junk =
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let good = TestCa::new("a").pem();
        let err = roots_from_pem(&format!("{good}{junk}")).unwrap_err();
        assert!(err.starts_with("certificate 2 "), "{err}");
        let cut = &good[..good.len() - 10];
        assert!(roots_from_pem(cut).is_err());
    }

    #[test]
    fn not_after_is_read_from_the_certificate() {
        use std::time::{Duration, UNIX_EPOCH};
        let ca = TestCa::new("dates");
        let expired = ca.certificate_der("h.example", true);
        // rcgen's not_after for an expired one: 2021-01-01T00:00:00Z.
        assert_eq!(
            not_after(&expired),
            Some(UNIX_EPOCH + Duration::from_secs(1_609_459_200))
        );
        let valid = not_after(&ca.certificate_der("h.example", false));
        assert!(valid.unwrap() > std::time::SystemTime::now());
    }

    #[test]
    fn x509_times_both_forms() {
        use std::time::{Duration, UNIX_EPOCH};
        let at = |secs| Some(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(der_time(0x17, b"491231235959Z"), at(2_524_607_999));
        // UTCTime 50 is 1950, not 2050 (RFC 5280 §4.1.2.5.1).
        assert_ne!(der_time(0x17, b"500101000000Z"), at(2_524_608_000));
        assert_eq!(der_time(0x18, b"20210101000000Z"), at(1_609_459_200));
        for bad in [
            &b"2101010000Z"[..],
            b"210101000000+",
            b"21013100000aZ",
            b"211301000000Z",
        ] {
            assert_eq!(der_time(0x17, bad), None, "{bad:?}");
        }
        assert_eq!(der_time(0x04, b"210101000000Z"), None);
    }

    #[test]
    fn hostile_der_is_none_never_a_panic() {
        let good = TestCa::new("fuzz").certificate_der("h.example", false);
        for cut in 0..good.len() {
            let _ = not_after(&good[..cut]);
        }
        assert_eq!(not_after(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(not_after(&[0x30, 0x80, 0x00, 0x00]), None);
        assert_eq!(not_after(&[]), None);
    }
}
