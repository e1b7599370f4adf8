//! # micromegas-lake
//!
//! The lake of micromegas: raw blocks on any object store (local directory, S3, memory) with
//! a catalog (embedded SQLite or PostgreSQL), materialized on demand into Parquet partitions
//! and queried with SQL through DataFusion.
//!
//! ```
//! use micromegas_core::{init, read, sink::MemorySink, Options};
//! use micromegas_lake::{Lake, LakeOptions};
//! use std::sync::Arc;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! // Some instrumented work, captured in memory.
//! let sink = Arc::new(MemorySink::new());
//! let guard = init(sink.clone(), Options::default().service_name("doc")).unwrap();
//! micromegas_core::info!("hello from {}", "the lake");
//! guard.shutdown();
//!
//! // Store it in a lake and query it.
//! let lake = Lake::open("memory://", LakeOptions::default()).await.unwrap();
//! lake.write_batches(&sink.batches()).await.unwrap();
//! let ctx = lake.session().await.unwrap();
//! let rows = ctx.sql("SELECT msg FROM log_entries").await.unwrap().collect().await.unwrap();
//! let text = arrow::util::pretty::pretty_format_batches(&rows).unwrap().to_string();
//! assert!(text.contains("hello from the lake"));
//! # });
//! ```
#![warn(missing_docs)]

pub mod access;
pub mod auth;
pub mod catalog;
pub mod cli;
mod error;
pub mod flightsql;
mod group_commit;
pub mod location;
pub mod maintenance;
pub mod materialize;
pub mod perfetto;
pub mod query;
pub mod retention;
pub mod row_blocks;
pub mod sink;
pub mod tables;
pub mod views;
pub(crate) mod write;

/// The Arrow version the lake's tables are built with.
pub use arrow;
/// The DataFusion version of the lake's sessions.
pub use datafusion;
pub use error::{LakeError, Result};
pub use location::{LakeLocation, S3Options, DEFAULT_LAKE};
pub use materialize::MaterializeReport;
pub use tables::ViewTable;
pub use write::WriteOutcome;

use access::CountingStore;
use catalog::Catalog;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use std::path::PathBuf;
use std::sync::Arc;

/// How to open a lake.
#[derive(Debug, Clone, Default)]
pub struct LakeOptions {
    /// Catalog URL (`postgres://...`); default: SQLite inside a local lake.
    pub catalog: Option<String>,
    /// S3 settings beyond the `AWS_*` environment variables.
    pub s3: S3Options,
}

impl LakeOptions {
    /// Sets the catalog URL.
    pub fn catalog(mut self, url: impl Into<String>) -> Self {
        self.catalog = Some(url.into());
        self
    }
}

/// An open lake. Cheap to clone; clones share their connections.
#[derive(Debug, Clone)]
pub struct Lake {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    url: String,
    location: LakeLocation,
    store: Arc<CountingStore>,
    dyn_store: Arc<dyn ObjectStore>,
    catalog: Catalog,
    /// One per materialization run (indexed by [`ViewTable::materialized_with`]).
    locks: [tokio::sync::Mutex<()>; ViewTable::ALL.len()],
    commits: [group_commit::GroupCommit; 2],
}

impl Lake {
    /// Opens (creating if needed) the lake at `url`: a directory, `file://`,
    /// `s3://bucket/prefix` or `memory://`.
    pub async fn open(url: &str, options: LakeOptions) -> Result<Self> {
        let location = LakeLocation::parse(url)?;
        let raw = location.object_store(&options.s3)?;
        let catalog_url = match options.catalog {
            Some(c) => c,
            None => location.default_catalog()?,
        };
        let catalog = Catalog::connect(&catalog_url).await?;
        let store = Arc::new(CountingStore::new(raw));
        Ok(Self {
            inner: Arc::new(Inner {
                url: url.to_owned(),
                location,
                dyn_store: store.clone(),
                store,
                catalog,
                locks: Default::default(),
                commits: Default::default(),
            }),
        })
    }

    /// The URL the lake was opened with.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    /// The object store, rooted at the lake.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.dyn_store
    }

    /// Starts (`true`) or stops counting the objects this lake handle reads (off by default),
    /// for [`Lake::take_object_reads`].
    pub fn count_object_reads(&self, on: bool) {
        self.inner.store.set_counting(on);
    }

    /// Objects read since the last call (key → number of requests), then resets the count.
    /// Shows which partition files a query opened; empty unless
    /// [`Lake::count_object_reads`] turned counting on.
    pub fn take_object_reads(&self) -> std::collections::BTreeMap<String, u64> {
        self.inner.store.take_reads()
    }

    /// Held while a table's partitions change: the tables written by one materialization run
    /// share it.
    pub(crate) fn materialize_lock(&self, table: ViewTable) -> &tokio::sync::Mutex<()> {
        &self.inner.locks[table.materialized_with() as usize]
    }

    fn local_dir(&self) -> Option<&PathBuf> {
        match &self.inner.location {
            LakeLocation::Local(dir) => Some(dir),
            _ => None,
        }
    }

    /// Writes an object and makes it durable. On a local lake the file is written the way the
    /// object store writes it (a staging name, then renamed into place) and synced with every
    /// directory whose entries changed, all in one blocking task; object stores such as S3
    /// acknowledge only durable writes.
    pub(crate) async fn put_durable(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        let Some(dir) = self.local_dir() else {
            self.store().put(&Path::from(key), bytes.into()).await?;
            return Ok(());
        };
        let path = dir.join(key);
        let what = || format!("writing {} durably", path.display());
        let result = tokio::task::spawn_blocking({
            let path = path.clone();
            move || write_durable_file(&path, &bytes)
        })
        .await;
        match result {
            Ok(written) => written.map_err(|source| LakeError::Io {
                what: what(),
                source,
            }),
            Err(e) => Err(LakeError::Io {
                what: what(),
                source: std::io::Error::other(e),
            }),
        }
    }
}

/// Writes `bytes` to `path` through a staging file (`path#N`, which object-store listings
/// skip), then syncs the file, its directory, and the parent of every directory created for
/// it, so that the file is found after a crash.
fn write_durable_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let parent = path
        .parent()
        .ok_or_else(|| std::io::Error::other("the object's path has no directory"))?;
    let mut created = Vec::new();
    let mut missing = Some(parent);
    while let Some(dir) = missing.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        created.push(dir);
        missing = dir.parent();
    }
    std::fs::create_dir_all(parent)?;
    // A fresh staging name (`#1`, `#2`, .. as the object store numbers them), never shared
    // with another writer.
    let mut n = 0u32;
    let (mut file, staging) = loop {
        n += 1;
        let mut staging = path.as_os_str().to_owned();
        staging.push(format!("#{n}"));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&staging)
        {
            Ok(file) => break (file, staging),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    };
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&staging, path)?;
    std::fs::File::open(parent)?.sync_all()?;
    for dir in created {
        if let Some(up) = dir.parent() {
            std::fs::File::open(up)?.sync_all()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The file lands whole under its name, new directories included, through a staging name
    /// that no other file uses (a leftover staging file is left alone), and nothing else stays.
    #[test]
    fn durable_file_write_uses_a_free_staging_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("raw/2026-11-28/16/object.arrows");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
        let leftover = dir.path().join("raw/2026-11-28/16/object.arrows#1");
        std::fs::write(&leftover, b"left by a crash").expect("leftover");
        super::write_durable_file(&path, b"the object").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"the object");
        assert_eq!(std::fs::read(&leftover).expect("read"), b"left by a crash");
        let mut names: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
            .expect("list")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        names.sort();
        assert_eq!(names, ["object.arrows", "object.arrows#1"]);

        let nested = dir.path().join("tables/spans/2026-11-28/17/p.parquet");
        super::write_durable_file(&nested, b"partition").expect("write nested");
        assert_eq!(std::fs::read(&nested).expect("read"), b"partition");
    }
}
