//! Llama pretraining with Nexus in Candle: the model, its parameters as a [`crate::params::ParamVec`],
//! data sources, and the training loop (which reuses [`crate::nexus`] and [`crate::optim`]).

mod backprop;
pub mod checkpoint;
mod data;
pub mod fused;
mod model;
mod muon;
mod params;
mod runtime;
mod train;

pub use data::{DataSet, Skill, Source};
pub use fused::Kernels;
pub use model::{cross_entropy, softmax_last_dim, Llama, LlamaConfig};
pub use muon::Muon;
pub use params::TensorParams;
pub use runtime::configure_cpu;
pub use train::{
    checkpoint_dir, Evaluation, FileSource, Precision, ResumeRequest, Schedule, StepStats,
    TrainConfig, Trainer, Variant, VALIDATION_ROWS,
};
