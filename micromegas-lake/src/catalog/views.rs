//! Catalog rows of SQL-defined views: their definitions and, per view and hour, the Parquet
//! file of its rows and the version of the base data it was computed from.

use super::{now_nanos, Catalog};
use crate::error::Result;
use sqlx::Row;

/// A view defined by a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewRow {
    /// Its table name.
    pub name: String,
    /// The table it reads (`log_entries`, `measures`, `spans`).
    pub base_table: String,
    /// Its query.
    pub sql: String,
}

/// One materialized hour of a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewHourRow {
    /// The view.
    pub view_name: String,
    /// Hours since the Unix epoch.
    pub hour: i64,
    /// Fingerprint of the base partitions it was computed from.
    pub source_version: String,
    /// Its Parquet file (empty when the hour has no rows).
    pub file_path: String,
    /// Bytes.
    pub file_size: i64,
    /// Rows.
    pub row_count: i64,
}

impl Catalog {
    /// Stores a view definition; false if the name is taken.
    pub async fn create_view(&self, view: &ViewRow) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO sql_views (name, base_table, sql, insert_time) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(&view.name)
        .bind(&view.base_table)
        .bind(&view.sql)
        .bind(now_nanos())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The user-defined views, by name.
    pub async fn views(&self) -> Result<Vec<ViewRow>> {
        let rows = sqlx::query("SELECT name, base_table, sql FROM sql_views ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ViewRow {
                    name: r.try_get("name")?,
                    base_table: r.try_get("base_table")?,
                    sql: r.try_get("sql")?,
                })
            })
            .collect()
    }

    /// Deletes a view and its hours; returns their files (to delete), `None` if there was no
    /// such view.
    pub async fn drop_view(&self, name: &str) -> Result<Option<Vec<String>>> {
        let mut tx = self.pool.begin().await?;
        let files: Vec<String> = sqlx::query(
            "SELECT file_path FROM view_hours WHERE view_name = $1 AND file_path <> ''",
        )
        .bind(name)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get("file_path"))
        .collect::<std::result::Result<_, _>>()?;
        sqlx::query("DELETE FROM view_hours WHERE view_name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let gone = sqlx::query("DELETE FROM sql_views WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((gone.rows_affected() == 1).then_some(files))
    }

    /// The materialized hours of a view within `[first, last]` hours (all when `None`).
    pub async fn view_hours(
        &self,
        name: &str,
        hours: Option<(i64, i64)>,
    ) -> Result<Vec<ViewHourRow>> {
        let (first, last) = hours.unwrap_or((i64::MIN, i64::MAX));
        let rows = sqlx::query(
            "SELECT view_name, hour, source_version, file_path, file_size, row_count \
             FROM view_hours WHERE view_name = $1 AND hour >= $2 AND hour <= $3 ORDER BY hour",
        )
        .bind(name)
        .bind(first)
        .bind(last)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ViewHourRow {
                    view_name: r.try_get("view_name")?,
                    hour: r.try_get("hour")?,
                    source_version: r.try_get("source_version")?,
                    file_path: r.try_get("file_path")?,
                    file_size: r.try_get("file_size")?,
                    row_count: r.try_get("row_count")?,
                })
            })
            .collect()
    }

    /// Records a computed hour unless the same version is already there (another node did
    /// the same work). Returns the file it replaced, or, when nothing changed, `row`'s own
    /// file: either way, the file to delete.
    pub async fn put_view_hour(&self, row: &ViewHourRow) -> Result<Option<String>> {
        let mut tx = self.pool.begin().await?;
        let old = sqlx::query(
            "SELECT source_version, file_path FROM view_hours WHERE view_name = $1 AND hour = $2",
        )
        .bind(&row.view_name)
        .bind(row.hour)
        .fetch_optional(&mut *tx)
        .await?;
        let old: Option<(String, String)> = match old {
            Some(r) => Some((r.try_get("source_version")?, r.try_get("file_path")?)),
            None => None,
        };
        if old.as_ref().is_some_and(|(v, _)| *v == row.source_version) {
            return Ok(Some(row.file_path.clone()).filter(|f| !f.is_empty()));
        }
        sqlx::query("DELETE FROM view_hours WHERE view_name = $1 AND hour = $2")
            .bind(&row.view_name)
            .bind(row.hour)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO view_hours (view_name, hour, source_version, file_path, file_size, \
             row_count, insert_time) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&row.view_name)
        .bind(row.hour)
        .bind(&row.source_version)
        .bind(&row.file_path)
        .bind(row.file_size)
        .bind(row.row_count)
        .bind(now_nanos())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(old.map(|(_, f)| f).filter(|f| !f.is_empty()))
    }
}
