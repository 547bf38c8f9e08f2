//! rustls configurations from PEM files, shared by the `https-hello` and `proxy` examples.

use std::io;
use std::sync::Arc;

use evloop::rustls::pki_types::pem::PemObject;
use evloop::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use evloop::rustls::{self, ClientConfig, RootCertStore, ServerConfig};

/// ring: it builds for every target evloop supports (see the README's TLS section).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[allow(deprecated)] // for lacking post-quantum key exchange, which only aws-lc-rs has
    Arc::new(rustls::crypto::ring::default_provider())
}

fn named(file: &str, e: rustls::pki_types::pem::Error) -> io::Error {
    io::Error::other(format!("{file}: {e}"))
}

/// The certificates in a PEM file.
fn certificates(file: &str) -> io::Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(file)
        .map_err(|e| named(file, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| named(file, e))
}

/// A server configuration with `chain` and `key`, offering `alpn`.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
) -> io::Result<Arc<ServerConfig>> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(io::Error::other)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A server configuration from a certificate chain and a key in two PEM files.
pub fn server_config_from_files(
    cert: &str,
    key: &str,
    alpn: &[&[u8]],
) -> io::Result<Arc<ServerConfig>> {
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| named(key, e))?;
    server_config(certificates(cert)?, key_der, alpn)
}

/// A client configuration that trusts the certificates in the PEM file `ca`.
#[allow(dead_code)] // https-hello has no client side
pub fn client_config(ca: &str) -> io::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca)? {
        roots.add(cert).map_err(io::Error::other)?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
