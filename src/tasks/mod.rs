//! Differentiable tasks with exact derivatives, and the distributions training and downstream
//! tasks are drawn from.
//!
//! Every family here is strongly convex with curvature bounds that hold on all of `R^d`, so the
//! paper's constants can be stated exactly: `lambda_min <= u^T H(x) u <= lambda_max` for unit
//! `u`, `||H(x) - H(y)|| <= rho ||x - y||`, and `|D^3 L(x)[u, v, w]| <= m3` for unit `u, v, w`.
//! Gradient-norm bounds (`G_min`, `G`) depend on the region and come from
//! [`TaskConstants::over_ball`].

mod distribution;
mod elementary;
mod logistic;
mod quadratic;
mod separable;
mod solve;
mod task;
mod wrappers;

pub use distribution::{Family, MinimaLaw, TaskDistribution};
pub use logistic::LogisticRegression;
pub use quadratic::{random_orthogonal, spd_with_spectrum, IsotropicQuadratic, Quadratic};
pub use separable::SoftplusSeparable;
pub use solve::{minimize_average, spectral_norm, symmetric_extremes};
pub use task::{BoxedTask, CurvatureBounds, Objective, Task, TaskConstants};
pub use wrappers::{Rotated, Scaled, Tilted};
