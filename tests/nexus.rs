//! Nexus (Algorithm 1) and the outer optimizers: degenerate cases, a hand-worked trajectory,
//! golden AdamW values, the zero-gradient rule and bad input.

use nalgebra::{dvector, DVector};
use nexus_lab::nexus::{
    inner_step, pseudo_gradient, sample_indices, InnerStep, Nexus, NexusConfig, Sampling,
};
use nexus_lab::optim::{AdamW, AdamWConfig, NormalizedAdam, Optimizer, Sgd};
use nexus_lab::rng_for;
use nexus_lab::tasks::{Family, IsotropicQuadratic, Objective, Quadratic, TaskDistribution};

/// Float64 rounding of a few operations on O(1) numbers.
const EPS: f64 = 1e-14;

fn assert_close(a: &DVector<f64>, b: &DVector<f64>, tol: f64) {
    assert!((a - b).norm() <= tol, "{a} vs {b}");
}

fn two_basins() -> Vec<IsotropicQuadratic> {
    vec![
        IsotropicQuadratic::new(1.0, dvector![1.0, 0.0], 0.0).unwrap(),
        IsotropicQuadratic::new(1.0, dvector![0.0, 1.0], 0.0).unwrap(),
    ]
}

#[test]
fn k1_with_unit_sgd_is_one_normalized_step() {
    let mut rng = rng_for(3, "k1");
    let mut tasks = TaskDistribution::new(Family::Anisotropic { mu: 0.5, l: 3.0 }, 4, 1.0)
        .unwrap()
        .sample_many(3, &mut rng)
        .unwrap();
    let x0 = dvector![0.3, -0.2, 0.5, 1.0];
    for source in 0..3 {
        let gamma = 0.37;
        let mut nexus =
            Nexus::new(NexusConfig::new(1, gamma).unwrap(), Sgd::new(1.0).unwrap()).unwrap();
        let mut x = x0.clone();
        nexus.step_with(&mut x, &mut tasks, &[source]).unwrap();
        let g = tasks[source].gradient(&x0).unwrap();
        assert_close(&x, &(&x0 - &g * (gamma / g.norm())), EPS);
    }
}

#[test]
fn zero_outer_learning_rate_changes_nothing() {
    let mut tasks = two_basins();
    let x0 = dvector![0.2, 0.7];
    let mut x = x0.clone();
    let mut sgd = Nexus::new(NexusConfig::new(4, 0.1).unwrap(), Sgd::new(0.0).unwrap()).unwrap();
    sgd.step(&mut x, &mut tasks, &mut rng_for(1, "lr0"))
        .unwrap();
    assert_eq!(x, x0);
    let cfg = AdamWConfig {
        lr: 0.0,
        ..AdamWConfig::default()
    };
    let mut adam = Nexus::new(NexusConfig::new(4, 0.1).unwrap(), AdamW::new(cfg).unwrap()).unwrap();
    adam.step(&mut x, &mut tasks, &mut rng_for(1, "lr0"))
        .unwrap();
    assert_eq!(x, x0);
}

/// Two unit basins centred at e1 and e2, start 0, gamma = 1/2, indices (1, 2):
/// step 1: g = (-1, 0), x1 = (1/2, 0); step 2: g = (1/2, -1), |g| = sqrt(5)/2,
/// x2 = (1/2 - 1/(2 sqrt 5), 1/sqrt 5); pg = x0 - x2.
#[test]
fn hand_worked_two_step_trajectory() {
    let mut tasks = two_basins();
    let cfg = NexusConfig::new(2, 0.5).unwrap();
    let s5 = 5f64.sqrt();
    let expected_end = dvector![0.5 - 1.0 / (2.0 * s5), 1.0 / s5];
    let pg = pseudo_gradient(&mut tasks[..], &DVector::zeros(2), &[0, 1], &cfg).unwrap();
    assert_close(&pg, &(-&expected_end), EPS);
    // Outer SGD with lr 1 lands at the inner loop's end point.
    let mut x = DVector::zeros(2);
    Nexus::new(cfg, Sgd::new(1.0).unwrap())
        .unwrap()
        .step_with(&mut x, &mut tasks, &[0, 1])
        .unwrap();
    assert_close(&x, &expected_end, EPS);
    // Nexus-Dot on the same path: x1 = (1, 0) * 1/2, g2 = (1/2, -1), x2 = (1/4, 1/2).
    let dot = NexusConfig {
        inner_step: InnerStep::Raw,
        ..cfg
    };
    let pg = pseudo_gradient(&mut tasks[..], &DVector::zeros(2), &[0, 1], &dot).unwrap();
    assert_close(&pg, &dvector![-0.25, -0.5], EPS);
}

#[test]
fn zero_gradient_takes_no_inner_step() {
    let cfg = NexusConfig::new(1, 0.5).unwrap();
    let mut x = dvector![1.0, 2.0];
    inner_step(&mut x, &DVector::zeros(2), &cfg).unwrap();
    assert_eq!(x, dvector![1.0, 2.0]);
    // At a task's own minimizer the whole inner loop on that task stays put.
    let mut tasks = two_basins();
    let pg = pseudo_gradient(&mut tasks[..], &dvector![1.0, 0.0], &[0, 0, 0], &cfg).unwrap();
    assert_eq!(pg, DVector::zeros(2));
    let nan = dvector![f64::NAN, 0.0];
    assert!(
        inner_step(&mut x, &nan, &cfg).is_err(),
        "a NaN gradient is an error, not a silent step"
    );
}

#[test]
fn sampling_draws_valid_indices() {
    let mut rng = rng_for(11, "sampling");
    let without = NexusConfig {
        sampling: Sampling::WithoutReplacement,
        ..NexusConfig::new(5, 0.1).unwrap()
    };
    for _ in 0..50 {
        let mut idx = sample_indices(&without, 5, &mut rng).unwrap();
        idx.sort();
        assert_eq!(idx, vec![0, 1, 2, 3, 4]);
    }
    let with = NexusConfig::new(6, 0.1).unwrap();
    let idx = sample_indices(&with, 3, &mut rng).unwrap();
    assert_eq!(idx.len(), 6);
    assert!(idx.iter().all(|&i| i < 3));
    assert!(
        sample_indices(&without, 4, &mut rng).is_err(),
        "K > sources without replacement"
    );
    assert!(sample_indices(&with, 0, &mut rng).is_err(), "no sources");
}

#[test]
fn bad_configuration_is_an_error() {
    assert!(NexusConfig::new(0, 0.1).is_err(), "K = 0");
    assert!(NexusConfig::new(2, 0.0).is_err(), "gamma = 0");
    assert!(NexusConfig::new(2, -1.0).is_err(), "gamma < 0");
    assert!(NexusConfig::new(2, f64::NAN).is_err(), "gamma NaN");
    assert!(Sgd::new(-1.0).is_err());
    assert!(AdamW::<DVector<f64>>::new(AdamWConfig {
        beta1: 1.0,
        ..AdamWConfig::default()
    })
    .is_err());
    assert!(AdamW::<DVector<f64>>::new(AdamWConfig {
        eps: 0.0,
        ..AdamWConfig::default()
    })
    .is_err());
    let mut tasks = two_basins();
    let mut nexus = Nexus::new(NexusConfig::new(2, 0.1).unwrap(), Sgd::new(1.0).unwrap()).unwrap();
    let mut x = dvector![f64::INFINITY, 0.0];
    assert!(
        nexus.step_with(&mut x, &mut tasks, &[0, 1]).is_err(),
        "non-finite parameters"
    );
    let mut y = dvector![0.0, 0.0];
    assert!(
        nexus.step_with(&mut y, &mut tasks, &[0, 7]).is_err(),
        "source index out of range"
    );
}

/// Golden values computed by hand from the AdamW update (PyTorch's form):
/// step 1 with g = (0.5, -2): m = 0.1 g, v = 0.05 g^2, m_hat = g, v_hat = g^2,
/// x <- x (1 - lr wd) - lr g / (|g| + eps) = x (1 - 1e-3 * 0.2) - 1e-3 sign(g) (eps negligible).
/// Step 2 with g' = (1, 1): m = 0.09 g + 0.1 g', v = 0.0475 g^2 + 0.05 g'^2,
/// bc1 = 0.19, bc2 = 0.0975.
#[test]
fn adamw_matches_hand_computed_steps() {
    let cfg = AdamWConfig::default();
    let mut opt = AdamW::new(cfg).unwrap();
    let mut x = dvector![1.0, 1.0];
    let g1 = dvector![0.5, -2.0];
    opt.step(&mut x, &g1).unwrap();
    let x1 = dvector![1.0 * (1.0 - 2e-4) - 1e-3, 1.0 * (1.0 - 2e-4) + 1e-3];
    assert_close(&x, &x1, 1e-12);
    let g2 = dvector![1.0, 1.0];
    opt.step(&mut x, &g2).unwrap();
    let m = &g1 * 0.09 + &g2 * 0.1;
    let v = g1.component_mul(&g1) * 0.0475 + g2.component_mul(&g2) * 0.05;
    let dir = DVector::from_fn(2, |i, _| (m[i] / 0.19) / ((v[i] / 0.0975).sqrt() + 1e-10));
    let x2 = &x1 * (1.0 - 2e-4) - dir * 1e-3;
    assert_close(&x, &x2, 1e-12);
}

#[test]
fn normalized_adam_ignores_gradient_scale() {
    let cfg = AdamWConfig {
        weight_decay: 0.0,
        ..AdamWConfig::default()
    };
    let (mut a, mut b) = (
        NormalizedAdam::new(cfg).unwrap(),
        NormalizedAdam::new(cfg).unwrap(),
    );
    let (mut xa, mut xb) = (dvector![0.3, -0.1], dvector![0.3, -0.1]);
    for g in [dvector![1.0, 2.0], dvector![-0.5, 0.25]] {
        a.step(&mut xa, &g).unwrap();
        b.step(&mut xb, &(g * 1000.0)).unwrap();
    }
    assert_close(&xa, &xb, 1e-15);
}

/// Nexus with AdamW drives a strongly convex multi-task problem to its training minimizer's
/// neighbourhood: the training loss goes down.
#[test]
fn nexus_with_adamw_reduces_training_loss() {
    let mut rng = rng_for(5, "descent");
    let mut tasks: Vec<Quadratic> = (0..4)
        .map(|i| {
            let h = nexus_lab::tasks::spd_with_spectrum(3, 0.5, 2.0, &mut rng).unwrap();
            Quadratic::new(h, DVector::from_element(3, i as f64 * 0.3), 0.0).unwrap()
        })
        .collect();
    let loss = |tasks: &[Quadratic], x: &DVector<f64>| {
        tasks.iter().map(|t| t.loss(x).unwrap()).sum::<f64>() / 4.0
    };
    let mut x = DVector::from_element(3, 3.0);
    let before = loss(&tasks, &x);
    let mut nexus = Nexus::new(
        NexusConfig::new(4, 0.05).unwrap(),
        AdamW::new(AdamWConfig {
            lr: 0.05,
            weight_decay: 0.0,
            ..AdamWConfig::default()
        })
        .unwrap(),
    )
    .unwrap();
    for _ in 0..300 {
        nexus.step(&mut x, &mut tasks, &mut rng).unwrap();
    }
    let after = loss(&tasks, &x);
    assert!(after < 0.05 * before, "loss {before} -> {after}");
}

/// The training path (`pseudo_gradient`, one `axpy` per inner step) and the exact engine
/// (`expectation::exact`, `step_direction` along shared prefixes) agree: the mean of
/// `pseudo_gradient` over all K^K index sequences equals `exact` to float64 rounding (the two
/// accumulate the same steps in a different order: 1e-13 relative).
#[test]
fn mean_pseudo_gradient_over_all_sequences_is_the_exact_expectation() {
    for (family, inner) in [
        (
            Family::Anisotropic { mu: 0.5, l: 3.0 },
            InnerStep::Normalized,
        ),
        (
            Family::Logistic {
                samples: 16,
                reg: 0.1,
            },
            InnerStep::Normalized,
        ),
        (Family::Anisotropic { mu: 0.5, l: 3.0 }, InnerStep::Raw),
    ] {
        let mut rng = rng_for(11, "one-inner-step");
        let mut tasks = TaskDistribution::new(family, 4, 1.0)
            .unwrap()
            .sample_many(3, &mut rng)
            .unwrap();
        let x = DVector::from_element(4, 2.0);
        let cfg = NexusConfig {
            inner_step: inner,
            ..NexusConfig::new(3, 0.05).unwrap()
        };
        let exact = nexus_lab::expectation::exact(&tasks, &x, &cfg).unwrap();
        let mut sum = DVector::zeros(4);
        for code in 0..27usize {
            let idx = [code % 3, (code / 3) % 3, code / 9];
            sum += pseudo_gradient(&mut tasks, &x, &idx, &cfg).unwrap();
        }
        let mean = sum / 27.0;
        assert!(
            (&mean - &exact.mean).norm() <= 1e-13 * exact.mean.norm(),
            "{inner:?}: {mean} vs {}",
            exact.mean
        );
    }
}

/// The level-by-level engine against an explicit enumeration of the sequences, each run along
/// the training path (`pseudo_gradient`): with and without replacement, in one walk and split
/// into subtrees by a small memory budget (down to one column per level), on the four families.
/// The two sum the same steps in a different order: 1e-13 relative.
#[test]
fn exact_engine_matches_explicit_enumeration_in_any_split() {
    for family in Family::standard() {
        let mut rng = rng_for(12, "exact-split");
        let d = 5;
        let mut tasks = TaskDistribution::new(family, d, 1.0)
            .unwrap()
            .sample_many(4, &mut rng)
            .unwrap();
        let x = DVector::from_fn(d, |i, _| 1.0 + 0.3 * i as f64);
        for sampling in [Sampling::WithReplacement, Sampling::WithoutReplacement] {
            let cfg = NexusConfig {
                sampling,
                ..NexusConfig::new(3, 0.2).unwrap()
            };
            let (mut sum, mut count) = (DVector::zeros(d), 0usize);
            for code in 0..64usize {
                let idx = [code % 4, (code / 4) % 4, code / 16];
                let distinct = idx[0] != idx[1] && idx[1] != idx[2] && idx[0] != idx[2];
                if sampling == Sampling::WithoutReplacement && !distinct {
                    continue;
                }
                sum += pseudo_gradient(&mut tasks, &x, &idx, &cfg).unwrap();
                count += 1;
            }
            let mean = sum / count as f64;
            for budget in [nexus_lab::expectation::FRONTIER_BYTES, 8 * d * 5, 1] {
                let e = nexus_lab::expectation::exact_within(&tasks, &x, &cfg, budget).unwrap();
                assert_eq!(e.sequences, count as u64);
                let nodes = match sampling {
                    Sampling::WithReplacement => 4 + 16 + 64,
                    Sampling::WithoutReplacement => 4 + 12 + 24,
                };
                assert_eq!(e.inner_steps, nodes);
                assert!(
                    (&mean - &e.mean).norm() <= 1e-13 * mean.norm(),
                    "{} {sampling:?} budget {budget}: {mean} vs {}",
                    family.id(),
                    e.mean
                );
            }
        }
    }
}

/// A normalized inner step moves exactly gamma, whatever the gradient's scale.
#[test]
fn a_normalized_inner_step_has_length_gamma() {
    let cfg = NexusConfig::new(1, 0.3).unwrap();
    for g in [
        dvector![3.0, 4.0],
        dvector![1e-6, 0.0],
        dvector![-200.0, 7.0],
    ] {
        let mut x = dvector![1.0, -1.0];
        let start = x.clone();
        inner_step(&mut x, &g, &cfg).unwrap();
        assert!(((&start - &x).norm() - 0.3).abs() <= EPS, "{g}");
        let dir = nexus_lab::nexus::step_direction(&g, &cfg).unwrap();
        assert!((dir.norm() - 0.3).abs() <= EPS);
    }
}

/// The correction strength training measures (`first_order_part`, the correction `pg - first`)
/// against the exact engine, on every task family: averaged over all `K^K` index sequences the
/// correction equals `E[pg]` (the engine's) minus the first-order term from its own formula
/// (`expansion::first_order`) to float64 rounding; and as gamma shrinks, the correction of the
/// expectation approaches the second-order term Eq. 81 predicts (relative error of order
/// `K gamma`: below 5% at gamma = 1e-3 and ten times smaller at 1e-4).
#[test]
fn correction_strength_matches_the_exact_engine() {
    use nexus_lab::claims::common::draw_instance;
    use nexus_lab::expansion::{eq81_expansion, first_order, Local};
    use nexus_lab::expectation::exact;
    use nexus_lab::nexus::{first_order_part, CorrectionStrength};
    for family in Family::standard() {
        let k = 3;
        let (mut tasks, x) = draw_instance(family, 4, k, &mut rng_for(5, "correction")).unwrap();
        let local = Local::at(&tasks, &x).unwrap();
        let mut relative_errors = Vec::new();
        for gamma in [1e-3, 1e-4] {
            let cfg = NexusConfig::new(k, gamma).unwrap();
            let (mut mean, mut count) = (DVector::zeros(4), 0.0);
            for code in 0..k.pow(k as u32) {
                let seq: Vec<usize> = (0..k).map(|p| (code / k.pow(p as u32)) % k).collect();
                let pg = pseudo_gradient(tasks.as_mut_slice(), &x, &seq, &cfg).unwrap();
                let first = first_order_part(tasks.as_mut_slice(), &x, &seq, &cfg).unwrap();
                let strength = CorrectionStrength::of(&pg, &first).unwrap();
                assert!(strength.relative >= 0.0 && strength.cosine <= 1.0 + 1e-12);
                mean += pg - first;
                count += 1.0;
            }
            mean /= count;
            let truth = exact(&tasks, &x, &cfg).unwrap().mean - first_order(&local, k, gamma);
            // Both are differences of O(gamma) vectors of norm about K gamma: rounding.
            assert!(
                (&mean - &truth).norm() <= 1e-12 * gamma * k as f64,
                "{}: {} vs {}",
                family.id(),
                mean,
                truth
            );
            let predicted = eq81_expansion(&local, k, gamma) - first_order(&local, k, gamma);
            relative_errors.push((&truth - &predicted).norm() / predicted.norm());
        }
        assert!(
            relative_errors[0] < 0.05,
            "{}: {relative_errors:?}",
            family.id()
        );
        assert!(
            relative_errors[1] < relative_errors[0] / 5.0,
            "{}: {relative_errors:?}",
            family.id()
        );
    }
}
