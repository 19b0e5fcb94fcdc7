//! TLS for tests: one certificate authority per test process, which every client from
//! [`super::client`] trusts, and `localhost` certificates it signs, written as PEM files a config
//! names. Which certificate a gateway served is read back from the response.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate for `localhost` signed by the test CA, on disk.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The certificate as served (DER), to compare with what a client saw.
    pub der: Vec<u8>,
}

/// The test process's CA.
pub fn test_ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("CA key");
        TestCa {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    })
}

impl TestCa {
    /// The CA certificate, PEM.
    pub fn root_pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA certificate, DER.
    pub fn root_der(&self) -> rustls::pki_types::CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A new `localhost` certificate and key in `dir` as `<name>.crt` and `<name>.key`.
    pub fn leaf(&self, dir: &Path, name: &str) -> Leaf {
        let params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        let leaf = Leaf {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
            der: cert.der().to_vec(),
        };
        std::fs::write(&leaf.cert, cert.pem()).expect("write cert");
        std::fs::write(&leaf.key, key.serialize_pem()).expect("write key");
        leaf
    }
}

/// The certificate the server presented for `response`'s connection (DER).
pub fn served(response: &reqwest::Response) -> Vec<u8> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("a TLS response records the server's certificate")
        .to_vec()
}

/// A `[server]` block's TLS table for `leaf`'s files.
pub fn tls_table(leaf: &Leaf) -> String {
    format!(
        "[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        leaf.cert.display(),
        leaf.key.display()
    )
}

/// [`super::config`] served over TLS with `leaf`: `public_url` is `https`, as a browser sees it.
pub fn tls_config(server: &str, rest: &str, leaf: &Leaf) -> String {
    super::config(&format!("{server}\n{}", tls_table(leaf)), rest).replacen(
        "public_url = \"http://",
        "public_url = \"https://",
        1,
    )
}
