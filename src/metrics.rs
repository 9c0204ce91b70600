//! Multi-task metrics of a point: what the paper tracks (Table 4, Fig. 7).

use crate::error::{ensure, Result};
use crate::tasks::Task;
use nalgebra::DVector;

/// Mean loss `(1/N) sum_k L_k(x)`.
pub fn mean_loss<T: Task>(tasks: &[T], x: &DVector<f64>) -> Result<f64> {
    ensure(!tasks.is_empty(), "tasks", || {
        "need at least one task".into()
    })?;
    Ok(tasks.iter().map(|t| t.loss(x)).sum::<Result<f64>>()? / tasks.len() as f64)
}

/// Mean pairwise cosine similarity of the task gradients over pairs `i < j`. A zero gradient
/// has no direction; its pairs are skipped. `None` when no pair has two nonzero gradients.
pub fn mean_pairwise_cosine<T: Task>(tasks: &[T], x: &DVector<f64>) -> Result<Option<f64>> {
    let grads = tasks
        .iter()
        .map(|t| t.gradient(x))
        .collect::<Result<Vec<_>>>()?;
    let (mut sum, mut pairs) = (0.0, 0usize);
    for i in 0..grads.len() {
        for j in i + 1..grads.len() {
            let denom = grads[i].norm() * grads[j].norm();
            if denom > 0.0 {
                sum += grads[i].dot(&grads[j]) / denom;
                pairs += 1;
            }
        }
    }
    Ok((pairs > 0).then(|| sum / pairs as f64))
}

/// Closeness `(1/N) sum_k ||x - x_k*||^2` to the tasks' minimizers.
pub fn closeness<T: Task>(tasks: &[T], x: &DVector<f64>) -> Result<f64> {
    ensure(!tasks.is_empty(), "tasks", || {
        "need at least one task".into()
    })?;
    Ok(tasks
        .iter()
        .map(|t| (x - t.minimizer()).norm_squared())
        .sum::<f64>()
        / tasks.len() as f64)
}
