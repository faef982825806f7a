//! GradBench workloads written once over `T: Real` (formulas in `shared/WORKLOADS.md`): the
//! `f64` instantiation is the primal, every engine runs the same code.

use difi_core::{checkpoint, sum_map, Elementwise, Real, Segment};
use ndarray::{Array1, Array2, ArrayView1};

/// llsq: `½ Σ_i (s_i − Σ_j x_j t_i^j)²` with `t_i = −1 + 2i/(n−1)` and `s_i = sign(t_i)`,
/// written as `½ |s − V x|²` with the constant Vandermonde matrix `V_ij = t_i^j`: one
/// matrix-vector product and one dot product, which engines record as one node each (and `V`,
/// constant, costs them nothing).
pub fn llsq<T: Real>(x: &[T], n: usize) -> T {
    let m = x.len();
    let mut vandermonde = Vec::with_capacity(n * m);
    let mut signs = Vec::with_capacity(n);
    for i in 0..n {
        let t = -1.0 + 2.0 * i as f64 / (n as f64 - 1.0).max(1.0);
        signs.push(if t > 0.0 {
            1.0
        } else if t < 0.0 {
            -1.0
        } else {
            0.0
        });
        let mut pow = 1.0;
        for _ in 0..m {
            vandermonde.push(T::constant(pow));
            pow *= t;
        }
    }
    let vandermonde = Array2::from_shape_vec((n, m), vandermonde).expect("n × m");
    let fit = T::matvec(vandermonde.view(), ArrayView1::from(x));
    let residual: Array1<T> = signs
        .iter()
        .zip(&fit)
        .map(|(&s, &f)| T::constant(s) - f)
        .collect();
    T::constant(0.5) * T::dot(residual.view(), residual.view())
}

/// lse: `a + log Σ exp(x_i − a)` with `a = max x`, from primitives. The shift `a` cancels
/// exactly, so it is a constant taken from the primal values (JAX's `logsumexp` stops its
/// gradient likewise): its derivative, zero, is not recorded. The sum of exponentials is one
/// [`sum_map`], which reverse engines record as one node.
pub fn lse<T: Real>(x: &[T]) -> T {
    let shift = x
        .iter()
        .map(|v| v.innermost())
        .fold(f64::NEG_INFINITY, f64::max);
    T::constant(shift) + sum_map(&ShiftedExp { shift }, [ArrayView1::from(x)]).ln()
}

/// `exp(x − shift)`, the terms of [`lse`].
#[derive(Clone, Copy, Debug)]
struct ShiftedExp {
    shift: f64,
}

impl Elementwise<1> for ShiftedExp {
    #[inline]
    fn eval<T: Real>(&self, [x]: [T; 1]) -> T {
        (x - T::constant(self.shift)).exp()
    }
}

/// det: determinant of the `ell × ell` row-major matrix by expansion by minors along the first
/// row, recursively.
pub fn det<T: Real>(a: &[T], ell: usize) -> T {
    assert_eq!(
        a.len(),
        ell * ell,
        "det: A has {} entries, not ell² = {}",
        a.len(),
        ell * ell
    );
    let rows: Vec<usize> = (0..ell).collect();
    let cols: Vec<usize> = (0..ell).collect();
    minor(a, ell, &rows, &cols)
}

fn minor<T: Real>(a: &[T], ell: usize, rows: &[usize], cols: &[usize]) -> T {
    match cols.len() {
        0 => T::one(),
        1 => a[rows[0] * ell + cols[0]],
        _ => {
            let (r, rest) = (rows[0], &rows[1..]);
            let mut acc = T::zero();
            for (k, &c) in cols.iter().enumerate() {
                let sub: Vec<usize> = cols.iter().copied().filter(|&x| x != c).collect();
                let term = a[r * ell + c] * minor(a, ell, rest, &sub);
                acc = if k % 2 == 0 { acc + term } else { acc - term };
            }
            acc
        }
    }
}

/// ode: `y₀' = x₀`, `yᵢ' = xᵢ yᵢ₋₁`, `y(0) = 0`, classic RK4 in `s` steps to `t = 2`.
///
/// Each step is a [`checkpoint`]ed segment: reverse engines keep only the states between
/// steps and recompute one step at a time in reverse, so the working set stays in cache
/// (recorded whole, the tape is 1.7M nodes, 39 MB, at n = 100, s = 1000).
///
/// # Panics
///
/// If `s` is 0: no step reaches `t = 2`.
pub fn ode<T: Real>(x: &[T], s: usize) -> Vec<T> {
    assert!(
        s > 0,
        "ode: s (the number of steps to t = 2) must be at least 1"
    );
    let n = x.len();
    let step = Rk4Step {
        n,
        h: 2.0 / s as f64,
    };
    let mut state: Vec<T> = vec![T::zero(); n];
    state.extend_from_slice(x);
    for _ in 0..s {
        let y = checkpoint(&step, &state);
        state[..n].copy_from_slice(&y);
    }
    state.truncate(n);
    state
}

/// One RK4 step of [`ode`]: inputs `[y, x]`, output the next `y`.
#[derive(Clone, Debug)]
struct Rk4Step {
    n: usize,
    h: f64,
}

impl Segment for Rk4Step {
    fn eval<T: Real>(&self, inputs: &[T]) -> Vec<T> {
        let (y, x) = inputs.split_at(self.n);
        let n = self.n;
        let h = T::constant(self.h);
        let rhs = |y: &[T]| -> Vec<T> {
            (0..n)
                .map(|i| if i == 0 { x[0] } else { x[i] * y[i - 1] })
                .collect()
        };
        let (half, two, sixth) = (T::constant(0.5), T::constant(2.0), T::constant(1.0 / 6.0));
        let k1 = rhs(y);
        let y2: Vec<T> = (0..n).map(|i| y[i] + half * h * k1[i]).collect();
        let k2 = rhs(&y2);
        let y3: Vec<T> = (0..n).map(|i| y[i] + half * h * k2[i]).collect();
        let k3 = rhs(&y3);
        let y4: Vec<T> = (0..n).map(|i| y[i] + h * k3[i]).collect();
        let k4 = rhs(&y4);
        (0..n)
            .map(|i| y[i] + h * sixth * (k1[i] + two * k2[i] + two * k3[i] + k4[i]))
            .collect()
    }
}

/// kmeans cost: `Σ_i min_j |C_j − P_i|²`, centroids and points flat row-major with dimension `d`.
///
/// The derivative of `min_j` is that of the nearest centroid's distance (what a `min` rule's
/// pullback does), so the nearest centroid is chosen on primal values and only its distance is
/// computed in `T`: the other `k − 1` distances would carry no derivative, and on a tape they
/// were 99% of the records at k = 100. The `f64` instantiation pays `1/k` more than a plain
/// loop for it.
pub fn kmeans_cost<T: Real>(centroids: &[T], points: &[T], d: usize) -> T {
    fn sq_dist<T: Real>(c: &[T], p: &[T]) -> T {
        c.iter()
            .zip(p)
            .fold(T::zero(), |s, (&a, &b)| s + (a - b) * (a - b))
    }
    // Plain values read once: on a tape each read of an active tracer's value is noted (such a
    // recording is never replayed), and k·n reads would cost more than the primal.
    let plain = |xs: &[T]| xs.iter().map(|x| x.innermost()).collect::<Vec<f64>>();
    let (plain_centroids, plain_points) = (plain(centroids), plain(points));
    let sq_dist_plain =
        |c: &[f64], p: &[f64]| -> f64 { c.iter().zip(p).map(|(a, b)| (a - b).powi(2)).sum() };
    points
        .chunks(d)
        .zip(plain_points.chunks(d))
        .fold(T::zero(), |acc, (p, pp)| {
            let mut nearest: Option<(f64, &[T])> = None;
            for (c, cp) in centroids.chunks(d).zip(plain_centroids.chunks(d)) {
                let dist = sq_dist_plain(cp, pp);
                if nearest.is_none_or(|(best, _)| dist < best) {
                    nearest = Some((dist, c));
                }
            }
            match nearest {
                Some((_, c)) => acc + sq_dist(c, p),
                None => acc + T::infinity(),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mt19937::Mt19937;
    use difi_closure::Closure;
    use difi_core::{Active, Backend, Const, FiniteDifferences, NoTangent, SecondOrder};
    use difi_forward::ForwardOverReverse;
    use difi_tape::Tape;

    fn draws(r: &mut Mt19937, n: usize) -> Vec<f64> {
        (0..n).map(|_| r.next_f64()).collect()
    }

    fn close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * y.abs().max(1.0),
                "entry {i}: {x} vs {y}"
            );
        }
    }

    /// Gradient on the tape, the closure engine and finite differences agree.
    fn check_gradient(
        f: impl Fn(&[f64]) -> f64,
        tape: Vec<f64>,
        closure: Vec<f64>,
        x: &[f64],
        tol: f64,
    ) {
        let fd = FiniteDifferences::default()
            .gradient(|x: Vec<f64>| f(&x), Active(&x.to_vec()))
            .unwrap();
        close(&tape, &fd, tol);
        close(&closure, &tape, 1e-12);
    }

    #[test]
    fn llsq_lse_det_ode_gradients() {
        let mut r = Mt19937::new(31337);
        let x = draws(&mut r, 8);
        check_gradient(
            |x| llsq(x, 20),
            Tape::new()
                .gradient(|x: Vec<_>| llsq(&x, 20), Active(&x))
                .unwrap(),
            Closure::default()
                .gradient(|x: Vec<_>| llsq(&x, 20), Active(&x))
                .unwrap(),
            &x,
            1e-6,
        );
        check_gradient(
            lse,
            Tape::new()
                .gradient(|x: Vec<_>| lse(&x), Active(&x))
                .unwrap(),
            Closure::default()
                .gradient(|x: Vec<_>| lse(&x), Active(&x))
                .unwrap(),
            &x,
            1e-6,
        );
        let a = draws(&mut r, 16);
        let g = Tape::new()
            .gradient(|a: Vec<_>| det(&a, 4), Active(&a))
            .unwrap();
        check_gradient(
            |a| det(a, 4),
            g.clone(),
            Closure::default()
                .gradient(|a: Vec<_>| det(&a, 4), Active(&a))
                .unwrap(),
            &a,
            1e-6,
        );
        // Jacobi's formula: ∇ det(A) = det(A) A^{-T}, so Σ_j A_ij ∇_ij = det(A) for each row i.
        let d = det(&a, 4);
        for i in 0..4 {
            let row: f64 = (0..4).map(|j| a[i * 4 + j] * g[i * 4 + j]).sum();
            assert!(
                (row - d).abs() < 1e-12 * d.abs().max(1.0),
                "row {i}: {row} vs {d}"
            );
        }
        let x = draws(&mut r, 4);
        check_gradient(
            |x| *ode(x, 10).last().unwrap(),
            Tape::new()
                .gradient(|x: Vec<_>| *ode(&x, 10).last().unwrap(), Active(&x))
                .unwrap(),
            Closure::default()
                .gradient(|x: Vec<_>| *ode(&x, 10).last().unwrap(), Active(&x))
                .unwrap(),
            &x,
            1e-6,
        );
    }

    #[test]
    fn kmeans_dir_by_one_hvp_equals_gradient_over_hessian_diagonal() {
        let mut r = Mt19937::new(31337);
        let (k, n, d) = (3, 12, 2);
        let c = draws(&mut r, k * d);
        let p = draws(&mut r, n * d);
        let b = ForwardOverReverse::<Tape>::default();
        let f = |(c, p): (Vec<_>, Vec<_>)| kmeans_cost(&c, &p, d);
        let ones = vec![1.0; k * d];
        let (g, NoTangent) = Tape::new().gradient(f, (Active(&c), Const(&p))).unwrap();
        let f2 = |(c, p): (Vec<_>, Vec<_>)| kmeans_cost(&c, &p, d);
        let ((g2, NoTangent), (hdiag, NoTangent)) = b
            .gradient_and_hvp(f2, (Active(&c), Const(&p)), &(ones, NoTangent))
            .unwrap();
        close(&g2, &g, 1e-14);
        // The Hessian is diagonal (2 × points assigned to the centroid), so H·1 is its diagonal.
        let h = b
            .hessian(
                |c: Vec<_>| {
                    kmeans_cost(
                        &c,
                        &p.iter().map(|&v| Real::constant(v)).collect::<Vec<_>>(),
                        d,
                    )
                },
                Active(&c),
            )
            .unwrap();
        close(&hdiag, &h.diag().to_vec(), 1e-12);
        let fd = FiniteDifferences::default()
            .gradient(|c: Vec<f64>| kmeans_cost(&c, &p, d), Active(&c))
            .unwrap();
        close(&g, &fd, 1e-6);
    }
}
