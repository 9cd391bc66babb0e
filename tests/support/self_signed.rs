//! A TLS server configuration for `localhost` with a fresh self-signed certificate, for the
//! https stand-in servers of the workspace tests and the CLI's (included with `#[path]`; not a
//! test target).

use std::io::Write;
use std::sync::Arc;

/// The server configuration and the certificate as a PEM file (a client's extra root).
pub fn localhost() -> (Arc<rustls::ServerConfig>, tempfile::NamedTempFile) {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let mut pem = tempfile::NamedTempFile::new().unwrap();
    pem.write_all(key.cert.pem().as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![key.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into()),
        )
        .unwrap();
    (Arc::new(config), pem)
}
