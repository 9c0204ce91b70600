//! Llama pretraining with Nexus in Candle: the model, its parameters as a [`crate::params::ParamVec`],
//! data sources, and the training loop (which reuses [`crate::nexus`] and [`crate::optim`]).

mod model;
mod params;

pub use model::{Llama, LlamaConfig};
pub use params::TensorParams;
