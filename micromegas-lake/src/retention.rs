//! Retention: deleting what is older than a given age.

use crate::catalog::now_nanos;
use crate::error::Result;
use crate::write::IN_CATALOG;
use crate::Lake;
use futures::StreamExt;
use object_store::path::Path;
use std::time::Duration;

/// What a retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Objects (raw payloads and partition files) deleted.
    pub objects_deleted: u64,
}

impl Lake {
    /// Deletes raw payloads, partitions and catalog rows of data that ended more than `age`
    /// ago. Catalog rows go first, in one short transaction, so that queries and writes never
    /// see a row whose object is gone; the objects are deleted afterwards.
    pub async fn expire(&self, age: Duration) -> Result<RetentionReport> {
        self.expire_before(cutoff(age)).await
    }

    /// [`Lake::expire`] with an absolute cutoff (ns since the Unix epoch).
    pub async fn expire_before(&self, cutoff: i64) -> Result<RetentionReport> {
        self.expire_before_observed(cutoff, |_| {}).await
    }

    /// [`Lake::expire_before`], calling `progress` with the number of objects deleted so far
    /// (for a progress display).
    pub async fn expire_before_observed(
        &self,
        cutoff: i64,
        mut progress: impl FnMut(&RetentionReport),
    ) -> Result<RetentionReport> {
        let keys = self.catalog().expire(cutoff).await?;
        self.delete_objects(keys, &mut progress).await
    }

    /// Raw retention: deletes the raw payloads (the objects that received blocks) written more
    /// than `age` ago whose blocks are all materialized into Parquet partitions. Queries read
    /// partitions, so their results do not change; what is lost is the ability to materialize
    /// those blocks again. Objects still holding a pending block are kept, whatever their age.
    pub async fn drop_materialized_raw(&self, age: Duration) -> Result<RetentionReport> {
        self.drop_materialized_raw_observed(age, |_| {}).await
    }

    /// [`Lake::drop_materialized_raw`], calling `progress` with the number of objects deleted
    /// so far.
    pub async fn drop_materialized_raw_observed(
        &self,
        age: Duration,
        mut progress: impl FnMut(&RetentionReport),
    ) -> Result<RetentionReport> {
        let keys = self
            .catalog()
            .release_materialized_objects(cutoff(age))
            .await?;
        self.delete_objects(keys, &mut progress).await
    }

    /// Deletes objects the catalog no longer refers to (one already gone counts as deleted).
    /// Objects whose bytes were in the catalog went with their rows.
    async fn delete_objects(
        &self,
        keys: Vec<String>,
        progress: &mut impl FnMut(&RetentionReport),
    ) -> Result<RetentionReport> {
        let (in_catalog, keys): (Vec<String>, Vec<String>) =
            keys.into_iter().partition(|k| k.starts_with(IN_CATALOG));
        let mut report = RetentionReport {
            objects_deleted: in_catalog.len() as u64,
        };
        let paths = futures::stream::iter(keys.into_iter().map(|k| Ok(Path::from(k))));
        let mut deleted = self.store().delete_stream(paths.boxed());
        while let Some(r) = deleted.next().await {
            match r {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => report.objects_deleted += 1,
                Err(e) => return Err(e.into()),
            }
            progress(&report);
        }
        Ok(report)
    }
}

/// The time `age` ago, in ns since the Unix epoch: what is older is expired.
pub fn cutoff(age: Duration) -> i64 {
    now_nanos().saturating_sub(age.as_nanos().min(i64::MAX as u128) as i64)
}

/// Parses an age such as `30d`, `12h`, `90m`, `45s` or `1w`.
pub fn parse_age(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("'{text}' is not an age; write e.g. 30d, 12h, 90m or 45s"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(format!("unknown unit in '{text}'; use s, m, h, d or w")),
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}
