//! Publishing a run's outputs so that a reader never finds a mix of two runs in the output
//! folder, whatever kills the run or however many start on one folder.
//!
//! A [`Publication`] holds the output folder's lock (a second run gets an error naming it) and a
//! staging folder, `<out>/.staging/`, where the run writes every report, figure and summary. At
//! the end, [`Publication::commit`] writes a journal (`.staging/COMMIT`, synced) listing each
//! staged file and where it goes, then renames each into place and removes the staging folder.
//! The next run on the folder starts by finishing a journal it finds (the run was killed while
//! installing) or by discarding a staging folder without one (the run was killed before it
//! finished: nothing of it was installed), and by removing stale `.tmp` files.

use crate::error::{Error, Result};
use crate::fsio::{create_dir_all, io_error, is_tmp, rename, sync_dir, sync_file};
use crate::fsio::{failpoint, DirLock};
use std::path::{Path, PathBuf};

const STAGING: &str = ".staging";
const JOURNAL: &str = "COMMIT";

/// A run's outputs being prepared in a staging folder; nothing reaches the output folder until
/// [`Publication::commit`].
#[derive(Debug)]
pub struct Publication {
    out: PathBuf,
    staging: PathBuf,
    /// Files outside the output folder (the README) and the staged copy of each.
    external: Vec<(PathBuf, PathBuf)>,
    _lock: DirLock,
}

impl Publication {
    /// Locks `out`, repairs what a killed run left (see the module docs), and opens a fresh
    /// staging folder.
    pub fn begin(out: &Path) -> Result<Self> {
        create_dir_all(out)?;
        let lock = DirLock::acquire(out, ".publish.lock", "another run publishing here")?;
        let staging = out.join(STAGING);
        if staging.join(JOURNAL).is_file() {
            let n = install(&staging)?;
            crate::warn(&format!(
                "finished installing {n} file(s) of a run killed while installing them into {}",
                out.display()
            ));
        } else if staging.exists() {
            crate::warn(&format!(
                "discarding {}: a run stopped before it finished (nothing of it was installed)",
                staging.display()
            ));
            std::fs::remove_dir_all(&staging).map_err(io_error(&staging))?;
        }
        for dir in [out.to_path_buf(), out.join("reports")] {
            remove_stale_tmp(&dir)?;
        }
        create_dir_all(&staging)?;
        Ok(Self {
            out: out.to_path_buf(),
            staging,
            external: Vec::new(),
            _lock: lock,
        })
    }

    /// The staging folder: write there what the output folder should hold, at the same
    /// relative paths.
    pub fn dir(&self) -> &Path {
        &self.staging
    }

    /// The output folder.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// Where to stage a file that goes outside the output folder (`target`, e.g. the README).
    pub fn external(&mut self, target: &Path) -> PathBuf {
        let staged = self
            .staging
            .join(".external")
            .join(self.external.len().to_string());
        self.external.push((target.to_path_buf(), staged.clone()));
        staged
    }

    /// Installs every staged file: journal first, then the renames, then the staging folder
    /// removed. Returns the number of files installed.
    pub fn commit(self) -> Result<usize> {
        failpoint("publish:staged");
        let mut lines = Vec::new();
        let mut files = Vec::new();
        walk(&self.staging, &mut files)?;
        for staged in files {
            let rel = staged.strip_prefix(&self.staging).map_err(|_| {
                Error::Data(format!(
                    "{} is outside the staging folder",
                    staged.display()
                ))
            })?;
            if rel.starts_with(".external") || rel == Path::new(JOURNAL) {
                continue;
            }
            lines.push(format!(
                "{}\t{}",
                staged.display(),
                self.out.join(rel).display()
            ));
        }
        for (target, staged) in &self.external {
            if staged.is_file() {
                lines.push(format!("{}\t{}", staged.display(), target.display()));
            }
        }
        let journal = self.staging.join(JOURNAL);
        let tmp = self.staging.join(format!("{JOURNAL}.tmp"));
        std::fs::write(&tmp, lines.join("\n") + "\n").map_err(io_error(&tmp))?;
        sync_file(&tmp)?;
        rename(&tmp, &journal)?;
        sync_dir(&self.staging)?;
        failpoint("publish:journal-written");
        install(&self.staging)
    }
}

/// Every file under `dir`, recursively.
fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_error(dir))?
        .map(|e| e.map(|e| e.path()).map_err(io_error(dir)))
        .collect::<Result<_>>()?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, files)?;
        } else {
            files.push(p);
        }
    }
    Ok(())
}

/// Carries out a staging folder's journal (each line `staged<TAB>target`; a line whose staged
/// file is gone was installed already), then removes the staging folder.
fn install(staging: &Path) -> Result<usize> {
    let journal = staging.join(JOURNAL);
    let text = crate::fsio::read_to_string(&journal)?;
    let mut n = 0;
    let mut dirs = std::collections::BTreeSet::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let (staged, target) = line.split_once('\t').ok_or_else(|| {
            Error::Data(format!("{}: malformed line `{line}`", journal.display()))
        })?;
        let (staged, target) = (Path::new(staged), Path::new(target));
        if !staged.exists() {
            continue;
        }
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_dir_all(parent)?;
            dirs.insert(parent.to_path_buf());
        }
        rename(staged, target)?;
        failpoint("publish:installed-one");
        n += 1;
    }
    for d in dirs {
        sync_dir(&d)?;
    }
    std::fs::remove_dir_all(staging).map_err(io_error(staging))?;
    Ok(n)
}

/// Removes `.tmp` files a killed write left in `dir` (not folders: a checkpoint's `.tmp`
/// folder is not ours to judge).
fn remove_stale_tmp(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries {
        let path = e.map_err(io_error(dir))?.path();
        if path.is_file() && is_tmp(&path) {
            std::fs::remove_file(&path).map_err(io_error(&path))?;
        }
    }
    Ok(())
}
