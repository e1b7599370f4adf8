use super::{Sink, SinkError};
use crate::transit::batch::Batch;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes each batch, in the wire format the collector accepts, to
/// `DIR/<process_id>/<sequence>-<first block id>.mmtb`. Files appear atomically (written under
/// a temporary name, synced, then renamed), so a reader never sees a partial batch.
#[derive(Debug)]
pub struct DirectorySink {
    root: PathBuf,
    sequence: AtomicU64,
}

impl DirectorySink {
    /// A sink writing under `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        Ok(Self {
            root,
            sequence: AtomicU64::new(0),
        })
    }

    /// The directory written to.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reads back every batch file under `root`, in the order they were written per process.
    pub fn read_all(root: impl AsRef<Path>) -> std::io::Result<Vec<Vec<u8>>> {
        let mut files = Vec::new();
        for dir in fs::read_dir(root)? {
            let dir = dir?;
            if !dir.file_type()?.is_dir() {
                continue;
            }
            for f in fs::read_dir(dir.path())? {
                let p = f?.path();
                if p.extension().is_some_and(|e| e == "mmtb") {
                    files.push(p);
                }
            }
        }
        files.sort();
        files.iter().map(fs::read).collect()
    }
}

impl Sink for DirectorySink {
    fn write_batch(&self, batch: &Batch) -> Result<(), SinkError> {
        let dir = self.root.join(batch.process.process_id.to_string());
        let first = batch
            .blocks
            .first()
            .map(|b| b.header.block_id.to_string())
            .unwrap_or_default();
        let seq = self.sequence.fetch_add(1, Ordering::Relaxed);
        let name = format!("{seq:012}-{first}.mmtb");
        let write = || -> std::io::Result<()> {
            fs::create_dir_all(&dir)?;
            let tmp = dir.join(format!(".{name}.tmp"));
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&batch.encode())?;
            f.sync_data()?;
            fs::rename(&tmp, dir.join(&name))
        };
        write().map_err(|e| {
            SinkError::Retryable(format!("cannot write batch under {}: {e}", dir.display()))
        })
    }
}
