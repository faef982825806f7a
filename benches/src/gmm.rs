//! gmm: the Gaussian mixture log posterior with GradBench's sign convention, and ADBench's file
//! reader.

use std::path::Path;

use difi_core::Real;

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

fn logsumexp<T: Real>(v: &[T]) -> T {
    let m = v.iter().fold(T::neg_infinity(), |m, &x| m.max(x));
    m + v.iter().fold(T::zero(), |s, &x| s + (x - m).exp()).ln()
}

/// The objective: `−n (d/2 log 2π + lse(α)) + Σ_i lse_k(β_ik) + K (n' d log(γ/√2) − log Γ_d(n'/2))
/// − γ²/2 Σ_k |Q_k|²_F + m Σ_k Σ_j q_kj`, with `β_ik = α_k − ½ |Q_k (x_i − μ_k)|² + Σ_j q_kj`.
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
    let sum_q: Vec<T> = (0..k)
        .map(|c| q[c * d..(c + 1) * d].iter().fold(T::zero(), |s, &v| s + v))
        .collect();
    let diag: Vec<T> = q.iter().map(|v| v.exp()).collect();
    let mut beta = vec![T::zero(); k];
    let mut z = vec![T::zero(); d];
    let mut total = T::zero();
    for i in 0..n {
        let xi = &x[i * d..(i + 1) * d];
        for c in 0..k {
            for r in 0..d {
                z[r] = xi[r] - mu[c * d + r];
            }
            // |Q z|² with Q lower triangular: diagonal exp(q), strict lower part column by column.
            let lc = &l[c * tri..(c + 1) * tri];
            let mut norm = T::zero();
            for r in 0..d {
                let mut qz = diag[c * d + r] * z[r];
                let mut offset = 0;
                for col in 0..r {
                    qz += lc[offset + (r - col - 1)] * z[col];
                    offset += d - 1 - col;
                }
                norm += qz * qz;
            }
            beta[c] = alpha[c] - half * norm + sum_q[c];
        }
        total += logsumexp(&beta);
    }
    let n_prime = (d + m + 1) as f64;
    let log_gamma_d = (d * (d - 1)) as f64 / 4.0 * std::f64::consts::PI.ln()
        + (1..=d)
            .map(|j| ln_gamma(n_prime / 2.0 + (1.0 - j as f64) / 2.0))
            .sum::<f64>();
    let constant = -(n as f64) * (d as f64 / 2.0) * (2.0 * std::f64::consts::PI).ln()
        + k as f64 * (n_prime * d as f64 * (gamma / 2f64.sqrt()).ln() - log_gamma_d);
    let frobenius = diag.iter().fold(T::zero(), |s, &v| s + v * v)
        + l.iter().fold(T::zero(), |s, &v| s + v * v);
    let all_q = sum_q.iter().fold(T::zero(), |s, &v| s + v);
    T::constant(constant) - T::constant(n as f64) * logsumexp(alpha) + total
        - T::constant(gamma * gamma / 2.0) * frobenius
        + T::constant(m as f64) * all_q
}

#[cfg(test)]
mod tests {
    use super::*;
    use difi_closure::Closure;
    use difi_core::{Active, Backend, Const, FiniteDifferences, NoTangent};
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

    #[test]
    fn gradient_matches_finite_differences_and_engines_agree() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/adbench/gmm/test.txt");
        let g = GmmInput::read(&path).expect("the ADBench test file beside the repository");
        let (d, k) = (g.d, g.k);
        let f = |(a, mu, q, l, x): (Vec<_>, Vec<_>, Vec<_>, Vec<_>, Vec<_>)| {
            gmm_objective(&a, &mu, &q, &l, &x, d, k, g.gamma, g.m)
        };
        let (ga, gmu, gq, gl, NoTangent) = Tape::new()
            .gradient(
                f,
                (
                    Active(&g.alpha),
                    Active(&g.mu),
                    Active(&g.q),
                    Active(&g.l),
                    Const(&g.x),
                ),
            )
            .unwrap();
        let fc = |(a, mu, q, l, x): (Vec<_>, Vec<_>, Vec<_>, Vec<_>, Vec<_>)| {
            gmm_objective(&a, &mu, &q, &l, &x, d, k, g.gamma, g.m)
        };
        let closure = Closure::default()
            .gradient(
                fc,
                (
                    Active(&g.alpha),
                    Active(&g.mu),
                    Active(&g.q),
                    Active(&g.l),
                    Const(&g.x),
                ),
            )
            .unwrap();
        let ff = |(a, mu, q, l, x): (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>)| {
            gmm_objective(&a, &mu, &q, &l, &x, d, k, g.gamma, g.m)
        };
        let (fa, fmu, fq, fl, NoTangent) = FiniteDifferences::default()
            .gradient(
                ff,
                (
                    Active(&g.alpha),
                    Active(&g.mu),
                    Active(&g.q),
                    Active(&g.l),
                    Const(&g.x),
                ),
            )
            .unwrap();
        for (got, want) in [(&ga, &fa), (&gmu, &fmu), (&gq, &fq), (&gl, &fl)] {
            for (a, b) in got.iter().zip(want.iter()) {
                assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
            }
        }
        // The engines accumulate in different orders: agreement to rounding.
        for (c, t) in [
            (&closure.0, &ga),
            (&closure.1, &gmu),
            (&closure.2, &gq),
            (&closure.3, &gl),
        ] {
            for (a, b) in c.iter().zip(t.iter()) {
                assert!(
                    (a - b).abs() <= 1e-13 * b.abs().max(1.0),
                    "closure {a} vs tape {b}"
                );
            }
        }
    }
}
