//! Deriving a verdict from the instances, never writing it by hand.
//!
//! **Per reading.** A reading *holds* when every one of its instances holds, *fails* when one of
//! them fails, and is *undecided* otherwise (an instance whose evidence cannot decide at the
//! sample size used).
//!
//! **Per claim**, in this order:
//! - `holds`: the statement reading holds;
//! - `inconclusive`: the statement reading is undecided (no instance fails, some cannot decide);
//! - `holds under a restriction`: the statement fails, but a [`Role::Restriction`] reading (the
//!   statement's own formula on a named part of its setting) holds;
//! - `fails as stated; corrected form holds`: no restriction holds, but a [`Role::Correction`]
//!   reading (a different formula, constant or identity) holds;
//! - `fails` otherwise.
//!
//! **Monte Carlo instances** carry a [`Test`]: sample mean, standard error and size, and the
//! hypothesis the reading makes. Within one reading, the instances' p-values are corrected for
//! multiplicity by Holm's step-down procedure at family-wise level `alpha = 1 - CI_LEVEL`, and
//! the intervals written to the report are Bonferroni intervals at level `1 - alpha / m` (`m`
//! tested instances in the reading), so that all of a reading's intervals hold together with
//! probability at least `1 - alpha`. The tests of a bound or an effect are one-sided and the
//! intervals two-sided, so a significant effect's interval can just reach zero (a one-sided p
//! between `alpha / 2m` and `alpha / m`):
//! - [`Hypothesis::AtMost`] / [`Hypothesis::AtLeast`] (a bound): fails when Holm rejects the bound,
//!   holds otherwise;
//! - [`Hypothesis::Equal`] (an identity): fails when Holm rejects it; holds when the family-wise
//!   interval lies inside `value +- margin` (the data exclude a deviation of the margin's size);
//!   undecided otherwise, with the sample size that would decide;
//! - [`Hypothesis::Within`] (a stated tolerance): fails when Holm rejects it (the mean lies
//!   beyond the margin); holds when the family-wise interval lies inside `value +- margin`;
//!   undecided otherwise, with the sample size that would decide;
//! - [`Hypothesis::Effect`] (an effect in a stated direction): two questions, "is there an effect
//!   in that direction?" (Holm rejects "no effect") and "is an effect of the stated size
//!   excluded?" (the family-wise interval excludes it: an equivalence test). The instance
//!   - holds ([`Outcome::Holds`]) when the effect is significant and its stated size is not
//!     excluded;
//!   - holds with a smaller effect than stated ([`Outcome::Smaller`]) when the effect is
//!     significant and its stated size excluded: the claimed direction holds, the size does
//!     not, and a reading counts it as holding (the paper's sizes come from other scales);
//!   - fails when the stated size is excluded and no effect is significant;
//!   - is undecided otherwise.
//!
//!   A true effect well below the stated size makes the first question a matter of power:
//!   the same data can come out `Smaller` at one master seed and `Fails` at another, while the
//!   second question (the stated size excluded) is answered the same at both.
//!   [`Instance::samples_to_detect`] says how many samples would show such an effect.
//!
//! An undecided instance records the sample size that would decide it at the observed mean:
//! for a tolerance or an identity, the interval shrinking inside the margin (the estimate lies
//! inside it) or past it (the estimate lies outside); for an effect, whichever of its two
//! questions the estimate is further from deciding against.

use super::claim_report::{ClaimMeta, ClaimReport, Figure, Instance, Reading, Role, Tightness};
use super::evidence::{needed, Hypothesis, Outcome, Verdict};
use crate::error::Result;
use crate::stats::CI_LEVEL;

impl Instance {
    /// This instance's outcome, as decided by [`decide_tests`] for tested instances.
    pub fn outcome(&self) -> Outcome {
        if self.holds && self.below_stated_size {
            Outcome::Smaller
        } else if self.holds {
            Outcome::Holds
        } else if self.undecided {
            Outcome::Undecided
        } else {
            Outcome::Fails
        }
    }

    /// For an effect instance that is not significant but whose estimate lies in the claimed
    /// direction: the samples for its family-wise interval to exclude 0 at the observed mean
    /// and spread (the sample size at which an effect of the estimated size would be shown).
    pub fn samples_to_detect(&self) -> Option<f64> {
        let test = self.test?;
        let toward = test.toward_claim()?;
        let (lo, hi) = self.ci?;
        (!self.holds)
            .then(|| needed(&test, hi - lo, toward))
            .flatten()
    }
}

/// Holm's step-down procedure: which of `p` are rejected at family-wise level `alpha`.
pub fn holm(p: &[f64], alpha: f64) -> Vec<bool> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut rejected = vec![false; m];
    for (rank, &i) in order.iter().enumerate() {
        if p[i] <= alpha / (m - rank) as f64 {
            rejected[i] = true;
        } else {
            break;
        }
    }
    rejected
}

/// Decides every tested instance of one reading (see the module docs) and writes its
/// family-wise interval, its outcome and, when undecided, the sample size that would decide.
pub fn decide_tests(instances: &mut [&mut Instance]) {
    let alpha = 1.0 - CI_LEVEL;
    let tested: Vec<usize> = (0..instances.len())
        .filter(|&i| instances[i].test.is_some())
        .collect();
    let m = tested.len();
    if m == 0 {
        return;
    }
    let p: Vec<f64> = tested
        .iter()
        .map(|&i| instances[i].test.expect("tested").p_value())
        .collect();
    let rejected = holm(&p, alpha);
    for (k, &i) in tested.iter().enumerate() {
        let inst = &mut *instances[i];
        let test = inst.test.expect("tested");
        let (lo, hi) = test.interval(alpha / m as f64);
        inst.ci = Some((lo, hi));
        inst.p_value = Some(p[k]);
        inst.needed_samples = None;
        inst.below_stated_size = false;
        let (holds, undecided) = match test.hypothesis {
            Hypothesis::AtMost { .. } | Hypothesis::AtLeast { .. } => (!rejected[k], false),
            Hypothesis::Equal { value, margin } | Hypothesis::Within { value, margin } => {
                if rejected[k] {
                    (false, false)
                } else if lo >= value - margin && hi <= value + margin {
                    (true, false)
                } else {
                    // Inside the margin, the interval must shrink inside it; outside, past it.
                    let room = (margin - (test.mean - value).abs()).abs();
                    inst.needed_samples = needed(&test, hi - lo, room);
                    (false, true)
                }
            }
            Hypothesis::Effect {
                lower_is_better,
                size,
            } => {
                let excludes_effect = if lower_is_better {
                    lo > -size
                } else {
                    hi < size
                };
                inst.below_stated_size = excludes_effect;
                if rejected[k] {
                    (true, false)
                } else if excludes_effect {
                    (false, false)
                } else {
                    // Distances of the estimate from 0 and from the stated size, in the
                    // claimed direction: the larger is the question decided first.
                    let toward = test.toward_claim().expect("an effect");
                    let room = toward.max(size - toward);
                    inst.needed_samples = needed(&test, hi - lo, room);
                    (false, true)
                }
            }
        };
        inst.holds = holds;
        inst.undecided = undecided;
    }
}

impl ClaimReport {
    /// Assembles the report of the claim `meta` from its readings and instances, and derives its
    /// verdict, deciding reading, tightness and counterexample from the instances.
    pub fn assemble(
        meta: &ClaimMeta,
        seed: u64,
        quick: bool,
        settings: serde_json::Value,
        readings: Vec<Reading>,
        instances: Vec<Instance>,
        figure: Figure,
    ) -> Result<Self> {
        let mut report = Self {
            id: meta.id.into(),
            reference: meta.reference.into(),
            statement: meta.statement.into(),
            kind: meta.kind,
            crate_version: crate::VERSION.into(),
            seed,
            quick,
            settings,
            readings,
            instances,
            verdict: Verdict::Fails,
            deciding_reading: String::new(),
            corrected_form: None,
            control: None,
            replications: Vec::new(),
            proof_fault: None,
            scale: None,
            families: Vec::new(),
            tightness: None,
            counterexample: None,
            findings: Vec::new(),
            figure,
        };
        report.derive()?;
        Ok(report)
    }

    /// Outcome of one reading over its instances (`None` when it has none): [`Outcome::Smaller`]
    /// instances count as holding, so it is never `Smaller` itself.
    pub fn reading_outcome(&self, name: &str) -> Option<Outcome> {
        let mut any = false;
        let mut undecided = false;
        for i in self.instances_of(name) {
            any = true;
            match i.outcome() {
                Outcome::Fails => return Some(Outcome::Fails),
                Outcome::Undecided => undecided = true,
                Outcome::Holds | Outcome::Smaller => {}
            }
        }
        any.then_some(if undecided {
            Outcome::Undecided
        } else {
            Outcome::Holds
        })
    }

    /// The first reading of `role` that holds.
    fn first_holding(&self, role: Role) -> Option<String> {
        self.readings
            .iter()
            .find(|v| v.role == role && self.reading_outcome(&v.name) == Some(Outcome::Holds))
            .map(|v| v.name.clone())
    }

    /// Decides the tested instances, then derives the verdict, the deciding reading, the
    /// corrected form that holds (if any), the families, the tightness and the smallest
    /// counterexample to the statement.
    pub fn derive(&mut self) -> Result<()> {
        let names: Vec<String> = self.readings.iter().map(|v| v.name.clone()).collect();
        for name in &names {
            let mut of_reading: Vec<&mut Instance> = self
                .instances
                .iter_mut()
                .filter(|i| &i.reading == name)
                .collect();
            decide_tests(&mut of_reading);
        }
        let statement = self
            .readings
            .iter()
            .find(|v| v.role == Role::Statement)
            .ok_or_else(|| crate::error::Error::InvalidArgument {
                name: "readings",
                reason: format!("{} has no statement reading", self.id),
            })?
            .name
            .clone();
        self.corrected_form = self.first_holding(Role::Correction);
        let (verdict, deciding) = match self.reading_outcome(&statement) {
            Some(Outcome::Holds) => (Verdict::Holds, statement.clone()),
            Some(Outcome::Undecided) => (Verdict::Inconclusive, statement.clone()),
            _ => {
                if let Some(r) = self.first_holding(Role::Restriction) {
                    (Verdict::HoldsUnderRestriction, r)
                } else if let Some(c) = self.corrected_form.clone() {
                    (Verdict::CorrectedFormHolds, c)
                } else {
                    (Verdict::Fails, statement.clone())
                }
            }
        };
        let deciding_instances: Vec<&Instance> = self.instances_of(&deciding).collect();
        let mut families: Vec<String> = deciding_instances
            .iter()
            .map(|i| i.family.clone())
            .collect();
        families.sort();
        families.dedup();
        let ratios: Vec<f64> = deciding_instances.iter().filter_map(|i| i.ratio).collect();
        self.tightness = crate::stats::min_median_max(&ratios)
            .map(|(min, median, max)| Tightness { min, median, max });
        self.counterexample = self
            .instances_of(&statement)
            .filter(|i| i.outcome() == Outcome::Fails)
            .min_by(|a, b| a.size().total_cmp(&b.size()))
            .cloned();
        self.verdict = verdict;
        self.deciding_reading = deciding;
        self.families = families;
        Ok(())
    }
}
