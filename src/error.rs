//! The crate's one error type. Every fallible oracle and every check returns [`Result`].

use thiserror::Error;

/// Errors raised by the library. Binaries print them and exit with code 2.
#[derive(Debug, Error)]
pub enum Error {
    /// A caller passed a value outside the domain the algorithm or theorem is defined on.
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument { name: &'static str, reason: String },
    /// Two operands have different shapes.
    #[error("dimension mismatch: expected {expected}, got {got}")]
    DimensionMismatch { expected: usize, got: usize },
    /// A parameter, gradient or loss became NaN or infinite.
    #[error("non-finite value in {0}")]
    NonFinite(&'static str),
    /// An iterative solver stopped before reaching its tolerance.
    #[error("{solver} did not converge after {iterations} iterations (residual {residual:e})")]
    NoConvergence {
        solver: &'static str,
        iterations: usize,
        residual: f64,
    },
    /// A claim id that is not in the registry.
    #[error("unknown claim id `{0}` (known: {1})")]
    UnknownClaim(String, String),
    /// Reading or writing a report, a figure or a checkpoint failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// Serialising a report failed.
    #[error("serialisation error: {0}")]
    Json(#[from] serde_json::Error),
    /// A Candle tensor operation failed.
    #[error("tensor error: {0}")]
    Candle(String),
    /// A training run produced a NaN or infinite loss; the last checkpoint, if any, is kept.
    #[error("non-finite loss {loss} at step {step}; stopped, {}", diverged_note(.checkpoint))]
    Diverged {
        step: usize,
        loss: f64,
        /// The step of the run's last checkpoint, if it has one.
        checkpoint: Option<usize>,
    },
    /// Bad training data or configuration.
    #[error("data error: {0}")]
    Data(String),
    /// Drawing a figure failed.
    #[error("plotting error: {0}")]
    Plot(String),
}

/// Shorthand used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Returns an [`Error::InvalidArgument`] unless `ok` holds.
pub fn ensure(ok: bool, name: &'static str, reason: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            name,
            reason: reason(),
        })
    }
}

/// Checks that a scalar is finite.
pub fn ensure_finite(x: f64, what: &'static str) -> Result<f64> {
    if x.is_finite() {
        Ok(x)
    } else {
        Err(Error::NonFinite(what))
    }
}

fn diverged_note(checkpoint: &Option<usize>) -> String {
    match checkpoint {
        Some(step) => format!("the last checkpoint (step {step}) is left intact"),
        None => "before any checkpoint was written (nothing to resume from)".into(),
    }
}
