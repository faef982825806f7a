//! Heavy peers, built only with `--features heavy-peers`: candle (`candle-core` 0.11), a tensor
//! framework with reverse-mode autograd, on the workloads a tensor user would write as whole-array
//! expressions: Rosenbrock, lse and gmm.
//!
//! Each gradient is what a candle user writes: the input becomes a [`Var`] on the CPU (f64), the
//! function is a few tensor ops (every op allocates its result and records a graph node), and
//! `backward` returns the gradient store. Scalar-chain workloads (the ad_trait chain, ode, det)
//! have no tensor form and are not measured here. burn is not included: its autodiff backend
//! builds several times longer than candle for the same comparisons.
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

use candle_core::{DType, Device, Result, Tensor, Var, D};

use crate::gmm::{gmm_constant, GmmInput};

/// Runs candle's CPU kernels on one thread (unless `CANDLE_NUM_THREADS` says otherwise), as
/// difi's engines run: a per-core comparison. Call it first, before any thread or candle op
/// exists. On two cores its thread pool made gmm's gradient slower, not faster (about 15 ms
/// against 9 on one thread).
pub fn single_threaded() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

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
    logsumexp(x, 0)?.sum_all()
}

/// The gradient of [`crate::workloads::lse`] by candle.
///
/// # Panics
///
/// If candle reports an error (it does not for a non-empty vector of `f64` on the CPU).
pub fn lse_gradient_candle(x: &[f64]) -> Vec<f64> {
    candle_gradient(x, lse_tensor).expect("candle lse gradient")
}

/// `log Σ exp` along `dim` (kept), the maximum shifted out and detached.
fn logsumexp(t: &Tensor, dim: usize) -> Result<Tensor> {
    let shift = t.max_keepdim(dim)?.detach();
    t.broadcast_sub(&shift)?
        .exp()?
        .sum_keepdim(dim)?
        .log()?
        .add(&shift)
}

/// [`crate::gmm::gmm_objective`] and its gradient with respect to `(alpha, mu, q, l)` by candle,
/// from the formula as a tensor user writes it: `Q_k` assembled densely (`exp(q_k)` on the
/// diagonal, `l_k` placed by a constant 0/1 matrix), `Q_k (x_i − μ_k)` for all `k` and `i` in
/// one batched product, log-sum-exp over components, then the prior.
///
/// # Panics
///
/// If candle reports an error (it does not for a well-formed input on the CPU).
pub fn gmm_candle(g: &GmmInput) -> (f64, [Vec<f64>; 4]) {
    gmm_candle_result(g).expect("candle gmm gradient")
}

fn gmm_candle_result(g: &GmmInput) -> Result<(f64, [Vec<f64>; 4])> {
    let (d, k, n, cpu) = (g.d, g.k, g.n, &Device::Cpu);
    let tri = d * (d - 1) / 2;
    let alpha = Var::from_slice(&g.alpha, k, cpu)?;
    let mu = Var::from_slice(&g.mu, (k, d), cpu)?;
    let q = Var::from_slice(&g.q, (k, d), cpu)?;
    let l = Var::from_slice(&g.l, (k, tri), cpu)?;
    let x = Tensor::from_slice(&g.x, (n, d), cpu)?;
    // Placement of l_k in Q_k: column by column, rows below the diagonal.
    let mut placement = vec![0.0; tri.max(1) * d * d];
    let mut t = 0;
    for col in 0..d {
        for row in col + 1..d {
            placement[t * d * d + row * d + col] = 1.0;
            t += 1;
        }
    }
    let placement = Tensor::from_vec(placement, (tri.max(1), d * d), cpu)?;
    let diag = q.exp()?;
    let eye = Tensor::eye(d, DType::F64, cpu)?;
    let mut factor = diag.unsqueeze(2)?.broadcast_mul(&eye.unsqueeze(0)?)?;
    if tri > 0 {
        factor = (factor + l.matmul(&placement)?.reshape((k, d, d))?)?;
    }
    // (K, n, d): x_i − μ_k, times Q_kᵀ on the right, so row i is Q_k (x_i − μ_k).
    let centred = x.unsqueeze(0)?.broadcast_sub(&mu.unsqueeze(1)?)?;
    let mahalanobis = centred
        .matmul(&factor.transpose(1, 2)?.contiguous()?)?
        .sqr()?
        .sum(D::Minus1)?;
    let beta = alpha
        .unsqueeze(1)?
        .broadcast_add(&q.sum_keepdim(1)?)?
        .broadcast_sub(&mahalanobis.affine(0.5, 0.0)?)?;
    let data = logsumexp(&beta, 0)?.sum_all()?;
    let mixture = logsumexp(alpha.as_tensor(), 0)?
        .sum_all()?
        .affine(n as f64, 0.0)?;
    let frobenius = (diag.sqr()?.sum_all()? + l.sqr()?.sum_all()?)?;
    let constant = gmm_constant(d, k, n, g.gamma, g.m);
    let objective = ((data - mixture)?
        + frobenius.affine(-g.gamma * g.gamma / 2.0, constant)?
        + q.sum_all()?.affine(g.m as f64, 0.0)?)?;
    let grads = objective.backward()?;
    let grad_of = |v: &Var, len: usize| -> Result<Vec<f64>> {
        match grads.get(v.as_tensor()) {
            Some(t) => t.flatten_all()?.to_vec1::<f64>(),
            None => Ok(vec![0.0; len]),
        }
    };
    Ok((
        objective.to_scalar::<f64>()?,
        [
            grad_of(&alpha, k)?,
            grad_of(&mu, k * d)?,
            grad_of(&q, k * d)?,
            grad_of(&l, k * tri)?,
        ],
    ))
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
    fn gmm_matches_the_objective_and_the_tape_gradient() {
        use crate::gmm::{gmm_gradient, gmm_objective};
        let (d, k, n) = (3, 4, 7);
        let draw = |len: usize, seed: f64| -> Vec<f64> {
            (0..len).map(|i| (i as f64 * 0.71 + seed).sin()).collect()
        };
        let g = GmmInput {
            d,
            k,
            n,
            alpha: draw(k, 0.1),
            mu: draw(k * d, 0.2),
            q: draw(k * d, 0.3),
            l: draw(k * d * (d - 1) / 2, 0.4),
            x: draw(n * d, 0.5),
            gamma: 1.3,
            m: 2,
        };
        let (value, grads) = gmm_candle(&g);
        let want = gmm_objective(&g.alpha, &g.mu, &g.q, &g.l, &g.x, d, k, g.gamma, g.m);
        assert!(
            (value - want).abs() < 1e-10 * want.abs().max(1.0),
            "{value} vs {want}"
        );
        let tape = gmm_gradient(&Tape::new(), &g).unwrap();
        for (got, want) in grads.iter().zip(&tape) {
            assert_close(got, want, 1e-10);
        }
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
