//! What a checkpoint records of a run besides its tensors (`state.json`), and what a resume may
//! change of it.

use super::checkpoint;
use super::config::TrainConfig;
use super::model::LlamaConfig;
use crate::error::{ensure, Error, Result};
use crate::fsio::{io_error, read_to_string, sha256, sha256_file};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The files every checkpoint holds besides `state.json`.
pub const CHECKPOINT_FILES: [&str; 3] =
    ["config.json", "model.safetensors", "optimizer.safetensors"];

/// A source file a run reads, as it was when the run read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceDigest {
    /// The source's name.
    pub name: String,
    /// Its file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its hex SHA-256.
    pub sha256: String,
}

/// The digests of the file sources (training, then held-out) a configuration names.
pub fn source_digests(cfg: &TrainConfig) -> Result<Vec<SourceDigest>> {
    cfg.sources
        .iter()
        .map(|s| (&s.name, &s.path))
        .chain(cfg.held_out.iter().map(|s| (&s.name, &s.path)))
        .map(|(name, path)| {
            let (bytes, sha256) = sha256_file(path)?;
            Ok(SourceDigest {
                name: name.clone(),
                path: path.clone(),
                bytes,
                sha256,
            })
        })
        .collect()
}

/// A checkpoint's `state.json`: where the run stands, the configuration it runs under, and the
/// SHA-256 digests that let a resume see a changed or damaged file, a changed source, or an
/// edit to the state itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunState {
    /// Steps the outer optimizer's moments have seen (0 before its first step).
    pub adam_steps: u64,
    /// The run's configuration.
    pub config: TrainConfig,
    /// The crate version that wrote the checkpoint.
    pub crate_version: String,
    /// Hex SHA-256 of each of the checkpoint's other files ([`CHECKPOINT_FILES`]), by name.
    pub files: BTreeMap<String, String>,
    /// The source files the run reads.
    pub sources: Vec<SourceDigest>,
    /// Hex SHA-256 of this state's compact JSON with this field empty.
    pub state_sha256: String,
    /// Outer steps taken.
    pub step: usize,
}

impl RunState {
    fn own_digest(&self) -> Result<String> {
        let unsealed = Self {
            state_sha256: String::new(),
            ..self.clone()
        };
        Ok(sha256(&serde_json::to_vec(&unsealed)?))
    }

    /// Records the digests of `dir`'s [`CHECKPOINT_FILES`] and of the state itself, and writes
    /// `dir/state.json` (inside a checkpoint folder being written: the checkpoint protocol syncs
    /// and renames the folder as a whole).
    pub fn seal_and_write(mut self, dir: &Path) -> Result<()> {
        self.files = CHECKPOINT_FILES
            .iter()
            .map(|f| Ok((f.to_string(), sha256_file(&dir.join(f))?.1)))
            .collect::<Result<_>>()?;
        self.state_sha256 = self.own_digest()?;
        let path = dir.join("state.json");
        std::fs::write(&path, serde_json::to_string_pretty(&self)?).map_err(io_error(&path))
    }

    /// Reads `dir/state.json` and checks it against its own digest and every file against the
    /// digest it records; the error names the file that differs.
    pub fn verify(dir: &Path) -> Result<Self> {
        let path = dir.join("state.json");
        let state: Self = serde_json::from_str(&read_to_string(&path)?)
            .map_err(|e| Error::Data(format!("{}: {e}", path.display())))?;
        if state.own_digest()? != state.state_sha256 {
            return Err(Error::Data(format!(
                "{}: changed after it was written (its SHA-256 differs from the one it records)",
                path.display()
            )));
        }
        for f in CHECKPOINT_FILES {
            let file = dir.join(f);
            let recorded = state.files.get(f).ok_or_else(|| {
                Error::Data(format!("{}: records no digest of {f}", path.display()))
            })?;
            if &sha256_file(&file)?.1 != recorded {
                return Err(Error::Data(format!(
                    "{}: changed or damaged (its SHA-256 differs from the one {} records)",
                    file.display(),
                    path.display()
                )));
            }
        }
        Ok(state)
    }
}

/// The checkpoint a resume of the run in `out` takes: the newest `step-N` folder that passes
/// [`RunState::verify`], with its state. Every folder skipped, and every entry that is not a
/// checkpoint, is named in a warning on standard error; none is removed.
pub fn newest_valid(out: &Path) -> Result<(PathBuf, RunState)> {
    let (candidates, warnings) = checkpoint::candidates(out)?;
    let mut skipped = Vec::new();
    for w in warnings {
        crate::warn(&w);
    }
    for (step, dir) in candidates {
        match RunState::verify(&dir) {
            Ok(state) if state.step == step => return Ok((dir, state)),
            Ok(state) => {
                crate::warn(&format!(
                    "skipping checkpoint {}: its state.json is for step {}",
                    dir.display(),
                    state.step
                ));
                skipped.push(dir.display().to_string());
            }
            Err(e) => {
                crate::warn(&format!("skipping checkpoint {}: {e}", dir.display()));
                skipped.push(dir.display().to_string());
            }
        }
    }
    Err(Error::Data(if skipped.is_empty() {
        format!(
            "no checkpoint in {} (expected {}/checkpoints/step-N): the run stopped before its first checkpoint; --force starts it again",
            out.display(),
            out.display()
        )
    } else {
        format!(
            "no valid checkpoint in {}: {} failed verification (see the warnings above); nothing was removed",
            out.display(),
            skipped.join(", ")
        )
    }))
}

/// The checkpoint a resume of the run in `out` would load ([`newest_valid`]).
pub fn checkpoint_dir(out: &Path) -> Result<PathBuf> {
    Ok(newest_valid(out)?.0)
}

/// Checks the checkpoint's `config.json` (Hugging Face names) against the model shape its
/// configuration names; an edited or foreign file is an error naming the key.
pub(super) fn check_model_config(dir: &Path, cfg: &TrainConfig) -> Result<()> {
    let path = dir.join("config.json");
    let text = read_to_string(&path)?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::Data(format!("{}: {e}", path.display())))?;
    let shape = LlamaConfig::preset(&cfg.preset)?;
    let expected = serde_json::to_value(&shape)?;
    for (key, want) in expected.as_object().into_iter().flatten() {
        if json.get(key) != Some(want) {
            return Err(Error::Data(format!(
                "{}: `{key}` is {}, but the run's preset `{}` has {want}",
                path.display(),
                json.get(key)
                    .map_or("missing".to_string(), |v| v.to_string()),
                cfg.preset
            )));
        }
    }
    Ok(())
}

/// What a resumed run may change. Every field in `given` (a [`TrainConfig`] field name) was
/// set by the user: `steps`, `eval_every` and `checkpoint_every` take the new value (more
/// steps move the schedule's end); any other field must equal the checkpoint's, or the resume
/// is refused with a message naming it (the model shape, the variant, the data and the
/// optimizer settings are the run's identity).
#[derive(Clone, Debug, Default)]
pub struct ResumeRequest {
    /// The configuration the command line and config file describe.
    pub config: Option<TrainConfig>,
    /// The fields of `config` the user set explicitly.
    pub given: Vec<String>,
    /// Resume even when a source file differs from the one the checkpoint recorded (the user
    /// says the change is intended; the next checkpoints record the new files).
    pub allow_changed_data: bool,
}

impl ResumeRequest {
    /// Refuses a resume whose source files differ from those the checkpoint recorded, naming
    /// the first that differs, unless [`ResumeRequest::allow_changed_data`].
    pub(super) fn check_sources(
        &self,
        recorded: &[SourceDigest],
        now: &[SourceDigest],
    ) -> Result<()> {
        if self.allow_changed_data {
            return Ok(());
        }
        for (i, n) in now.iter().enumerate() {
            match recorded.get(i) {
                Some(r) if r == n => {}
                Some(r) => {
                    return Err(Error::Data(format!(
                        "source `{}` ({}) has changed since the checkpoint ({} bytes, SHA-256 {} then; {} bytes, {} now): a resume would not continue the same run; --allow-changed-data resumes anyway",
                        n.name,
                        n.path.display(),
                        r.bytes,
                        &r.sha256[..12.min(r.sha256.len())],
                        n.bytes,
                        &n.sha256[..12.min(n.sha256.len())]
                    )))
                }
                None => {
                    return Err(Error::Data(format!(
                        "source `{}` ({}) was not recorded in the checkpoint",
                        n.name,
                        n.path.display()
                    )))
                }
            }
        }
        Ok(())
    }

    const CHANGEABLE: [&'static str; 3] = ["steps", "eval_every", "checkpoint_every"];

    pub(super) fn apply(&self, saved: TrainConfig, step: usize) -> Result<TrainConfig> {
        let Some(requested) = &self.config else {
            return Ok(saved);
        };
        let (mut merged, asked) = (
            serde_json::to_value(&saved)?,
            serde_json::to_value(requested)?,
        );
        for field in &self.given {
            let (old, new) = (&merged[field.as_str()], &asked[field.as_str()]);
            if old == new {
                continue;
            }
            if !Self::CHANGEABLE.contains(&field.as_str()) {
                return Err(Error::InvalidArgument {
                    name: "resume",
                    reason: format!(
                        "`{field}` cannot change on resume: the checkpoint has {old}, the command asks {new}"
                    ),
                });
            }
            merged[field.as_str()] = new.clone();
        }
        let cfg: TrainConfig = serde_json::from_value(merged)?;
        ensure(cfg.steps >= step, "steps", || {
            format!(
                "the checkpoint is at step {step}; --steps {} would go back",
                cfg.steps
            )
        })?;
        Ok(cfg)
    }
}
