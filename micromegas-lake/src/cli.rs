//! Command-line options shared by the binaries that open a lake.

use crate::{LakeOptions, S3Options, DEFAULT_LAKE};

/// Where the lake is and how to reach it (`--lake`, `--catalog`, `--s3-endpoint`).
#[derive(Debug, Clone, clap::Args)]
pub struct LakeArgs {
    /// The lake: a directory, file://DIR, s3://bucket/prefix or memory://.
    #[arg(long, env = "MICROMEGAS_LAKE", default_value = DEFAULT_LAKE)]
    pub lake: String,

    /// Catalog database (postgres://user:password@host/db); default: the SQLite catalog
    /// inside a local lake.
    #[arg(long, env = "MICROMEGAS_CATALOG", hide_env_values = true)]
    pub catalog: Option<String>,

    /// S3 endpoint, e.g. http://127.0.0.1:8333 (default: AWS_ENDPOINT_URL).
    #[arg(long, env = "MICROMEGAS_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
}

impl LakeArgs {
    /// The options to open the lake with.
    pub fn options(&self) -> LakeOptions {
        LakeOptions {
            catalog: self.catalog.clone(),
            s3: S3Options {
                endpoint: self.s3_endpoint.clone(),
                ..Default::default()
            },
            existing_only: false,
            catalog_wait: std::time::Duration::ZERO,
        }
    }
}

/// The FlightSQL server's settings (`--flightsql-addr`, `--query-token`, `--admin-token`).
#[derive(Debug, Clone, clap::Args)]
pub struct FlightSqlArgs {
    /// Address of the FlightSQL server (Grafana, ADBC, pyarrow).
    #[arg(long, env = "MICROMEGAS_FLIGHTSQL_ADDR", default_value = crate::flightsql::DEFAULT_ADDR)]
    pub flightsql_addr: String,

    /// Require one of these tokens on FlightSQL (bearer token, or the password of the
    /// handshake's Basic auth); repeat the flag, or separate with commas in the variable.
    #[arg(
        long = "query-token",
        env = "MICROMEGAS_QUERY_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub query_tokens: Vec<String>,

    /// Admin tokens: FlightSQL calls with one of them may also run the statements everyone
    /// else is refused — DDL (CREATE EXTERNAL TABLE reads any file the server can), DML,
    /// `COPY ... TO` (writes files on the server) and SET. No admin when not given.
    #[arg(
        long = "admin-token",
        env = "MICROMEGAS_ADMIN_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub admin_tokens: Vec<String>,
}

impl FlightSqlArgs {
    /// The FlightSQL server over `lake` these settings describe; `--query-token`, or
    /// `fallback` when none is given, are its query tokens.
    pub fn server(
        &self,
        lake: crate::Lake,
        fallback: &[String],
    ) -> crate::flightsql::FlightSqlServer {
        let query = if self.query_tokens.is_empty() {
            fallback
        } else {
            &self.query_tokens
        };
        crate::flightsql::FlightSqlServer::new(lake, crate::auth::Tokens::new(query.to_vec()))
            .with_admin_tokens(crate::auth::Tokens::new(self.admin_tokens.clone()))
    }
}

/// TLS of the servers a binary runs.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// Serve TLS only, with this certificate chain (a PEM file: the server's certificate, then
    /// any intermediate ones). Clients then connect with https:// URLs. Needs --tls-key.
    #[arg(long, env = "MICROMEGAS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// The private key of --tls-cert (a PEM file: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "MICROMEGAS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

impl TlsArgs {
    /// The servers' TLS offering `alpn`, or `None` when no certificate is given.
    pub fn load(&self, alpn: &[&[u8]]) -> crate::Result<Option<crate::tls::ServerTls>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => crate::tls::ServerTls::load(cert, key, alpn).map(Some),
            (None, None) => Ok(None),
            _ => Err(crate::LakeError::Config(
                "give both --tls-cert and --tls-key, or neither".into(),
            )),
        }
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
