//! The write path of a catalog in a SQLite file: one connection of its own, driven directly
//! in one blocking task per call.
//!
//! Every write to the lake runs a known-block check and one transaction of a few inserts.
//! Through sqlx each statement, the transaction's begin and its commit are a round trip to
//! the driver's worker thread; here the whole transaction is one hand-off to a blocking
//! thread, with statements prepared once and cached. Other catalog calls (materialization,
//! queries, maintenance) stay on the sqlx pool; SQLite serializes the writers of both
//! (WAL mode, the same busy timeout).
//!
//! Commits are durable (`synchronous = FULL`: the WAL is synced at each commit). SQLite's
//! amalgamation syncs with `fsync` unless built with `HAVE_FDATASYNC`; the workspace's
//! `.cargo/config.toml` sets it (`LIBSQLITE3_FLAGS`), so builds from this repository use
//! `fdatasync`, which on Linux also syncs a changed file size and skips only the inode's
//! times: on a journaling file system that saves a journal commit per catalog commit.

use super::statements::{self, Statement};
use super::WriteRows;
use crate::error::{run_blocking, LakeError, Result};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The connection; `None` once the catalog is closed.
#[derive(Debug, Clone)]
pub(crate) struct SqliteWriter {
    conn: Arc<Mutex<Option<Connection>>>,
}

impl SqliteWriter {
    /// Opens the catalog file, which must exist (sqlx created and migrated it), with the
    /// settings of the pool's connections.
    pub(super) fn open(path: &Path, busy_timeout: Duration) -> Result<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(busy_timeout)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(Self {
            conn: Arc::new(Mutex::new(Some(conn))),
        })
    }

    /// Closes the connection; later calls fail as on a closed pool.
    pub(super) async fn close(&self) {
        let conn = self.conn.clone();
        let _ = tokio::task::spawn_blocking(move || lock(&conn).take()).await;
    }

    /// The ids among `block_ids` that the catalog already has.
    pub(super) async fn existing_blocks(&self, block_ids: &[String]) -> Result<HashSet<String>> {
        let (writer, ids) = (self.clone(), block_ids.to_vec());
        run_blocking(what, move || writer.existing_blocks_blocking(&ids)).await
    }

    /// Inserts one write's rows in one transaction; returns the ids of the blocks that were
    /// new.
    pub(super) async fn insert_new(
        &self,
        rows: WriteRows,
        insert_time: i64,
    ) -> Result<HashSet<String>> {
        let writer = self.clone();
        run_blocking(what, move || {
            writer.insert_new_blocking(&rows, insert_time, None)
        })
        .await
    }

    /// [`Self::existing_blocks`] in the calling thread, which may block.
    pub(crate) fn existing_blocks_blocking(&self, block_ids: &[String]) -> Result<HashSet<String>> {
        self.with(|conn| {
            let mut found = HashSet::new();
            for s in statements::existing_blocks(block_ids) {
                returned(conn, &s, &mut found)?;
            }
            Ok(found)
        })
    }

    /// [`Self::insert_new`] in the calling thread, which may block. With `object_bytes`, the
    /// bytes of the rows' object are stored in the catalog in the same transaction.
    pub(crate) fn insert_new_blocking(
        &self,
        rows: &WriteRows,
        insert_time: i64,
        object_bytes: Option<&[u8]>,
    ) -> Result<HashSet<String>> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut inserted = HashSet::new();
            let bytes = object_bytes.and_then(|b| statements::object_bytes(rows, b));
            for s in statements::write_rows(rows, insert_time)
                .into_iter()
                .chain(bytes)
            {
                if s.returning {
                    returned(&tx, &s, &mut inserted)?;
                } else {
                    tx.prepare_cached(&s.sql)?
                        .execute(rusqlite::params_from_iter(&s.params))?;
                }
            }
            tx.commit()?;
            Ok(inserted)
        })
    }

    fn with<T>(&self, work: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        match lock(&self.conn).as_mut() {
            Some(c) => work(c),
            None => Err(LakeError::Catalog(sqlx::Error::PoolClosed)),
        }
    }
}

/// Names the blocking task in the error of a panic there.
fn what() -> String {
    "catalog write task".into()
}

/// A panic inside a transaction rolled it back (the transaction's drop), so the connection is
/// still usable.
fn lock(conn: &Mutex<Option<Connection>>) -> MutexGuard<'_, Option<Connection>> {
    conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `s` and adds the `block_id` of each row it returns to `out`.
fn returned(conn: &Connection, s: &Statement<'_>, out: &mut HashSet<String>) -> Result<()> {
    let mut stmt = conn.prepare_cached(&s.sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(&s.params))?;
    while let Some(row) = rows.next()? {
        out.insert(row.get(0)?);
    }
    Ok(())
}
