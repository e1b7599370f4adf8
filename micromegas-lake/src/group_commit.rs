//! Group commit: writes that arrive while another one is being made durable wait for it, then
//! are committed together — one object, one `fsync`, one catalog transaction — and each is
//! answered with its own outcome once the whole group is durable. Under concurrent requests
//! this spreads the fixed cost of a durable write over the group; a lone write commits alone,
//! right away.

use crate::catalog::{now_nanos, WriteRows};
use crate::durable_file::{self, Placement};
use crate::error::{run_blocking, LakeError, Result};
use crate::write::{raw_object_key, WriteOutcome, IN_CATALOG};
use crate::Lake;
use std::collections::{HashMap, HashSet, VecDeque};
use tokio::sync::oneshot;

/// A group holds at most this many bytes of objects (more if one write alone is larger).
const MAX_GROUP_BYTES: usize = 64 << 20;

/// The kind of raw object a write makes; each has its own queue, so one object holds one
/// kind.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ObjectKind {
    /// Native transit batches.
    Transit = 0,
    /// Arrow IPC row blocks.
    Arrow = 1,
}

impl ObjectKind {
    fn extension(self) -> &'static str {
        match self {
            ObjectKind::Transit => "mmtb",
            ObjectKind::Arrow => "arrows",
        }
    }
}

/// One write, ready to commit: its bytes and the catalog rows of its blocks. Each block's
/// `object_offset` and `object_len` give its byte range in `object` (blocks may share a
/// range); their `object_path` is set at commit.
#[derive(Debug)]
pub(crate) struct PendingWrite {
    pub object: Vec<u8>,
    pub rows: WriteRows,
}

struct Entry {
    write: PendingWrite,
    reply: oneshot::Sender<Result<WriteOutcome>>,
}

/// The queue of writes waiting for a commit, and the turn to lead one.
#[derive(Default)]
pub(crate) struct GroupCommit {
    queue: std::sync::Mutex<VecDeque<Entry>>,
    turn: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("queued", &self.queue().len())
            .finish()
    }
}

impl GroupCommit {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Entry>> {
        // The queue is only pushed to and drained; a panic elsewhere leaves it consistent.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The oldest queued writes, up to `MAX_GROUP_BYTES` (at least one).
    fn take(&self) -> Vec<Entry> {
        let mut queue = self.queue();
        let mut bytes = 0;
        let mut n = 0;
        for e in queue.iter() {
            bytes += e.write.object.len();
            if n > 0 && bytes > MAX_GROUP_BYTES {
                break;
            }
            n += 1;
        }
        queue.drain(..n).collect()
    }
}

fn abandoned() -> LakeError {
    LakeError::Grouped {
        message: "the commit of the group holding this write stopped before answering; the \
                  write may or may not be stored, and writing it again is safe (block ids \
                  make it idempotent)"
            .into(),
        retryable: true,
    }
}

impl Lake {
    /// Commits a write with whatever else is waiting: returns once its object and catalog rows
    /// are durable.
    pub(crate) async fn commit(
        &self,
        kind: ObjectKind,
        write: PendingWrite,
    ) -> Result<WriteOutcome> {
        if write.rows.blocks.is_empty() {
            return Ok(WriteOutcome::default());
        }
        let group = &self.inner.commits[kind as usize];
        let (reply, mut answer) = oneshot::channel();
        group.queue().push_back(Entry { write, reply });
        loop {
            let turn = group.turn.lock().await;
            match answer.try_recv() {
                Ok(result) => return result,
                Err(oneshot::error::TryRecvError::Closed) => return Err(abandoned()),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let entries = group.take();
            if entries.is_empty() {
                // This write is in a group whose leader went away while its task commits it.
                drop(turn);
                return answer.await.unwrap_or_else(|_| Err(abandoned()));
            }
            // This write is still queued: lead the next group. The group runs as its own task,
            // so a request cancelled while it leads does not stop the others' commit.
            let lake = self.clone();
            let task = tokio::spawn(async move { lake.commit_entries(kind, entries).await });
            // A panicking commit drops the replies: the waiting writes see `abandoned`.
            let _ = task.await;
        }
    }

    async fn commit_entries(&self, kind: ObjectKind, entries: Vec<Entry>) {
        let (writes, replies): (Vec<_>, Vec<_>) =
            entries.into_iter().map(|e| (e.write, e.reply)).unzip();
        match self.write_group(kind, writes).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // A write whose request went away is stored all the same.
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) if replies.len() == 1 => {
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(e));
                }
            }
            Err(e) => {
                let (message, retryable) = (e.to_string(), e.is_retryable());
                for reply in replies {
                    let _ = reply.send(Err(LakeError::Grouped {
                        message: message.clone(),
                        retryable,
                    }));
                }
            }
        }
    }

    /// Writes the group's new blocks as one durable object, then their catalog rows in one
    /// transaction; one outcome per write, in order. Blocks the lake already has, or that an
    /// earlier write of the group carries, are skipped, and so are bytes that only they use.
    ///
    /// A local lake with a SQLite-file catalog runs the check, the object and the transaction
    /// in one blocking task, and keeps an object of up to [`CATALOG_OBJECT_MAX`] bytes in the
    /// catalog, in the transaction of its rows, whose commit is then the write's only `fsync`.
    async fn write_group(
        &self,
        kind: ObjectKind,
        writes: Vec<PendingWrite>,
    ) -> Result<Vec<WriteOutcome>> {
        if let (Some(dir), Some(writer)) = (self.local_dir(), self.catalog().sqlite_writer()) {
            let (dir, writer) = (dir.clone(), writer.clone());
            return run_blocking(
                || "the commit task of a group of writes".into(),
                move || {
                    let seen = writer.existing_blocks_blocking(&block_ids(&writes))?;
                    let mut group = Group::plan(kind, writes, seen, Some(CATALOG_OBJECT_MAX))?;
                    if let Some((key, ..)) = &group.rows.object {
                        let bytes = if key.starts_with(IN_CATALOG) {
                            Some(group.object.as_slice())
                        } else {
                            durable_file::write(&dir.join(key), &group.object, Placement::New)?;
                            None
                        };
                        let new = writer.insert_new_blocking(&group.rows, now_nanos(), bytes)?;
                        group.settle(&new);
                    }
                    Ok(group.outcomes)
                },
            )
            .await;
        }
        let seen = self.catalog().existing_blocks(&block_ids(&writes)).await?;
        let mut group = Group::plan(kind, writes, seen, None)?;
        if let Some((key, ..)) = &group.rows.object {
            let object = std::mem::take(&mut group.object);
            self.put_durable(key, object, Placement::New).await?;
            let new = self.catalog().insert_new(&group.rows).await?;
            group.settle(&new);
        }
        Ok(group.outcomes)
    }
}

/// The largest raw object a local lake keeps in its SQLite catalog; a larger one (a group of
/// several requests) is a file. Bytes in the catalog are written twice (its write-ahead log,
/// then the database file), which costs more than a file's fixed syscalls for large objects.
const CATALOG_OBJECT_MAX: usize = 128 * 1024;

fn block_ids(writes: &[PendingWrite]) -> Vec<String> {
    writes
        .iter()
        .flat_map(|w| w.rows.blocks.iter().map(|b| b.block_id.clone()))
        .collect()
}

/// A group of writes laid out as one object: its bytes, the catalog rows of its new blocks
/// (with the object's row, and so its key, when there is at least one), the write each block
/// came from, and each write's outcome so far.
struct Group {
    object: Vec<u8>,
    rows: WriteRows,
    owners: Vec<usize>,
    outcomes: Vec<WriteOutcome>,
}

impl Group {
    /// Lays out the blocks not in `seen` (the ids the catalog already has) in one object,
    /// whose bytes go to the catalog if there are at most `catalog_max` of them (never
    /// without a limit).
    fn plan(
        kind: ObjectKind,
        writes: Vec<PendingWrite>,
        mut seen: HashSet<String>,
        catalog_max: Option<usize>,
    ) -> Result<Self> {
        let mut object = Vec::with_capacity(writes.iter().map(|w| w.object.len()).sum());
        let mut rows = WriteRows::default();
        let mut owners = Vec::new();
        let mut outcomes = Vec::with_capacity(writes.len());
        let (mut min_time, mut max_time) = (i64::MAX, i64::MIN);
        for (i, w) in writes.into_iter().enumerate() {
            let mut outcome = WriteOutcome::default();
            // Where each byte range of this write went in the group's object.
            let mut placed: HashMap<(i64, i64), i64> = HashMap::new();
            for mut b in w.rows.blocks {
                if !seen.insert(b.block_id.clone()) {
                    outcome.blocks_skipped += 1;
                    continue;
                }
                let range = (b.object_offset, b.object_len);
                b.object_offset = match placed.get(&range) {
                    Some(&at) => at,
                    None => {
                        let bytes = usize::try_from(range.0)
                            .ok()
                            .zip(usize::try_from(range.1).ok())
                            .and_then(|(at, len)| w.object.get(at..at.checked_add(len)?))
                            .ok_or_else(|| {
                                LakeError::InvalidRows(format!(
                                    "block {} points outside its write's bytes",
                                    b.block_id
                                ))
                            })?;
                        let at = object.len() as i64;
                        object.extend_from_slice(bytes);
                        outcome.object_bytes += bytes.len() as u64;
                        placed.insert(range, at);
                        at
                    }
                };
                min_time = min_time.min(b.begin_time);
                max_time = max_time.max(b.end_time);
                owners.push(i);
                rows.blocks.push(b);
            }
            if !placed.is_empty() {
                rows.processes.extend(w.rows.processes);
                rows.streams.extend(w.rows.streams);
            }
            outcomes.push(outcome);
        }
        if !rows.blocks.is_empty() {
            let in_catalog = catalog_max.is_some_and(|max| object.len() <= max);
            let key = raw_object_key(now_nanos(), kind.extension(), in_catalog);
            for b in &mut rows.blocks {
                b.object_path.clone_from(&key);
            }
            rows.object = Some((key, min_time, max_time, object.len() as i64));
        }
        Ok(Self {
            object,
            rows,
            owners,
            outcomes,
        })
    }

    /// Counts each block as written if the catalog took it as new (`new`), else as skipped:
    /// another node may have stored it since the check.
    fn settle(&mut self, new: &HashSet<String>) {
        for (b, &i) in self.rows.blocks.iter().zip(&self.owners) {
            let o = &mut self.outcomes[i];
            if new.contains(&b.block_id) {
                o.blocks_written += 1;
                o.events_written += b.event_count as u64;
            } else {
                o.blocks_skipped += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::ProcessRow;
    use crate::row_blocks::RowBlock;
    use crate::tables::{log_batch, LogRow};
    use crate::{Lake, LakeOptions, ViewTable};
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use std::time::Duration;

    fn block(id: u128, msg: &str) -> RowBlock {
        let process = ProcessRow {
            process_id: "6d1f1c1e-0000-4000-8000-000000000001".into(),
            service_name: "grouped".into(),
            exe: String::new(),
            username: String::new(),
            hostname: String::new(),
            start_time: 0,
            tsc_frequency: 0,
            properties: vec![],
            insert_time: 0,
        };
        let row = LogRow {
            time: crate::catalog::now_nanos(),
            process_id: Arc::from(process.process_id.as_str()),
            service_name: Arc::from("grouped"),
            thread_name: Arc::from(""),
            level: "INFO",
            severity_number: 9,
            target: "t".into(),
            msg: msg.into(),
            trace_id: None,
            span_id: None,
            properties: vec![],
            file: String::new(),
            line: None,
        };
        RowBlock {
            block_id: uuid::Uuid::from_u128(id),
            process,
            table: ViewTable::LogEntries,
            rows: log_batch(&[row]).expect("log batch"),
        }
    }

    /// A lake in a fresh local directory, with its SQLite-file catalog.
    async fn local_lake() -> (Lake, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_str().expect("utf-8 path");
        let lake = Lake::open(path, LakeOptions::default())
            .await
            .expect("lake");
        (lake, dir)
    }

    /// The catalog rows of the log blocks not yet materialized.
    async fn pending_log_blocks(lake: &Lake) -> Vec<crate::catalog::BlockRow> {
        let kind = ViewTable::LogEntries.stream_kind();
        lake.catalog()
            .pending_blocks(kind.as_str(), None, 100)
            .await
            .expect("blocks")
    }

    /// The result of `sql` on `lake`, as a pretty-printed table.
    async fn table(lake: &Lake, sql: &str) -> String {
        let ctx = lake.session().await.expect("session");
        let batches = ctx
            .sql(sql)
            .await
            .expect("sql")
            .collect()
            .await
            .expect("collect");
        arrow::util::pretty::pretty_format_batches(&batches)
            .expect("format")
            .to_string()
    }

    /// Writes queued while another commit holds the turn are committed as one group: one
    /// object, each write answered with its own outcome, a block in two writes stored once,
    /// every block readable at its offset.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_writes_commit_as_one_group() {
        let lake = Lake::open("memory://", LakeOptions::default())
            .await
            .expect("lake");
        commit_queued_writes_as_one_group(&lake).await;
    }

    /// The same on a local lake with its SQLite-file catalog, whose groups commit in one
    /// blocking task: the raw object's bytes are in the catalog, and no raw file is left.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_writes_commit_as_one_group_in_a_local_lake() {
        let (lake, dir) = local_lake().await;
        assert!(lake.local_dir().is_some() && lake.catalog().sqlite_writer().is_some());
        let objects = commit_queued_writes_as_one_group(&lake).await;
        assert!(
            objects
                .iter()
                .all(|o| o.starts_with(crate::write::IN_CATALOG)),
            "{objects:?}"
        );
        assert!(!dir.path().join("raw").exists());
    }

    /// A write larger than [`super::CATALOG_OBJECT_MAX`] on a local lake with its SQLite
    /// catalog is a raw file, read back like the others.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_write_in_a_local_lake_is_a_file() {
        let (lake, dir) = local_lake().await;
        // Random hex does not compress below the limit.
        let msg: String = (0..super::CATALOG_OBJECT_MAX / 16)
            .map(|_| uuid::Uuid::new_v4().simple().to_string())
            .collect();
        let outcome = lake
            .write_row_blocks(&[block(7, &msg)])
            .await
            .expect("write");
        assert_eq!(outcome.blocks_written, 1);
        assert!(outcome.object_bytes > super::CATALOG_OBJECT_MAX as u64);
        let blocks = pending_log_blocks(&lake).await;
        let [b] = blocks.as_slice() else {
            panic!("{blocks:?}")
        };
        assert!(b.object_path.starts_with("raw/"), "{b:?}");
        assert!(dir.path().join(&b.object_path).is_file());
        let text = table(&lake, "SELECT length(msg) FROM log_entries").await;
        assert!(text.contains(&format!("| {} ", msg.len())), "{text}");
    }

    /// Returns the object keys of the blocks.
    async fn commit_queued_writes_as_one_group(lake: &Lake) -> BTreeSet<String> {
        let group = &lake.inner.commits[super::ObjectKind::Arrow as usize];
        let turn = group.turn.lock().await;
        let writes = [(1, "one"), (2, "two"), (3, "three"), (2, "two")];
        let tasks: Vec<_> = writes
            .iter()
            .map(|&(id, msg)| {
                let lake = lake.clone();
                tokio::spawn(async move { lake.write_row_blocks(&[block(id, msg)]).await })
            })
            .collect();
        for _ in 0..500 {
            if group.queue().len() == writes.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(group.queue().len(), writes.len(), "all writes queued");
        drop(turn);
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.expect("task").expect("write"));
        }
        let written: Vec<_> = outcomes.iter().map(|o| o.blocks_written).collect();
        let skipped: Vec<_> = outcomes.iter().map(|o| o.blocks_skipped).collect();
        assert_eq!(written.iter().sum::<u64>(), 3, "{outcomes:?}");
        assert_eq!(skipped.iter().sum::<u64>(), 1, "{outcomes:?}");
        assert!(outcomes
            .iter()
            .all(|o| o.blocks_written + o.blocks_skipped == 1));
        // The repeated block's bytes were not written again.
        assert!(outcomes.iter().all(|o| o.events_written == o.blocks_written
            && (o.object_bytes > 0) == (o.blocks_written > 0)));

        let blocks = pending_log_blocks(lake).await;
        let objects: BTreeSet<_> = blocks.iter().map(|b| b.object_path.clone()).collect();
        assert_eq!((blocks.len(), objects.len()), (3, 1), "{blocks:?}");

        let text = table(lake, "SELECT msg FROM log_entries ORDER BY msg").await;
        let msgs: Vec<_> = text
            .lines()
            .filter_map(|l| l.strip_prefix("| "))
            .map(|l| l.trim_end_matches(['|', ' ']))
            .collect();
        assert_eq!(msgs, ["msg", "one", "three", "two"], "{text}");
        objects
    }
}
