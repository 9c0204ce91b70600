//! File I/O that names its path in every error and never leaves a half-written file where a
//! reader looks: the report, the figures, the checkpoints, the corpus and the benchmarks all
//! write through here.
//!
//! A file is replaced atomically: written to a temporary name in the same folder, synced, renamed
//! over the target, and the folder synced, so a reader sees the old file or the new one, never a
//! mix, and a kill or a full disk leaves the old file whole and no temporary file behind.

use crate::error::{Error, Result};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Maps an I/O error to [`Error::Io`] naming `path`: `std::fs::read(p).map_err(io_error(p))`.
pub fn io_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Io {
        path: path.display().to_string(),
        source: e,
    }
}

/// `std::fs::create_dir_all`, naming the folder on error.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))
}

/// `std::fs::read_to_string`, naming the file on error.
pub fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(io_error(path))
}

/// Flushes a file's data and metadata to disk.
pub fn sync_file(path: &Path) -> Result<()> {
    trace::record("sync_file", path, None);
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io_error(path))
}

/// Flushes a folder's entries (a rename or a new file in it) to disk.
pub fn sync_dir(dir: &Path) -> Result<()> {
    trace::record("sync_dir", dir, None);
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_error(dir))
}

/// `std::fs::rename`, naming `from` on error.
pub fn rename(from: &Path, to: &Path) -> Result<()> {
    trace::record("rename", from, Some(to));
    std::fs::rename(from, to).map_err(io_error(from))
}

/// Hex SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The size and hex SHA-256 of a file, read in blocks.
pub fn sha256_file(path: &Path) -> Result<(u64, String)> {
    use sha2::Digest;
    use std::io::Read as _;
    let mut f = File::open(path).map_err(io_error(path))?;
    let (mut hasher, mut buf, mut size) = (sha2::Sha256::new(), vec![0u8; 1 << 16], 0u64);
    loop {
        let n = f.read(&mut buf).map_err(io_error(path))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((size, hex))
}

/// A record of the durability events (`sync_file`, `sync_dir`, `rename`) the current thread
/// makes while tracing, so a test can check their order: a killed process cannot show a missing
/// sync (the page cache outlives it), a trace can.
pub mod trace {
    use std::cell::RefCell;
    use std::path::Path;

    thread_local! {
        static EVENTS: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
    }

    /// Starts recording this thread's events (clearing any earlier record).
    pub fn start() {
        EVENTS.with(|e| *e.borrow_mut() = Some(Vec::new()));
    }

    /// Stops recording and returns the events, each `kind path` or `rename from -> to`.
    pub fn take() -> Vec<String> {
        EVENTS.with(|e| e.borrow_mut().take().unwrap_or_default())
    }

    pub(super) fn record(kind: &str, path: &Path, to: Option<&Path>) {
        EVENTS.with(|e| {
            if let Some(events) = e.borrow_mut().as_mut() {
                events.push(match to {
                    Some(to) => format!("{kind} {} -> {}", path.display(), to.display()),
                    None => format!("{kind} {}", path.display()),
                });
            }
        });
    }
}

/// The temporary name [`write_with`] uses for `path`: `name.tmp.ext` when `keep_extension` (for
/// writers that pick the format from the extension, like the PNG encoder), else `name.ext.tmp`.
pub fn tmp_path(path: &Path, keep_extension: bool) -> PathBuf {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if keep_extension {
        path.with_extension(format!("tmp.{ext}"))
    } else {
        path.with_extension(format!("{ext}.tmp"))
    }
}

/// Whether `path` is a temporary file left by a killed [`write_with`].
pub fn is_tmp(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".tmp") || name.contains(".tmp.")
}

/// Writes `path` atomically: `fill` writes the temporary file it is given (see [`tmp_path`]),
/// which is then synced, renamed over `path`, and the folder synced. On any failure the
/// temporary file is removed and `path` is left as it was.
pub fn write_with(
    path: &Path,
    keep_extension: bool,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_dir_all(&dir)?;
    let tmp = tmp_path(path, keep_extension);
    let written = fill(&tmp)
        .and_then(|()| sync_file(&tmp))
        .and_then(|()| rename(&tmp, path));
    if written.is_err() {
        std::fs::remove_file(&tmp).ok();
    }
    written?;
    sync_dir(&dir)
}

/// Aborts the process here when `NEXUS_LAB_FAILPOINT` names this point, as `NAME` or
/// `NAME@K` (the K-th time the point is reached, counting from 1): the kill test's hook.
pub fn failpoint(point: &str) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static HITS: AtomicUsize = AtomicUsize::new(0);
    let Ok(spec) = std::env::var("NEXUS_LAB_FAILPOINT") else {
        return;
    };
    let (target, nth) = match spec.split_once('@') {
        Some((t, k)) => (t.to_string(), k.parse::<usize>().unwrap_or(1)),
        None => (spec, 1),
    };
    if target == point && HITS.fetch_add(1, Ordering::SeqCst) + 1 == nth {
        std::process::abort();
    }
}

/// An advisory lock on a folder (`File::try_lock` on a lock file in it), held while the value
/// lives and released by the operating system when the process ends, however it ends.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Creates `dir` if needed and locks `dir/<file>`; when `holder` (e.g. "another training
    /// process") holds it already, a clear error naming the folder.
    pub fn acquire(dir: &Path, file: &str, holder: &str) -> Result<Self> {
        create_dir_all(dir)?;
        let path = dir.join(file);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error(&path))?;
        match f.try_lock() {
            Ok(()) => Ok(Self { _file: f }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::InvalidArgument {
                name: "out",
                reason: format!(
                    "{} is in use by {holder} (locked {})",
                    dir.display(),
                    path.display()
                ),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(io_error(&path)(e)),
        }
    }
}

/// Writes `bytes` to `path` atomically ([`write_with`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, false, |tmp| {
        std::fs::write(tmp, bytes).map_err(io_error(tmp))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failed write leaves the old file whole and no temporary file; a good one replaces it.
    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = std::env::temp_dir().join(format!("nexus-fsio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.json");
        write_atomic(&path, b"old").unwrap();
        let failed = write_with(&path, false, |tmp| {
            std::fs::write(tmp, b"half").unwrap();
            Err(Error::Data("disk full".into()))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert!(!tmp_path(&path, false).exists());
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert!(is_tmp(&tmp_path(&path, true)) && is_tmp(&tmp_path(&path, false)));
        assert!(!is_tmp(&path));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
