//! The verdict is derived from the instances (holds, holds under a restriction, fails as
//! stated with a corrected form, fails, inconclusive), and Monte Carlo instances are decided with
//! family-wise error control.

use nexus_lab::report::verdict::holm;
use nexus_lab::report::{
    ClaimKind, ClaimMeta, ClaimReport, Figure, Hypothesis, Instance, Outcome, Reading, Role, Test,
    Verdict,
};

fn report(instances: Vec<Instance>) -> ClaimReport {
    const TEST: ClaimMeta = ClaimMeta {
        id: "test",
        reference: "nowhere",
        statement: "a claim",
        kind: ClaimKind::UpperBound,
    };
    ClaimReport::assemble(
        &TEST,
        1,
        true,
        serde_json::json!({}),
        vec![
            Reading::new("stated", "", Role::Statement),
            Reading::new("part", "", Role::Restriction),
            Reading::correction("other formula", "", "y = 2x"),
            Reading::new("probe", "", Role::Info),
        ],
        instances,
        Figure::MeasuredVsClaimed,
    )
    .unwrap()
}

fn inst(variant: &str, d: f64, holds: bool) -> Instance {
    Instance::new("fam", variant, &[("d", d), ("K", 2.0)], 1.0, 2.0, holds)
}

#[test]
fn verdicts_follow_the_instances() {
    let r = report(vec![
        inst("stated", 1.0, true),
        inst("part", 1.0, true),
        inst("probe", 1.0, false),
    ]);
    assert_eq!(
        r.verdict,
        Verdict::Holds,
        "an informative reading never decides"
    );
    assert_eq!(r.tightness.unwrap().median, 0.5);

    let r = report(vec![
        inst("stated", 3.0, false),
        inst("stated", 2.0, false),
        inst("stated", 1.0, true),
        inst("part", 1.0, true),
        inst("other formula", 1.0, true),
    ]);
    assert_eq!(r.verdict, Verdict::HoldsUnderRestriction);
    assert_eq!(r.deciding_reading, "part");
    assert_eq!(r.corrected_form.as_deref(), Some("other formula"));
    assert_eq!(
        r.counterexample.unwrap().params["d"],
        2.0,
        "the smallest failing instance is reported"
    );

    let r = report(vec![
        inst("stated", 1.0, false),
        inst("part", 1.0, false),
        inst("other formula", 1.0, true),
    ]);
    assert_eq!(r.verdict, Verdict::CorrectedFormHolds);
    assert_eq!(r.verdict.label(), "fails as stated; corrected form holds");

    let r = report(vec![
        inst("stated", 1.0, false),
        inst("other formula", 1.0, false),
    ]);
    assert_eq!(r.verdict, Verdict::Fails);

    let r = report(vec![inst("part", 1.0, true)]);
    assert_eq!(
        r.verdict,
        Verdict::HoldsUnderRestriction,
        "a statement with no instance does not hold"
    );
}

fn tested(variant: &str, mean: f64, std_err: f64, hypothesis: Hypothesis) -> Instance {
    Instance::tested(
        "fam",
        variant,
        &[("d", 1.0)],
        0.0,
        Test {
            mean,
            std_err,
            n: 100,
            hypothesis,
        },
    )
}

#[test]
fn holm_rejects_step_down() {
    // alpha = 0.05, m = 3: thresholds 0.0167, 0.025, 0.05 in order of the p-values.
    assert_eq!(holm(&[0.01, 0.04, 0.02], 0.05), vec![true, true, true]);
    assert_eq!(holm(&[0.01, 0.04, 0.026], 0.05), vec![true, false, false]);
    assert_eq!(holm(&[0.02, 0.001, 0.9], 0.05), vec![true, true, false]);
    assert_eq!(holm(&[0.03, 0.001, 0.9], 0.05), vec![false, true, false]);
}

#[test]
fn equalities_need_precision_to_hold() {
    let eq = Hypothesis::Equal {
        value: 1.0,
        margin: 0.1,
    };
    // Mean 1.0 with standard error 0.005: the family-wise interval (t quantile about 3.4 at
    // 0.999, n = 100) lies inside 1 +- 0.1.
    let r = report(vec![tested("stated", 1.0, 0.005, eq)]);
    assert_eq!(r.verdict, Verdict::Holds);
    // Same mean, standard error 0.2: not rejected, but the interval is wider than the margin.
    let r = report(vec![tested("stated", 1.0, 0.2, eq)]);
    assert_eq!(r.verdict, Verdict::Inconclusive);
    let needed = r.instances[0].needed_samples.unwrap();
    assert!(needed > 100.0 * 16.0, "{needed}");
    // Mean 1.5 with standard error 0.01: rejected.
    let r = report(vec![tested("stated", 1.5, 0.01, eq)]);
    assert_eq!(r.verdict, Verdict::Fails);
}

/// A stated tolerance ("the same loss, |delta| < 0.01") is not an identity: a small but
/// significant deviation inside the tolerance holds; only a deviation beyond it fails.
#[test]
fn tolerances_fail_only_beyond_the_margin() {
    let within = Hypothesis::Within {
        value: 0.0,
        margin: 0.01,
    };
    // 0.003 +- 0.0005: significantly non-zero, well inside the tolerance.
    let r = report(vec![tested("stated", 0.003, 0.0005, within)]);
    assert_eq!(r.verdict, Verdict::Holds);
    // The same as an identity fails.
    let eq = Hypothesis::Equal {
        value: 0.0,
        margin: 0.01,
    };
    assert_eq!(
        report(vec![tested("stated", 0.003, 0.0005, eq)]).verdict,
        Verdict::Fails
    );
    // -0.006 +- 0.02: undecided, with the sample size that would decide.
    let r = report(vec![tested("stated", -0.006, 0.02, within)]);
    assert_eq!(r.verdict, Verdict::Inconclusive);
    assert!(r.instances[0].needed_samples.is_some());
    // A mean at the edge of the tolerance stays undecided at any sample size.
    let r = report(vec![tested("stated", -0.0100, 0.02, within)]);
    assert_eq!(r.verdict, Verdict::Inconclusive);
    assert_eq!(r.instances[0].needed_samples, None);
    // A mean outside the tolerance, not yet rejected: decided when the interval shrinks past
    // the margin, at n (half-width / distance to the margin)^2.
    let r = report(vec![tested("stated", -0.0126, 0.005, within)]);
    assert_eq!(r.verdict, Verdict::Inconclusive);
    let (lo, hi) = r.instances[0].ci.unwrap();
    let n = (100.0 * ((hi - lo) / 2.0 / 0.0026_f64).powi(2)).ceil();
    assert_eq!(r.instances[0].needed_samples, Some(n));
    // 0.05 +- 0.005: beyond the tolerance.
    assert_eq!(
        report(vec![tested("stated", 0.05, 0.005, within)]).verdict,
        Verdict::Fails
    );
}

#[test]
fn effects_hold_when_significant_and_fail_when_excluded() {
    let effect = Hypothesis::Effect {
        lower_is_better: true,
        size: 0.1,
    };
    let r = report(vec![tested("stated", -0.5, 0.01, effect)]);
    assert_eq!(r.verdict, Verdict::Holds);
    // A null effect pinned to +-0.03: an effect of size 0.1 is excluded, so "no effect".
    let r = report(vec![tested("stated", 0.0, 0.005, effect)]);
    assert_eq!(r.verdict, Verdict::Fails);
    // Too noisy to tell.
    let r = report(vec![tested("stated", -0.05, 0.05, effect)]);
    assert_eq!(r.verdict, Verdict::Inconclusive);
    assert_eq!(r.instances[0].outcome(), Outcome::Undecided);
}

/// An effect that is significant but smaller than stated answers both questions: the direction
/// holds (the reading counts it as holding), the stated size is excluded. The same estimate
/// without significance fails, with the samples that would show it.
#[test]
fn a_significant_effect_below_the_stated_size_holds_with_a_smaller_effect() {
    let effect = Hypothesis::Effect {
        lower_is_better: false,
        size: 0.1,
    };
    // 0.03 +- 0.005 at 100 samples: interval about [0.013, 0.047], 0 and 0.1 both excluded.
    let r = report(vec![tested("stated", 0.03, 0.005, effect)]);
    assert_eq!(r.instances[0].outcome(), Outcome::Smaller);
    assert!(r.instances[0].below_stated_size);
    assert_eq!(r.verdict, Verdict::Holds);
    assert_eq!(r.instances[0].samples_to_detect(), None);
    // 0.02 +- 0.015: interval about [-0.031, 0.071], 0 inside, 0.1 excluded.
    let r = report(vec![tested("stated", 0.02, 0.015, effect)]);
    let i = &r.instances[0];
    let (lo, hi) = i.ci.unwrap();
    assert!(lo < 0.0 && hi < 0.1, "[{lo}, {hi}]");
    assert_eq!(i.outcome(), Outcome::Fails);
    // The interval's half-width must shrink to the estimate: n (half-width / mean)^2.
    let n = (100.0 * ((hi - lo) / 2.0 / 0.02_f64).powi(2)).ceil();
    assert_eq!(i.samples_to_detect(), Some(n));
    // An estimate pointing the other way would never be shown.
    let r = report(vec![tested("stated", -0.02, 0.015, effect)]);
    assert_eq!(r.instances[0].samples_to_detect(), None);
}

#[test]
fn multiplicity_is_controlled_within_a_reading() {
    // p = 3e-4 alone is rejected at 0.001; among ten instances whose others are null, Holm's
    // first threshold is 1e-4, so it is not.
    let bound = Hypothesis::AtMost { value: 0.0 };
    let t = 3.55 * 0.01; // about p = 3e-4 one-sided with 99 degrees of freedom
    let r = report(vec![tested("stated", t, 0.01, bound)]);
    assert_eq!(r.verdict, Verdict::Fails);
    let mut many = vec![tested("stated", t, 0.01, bound)];
    many.extend((0..9).map(|_| tested("stated", -0.01, 0.01, bound)));
    let r = report(many);
    assert_eq!(r.verdict, Verdict::Holds);
}

/// Positive controls (Reptile's expansion, the descent lemma) come out `holds`, and the same
/// with a deliberate error comes out `fails`, through the claims' own engine and verdict code.
#[test]
fn controls_hold_and_deliberate_errors_fail() {
    let settings = nexus_lab::claims::Settings {
        quick: true,
        ..Default::default()
    };
    let bar = indicatif::ProgressBar::hidden();
    for id in [
        "ctl-reptile",
        "ctl-reptile-wrong-sign",
        "ctl-descent",
        "ctl-descent-wrong-constant",
    ] {
        let r = nexus_lab::claims::find(id)
            .unwrap()
            .evaluate(&settings, &bar)
            .unwrap();
        let expected = if id.contains("wrong") {
            Verdict::Fails
        } else {
            Verdict::Holds
        };
        assert_eq!(r.verdict, expected, "{id}");
        assert_eq!(r.control_passed(), Some(true), "{id}");
    }
}
