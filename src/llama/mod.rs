//! Llama pretraining with Nexus in Candle: the model, its parameters as a [`crate::params::ParamVec`],
//! data sources, and the training loop (which reuses [`crate::nexus`] and [`crate::optim`]).

mod backprop;
pub mod checkpoint;
mod config;
mod data;
mod eval;
pub mod fused;
mod model;
mod muon;
mod params;
mod runtime;
pub mod serial;
mod state;
mod train;

pub use config::{FileSource, HeldOutSource, Precision, Schedule, TrainConfig, Variant};
pub use data::{DataSet, Skill, Source};
pub use eval::{Evaluation, Minimum, MinimumCriterion, VALIDATION_ROWS};
pub use fused::Kernels;
pub use model::{cross_entropy, softmax_last_dim, Llama, LlamaConfig};
pub use muon::Muon;
pub use params::TensorParams;
pub use runtime::configure_cpu;
pub use state::{
    checkpoint_dir, newest_valid, source_digests, ResumeRequest, RunState, SourceDigest,
    CHECKPOINT_FILES,
};
pub use train::{metrics_up_to, StepStats, Trainer};
