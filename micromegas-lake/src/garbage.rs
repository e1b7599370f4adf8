//! Garbage collection: deleting the objects of the lake that no catalog row refers to.
//!
//! Every object is written before the catalog row that refers to it is committed, and deleted
//! after the row that referred to it is gone, so a stop at the wrong moment leaves objects
//! that nothing will read: a write whose process was killed before its commit, a partition
//! replaced by compaction whose deferred deletion did not run (the process stopped within its
//! grace), a deletion that failed after retention had removed the rows. A pass lists the
//! lake's own prefixes (`raw/`, `tables/`, `views/`; nothing else in the bucket or directory
//! is looked at), asks the catalog which keys it refers to, and deletes a key only when:
//!
//! - an earlier pass had already seen it unreferenced at least `grace` ago (noted in the
//!   catalog's `unreferenced_objects`, so several nodes and restarts share what was seen), and
//!   it is still unreferenced just before the deletion;
//! - it was last modified at least `grace` ago.
//!
//! The first rule keeps a partition that compaction has just replaced, and that a query
//! planned before may still read, for a grace period after it stopped being referenced. The
//! second keeps an object whose write has not committed yet. `grace` must therefore exceed
//! the longest write (a collector's `--write-timeout` and the object store's retries) and the
//! longest query; an hour is the default.

use crate::catalog::now_nanos;
use crate::catalog::Catalog;
use crate::error::Result;
use crate::Lake;
use futures::StreamExt;
use object_store::path::Path;
use object_store::ObjectMeta;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// The prefixes under which the lake writes objects.
const PREFIXES: [&str; 3] = ["raw/", "tables/", "views/"];

/// Keys listed before the catalog is asked which of them it refers to.
const LISTED_PER_LOOKUP: usize = 2000;

/// What a garbage collection pass found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GarbageReport {
    /// Objects listed under the lake's prefixes.
    pub objects_listed: u64,
    /// Objects no catalog row refers to (deleted, or kept until their grace ends).
    pub unreferenced: u64,
    /// Unreferenced objects deleted.
    pub objects_deleted: u64,
    /// Their bytes.
    pub bytes_deleted: u64,
    /// Staging files left by an interrupted write on a local lake (`NAME#N`), deleted.
    pub staging_files_deleted: u64,
}

impl GarbageReport {
    /// Unreferenced objects kept until their grace ends.
    pub fn waiting(&self) -> u64 {
        self.unreferenced - self.objects_deleted
    }
}

impl Lake {
    /// Runs one garbage collection pass (see the [module](crate::garbage) for the rules):
    /// deletes the objects that no catalog row has referred to for at least `grace`, and
    /// notes the newly unreferenced ones for a later pass. With a zero `grace`, every
    /// unreferenced object is deleted now: only for a lake that nothing writes to or reads
    /// meanwhile.
    pub async fn collect_garbage(&self, grace: Duration) -> Result<GarbageReport> {
        self.collect_garbage_observed(grace, |_| {}).await
    }

    /// [`Lake::collect_garbage`], calling `progress` with the counts so far (for a progress
    /// display).
    pub async fn collect_garbage_observed(
        &self,
        grace: Duration,
        mut progress: impl FnMut(&GarbageReport),
    ) -> Result<GarbageReport> {
        let now = now_nanos();
        let cutoff = now.saturating_sub(grace.as_nanos().min(i64::MAX as u128) as i64);
        let catalog = self.catalog();
        let mut report = GarbageReport::default();
        let mut unreferenced = Vec::new();
        for prefix in PREFIXES {
            let mut listing = self.store().list(Some(&Path::from(prefix)));
            let mut listed = Vec::with_capacity(LISTED_PER_LOOKUP);
            loop {
                let next = listing.next().await.transpose()?;
                let end = next.is_none();
                listed.extend(next);
                if listed.len() >= LISTED_PER_LOOKUP || (end && !listed.is_empty()) {
                    report.objects_listed += listed.len() as u64;
                    keep_unreferenced(catalog, &mut listed, &mut unreferenced).await?;
                    progress(&report);
                }
                if end {
                    break;
                }
            }
        }
        report.unreferenced = unreferenced.len() as u64;

        let noted = catalog.noted_unreferenced().await?;
        let current: HashSet<&str> = unreferenced.iter().map(|m| m.location.as_ref()).collect();
        // Notes of keys referenced again, or gone from the store, are forgotten.
        let mut forget: Vec<String> = noted
            .keys()
            .filter(|k| !current.contains(k.as_str()))
            .cloned()
            .collect();
        let (due, wait) = due_for_deletion(unreferenced, &noted, now, cutoff);
        let new: Vec<String> = wait
            .iter()
            .filter(|k| !noted.contains_key(*k))
            .cloned()
            .collect();
        catalog.note_unreferenced(&new, now).await?;

        // A last look just before deleting: a key referenced since the listing is kept.
        let keys: Vec<String> = due.iter().map(|m| m.location.to_string()).collect();
        let referenced = catalog.referenced(&keys).await?;
        let (due, kept): (Vec<ObjectMeta>, Vec<ObjectMeta>) = due
            .into_iter()
            .partition(|m| !referenced.contains(m.location.as_ref()));
        forget.extend(kept.iter().map(|m| m.location.to_string()));
        catalog.forget_unreferenced(&forget).await?;
        let sizes: HashMap<Path, u64> = due.iter().map(|m| (m.location.clone(), m.size)).collect();
        let paths = futures::stream::iter(due.into_iter().map(|m| Ok(m.location)));
        let mut deleted = self.store().delete_stream(paths.boxed());
        let mut gone = Vec::new();
        while let Some(r) = deleted.next().await {
            match r {
                Ok(path) => {
                    report.bytes_deleted += sizes.get(&path).copied().unwrap_or(0);
                    gone.push(path.to_string());
                }
                // Already deleted (by another node's pass); the error names the file, not
                // always the key, so its note goes at the next pass (gone from the store).
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    catalog.forget_unreferenced(&gone).await?;
                    return Err(e.into());
                }
            }
            report.objects_deleted += 1;
            progress(&report);
        }
        catalog.forget_unreferenced(&gone).await?;
        if let Some(dir) = self.local_dir() {
            let (shown, dir) = (dir.display().to_string(), dir.clone());
            let deadline =
                std::time::SystemTime::UNIX_EPOCH + Duration::from_nanos(cutoff.max(0) as u64);
            report.staging_files_deleted = crate::error::run_blocking(
                || format!("removing staging files under {shown}"),
                move || crate::durable_file::remove_staging_files(&dir, &PREFIXES, deadline),
            )
            .await?;
        }
        progress(&report);
        Ok(report)
    }
}

/// Moves the objects of `listed` that no catalog row refers to into `unreferenced`.
async fn keep_unreferenced(
    catalog: &Catalog,
    listed: &mut Vec<ObjectMeta>,
    unreferenced: &mut Vec<ObjectMeta>,
) -> Result<()> {
    let keys: Vec<String> = listed.iter().map(|m| m.location.to_string()).collect();
    let referenced = catalog.referenced(&keys).await?;
    unreferenced.extend(
        listed
            .drain(..)
            .filter(|m| !referenced.contains(m.location.as_ref())),
    );
    Ok(())
}

/// Splits unreferenced objects into those to delete now (seen unreferenced, and last
/// modified, at or before `cutoff`) and the keys of the others.
fn due_for_deletion(
    unreferenced: Vec<ObjectMeta>,
    noted: &HashMap<String, i64>,
    now: i64,
    cutoff: i64,
) -> (Vec<ObjectMeta>, Vec<String>) {
    let mut due = Vec::new();
    let mut wait = Vec::new();
    for meta in unreferenced {
        let key = meta.location.to_string();
        let first_seen = noted.get(&key).copied().unwrap_or(now);
        let modified = meta.last_modified.timestamp_nanos_opt().unwrap_or(i64::MAX);
        if first_seen <= cutoff && modified <= cutoff {
            due.push(meta);
        } else {
            wait.push(key);
        }
    }
    (due, wait)
}
