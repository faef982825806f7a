//! The closure engine beside the tape engine on the same workloads, in one group each, so the
//! closure / tape ratio is read off one run.

use criterion::{criterion_group, Criterion};
use difi_benches::basic::{rosenbrock, Chain};
use difi_closure::Closure;
use difi_core::{Active, ArrayD, Backend, Const};
use difi_fft::{conv, FftConv};
use difi_tape::Tape;
use ndarray::Array3;
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
    g.bench_function("closure-gradient", |b| {
        b.iter(|| {
            Closure::default()
                .gradient(|x| rosenbrock(&x), Active(black_box(&x)))
                .unwrap()
        })
    });
    g.finish();
}

fn chain_group(c: &mut Criterion) {
    let chain = Chain::new(100, 1, 1000);
    let x: Vec<f64> = (0..100).map(|i| i as f64 * 0.01).collect();
    let mut g = c.benchmark_group("chain-n100-m1");
    g.bench_function("tape-gradient", |b| {
        b.iter(|| {
            Tape::new()
                .gradient(|x: Vec<_>| chain.eval(&x)[0], Active(black_box(&x)))
                .unwrap()
        })
    });
    g.bench_function("closure-gradient", |b| {
        b.iter(|| {
            Closure::default()
                .gradient(|x: Vec<_>| chain.eval(&x)[0], Active(black_box(&x)))
                .unwrap()
        })
    });
    g.finish();
}

fn conv_group(c: &mut Criterion) {
    // A reduced size of the seed's 512 × 512 × 23 workload, to keep the bench short.
    let shape = (64, 64, 23);
    let u = Array3::from_shape_fn(shape, |(i, j, k)| ((i + 2 * j + 3 * k) as f64 * 0.01).sin())
        .into_dyn();
    let v = Array3::from_shape_fn(shape, |(i, j, k)| ((i * j + k) as f64 * 0.02).cos()).into_dyn();
    let rule = FftConv::new();
    let mut g = c.benchmark_group("conv-64x64x23");
    g.sample_size(20);
    g.bench_function("primal", |b| {
        b.iter(|| difi_core::sum(&conv(&rule, u.view(), v.view()).unwrap()))
    });
    g.bench_function("tape-gradient-v-const", |b| {
        b.iter(|| {
            Tape::new()
                .gradient(
                    |(u, v): (ArrayD<_>, ArrayD<_>)| {
                        difi_core::sum(&conv(&rule, u.view(), v.view()).unwrap())
                    },
                    (Active(&u), Const(&v)),
                )
                .unwrap()
        })
    });
    g.bench_function("closure-gradient-v-const", |b| {
        b.iter(|| {
            Closure::default()
                .gradient(
                    |(u, v): (ArrayD<_>, ArrayD<_>)| {
                        difi_core::sum(&conv(&rule, u.view(), v.view()).unwrap())
                    },
                    (Active(&u), Const(&v)),
                )
                .unwrap()
        })
    });
    g.bench_function("tape-gradient-both", |b| {
        b.iter(|| {
            Tape::new()
                .gradient(
                    |(u, v): (ArrayD<_>, ArrayD<_>)| {
                        difi_core::sum(&conv(&rule, u.view(), v.view()).unwrap())
                    },
                    (Active(&u), Active(&v)),
                )
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, rosenbrock_group, chain_group, conv_group);
difi_benches::criterion_main_keeping_freed_memory!(benches);
