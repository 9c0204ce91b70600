//! The worst-case search and its closed forms: every closed-form construction attains its
//! constant through the claim's own check; the search recovers known worst cases (positive
//! controls) and finds a deliberately too-tight bound violated (negative control); a saved
//! instance re-checks to the same ratio; Thm 2.3's closed-form gap agrees with Monte Carlo.

use nalgebra::DMatrix;
use nexus_lab::claims::common::stationary_point;
use nexus_lab::claims::thm_2_3::quadratic_law_gap;
use nexus_lab::tasks::{Objective, Quadratic};
use nexus_lab::tightness::{problems, recheck, row, search, spd2, Budget, Problem, ROUNDING};
use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};

/// A budget that recovers the controls in well under a second each.
const BUDGET: Budget = Budget {
    starts: 4,
    iterations: 1500,
};

/// Each closed-form instance's ratio, through the claim's check, is its stated sharp constant
/// to float64 rounding (1e-12 relative: a few dozen operations on O(1) numbers, and an
/// eigen-solver's residual for the spectral norms).
#[test]
fn closed_forms_attain_their_constants() {
    let mut checked = 0;
    for p in problems::all() {
        let Some(c) = p.closed_form() else { continue };
        let r = p.ratio(&c.instance).unwrap();
        assert!(
            (r - c.sharp).abs() <= 1e-12 * c.sharp.max(1.0),
            "{}: closed form gives {r}, stated sharp constant {}",
            p.key(),
            c.sharp
        );
        checked += 1;
    }
    // Every problem but the Eq. 78 remainder bound and Thm 8.3's remainder constant (no closed
    // form known) has one.
    assert_eq!(checked, problems::all().len() - 5);
}

/// Positive controls of the search: Thm 3.1's cosine inequality (worst case 1/K) and the
/// descent lemma (worst case 1), from random starts, recovered within 1e-3.
#[test]
fn the_search_recovers_known_worst_cases() {
    let controls: Vec<(Box<dyn Problem>, f64)> = vec![
        (Box::new(problems::Thm31 { k: 3, cosine: true }), 1.0 / 3.0),
        (Box::new(problems::Descent { factor: 1.0 }), 1.0),
    ];
    for (p, known) in controls {
        let w = search(p.as_ref(), BUDGET, 7).unwrap();
        assert!(
            (w.ratio - known).abs() <= 1e-3 && w.ratio <= known + ROUNDING,
            "{}: found {}, known worst case {known}",
            p.key(),
            w.ratio
        );
    }
}

/// Negative control: the descent lemma with twice the true constant is found violated (a ratio
/// of 2 exists), and the row says so.
#[test]
fn the_search_finds_a_too_tight_bound_violated() {
    let p = problems::Descent { factor: 2.0 };
    let w = search(&p, BUDGET, 7).unwrap();
    assert!(w.ratio > 1.0 + 0.5, "found only {}", w.ratio);
    let r = row(&p, &w, None, "x.json", w.ratio).unwrap();
    assert!(r.violated);
}

/// A saved worst case, loaded from its JSON, re-checks to the ratio the search reported, and the
/// file carries the instance itself (Hessians and points), not only the search's coordinates.
#[test]
fn a_saved_instance_rechecks() {
    let p = problems::Eq4;
    let w = search(
        &p,
        Budget {
            starts: 1,
            iterations: 200,
        },
        3,
    )
    .unwrap();
    let text = serde_json::to_string_pretty(&w).unwrap();
    assert!(text.contains("hessians") && text.contains("point"));
    assert_eq!(recheck(&p, &text).unwrap(), w.ratio);
}

/// Thm 2.3's closed-form gap on a two-point Hessian law against Monte Carlo over the law itself
/// (tasks drawn, the exact stationary point, a fresh downstream task): within 4.5 standard
/// errors (a two-sided normal tail of 7e-6).
#[test]
fn the_closed_form_gap_matches_monte_carlo() {
    let support = [spd2(0.5, 2.0, 0.3), spd2(1.5, 0.7, 1.1)];
    let (k, s) = (3usize, 0.8f64);
    let exact = quadratic_law_gap(&support, k, s * s).unwrap();
    let mut rng = nexus_lab::rng_for(11, "closed-form-gap");
    let draw = |rng: &mut rand::rngs::ChaCha8Rng| -> Quadratic {
        let h: DMatrix<f64> = support[rng.random_range(0..support.len())].clone();
        let c = nalgebra::DVector::from_fn(2, |_, _| {
            s * Distribution::<f64>::sample(&StandardNormal, rng)
        });
        Quadratic::new(h, c, 0.0).unwrap()
    };
    let n = 40_000;
    let gaps: Vec<f64> = (0..n)
        .map(|_| {
            let train: Vec<Quadratic> = (0..k).map(|_| draw(&mut rng)).collect();
            let x = stationary_point(&train).unwrap();
            let c_train = train.iter().map(|t| t.loss(&x).unwrap()).sum::<f64>() / k as f64;
            draw(&mut rng).loss(&x).unwrap() - c_train
        })
        .collect();
    let ci = nexus_lab::stats::mean_ci(&gaps, 0.999).unwrap();
    assert!(
        (ci.mean - exact).abs() <= 4.5 * ci.std_err,
        "Monte Carlo {} +- {}, closed form {exact}",
        ci.mean,
        ci.std_err
    );
    // And the isotropic special case a sigma^2 / K.
    let iso = quadratic_law_gap(&[DMatrix::identity(3, 3) * 2.0], 4, 0.25).unwrap();
    assert!((iso - 2.0 * 3.0 * 0.25 / 4.0).abs() < 1e-14);
}

/// Thm 8.1's sharp ratio at the review's example (L = 1, mu = 0.1, gamma = 1/(L+mu), T = 2):
/// the worst case 0.6830 against the bound's 0.6967, attained by the search too.
#[test]
fn thm81_worst_case_at_half_the_largest_step() {
    let p = problems::Thm81 {
        gamma: 1.0 / 1.1,
        steps: 2,
    };
    let sharp = nexus_lab::claims::thm_8_1::sharp_rate(0.1, 1.0, 1.0 / 1.1, 2);
    let bound = nexus_lab::claims::thm_8_1::bound(0.1, 1.0, 1.0 / 1.1, 2, 1.0);
    assert!((sharp - 0.6830).abs() < 5e-5 && (bound - 0.6967).abs() < 5e-5);
    let w = search(&p, BUDGET, 5).unwrap();
    assert!((w.ratio - sharp / bound).abs() <= 1e-6, "{}", w.ratio);
}
