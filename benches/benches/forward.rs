//! Forward mode and forward-over-reverse: HVP beside the gradient on Rosenbrock (n = 1000), and
//! a dense Hessian (n = 100) beside num-dual's second-order dual numbers on the same function.

use criterion::{criterion_group, Criterion};
use difi_benches::basic::rosenbrock;
use difi_core::{Active, Backend, SecondOrder};
use difi_forward::ForwardOverReverse;
use difi_tape::Tape;
use nalgebra::DVector;
use num_dual::DualNum;
use std::hint::black_box;

/// Rosenbrock over num-dual's own scalar trait (num-dual numbers are not difi `Real`s).
fn rosenbrock_num_dual<D: DualNum<Primitive = f64>>(x: &[D]) -> D {
    x.windows(2).fold(D::from(0.0), |s, w| {
        let a = D::from(1.0) - w[0].clone();
        let b = w[1].clone() - w[0].powi(2);
        s + a.powi(2) + b.powi(2) * 100.0
    })
}

fn hvp_group(c: &mut Criterion) {
    let x: Vec<f64> = (0..1000).map(|i| (i as f64 * 0.01).sin()).collect();
    let v: Vec<f64> = (0..1000).map(|i| (i % 7) as f64 - 3.0).collect();
    let b = ForwardOverReverse::<Tape>::default();
    let mut g = c.benchmark_group("rosenbrock-1000-second-order");
    g.bench_function("tape-gradient", |bn| {
        bn.iter(|| {
            b.gradient(|x| rosenbrock(&x), Active(black_box(&x)))
                .unwrap()
        })
    });
    g.bench_function("for(tape)-hvp", |bn| {
        bn.iter(|| {
            b.hvp(|x| rosenbrock(&x), Active(black_box(&x)), &v)
                .unwrap()
        })
    });
    g.finish();
}

fn hessian_group(c: &mut Criterion) {
    let x: Vec<f64> = (0..100).map(|i| (i as f64 * 0.1).sin()).collect();
    let b = ForwardOverReverse::<Tape>::default();
    let mut g = c.benchmark_group("rosenbrock-100-hessian");
    g.bench_function("for(tape)-hessian", |bn| {
        bn.iter(|| {
            b.hessian(|x| rosenbrock(&x), Active(black_box(&x)))
                .unwrap()
        })
    });
    let xv = DVector::from_vec(x.clone());
    g.bench_function("num-dual-hessian", |bn| {
        bn.iter(|| {
            num_dual::hessian(
                |x: DVector<_>| rosenbrock_num_dual(x.as_slice()),
                black_box(&xv),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, hvp_group, hessian_group);
difi_benches::criterion_main_keeping_freed_memory!(benches);
