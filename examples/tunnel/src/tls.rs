//! TLS 1.3 for the link: the server's certificate from PEM files (or made by
//! `hawser keygen`), and a client that trusts either the certificate's SHA-256
//! fingerprint or a CA file.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring as provider, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};

/// ring's provider, with AES-128-GCM first: the server picks the suite, and
/// on CPUs with AES instructions AES-128 moves bulk data faster than AES-256
/// while staying a TLS 1.3 suite with 128-bit security.
fn provider() -> Arc<CryptoProvider> {
    let mut provider = provider::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|suite| suite.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(provider)
}

/// The SHA-256 fingerprint of a certificate, as 64 lowercase hex digits.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    digest.as_ref().iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// A fingerprint as given on the command line: hex, with or without colons.
pub fn parse_fingerprint(text: &str) -> Result<String, String> {
    let hex: String = text
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{text:?} is not a SHA-256 fingerprint (64 hex digits, as `hawser keygen` prints)"
        ));
    }
    Ok(hex)
}

/// Reads a certificate chain and its key from PEM files.
pub fn load_cert(cert: &Path, key: &Path) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|err| format!("cannot read {}: {err}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|err| format!("{}: {err}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", cert.display()));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|err| format!("cannot read the key {}: {err}", key.display()))?;
    Ok((chain, key))
}

/// The server's TLS 1.3 configuration.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, String> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|err| err.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|err| format!("the certificate and key do not work together: {err}"))?;
    // After the handshake the link seals its own records (see `records`).
    config.enable_secret_extraction = true;
    // Clients never resume TLS sessions (a hawser session resumes over a
    // fresh handshake), so tickets would be bytes for nothing.
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// What the client trusts.
#[derive(Clone, Debug)]
pub enum Trust {
    /// Exactly the certificate with this SHA-256 fingerprint (hex).
    Fingerprint(String),
    /// Certificates a CA in this file signed, for the server's name.
    Ca(std::path::PathBuf),
}

/// The client's TLS 1.3 configuration.
pub fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|err| err.to_string())?;
    let mut config = match trust {
        Trust::Fingerprint(fingerprint) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                fingerprint: fingerprint.clone(),
                algorithms: provider().signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        Trust::Ca(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in
                CertificateDer::pem_file_iter(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?
            {
                let cert = cert.map_err(|err| format!("{}: {err}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|err| format!("{}: not a CA certificate: {err}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{}: no certificate in it", path.display()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    // After the handshake the link seals its own records (see `records`).
    config.enable_secret_extraction = true;
    Ok(Arc::new(config))
}

/// Trusts one certificate, by its fingerprint; its name and dates do not
/// matter (it is the one `hawser keygen` made for this server), but the
/// handshake's signatures are still checked against it.
#[derive(Debug)]
struct Pinned {
    fingerprint: String,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = fingerprint(end_entity);
        // Both are public; the comparison need not be constant-time.
        if presented == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate has fingerprint {presented}, not the pinned {}",
                self.fingerprint
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A new self-signed certificate for `names`, as PEM (certificate, key), and
/// its fingerprint.
pub fn self_signed(names: Vec<String>) -> Result<(String, String, String), String> {
    let certified = rcgen::generate_simple_self_signed(names).map_err(|err| err.to_string())?;
    let fingerprint = fingerprint(certified.cert.der());
    Ok((certified.cert.pem(), certified.key_pair.serialize_pem(), fingerprint))
}

/// `hawser keygen`: a self-signed certificate and its key (readable by its
/// owner only), and a token if asked for; prints where they went and the
/// fingerprint clients pin.
pub fn keygen(args: &crate::cli::KeygenArgs) -> Result<(), String> {
    if !args.force {
        let existing: Vec<String> = [args.cert.as_ref(), args.key.as_ref(), args.token.as_ref()]
            .into_iter()
            .flatten()
            .filter(|path| path.exists())
            .map(|path| path.display().to_string())
            .collect();
        if !existing.is_empty() {
            return Err(format!(
                "{} already exist(s); a new key and token lock out every client configured with the old \
                 fingerprint and token: pass --force to replace them",
                existing.join(", ")
            ));
        }
    }
    if let Some(path) = &args.token {
        let token = crate::auth::Token::generate().map_err(|err| err.to_string())?;
        write_private(path, token.as_bytes()).map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        println!(
            "token written to {} (copy it to the client over a safe channel)",
            path.display()
        );
    }
    // clap requires --cert and --key together, and one of them or --token.
    let (Some(cert_path), Some(key_path)) = (&args.cert, &args.key) else {
        return Ok(());
    };
    let (cert, key, fingerprint) =
        self_signed(args.name.clone()).map_err(|err| format!("cannot make a certificate: {err}"))?;
    std::fs::write(cert_path, cert).map_err(|err| format!("cannot write {}: {err}", cert_path.display()))?;
    write_private(key_path, key.as_bytes()).map_err(|err| format!("cannot write {}: {err}", key_path.display()))?;
    println!(
        "certificate written to {}, key to {}",
        cert_path.display(),
        key_path.display()
    );
    println!("fingerprint {fingerprint}");
    Ok(())
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    options.open(path)?.write_all(contents)
}
