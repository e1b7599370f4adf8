//! Where a lake lives: its URL, its object store and its default catalog.

use crate::error::{LakeError, Result};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, RetryConfig};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The lake URL used when none is given.
pub const DEFAULT_LAKE: &str = "./micromegas-lake";

/// The file of a local lake's embedded SQLite catalog.
const CATALOG_FILE: &str = "catalog.sqlite";

/// A parsed lake URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LakeLocation {
    /// A directory on the local file system (a plain path or `file://`).
    Local(PathBuf),
    /// `s3://bucket/prefix`.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix inside the bucket (no leading or trailing `/`), may be empty.
        prefix: String,
    },
    /// `memory://`: kept in this process only, for tests.
    Memory,
}

impl LakeLocation {
    /// Parses `./dir`, `/abs/dir`, `file:///abs/dir`, `s3://bucket/prefix` or `memory://`.
    pub fn parse(url: &str) -> Result<Self> {
        let url = url.trim();
        if url.is_empty() {
            return Err(LakeError::Config(format!(
                "the lake URL is empty; give a directory (default {DEFAULT_LAKE}), \
                 s3://bucket/prefix or memory://"
            )));
        }
        if let Some(rest) = url.strip_prefix("file://") {
            if rest.is_empty() {
                return Err(LakeError::Config("file:// needs a path".into()));
            }
            return Ok(LakeLocation::Local(PathBuf::from(rest)));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(LakeError::Config(format!(
                    "'{url}' names no bucket; write s3://bucket/prefix"
                )));
            }
            return Ok(LakeLocation::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            });
        }
        if url == "memory://" || url == "memory:" {
            return Ok(LakeLocation::Memory);
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(LakeError::Config(format!(
                "unsupported lake URL scheme '{scheme}://'; use a directory, file://, s3:// \
                 or memory://"
            )));
        }
        Ok(LakeLocation::Local(PathBuf::from(url)))
    }

    /// Opens the object store rooted at the lake (keys are relative to the lake).
    pub fn object_store(&self, options: &S3Options) -> Result<Arc<dyn ObjectStore>> {
        Ok(match self {
            LakeLocation::Local(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    LakeError::Config(format!(
                        "cannot create lake directory {}: {e}",
                        dir.display()
                    ))
                })?;
                // Deleting a directory's last file deletes the directory (and its emptied
                // ancestors), so that retention and garbage collection leave no empty hour
                // directories behind; writers recreate them (see `durable_file`).
                Arc::new(LocalFileSystem::new_with_prefix(dir)?.with_automatic_cleanup(true))
            }
            LakeLocation::Memory => Arc::new(InMemory::new()),
            LakeLocation::S3 { bucket, prefix } => {
                let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
                let endpoint = options
                    .endpoint
                    .clone()
                    .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
                    .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
                if let Some(endpoint) = endpoint {
                    b = b
                        .with_allow_http(endpoint.starts_with("http://"))
                        .with_endpoint(endpoint);
                }
                if let Some(region) = &options.region {
                    b = b.with_region(region);
                }
                b = b.with_virtual_hosted_style_request(options.virtual_hosted_style);
                let mut retry = RetryConfig::default();
                retry.backoff.max_backoff = MAX_RETRY_BACKOFF;
                if let Some(timeout) = options.retry_timeout {
                    retry.retry_timeout = timeout;
                }
                b = b.with_retry(retry);
                let s3 = b.build()?;
                if prefix.is_empty() {
                    Arc::new(s3)
                } else {
                    Arc::new(PrefixStore::new(s3, prefix.as_str()))
                }
            }
        })
    }

    /// Checks that a local lake has its default catalog, before opening it without creating
    /// anything ([`crate::LakeOptions::existing_only`]).
    pub fn check_default_catalog_exists(&self) -> Result<()> {
        let LakeLocation::Local(dir) = self else {
            return Ok(());
        };
        let hint = format!(
            "check --lake (MICROMEGAS_LAKE), or create the lake by starting \
             micromegas-collector --lake {}",
            dir.display()
        );
        if !dir.is_dir() {
            let what = if dir.exists() {
                "is not a directory"
            } else {
                "does not exist"
            };
            return Err(LakeError::NotFound(format!(
                "{} {what}; {hint}",
                dir.display()
            )));
        }
        if !dir.join(CATALOG_FILE).is_file() {
            return Err(LakeError::NotFound(format!(
                "{} has no {CATALOG_FILE}; {hint}",
                dir.display()
            )));
        }
        Ok(())
    }

    /// The catalog used when none is given: SQLite inside a local lake, private SQLite in
    /// memory for `memory://`. A lake on S3 is shared, so it needs an explicit catalog.
    pub fn default_catalog(&self) -> Result<String> {
        match self {
            LakeLocation::Local(dir) => {
                let file = dir.join(CATALOG_FILE);
                Ok(format!("sqlite://{}?mode=rwc", file.display()))
            }
            LakeLocation::Memory => Ok(format!(
                "sqlite:file:lake-{}?mode=memory&cache=shared",
                uuid::Uuid::new_v4().simple()
            )),
            LakeLocation::S3 { .. } => Err(LakeError::Config(
                "a lake on S3 is shared by several nodes: give its catalog with \
                 --catalog postgres://user:password@host/db (MICROMEGAS_CATALOG)"
                    .into(),
            )),
        }
    }
}

/// S3 settings beyond the standard `AWS_*` environment variables.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// Custom endpoint (e.g. `http://127.0.0.1:8333`); default `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    /// Region; default `AWS_REGION` / `AWS_DEFAULT_REGION`.
    pub region: Option<String>,
    /// Use `bucket.host` URLs instead of path-style `host/bucket` (default false).
    pub virtual_hosted_style: bool,
    /// How long a failed request is retried, from its first attempt (default 3 min). A
    /// collector sets it to its write deadline: past it, the request has been refused to its
    /// client anyway, and a shorter retry frees the write's share of the in-flight budget.
    pub retry_timeout: Option<Duration>,
}

/// The longest wait between two attempts of a failed S3 request. object_store's default is
/// 15 s: a write caught in such a wait when the outage ends (and every write queued behind it
/// for the next group commit) would still wait that long.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(
            LakeLocation::parse("./lake").unwrap(),
            LakeLocation::Local("./lake".into())
        );
        assert_eq!(
            LakeLocation::parse("file:///tmp/l").unwrap(),
            LakeLocation::Local("/tmp/l".into())
        );
        assert_eq!(
            LakeLocation::parse("s3://b/a/b/").unwrap(),
            LakeLocation::S3 {
                bucket: "b".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            LakeLocation::parse("memory://").unwrap(),
            LakeLocation::Memory
        );
        assert!(LakeLocation::parse("gs://x").is_err());
        assert!(LakeLocation::parse("s3:///p").is_err());
        assert!(LakeLocation::parse("").is_err());
    }
}
