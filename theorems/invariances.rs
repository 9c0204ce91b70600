//! Invariances the exact expectation of the pseudo-gradient must satisfy for any tasks, and
//! whether the claimed expansions respect them. Tolerances: float64 rounding of sums of a few
//! thousand O(1) terms, 1e-12 relative.

use nalgebra::DVector;
use nexus_lab::claims::common::draw_instance;
use nexus_lab::expansion::{eq81_expansion, thm32_stated, Local, Third};
use nexus_lab::expectation::exact;
use nexus_lab::nexus::{InnerStep, NexusConfig};
use nexus_lab::rng_for;
use nexus_lab::strategies;
use nexus_lab::tasks::{random_orthogonal, Rotated, Scaled, Task};
use proptest::prelude::*;

fn close(a: &DVector<f64>, b: &DVector<f64>) -> bool {
    (a - b).norm() <= 1e-12 * (1.0 + b.norm())
}

proptest! {
    #![proptest_config(strategies::config(24))]

    #[test]
    fn permuting_the_tasks_changes_nothing(family in strategies::family(), d in 1usize..6, k in 2usize..5, gamma in 0.01f64..0.5, seed in strategies::seed()) {
        let (mut tasks, x) = draw_instance(family, d, k, &mut rng_for(seed, "perm")).unwrap();
        let cfg = NexusConfig::new(k, gamma).unwrap();
        let before = exact(&tasks, &x, &cfg).unwrap().mean;
        let local = Local::at(&tasks, &x).unwrap();
        let (s0, e0) = (thm32_stated(&local, gamma), eq81_expansion(&local, k, gamma));
        tasks.reverse();
        tasks.rotate_left(1);
        prop_assert!(close(&exact(&tasks, &x, &cfg).unwrap().mean, &before));
        let local = Local::at(&tasks, &x).unwrap();
        prop_assert!(close(&thm32_stated(&local, gamma), &s0) && close(&eq81_expansion(&local, k, gamma), &e0));
    }

    /// Rotating parameter space together with the tasks rotates E[pg] and every expansion.
    #[test]
    fn rotation_is_equivariant(family in strategies::family(), d in 1usize..6, k in 2usize..5, gamma in 0.01f64..0.5, seed in strategies::seed()) {
        let mut rng = rng_for(seed, "rot");
        let (tasks, x) = draw_instance(family, d, k, &mut rng).unwrap();
        let r = random_orthogonal(d, &mut rng);
        let rotated: Vec<_> = tasks.iter().map(|t| Rotated::new(t, r.clone()).unwrap()).collect();
        let rx = &r * &x;
        let cfg = NexusConfig::new(k, gamma).unwrap();
        prop_assert!(close(&exact(&rotated, &rx, &cfg).unwrap().mean, &(&r * exact(&tasks, &x, &cfg).unwrap().mean)));
        let (l0, l1) = (Local::at(&tasks, &x).unwrap(), Local::at(&rotated, &rx).unwrap());
        prop_assert!(close(&thm32_stated(&l1, gamma), &(&r * thm32_stated(&l0, gamma))));
        prop_assert!(close(&eq81_expansion(&l1, k, gamma), &(&r * eq81_expansion(&l0, k, gamma))));
        let (t0, t1) = (Third::new(&tasks, &x, &l0).derived(k).unwrap(), Third::new(&rotated, &rx, &l1).derived(k).unwrap());
        prop_assert!(close(&t1, &(&r * t0)));
    }

    /// Multiplying one task's loss by c > 0 leaves Nexus (normalized steps) and the second- and
    /// third-order terms unchanged, and changes Nexus-Dot.
    #[test]
    fn scaling_a_loss_leaves_nexus_unchanged(family in strategies::family(), d in 1usize..6, k in 2usize..5, gamma in 0.01f64..0.5, c in 0.1f64..10.0, seed in strategies::seed()) {
        prop_assume!((c - 1.0).abs() > 0.05);
        let (tasks, x) = draw_instance(family, d, k, &mut rng_for(seed, "scale")).unwrap();
        let scaled: Vec<Box<dyn Task>> = tasks.iter().enumerate()
            .map(|(i, t)| Box::new(Scaled::new(t, if i == 0 { c } else { 1.0 }).unwrap()) as Box<dyn Task>)
            .collect();
        let cfg = NexusConfig::new(k, gamma).unwrap();
        prop_assert!(close(&exact(&scaled, &x, &cfg).unwrap().mean, &exact(&tasks, &x, &cfg).unwrap().mean));
        let (l0, l1) = (Local::at(&tasks, &x).unwrap(), Local::at(&scaled, &x).unwrap());
        prop_assert!(close(&thm32_stated(&l1, gamma), &thm32_stated(&l0, gamma)));
        prop_assert!(close(&eq81_expansion(&l1, k, gamma), &eq81_expansion(&l0, k, gamma)));
        let (t0, t1) = (Third::new(&tasks, &x, &l0).derived(k).unwrap(), Third::new(&scaled, &x, &l1).derived(k).unwrap());
        prop_assert!(close(&t1, &t0));
        let dot = NexusConfig { inner_step: InnerStep::Raw, ..cfg };
        prop_assert!(!close(&exact(&scaled, &x, &dot).unwrap().mean, &exact(&tasks, &x, &dot).unwrap().mean));
    }
}
