//! Heavy peers, built only with `--features heavy-peers`: candle (`candle-core` 0.11), a tensor
//! framework with reverse-mode autograd, on the workloads a tensor user would write as whole-array
//! expressions, Rosenbrock and lse.
//!
//! Each gradient is what a candle user writes: the input becomes a [`Var`] on the CPU (f64), the
//! function is a few tensor ops (every op allocates its result and records a graph node), and
//! `backward` returns the gradient store. Scalar-chain workloads (the ad_trait chain, ode, det)
//! have no tensor form and are not measured here. burn is not included: its autodiff backend
//! builds several times longer than candle for the same two comparisons.
//!
//! ```
//! use difi_benches::basic::rosenbrock_gradient;
//! use difi_benches::heavy_peers::rosenbrock_gradient_candle;
//!
//! let x = [0.5, -0.25, 1.5];
//! let g = rosenbrock_gradient_candle(&x);
//! for (a, b) in g.iter().zip(rosenbrock_gradient(&x)) {
//!     assert!((a - b).abs() < 1e-12);
//! }
//! ```

use candle_core::{Device, Result, Tensor, Var};

/// The gradient of `f` at `x` by candle's reverse mode: `x` as a [`Var`], one backward pass.
fn candle_gradient(x: &[f64], f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Vec<f64>> {
    let x = Var::from_slice(x, x.len(), &Device::Cpu)?;
    let y = f(x.as_tensor())?;
    let grads = y.backward()?;
    match grads.get(x.as_tensor()) {
        Some(g) => g.to_vec1::<f64>(),
        // The output does not depend on `x` (fewer than two elements for Rosenbrock).
        None => Ok(vec![0.0; x.dims1()?]),
    }
}

/// [`crate::basic::rosenbrock`] as tensor ops: `Σ (1 − a)² + 100 (b − a²)²` with `a = x[..n−1]`
/// and `b = x[1..]`.
fn rosenbrock_tensor(x: &Tensor) -> Result<Tensor> {
    let n = x.dims1()?;
    if n < 2 {
        return x.zeros_like()?.sum_all();
    }
    let a = x.narrow(0, 0, n - 1)?;
    let b = x.narrow(0, 1, n - 1)?;
    let first = a.affine(-1.0, 1.0)?.sqr()?;
    let second = (b - a.sqr()?)?.sqr()?.affine(100.0, 0.0)?;
    (first + second)?.sum_all()
}

/// The gradient of [`crate::basic::rosenbrock`] by candle.
///
/// # Panics
///
/// If candle reports an error (it does not for a vector of `f64` on the CPU).
pub fn rosenbrock_gradient_candle(x: &[f64]) -> Vec<f64> {
    candle_gradient(x, rosenbrock_tensor).expect("candle Rosenbrock gradient")
}

/// [`crate::workloads::lse`] as tensor ops: `a + log Σ exp(x − a)` with the shift `a = max x`
/// detached, as difi's lse and JAX's `logsumexp` take it.
fn lse_tensor(x: &Tensor) -> Result<Tensor> {
    let shift = x.max_keepdim(0)?.detach();
    let sum = x.broadcast_sub(&shift)?.exp()?.sum_keepdim(0)?;
    (sum.log()? + shift)?.sum_all()
}

/// The gradient of [`crate::workloads::lse`] by candle.
///
/// # Panics
///
/// If candle reports an error (it does not for a non-empty vector of `f64` on the CPU).
pub fn lse_gradient_candle(x: &[f64]) -> Vec<f64> {
    candle_gradient(x, lse_tensor).expect("candle lse gradient")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::basic::rosenbrock_gradient;
    use crate::workloads::lse;
    use difi_core::{Active, Backend};
    use difi_tape::Tape;

    fn assert_close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    #[test]
    fn rosenbrock_matches_the_analytic_gradient() {
        let x: Vec<f64> = (0..50).map(|i| (i as f64 * 0.37).sin()).collect();
        assert_close(
            &rosenbrock_gradient_candle(&x),
            &rosenbrock_gradient(&x),
            1e-12,
        );
        assert_eq!(rosenbrock_gradient_candle(&[2.0]), vec![0.0]);
    }

    #[test]
    fn lse_matches_softmax_and_the_tape() {
        let x: Vec<f64> = (0..40).map(|i| 3.0 * (i as f64 * 0.61).cos()).collect();
        let g = lse_gradient_candle(&x);
        // d lse / dx = softmax(x).
        let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = x.iter().map(|v| (v - m).exp()).sum();
        let softmax: Vec<f64> = x.iter().map(|v| (v - m).exp() / z).collect();
        assert_close(&g, &softmax, 1e-12);
        let tape = Tape::new()
            .gradient(|x: Vec<_>| lse(&x), Active(&x))
            .unwrap();
        assert_close(&g, &tape, 1e-12);
    }
}
