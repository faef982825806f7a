//! The tape engine: Rosenbrock gradient (n = 1000), as a loop and as one `sum_map`, and the
//! ad_trait chain workload, each beside its primal in one group; reverse Jacobians at m = 10
//! and m = 50 outputs (n = 50) to show the cost per row does not grow with the rows done.

use criterion::{criterion_group, BenchmarkId, Criterion};
use difi_benches::basic::{rosenbrock, rosenbrock_sum_map, Chain};
use difi_core::{Active, Backend};
use difi_tape::Tape;
use std::hint::black_box;

fn rosenbrock_group(c: &mut Criterion) {
    let x: Vec<f64> = (0..1000).map(|i| (i as f64 * 0.01).sin()).collect();
    let mut g = c.benchmark_group("rosenbrock-1000");
    g.bench_function("primal", |b| b.iter(|| rosenbrock(black_box(&x))));
    g.bench_function("tape-gradient", |b| {
        b.iter(|| {
            Tape::new()
                .gradient(|x| rosenbrock(&x), Active(black_box(&x)))
                .unwrap()
        })
    });
    g.bench_function("sum-map-primal", |b| {
        b.iter(|| rosenbrock_sum_map(black_box(&x)))
    });
    g.bench_function("sum-map-tape-gradient", |b| {
        b.iter(|| {
            Tape::new()
                .gradient(|x| rosenbrock_sum_map(&x), Active(black_box(&x)))
                .unwrap()
        })
    });
    g.finish();
}

fn chain_group(c: &mut Criterion) {
    let chain = Chain::new(100, 1, 1000);
    let x: Vec<f64> = (0..100).map(|i| i as f64 * 0.01).collect();
    let mut g = c.benchmark_group("chain-n100-m1");
    g.bench_function("primal", |b| b.iter(|| chain.eval(black_box(&x))));
    g.bench_function("tape-gradient", |b| {
        b.iter(|| {
            Tape::new()
                .gradient(|x: Vec<_>| chain.eval(&x)[0], Active(black_box(&x)))
                .unwrap()
        })
    });
    g.finish();
}

fn jacobian_group(c: &mut Criterion) {
    let mut g = c.benchmark_group("chain-jacobian-n50");
    let x: Vec<f64> = (0..50).map(|i| i as f64 * 0.02).collect();
    for m in [10, 50] {
        let chain = Chain::new(50, m, 1000);
        g.bench_with_input(BenchmarkId::new("tape-jacobian", m), &m, |b, _| {
            b.iter(|| {
                Tape::new()
                    .jacobian(|x: Vec<_>| chain.eval(&x), Active(black_box(&x)))
                    .unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, rosenbrock_group, chain_group, jacobian_group);
difi_benches::criterion_main_keeping_freed_memory!(benches);
