//! TLS for the services: the certificate a server (or a relay) presents, read from files
//! (`--tls-cert`, `--tls-key`: PEM, a chain allowed, e.g. Let's Encrypt's `fullchain.pem` and
//! `privkey.pem`) or made at first start and kept in the data folder (`tls/cert.pem`,
//! `tls/key.pem`), its fingerprint, and reloading it (SIGHUP) without dropping anyone.
//!
//! rustls with the ring provider: no C toolchain beyond a compiler, no cmake.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

pub use chat_core::tls::fingerprint;
pub use rustls;
pub use tokio_rustls;

/// The first byte of a TLS handshake (a ClientHello record): a connection that starts with it
/// speaks TLS; the chat's plain protocol starts with a length prefix, whose first byte is 0.
pub const TLS_HANDSHAKE_BYTE: u8 = 0x16;

/// Why a certificate could not be used; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A file's contents are not what was expected.
    #[error("{path}: {problem}")]
    Bad {
        /// The file.
        path: PathBuf,
        /// What is wrong, in plain words.
        problem: String,
    },
    /// The certificate could not be made.
    #[error("cannot make a certificate: {0}")]
    Generate(String),
}

fn bad(path: &Path, problem: impl Into<String>) -> TlsError {
    TlsError::Bad {
        path: path.to_owned(),
        problem: problem.into(),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where a service with TLS still serves unencrypted connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum PlaintextFrom {
    /// Its own machine (loopback addresses): local scripts, tests, benchmarks.
    #[default]
    Loopback,
    /// Anywhere: passwords and messages then cross the network readable by anyone on the way.
    Any,
}

impl PlaintextFrom {
    /// Whether an unencrypted connection from `peer` may be served (`loopback_is_remote`:
    /// the tests' way of being another machine).
    pub fn allows(self, peer: std::net::IpAddr, loopback_is_remote: bool) -> bool {
        match self {
            PlaintextFrom::Any => true,
            PlaintextFrom::Loopback => peer.to_canonical().is_loopback() && !loopback_is_remote,
        }
    }
}

/// Where a service's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// Files an operator provides.
    Files {
        /// The certificate chain (PEM), the service's own first.
        cert: PathBuf,
        /// Its private key (PEM), readable by its owner only.
        key: PathBuf,
    },
    /// A self-signed certificate made at first start in `dir` (`cert.pem`, `key.pem`) for
    /// these names, and reused afterwards.
    Generated {
        /// The folder (created, readable by its owner only).
        dir: PathBuf,
        /// Host names and addresses the certificate is for.
        names: Vec<String>,
    },
}

impl CertSource {
    /// The certificate and key files.
    pub fn files(&self) -> (PathBuf, PathBuf) {
        match self {
            CertSource::Files { cert, key } => (cert.clone(), key.clone()),
            CertSource::Generated { dir, .. } => (dir.join("cert.pem"), dir.join("key.pem")),
        }
    }
}

/// This machine's name (Linux: `/proc/sys/kernel/hostname`); `None` when it cannot be read.
pub fn host_name() -> Option<String> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let host = host.trim();
    (!host.is_empty()).then(|| host.to_owned())
}

/// The names a self-signed certificate is made for: localhost, the loopback addresses, this
/// machine's name, each specific --listen address, and each --tls-name.
pub fn certificate_names(listen: &[std::net::SocketAddr], extra: &[String]) -> Vec<String> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
    names.extend(host_name());
    names.extend(
        listen
            .iter()
            .map(std::net::SocketAddr::ip)
            .filter(|ip| !ip.is_unspecified())
            .map(|ip| ip.to_string()),
    );
    names.extend(
        extra
            .iter()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty()),
    );
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// A certificate chain and its key, checked, ready to serve.
#[derive(Debug)]
pub struct Identity {
    /// The chain and the key, as rustls serves them.
    pub key: Arc<CertifiedKey>,
    /// The SHA-256 fingerprint of the service's own certificate (see [`fingerprint`]).
    pub fingerprint: String,
    /// Where it was read from.
    pub source: CertSource,
}

impl Identity {
    /// Reads (after making it, for a generated source that has none yet) and checks the
    /// certificate: the key must be readable by its owner only, match the certificate, and the
    /// certificate must be valid now. Every error names the file.
    pub fn load(source: &CertSource) -> Result<Identity, TlsError> {
        if let CertSource::Generated { dir, names } = source {
            generate_if_missing(dir, names)?;
        }
        let (cert_path, key_path) = source.files();
        check_private(&key_path)?;
        let chain = CertificateDer::pem_file_iter(&cert_path)
            .map_err(|e| bad(&cert_path, format!("not a PEM certificate file ({e})")))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(&cert_path, format!("not a PEM certificate file ({e})")))?;
        let Some(leaf) = chain.first() else {
            return Err(bad(&cert_path, "holds no certificate"));
        };
        check_dates(&cert_path, leaf)?;
        let key = PrivateKeyDer::from_pem_file(&key_path)
            .map_err(|e| bad(&key_path, format!("not a PEM private key ({e})")))?;
        let fingerprint = fingerprint(leaf);
        let mismatch = || {
            bad(
                &key_path,
                format!(
                    "this key does not match the certificate {}",
                    cert_path.display()
                ),
            )
        };
        let certified =
            CertifiedKey::from_der(chain, key, &default_provider()).map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => mismatch(),
                e => bad(
                    &key_path,
                    format!("cannot use this key with {}: {e}", cert_path.display()),
                ),
            })?;
        certified.keys_match().map_err(|_| mismatch())?;
        Ok(Identity {
            key: Arc::new(certified),
            fingerprint,
            source: source.clone(),
        })
    }

    /// A rustls server configuration presenting this identity.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let (cert, _) = self.source.files();
        let config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(&cert, format!("cannot serve TLS with it: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Always(self.key.clone())));
        Ok(Arc::new(config))
    }
}

/// Presents the same certificate to every client.
#[derive(Debug)]
struct Always(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for Always {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A key file every user can read is refused: it would let them pose as the service. (A
/// group may read it, as Debian's `ssl-cert` group does.)
fn check_private(path: &Path) -> Result<(), TlsError> {
    let meta = fs::metadata(path).map_err(io(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o007 != 0 {
            return Err(bad(
                path,
                format!(
                    "the private key is readable by others (mode {mode:o}): chmod 600 it (or \
                     640 for a group the service runs as)"
                ),
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    Ok(())
}

/// The certificate must be valid now.
fn check_dates(path: &Path, leaf: &CertificateDer<'_>) -> Result<(), TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| bad(path, format!("cannot read the certificate ({e})")))?;
    let validity = cert.validity();
    let now = x509_parser::time::ASN1Time::now();
    if validity.not_after < now {
        return Err(bad(
            path,
            format!(
                "the certificate expired on {} (renew it, then restart or send SIGHUP)",
                validity.not_after
            ),
        ));
    }
    if validity.not_before > now {
        return Err(bad(
            path,
            format!(
                "the certificate is not valid before {}",
                validity.not_before
            ),
        ));
    }
    Ok(())
}

/// Makes a self-signed certificate for `names` in `dir` unless one is there.
fn generate_if_missing(dir: &Path, names: &[String]) -> Result<(), TlsError> {
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert_path.exists() && key_path.exists() {
        return Ok(());
    }
    create_private_dir(dir)?;
    let made = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    write_private(&key_path, made.signing_key.serialize_pem().as_bytes())?;
    fs::write(&cert_path, made.cert.pem()).map_err(io(&cert_path))?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    }
    Ok(())
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io(path))?;
    file.write_all(contents).map_err(io(path))
}

/// The configuration new TLS connections get, replaced whole by [`Reloadable::reload`]: a
/// renewed certificate is served to the next connections, and those already open keep theirs.
#[derive(Debug)]
pub struct Reloadable {
    source: CertSource,
    current: RwLock<(Arc<ServerConfig>, String)>,
}

impl Reloadable {
    /// Loads the identity from `source`.
    pub fn load(source: CertSource) -> Result<Reloadable, TlsError> {
        let identity = Identity::load(&source)?;
        let current = (identity.server_config()?, identity.fingerprint);
        Ok(Reloadable {
            source,
            current: RwLock::new(current),
        })
    }

    /// The configuration for a new connection.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// The fingerprint of the certificate served now.
    pub fn fingerprint(&self) -> String {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    /// Reads the files again; on an error the certificate served so far stays.
    pub fn reload(&self) -> Result<String, TlsError> {
        let identity = Identity::load(&self.source)?;
        let fingerprint = identity.fingerprint.clone();
        let config = identity.server_config()?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (config, identity.fingerprint);
        Ok(fingerprint)
    }

    /// Where the certificate comes from.
    pub fn source(&self) -> &CertSource {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generated(dir: &Path) -> CertSource {
        CertSource::Generated {
            dir: dir.join("tls"),
            names: vec!["localhost".into(), "127.0.0.1".into()],
        }
    }

    #[test]
    fn a_certificate_is_made_once_then_reused_with_its_key_private() {
        let dir = tempfile::tempdir().expect("dir");
        let first = Identity::load(&generated(dir.path())).expect("made");
        assert!(first.fingerprint.starts_with("SHA256:"));
        assert_eq!(first.fingerprint.len(), "SHA256:".len() + 43);
        let again = Identity::load(&generated(dir.path())).expect("reused");
        assert_eq!(again.fingerprint, first.fingerprint);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode(&dir.path().join("tls/key.pem")), 0o600);
            assert_eq!(mode(&dir.path().join("tls")), 0o700);
        }
    }

    #[test]
    fn a_key_others_can_read_or_that_does_not_match_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().expect("dir");
        let one = dir.path().join("one");
        let two = dir.path().join("two");
        Identity::load(&generated(&one)).expect("one");
        Identity::load(&generated(&two)).expect("two");
        let mismatched = CertSource::Files {
            cert: one.join("tls/cert.pem"),
            key: two.join("tls/key.pem"),
        };
        let e = Identity::load(&mismatched)
            .expect_err("mismatch")
            .to_string();
        assert!(
            e.contains("two/tls/key.pem") && e.contains("does not match"),
            "{e}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let key = one.join("tls/key.pem");
            fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
            let e = Identity::load(&generated(&one))
                .expect_err("open key")
                .to_string();
            assert!(
                e.contains("key.pem") && e.contains("readable by others"),
                "{e}"
            );
        }
        let garbage = dir.path().join("garbage.pem");
        fs::write(&garbage, "not a certificate").expect("write");
        let e = Identity::load(&CertSource::Files {
            cert: garbage.clone(),
            key: two.join("tls/key.pem"),
        })
        .expect_err("garbage")
        .to_string();
        assert!(e.contains("garbage.pem"), "{e}");
    }

    #[test]
    fn an_expired_certificate_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().expect("dir");
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("p");
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let cert = params.self_signed(&key).expect("cert");
        let (cert_path, key_path) = (dir.path().join("old.pem"), dir.path().join("old.key"));
        fs::write(&cert_path, cert.pem()).expect("write");
        write_private(&key_path, key.serialize_pem().as_bytes()).expect("write");
        let e = Identity::load(&CertSource::Files {
            cert: cert_path,
            key: key_path,
        })
        .expect_err("expired")
        .to_string();
        assert!(e.contains("old.pem") && e.contains("expired"), "{e}");
    }
}
