//! The flags of TLS on the chat port.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chat_service::tls::{CertSource, certificate_names};
use clap::Args;

use super::{PlaintextFrom, TlsConfig};

/// TLS flags, flattened into [`super::Cli`].
#[derive(Debug, Args)]
pub struct TlsArgs {
    /// The certificate chain to present (PEM, the server's own first; e.g. Let's Encrypt's
    /// fullchain.pem) [default: a self-signed certificate made at first start and kept in the
    /// data folder, tls/cert.pem].
    #[arg(long, env = "CHAT_TLS_CERT", value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The certificate's private key (PEM, readable by its owner only; e.g. privkey.pem).
    #[arg(long, env = "CHAT_TLS_KEY", value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// A host name (or address) the self-signed certificate is for, besides localhost, the
    /// loopback addresses, this machine's name and every --listen address (repeatable; used
    /// when the certificate is made, at first start).
    #[arg(
        long,
        env = "CHAT_TLS_NAME",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub tls_name: Vec<String>,

    /// Where unencrypted connections are served from: `loopback` (this machine only) or `any`
    /// (UNSAFE: passwords and messages cross the network readable by anyone on the way).
    #[arg(
        long,
        env = "CHAT_PLAINTEXT_FROM",
        value_enum,
        value_name = "WHERE",
        default_value_t = PlaintextFrom::Loopback
    )]
    pub plaintext_from: PlaintextFrom,
}

impl TlsArgs {
    /// TLS for a server listening on `listen`, with its data folder `data_dir` (without one,
    /// a self-signed certificate is made in the temporary folder, afresh when it is cleared).
    pub fn config(&self, data_dir: Option<&Path>, listen: &[SocketAddr]) -> TlsConfig {
        let source = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => CertSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ => CertSource::Generated {
                dir: data_dir
                    .map(Path::to_owned)
                    .unwrap_or_else(|| std::env::temp_dir().join("chat-suite"))
                    .join("tls"),
                names: certificate_names(listen, &self.tls_name),
            },
        };
        TlsConfig {
            source,
            plaintext_from: self.plaintext_from,
        }
    }
}
