//! Every derivative of every family against central finite differences, and the stated
//! constants against direct measurement.
//!
//! Tolerances: a central difference with step h = 1e-5 has truncation error at most
//! h^2 M / 6 (M the next derivative's bound, at most ~10 here, so ~2e-10) and rounding error
//! about eps |f| / h ~ 2e-11 |f|; `1e-6 (1 + |value|)` covers both with a wide margin while
//! still catching any wrong term (whose size is O(1)).

use nalgebra::DVector;
use nexus_lab::rng_for;
use nexus_lab::strategies;
use nexus_lab::tasks::{
    spectral_norm, symmetric_extremes, Family, Rotated, Scaled, Task, TaskDistribution, Tilted,
};
use proptest::prelude::*;
use rand_distr::{Distribution, StandardNormal};

const H: f64 = 1e-5;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * (1.0 + a.abs().max(b.abs()))
}

fn random_vec(d: usize, rng: &mut impl rand::Rng) -> DVector<f64> {
    DVector::from_fn(d, |_, _| Distribution::<f64>::sample(&StandardNormal, rng))
}

fn check_task(
    task: &dyn Task,
    x: &DVector<f64>,
    u: &DVector<f64>,
    v: &DVector<f64>,
) -> Result<(), TestCaseError> {
    let d = x.len();
    let g = task.gradient(x).unwrap();
    let h = task.hessian(x).unwrap();
    for i in 0..d {
        let e = DVector::from_fn(d, |j, _| if i == j { H } else { 0.0 });
        let fd = (task.loss(&(x + &e)).unwrap() - task.loss(&(x - &e)).unwrap()) / (2.0 * H);
        prop_assert!(
            close(g[i], fd),
            "gradient[{i}] {} vs finite difference {fd}",
            g[i]
        );
        let fd_col =
            (task.gradient(&(x + &e)).unwrap() - task.gradient(&(x - &e)).unwrap()) / (2.0 * H);
        for j in 0..d {
            prop_assert!(
                close(h[(j, i)], fd_col[j]),
                "hessian[{j},{i}] {} vs {}",
                h[(j, i)],
                fd_col[j]
            );
        }
    }
    let hv = task.hessian_vector(x, v).unwrap();
    let hv_dense = &h * v;
    for j in 0..d {
        prop_assert!(
            close(hv[j], hv_dense[j]),
            "hessian_vector[{j}] {} vs H v {}",
            hv[j],
            hv_dense[j]
        );
    }
    // D^3 L[u, v, .] is the derivative of H(x) v along u.
    let t = task.third_contract(x, u, v).unwrap();
    let fd_t = (task.hessian_vector(&(x + u * H), v).unwrap()
        - task.hessian_vector(&(x - u * H), v).unwrap())
        / (2.0 * H);
    for j in 0..d {
        prop_assert!(
            close(t[j], fd_t[j]),
            "third_contract[{j}] {} vs {}",
            t[j],
            fd_t[j]
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(strategies::config(48))]

    #[test]
    fn derivatives_match_finite_differences(family in strategies::family(), d in 1usize..7, spread in 0.0f64..2.0, seed in strategies::seed()) {
        let mut rng = rng_for(seed, "derivatives");
        let task = TaskDistribution::new(family, d, spread).unwrap().sample(&mut rng).unwrap();
        let x = task.minimizer() + random_vec(d, &mut rng);
        let (u, v) = (random_vec(d, &mut rng), random_vec(d, &mut rng));
        check_task(task.as_ref(), &x, &u, &v)?;
    }

    /// The batched oracle (`gradients`, matrix products where the family has them) equals the
    /// gradient column by column, for every family and through every wrapper: to float64
    /// rounding of a length-d product on O(1) numbers (1e-12 relative).
    #[test]
    fn batched_gradients_match_columnwise(family in strategies::family(), d in 1usize..9, columns in 0usize..6, seed in strategies::seed()) {
        let mut rng = rng_for(seed, "batched");
        let task = TaskDistribution::new(family, d, 1.0).unwrap().sample(&mut rng).unwrap();
        let rotation = nexus_lab::tasks::random_orthogonal(d, &mut rng);
        let tilt = random_vec(d, &mut rng);
        let xs = nalgebra::DMatrix::from_fn(d, columns, |_, _| Distribution::<f64>::sample(&StandardNormal, &mut rng));
        let wrapped: Vec<Box<dyn Task + '_>> = vec![
            Box::new(Scaled::new(&task, 1.7).unwrap()),
            Box::new(Rotated::new(&task, rotation).unwrap()),
            Box::new(Tilted::new(&task, tilt).unwrap()),
        ];
        for t in std::iter::once(&task).chain(&wrapped) {
            let batched = t.gradients(&xs).unwrap();
            prop_assert_eq!(batched.shape(), (d, columns));
            for (j, x) in xs.column_iter().enumerate() {
                let g = t.gradient(&x.into_owned()).unwrap();
                prop_assert!((batched.column(j) - &g).norm() <= 1e-12 * (1.0 + g.norm()), "column {}: {} vs {}", j, batched.column(j), g);
            }
        }
        prop_assert!(task.gradients(&nalgebra::DMatrix::zeros(d + 1, 2)).is_err());
    }

    /// The minimizer is stationary, and the stated constants bound what we measure at random
    /// points: curvature in [lambda_min, lambda_max], Hessian Lipschitz with rho, third
    /// derivative bounded by M_3 on unit vectors, all over the whole family.
    #[test]
    fn stated_constants_hold(family in strategies::family(), d in 1usize..7, spread in 0.0f64..2.0, seed in strategies::seed()) {
        let mut rng = rng_for(seed, "constants");
        let dist = TaskDistribution::new(family, d, spread).unwrap();
        let task = dist.sample(&mut rng).unwrap();
        let bounds = dist.bounds();
        let own = task.curvature();
        prop_assert!(own.lambda_min >= bounds.lambda_min * (1.0 - 1e-12) && own.lambda_max <= bounds.lambda_max * (1.0 + 1e-12));
        let g = task.gradient(task.minimizer()).unwrap();
        prop_assert!(g.norm() <= 1e-10, "gradient at the minimizer {}", g.norm());
        for _ in 0..4 {
            let x = task.minimizer() + random_vec(d, &mut rng) * 2.0;
            let y = task.minimizer() + random_vec(d, &mut rng) * 2.0;
            let hx = task.hessian(&x).unwrap();
            let (lo, hi) = symmetric_extremes(&hx);
            prop_assert!(lo >= own.lambda_min * (1.0 - 1e-10) && hi <= own.lambda_max * (1.0 + 1e-10), "spectrum [{lo}, {hi}] outside {:?}", own);
            let lip = spectral_norm(&(hx - task.hessian(&y).unwrap()));
            prop_assert!(lip <= own.rho * (&x - &y).norm() + 1e-12, "Hessian Lipschitz {lip} > rho |x-y|");
            let (u, v, w) = (random_vec(d, &mut rng).normalize(), random_vec(d, &mut rng).normalize(), random_vec(d, &mut rng).normalize());
            let third = task.third_contract(&x, &u, &v).unwrap().dot(&w);
            prop_assert!(third.abs() <= own.m3 + 1e-12, "third derivative {third} > M3 {}", own.m3);
        }
    }
}

#[test]
fn quadratic_spectrum_is_prescribed_and_hessians_do_not_commute() {
    let mut rng = rng_for(7, "spectrum");
    let dist = TaskDistribution::new(Family::Anisotropic { mu: 0.5, l: 4.0 }, 5, 1.0).unwrap();
    let a = dist.sample(&mut rng).unwrap();
    let b = dist.sample(&mut rng).unwrap();
    let x = DVector::zeros(5);
    let (ha, hb) = (a.hessian(&x).unwrap(), b.hessian(&x).unwrap());
    let (lo, hi) = symmetric_extremes(&ha);
    assert!(
        (lo - 0.5).abs() < 1e-12 && (hi - 4.0).abs() < 1e-12,
        "spectrum [{lo}, {hi}]"
    );
    let commutator = (&ha * &hb - &hb * &ha).norm();
    assert!(
        commutator > 1e-3,
        "Hessians commute: ||[A, B]|| = {commutator}"
    );
}

#[test]
fn bad_task_parameters_are_errors() {
    assert!(
        TaskDistribution::new(Family::Isotropic { a: 1.0 }, 3, -1.0).is_err(),
        "negative spread"
    );
    assert!(
        TaskDistribution::new(Family::Isotropic { a: 0.0 }, 3, 1.0).is_err(),
        "zero curvature"
    );
    assert!(
        TaskDistribution::new(Family::Isotropic { a: 1.0 }, 0, 1.0).is_err(),
        "zero dimension"
    );
    assert!(
        TaskDistribution::new(Family::Anisotropic { mu: 2.0, l: 1.0 }, 3, 1.0).is_err(),
        "mu > L"
    );
    assert!(
        TaskDistribution::new(
            Family::Logistic {
                samples: 0,
                reg: 0.1
            },
            3,
            1.0
        )
        .is_err(),
        "no samples"
    );
    assert!(
        TaskDistribution::new(Family::Isotropic { a: f64::NAN }, 3, 1.0).is_err(),
        "NaN curvature"
    );
    assert!(
        TaskDistribution::new(Family::Isotropic { a: 1.0 }, 3, f64::INFINITY).is_err(),
        "infinite spread"
    );
    let task = TaskDistribution::new(Family::Isotropic { a: 1.0 }, 3, 1.0)
        .unwrap()
        .sample(&mut rng_for(1, "bad"))
        .unwrap();
    assert!(
        task.gradient(&DVector::zeros(4)).is_err(),
        "dimension mismatch"
    );
}
