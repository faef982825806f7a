//! Peers measured side by side with difi on the two small workloads of [`crate::basic`]:
//! Rosenbrock and the ad_trait paper's chain.
//!
//! The peers are the crates a Rust user would otherwise pick (see `WORKLOADS.md`, "Peers for
//! side-by-side runs"):
//!
//! - `ad_trait` 0.3, reverse mode through [`adr`] on a thread-local global graph;
//! - `reverse` 0.2, a minimal reverse tape ([`reverse::Tape`], [`reverse::Var`]);
//! - `autodiff` 0.7, forward mode ([`autodiff::F`]), so a gradient is `n` forward passes;
//! - `num-dual` 0.15, vector dual numbers ([`num_dual::DualDVec64`]) through
//!   [`num_dual::gradient`]: one pass carrying an `n`-vector of derivatives per value.
//!
//! None of the peer scalars is a difi [`difi_core::Real`] (and the orphan rule forbids making
//! them one here), so each workload is written again over the peer's own scalar trait:
//! [`ad_trait::AD`] for `adr` (ad_trait 0.3 does not implement `num_traits::Float`; its impl is
//! commented out), [`num_traits::Float`] for `autodiff::F`, by hand for `reverse::Var` (no
//! scalar trait) and `DualDVec64` (not `Copy`, so not `Float`). Every copy keeps the formula and
//! the order of operations of the difi workload, so each engine records the same operations.
//!
//! ```
//! use difi_benches::basic::{rosenbrock_gradient, Chain};
//! use difi_benches::peers::{chain_gradient_reverse, rosenbrock_gradient_reverse};
//!
//! let x = [0.5, -0.25, 1.5];
//! let g = rosenbrock_gradient_reverse(&x);
//! for (a, b) in g.iter().zip(rosenbrock_gradient(&x)) {
//!     assert!((a - b).abs() < 1e-12);
//! }
//! let chain = Chain::new(3, 1, 10);
//! assert_eq!(chain_gradient_reverse(&chain, &x).len(), 3);
//! ```

use ad_trait::forward_ad::adfn::adfn;
use ad_trait::reverse_ad::adr::{adr, GlobalComputationGraph};
use ad_trait::AD;
use nalgebra::DVector;
use num_dual::DualDVec64;
use num_traits::{Float, One, Zero};
use reverse::Gradient;

use crate::basic::Chain;

/// [`crate::basic::rosenbrock`] over [`num_traits::Float`], for peers whose scalar is `Float`
/// but not a difi `Real` (`autodiff::F`); literals enter through `From<f64>`. Same formula and
/// order of operations as the difi workload.
///
/// ```
/// assert_eq!(difi_benches::peers::rosenbrock_float(&[1.0_f64; 4]), 0.0);
/// ```
pub fn rosenbrock_float<T: Float + From<f64>>(x: &[T]) -> T {
    let (one, hundred) = (<T as From<f64>>::from(1.0), <T as From<f64>>::from(100.0));
    x.windows(2).fold(T::zero(), |s, w| {
        let a = one - w[0];
        let b = w[1] - w[0] * w[0];
        s + a * a + hundred * b * b
    })
}

/// [`crate::basic::rosenbrock`] over ad_trait's scalar trait [`ad_trait::AD`] (implemented by
/// `adr`, `adfn<N>`, `f64`, ...). Same formula and order of operations as the difi workload.
///
/// ```
/// assert_eq!(difi_benches::peers::rosenbrock_ad(&[1.0_f64; 4]), 0.0);
/// ```
pub fn rosenbrock_ad<T: AD>(x: &[T]) -> T {
    let (one, hundred) = (T::constant(1.0), T::constant(100.0));
    x.windows(2).fold(T::constant(0.0), |s, w| {
        let a = one - w[0];
        let b = w[1] - w[0] * w[0];
        s + a * a + hundred * b * b
    })
}

/// [`crate::basic::rosenbrock`] on `reverse`'s tape, written by hand (`reverse::Var` is not
/// `num_traits::Float`); the running sum starts from a tape variable holding zero.
fn rosenbrock_reverse<'a>(tape: &'a reverse::Tape, x: &[reverse::Var<'a>]) -> reverse::Var<'a> {
    x.windows(2).fold(tape.add_var(0.0), |s, w| {
        let a = 1.0 - w[0];
        let b = w[1] - w[0] * w[0];
        s + a * a + 100.0 * b * b
    })
}

/// [`crate::basic::rosenbrock`] over num-dual's dynamic vector duals, by hand and through
/// references (`DualDVec64` is not `Copy`, so it is not `Float`, and every clone would
/// allocate).
fn rosenbrock_num_dual(x: &[DualDVec64]) -> DualDVec64 {
    x.windows(2).fold(DualDVec64::zero(), |s, w| {
        let a = DualDVec64::one() - &w[0];
        let b = &w[1] - &(&w[0] * &w[0]);
        s + &a * &a + &(b.clone() * 100.0) * &b
    })
}

/// Gradient of Rosenbrock with ad_trait's reverse mode: resets the thread-local graph, makes
/// one `adr` variable per input, evaluates, runs the backward pass once and reads the adjoint
/// of each input (as `ad_trait`'s own `ReverseAD::derivative` does).
pub fn rosenbrock_gradient_ad_trait_adr(x: &[f64]) -> Vec<f64> {
    GlobalComputationGraph::get().reset();
    let xs: Vec<adr> = x.iter().map(|&v| adr::new_variable(v, false)).collect();
    let grad = rosenbrock_ad(&xs).get_backwards_mode_grad();
    xs.iter().map(|v| grad.wrt(v)).collect()
}

/// Gradient of Rosenbrock with ad_trait's forward mode on `adfn<8>`: `⌈n/8⌉` passes, each
/// seeding eight inputs (as difi's `Forward<8>` chunks).
pub fn rosenbrock_gradient_ad_trait_forward(x: &[f64]) -> Vec<f64> {
    const LANES: usize = 8;
    let mut g = vec![0.0; x.len()];
    for start in (0..x.len()).step_by(LANES) {
        let xs: Vec<adfn<LANES>> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let mut t = [0.0; LANES];
                if (start..start + LANES).contains(&i) {
                    t[i - start] = 1.0;
                }
                adfn::new(v, t)
            })
            .collect();
        let y = rosenbrock_ad(&xs).tangent();
        let end = (start + LANES).min(x.len());
        g[start..end].copy_from_slice(&y[..end - start]);
    }
    g
}

/// Gradient of Rosenbrock with `reverse`: a fresh tape, one variable per input, one backward
/// pass over the whole tape.
pub fn rosenbrock_gradient_reverse(x: &[f64]) -> Vec<f64> {
    let tape = reverse::Tape::new();
    let xs = tape.add_vars(x);
    rosenbrock_reverse(&tape, &xs).grad().wrt(&xs)
}

/// Gradient of Rosenbrock with `autodiff`'s forward mode through its own [`autodiff::grad`]:
/// `n` forward passes, each seeding one input.
pub fn rosenbrock_gradient_autodiff_forward(x: &[f64]) -> Vec<f64> {
    autodiff::grad(|x: &[autodiff::FT<f64>]| rosenbrock_float(x), x)
}

/// Gradient of Rosenbrock with num-dual's [`num_dual::gradient`] on dynamic vector duals: one
/// pass in which every value carries its `n` partial derivatives.
pub fn rosenbrock_gradient_num_dual(x: &[f64]) -> Vec<f64> {
    let (_, g) = num_dual::gradient(
        |x: DVector<DualDVec64>| rosenbrock_num_dual(x.as_slice()),
        &DVector::from_column_slice(x),
    );
    g.as_slice().to_vec()
}

/// [`Chain::eval`] over ad_trait's scalar trait [`ad_trait::AD`].
///
/// ```
/// use difi_benches::{basic::Chain, peers::chain_eval_ad};
/// let c = Chain::new(4, 2, 10);
/// let x = [0.1_f64, 0.2, 0.3, 0.4];
/// assert_eq!(chain_eval_ad(&c, &x), c.eval(&x));
/// ```
pub fn chain_eval_ad<T: AD>(chain: &Chain, x: &[T]) -> Vec<T> {
    chain.eval_with(x, |even, t, xr| {
        if even {
            (t.cos() + xr).sin()
        } else {
            (t.sin() + xr).cos()
        }
    })
}

/// [`Chain::eval`] on `reverse`'s tape.
fn chain_eval_reverse<'a>(chain: &Chain, x: &[reverse::Var<'a>]) -> Vec<reverse::Var<'a>> {
    chain.eval_with(x, |even, t, xr| {
        if even {
            (t.cos() + xr).sin()
        } else {
            (t.sin() + xr).cos()
        }
    })
}

/// Gradient of the chain's first output with ad_trait's reverse mode (all outputs are
/// evaluated, as the difi benches do with `chain.eval(&x)[0]`).
pub fn chain_gradient_ad_trait_adr(chain: &Chain, x: &[f64]) -> Vec<f64> {
    GlobalComputationGraph::get().reset();
    let xs: Vec<adr> = x.iter().map(|&v| adr::new_variable(v, false)).collect();
    let grad = chain_eval_ad(chain, &xs)[0].get_backwards_mode_grad();
    xs.iter().map(|v| grad.wrt(v)).collect()
}

/// Gradient of the chain's first output with `reverse`.
pub fn chain_gradient_reverse(chain: &Chain, x: &[f64]) -> Vec<f64> {
    let tape = reverse::Tape::new();
    let xs = tape.add_vars(x);
    chain_eval_reverse(chain, &xs)[0].grad().wrt(&xs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::basic::{rosenbrock, rosenbrock_gradient};
    use difi_core::{Active, Backend};
    use difi_tape::Tape;

    /// Each entry within 1e-10 relative; entries below 1e-12 of the largest one (cancellation)
    /// compared at that absolute floor.
    fn assert_close(what: &str, got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let floor = 1e-12 * want.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            let tol = (1e-10 * a.abs().max(b.abs())).max(floor);
            assert!((a - b).abs() <= tol, "{what}[{i}]: {a} vs {b}");
        }
    }

    fn rosenbrock_peers() -> [(&'static str, fn(&[f64]) -> Vec<f64>); 5] {
        [
            ("ad_trait-adr", rosenbrock_gradient_ad_trait_adr),
            ("ad_trait-adfn8", rosenbrock_gradient_ad_trait_forward),
            ("reverse", rosenbrock_gradient_reverse),
            ("autodiff-forward", rosenbrock_gradient_autodiff_forward),
            ("num-dual", rosenbrock_gradient_num_dual),
        ]
    }

    #[test]
    fn peers_rosenbrock_gradients_match_analytic() {
        for n in [2, 3, 10, 1000] {
            let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.01).sin() + 0.3).collect();
            let want = rosenbrock_gradient(&x);
            for (name, grad) in rosenbrock_peers() {
                assert_close(&format!("{name} n={n}"), &grad(&x), &want);
            }
        }
    }

    #[test]
    fn peers_rosenbrock_short_inputs_have_zero_gradients() {
        for n in [0, 1] {
            let x = vec![0.7; n];
            for (name, grad) in rosenbrock_peers() {
                assert_eq!(grad(&x), vec![0.0; n], "{name} n={n}");
            }
        }
    }

    #[test]
    fn peers_rosenbrock_copies_are_the_difi_primal() {
        let x: Vec<f64> = (0..50).map(|i| (i as f64 * 0.37).cos()).collect();
        assert_eq!(rosenbrock_float(&x).to_bits(), rosenbrock(&x).to_bits());
        assert_eq!(rosenbrock_ad(&x).to_bits(), rosenbrock(&x).to_bits());
    }

    #[test]
    fn peers_chain_copy_is_the_difi_primal() {
        for (n, m, steps) in [(1, 1, 0), (4, 2, 10), (100, 1, 1000)] {
            let chain = Chain::new(n, m, steps);
            let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.77).sin()).collect();
            let bits = |v: Vec<f64>| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(chain_eval_ad(&chain, &x)), bits(chain.eval(&x)));
        }
    }

    #[test]
    fn peers_chain_gradients_match_difi_tape() {
        for (n, m, steps) in [(5, 3, 20), (100, 1, 1000), (1000, 1, 1000)] {
            let chain = Chain::new(n, m, steps);
            let x: Vec<f64> = (0..n).map(|i| i as f64 * 0.01).collect();
            let want: Vec<f64> = Tape::new()
                .gradient(|x: Vec<_>| chain.eval(&x)[0], Active(&x))
                .unwrap();
            let what = format!("n={n} m={m} steps={steps}");
            assert_close(
                &format!("ad_trait-adr {what}"),
                &chain_gradient_ad_trait_adr(&chain, &x),
                &want,
            );
            assert_close(
                &format!("reverse {what}"),
                &chain_gradient_reverse(&chain, &x),
                &want,
            );
        }
    }
}
