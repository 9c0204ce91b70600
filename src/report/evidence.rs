//! The evidence an instance carries and what it can conclude: a Monte Carlo [`Test`] of a
//! [`Hypothesis`], an instance's [`Outcome`] and a claim's [`Verdict`].

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// What a Monte Carlo reading asserts about the mean it estimates.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub enum Hypothesis {
    /// `mean = value`, decided to within `margin`.
    Equal { value: f64, margin: f64 },
    /// `|mean - value| <= margin`: a tolerance the claim itself states (for example "the same
    /// loss, |delta| < 0.01"), not an identity.
    Within { value: f64, margin: f64 },
    /// `mean <= value`.
    AtMost { value: f64 },
    /// `mean >= value`.
    AtLeast { value: f64 },
    /// A nonzero effect in one direction: `mean < 0` when `lower_is_better`, else `mean > 0`;
    /// "no effect" is decided when an effect of magnitude `size` is excluded.
    Effect { lower_is_better: bool, size: f64 },
}

/// A Monte Carlo instance's evidence.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Test {
    /// Sample mean.
    pub mean: f64,
    /// Its standard error.
    pub std_err: f64,
    /// Number of i.i.d. samples (the t distribution has `n - 1` degrees of freedom).
    pub n: usize,
    /// What the reading asserts.
    pub hypothesis: Hypothesis,
}

impl Test {
    /// The evidence of a [`crate::stats::MeanCi`].
    pub fn of(ci: &crate::stats::MeanCi, hypothesis: Hypothesis) -> Self {
        Self {
            mean: ci.mean,
            std_err: ci.std_err,
            n: ci.n,
            hypothesis,
        }
    }

    fn t_dist(&self) -> Option<StudentsT> {
        StudentsT::new(0.0, 1.0, (self.n.max(2) - 1) as f64).ok()
    }

    /// Standardised distance of the mean from `value`; infinite for a zero standard error.
    fn t_stat(&self, value: f64) -> f64 {
        let diff = self.mean - value;
        if self.std_err > 0.0 {
            diff / self.std_err
        } else if diff == 0.0 {
            0.0
        } else {
            diff.signum() * f64::INFINITY
        }
    }

    /// The p-value of the test that decides this instance: for a bound or an identity, of
    /// rejecting the reading; for an effect, of rejecting "no effect in the claimed direction".
    pub fn p_value(&self) -> f64 {
        let Some(t) = self.t_dist() else { return 1.0 };
        let upper = |x: f64| 1.0 - t.cdf(x);
        match self.hypothesis {
            Hypothesis::Equal { value, .. } => (2.0 * upper(self.t_stat(value).abs())).min(1.0),
            // One-sided, against the edge of the tolerance on the side of the mean.
            Hypothesis::Within { value, margin } => {
                if self.mean >= value {
                    upper(self.t_stat(value + margin))
                } else {
                    t.cdf(self.t_stat(value - margin))
                }
            }
            Hypothesis::AtMost { value } => upper(self.t_stat(value)),
            Hypothesis::AtLeast { value } => t.cdf(self.t_stat(value)),
            Hypothesis::Effect {
                lower_is_better, ..
            } => {
                if lower_is_better {
                    t.cdf(self.t_stat(0.0))
                } else {
                    upper(self.t_stat(0.0))
                }
            }
        }
    }

    /// For an effect: the mean measured in the claimed direction (positive when it points the
    /// claimed way); `None` for other hypotheses.
    pub(super) fn toward_claim(&self) -> Option<f64> {
        match self.hypothesis {
            Hypothesis::Effect {
                lower_is_better, ..
            } => Some(if lower_is_better {
                -self.mean
            } else {
                self.mean
            }),
            _ => None,
        }
    }

    /// Two-sided interval at level `1 - alpha`.
    pub fn interval(&self, alpha: f64) -> (f64, f64) {
        let q = self
            .t_dist()
            .map_or(f64::INFINITY, |t| t.inverse_cdf(1.0 - alpha / 2.0));
        let half = q * self.std_err;
        (self.mean - half, self.mean + half)
    }
}

/// What one instance's evidence says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The reading holds here.
    Holds,
    /// The reading fails here.
    Fails,
    /// The evidence cannot decide at this sample size.
    Undecided,
    /// An effect reading holds here with a smaller effect than stated: significant in the
    /// claimed direction, with an effect of the stated size excluded. It counts as holding.
    Smaller,
}

impl Outcome {
    /// In words, as the reports print it.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Holds => "holds",
            Outcome::Smaller => "holds with a smaller effect than the paper's",
            Outcome::Fails => "fails",
            Outcome::Undecided => "undecided",
        }
    }
}

/// Samples needed for an interval of the same level to shrink from `width` to fit in `room`
/// on one side of the mean (the standard error scales as `1 / sqrt(n)`).
pub(super) fn needed(test: &Test, width: f64, room: f64) -> Option<f64> {
    (room > 0.0 && width > 0.0).then(|| (test.n as f64 * (width / (2.0 * room)).powi(2)).ceil())
}

/// The verdict on a claim.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Verdict {
    /// The statement holds on every instance measured.
    Holds,
    /// The statement fails, but its own formula holds on a named part of its setting.
    #[serde(alias = "HoldsUnder")]
    HoldsUnderRestriction,
    /// The statement fails; a different formula, constant or identity holds.
    CorrectedFormHolds,
    /// The statement fails and no tested restriction or correction holds.
    Fails,
    /// No instance refutes the statement but some cannot decide at the sample size used.
    Inconclusive,
}

impl Verdict {
    /// Human-readable form.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::HoldsUnderRestriction => "holds under a restriction",
            Verdict::CorrectedFormHolds => "fails as stated; corrected form holds",
            Verdict::Fails => "fails",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}
