//! A throwaway certificate authority and a relay certificate signed by it, for wss:// tests.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// PEM files of a test CA and a `localhost`/`127.0.0.1` certificate it signed.
pub struct TestPki {
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestPki {
    /// Writes `ca.pem`, `relay.pem` and `relay.key` into `dir`.
    pub fn generate(dir: &Path) -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "ZedOps test CA");
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");

        let key = KeyPair::generate().expect("relay key");
        let mut leaf =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("params");
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        let cert = leaf
            .signed_by(&key, &ca_cert, &ca_key)
            .expect("relay certificate");

        let pki = Self {
            ca_cert: dir.join("ca.pem"),
            cert: dir.join("relay.pem"),
            key: dir.join("relay.key"),
        };
        std::fs::write(&pki.ca_cert, ca_cert.pem()).expect("write CA");
        std::fs::write(&pki.cert, cert.pem()).expect("write certificate");
        std::fs::write(&pki.key, key.serialize_pem()).expect("write key");
        pki
    }
}
