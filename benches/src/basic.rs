//! The two small workloads used by every engine's bench: Rosenbrock and the ad_trait paper's
//! chain.

use difi_core::{sum_map, Elementwise, Real};
use ndarray::ArrayView1;

/// The extended Rosenbrock function `Σ (1 - x_i)² + 100 (x_{i+1} - x_i²)²`.
///
/// ```
/// assert_eq!(difi_benches::basic::rosenbrock(&[1.0_f64; 5]), 0.0);
/// ```
pub fn rosenbrock<T: Real>(x: &[T]) -> T {
    let (one, hundred) = (T::constant(1.0), T::constant(100.0));
    x.windows(2).fold(T::zero(), |s, w| {
        let a = one - w[0];
        let b = w[1] - w[0] * w[0];
        s + a * a + hundred * b * b
    })
}

/// [`rosenbrock`] written as a sum over elements of one scalar term ([`sum_map`]): the same
/// terms added in the same order (each term whole before it is added, so the last bits can
/// differ from the loop's). A reverse engine records one node for the whole sum and
/// differentiates the term element by element, where the loop records eight nodes per element.
///
/// ```
/// use difi_benches::basic::{rosenbrock, rosenbrock_sum_map};
/// let x = [0.5_f64, -1.0, 2.0, 0.25];
/// assert!((rosenbrock_sum_map(&x) - rosenbrock(&x)).abs() < 1e-12 * rosenbrock(&x));
/// ```
pub fn rosenbrock_sum_map<T: Real>(x: &[T]) -> T {
    if x.len() < 2 {
        return T::zero();
    }
    let n = x.len();
    sum_map(
        &RosenbrockTerm,
        [ArrayView1::from(&x[..n - 1]), ArrayView1::from(&x[1..])],
    )
}

/// One term of [`rosenbrock`]: `(1 − a)² + 100 (b − a²)²`.
#[derive(Clone, Copy, Debug)]
struct RosenbrockTerm;

impl Elementwise<2> for RosenbrockTerm {
    #[inline]
    fn eval<T: Real>(&self, [a, b]: [T; 2]) -> T {
        let u = T::constant(1.0) - a;
        let v = b - a * a;
        u * u + T::constant(100.0) * v * v
    }
}

/// The analytic gradient of [`rosenbrock`], the reference for tests.
pub fn rosenbrock_gradient(x: &[f64]) -> Vec<f64> {
    let mut g = vec![0.0; x.len()];
    for i in 0..x.len().saturating_sub(1) {
        let b = x[i + 1] - x[i] * x[i];
        g[i] += -2.0 * (1.0 - x[i]) - 400.0 * x[i] * b;
        g[i + 1] += 200.0 * b;
    }
    g
}

/// The chain workload of the ad_trait paper: `f: Rⁿ → Rᵐ`, each output a chain of `steps`
/// steps alternating `t = sin(cos(t) + x_r)` and `t = cos(sin(t) + x_r)`, with the input index
/// `r` of each step drawn pseudo-randomly (fixed at construction, so every engine and every
/// call sees the same chain). Each chain starts from `t = x_{r₀}`.
#[derive(Clone, Debug)]
pub struct Chain {
    /// Number of inputs.
    pub n: usize,
    /// Number of outputs.
    pub m: usize,
    /// Steps per output.
    pub steps: usize,
    /// `indices[j * (steps + 1) + k]`: the input read at step `k` of output `j` (`k = 0`: start).
    indices: Vec<usize>,
}

impl Chain {
    /// A chain with `n` inputs, `m` outputs and `steps` steps per output, indices from a fixed
    /// 64-bit linear congruential stream.
    pub fn new(n: usize, m: usize, steps: usize) -> Chain {
        assert!(n > 0, "Chain::new: needs at least one input");
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let indices = (0..m * (steps + 1))
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) % n as u64) as usize
            })
            .collect();
        Chain {
            n,
            m,
            steps,
            indices,
        }
    }

    /// Evaluates all outputs.
    ///
    /// ```
    /// let c = difi_benches::basic::Chain::new(4, 2, 10);
    /// let y = c.eval(&[0.1_f64, 0.2, 0.3, 0.4]);
    /// assert_eq!(y.len(), 2);
    /// ```
    pub fn eval<T: Real>(&self, x: &[T]) -> Vec<T> {
        self.eval_with(x, |even, t, xr| {
            if even {
                (t.cos() + xr).sin()
            } else {
                (t.sin() + xr).cos()
            }
        })
    }

    /// The chain's loop with the step given: `step(even, t, x_r)` is one step, `even` for
    /// steps 0, 2, .... Peers whose scalars are not [`Real`] run the same chain through it.
    ///
    /// ```
    /// let c = difi_benches::basic::Chain::new(4, 2, 10);
    /// let x = [0.1_f64, 0.2, 0.3, 0.4];
    /// let y = c.eval_with(&x, |even, t, xr| if even { (t.cos() + xr).sin() } else { (t.sin() + xr).cos() });
    /// assert_eq!(y, c.eval(&x));
    /// ```
    #[inline(always)]
    pub fn eval_with<T: Copy>(&self, x: &[T], step: impl Fn(bool, T, T) -> T) -> Vec<T> {
        assert_eq!(x.len(), self.n, "Chain::eval: expected {} inputs", self.n);
        (0..self.m)
            .map(|j| {
                let idx = &self.indices[j * (self.steps + 1)..(j + 1) * (self.steps + 1)];
                let mut t = x[idx[0]];
                for (k, &r) in idx[1..].iter().enumerate() {
                    t = step(k % 2 == 0, t, x[r]);
                }
                t
            })
            .collect()
    }
}
