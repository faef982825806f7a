//! The functions of the scenarios, written once over `T: Real`, with analytic references.

use difi_core::{map, sum_map, Elementwise, Real};
use ndarray::{s, Array1, Array2, ArrayView1};

/// Scalar to scalar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalarFn {
    /// sin x
    Sin,
    /// exp x
    Exp,
    /// ln x
    Log,
    /// x³
    Powi,
    /// x^2.5
    Powf,
    /// tanh x
    Tanh,
    /// 1 / (1 + e^(−x)), the engines' logistic primitive
    Logistic,
    /// |x| at negative x
    Abs,
}

impl ScalarFn {
    /// Every variant.
    pub const ALL: [ScalarFn; 8] = [
        ScalarFn::Sin,
        ScalarFn::Exp,
        ScalarFn::Log,
        ScalarFn::Powi,
        ScalarFn::Powf,
        ScalarFn::Tanh,
        ScalarFn::Logistic,
        ScalarFn::Abs,
    ];

    /// The function.
    pub fn eval<T: Real>(self, x: T) -> T {
        match self {
            ScalarFn::Sin => x.sin(),
            ScalarFn::Exp => x.exp(),
            ScalarFn::Log => x.ln(),
            ScalarFn::Powi => x.powi(3),
            ScalarFn::Powf => x.powf(T::constant(2.5)),
            ScalarFn::Tanh => x.tanh(),
            ScalarFn::Logistic => x.logistic(),
            ScalarFn::Abs => x.abs(),
        }
    }

    /// Where it is evaluated (away from kinks and domain edges).
    pub fn point(self) -> f64 {
        match self {
            ScalarFn::Abs => -0.7,
            _ => 0.7,
        }
    }

    /// First and second derivative, analytic.
    pub fn derivatives(self, x: f64) -> (f64, f64) {
        match self {
            ScalarFn::Sin => (x.cos(), -x.sin()),
            ScalarFn::Exp => (x.exp(), x.exp()),
            ScalarFn::Log => (1.0 / x, -1.0 / (x * x)),
            ScalarFn::Powi => (3.0 * x * x, 6.0 * x),
            ScalarFn::Powf => (2.5 * x.powf(1.5), 3.75 * x.powf(0.5)),
            ScalarFn::Tanh => {
                let t = x.tanh();
                (1.0 - t * t, -2.0 * t * (1.0 - t * t))
            }
            ScalarFn::Logistic => {
                let s = 1.0 / (1.0 + (-x).exp());
                (s * (1.0 - s), s * (1.0 - s) * (1.0 - 2.0 * s))
            }
            ScalarFn::Abs => (x.signum(), 0.0),
        }
    }
}

/// Vector to scalar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorFn {
    /// Σ x²
    SumSquares,
    /// Rosenbrock
    Rosenbrock,
    /// Σ c_i x_i with fixed c (built from literals)
    DotConst,
    /// log Σ exp x, stabilised by the maximum
    LogSumExp,
    /// a loop with a data-dependent branch
    LoopBranch,
    /// Rosenbrock as one [`sum_map`] over `x[..n−1]` and `x[1..]` (contiguous operands)
    SumMapRosenbrock,
    /// `Σ_i c_i a_i sin b_i` through [`sum_map`], with `m = ⌊n/2⌋`, `a = x[..m]` reversed (a
    /// view with a negative stride), `b = x[m..2m]` and `c` built from literals (a constant
    /// operand)
    SumMapViews,
}

impl VectorFn {
    /// Every variant.
    pub const ALL: [VectorFn; 7] = [
        VectorFn::SumSquares,
        VectorFn::Rosenbrock,
        VectorFn::DotConst,
        VectorFn::LogSumExp,
        VectorFn::LoopBranch,
        VectorFn::SumMapRosenbrock,
        VectorFn::SumMapViews,
    ];

    /// The function.
    pub fn eval<T: Real>(self, x: &[T]) -> T {
        match self {
            VectorFn::SumSquares => x.iter().fold(T::zero(), |s, &v| s + v * v),
            VectorFn::Rosenbrock => x.windows(2).fold(T::zero(), |s, w| {
                let a = T::constant(1.0) - w[0];
                let b = w[1] - w[0] * w[0];
                s + a * a + T::constant(100.0) * b * b
            }),
            VectorFn::DotConst => x.iter().enumerate().fold(T::zero(), |s, (i, &v)| {
                s + T::constant(dot_coefficient(i)) * v
            }),
            VectorFn::LogSumExp => {
                let m = x.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
                m + x.iter().fold(T::zero(), |s, &v| s + (v - m).exp()).ln()
            }
            VectorFn::LoopBranch => {
                let mut acc = T::zero();
                for (i, &v) in x.iter().enumerate() {
                    acc = if v > acc {
                        acc * T::constant(0.5) + v * v
                    } else {
                        acc + (v * T::constant(i as f64 + 1.0)).sin()
                    };
                }
                acc
            }
            VectorFn::SumMapRosenbrock => match x.len() {
                0 | 1 => T::zero(),
                n => sum_map(
                    &RosenbrockTerm,
                    [ArrayView1::from(&x[..n - 1]), ArrayView1::from(&x[1..])],
                ),
            },
            VectorFn::SumMapViews => {
                let m = x.len() / 2;
                let x = ArrayView1::from(x);
                let c: Array1<T> = (0..m).map(|i| T::constant(dot_coefficient(i))).collect();
                sum_map(
                    &ScaledProductSin,
                    [c.view(), x.slice(s![..m;-1]), x.slice(s![m..2 * m])],
                )
            }
        }
    }

    /// Analytic gradient and Hessian where known (`None`: use finite differences). For
    /// [`VectorFn::LoopBranch`] they follow the branches taken at `x`.
    pub fn analytic(self, x: &[f64]) -> Option<(Vec<f64>, Array2<f64>)> {
        let n = x.len();
        match self {
            VectorFn::SumSquares => {
                Some((x.iter().map(|v| 2.0 * v).collect(), Array2::eye(n) * 2.0))
            }
            VectorFn::Rosenbrock | VectorFn::SumMapRosenbrock => {
                let mut g = vec![0.0; n];
                let mut h = Array2::zeros((n, n));
                for i in 0..n.saturating_sub(1) {
                    let b = x[i + 1] - x[i] * x[i];
                    g[i] += -2.0 * (1.0 - x[i]) - 400.0 * x[i] * b;
                    g[i + 1] += 200.0 * b;
                    h[[i, i]] += 2.0 - 400.0 * (x[i + 1] - 3.0 * x[i] * x[i]);
                    h[[i + 1, i + 1]] += 200.0;
                    h[[i, i + 1]] -= 400.0 * x[i];
                    h[[i + 1, i]] -= 400.0 * x[i];
                }
                Some((g, h))
            }
            VectorFn::DotConst => {
                Some(((0..n).map(dot_coefficient).collect(), Array2::zeros((n, n))))
            }
            VectorFn::LogSumExp => {
                let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = x.iter().map(|v| (v - m).exp()).sum();
                let p: Vec<f64> = x.iter().map(|v| (v - m).exp() / z).collect();
                let h = Array2::from_shape_fn((n, n), |(i, j)| {
                    if i == j {
                        p[i] - p[i] * p[j]
                    } else {
                        -p[i] * p[j]
                    }
                });
                Some((p, h))
            }
            VectorFn::LoopBranch => {
                // acc' = acc/2 + v² or acc + sin((i+1) v): carry d acc and d² acc along.
                let mut acc = 0.0;
                let mut g = vec![0.0; n];
                let mut h = Array2::zeros((n, n));
                for (i, &v) in x.iter().enumerate() {
                    if v > acc {
                        acc = acc * 0.5 + v * v;
                        g.iter_mut().for_each(|d| *d *= 0.5);
                        h *= 0.5;
                        g[i] += 2.0 * v;
                        h[[i, i]] += 2.0;
                    } else {
                        let k = i as f64 + 1.0;
                        acc += (v * k).sin();
                        g[i] += k * (v * k).cos();
                        h[[i, i]] -= k * k * (v * k).sin();
                    }
                }
                Some((g, h))
            }
            VectorFn::SumMapViews => {
                // Term i: c a sin b with a = x[m−1−i], b = x[m+i].
                let m = n / 2;
                let mut g = vec![0.0; n];
                let mut h = Array2::zeros((n, n));
                for i in 0..m {
                    let (ia, ib, c) = (m - 1 - i, m + i, dot_coefficient(i));
                    let (a, b) = (x[ia], x[ib]);
                    g[ia] = c * b.sin();
                    g[ib] = c * a * b.cos();
                    h[[ia, ib]] = c * b.cos();
                    h[[ib, ia]] = c * b.cos();
                    h[[ib, ib]] = -c * a * b.sin();
                }
                Some((g, h))
            }
        }
    }
}

/// One term of the Rosenbrock function, for [`sum_map`].
#[derive(Clone, Copy, Debug)]
struct RosenbrockTerm;

impl Elementwise<2> for RosenbrockTerm {
    fn eval<T: Real>(&self, [a, b]: [T; 2]) -> T {
        let u = T::constant(1.0) - a;
        let v = b - a * a;
        u * u + T::constant(100.0) * v * v
    }
}

/// `a sin b`, for [`map`].
#[derive(Clone, Copy, Debug)]
struct ProductSin;

impl Elementwise<2> for ProductSin {
    fn eval<T: Real>(&self, [a, b]: [T; 2]) -> T {
        a * b.sin()
    }
}

/// `c a sin b`, for [`sum_map`].
#[derive(Clone, Copy, Debug)]
struct ScaledProductSin;

impl Elementwise<3> for ScaledProductSin {
    fn eval<T: Real>(&self, [c, a, b]: [T; 3]) -> T {
        c * a * b.sin()
    }
}

fn dot_coefficient(i: usize) -> f64 {
    1.0 + 0.5 * i as f64
}

/// Vector to vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorVectorFn {
    /// y_i = x_i sin x_i
    Elementwise,
    /// y = A x with A built from literals, through `Real::matvec`
    MatVec,
    /// y_i = Σ_{j ≤ i} x_j
    CumSum,
    /// y_i = x_i sin x_{n−1−i} through [`difi_core::map`] over `x` and `x` reversed
    Map,
}

impl VectorVectorFn {
    /// Every variant.
    pub const ALL: [VectorVectorFn; 4] = [
        VectorVectorFn::Elementwise,
        VectorVectorFn::MatVec,
        VectorVectorFn::CumSum,
        VectorVectorFn::Map,
    ];

    fn matrix(n: usize) -> Array2<f64> {
        Array2::from_shape_fn((n + 1, n), |(i, j)| ((i * n + j) as f64 * 0.37).sin())
    }

    /// The function.
    pub fn eval<T: Real>(self, x: &[T]) -> Vec<T> {
        match self {
            VectorVectorFn::Elementwise => x.iter().map(|&v| v * v.sin()).collect(),
            VectorVectorFn::MatVec => {
                let a = Self::matrix(x.len()).mapv(T::constant);
                T::matvec(a.view(), Array1::from(x.to_vec()).view()).to_vec()
            }
            VectorVectorFn::CumSum => x
                .iter()
                .scan(T::zero(), |s, &v| {
                    *s += v;
                    Some(*s)
                })
                .collect(),
            VectorVectorFn::Map => {
                let x = ArrayView1::from(x);
                map(&ProductSin, [x, x.slice(s![..;-1])]).to_vec()
            }
        }
    }

    /// The analytic Jacobian.
    pub fn jacobian(self, x: &[f64]) -> Array2<f64> {
        let n = x.len();
        match self {
            VectorVectorFn::Elementwise => {
                Array2::from_diag(&Array1::from_iter(x.iter().map(|v| v.sin() + v * v.cos())))
            }
            VectorVectorFn::MatVec => Self::matrix(n),
            VectorVectorFn::CumSum => Array2::from_shape_fn((n, n), |(i, j)| (j <= i) as u8 as f64),
            VectorVectorFn::Map => {
                let mut jac = Array2::zeros((n, n));
                for i in 0..n {
                    let r = n - 1 - i;
                    jac[[i, i]] += x[r].sin();
                    jac[[i, r]] += x[i] * x[r].cos();
                }
                jac
            }
        }
    }
}

/// Matrix in, matrix out: `Y = A ⊙ A + A Aᵀ`-like map of a square matrix, `Y = A ⊙ sin(A) + A·B`
/// with a fixed B.
pub fn matrix_map<T: Real>(a: &Array2<T>) -> Array2<T> {
    let b = Array2::from_shape_fn((a.ncols(), a.ncols()), |(i, j)| {
        T::constant(0.1 * (i + 2 * j) as f64)
    });
    let prod = T::matmul(a.view(), b.view());
    Array2::from_shape_fn(a.raw_dim(), |(i, j)| {
        a[[i, j]] * a[[i, j]].sin() + prod[[i, j]]
    })
}

/// The analytic Jacobian of [`matrix_map`] over row-major flattening.
pub fn matrix_map_jacobian(a: &Array2<f64>) -> Array2<f64> {
    let (m, n) = a.dim();
    let b = Array2::from_shape_fn((n, n), |(i, j)| 0.1 * (i + 2 * j) as f64);
    Array2::from_shape_fn((m * n, m * n), |(r, c)| {
        let (i, j) = (r / n, r % n);
        let (k, l) = (c / n, c % n);
        let mut v = 0.0;
        if i == k {
            v += b[[l, j]];
            if j == l {
                let x = a[[i, j]];
                v += x.sin() + x * x.cos();
            }
        }
        v
    })
}
