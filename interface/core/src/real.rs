//! The scalar trait user code is written against.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

use ndarray::{Array1, Array2, ArrayD, ArrayView1, ArrayView2, ArrayViewD, ScalarOperand};
use num_traits::{Float, FloatConst, FromPrimitive, Signed};

use crate::rule::{Elementwise, Hook, Rule, Segment};

/// A real scalar: plain `f64`/`f32`, or an engine's tracer over another `Real`.
///
/// User code is written once against `T: Real` and runs as its own primal (`T = f64`) and
/// under every engine. Everything of [`num_traits::Float`] is available; literals enter
/// through [`Real::constant`].
///
/// The array-level hooks ([`Real::sum_all`], [`Real::sum_map`], [`Real::map_elementwise`],
/// [`Real::dot`], [`Real::matvec`], [`Real::matmul`], [`Real::apply_rule`]) have scalar-loop
/// defaults; engines override them so that each call records one node with an array-level
/// pullback.
///
/// ```
/// use difi_core::Real;
///
/// fn rosenbrock<T: Real>(x: &[T]) -> T {
///     let mut s = T::zero();
///     for w in x.windows(2) {
///         let a = T::constant(1.0) - w[0];
///         let b = w[1] - w[0] * w[0];
///         s += a * a + T::constant(100.0) * b * b;
///     }
///     s
/// }
/// assert_eq!(rosenbrock(&[1.0_f64, 1.0, 1.0]), 0.0);
/// assert!(!f64::is_deriving());
/// ```
pub trait Real:
    Float
    + FloatConst
    + FromPrimitive
    + Signed
    + Debug
    + Display
    + Default
    + Send
    + Sync
    + 'static
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
    + ScalarOperand
{
    /// How many differentiation levels this type carries: 0 for plain numbers, 1 for a tracer
    /// over `f64`, 2 for a tracer over a tracer, and so on.
    const NEST_LEVEL: usize;

    /// Lifts a literal (a constant at every level).
    fn constant(x: f64) -> Self;

    /// The plain value at the innermost level. Derivatives do not flow through it, and a
    /// branch on it is invisible to the engine: an engine that replays recordings (the tape's
    /// prepared gradient) records anew any function that read an active tracer's value.
    fn innermost(self) -> f64;

    /// True when this value is zero and carries no derivative at any level: a reverse sweep
    /// skips a node whose adjoint is such a zero, so a partial derivative that is infinite
    /// there (`sqrt` at 0) adds nothing instead of `0 · ∞ = NaN` (CppAD's "absolute zero").
    /// Default `false`, which only gives up the skip; engines' tracers say more.
    fn is_exact_zero(self) -> bool {
        false
    }

    /// [`Real::NEST_LEVEL`] as a function.
    fn nest_level() -> usize {
        Self::NEST_LEVEL
    }

    /// True when this type is a tracer of some engine, i.e. the code runs under differentiation.
    fn is_deriving() -> bool {
        Self::NEST_LEVEL > 0
    }

    /// Sum of the elements (named `sum_all` so it does not clash with `std::iter::Sum::sum`).
    fn sum_all(xs: ArrayView1<'_, Self>) -> Self {
        xs.iter().fold(Self::zero(), |s, &x| s + x)
    }

    /// `Σ_i f(x₀[i], …, x_{N−1}[i])`, summed in order of `i`. Panics if the operands' lengths
    /// differ or `N` is 0. Users call [`sum_map`].
    ///
    /// Reverse engines record it as one node and differentiate `f` element by element on
    /// [`crate::Dual`] numbers in the pullback, so an elementwise loss costs a few times its
    /// primal instead of one recorded operation per operation per element.
    fn sum_map<const N: usize, F: Elementwise<N>>(f: &F, xs: [ArrayView1<'_, Self>; N]) -> Self {
        sum_map_by_index(f, elementwise_len(&xs), |i| xs.each_ref().map(|x| x[i]))
    }

    /// `[f(x₀[i], …, x_{N−1}[i]) for each i]`. Panics if the operands' lengths differ or `N` is
    /// 0. Users call [`map`].
    ///
    /// Reverse engines record it as one node with one output per element, differentiated like
    /// [`Real::sum_map`].
    fn map_elementwise<const N: usize, F: Elementwise<N>>(
        f: &F,
        xs: [ArrayView1<'_, Self>; N],
    ) -> Array1<Self> {
        Array1::from(map_by_index(f, elementwise_len(&xs), |i| {
            xs.each_ref().map(|x| x[i])
        }))
    }

    /// Inner product. Panics if the lengths differ.
    fn dot(a: ArrayView1<'_, Self>, b: ArrayView1<'_, Self>) -> Self {
        assert_eq!(
            a.len(),
            b.len(),
            "Real::dot: the operands have lengths {} and {}; they must be equal",
            a.len(),
            b.len()
        );
        a.iter()
            .zip(b.iter())
            .fold(Self::zero(), |s, (&x, &y)| s + x * y)
    }

    /// Matrix-vector product `a · x`. Panics if `a.ncols() != x.len()`.
    ///
    /// Reverse engines record it (like [`Real::dot`] and [`Real::matmul`]) as one node; an
    /// operand with no active element is kept as plain values and asked for no cotangent, so a
    /// constant matrix costs what the primal product costs.
    fn matvec(a: ArrayView2<'_, Self>, x: ArrayView1<'_, Self>) -> Array1<Self> {
        assert_eq!(
            a.ncols(),
            x.len(),
            "Real::matvec: matrix has {} columns but the vector has length {}",
            a.ncols(),
            x.len()
        );
        Array1::from_iter(a.rows().into_iter().map(|r| Self::dot(r, x)))
    }

    /// Matrix-matrix product `a · b`. Panics if `a.ncols() != b.nrows()`.
    fn matmul(a: ArrayView2<'_, Self>, b: ArrayView2<'_, Self>) -> Array2<Self> {
        assert_eq!(
            a.ncols(),
            b.nrows(),
            "Real::matmul: left operand has {} columns but the right one has {} rows",
            a.ncols(),
            b.nrows()
        );
        let mut out = Array2::zeros((a.nrows(), b.ncols()));
        for i in 0..a.nrows() {
            for k in 0..a.ncols() {
                let aik = a[[i, k]];
                for j in 0..b.ncols() {
                    out[[i, j]] += aik * b[[k, j]];
                }
            }
        }
        out
    }

    /// Applies a custom rule. Plain numbers run the rule's forward code with no input active;
    /// engines record one node. Users call [`crate::apply`].
    fn apply_rule<R: Rule>(rule: &R, inputs: &[ArrayViewD<'_, Self>]) -> Vec<ArrayD<Self>> {
        let inactive = vec![false; inputs.len()];
        rule.forward(inputs, &inactive).0
    }

    /// The logistic sigmoid `1 / (1 + e^(−x))`. Engines record it as one primitive with
    /// derivative `y (1 − y)`, as JAX's `logistic` and PyTorch's `sigmoid` are, instead of the
    /// four operations it is made of.
    ///
    /// ```
    /// use difi_core::Real;
    /// assert_eq!(0.0_f64.logistic(), 0.5);
    /// assert!((2.0_f64.logistic() + (-2.0_f64).logistic() - 1.0).abs() < 1e-15);
    /// ```
    fn logistic(self) -> Self {
        (Self::one() + (-self).exp()).recip()
    }

    /// The same value with no derivative: engines cut the dependence here.
    fn stop_gradient(self) -> Self {
        self
    }

    /// Identity in the forward pass; in reverse, the cotangent arriving at this use is replaced
    /// by `hook.cotangent(ct)`.
    fn hook<H: Hook>(self, hook: H) -> Self {
        let _ = hook;
        self
    }

    /// Evaluates `segment` at `inputs`. Engines keep only the inputs and outputs during the
    /// forward pass and recompute the segment in reverse. Users call [`crate::checkpoint`].
    fn checkpoint<C: Segment>(segment: &C, inputs: &[Self]) -> Vec<Self> {
        segment.eval(inputs)
    }
}

impl Real for f64 {
    const NEST_LEVEL: usize = 0;

    #[inline]
    fn constant(x: f64) -> Self {
        x
    }

    #[inline]
    fn innermost(self) -> f64 {
        self
    }

    #[inline]
    fn is_exact_zero(self) -> bool {
        self == 0.0
    }

    fn dot(a: ArrayView1<'_, Self>, b: ArrayView1<'_, Self>) -> Self {
        a.dot(&b)
    }

    fn matvec(a: ArrayView2<'_, Self>, x: ArrayView1<'_, Self>) -> Array1<Self> {
        a.dot(&x)
    }

    fn matmul(a: ArrayView2<'_, Self>, b: ArrayView2<'_, Self>) -> Array2<Self> {
        a.dot(&b)
    }
}

impl Real for f32 {
    const NEST_LEVEL: usize = 0;

    #[inline]
    fn constant(x: f64) -> Self {
        x as f32
    }

    #[inline]
    fn innermost(self) -> f64 {
        self as f64
    }

    #[inline]
    fn is_exact_zero(self) -> bool {
        self == 0.0
    }
}

/// Sum of all elements of an array of any dimension through [`Real::sum_all`], so an engine
/// records one node (ndarray's own `sum()` folds with `+` and records one node per element).
///
/// ```
/// let a = ndarray::arr2(&[[1.0, 2.0], [3.0, 4.0]]);
/// assert_eq!(difi_core::sum(&a), 10.0);
/// ```
pub fn sum<T: Real, Dt: ndarray::Data<Elem = T>, D: ndarray::Dimension>(
    a: &ndarray::ArrayBase<Dt, D>,
) -> T {
    match a.as_slice_memory_order() {
        Some(s) => T::sum_all(ArrayView1::from(s)),
        None => {
            let v: Vec<T> = a.iter().copied().collect();
            T::sum_all(ArrayView1::from(&v[..]))
        }
    }
}

/// `Σ_i f(x₀[i], …, x_{N−1}[i])` through [`Real::sum_map`]: one node on a reverse engine,
/// differentiated element by element. Panics if the operands' lengths differ or `N` is 0.
///
/// ```
/// use difi_core::{
///     sum_map, Active, Backend, Const, Elementwise, FiniteDifferences, NoTangent, Real,
/// };
/// use ndarray::ArrayView1;
///
/// /// `(x − y)²`
/// #[derive(Clone)]
/// struct SquaredError;
/// impl Elementwise<2> for SquaredError {
///     fn eval<T: Real>(&self, [x, y]: [T; 2]) -> T {
///         (x - y) * (x - y)
///     }
/// }
/// fn loss<T: Real>(x: &[T], y: &[T]) -> T {
///     sum_map(&SquaredError, [ArrayView1::from(x), ArrayView1::from(y)])
/// }
/// let (x, y) = (vec![1.0_f64, 2.0], vec![0.5_f64, 4.0]);
/// assert_eq!(loss(&x, &y), 0.25 + 4.0);
/// // d/dx = 2 (x − y); any engine runs the same `loss`.
/// let fd = FiniteDifferences::default();
/// let (g, NoTangent) =
///     fd.gradient(|(x, y): (Vec<_>, Vec<_>)| loss(&x, &y), (Active(&x), Const(&y)))?;
/// assert!((g[0] - 1.0).abs() < 1e-6 && (g[1] + 4.0).abs() < 1e-6);
/// # Ok::<(), difi_core::Error>(())
/// ```
pub fn sum_map<T: Real, const N: usize, F: Elementwise<N>>(f: &F, xs: [ArrayView1<'_, T>; N]) -> T {
    T::sum_map(f, xs)
}

/// `[f(x₀[i], …, x_{N−1}[i]) for each i]` through [`Real::map_elementwise`]: one node with one
/// output per element on a reverse engine, each element differentiated on dual numbers (one
/// node per operation per element otherwise). Panics if the operands' lengths differ or `N`
/// is 0.
///
/// ```
/// use difi_core::{map, Elementwise, Real};
/// use ndarray::ArrayView1;
///
/// /// `x tanh(x + b)`, an activation with a bias.
/// #[derive(Clone)]
/// struct BiasedSwish;
/// impl Elementwise<2> for BiasedSwish {
///     fn eval<T: Real>(&self, [x, b]: [T; 2]) -> T {
///         x * (x + b).tanh()
///     }
/// }
/// let (x, b) = ([0.5_f64, -1.0], [0.1_f64, 0.2]);
/// let y = map(&BiasedSwish, [ArrayView1::from(&x[..]), ArrayView1::from(&b[..])]);
/// assert_eq!(y[1], -1.0 * (-0.8_f64).tanh());
/// ```
pub fn map<T: Real, const N: usize, F: Elementwise<N>>(
    f: &F,
    xs: [ArrayView1<'_, T>; N],
) -> Array1<T> {
    T::map_elementwise(f, xs)
}

/// `Σ_{i < len} f(element(i))` in order of `i`: the loop of [`Real::sum_map`]'s default, for
/// engines that hold the operands in another form (tracers whose values are plain numbers).
pub fn sum_map_by_index<T: Real, const N: usize, F: Elementwise<N>>(
    f: &F,
    len: usize,
    element: impl Fn(usize) -> [T; N],
) -> T {
    (0..len).fold(T::zero(), |s, i| s + f.eval(element(i)))
}

/// `[f(element(i)) for i < len]`: the loop of [`Real::map_elementwise`]'s default, for engines
/// that hold the operands in another form, as [`sum_map_by_index`] is for [`Real::sum_map`].
pub fn map_by_index<T: Real, const N: usize, F: Elementwise<N>>(
    f: &F,
    len: usize,
    element: impl Fn(usize) -> [T; N],
) -> Vec<T> {
    (0..len).map(|i| f.eval(element(i))).collect()
}

/// The common length of the operands of [`sum_map`] or [`map`]; panics with what is wrong
/// otherwise. Engines overriding them call it so that every engine rejects the same input.
pub fn elementwise_len<T>(xs: &[ArrayView1<'_, T>]) -> usize {
    let Some(first) = xs.first() else {
        panic!("sum_map or map: needs at least one operand");
    };
    for (k, x) in xs.iter().enumerate() {
        assert_eq!(
            x.len(),
            first.len(),
            "sum_map or map: operand {k} has length {}, operand 0 has length {}; they must be \
             equal",
            x.len(),
            first.len()
        );
    }
    first.len()
}
