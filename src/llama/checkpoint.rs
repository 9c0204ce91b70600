//! Crash-safe checkpoints and the lock that keeps one run per directory.
//!
//! A run directory holds:
//!
//! ```text
//! .lock                          locked (advisory, `File::try_lock`) by the process training here
//! metrics.jsonl                  one JSON line per step and evaluation
//! checkpoints/step-00000120/     model.safetensors, config.json, optimizer.safetensors, state.json
//! latest                         the name of the newest complete checkpoint
//! ```
//!
//! A checkpoint is written so that a kill at any instruction leaves a resumable directory:
//! 1. its files go into `checkpoints/step-N.tmp/`, each synced to disk;
//! 2. the folder is renamed to `checkpoints/step-N` and `checkpoints/` is synced;
//! 3. `latest.tmp` gets the new name, is synced and renamed over `latest`, and the run
//!    directory is synced;
//! 4. older `step-*` folders are removed.
//!
//! A `.tmp` is never read. A resume takes the newest `step-N` folder whose files match the
//! SHA-256 digests its `state.json` records (`super::state`), so a complete checkpoint that
//! `latest` does not name yet (a kill between 2 and 3) is found, and a damaged or foreign one is
//! skipped with a warning, never deleted: older checkpoints are removed only after a newer one
//! has been written and named (4). Leftovers of a killed write (`.tmp` files and folders) are
//! removed by [`remove_leftovers`] when a run resumes and by the next write. `tests/reliability.rs` kills a training process at every
//! [`failpoint`] of this protocol and checks that `--resume` continues bit-identically and that
//! later checkpoints succeed.

use crate::error::Result;
use crate::fsio::{create_dir_all, io_error, is_tmp, rename, sync_dir, sync_file};
use std::path::{Path, PathBuf};

/// The checkpoint folder's name for a step.
pub fn name(step: usize) -> String {
    format!("step-{step:08}")
}

pub use crate::fsio::failpoint;

/// Every failpoint of [`write`], in protocol order.
pub const FAILPOINTS: [&str; 6] = [
    "checkpoint:model-written",
    "checkpoint:files-written",
    "checkpoint:renamed",
    "checkpoint:latest-tmp-written",
    "checkpoint:latest-renamed",
    "checkpoint:pruned",
];

/// Writes checkpoint `step`: `fill` writes the files into the folder it is given (calling
/// [`failpoint`]`("checkpoint:model-written")` between files is its business); then the
/// protocol above. A `step-N` folder already there (from before a kill, or damaged) is replaced
/// by this one; older checkpoints are removed only after the new one is complete and named.
pub fn write(out: &Path, step: usize, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let root = out.join("checkpoints");
    create_dir_all(&root)?;
    let (tmp, done) = (
        root.join(format!("{}.tmp", name(step))),
        root.join(name(step)),
    );
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io_error(&tmp))?;
    }
    create_dir_all(&tmp)?;
    fill(&tmp)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&tmp)
        .map_err(io_error(&tmp))?
        .map(|e| e.map(|e| e.path()).map_err(io_error(&tmp)))
        .collect::<Result<_>>()?;
    files.sort();
    for file in &files {
        sync_file(file)?;
    }
    sync_dir(&tmp)?;
    failpoint("checkpoint:files-written");
    if done.exists() {
        std::fs::remove_dir_all(&done).map_err(io_error(&done))?;
    }
    rename(&tmp, &done)?;
    sync_dir(&root)?;
    failpoint("checkpoint:renamed");
    point_latest(out, step)?;
    prune(out, step)?;
    failpoint("checkpoint:pruned");
    Ok(())
}

fn point_latest(out: &Path, step: usize) -> Result<()> {
    let (tmp, latest) = (out.join("latest.tmp"), out.join("latest"));
    std::fs::write(&tmp, format!("{}\n", name(step))).map_err(io_error(&tmp))?;
    sync_file(&tmp)?;
    failpoint("checkpoint:latest-tmp-written");
    rename(&tmp, &latest)?;
    sync_dir(out)?;
    failpoint("checkpoint:latest-renamed");
    Ok(())
}

/// A `step-N` folder: its step and path.
pub type Candidate = (usize, PathBuf);

/// The `step-N` folders of `out/checkpoints/`, newest step first, each still to be verified
/// by the caller; and a warning for every other entry there that is not a `.tmp` leftover (a
/// file named like a checkpoint, a folder with another name), which is left alone.
pub fn candidates(out: &Path) -> Result<(Vec<Candidate>, Vec<String>)> {
    let root = out.join("checkpoints");
    let (mut found, mut warnings) = (Vec::new(), Vec::new());
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok((found, warnings));
    };
    for entry in entries {
        let path = entry.map_err(io_error(&root))?.path();
        if is_tmp(&path) {
            continue;
        }
        let step = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("step-"))
            .and_then(|n| n.parse::<usize>().ok());
        match step {
            Some(step) if path.is_dir() => found.push((step, path)),
            _ => warnings.push(format!(
                "{} is not a checkpoint folder (step-N); ignored",
                path.display()
            )),
        }
    }
    found.sort_by(|a, b| b.cmp(a));
    Ok((found, warnings))
}

/// Removes every `step-N` folder but `keep`'s (called once `keep` is complete and named in
/// `latest`), and leftovers of killed writes.
fn prune(out: &Path, keep: usize) -> Result<()> {
    for (step, path) in candidates(out)?.0 {
        if step != keep {
            std::fs::remove_dir_all(&path).map_err(io_error(&path))?;
        }
    }
    remove_leftovers(out)
}

/// Removes what a killed write left behind (`.tmp` files and folders in the run folder and in
/// `checkpoints/`); a `.tmp` is never complete, and nothing else is touched.
pub fn remove_leftovers(out: &Path) -> Result<()> {
    for dir in [out.to_path_buf(), out.join("checkpoints")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.map_err(io_error(&dir))?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                if path.is_dir() {
                    std::fs::remove_dir_all(&path).map_err(io_error(&path))?;
                } else {
                    std::fs::remove_file(&path).map_err(io_error(&path))?;
                }
            }
        }
    }
    Ok(())
}

/// The advisory lock on a run directory (`<out>/.lock`), held for the run's life.
pub type RunLock = crate::fsio::DirLock;

/// Locks a run directory for a training process ([`crate::fsio::DirLock`]).
pub fn lock_run(out: &Path) -> Result<RunLock> {
    crate::fsio::DirLock::acquire(out, ".lock", "another training process")
}

/// True when `out` holds a run's files (metrics or checkpoints).
pub fn has_run(out: &Path) -> bool {
    ["metrics.jsonl", "checkpoints", "latest", "checkpoint"]
        .iter()
        .any(|f| out.join(f).exists())
}

/// Removes a previous run's files from `out` (for `--force`), keeping anything else there.
pub fn remove_run(out: &Path) -> Result<()> {
    for f in ["metrics.jsonl", "latest", "latest.tmp"] {
        let p = out.join(f);
        if p.exists() {
            std::fs::remove_file(&p).map_err(io_error(&p))?;
        }
    }
    for d in [
        "checkpoints",
        "checkpoint",
        "checkpoint.tmp",
        "checkpoint.old",
    ] {
        let p = out.join(d);
        if p.exists() {
            std::fs::remove_dir_all(&p).map_err(io_error(&p))?;
        }
    }
    Ok(())
}
