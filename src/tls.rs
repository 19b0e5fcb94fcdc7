//! The certificate the TLS listeners serve, swapped whole by a reload.
//!
//! pingora 0.9.1's rustls listener takes a rustls [`ResolvesServerCert`]
//! (`TlsSettings::set_cert_resolver`), which rustls asks for the certificate during every
//! handshake. [`ServedCertificate`] is that resolver: it answers with the certificate and key
//! loaded now, and a reload installs a new pair. A handshake that already took the old pair
//! finishes with it, and connections already open are untouched (their keys are negotiated), so
//! a renewal drops nothing. The pair is checked before it is installed (`config::resolve`: PEM,
//! and the key must sign for the certificate), so a broken file leaves the old one serving.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The certificate chain and key handshakes use now.
pub struct ServedCertificate {
    current: ArcSwap<CertifiedKey>,
}

impl ServedCertificate {
    pub fn new(first: Arc<CertifiedKey>) -> ServedCertificate {
        ServedCertificate {
            current: ArcSwap::new(first),
        }
    }

    /// Serves `next` from the next handshake on.
    pub fn install(&self, next: Arc<CertifiedKey>) {
        self.current.store(next);
    }

    /// The pair served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }
}

impl std::fmt::Debug for ServedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The chain only: the key stays out of logs.
        f.debug_struct("ServedCertificate")
            .field("certificates", &self.current.load().cert.len())
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for ServedCertificate {
    /// One certificate for every server name: the gateway serves one `public_url`.
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The chain and key as rustls signs with them, or why they do not go together (a key type the
/// provider cannot use, or a key that is not the certificate's).
pub fn certified_key(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, rustls::Error> {
    // The provider pingora's listener installs (`pingora_rustls`): ring.
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(certs, key, &provider).map(Arc::new)
}
