//! The quick ratio report: derivative time / primal time per workload and engine, medians of
//! repeated runs measured in one process.
//!
//! ```text
//! cargo run --release -p difi-benches --bin ratios -- --quick
//! ```
//!
//! Names after the options keep only the workloads they begin (`ratios -- --quick llsq gmm`).
//!
//! The process keeps the memory it frees for reuse
//! ([`difi_benches::memory::keep_freed_memory`]), so what a timed call pays does not depend on
//! whether the allocator handed it fresh pages; `--fresh-memory` keeps glibc's defaults.
//!
//! Prints `ratio WORKLOAD ENGINE OPERATOR VALUE` lines, and `peer WORKLOAD PEER VALUE` lines:
//! difi's tape gradient time over the peer's gradient time on the same workload (below 1: difi
//! is faster), both measured in this run (peers in [`difi_benches::peers`]). Without `--quick`
//! the sizes are the full ones of the issue (conv 512 × 512 × 23 takes minutes). Built with
//! `--features heavy-peers`, it adds candle on Rosenbrock, lse and gmm.

use std::hint::black_box;
use std::time::{Duration, Instant};

use difi_benches::ba::{ba_jacobian_into, ba_objective_into, BaInput, BaJacobian};
use difi_benches::basic::{rosenbrock, rosenbrock_sum_map, Chain};
use difi_benches::gmm::{gmm_gradient, gmm_objective};
#[cfg(feature = "heavy-peers")]
use difi_benches::heavy_peers::{gmm_candle, lse_gradient_candle, rosenbrock_gradient_candle};
use difi_benches::lstm::lstm_objective;
use difi_benches::mt19937::Mt19937;
use difi_benches::peers::{
    chain_gradient_ad_trait_adr, chain_gradient_reverse, rosenbrock_gradient_ad_trait_adr,
    rosenbrock_gradient_ad_trait_forward, rosenbrock_gradient_autodiff_forward,
    rosenbrock_gradient_num_dual, rosenbrock_gradient_reverse,
};
use difi_benches::workloads::{det, kmeans_cost, llsq, lse, ode};
use difi_closure::Closure;
use difi_core::{Active, ArrayD, Backend, Const, SecondOrder};
use difi_fft::{conv, FftConv};
use difi_forward::{Forward, ForwardOverReverse};
use difi_tape::{Tape, Var};
use ndarray::Array3;

/// Median seconds of `f` over at least `runs` runs and `budget` of time, after one untimed
/// run: a first call pays one-time costs (the heap and the tape's buffers growing, fresh pages)
/// that the ratios are not about. conv's first gradient took 0.83 s and the next two 0.55–0.58,
/// so with three timed runs the median was the slower of two warm ones.
fn median(runs: usize, budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < runs || (start.elapsed() < budget && times.len() < 10_000) {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    times[times.len() / 2]
}

struct Report {
    runs: usize,
    budget: Duration,
    /// Workload names (prefixes) given on the command line; empty: all.
    only: Vec<String>,
}

impl Report {
    fn wants(&self, workload: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|w| workload.starts_with(w.as_str()))
    }

    fn time(&self, f: impl FnMut()) -> f64 {
        median(self.runs, self.budget, f)
    }

    fn ratio(&self, workload: &str, engine: &str, operator: &str, value: f64) {
        println!("ratio {workload} {engine} {operator} {value:.3}");
    }

    /// `ratio WORKLOAD tape gradient`: the tape gradient of a function of one vector over its
    /// primal (`traced` is the same code at the tracer type), both timed here. Returns the
    /// gradient's time, for figures over another primal.
    fn tape_gradient(
        &self,
        workload: &str,
        x: &[f64],
        primal: impl Fn(&[f64]) -> f64,
        traced: impl Fn(Vec<Var<f64>>) -> Var<f64>,
    ) -> f64 {
        let p = self.time(|| {
            black_box(primal(black_box(x)));
        });
        let g = self.time(|| {
            black_box(Tape::new().gradient(&traced, Active(x)).unwrap());
        });
        self.ratio(workload, "tape", "gradient", g / p);
        g
    }

    /// `ours / theirs`: difi's time over the peer's on one workload.
    fn peer(&self, workload: &str, peer: &str, ours: f64, theirs: f64) {
        println!("peer {workload} {peer} {:.3}", ours / theirs);
    }
}

fn draws(r: &mut Mt19937, n: usize) -> Vec<f64> {
    (0..n).map(|_| r.next_f64()).collect()
}

fn main() {
    const OPTIONS: [&str; 2] = ["--quick", "--fresh-memory"];
    if let Some(o) = std::env::args()
        .skip(1)
        .find(|a| a.starts_with("--") && !OPTIONS.contains(&a.as_str()))
    {
        eprintln!(
            "ratios: unknown option `{o}`; the options are {}",
            OPTIONS.join(", ")
        );
        std::process::exit(2);
    }
    // First, before any thread exists (see `keep_freed_memory`).
    if std::env::args().any(|a| a == "--fresh-memory") {
        eprintln!("ratios: the allocator's defaults (freed memory may go back to the system)");
    } else if difi_benches::memory::keep_freed_memory() {
        eprintln!("ratios: freed memory is kept for reuse (--fresh-memory: allocator defaults)");
    } else {
        eprintln!("ratios: this allocator's defaults (it cannot be told to keep freed memory)");
    }
    #[cfg(feature = "heavy-peers")]
    difi_benches::heavy_peers::single_threaded();
    let quick = std::env::args().any(|a| a == "--quick");
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    const WORKLOADS: [&str; 12] = [
        "rosenbrock",
        "chain",
        "chain-jacobian",
        "llsq",
        "lse",
        "det",
        "ode",
        "kmeans",
        "gmm",
        "lstm",
        "ba",
        "conv",
    ];
    if let Some(w) = only
        .iter()
        .find(|w| !WORKLOADS.iter().any(|name| name.starts_with(w.as_str())))
    {
        eprintln!(
            "ratios: no workload begins with `{w}`; the workloads are {}",
            WORKLOADS.join(", ")
        );
        std::process::exit(2);
    }
    let rep = Report {
        runs: if quick { 5 } else { 20 },
        budget: Duration::from_millis(if quick { 300 } else { 2000 }),
        only,
    };
    let mut rng = Mt19937::new(31337);
    let fr = ForwardOverReverse::<Tape>::default();

    // Rosenbrock, n = 1000.
    let x: Vec<f64> = (0..1000).map(|i| (i as f64 * 0.01).sin()).collect();
    if rep.wants("rosenbrock") {
        let primal = rep.time(|| {
            black_box(rosenbrock(black_box(&x)));
        });
        let tape = rep.time(|| {
            black_box(
                Tape::new()
                    .gradient(|x| rosenbrock(&x), Active(&x))
                    .unwrap(),
            );
        });
        let closure = rep.time(|| {
            black_box(
                Closure::default()
                    .gradient(|x| rosenbrock(&x), Active(&x))
                    .unwrap(),
            );
        });
        rep.ratio("rosenbrock", "tape", "gradient", tape / primal);
        rep.ratio("rosenbrock", "closure", "gradient", closure / primal);
        rep.ratio("rosenbrock", "closure/tape", "gradient", closure / tape);
        let v = vec![1.0; x.len()];
        let hvp = rep.time(|| {
            black_box(fr.hvp(|x| rosenbrock(&x), Active(&x), &v).unwrap());
        });
        rep.ratio(
            "rosenbrock",
            "forward-over-reverse(tape)",
            "hvp/gradient",
            hvp / tape,
        );
        // The same function written as one sum_map: over its own primal (faster than the
        // loop's: one addition per term on the critical path instead of two), and over the
        // loop's primal.
        let tape_sum_map = rep.tape_gradient("rosenbrock-sum-map", &x, rosenbrock_sum_map, |x| {
            rosenbrock_sum_map(&x)
        });
        rep.ratio(
            "rosenbrock-sum-map",
            "tape",
            "gradient/loop-primal",
            tape_sum_map / primal,
        );
        // Peers on the same Rosenbrock, over difi's tape gradient above. ad_trait's adfn<8> is
        // forward mode in n/8 passes; autodiff is forward mode, n passes, and num-dual carries n derivatives per value: both O(n²), a few ms and about
        // 10 ms at n = 1000, so the same n even with --quick.
        let peers: [(&str, fn(&[f64]) -> Vec<f64>); 5] = [
            ("ad_trait-adr", rosenbrock_gradient_ad_trait_adr),
            ("ad_trait-adfn8", rosenbrock_gradient_ad_trait_forward),
            ("reverse", rosenbrock_gradient_reverse),
            ("autodiff-forward", rosenbrock_gradient_autodiff_forward),
            ("num-dual", rosenbrock_gradient_num_dual),
        ];
        for (name, grad) in peers {
            let t = rep.time(|| {
                black_box(grad(black_box(&x)));
            });
            rep.peer("rosenbrock", name, tape, t);
        }
        // candle's tensor form is an array formulation: beside both of ours.
        #[cfg(feature = "heavy-peers")]
        {
            let t = rep.time(|| {
                black_box(rosenbrock_gradient_candle(black_box(&x)));
            });
            rep.peer("rosenbrock", "candle", tape, t);
            rep.peer("rosenbrock-sum-map", "candle", tape_sum_map, t);
        }
    }
    // The ad_trait chain, n = 100, one output of 1000 steps.
    if rep.wants("chain") {
        let chain = Chain::new(100, 1, 1000);
        let xc: Vec<f64> = (0..100).map(|i| i as f64 * 0.01).collect();
        let primal = rep.time(|| {
            black_box(chain.eval(black_box(&xc)));
        });
        let tape = rep.time(|| {
            black_box(
                Tape::new()
                    .gradient(|x: Vec<_>| chain.eval(&x)[0], Active(&xc))
                    .unwrap(),
            );
        });
        rep.ratio("chain", "tape", "gradient", tape / primal);
        let adr = rep.time(|| {
            black_box(chain_gradient_ad_trait_adr(&chain, black_box(&xc)));
        });
        rep.peer("chain", "ad_trait-adr", tape, adr);
        let reverse = rep.time(|| {
            black_box(chain_gradient_reverse(&chain, black_box(&xc)));
        });
        rep.peer("chain", "reverse", tape, reverse);
    }
    // Reverse Jacobian growth: m = 10 vs m = 50 outputs at n = 50.
    if rep.wants("chain-jacobian") {
        let xj: Vec<f64> = (0..50).map(|i| i as f64 * 0.02).collect();
        let (c10, c50) = (Chain::new(50, 10, 1000), Chain::new(50, 50, 1000));
        let j10 = rep.time(|| {
            black_box(
                Tape::new()
                    .jacobian(|x: Vec<_>| c10.eval(&x), Active(&xj))
                    .unwrap(),
            );
        });
        let j50 = rep.time(|| {
            black_box(
                Tape::new()
                    .jacobian(|x: Vec<_>| c50.eval(&x), Active(&xj))
                    .unwrap(),
            );
        });
        rep.ratio("chain-jacobian", "tape", "m50/m10", j50 / j10);
    }
    // llsq, lse, det, ode on GradBench-style inputs.
    let n = if quick { 256 } else { 4096 };
    let xl = draws(&mut rng, 16);
    if rep.wants("llsq") {
        rep.tape_gradient("llsq", &xl, |x| llsq(x, n), |x| llsq(&x, n));
    }
    let xs = draws(&mut rng, if quick { 1000 } else { 100_000 });
    if rep.wants("lse") {
        #[cfg_attr(not(feature = "heavy-peers"), allow(unused_variables))]
        let tape = rep.tape_gradient("lse", &xs, lse, |x| lse(&x));
        #[cfg(feature = "heavy-peers")]
        {
            let t = rep.time(|| {
                black_box(lse_gradient_candle(black_box(&xs)));
            });
            rep.peer("lse", "candle", tape, t);
        }
    }
    let ell = if quick { 6 } else { 8 };
    let a = draws(&mut rng, ell * ell);
    if rep.wants("det") {
        rep.tape_gradient(
            &format!("det-ell{ell}"),
            &a,
            |a| det(a, ell),
            |a| det(&a, ell),
        );
    }
    let xo = draws(&mut rng, if quick { 20 } else { 100 });
    let steps = if quick { 100 } else { 1000 };
    if rep.wants("ode") {
        rep.tape_gradient(
            "ode",
            &xo,
            |x| *ode(x, steps).last().unwrap(),
            |x| *ode(&x, steps).last().unwrap(),
        );
    }
    // kmeans: dir through one HVP with a vector of ones, over cost.
    let (k, np, d) = if quick {
        (10, 200, 4)
    } else {
        (100, 10_000, 8)
    };
    let cents = draws(&mut rng, k * d);
    let pts = draws(&mut rng, np * d);
    if rep.wants("kmeans") {
        let p = rep.time(|| {
            black_box(kmeans_cost(black_box(&cents), &pts, d));
        });
        let ones = vec![1.0; k * d];
        let dir = rep.time(|| {
            let ((g, _), (h, _)) = fr
                .gradient_and_hvp(
                    |(c, p): (Vec<_>, Vec<_>)| kmeans_cost(&c, &p, d),
                    (Active(&cents), Const(&pts)),
                    &(ones.clone(), difi_core::NoTangent),
                )
                .unwrap();
            black_box(g.iter().zip(&h).map(|(a, b)| a / b).collect::<Vec<_>>());
        });
        rep.ratio("kmeans", "forward-over-reverse(tape)", "dir/cost", dir / p);
    }
    // gmm, d = 10, K = 25, n = 1000 (ADBench data beside the repository).
    if rep.wants("gmm") {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/adbench/gmm/1k/gmm_d10_K25.txt");
        match difi_benches::gmm::GmmInput::read(&path) {
            Ok(g) => {
                let (d, k) = (g.d, g.k);
                let p = rep.time(|| {
                    black_box(gmm_objective(
                        &g.alpha, &g.mu, &g.q, &g.l, &g.x, d, k, g.gamma, g.m,
                    ));
                });
                let t = rep.time(|| {
                    black_box(gmm_gradient(&Tape::new(), black_box(&g)).unwrap());
                });
                let c = rep.time(|| {
                    black_box(gmm_gradient(&Closure::default(), black_box(&g)).unwrap());
                });
                rep.ratio("gmm-d10-K25-n1000", "tape", "gradient", t / p);
                rep.ratio("gmm-d10-K25-n1000", "closure/tape", "gradient", c / t);
                #[cfg(feature = "heavy-peers")]
                {
                    let candle = rep.time(|| {
                        black_box(gmm_candle(black_box(&g)));
                    });
                    rep.peer("gmm-d10-K25-n1000", "candle", t, candle);
                }
            }
            Err(e) => println!("skip gmm: {e}"),
        }
    }
    // lstm, l = 2, c = 1024 (ADBench data beside the repository).
    if rep.wants("lstm") {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/adbench/lstm/lstm_l2_c1024.txt");
        match difi_benches::lstm::LstmInput::read(&path) {
            Ok(g) => {
                let (l, c, b) = (g.l, g.c, g.b);
                let p = rep.time(|| {
                    black_box(lstm_objective(
                        &g.main,
                        &g.extra,
                        &g.state,
                        &g.sequence,
                        l,
                        c,
                        b,
                    ));
                });
                let t = rep.time(|| {
                    let f = |(m, e, s, q): (Vec<_>, Vec<_>, Vec<_>, Vec<_>)| {
                        lstm_objective(&m, &e, &s, &q, l, c, b)
                    };
                    black_box(
                        Tape::new()
                            .gradient(
                                f,
                                (
                                    Active(&g.main),
                                    Active(&g.extra),
                                    Const(&g.state),
                                    Const(&g.sequence),
                                ),
                            )
                            .unwrap(),
                    );
                });
                rep.ratio("lstm-l2-c1024", "tape", "gradient", t / p);
            }
            Err(e) => println!("skip lstm: {e}"),
        }
    }
    // ba, n = 49, m = 7776, p = 31843 (ADBench data beside the repository): the sparse
    // Jacobian, one 2 × 15 block per observation, over the residuals.
    if rep.wants("ba") {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/adbench/ba/ba1_n49_m7776_p31843.txt");
        match BaInput::read(&path) {
            Ok(input) => {
                // Outputs written into storage kept across runs, as ADBench's harness does: the
                // figure is not glibc faulting in a fresh 16 MB of sparse arrays per call.
                let (mut reproj, mut w_err) = (Vec::new(), Vec::new());
                let p = rep.time(|| {
                    ba_objective_into(black_box(&input), &mut reproj, &mut w_err);
                    black_box((&reproj, &w_err));
                });
                let mut jac = BaJacobian::default();
                let t = rep.time(|| {
                    ba_jacobian_into(&Tape::new(), black_box(&input), &mut jac).unwrap();
                    black_box(&jac);
                });
                let c = rep.time(|| {
                    ba_jacobian_into(&Closure::default(), black_box(&input), &mut jac).unwrap();
                    black_box(&jac);
                });
                // Forward mode, each 2 × 15 block in one pass: the engine a user would pick for
                // small dense blocks. 16 lanes (one unused) vectorize without a remainder: a
                // block took 475 ns on 15 lanes, 236 on 16.
                let f = rep.time(|| {
                    ba_jacobian_into(&Forward::<16>, black_box(&input), &mut jac).unwrap();
                    black_box(&jac);
                });
                rep.ratio("ba", "tape", "jacobian/objective", t / p);
                rep.ratio("ba", "closure", "jacobian/objective", c / p);
                rep.ratio("ba", "forward<16>", "jacobian/objective", f / p);
            }
            Err(e) => println!("skip ba: {e}"),
        }
    }
    // The seed's convolution: gradient with v constant and with both active.
    if rep.wants("conv") {
        let shape = if quick { (64, 64, 23) } else { (512, 512, 23) };
        let u = Array3::from_shape_fn(shape, |(i, j, k)| ((i + 2 * j + 3 * k) as f64 * 0.01).sin())
            .into_dyn();
        let w =
            Array3::from_shape_fn(shape, |(i, j, k)| ((i * j + k) as f64 * 0.02).cos()).into_dyn();
        let rule = FftConv::new();
        let conv_runs = Report {
            runs: 3,
            budget: Duration::from_millis(if quick { 500 } else { 1 }),
            only: Vec::new(),
        };
        let f = |(u, v): (ArrayD<_>, ArrayD<_>)| {
            difi_core::sum(&conv(&rule, u.view(), v.view()).unwrap())
        };
        let p = conv_runs.time(|| {
            black_box(difi_core::sum(&conv(&rule, u.view(), w.view()).unwrap()));
        });
        let one = conv_runs.time(|| {
            black_box(Tape::new().gradient(f, (Active(&u), Const(&w))).unwrap());
        });
        let both = conv_runs.time(|| {
            black_box(Tape::new().gradient(f, (Active(&u), Active(&w))).unwrap());
        });
        let closure_one = conv_runs.time(|| {
            let f = |(u, v): (ArrayD<_>, ArrayD<_>)| {
                difi_core::sum(&conv(&rule, u.view(), v.view()).unwrap())
            };
            black_box(
                Closure::default()
                    .gradient(f, (Active(&u), Const(&w)))
                    .unwrap(),
            );
        });
        let label = format!("conv-{}x{}x{}", shape.0, shape.1, shape.2);
        rep.ratio(&label, "tape", "gradient-v-const", one / p);
        rep.ratio(&label, "tape", "gradient-both", both / p);
        rep.ratio(
            &label,
            "tape",
            "reverse-v-const/reverse-both",
            (one - p) / (both - p),
        );
        rep.ratio(
            &label,
            "closure/tape",
            "gradient-v-const",
            closure_one / one,
        );
    }
}
