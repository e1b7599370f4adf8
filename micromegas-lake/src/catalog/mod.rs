//! The catalog: processes, streams, raw blocks and Parquet partitions, in SQLite (embedded) or
//! PostgreSQL (shared by several nodes), through one schema and one set of queries.

mod connect;
mod migrations;
mod rows;
mod sqlite_writer;
mod statements;
mod unreferenced;
mod views;
pub use views::{ViewHourRow, ViewRow};

pub use rows::{BlockRow, PartitionRow, ProcessRow, StreamRow, FORMAT_ARROW, FORMAT_TRANSIT};

use crate::error::{LakeError, Result};
use connect::open_pool;
pub(crate) use sqlite_writer::SqliteWriter;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Row, Transaction};
use statements::{bind_all, placeholders, CHUNK};
use std::collections::HashSet;
use std::time::Duration;

/// Which database holds the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file (or private memory database).
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// How long a statement waits for another writer of a SQLite catalog.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection pool to the catalog, its schema migrated to the latest version.
#[derive(Debug, Clone)]
pub struct Catalog {
    pool: AnyPool,
    backend: Backend,
    /// The ingest path's own connection, for a catalog in a SQLite file.
    writer: Option<SqliteWriter>,
}

/// Rows that one write adds, all committed together.
#[derive(Debug, Default, Clone)]
pub struct WriteRows {
    /// Processes (inserted if new).
    pub processes: Vec<ProcessRow>,
    /// Streams (inserted if new).
    pub streams: Vec<StreamRow>,
    /// Blocks (inserted if new).
    pub blocks: Vec<BlockRow>,
    /// The object that holds the blocks' bytes: `(path, min_time, max_time, size)`.
    pub object: Option<(String, i64, i64, i64)>,
}

impl Catalog {
    /// Closes the catalog's connections (an in-memory catalog is gone after this); waits for
    /// the statements in progress. Clones of the lake see a closed catalog afterwards.
    pub async fn close(&self) {
        if let Some(writer) = &self.writer {
            writer.close().await;
        }
        self.pool.close().await;
    }

    /// Connects to `sqlite://FILE?mode=rwc`, `sqlite:file:NAME?mode=memory&cache=shared` or
    /// `postgres://...`, and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, true, Duration::ZERO).await
    }

    /// Like [`Catalog::connect`], for a catalog that already holds a lake: one without the
    /// lake's tables is [`LakeError::NotFound`], and is left as it was.
    pub async fn connect_existing(url: &str) -> Result<Self> {
        Self::connect_with(url, false, Duration::ZERO).await
    }

    /// Opens the catalog (`create`: a new lake if it holds none). A PostgreSQL server that
    /// cannot be reached yet (refused or lost connections, a server still starting) is tried
    /// again for up to `wait`, with growing pauses; other errors (a wrong password, a missing
    /// database) end it at once.
    pub(crate) async fn connect_with(url: &str, create: bool, wait: Duration) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(LakeError::Config(format!(
                "unsupported catalog URL '{}'; use postgres://user:password@host/db or leave \
                 it out for the embedded SQLite catalog",
                redact(url)
            )));
        };
        let in_memory = url.contains("mode=memory");
        let mut options = AnyPoolOptions::new()
            // Past this, a request answers UNAVAILABLE (retried by clients) rather than hang.
            .acquire_timeout(Duration::from_secs(10))
            .max_connections(match (backend, in_memory) {
                (Backend::Sqlite, true) => 1,
                (Backend::Sqlite, false) => 4,
                (Backend::Postgres, _) => 8,
            });
        if in_memory {
            // The database lives as long as one connection does.
            options = options
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        if backend == Backend::Sqlite {
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    use sqlx::Executor;
                    let timeout = SQLITE_BUSY_TIMEOUT.as_millis();
                    conn.execute(format!("PRAGMA busy_timeout = {timeout}").as_str())
                        .await?;
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                    Ok(())
                })
            });
        }
        let pool = open_pool(options, url, backend, wait).await?;
        let mut catalog = Self {
            pool,
            backend,
            writer: None,
        };
        if !create && !catalog.holds_a_lake().await? {
            catalog.pool.close().await;
            return Err(LakeError::NotFound(format!(
                "the catalog {} holds no lake yet; check --catalog (MICROMEGAS_CATALOG), or \
                 create the lake by starting micromegas-collector with this catalog",
                redact(url)
            )));
        }
        catalog.migrate().await?;
        if backend == Backend::Sqlite && !in_memory {
            let options: sqlx::sqlite::SqliteConnectOptions = url.parse().map_err(|e| {
                LakeError::Config(format!("cannot open catalog {}: {e}", redact(url)))
            })?;
            catalog.writer = Some(SqliteWriter::open(
                options.get_filename(),
                SQLITE_BUSY_TIMEOUT,
            )?);
        }
        Ok(catalog)
    }

    /// The database behind the catalog.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the lake's tables exist (its migrations table, made first).
    async fn holds_a_lake(&self) -> Result<bool> {
        let sql = match self.backend {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master \
                 WHERE type = 'table' AND name = 'schema_migrations'"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = 'schema_migrations'"
            }
        };
        Ok(self.number(sql).await? > 0)
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations \
             (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        let latest = migrations::MIGRATIONS.last().map_or(0, |m| m.0);
        for (version, statements) in migrations::MIGRATIONS {
            let mut tx = self.pool.begin().await?;
            if self.backend == Backend::Postgres {
                // Nodes starting together migrate one at a time.
                sqlx::query("SELECT pg_advisory_xact_lock(727217)")
                    .execute(&mut *tx)
                    .await?;
            }
            let current: i64 =
                sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("v")?;
            if current > latest {
                return Err(LakeError::Schema(format!(
                    "the catalog is at schema version {current}, this build knows up to \
                     {latest}: upgrade micromegas"
                )));
            }
            if current >= *version {
                continue;
            }
            for statement in *statements {
                sqlx::query(statement)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| LakeError::Schema(format!("migration {version} failed: {e}")))?;
            }
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(*version)
                .bind(now_nanos())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// The schema version of the catalog.
    pub async fn schema_version(&self) -> Result<i64> {
        self.number("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            .await
    }

    /// The integer that `sql` returns (one row, one column).
    async fn number(&self, sql: &str) -> Result<i64> {
        Ok(sqlx::query(sql).fetch_one(&self.pool).await?.try_get(0)?)
    }

    /// The ingest path's own connection, for a catalog in a SQLite file.
    pub(crate) fn sqlite_writer(&self) -> Option<&SqliteWriter> {
        self.writer.as_ref()
    }

    /// The ids among `block_ids` that the catalog already has.
    pub async fn existing_blocks(&self, block_ids: &[String]) -> Result<HashSet<String>> {
        if let Some(writer) = &self.writer {
            return writer.existing_blocks(block_ids).await;
        }
        let mut out = HashSet::new();
        for s in statements::existing_blocks(block_ids) {
            for row in bind_all(sqlx::query(&s.sql), &s.params)
                .fetch_all(&self.pool)
                .await?
            {
                out.insert(row.try_get("block_id")?);
            }
        }
        Ok(out)
    }

    /// Inserts the rows of one write in one transaction; rows already present are left as they
    /// are. Returns the number of blocks that were new.
    pub async fn insert(&self, rows: &WriteRows) -> Result<u64> {
        Ok(self.insert_new(rows).await?.len() as u64)
    }

    /// Inserts the rows of one write (or of a group of writes) in one transaction, a few rows
    /// per statement; rows already present, and repeated ids, are left as the first had them.
    /// Returns the ids of the blocks that were new.
    pub(crate) async fn insert_new(&self, rows: &WriteRows) -> Result<HashSet<String>> {
        if let Some(writer) = &self.writer {
            return writer.insert_new(rows.clone(), now_nanos()).await;
        }
        let mut tx = self.pool.begin().await?;
        let mut inserted = HashSet::new();
        for s in statements::write_rows(rows, now_nanos()) {
            let q = bind_all(sqlx::query(&s.sql), &s.params);
            if s.returning {
                for row in q.fetch_all(&mut *tx).await? {
                    inserted.insert(row.try_get("block_id")?);
                }
            } else {
                q.execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(inserted)
    }

    /// Blocks of `kind` not yet materialized, whose events may fall in `[min, max]`, oldest
    /// first, at most `limit`.
    pub async fn pending_blocks(
        &self,
        kind: &str,
        range: Option<(i64, i64)>,
        limit: i64,
    ) -> Result<Vec<BlockRow>> {
        let (min, max) = range.unwrap_or((i64::MIN, i64::MAX));
        let sql = format!(
            "SELECT {} FROM blocks WHERE kind = $1 AND partition_id IS NULL \
             AND begin_time <= $2 AND end_time >= $3 ORDER BY begin_time, block_id LIMIT $4",
            BlockRow::COLUMNS
        );
        self.fetch_blocks(sqlx::query(&sql).bind(kind).bind(max).bind(min).bind(limit))
            .await
    }

    /// Pending blocks of `kind` for one process, in stream order, at most `limit`.
    pub async fn pending_blocks_of_process(
        &self,
        kind: &str,
        process_id: &str,
        limit: i64,
    ) -> Result<Vec<BlockRow>> {
        let sql = format!(
            "SELECT {} FROM blocks WHERE kind = $1 AND process_id = $2 AND partition_id IS NULL \
             ORDER BY begin_time, stream_id, sequence LIMIT $3",
            BlockRow::COLUMNS
        );
        self.fetch_blocks(sqlx::query(&sql).bind(kind).bind(process_id).bind(limit))
            .await
    }

    /// Processes that have pending blocks of `kind` beginning before `max`.
    pub async fn processes_with_pending(&self, kind: &str, max: i64) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT process_id FROM blocks WHERE kind = $1 AND partition_id IS NULL \
             AND begin_time <= $2",
        )
        .bind(kind)
        .bind(max)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get("process_id").map_err(LakeError::from))
            .collect()
    }

    async fn fetch_blocks<'q>(
        &self,
        q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    ) -> Result<Vec<BlockRow>> {
        let rows: Vec<AnyRow> = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| BlockRow::from_row(r).map_err(LakeError::from))
            .collect()
    }

    /// Every block whose events may fall in `[min, max]`.
    pub async fn blocks(&self, range: Option<(i64, i64)>) -> Result<Vec<BlockRow>> {
        let (min, max) = range.unwrap_or((i64::MIN, i64::MAX));
        let sql = format!(
            "SELECT {} FROM blocks WHERE begin_time <= $1 AND end_time >= $2 \
             ORDER BY begin_time, block_id",
            BlockRow::COLUMNS
        );
        self.fetch_blocks(sqlx::query(&sql).bind(max).bind(min))
            .await
    }

    /// Every process.
    pub async fn processes(&self) -> Result<Vec<ProcessRow>> {
        let rows = sqlx::query("SELECT * FROM processes ORDER BY start_time, process_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| ProcessRow::from_row(r).map_err(LakeError::from))
            .collect()
    }

    /// One process.
    pub async fn process(&self, process_id: &str) -> Result<Option<ProcessRow>> {
        let row = sqlx::query("SELECT * FROM processes WHERE process_id = $1")
            .bind(process_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| ProcessRow::from_row(&r).map_err(LakeError::from))
            .transpose()
    }

    /// Every stream.
    pub async fn streams(&self) -> Result<Vec<StreamRow>> {
        let rows = sqlx::query("SELECT * FROM streams ORDER BY process_id, kind, thread_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| StreamRow::from_row(r).map_err(LakeError::from))
            .collect()
    }

    /// Partitions of `table` whose rows may fall in `[min, max]`.
    pub async fn partitions(
        &self,
        table: &str,
        range: Option<(i64, i64)>,
    ) -> Result<Vec<PartitionRow>> {
        let (min, max) = range.unwrap_or((i64::MIN, i64::MAX));
        let sql = format!(
            "SELECT {} FROM partitions WHERE table_name = $1 AND max_time >= $2 \
             AND min_time <= $3 ORDER BY min_time, partition_id",
            PartitionRow::COLUMNS
        );
        let rows = sqlx::query(&sql)
            .bind(table)
            .bind(min)
            .bind(max)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| PartitionRow::from_row(r).map_err(LakeError::from))
            .collect()
    }

    /// Every partition of every table.
    pub async fn partitions_all(&self) -> Result<Vec<PartitionRow>> {
        let sql = format!(
            "SELECT {} FROM partitions ORDER BY table_name, min_time, partition_id",
            PartitionRow::COLUMNS
        );
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| PartitionRow::from_row(r).map_err(LakeError::from))
            .collect()
    }

    /// Records a new partition (and `also`, partitions of other tables made from the same
    /// blocks) and marks its blocks as materialized into it, in one transaction. Partitions
    /// without rows are not recorded. Fails with [`LakeError::Conflict`] (and changes nothing)
    /// if another node materialized one of the blocks first. `carry` replaces a process's span
    /// state in the same transaction.
    pub async fn commit_partition(
        &self,
        partition: &PartitionRow,
        also: &[PartitionRow],
        block_ids: &[String],
        carry: Option<(&str, &str)>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let mut updated = 0;
        for chunk in block_ids.chunks(CHUNK) {
            let sql = format!(
                "UPDATE blocks SET partition_id = $1 WHERE partition_id IS NULL \
                 AND block_id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(&partition.partition_id);
            for id in chunk {
                q = q.bind(id);
            }
            updated += q.execute(&mut *tx).await?.rows_affected();
        }
        if updated != block_ids.len() as u64 {
            tx.rollback().await?;
            return Err(LakeError::Conflict(format!(
                "{} of {} blocks were materialized by another node",
                block_ids.len() as u64 - updated,
                block_ids.len()
            )));
        }
        for p in std::iter::once(partition).chain(also) {
            if p.row_count > 0 {
                insert_partition(&mut tx, p).await?;
            }
        }
        if let Some((process_id, state)) = carry {
            sqlx::query(
                "INSERT INTO span_carry (process_id, state, version) VALUES ($1, $2, 1) \
                 ON CONFLICT (process_id) DO UPDATE SET state = excluded.state, \
                 version = span_carry.version + 1",
            )
            .bind(process_id)
            .bind(state)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Replaces partitions by one that holds all their rows (compaction), in one transaction.
    pub async fn replace_partitions(&self, old: &[String], new: &PartitionRow) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let mut deleted = 0;
        for chunk in old.chunks(CHUNK) {
            let sql = format!(
                "DELETE FROM partitions WHERE partition_id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            deleted += q.execute(&mut *tx).await?.rows_affected();
        }
        if deleted != old.len() as u64 {
            tx.rollback().await?;
            return Err(LakeError::Conflict(
                "partitions were compacted or deleted by another node".into(),
            ));
        }
        insert_partition(&mut tx, new).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The span state carried over for a process (JSON), if any.
    pub async fn span_carry(&self, process_id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT state FROM span_carry WHERE process_id = $1")
            .bind(process_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("state")).transpose()?)
    }

    /// Deletes the catalog rows of everything that ended before `cutoff` (with the bytes of the
    /// raw objects the catalog holds) and returns the object keys (raw objects and partition
    /// files) that no row refers to any more.
    pub async fn expire(&self, cutoff: i64) -> Result<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        let mut keys: Vec<String> = Vec::new();
        for r in sqlx::query("SELECT file_path FROM partitions WHERE max_time < $1")
            .bind(cutoff)
            .fetch_all(&mut *tx)
            .await?
        {
            keys.push(r.try_get("file_path")?);
        }
        for r in sqlx::query("SELECT object_path FROM objects WHERE max_time < $1")
            .bind(cutoff)
            .fetch_all(&mut *tx)
            .await?
        {
            keys.push(r.try_get("object_path")?);
        }
        for sql in [
            "DELETE FROM partitions WHERE max_time < $1",
            "DELETE FROM object_bytes WHERE object_path IN \
             (SELECT object_path FROM objects WHERE max_time < $1)",
            "DELETE FROM blocks WHERE end_time < $1",
            "DELETE FROM objects WHERE max_time < $1",
            // A stream or process that comes back is inserted again by its next write.
            "DELETE FROM streams WHERE NOT EXISTS \
             (SELECT 1 FROM blocks b WHERE b.stream_id = streams.stream_id)",
            "DELETE FROM span_carry WHERE NOT EXISTS \
             (SELECT 1 FROM blocks b WHERE b.process_id = span_carry.process_id)",
            "DELETE FROM processes WHERE NOT EXISTS \
             (SELECT 1 FROM streams s WHERE s.process_id = processes.process_id)",
        ] {
            let q = sqlx::query(sql);
            let q = if sql.contains("$1") {
                q.bind(cutoff)
            } else {
                q
            };
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(keys)
    }

    /// Forgets the raw objects written before `written_before` (ns since the Unix epoch) whose
    /// blocks are all materialized (deleting the bytes of those the catalog holds), and
    /// returns their paths for deletion. Their block rows
    /// stay (the `blocks` table keeps describing what was received); only pending blocks are
    /// ever read again, and these objects hold none.
    pub async fn release_materialized_objects(&self, written_before: i64) -> Result<Vec<String>> {
        const RELEASED: &str = "FROM objects WHERE insert_time < $1 AND NOT EXISTS \
             (SELECT 1 FROM blocks b WHERE b.object_path = objects.object_path \
              AND b.partition_id IS NULL)";
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "DELETE FROM object_bytes WHERE object_path IN (SELECT object_path {RELEASED})"
        ))
        .bind(written_before)
        .execute(&mut *tx)
        .await?;
        let rows = sqlx::query(&format!("DELETE {RELEASED} RETURNING object_path"))
            .bind(written_before)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter().map(|r| Ok(r.try_get("object_path")?)).collect()
    }

    /// Bytes `offset..offset + len` of a raw object whose bytes the catalog holds (a key
    /// starting with `catalog:`); `None` if it has no such object.
    pub async fn object_range(&self, path: &str, offset: i64, len: i64) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query(
            "SELECT substr(bytes, CAST($1 AS INTEGER), CAST($2 AS INTEGER)) AS b \
             FROM object_bytes WHERE object_path = $3",
        )
        .bind(offset.saturating_add(1))
        .bind(len)
        .bind(path)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("b")).transpose()?)
    }

    /// Gives the space that deleted rows (and raw objects kept in the catalog) leave free in
    /// the catalog back to the file system: SQLite's `VACUUM`, which rewrites the database
    /// through its write-ahead log and holds the write lock meanwhile, so writers wait (up to
    /// the busy timeout); then a checkpoint that copies the log into the file and truncates
    /// it. On PostgreSQL, `VACUUM` makes that space reusable.
    pub async fn vacuum(&self) -> Result<()> {
        sqlx::query("VACUUM").execute(&self.pool).await?;
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Total size in bytes of the raw objects the catalog refers to, wherever their bytes are
    /// (object store or catalog), for reports.
    pub async fn raw_object_bytes(&self) -> Result<i64> {
        self.number("SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM objects")
            .await
    }

    /// Row counts of the catalog tables, for reports.
    pub async fn counts(&self) -> Result<Vec<(String, i64)>> {
        let mut out = Vec::new();
        for t in ["processes", "streams", "blocks", "objects", "partitions"] {
            let n = self.number(&format!("SELECT COUNT(*) FROM {t}")).await?;
            out.push((t.to_owned(), n));
        }
        Ok(out)
    }
}

async fn insert_partition(tx: &mut Transaction<'_, Any>, p: &PartitionRow) -> Result<()> {
    let sql = format!(
        "INSERT INTO partitions ({}) VALUES ({})",
        PartitionRow::COLUMNS,
        placeholders(1, 9)
    );
    sqlx::query(&sql)
        .bind(&p.partition_id)
        .bind(&p.table_name)
        .bind(p.min_time)
        .bind(p.max_time)
        .bind(&p.file_path)
        .bind(p.file_size)
        .bind(p.row_count)
        .bind(p.block_count)
        .bind(p.insert_time)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Hides the password of a database URL.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Now, ns since the Unix epoch.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}
