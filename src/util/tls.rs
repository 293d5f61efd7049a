//! TLS for the agent's clients (an `https://` webhook), with rustls and
//! its `ring` provider: no OpenSSL to link into the static binary, and
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
}
