//! GradBench workloads written once over `T: Real` (formulas in `shared/WORKLOADS.md`): the
//! `f64` instantiation is the primal, every engine runs the same code.

use difi_core::{checkpoint, map, sum_map, Elementwise, Real, Segment};
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
/// Each RK4 stage is one [`map`] over the components (a reverse engine records it as one node)
/// and every `⌈√s⌉` steps form a [`checkpoint`]ed segment: reverse engines keep only the
/// states between segments and recompute one segment at a time in reverse, so the working set
/// stays in cache.
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
    let h = 2.0 / s as f64;
    let per_segment = (s as f64).sqrt().ceil() as usize;
    let mut state: Vec<T> = vec![T::zero(); n];
    state.extend_from_slice(x);
    let mut done = 0;
    while done < s {
        let steps = per_segment.min(s - done);
        let y = checkpoint(&Rk4Steps { n, h, steps }, &state);
        state[..n].copy_from_slice(&y);
        done += steps;
    }
    state.truncate(n);
    state
}

/// `steps` RK4 steps of [`ode`]: inputs `[y, x]`, output `y` after them.
#[derive(Clone, Debug, PartialEq)]
struct Rk4Steps {
    n: usize,
    h: f64,
    steps: usize,
}

impl Segment for Rk4Steps {
    fn eval<T: Real>(&self, inputs: &[T]) -> Vec<T> {
        let (y, x) = inputs.split_at(self.n);
        (0..self.steps).fold(y.to_vec(), |y, _| rk4_step(x, &y, self.h))
    }

    /// Segments of as many steps are one function: a tape records one and replays it for the
    /// others.
    fn same_as(&self, other: &Self) -> bool {
        self == other
    }
}

/// One RK4 step from `y`.
fn rk4_step<T: Real>(x: &[T], y: &[T], h: f64) -> Vec<T> {
    let n = y.len();
    if n == 0 {
        return Vec::new();
    }
    let k1 = ode_rhs(x, map(&Product, [view(&x[1..]), view(&y[..n - 1])]));
    let k2 = ode_stage(x, y, &k1, 0.5 * h);
    let k3 = ode_stage(x, y, &k2, 0.5 * h);
    let k4 = ode_stage(x, y, &k3, h);
    map(
        &Rk4Combine { h },
        [view(y), view(&k1), view(&k2), view(&k3), view(&k4)],
    )
    .to_vec()
}

/// `[x₀, tail…]`: the right-hand side `f(y)` with its components `i > 0` in `tail`.
///
/// The next stage reads this shifted (`k[..n−1]`): on a tape two runs of references (`x₀`, then
/// the map's outputs) rather than one progression, which the tape keeps as two slices.
fn ode_rhs<T: Real>(x: &[T], tail: Array1<T>) -> Vec<T> {
    let mut k = Vec::with_capacity(x.len());
    k.push(x[0]);
    k.extend_from_slice(
        tail.as_slice()
            .expect("map returns a standard-layout array"),
    );
    k
}

/// `f(y + c k)`, its components `i > 0` one [`map`]: `xᵢ (yᵢ₋₁ + c kᵢ₋₁)`.
fn ode_stage<T: Real>(x: &[T], y: &[T], k: &[T], c: f64) -> Vec<T> {
    let n = y.len();
    ode_rhs(
        x,
        map(
            &ShiftedStage { c },
            [view(&x[1..]), view(&y[..n - 1]), view(&k[..n - 1])],
        ),
    )
}

/// A slice as the 1-d view [`map`] takes.
pub(crate) fn view<T>(x: &[T]) -> ArrayView1<'_, T> {
    ArrayView1::from(x)
}

/// `a b`
#[derive(Clone, Debug)]
pub(crate) struct Product;

impl Elementwise<2> for Product {
    fn eval<T: Real>(&self, [a, b]: [T; 2]) -> T {
        a * b
    }
}

/// `x (y + c k)`: one component of `f(y + c k)`.
#[derive(Clone, Debug)]
struct ShiftedStage {
    c: f64,
}

impl Elementwise<3> for ShiftedStage {
    fn eval<T: Real>(&self, [x, y, k]: [T; 3]) -> T {
        x * (y + T::constant(self.c) * k)
    }
}

/// `y + h/6 (k₁ + 2 k₂ + 2 k₃ + k₄)`
#[derive(Clone, Debug)]
struct Rk4Combine {
    h: f64,
}

impl Elementwise<5> for Rk4Combine {
    fn eval<T: Real>(&self, [y, k1, k2, k3, k4]: [T; 5]) -> T {
        let two = T::constant(2.0);
        y + T::constant(self.h / 6.0) * (k1 + two * k2 + two * k3 + k4)
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

    /// With four components `y' = A y + x₀ e₀` has `A⁴ = 0`, so RK4's step (the exponential's
    /// series to fourth order) is exact: `yᵢ(2) = x₀ ⋯ xᵢ 2^{i+1} / (i+1)!` for any number of
    /// steps, segments of `⌈√s⌉` steps dividing `s` or not.
    #[test]
    fn ode_is_exact_where_rk4_is() {
        let x = [0.7, -1.3, 0.4, 2.1];
        let mut want = Vec::new();
        let (mut product, mut factorial) = (1.0, 1.0);
        for (i, &xi) in x.iter().enumerate() {
            product *= xi;
            factorial *= (i + 1) as f64;
            want.push(product * 2f64.powi(i as i32 + 1) / factorial);
        }
        for s in [1, 9, 10] {
            let y = ode(&x, s);
            for (i, (&got, &want)) in y.iter().zip(&want).enumerate() {
                assert!((got - want).abs() < 1e-12, "s = {s}, y{i}: {got} vs {want}");
            }
        }
        assert!(ode::<f64>(&[], 3).is_empty());
        assert!((ode(&[1.5_f64], 3)[0] - 3.0).abs() < 1e-12);
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
