//! TLS for clients, with trust on first use as OpenSSH does it: a server's certificate is
//! trusted if it chains to the web's roots (as a browser would trust it), or if its
//! fingerprint is the one this client accepted before, kept in `known_servers`, one line per
//! `host:port`. Anything else is refused with the certificate's fingerprint
//! ([`crate::ClientError::Untrusted`]), and the client decides: ask its user the first time,
//! and refuse loudly when a known server's certificate changed.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

pub use rustls;
pub use tokio_rustls;

/// A certificate's fingerprint as OpenSSH shows a key's: `SHA256:` and the SHA-256 digest of
/// its DER encoding in base64 without padding.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest.as_ref())
    )
}

/// The crypto this suite uses: rustls's ring provider.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration that trusts what chains to the web's roots, and a certificate
/// with the fingerprint `pinned`; the fingerprint of what it saw goes to `seen`.
pub fn client_config(
    pinned: Option<String>,
    seen: Arc<Mutex<Option<String>>>,
) -> Result<ClientConfig, rustls::Error> {
    let provider = provider();
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let web = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .ok();
    let verifier = Tofu {
        web,
        pinned,
        seen,
        algorithms: provider.signature_verification_algorithms,
    };
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// Trust on first use: the web's roots, or the fingerprint accepted before.
struct Tofu {
    web: Option<Arc<WebPkiServerVerifier>>,
    pinned: Option<String>,
    seen: Arc<Mutex<Option<String>>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for Tofu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tofu")
            .field("pinned", &self.pinned)
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for Tofu {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let print = fingerprint(end_entity);
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(print.clone());
        if self.pinned.as_deref() == Some(print.as_str()) {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.web {
            Some(web) => {
                web.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
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

/// The name a certificate is checked against for `addr` (`host:port`): the host as a DNS
/// name or an address.
pub fn server_name(addr: &str) -> Option<ServerName<'static>> {
    let host = match addr.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).ok()
}

/// The servers whose certificates this user accepted: `known_servers` in the configuration
/// folder, one `host:port SHA256:...` line each (`#` starts a comment).
#[derive(Debug, Clone)]
pub struct KnownServers {
    path: PathBuf,
}

impl KnownServers {
    /// The file at `path` (it need not exist yet).
    pub fn at(path: impl Into<PathBuf>) -> Self {
        KnownServers { path: path.into() }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lines(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                Some((words.next()?.to_owned(), words.next()?.to_owned()))
            })
            .collect()
    }

    /// The fingerprint accepted for `server`, if any.
    pub fn lookup(&self, server: &str) -> Option<String> {
        self.lines()
            .into_iter()
            .find(|(s, _)| s == server)
            .map(|(_, f)| f)
    }

    /// Accepts `fingerprint` for `server` from now on (replacing what was accepted before).
    pub fn remember(&self, server: &str, fingerprint: &str) -> io::Result<()> {
        let mut lines: Vec<(String, String)> = self
            .lines()
            .into_iter()
            .filter(|(s, _)| s != server)
            .collect();
        lines.push((server.to_owned(), fingerprint.to_owned()));
        self.write(&lines)
    }

    /// Forgets `server`; whether it was known.
    pub fn forget(&self, server: &str) -> io::Result<bool> {
        let lines = self.lines();
        let kept: Vec<(String, String)> =
            lines.iter().filter(|(s, _)| s != server).cloned().collect();
        if kept.len() == lines.len() {
            return Ok(false);
        }
        self.write(&kept)?;
        Ok(true)
    }

    fn write(&self, lines: &[(String, String)]) -> io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut text = String::from("# chat-tui: the servers whose certificates were accepted\n");
        for (server, fingerprint) in lines {
            text.push_str(&format!("{server} {fingerprint}\n"));
        }
        let tmp = self.path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_servers_remember_replace_and_forget() {
        let dir = std::env::temp_dir().join(format!("chat-known-{}", std::process::id()));
        let known = KnownServers::at(dir.join("known_servers"));
        assert_eq!(known.lookup("chat.example:12345"), None);
        known
            .remember("chat.example:12345", "SHA256:aaa")
            .expect("write");
        known.remember("other:1", "SHA256:bbb").expect("write");
        known
            .remember("chat.example:12345", "SHA256:ccc")
            .expect("write");
        assert_eq!(
            known.lookup("chat.example:12345").as_deref(),
            Some("SHA256:ccc")
        );
        assert!(known.forget("chat.example:12345").expect("forget"));
        assert!(!known.forget("chat.example:12345").expect("forget"));
        assert_eq!(known.lookup("other:1").as_deref(), Some("SHA256:bbb"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn server_names_from_addresses() {
        assert!(matches!(
            server_name("chat.example:12345"),
            Some(ServerName::DnsName(_))
        ));
        assert!(matches!(
            server_name("127.0.0.1:12345"),
            Some(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("[::1]:12345"),
            Some(ServerName::IpAddress(_))
        ));
    }
}
