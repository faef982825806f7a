//! difi beside its peers in one run, so ours/peer ratios come from the same machine state:
//! Rosenbrock gradient at n = 1000 (difi tape, closure and `Forward<8>`; ad_trait `adr` and
//! `adfn<8>`, `reverse`, num-dual's vector duals) and the ad_trait paper's chain gradient at n = 100, m = 1, 1000 steps (difi
//! tape; ad_trait `adr`, `reverse`), each group with its primal.
//!
//! `autodiff` (forward mode, n passes: a few ms at n = 1000, some 30× difi's tape) is left out
//! of the criterion groups; the `ratios` binary reports it. With `--features heavy-peers` the
//! Rosenbrock group adds candle's tensor gradient, beside difi's `sum_map` form of the same sum.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, Criterion};
#[cfg(feature = "heavy-peers")]
use difi_benches::basic::rosenbrock_sum_map;
use difi_benches::basic::{rosenbrock, Chain};
#[cfg(feature = "heavy-peers")]
use difi_benches::heavy_peers::rosenbrock_gradient_candle;
use difi_benches::peers::{
    chain_gradient_ad_trait_adr, chain_gradient_reverse, rosenbrock_gradient_ad_trait_adr,
    rosenbrock_gradient_ad_trait_forward, rosenbrock_gradient_num_dual,
    rosenbrock_gradient_reverse,
};
use difi_closure::Closure;
use difi_core::{Active, Backend};
use difi_forward::Forward;
use difi_tape::Tape;

fn rosenbrock_peers(c: &mut Criterion) {
    let x: Vec<f64> = (0..1000).map(|i| (i as f64 * 0.01).sin()).collect();
    let mut g = c.benchmark_group("rosenbrock-1000-peers");
    g.sample_size(20).measurement_time(Duration::from_secs(2));
    g.bench_function("primal", |b| b.iter(|| rosenbrock(black_box(&x))));
    g.bench_function("difi-tape", |b| {
        b.iter(|| {
            Tape::new()
                .gradient(|x| rosenbrock(&x), Active(black_box(&x)))
                .unwrap()
        })
    });
    g.bench_function("difi-closure", |b| {
        b.iter(|| {
            Closure::default()
                .gradient(|x| rosenbrock(&x), Active(black_box(&x)))
                .unwrap()
        })
    });
    g.bench_function("ad_trait-adr", |b| {
        b.iter(|| rosenbrock_gradient_ad_trait_adr(black_box(&x)))
    });
    g.bench_function("difi-forward8", |b| {
        b.iter(|| {
            Forward::<8>
                .gradient(|x| rosenbrock(&x), Active(black_box(&x)))
                .unwrap()
        })
    });
    g.bench_function("ad_trait-adfn8", |b| {
        b.iter(|| rosenbrock_gradient_ad_trait_forward(black_box(&x)))
    });
    g.bench_function("reverse", |b| {
        b.iter(|| rosenbrock_gradient_reverse(black_box(&x)))
    });
    g.bench_function("num-dual", |b| {
        b.iter(|| rosenbrock_gradient_num_dual(black_box(&x)))
    });
    #[cfg(feature = "heavy-peers")]
    {
        difi_benches::heavy_peers::single_threaded();
        g.bench_function("difi-tape-sum-map", |b| {
            b.iter(|| {
                Tape::new()
                    .gradient(|x| rosenbrock_sum_map(&x), Active(black_box(&x)))
                    .unwrap()
            })
        });
        g.bench_function("candle", |b| {
            b.iter(|| rosenbrock_gradient_candle(black_box(&x)))
        });
    }
    g.finish();
}

fn chain_peers(c: &mut Criterion) {
    let chain = Chain::new(100, 1, 1000);
    let x: Vec<f64> = (0..100).map(|i| i as f64 * 0.01).collect();
    let mut g = c.benchmark_group("chain-n100-peers");
    g.sample_size(20).measurement_time(Duration::from_secs(2));
    g.bench_function("primal", |b| b.iter(|| chain.eval(black_box(&x))));
    g.bench_function("difi-tape", |b| {
        b.iter(|| {
            Tape::new()
                .gradient(|x: Vec<_>| chain.eval(&x)[0], Active(black_box(&x)))
                .unwrap()
        })
    });
    g.bench_function("ad_trait-adr", |b| {
        b.iter(|| chain_gradient_ad_trait_adr(&chain, black_box(&x)))
    });
    g.bench_function("reverse", |b| {
        b.iter(|| chain_gradient_reverse(&chain, black_box(&x)))
    });
    g.finish();
}

criterion_group!(benches, rosenbrock_peers, chain_peers);
difi_benches::criterion_main_keeping_freed_memory!(benches);
