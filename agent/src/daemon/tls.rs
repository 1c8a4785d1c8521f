//! TLS for the agent: rustls with the aws-lc-rs provider (the one the rest
//! of the graph uses), chosen explicitly so no process-wide default is
//! needed.
//!
//! * Enrollment: the agent has no trust store yet. [`FingerprintVerifier`]
//!   accepts the controller only if the chain it presents contains a CA
//!   certificate whose SHA-256 (of the DER) is the fingerprint in the
//!   enrollment token, and the leaf is valid under that CA for the host
//!   name dialled. Nothing is sent before that check passes: no trust on
//!   first use.
//! * Afterwards: mutual TLS with the stored CA as the only root and the
//!   client certificate the controller issued.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use super::DaemonError;

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

pub fn parse_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, DaemonError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    let certs = certs.map_err(|e| DaemonError::Tls(format!("unreadable certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(DaemonError::Tls("no certificate in the PEM text".into()));
    }
    Ok(certs)
}

fn base(
    provider: Arc<CryptoProvider>,
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, DaemonError> {
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DaemonError::Tls(e.to_string()))
}

/// Checks the presented CA against the token's fingerprint, then the leaf
/// against that CA. Remembers what it saw, for the error message.
#[derive(Debug)]
pub struct FingerprintVerifier {
    expected: [u8; 32],
    provider: Arc<CryptoProvider>,
    seen: Mutex<Option<String>>,
    schemes: Vec<SignatureScheme>,
}

impl FingerprintVerifier {
    pub fn new(expected: [u8; 32]) -> FingerprintVerifier {
        let provider = provider();
        let schemes = provider
            .signature_verification_algorithms
            .supported_schemes();
        FingerprintVerifier {
            expected,
            provider,
            seen: Mutex::new(None),
            schemes,
        }
    }

    /// The fingerprints of the certificates a refused server presented.
    pub fn mismatch(&self) -> Option<String> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn client_config(self: &Arc<Self>) -> Result<ClientConfig, DaemonError> {
        Ok(base(self.provider.clone())?
            .dangerous()
            .with_custom_certificate_verifier(self.clone())
            .with_no_client_auth())
    }
}

impl ServerCertVerifier for FingerprintVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(ca) = intermediates
            .iter()
            .find(|c| fingerprint(c.as_ref()) == self.expected)
        else {
            let found: Vec<String> = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| hex::encode(fingerprint(c.as_ref())))
                .collect();
            *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(found.join(", "));
            return Err(rustls::Error::General(
                "the controller's CA does not match the enrollment token's fingerprint".into(),
            ));
        };
        let mut roots = RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|e| rustls::Error::General(format!("the controller's CA is unusable: {e}")))?;
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

/// Mutual TLS after enrollment: only the stored CA is trusted.
pub fn mtls_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<ClientConfig, DaemonError> {
    let mut roots = RootCertStore::empty();
    for ca in parse_certs(ca_pem)? {
        roots
            .add(ca)
            .map_err(|e| DaemonError::Tls(format!("the stored controller CA is unusable: {e}")))?;
    }
    let chain = parse_certs(cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| DaemonError::Tls(format!("the agent's TLS key is unreadable: {e}")))?;
    base(provider())?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| {
            DaemonError::Tls(format!(
                "the client certificate does not match the agent's key: {e}"
            ))
        })
}
