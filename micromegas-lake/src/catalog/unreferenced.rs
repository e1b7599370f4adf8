//! Catalog rows for garbage collection: which keys of the object store a row refers to, and,
//! for each key no row refers to, when a pass first saw it so (a key is deleted only once it
//! has stayed unreferenced for a grace period).

use super::statements::{bind_all, placeholders, value_rows, Param, CHUNK};
use super::Catalog;
use crate::error::Result;
use sqlx::Row;
use std::collections::{HashMap, HashSet};

/// The tables whose rows name an object of the store, and the column that names it. Blocks
/// count while they are pending (not yet materialized): their raw object is read again.
const REFERENCES: [(&str, &str, &str); 4] = [
    ("objects", "object_path", ""),
    ("partitions", "file_path", ""),
    ("view_hours", "file_path", ""),
    ("blocks", "object_path", " AND partition_id IS NULL"),
];

impl Catalog {
    /// The keys among `keys` that a catalog row refers to: a raw object, a partition file, a
    /// view's hour, or the object of a block not yet materialized.
    pub async fn referenced(&self, keys: &[String]) -> Result<HashSet<String>> {
        let mut out = HashSet::new();
        for chunk in keys.chunks(CHUNK) {
            let params: Vec<Param<'_>> = chunk.iter().map(|k| Param::Text(k)).collect();
            for (table, column, condition) in REFERENCES {
                let sql = format!(
                    "SELECT DISTINCT {column} AS k FROM {table} WHERE {column} IN ({}){condition}",
                    placeholders(1, chunk.len())
                );
                for row in bind_all(sqlx::query(&sql), &params)
                    .fetch_all(&self.pool)
                    .await?
                {
                    out.insert(row.try_get("k")?);
                }
            }
        }
        Ok(out)
    }

    /// The unreferenced keys noted by earlier passes, each with when it was first noted (ns
    /// since the Unix epoch).
    pub async fn noted_unreferenced(&self) -> Result<HashMap<String, i64>> {
        sqlx::query("SELECT object_path, first_seen FROM unreferenced_objects")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("object_path")?, r.try_get("first_seen")?)))
            .collect()
    }

    /// Notes `keys` as unreferenced since `now`; a key already noted keeps its first time
    /// (another node may have noted it meanwhile).
    pub async fn note_unreferenced(&self, keys: &[String], now: i64) -> Result<()> {
        for chunk in keys.chunks(CHUNK / 2) {
            let sql = format!(
                "INSERT INTO unreferenced_objects (object_path, first_seen) VALUES {} \
                 ON CONFLICT (object_path) DO NOTHING",
                value_rows(2, chunk.len())
            );
            let params: Vec<Param<'_>> = chunk
                .iter()
                .flat_map(|k| [Param::Text(k), Param::Int(now)])
                .collect();
            bind_all(sqlx::query(&sql), &params)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Forgets the notes of `keys`: deleted, or referenced again, or gone from the store.
    pub async fn forget_unreferenced(&self, keys: &[String]) -> Result<()> {
        for chunk in keys.chunks(CHUNK) {
            let sql = format!(
                "DELETE FROM unreferenced_objects WHERE object_path IN ({})",
                placeholders(1, chunk.len())
            );
            let params: Vec<Param<'_>> = chunk.iter().map(|k| Param::Text(k)).collect();
            bind_all(sqlx::query(&sql), &params)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
}
