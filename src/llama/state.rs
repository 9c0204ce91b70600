//! What a checkpoint records of a run besides its tensors (`state.json`), and what a resume may
//! change of it.

use super::checkpoint;
use super::config::TrainConfig;
use super::model::LlamaConfig;
use crate::error::{ensure, Error, Result};
use crate::fsio::{io_error, read_to_string};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A checkpoint's `state.json`: where the run stands and the configuration it runs under.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunState {
    /// Steps the outer optimizer's moments have seen (0 before its first step).
    pub adam_steps: u64,
    /// The run's configuration.
    pub config: TrainConfig,
    /// The crate version that wrote the checkpoint.
    pub crate_version: String,
    /// Outer steps taken.
    pub step: usize,
}

impl RunState {
    /// Reads `dir/state.json`; a missing or malformed field is an error naming the file.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("state.json");
        serde_json::from_str(&read_to_string(&path)?)
            .map_err(|e| Error::Data(format!("{}: {e}", path.display())))
    }

    /// Writes `dir/state.json` (inside a checkpoint folder being written: the checkpoint
    /// protocol syncs and renames the folder as a whole).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join("state.json");
        std::fs::write(&path, serde_json::to_string_pretty(self)?).map_err(io_error(&path))
    }
}

/// The checkpoint a resume of the run in `out` would load: its newest complete checkpoint.
pub fn checkpoint_dir(out: &Path) -> Result<PathBuf> {
    checkpoint::latest(out)
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
}

impl ResumeRequest {
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
