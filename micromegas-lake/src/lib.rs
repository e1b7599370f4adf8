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
mod durable_file;
mod error;
pub mod flightsql;
pub mod garbage;
mod group_commit;
pub mod hex;
pub mod location;
pub mod maintenance;
pub mod materialize;
pub mod perfetto;
pub mod query;
pub mod retention;
pub mod row_blocks;
pub mod sink;
pub mod tables;
pub mod tls;
pub mod views;
pub(crate) mod write;

/// The Arrow version the lake's tables are built with.
pub use arrow;
/// The DataFusion version of the lake's sessions.
pub use datafusion;
use error::run_blocking;
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
    /// Open only a lake that exists: a directory without a catalog, or a PostgreSQL catalog
    /// that holds no lake, is then [`LakeError::NotFound`] instead of a new, empty lake.
    /// Readers set it, so that a mistyped path is an error, not zero rows. A `memory://`
    /// lake is always new, and opens either way.
    pub existing_only: bool,
    /// How long to keep trying a PostgreSQL catalog that cannot be reached yet (a server
    /// starting, or restarting) before giving up; default: no wait, the first error is
    /// returned.
    pub catalog_wait: std::time::Duration,
}

impl LakeOptions {
    /// Sets the catalog URL.
    pub fn catalog(mut self, url: impl Into<String>) -> Self {
        self.catalog = Some(url.into());
        self
    }

    /// Opens only a lake that exists (see [`LakeOptions::existing_only`]).
    pub fn existing_only(mut self) -> Self {
        self.existing_only = true;
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
    /// What a row of each table took in memory at its last compaction, in bytes (0: none yet).
    row_widths: [std::sync::atomic::AtomicUsize; ViewTable::ALL.len()],
}

impl Lake {
    /// Opens the lake at `url`: a directory, `file://`, `s3://bucket/prefix` or `memory://`.
    /// Creates it if needed, unless [`LakeOptions::existing_only`] is set.
    pub async fn open(url: &str, options: LakeOptions) -> Result<Self> {
        let location = LakeLocation::parse(url)?;
        let create = !options.existing_only || location == LakeLocation::Memory;
        if !create && options.catalog.is_none() {
            location.check_default_catalog_exists()?;
        }
        let raw = location.object_store(&options.s3)?;
        let catalog_url = match options.catalog {
            Some(c) => c,
            None => location.default_catalog()?,
        };
        let catalog = Catalog::connect_with(&catalog_url, create, options.catalog_wait).await?;
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
                row_widths: Default::default(),
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

    /// What a row of `table` took in memory at its last compaction, in bytes (0: none yet).
    pub(crate) fn row_width(&self, table: ViewTable) -> &std::sync::atomic::AtomicUsize {
        &self.inner.row_widths[table as usize]
    }

    pub(crate) fn local_dir(&self) -> Option<&PathBuf> {
        match &self.inner.location {
            LakeLocation::Local(dir) => Some(dir),
            _ => None,
        }
    }

    /// Writes an object and makes it durable. On a local lake the file is written as
    /// `placement` says and synced with every directory whose entries changed, all in one
    /// blocking task; object stores such as S3 acknowledge only durable writes.
    pub(crate) async fn put_durable(
        &self,
        key: &str,
        bytes: Vec<u8>,
        placement: durable_file::Placement,
    ) -> Result<()> {
        let Some(dir) = self.local_dir() else {
            self.store().put(&Path::from(key), bytes.into()).await?;
            return Ok(());
        };
        let path = dir.join(key);
        run_blocking(
            || format!("writing {} durably", dir.join(key).display()),
            move || durable_file::write(&path, &bytes, placement),
        )
        .await
    }
}
