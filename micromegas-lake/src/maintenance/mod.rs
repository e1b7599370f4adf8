//! Background upkeep of a lake: materialize new blocks (so data is queryable within about a
//! period of being acknowledged), compact small partitions of past hours, apply retention.

use crate::error::{LakeError, Result};
use crate::Lake;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use std::sync::Arc;
use std::time::Duration;

mod compaction;

pub use compaction::{CompactionOptions, CompactionReport, COMPACTION_MEMORY};

/// Replaced partition and view files are deleted this long after they were replaced, so that
/// queries that planned with them can finish.
pub(crate) const DELETE_GRACE: Duration = Duration::from_secs(120);

/// What the background loop does.
#[derive(Debug, Clone)]
pub struct MaintenanceOptions {
    /// How often new blocks are materialized (default 1 s).
    pub period: Duration,
    /// How often past hours are compacted (default 5 min).
    pub compaction_period: Duration,
    /// Delete data older than this (default: keep everything).
    pub retention: Option<Duration>,
    /// How often retention runs (default 1 h).
    pub retention_period: Duration,
    /// Delete raw payloads this long after they were written, once every block they hold is
    /// materialized (default: keep them). Runs at the compaction period.
    pub raw_retention: Option<Duration>,
    /// How often SQL-defined views are brought up to date (default 1 min; queries on a view
    /// also bring the hours they read up to date).
    pub views_period: Duration,
    /// The most memory, in bytes, that the rows compaction merges into one partition may take
    /// (default [`COMPACTION_MEMORY`]).
    pub compaction_memory: usize,
}

impl Default for MaintenanceOptions {
    fn default() -> Self {
        Self {
            period: Duration::from_secs(1),
            compaction_period: Duration::from_secs(300),
            retention: None,
            retention_period: Duration::from_secs(3600),
            raw_retention: None,
            views_period: Duration::from_secs(60),
            compaction_memory: COMPACTION_MEMORY,
        }
    }
}

/// The running loop; dropping it stops it.
#[derive(Debug)]
pub struct Maintenance {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Maintenance {
    /// Stops the loop after its current step.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Lake {
    /// Starts the background loop on the current tokio runtime. Errors are passed to
    /// `on_error` and the loop goes on (a storage outage delays freshness, it does not stop
    /// the loop). Each raw block that could not be read (a damaged object) is passed too, as
    /// [`LakeError::Corrupt`], once: it is set aside, not retried.
    pub fn spawn_maintenance(
        &self,
        options: MaintenanceOptions,
        on_error: impl Fn(&crate::LakeError) + Send + 'static,
    ) -> Maintenance {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let lake = self.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(options.period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let start = tokio::time::Instant::now();
            let (mut last_compaction, mut last_retention) = (start, None::<tokio::time::Instant>);
            let mut last_views = None::<tokio::time::Instant>;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {}
                }
                match lake.materialize_all().await {
                    Ok(report) => {
                        for (block, reason) in &report.unreadable {
                            on_error(&LakeError::Corrupt {
                                what: format!("raw block {block} (set aside, its rows are lost)"),
                                message: reason.clone(),
                            });
                        }
                    }
                    Err(e) => on_error(&e),
                }
                if last_compaction.elapsed() >= options.compaction_period {
                    last_compaction = tokio::time::Instant::now();
                    let compaction = CompactionOptions {
                        memory: options.compaction_memory,
                        ..Default::default()
                    };
                    if let Err(e) = lake.compact_with(compaction).await {
                        on_error(&e);
                    }
                    if let Some(age) = options.raw_retention {
                        if let Err(e) = lake.drop_materialized_raw(age).await {
                            on_error(&e);
                        }
                    }
                }
                if last_views.is_none_or(|t| t.elapsed() >= options.views_period) {
                    last_views = Some(tokio::time::Instant::now());
                    if let Err(e) = lake.refresh_views(None).await {
                        on_error(&e);
                    }
                }
                if let Some(age) = options.retention {
                    if last_retention.is_none_or(|t| t.elapsed() >= options.retention_period) {
                        last_retention = Some(tokio::time::Instant::now());
                        if let Err(e) = lake.expire(age).await {
                            on_error(&e);
                        }
                    }
                }
            }
        });
        Maintenance {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Starts garbage collection on the current tokio runtime: a pass (see
    /// [`crate::garbage`]) at once, then every `period`, each deleting the objects that no
    /// catalog row has referred to for `grace`. Each pass's outcome goes to `on_pass`. It runs
    /// apart from [`Lake::spawn_maintenance`], so that listing a large bucket never delays
    /// materialization; stopping the handle interrupts a pass (what it had deleted stays
    /// deleted, the rest waits for the next one).
    pub fn spawn_garbage_collection(
        &self,
        period: Duration,
        grace: Duration,
        on_pass: impl Fn(Result<crate::garbage::GarbageReport>) + Send + 'static,
    ) -> Maintenance {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let lake = self.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {}
                }
                tokio::select! {
                    _ = &mut stopped => break,
                    outcome = lake.collect_garbage(grace) => on_pass(outcome),
                }
            }
        });
        Maintenance {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Deletes `files`, which no catalog row refers to any more, `grace` from now (at once
    /// for zero), so that queries that planned with them can finish. A deletion that fails,
    /// or that the process does not live to make, is left to garbage collection.
    pub(crate) async fn delete_later(&self, files: Vec<String>, grace: Duration) {
        let store = Arc::clone(self.store());
        let delete = async move {
            for f in files {
                let _ = store.delete(&Path::from(f)).await;
            }
        };
        if grace.is_zero() {
            delete.await;
        } else {
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                delete.await;
            });
        }
    }
}
