//! gmm: the Gaussian mixture log posterior with GradBench's sign convention, and ADBench's file
//! reader.

use std::path::Path;

use difi_core::{Active, Backend, Const, NoTangent, Real};
use ndarray::{Array2, ArrayView1};

use crate::workloads::lse;

/// One gmm problem as ADBench stores it.
#[derive(Clone, Debug)]
pub struct GmmInput {
    /// Dimension.
    pub d: usize,
    /// Components.
    pub k: usize,
    /// Points.
    pub n: usize,
    /// Mixture weights (log), `k`.
    pub alpha: Vec<f64>,
    /// Means, `k × d` row-major.
    pub mu: Vec<f64>,
    /// Log-diagonals of the inverse covariance factors, `k × d`.
    pub q: Vec<f64>,
    /// Strict lower parts, column by column, `k × d(d−1)/2`.
    pub l: Vec<f64>,
    /// Points, `n × d`.
    pub x: Vec<f64>,
    /// Wishart prior γ.
    pub gamma: f64,
    /// Wishart prior m.
    pub m: usize,
}

impl GmmInput {
    /// Reads ADBench's format: `d k n`, alpha, mu, icf (q then l per component), x, `gamma m`.
    pub fn read(path: &Path) -> Result<GmmInput, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        GmmInput::parse(&text)
    }

    /// Parses ADBench's format from text.
    pub fn parse(text: &str) -> Result<GmmInput, String> {
        let mut tokens = text.split_whitespace();
        let mut next = |what: &str| -> Result<f64, String> {
            tokens
                .next()
                .ok_or(format!("gmm file ends before {what}"))?
                .parse::<f64>()
                .map_err(|e| format!("gmm file: {what}: {e}"))
        };
        let (d, k, n) = (
            next("d")? as usize,
            next("k")? as usize,
            next("n")? as usize,
        );
        let tri = d * (d - 1) / 2;
        let alpha = (0..k)
            .map(|_| next("alpha"))
            .collect::<Result<Vec<_>, _>>()?;
        let mu = (0..k * d)
            .map(|_| next("mu"))
            .collect::<Result<Vec<_>, _>>()?;
        let (mut q, mut l) = (Vec::new(), Vec::new());
        for _ in 0..k {
            for _ in 0..d {
                q.push(next("icf")?);
            }
            for _ in 0..tri {
                l.push(next("icf")?);
            }
        }
        let x = (0..n * d)
            .map(|_| next("x"))
            .collect::<Result<Vec<_>, _>>()?;
        let gamma = next("gamma")?;
        let m = next("m")? as usize;
        Ok(GmmInput {
            d,
            k,
            n,
            alpha,
            mu,
            q,
            l,
            x,
            gamma,
            m,
        })
    }
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7): used only for the prior's constant term.
pub fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let s = G[1..]
        .iter()
        .enumerate()
        .fold(G[0], |s, (i, g)| s + g / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + s.ln()
}

/// The objective: `−n (d/2 log 2π + lse(α)) + Σ_i lse_k(β_ik) + K (n' d log(γ/√2) − log Γ_d(n'/2))
/// − γ²/2 Σ_k |Q_k|²_F + m Σ_k Σ_j q_kj`, with `β_ik = α_k − ½ |Q_k (x_i − μ_k)|² + Σ_j q_kj`.
///
/// Written with array products, as a JAX user would write it, so reverse engines record a few
/// array nodes instead of one node per multiply-add. With `S_k = Q_kᵀ Q_k`,
/// `|Q_k (x − μ_k)|² = xᵀ S_k x − 2 xᵀ S_k μ_k + μ_kᵀ S_k μ_k`, so every `β_ik` is the product of
/// the features `[−½ vec(x_i x_iᵀ), x_i, 1]` (constant when `x` is) with the column
/// `[vec(S_k), S_k μ_k, α_k + Σ_j q_kj − ½ μ_kᵀ S_k μ_k]`: all of `β` is one `n × K` matmul.
/// The expansion loses to cancellation what the terms exceed their difference by; on ADBench's
/// data each point's term agrees with the direct sum to 1e-12 relative (a test checks this).
///
/// ```
/// use difi_benches::gmm::gmm_objective;
/// // One component, one point in 1-D with α = μ = q = 0, x = 1, γ = 1, m = 0:
/// // β = −½, the prior is −½ |Q|² = −½, the constant −½ log 2π − log 2.
/// let value = gmm_objective(&[0.0], &[0.0], &[0.0], &[], &[1.0], 1, 1, 1.0, 0);
/// let want = -0.5 * (2.0 * std::f64::consts::PI).ln() - 2f64.ln() - 1.0;
/// assert!((value - want).abs() < 1e-14);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn gmm_objective<T: Real>(
    alpha: &[T],
    mu: &[T],
    q: &[T],
    l: &[T],
    x: &[T],
    d: usize,
    k: usize,
    gamma: f64,
    m: usize,
) -> T {
    let n = x.len() / d;
    let tri = d * (d - 1) / 2;
    let half = T::constant(0.5);
    let sum_q: Vec<T> = q
        .chunks(d)
        .map(|qc| T::sum_all(ArrayView1::from(qc)))
        .collect();
    let diag: Vec<T> = q.iter().map(|v| v.exp()).collect();
    let width = d * d + d + 1;
    let mut coefficients = Array2::<T>::zeros((width, k));
    let mut qc = Array2::<T>::zeros((d, d));
    for c in 0..k {
        // Q_k: diagonal exp(q), strict lower part column by column.
        let lc = &l[c * tri..(c + 1) * tri];
        let mut offset = 0;
        for col in 0..d {
            qc[[col, col]] = diag[c * d + col];
            for r in col + 1..d {
                qc[[r, col]] = lc[offset + (r - col - 1)];
            }
            offset += d - 1 - col;
        }
        let s = T::matmul(qc.t(), qc.view());
        let muc = ArrayView1::from(&mu[c * d..(c + 1) * d]);
        let s_mu = T::matvec(s.view(), muc);
        let mu_s_mu = T::dot(muc, s_mu.view());
        let mut column = coefficients.column_mut(c);
        for (j, &v) in s.iter().enumerate() {
            column[j] = v;
        }
        for (r, &v) in s_mu.iter().enumerate() {
            column[d * d + r] = v;
        }
        column[width - 1] = alpha[c] + sum_q[c] - half * mu_s_mu;
    }
    let mut features = Array2::<T>::zeros((n, width));
    for (xi, mut row) in x.chunks(d).zip(features.rows_mut()) {
        for r in 0..d {
            for s in 0..d {
                row[r * d + s] = -half * xi[r] * xi[s];
            }
            row[d * d + r] = xi[r];
        }
        row[width - 1] = T::one();
    }
    let beta = T::matmul(features.view(), coefficients.view());
    let per_point: Vec<T> = beta
        .as_slice()
        .expect("a fresh matmul result is contiguous")
        .chunks(k)
        .map(lse)
        .collect();
    let total = T::sum_all(ArrayView1::from(&per_point[..]));
    let constant = gmm_constant(d, k, n, gamma, m);
    let diag = ArrayView1::from(&diag[..]);
    let l = ArrayView1::from(l);
    let frobenius = T::dot(diag, diag) + T::dot(l, l);
    let all_q = T::sum_all(ArrayView1::from(&sum_q[..]));
    T::constant(constant) - T::constant(n as f64) * lse(alpha) + total
        - T::constant(gamma * gamma / 2.0) * frobenius
        + T::constant(m as f64) * all_q
}

/// The gradient of [`gmm_objective`] at `g` with respect to `alpha`, `mu`, `q` and `l` (the
/// points constant) on `backend`, in that order.
pub fn gmm_gradient<B: Backend>(backend: &B, g: &GmmInput) -> difi_core::Result<[Vec<f64>; 4]> {
    let (d, k) = (g.d, g.k);
    let (alpha, mu, q, l, NoTangent) = backend.gradient(
        |(a, mu, q, l, x): (Vec<_>, Vec<_>, Vec<_>, Vec<_>, Vec<_>)| {
            gmm_objective(&a, &mu, &q, &l, &x, d, k, g.gamma, g.m)
        },
        (
            Active(&g.alpha),
            Active(&g.mu),
            Active(&g.q),
            Active(&g.l),
            Const(&g.x),
        ),
    )?;
    Ok([alpha, mu, q, l])
}

/// The terms of [`gmm_objective`] that no parameter enters:
/// `−n d/2 log(2π) + K (n' d log(γ/√2) − log Γ_d(n'/2))` with `n' = d + m + 1`.
pub fn gmm_constant(d: usize, k: usize, n: usize, gamma: f64, m: usize) -> f64 {
    let n_prime = (d + m + 1) as f64;
    let log_gamma_d = (d * (d - 1)) as f64 / 4.0 * std::f64::consts::PI.ln()
        + (1..=d)
            .map(|j| ln_gamma(n_prime / 2.0 + (1.0 - j as f64) / 2.0))
            .sum::<f64>();
    -(n as f64) * (d as f64 / 2.0) * (2.0 * std::f64::consts::PI).ln()
        + k as f64 * (n_prime * d as f64 * (gamma / 2f64.sqrt()).ln() - log_gamma_d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use difi_closure::Closure;
    use difi_core::FiniteDifferences;
    use difi_tape::Tape;

    #[test]
    fn ln_gamma_matches_known_values() {
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-13);
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((ln_gamma(10.5) - 1133278.3889487855f64.ln()).abs() < 1e-10);
    }

    #[test]
    fn one_component_one_point_matches_the_formula_by_hand() {
        // d = 1, K = 1: β = α − ½ (e^q (x − μ))² + q; lse over one component is the value.
        let (alpha, mu, q, x, gamma, m) = (0.3_f64, 0.5, 0.2_f64, 1.5, 1.0, 0usize);
        let got = gmm_objective(&[alpha], &[mu], &[q], &[], &[x], 1, 1, gamma, m);
        let beta = alpha - 0.5 * (q.exp() * (x - mu)).powi(2) + q;
        let n_prime = 2.0;
        let constant = -0.5 * (2.0 * std::f64::consts::PI).ln()
            + (n_prime * (gamma / 2f64.sqrt()).ln() - ln_gamma(n_prime / 2.0));
        let want = constant - alpha + beta - 0.5 * q.exp().powi(2);
        assert!((got - want).abs() < 1e-14, "{got} vs {want}");
    }

    /// `lse_k β_k` for one point summed directly, component by component: the reference for the
    /// matmul expansion's rounding.
    fn direct_point_lse(g: &GmmInput, xi: &[f64]) -> f64 {
        let (d, k) = (g.d, g.k);
        let tri = d * (d - 1) / 2;
        let beta: Vec<f64> = (0..k)
            .map(|c| {
                let z: Vec<f64> = (0..d).map(|r| xi[r] - g.mu[c * d + r]).collect();
                let lc = &g.l[c * tri..(c + 1) * tri];
                let mut norm = 0.0;
                for r in 0..d {
                    let mut qz = g.q[c * d + r].exp() * z[r];
                    let mut offset = 0;
                    for col in 0..r {
                        qz += lc[offset + (r - col - 1)] * z[col];
                        offset += d - 1 - col;
                    }
                    norm += qz * qz;
                }
                g.alpha[c] - 0.5 * norm + g.q[c * d..(c + 1) * d].iter().sum::<f64>()
            })
            .collect();
        let top = beta.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        top + beta.iter().map(|b| (b - top).exp()).sum::<f64>().ln()
    }

    #[test]
    fn the_matmul_expansion_agrees_with_the_direct_sum_on_adbench_data() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/adbench/gmm/1k/gmm_d10_K25.txt");
        let g = GmmInput::read(&path).expect("the ADBench file beside the repository");
        let (d, k) = (g.d, g.k);
        // The objective of one point minus that of none is that point's lse_k β_k, less the
        // per-point constant and lse(α).
        let none = gmm_objective(&g.alpha, &g.mu, &g.q, &g.l, &[], d, k, g.gamma, g.m);
        let per_point = -(d as f64 / 2.0) * (2.0 * std::f64::consts::PI).ln()
            - g.alpha.iter().map(|a| a.exp()).sum::<f64>().ln();
        let mut worst = 0f64;
        for xi in g.x.chunks(d).step_by(25) {
            let one = gmm_objective(&g.alpha, &g.mu, &g.q, &g.l, xi, d, k, g.gamma, g.m);
            let got = one - none - per_point;
            let want = direct_point_lse(&g, xi);
            worst = worst.max((got - want).abs() / want.abs());
        }
        assert!(worst <= 1e-12, "relative error of the expansion {worst}");
    }

    #[test]
    fn gradient_matches_finite_differences_and_engines_agree() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/adbench/gmm/test.txt");
        let g = GmmInput::read(&path).expect("the ADBench test file beside the repository");
        let tape = gmm_gradient(&Tape::new(), &g).unwrap();
        let closure = gmm_gradient(&Closure::default(), &g).unwrap();
        let fd = gmm_gradient(&FiniteDifferences::default(), &g).unwrap();
        for (got, want) in tape.iter().zip(&fd) {
            for (a, b) in got.iter().zip(want) {
                assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
            }
        }
        // The engines accumulate in different orders: agreement to rounding.
        for (c, t) in closure.iter().zip(&tape) {
            for (a, b) in c.iter().zip(t) {
                assert!(
                    (a - b).abs() <= 1e-13 * b.abs().max(1.0),
                    "closure {a} vs tape {b}"
                );
            }
        }
    }
}
