//! The GradBench / ADBench workloads of `difi_benches` on every engine, each derivative beside its
//! primal in one criterion group, so the derivative / primal ratios (and the closure / tape
//! ratios) are read off one run of one process, not compared across runs.
//!
//! Inputs, sizes and data files are those of the `ratios` binary's full (non-`--quick`) branch,
//! except where one iteration would take well over half a second: conv is 64 × 64 × 23, not
//! 512 × 512 × 23. Every group's name carries its size.
//! Groups with entries of about 0.1 s or more use flat sampling (10 samples of equally many
//! iterations) to keep the whole bench to a few minutes on two cores.
//!
//! - `llsq-n4096-x16`, `lse-n100000`, `det-ell8`, `ode-n100-s1000`: `primal` is the `f64`
//!   function; `tape-gradient` and `closure-gradient` are one `Backend::gradient` call
//!   (recording, pullback and the returned gradient) on `Tape` and `Closure`.
//! - `kmeans-k100-n10000-d8`: `cost` is the primal cost; `forward-over-reverse(R)-dir` is one
//!   `gradient_and_hvp` with a vector of ones (the Hessian is diagonal, so `H·1` is its
//!   diagonal) and the Newton direction `g / diag(H)`, with `R` = tape and closure.
//! - `gmm-d10-K25-n1000`: the objective on ADBench's `gmm_d10_K25.txt` (1k points); gradients
//!   with respect to α, μ, q, l (x constant).
//! - `lstm-l2-c1024`: the loss on ADBench's `lstm_l2_c1024.txt`; gradients with respect to the
//!   main and extra parameters (state and sequence constant).
//! - `ba1-n49-m7776-p31843`: `objective` is all residuals; `tape-jacobian`,
//!   `closure-jacobian` and `forward16-jacobian` are the sparse Jacobian of `ba_jacobian_into`,
//!   one 2 × 15 block per observation.
//! - `conv-64x64x23`: `primal` is `sum(conv(u, v))` by FFT; the tape gradient with `v`
//!   constant and with both active, and the closure gradient with `v` constant.
//!
//! The gmm, lstm and ba groups read data from `shared/data/adbench` beside the repository and
//! are skipped, with a message, when it is missing.
//!
//! ```text
//! cargo bench -p difi-benches --bench workloads
//! ```

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, BenchmarkGroup, Criterion, SamplingMode};
use difi_benches::ba::{ba_jacobian_into, ba_objective_into, BaInput, BaJacobian};
use difi_benches::gmm::{gmm_gradient, gmm_objective, GmmInput};
use difi_benches::lstm::{lstm_objective, LstmInput};
use difi_benches::mt19937::Mt19937;
use difi_benches::workloads::{det, kmeans_cost, llsq, lse, ode};
use difi_closure::Closure;
use difi_core::{Active, ArrayD, Backend, Const, NoTangent, SecondOrder};
use difi_fft::{conv, FftConv};
use difi_forward::{Forward, ForwardOverReverse};
use difi_tape::Tape;
use ndarray::Array3;

/// llsq: 16 coefficients, 4096 points.
const LLSQ_N: usize = 4096;
/// lse: 100 000 inputs.
const LSE_N: usize = 100_000;
/// det: 8 × 8 by expansion by minors.
const ELL: usize = 8;
/// ode: 100 equations, 1000 RK4 steps.
const ODE_N: usize = 100;
const ODE_STEPS: usize = 1000;
/// kmeans: 100 centroids, 10 000 points, dimension 8, as in `ratios`.
const KMEANS: (usize, usize, usize) = (100, 10_000, 8);
/// conv: reduced from the seed's 512 × 512 × 23.
const CONV_SHAPE: (usize, usize, usize) = (64, 64, 23);

/// The GradBench-style inputs, drawn from one Mersenne Twister seeded 31337 in the order the
/// `ratios` binary draws them, so both see the same numbers.
struct Draws {
    llsq: Vec<f64>,
    lse: Vec<f64>,
    det: Vec<f64>,
    ode: Vec<f64>,
    centroids: Vec<f64>,
    points: Vec<f64>,
}

fn draws() -> Draws {
    let mut r = Mt19937::new(31337);
    let mut take = |n: usize| -> Vec<f64> { (0..n).map(|_| r.next_f64()).collect() };
    let (k, n, d) = KMEANS;
    Draws {
        llsq: take(16),
        lse: take(LSE_N),
        det: take(ELL * ELL),
        ode: take(ODE_N),
        centroids: take(k * d),
        points: take(n * d),
    }
}

/// A group with few samples and short warm-up and measurement, so the whole bench takes a few
/// minutes on two cores.
fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g
}

/// [`group`] with flat sampling, for groups with entries of about 0.1 s or more, where linear
/// sampling's 55 iterations would overrun the measurement time.
fn slow_group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = group(c, name);
    g.sampling_mode(SamplingMode::Flat);
    g
}

/// A data file of ADBench beside the repository.
fn adbench(rel: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/adbench")
        .join(rel)
}

fn llsq_group(c: &mut Criterion) {
    let x = draws().llsq;
    let mut g = group(c, &format!("llsq-n{LLSQ_N}-x{}", x.len()));
    g.bench_function("primal", |b| b.iter(|| llsq(black_box(&x), LLSQ_N)));
    g.bench_function("tape-gradient", |b| {
        b.iter(|| {
            Tape::new()
                .gradient(|x: Vec<_>| llsq(&x, LLSQ_N), Active(black_box(&x)))
                .unwrap()
        })
    });
    g.bench_function("closure-gradient", |b| {
        b.iter(|| {
            Closure::default()
                .gradient(|x: Vec<_>| llsq(&x, LLSQ_N), Active(black_box(&x)))
                .unwrap()
        })
    });
    g.finish();
}

fn lse_group(c: &mut Criterion) {
    let x = draws().lse;
    let mut g = group(c, &format!("lse-n{LSE_N}"));
    g.bench_function("primal", |b| b.iter(|| lse(black_box(&x))));
    g.bench_function("tape-gradient", |b| {
        b.iter(|| {
            Tape::new()
                .gradient(|x: Vec<_>| lse(&x), Active(black_box(&x)))
                .unwrap()
        })
    });
    g.bench_function("closure-gradient", |b| {
        b.iter(|| {
            Closure::default()
                .gradient(|x: Vec<_>| lse(&x), Active(black_box(&x)))
                .unwrap()
        })
    });
    g.finish();
}

fn det_group(c: &mut Criterion) {
    let a = draws().det;
    let mut g = group(c, &format!("det-ell{ELL}"));
    g.bench_function("primal", |b| b.iter(|| det(black_box(&a), ELL)));
    g.bench_function("tape-gradient", |b| {
        b.iter(|| {
            Tape::new()
                .gradient(|a: Vec<_>| det(&a, ELL), Active(black_box(&a)))
                .unwrap()
        })
    });
    g.bench_function("closure-gradient", |b| {
        b.iter(|| {
            Closure::default()
                .gradient(|a: Vec<_>| det(&a, ELL), Active(black_box(&a)))
                .unwrap()
        })
    });
    g.finish();
}

fn ode_group(c: &mut Criterion) {
    let x = draws().ode;
    let mut g = slow_group(c, &format!("ode-n{ODE_N}-s{ODE_STEPS}"));
    g.bench_function("primal", |b| {
        b.iter(|| *ode(black_box(&x), ODE_STEPS).last().unwrap())
    });
    g.bench_function("tape-gradient", |b| {
        b.iter(|| {
            Tape::new()
                .gradient(
                    |x: Vec<_>| *ode(&x, ODE_STEPS).last().unwrap(),
                    Active(black_box(&x)),
                )
                .unwrap()
        })
    });
    g.bench_function("closure-gradient", |b| {
        b.iter(|| {
            Closure::default()
                .gradient(
                    |x: Vec<_>| *ode(&x, ODE_STEPS).last().unwrap(),
                    Active(black_box(&x)),
                )
                .unwrap()
        })
    });
    g.finish();
}

/// kmeans' Newton direction `g / diag(H)` from one gradient-and-HVP with a vector of ones.
fn kmeans_dir<R: Backend>(
    b: &ForwardOverReverse<R>,
    cents: &Vec<f64>,
    pts: &Vec<f64>,
    d: usize,
    seed: &(Vec<f64>, NoTangent),
) -> Vec<f64> {
    let ((g, NoTangent), (h, NoTangent)) = b
        .gradient_and_hvp(
            |(c, p): (Vec<_>, Vec<_>)| kmeans_cost(&c, &p, d),
            (Active(cents), Const(pts)),
            seed,
        )
        .unwrap();
    g.iter().zip(&h).map(|(a, b)| a / b).collect()
}

fn kmeans_group(c: &mut Criterion) {
    let Draws {
        centroids, points, ..
    } = draws();
    let (k, n, d) = KMEANS;
    let seed = (vec![1.0; k * d], NoTangent);
    let tape = ForwardOverReverse::<Tape>::default();
    let closure = ForwardOverReverse::<Closure>::default();
    let mut g = slow_group(c, &format!("kmeans-k{k}-n{n}-d{d}"));
    g.bench_function("cost", |b| {
        b.iter(|| kmeans_cost(black_box(&centroids), black_box(&points), d))
    });
    g.bench_function("forward-over-reverse(tape)-dir", |b| {
        b.iter(|| kmeans_dir(&tape, black_box(&centroids), &points, d, &seed))
    });
    g.bench_function("forward-over-reverse(closure)-dir", |b| {
        b.iter(|| kmeans_dir(&closure, black_box(&centroids), &points, d, &seed))
    });
    g.finish();
}

fn gmm_group(c: &mut Criterion) {
    let input = match GmmInput::read(&adbench("gmm/1k/gmm_d10_K25.txt")) {
        Ok(input) => input,
        Err(e) => return eprintln!("skip gmm: {e}"),
    };
    let (d, k, n, gamma, m) = (input.d, input.k, input.n, input.gamma, input.m);
    let (alpha, mu, q, l, x) = (&input.alpha, &input.mu, &input.q, &input.l, &input.x);
    let mut g = slow_group(c, &format!("gmm-d{d}-K{k}-n{n}"));
    g.bench_function("primal", |b| {
        b.iter(|| gmm_objective(black_box(alpha), mu, q, l, x, d, k, gamma, m))
    });
    g.bench_function("tape-gradient", |b| {
        b.iter(|| gmm_gradient(&Tape::new(), black_box(&input)).unwrap())
    });
    g.bench_function("closure-gradient", |b| {
        b.iter(|| gmm_gradient(&Closure::default(), black_box(&input)).unwrap())
    });
    g.finish();
}

fn lstm_group(c: &mut Criterion) {
    let input = match LstmInput::read(&adbench("lstm/lstm_l2_c1024.txt")) {
        Ok(input) => input,
        Err(e) => return eprintln!("skip lstm: {e}"),
    };
    let (l, cc, bb) = (input.l, input.c, input.b);
    let (main, extra, state, sequence) = (&input.main, &input.extra, &input.state, &input.sequence);
    // The closure's tracer type is fixed at its first use, so one closure per engine.
    macro_rules! f {
        () => {
            |(m, e, s, q): (Vec<_>, Vec<_>, Vec<_>, Vec<_>)| {
                lstm_objective(&m, &e, &s, &q, l, cc, bb)
            }
        };
    }
    let args = || {
        (
            Active(black_box(main)),
            Active(extra),
            Const(state),
            Const(sequence),
        )
    };
    let mut g = group(c, &format!("lstm-l{l}-c{cc}"));
    g.bench_function("primal", |b| {
        b.iter(|| lstm_objective(black_box(main), extra, state, sequence, l, cc, bb))
    });
    g.bench_function("tape-gradient", |b| {
        b.iter(|| Tape::new().gradient(f!(), args()).unwrap())
    });
    g.bench_function("closure-gradient", |b| {
        b.iter(|| Closure::default().gradient(f!(), args()).unwrap())
    });
    g.finish();
}

fn ba_group(c: &mut Criterion) {
    let input = match BaInput::read(&adbench("ba/ba1_n49_m7776_p31843.txt")) {
        Ok(input) => input,
        Err(e) => return eprintln!("skip ba: {e}"),
    };
    let mut g = slow_group(c, &format!("ba1-n{}-m{}-p{}", input.n, input.m, input.p));
    // Outputs written into storage kept across iterations, as ADBench's harness does.
    let (mut reproj, mut w_err) = (Vec::new(), Vec::new());
    g.bench_function("objective", |b| {
        b.iter(|| ba_objective_into(black_box(&input), &mut reproj, &mut w_err))
    });
    let mut jac = BaJacobian::default();
    g.bench_function("tape-jacobian", |b| {
        b.iter(|| ba_jacobian_into(&Tape::new(), black_box(&input), &mut jac).unwrap())
    });
    g.bench_function("closure-jacobian", |b| {
        b.iter(|| ba_jacobian_into(&Closure::default(), black_box(&input), &mut jac).unwrap())
    });
    // Forward mode, each block in one pass of 16 lanes (see the `ratios` binary).
    g.bench_function("forward16-jacobian", |b| {
        b.iter(|| ba_jacobian_into(&Forward::<16>, black_box(&input), &mut jac).unwrap())
    });
    g.finish();
}

fn conv_group(c: &mut Criterion) {
    let shape = CONV_SHAPE;
    let u = Array3::from_shape_fn(shape, |(i, j, k)| ((i + 2 * j + 3 * k) as f64 * 0.01).sin())
        .into_dyn();
    let v = Array3::from_shape_fn(shape, |(i, j, k)| ((i * j + k) as f64 * 0.02).cos()).into_dyn();
    let rule = FftConv::new();
    // The closure's tracer type is fixed at its first use, so one closure per engine.
    macro_rules! f {
        () => {
            |(u, v): (ArrayD<_>, ArrayD<_>)| {
                difi_core::sum(&conv(&rule, u.view(), v.view()).unwrap())
            }
        };
    }
    let mut g = group(c, &format!("conv-{}x{}x{}", shape.0, shape.1, shape.2));
    g.bench_function("primal", |b| {
        b.iter(|| difi_core::sum(&conv(&rule, black_box(&u).view(), v.view()).unwrap()))
    });
    g.bench_function("tape-gradient-v-const", |b| {
        b.iter(|| {
            Tape::new()
                .gradient(f!(), (Active(black_box(&u)), Const(&v)))
                .unwrap()
        })
    });
    g.bench_function("tape-gradient-both", |b| {
        b.iter(|| {
            Tape::new()
                .gradient(f!(), (Active(black_box(&u)), Active(&v)))
                .unwrap()
        })
    });
    g.bench_function("closure-gradient-v-const", |b| {
        b.iter(|| {
            Closure::default()
                .gradient(f!(), (Active(black_box(&u)), Const(&v)))
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    llsq_group,
    lse_group,
    det_group,
    ode_group,
    kmeans_group,
    gmm_group,
    lstm_group,
    ba_group,
    conv_group
);
difi_benches::criterion_main_keeping_freed_memory!(benches);
