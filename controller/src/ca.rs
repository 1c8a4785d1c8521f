//! The controller's own certificate authority: it signs the controller's
//! server certificate and each agent's client certificate at enrollment.
//!
//! Certificates carry long validity: an agent is shut out by revocation in
//! the controller's state (checked on every request), not by expiry, so a
//! PD server forgotten for a year still reconnects.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const CA_YEARS: i64 = 20;
const LEAF_YEARS: i64 = 10;

/// A certificate and its private key, both PEM.
pub struct CertAndKey {
    pub cert_pem: String,
    pub key_pem: String,
}

/// An agent's freshly signed client certificate.
pub struct SignedAgentCert {
    pub cert_pem: String,
    /// SHA-256 of the DER: how each request's certificate is looked up.
    pub fingerprint: [u8; 32],
    pub serial_hex: String,
}

/// SHA-256 of a certificate's DER, as enrollment tokens carry it.
pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

/// The DER of the first certificate in `pem`.
pub fn first_cert_der(pem: &str) -> Result<CertificateDer<'static>> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| Error::Certificate(format!("not a PEM certificate: {e}")))
}

fn validity(params: &mut CertificateParams, years: i64) {
    let now = time::OffsetDateTime::now_utc();
    // An hour of slack for clocks a little behind the controller's.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(365 * years);
}

fn random_serial() -> (SerialNumber, String) {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random source is available");
    b[0] &= 0x7f; // positive INTEGER
    (SerialNumber::from_slice(&b), hex::encode(b))
}

/// A new CA: ECDSA P-256 key, self-signed, allowed to sign end certificates only.
pub fn create_ca(regency: &str) -> Result<CertAndKey> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        format!("cadang controller CA {regency}"),
    );
    dn.push(DnType::OrganizationName, "cadang");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(random_serial().0);
    validity(&mut params, CA_YEARS);
    let cert = params.self_signed(&key)?;
    Ok(CertAndKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The CA loaded for signing.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub cert_pem: String,
    pub fingerprint: [u8; 32],
}

impl Ca {
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Ca> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        let der = first_cert_der(cert_pem)?;
        Ok(Ca {
            issuer,
            cert_pem: cert_pem.to_string(),
            fingerprint: fingerprint(&der),
        })
    }

    /// The server certificate for `names` (DNS names or IP addresses).
    pub fn server_cert(&self, names: &[String]) -> Result<CertAndKey> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.to_vec())?;
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_else(|| "cadang".into()),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.serial_number = Some(random_serial().0);
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, LEAF_YEARS);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertAndKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Signs an agent's CSR. Only the CSR's public key is used: the subject
    /// (CN = agent id), the SAN (the host) and the usage (client auth only)
    /// are the controller's, whatever the request asked for.
    pub fn sign_agent(&self, csr_pem: &str, agent_id: &str, host: &str) -> Result<SignedAgentCert> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| {
            Error::Certificate(format!(
                "the agent's certificate request cannot be read ({e}); the agent must send a PEM PKCS#10 request"
            ))
        })?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, agent_id);
        params.distinguished_name = dn;
        params.subject_alt_names = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![SanType::IpAddress(ip)],
            Err(_) => vec![SanType::DnsName(host.to_string().try_into()?)],
        };
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let (serial, serial_hex) = random_serial();
        params.serial_number = Some(serial);
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, LEAF_YEARS);
        let cert = params.signed_by(&csr.public_key, &self.issuer)?;
        Ok(SignedAgentCert {
            fingerprint: fingerprint(cert.der()),
            cert_pem: cert.pem(),
            serial_hex,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_a_csr_with_its_own_subject() {
        let ca_files = create_ca("Test").unwrap();
        let ca = Ca::load(&ca_files.cert_pem, &ca_files.key_pem).unwrap();
        let agent_key = KeyPair::generate().unwrap();
        let mut req = CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
        req.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let csr = req.serialize_request(&agent_key).unwrap().pem().unwrap();
        let signed = ca.sign_agent(&csr, "agent-1", "srv-dukcapil").unwrap();
        let der = first_cert_der(&signed.cert_pem).unwrap();
        assert_eq!(signed.fingerprint, fingerprint(&der));
        // The CA bit the request asked for is not granted.
        let text = String::from_utf8_lossy(&der);
        assert!(!text.contains("evil.example"));
        assert!(ca.sign_agent("not a csr", "a", "h").is_err());
    }
}
