//! The verdict is derived from the instances: holds, holds under a condition, or fails.

use nexus_lab::report::{ClaimKind, ClaimReport, Figure, Instance, Role, Variant, Verdict};

fn report(instances: Vec<Instance>) -> ClaimReport {
    ClaimReport::assemble(
        "test",
        "nowhere",
        "a claim",
        ClaimKind::UpperBound,
        1,
        true,
        serde_json::json!({}),
        vec![
            Variant::new("stated", "", Role::Statement),
            Variant::new("weaker", "", Role::Condition),
            Variant::new("probe", "", Role::Info),
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
        inst("weaker", 1.0, true),
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
        inst("weaker", 1.0, true),
    ]);
    assert_eq!(r.verdict, Verdict::HoldsUnder);
    assert_eq!(r.deciding_variant, "weaker");
    assert_eq!(
        r.counterexample.unwrap().params["d"],
        2.0,
        "the smallest failing instance is reported"
    );

    let r = report(vec![inst("stated", 1.0, false), inst("weaker", 1.0, false)]);
    assert_eq!(r.verdict, Verdict::Fails);

    let r = report(vec![inst("weaker", 1.0, true)]);
    assert_eq!(
        r.verdict,
        Verdict::HoldsUnder,
        "a statement with no instance does not hold"
    );
}
