//! Throughput of the exact expectation engine: index sequences x inner steps per second,
//! for K = 6 at d = 100 and K = 4 at d = 1000 (anisotropic quadratics, dense Hessians).
//! `cargo bench --bench expectation`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nalgebra::DVector;
use nexus_lab::expectation::{exact, sequence_count};
use nexus_lab::nexus::{NexusConfig, Sampling};
use nexus_lab::rng_for;
use nexus_lab::tasks::{Family, TaskDistribution};
use std::hint::black_box;

fn engine(c: &mut Criterion) {
    let mut group = c.benchmark_group("exact_expectation");
    group.sample_size(10);
    for (k, d) in [(6usize, 100usize), (4, 1000)] {
        let dist = TaskDistribution::new(Family::Anisotropic { mu: 0.5, l: 2.0 }, d, 0.5).unwrap();
        let tasks = dist.sample_many(k, &mut rng_for(1, "bench")).unwrap();
        let x = &dist.center + DVector::from_element(d, 1.0 / (d as f64).sqrt()) * 2.0;
        let cfg = NexusConfig::new(k, 0.01).unwrap();
        let sequences = sequence_count(k, k, Sampling::WithReplacement);
        group.throughput(Throughput::Elements(sequences * k as u64));
        group.bench_function(format!("K={k},d={d}"), |b| {
            b.iter(|| black_box(exact(&tasks, &x, &cfg).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
