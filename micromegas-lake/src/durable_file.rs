//! Durable files on a local lake: written, synced with every directory whose entries changed,
//! and so found whole after a crash.

use crate::error::{LakeError, Result};
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::Path;

/// How a file reaches its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Written under a staging name (`NAME#N`, which object-store listings skip), then renamed
    /// into place once synced: the name never shows a partial file. For files that are listed
    /// or may be replaced, such as partitions.
    Staged,
    /// Created under its name, which must be new. A crash during the write leaves a partial
    /// file that nothing references, as a crash after it leaves a whole one. For raw objects:
    /// unique names, read only through catalog rows committed after the write returns, never
    /// listed. One file-system journal commit fewer than `Staged`.
    New,
}

/// Writes `bytes` to `path` and makes the file and its name durable; the error names the
/// file.
pub(crate) fn write(path: &Path, bytes: &[u8], placement: Placement) -> Result<()> {
    write_file(path, bytes, placement).map_err(|source| LakeError::Io {
        what: format!("writing {} durably", path.display()),
        source,
    })
}

/// How many times a file is created again when its directory vanished meanwhile.
const CREATE_ATTEMPTS: usize = 10;

fn write_file(path: &Path, bytes: &[u8], placement: Placement) -> std::io::Result<()> {
    let parent = path
        .parent()
        .ok_or_else(|| std::io::Error::other("the object's path has no directory"))?;
    // A deletion of a directory's last file deletes the emptied directory (the lake's store
    // cleans up after itself), possibly between its creation here and the file's: create
    // both again. Once the file exists, its directory is not empty and stays.
    let mut attempt = 0;
    let (created, file) = loop {
        attempt += 1;
        let retry = attempt < CREATE_ATTEMPTS;
        // `create_dir_all` reports AlreadyExists when the directory vanishes between its
        // `mkdir` and its check.
        let created = match create_dirs(parent) {
            Err(e)
                if retry && matches!(e.kind(), ErrorKind::NotFound | ErrorKind::AlreadyExists) =>
            {
                continue
            }
            created => created?,
        };
        let file = match placement {
            Placement::Staged => create_staging(path).map(|(f, staging)| (f, Some(staging))),
            Placement::New => OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map(|f| (f, None)),
        };
        match file {
            Err(e) if retry && e.kind() == ErrorKind::NotFound => {}
            file => break (created, file?),
        }
    };
    let (file, staging) = file;
    fill(file, bytes)?;
    if let Some(staging) = staging {
        std::fs::rename(&staging, path)?;
    }
    File::open(parent)?.sync_all()?;
    for dir in created {
        if let Some(up) = dir.parent() {
            File::open(up)?.sync_all()?;
        }
    }
    Ok(())
}

/// Creates `dir` and its missing ancestors; returns those it created, deepest first.
fn create_dirs(dir: &Path) -> std::io::Result<Vec<&Path>> {
    let mut created = Vec::new();
    let mut missing = Some(dir);
    while let Some(d) = missing.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        created.push(d);
        missing = d.parent();
    }
    std::fs::create_dir_all(dir)?;
    Ok(created)
}

/// A fresh staging file for `path` (`#1`, `#2`, .. as the object store numbers them), never
/// shared with another writer.
fn create_staging(path: &Path) -> std::io::Result<(File, std::ffi::OsString)> {
    let mut n = 0u32;
    loop {
        n += 1;
        let mut staging = path.as_os_str().to_owned();
        staging.push(format!("#{n}"));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&staging)
        {
            Ok(file) => return Ok((file, staging)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Removes the staging files (`NAME#N`) under `dir`'s subdirectories `prefixes` last modified
/// before `older_than`: what a write interrupted before its rename left. Object-store
/// listings skip them, and no catalog row names them. Returns how many were removed.
pub(crate) fn remove_staging_files(
    dir: &Path,
    prefixes: &[&str],
    older_than: std::time::SystemTime,
) -> Result<u64> {
    let mut removed = 0;
    for prefix in prefixes {
        let top = dir.join(prefix);
        remove_staging_under(&top, older_than, &mut removed).map_err(|source| LakeError::Io {
            what: format!("removing staging files under {}", top.display()),
            source,
        })?;
    }
    Ok(removed)
}

fn remove_staging_under(
    dir: &Path,
    older_than: std::time::SystemTime,
    removed: &mut u64,
) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            remove_staging_under(&entry.path(), older_than, removed)?;
        } else if kind.is_file()
            && is_staging_name(&entry.file_name())
            && entry.metadata()?.modified()? < older_than
        {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => *removed += 1,
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Whether `name` is a staging name: `NAME#N`, `N` decimal digits.
fn is_staging_name(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    name.rsplit_once('#').is_some_and(|(base, n)| {
        !base.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
    })
}

fn fill(mut file: File, bytes: &[u8]) -> std::io::Result<()> {
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::{write, Placement};

    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        names.sort();
        names
    }

    /// The file lands whole under its name, new directories included, through a staging name
    /// that no other file uses (a leftover staging file is left alone), and nothing else stays.
    #[test]
    fn staged_write_uses_a_free_staging_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("raw/2026-11-28/16/object.arrows");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
        let leftover = dir.path().join("raw/2026-11-28/16/object.arrows#1");
        std::fs::write(&leftover, b"left by a crash").expect("leftover");
        write(&path, b"the object", Placement::Staged).expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"the object");
        assert_eq!(std::fs::read(&leftover).expect("read"), b"left by a crash");
        assert_eq!(
            names(path.parent().expect("parent")),
            ["object.arrows", "object.arrows#1"]
        );

        let nested = dir.path().join("tables/spans/2026-11-28/17/p.parquet");
        write(&nested, b"partition", Placement::Staged).expect("write nested");
        assert_eq!(std::fs::read(&nested).expect("read"), b"partition");
    }

    /// Writes into a directory that another thread keeps deleting whenever it is empty (as
    /// the store's cleanup does after a deletion) all succeed: the directory is created again.
    #[test]
    fn a_directory_deleted_meanwhile_is_created_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hour = dir.path().join("raw/2026-12-06/08");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cleaner = {
            let (hour, stop) = (hour.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut removed = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    removed += u64::from(std::fs::remove_dir(&hour).is_ok());
                    std::thread::sleep(std::time::Duration::from_micros(50));
                }
                removed
            })
        };
        for i in 0..500 {
            for placement in [Placement::New, Placement::Staged] {
                let path = hour.join(format!("{i}-{placement:?}"));
                write(&path, b"x", placement).expect("write");
                std::fs::remove_file(&path).expect("remove");
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let removed = cleaner.join().expect("cleaner");
        assert!(removed > 0, "the directory was deleted meanwhile");
    }

    /// Staging files older than the limit go; a recent one (a write in progress) and
    /// ordinary files stay.
    #[test]
    fn old_staging_files_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hour = dir.path().join("tables/spans/2026-11-28/17");
        std::fs::create_dir_all(&hour).expect("dirs");
        for name in ["p.parquet", "p.parquet#1", "q.parquet#12", "r#x"] {
            std::fs::write(hour.join(name), b"x").expect("file");
        }
        let before = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        let removed = super::remove_staging_files(dir.path(), &["raw/", "tables/"], before);
        assert_eq!(removed.expect("remove"), 0, "all are recent");
        let after = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
        let removed = super::remove_staging_files(dir.path(), &["raw/", "tables/"], after);
        assert_eq!(removed.expect("remove"), 2);
        assert_eq!(names(&hour), ["p.parquet", "r#x"]);
    }

    /// A new file is created under its name, directories included, and never replaces one that
    /// exists: the error names the file.
    #[test]
    fn new_write_creates_the_file_and_refuses_an_existing_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("raw/2026-12-02/01/object.mmtb");
        write(&path, b"the object", Placement::New).expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"the object");
        assert_eq!(names(path.parent().expect("parent")), ["object.mmtb"]);

        let err = write(&path, b"another", Placement::New).expect_err("existing name");
        assert!(err.to_string().contains("object.mmtb"), "{err}");
        assert_eq!(std::fs::read(&path).expect("read"), b"the object");
    }
}
