//! A certificate authority made for one test, and the server
//! configurations it signs: valid, expired, for another name. Compiled
//! into the library's unit tests and, by path, into the lab tests' support
//! (tests/support), so both speak to the same kind of CA; never into the
//! binary (rcgen is a dev-dependency).

/// A CA: its certificate and key.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl TestCa {
    /// A new CA named `name` (distinct names keep chains apart).
    pub fn new(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        Self { cert: params.self_signed(&key).unwrap(), key }
    }

    /// The CA's certificate as PEM: what a client is told to trust.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate this CA signed for `name` (a DNS name or an address),
    /// long expired when `expired`, and its key.
    fn issue(
        &self,
        name: &str,
        expired: bool,
    ) -> (rcgen::Certificate, rcgen::KeyPair) {
        let mut params =
            rcgen::CertificateParams::new(vec![name.into()]).unwrap();
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert, key)
    }

    /// The DER of a certificate as [`Self::issue`] makes.
    pub fn certificate_der(&self, name: &str, expired: bool) -> Vec<u8> {
        self.issue(name, expired).0.der().to_vec()
    }

    /// A server configuration with a certificate as [`Self::issue`] makes.
    pub fn server(&self, name: &str, expired: bool) -> rustls::ServerConfig {
        let (cert, key) = self.issue(name, expired);
        let der =
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
                .unwrap();
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], der)
            .unwrap()
    }

    /// The same as PEM files in `dir`, `NAME.crt` and `NAME.key` (the
    /// key readable by its owner only): for a server in another process.
    pub fn server_files(
        &self,
        dir: &std::path::Path,
        file: &str,
        name: &str,
        expired: bool,
    ) -> (std::path::PathBuf, std::path::PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let (cert, key) = self.issue(name, expired);
        let (crt, pem) =
            (dir.join(format!("{file}.crt")), dir.join(format!("{file}.key")));
        std::fs::write(&crt, cert.pem()).unwrap();
        std::fs::write(&pem, key.serialize_pem()).unwrap();
        std::fs::set_permissions(&pem, std::fs::Permissions::from_mode(0o600))
            .unwrap();
        (crt, pem)
    }
}
