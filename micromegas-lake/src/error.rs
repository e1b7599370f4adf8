//! The lake's error type.

/// Anything that can go wrong in the lake.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// The lake URL or an option is not usable.
    #[error("invalid lake configuration: {0}")]
    Config(String),
    /// The object store failed (network, permissions, missing object).
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    /// No lake where one was to be opened without creating it
    /// ([`crate::LakeOptions::existing_only`]).
    #[error("no lake: {0}")]
    NotFound(String),
    /// The catalog database failed.
    #[error("catalog: {0}")]
    Catalog(#[from] sqlx::Error),
    /// The catalog's SQLite file failed on its write connection.
    #[error("catalog: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The catalog's schema is newer than this build understands, or a migration failed.
    #[error("catalog schema: {0}")]
    Schema(String),
    /// Stored data could not be decoded.
    #[error("corrupt data in {what}: {message}")]
    Corrupt {
        /// Object or row that failed.
        what: String,
        /// Why.
        message: String,
    },
    /// The transit decoder refused a batch given to the write API.
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] micromegas_core::transit::DecodeError),
    /// Rows given to the write API do not fit their table.
    #[error("invalid rows: {0}")]
    InvalidRows(String),
    /// Arrow failed while building or reading record batches.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Parquet failed while writing or reading a partition.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// The query engine failed (SQL error, planning, execution).
    #[error("{0}")]
    Query(#[from] datafusion::error::DataFusionError),
    /// A local file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// A read-only query surface was asked to change something (DDL, DML, `COPY`, `SET`).
    #[error("the query surface is read-only: {0}")]
    ReadOnly(String),
    /// Another node changed the same rows first; the operation can be retried.
    #[error("conflict: {0}")]
    Conflict(String),
    /// An operation did not finish within its deadline. It may still complete: a write that
    /// timed out may be stored, and writing it again is safe (block ids make it idempotent).
    #[error(
        "{what} did not finish within {}s ({setting}); it may still complete, and a write \
         sent again is stored once",
        after.as_secs_f64()
    )]
    TimedOut {
        /// What was being done.
        what: String,
        /// The deadline.
        after: std::time::Duration,
        /// The setting that sets the deadline.
        setting: &'static str,
    },
    /// A write committed together with others failed with the group (the message is the
    /// group's error).
    #[error("{message}")]
    Grouped {
        /// The group's error.
        message: String,
        /// Whether the group's error was retryable.
        retryable: bool,
    },
}

/// Result with [`LakeError`].
pub type Result<T, E = LakeError> = std::result::Result<T, E>;

impl LakeError {
    /// True when trying again later may succeed (storage or catalog unavailable, conflict).
    pub fn is_retryable(&self) -> bool {
        match self {
            LakeError::ObjectStore(e) => !matches!(
                e,
                object_store::Error::NotFound { .. }
                    | object_store::Error::InvalidPath { .. }
                    | object_store::Error::NotSupported { .. }
                    | object_store::Error::UnknownConfigurationKey { .. }
            ),
            LakeError::Catalog(e) => matches!(
                e,
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
                    | sqlx::Error::Database(_)
            ),
            // Busy, locked, I/O and full-disk failures; a bad statement is a bug, not data.
            LakeError::Sqlite(e) => matches!(e, rusqlite::Error::SqliteFailure(..)),
            LakeError::Conflict(_) | LakeError::Io { .. } | LakeError::TimedOut { .. } => true,
            LakeError::Grouped { retryable, .. } => *retryable,
            _ => false,
        }
    }
}

/// Runs `work` on tokio's blocking pool; a panic there becomes an I/O error naming `what`.
pub(crate) async fn run_blocking<T: Send + 'static>(
    what: impl FnOnce() -> String,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| LakeError::Io {
            what: what(),
            source: std::io::Error::other(e),
        })?
}
