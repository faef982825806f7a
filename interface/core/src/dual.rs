//! `Dual<T, N>`: a value and N tangent lanes over any `T: Real`.

use std::cmp::Ordering;
use std::ops::{Add, Div, Mul, Neg, Sub};

use crate::{ArrayD, ArrayViewD, Real, Rule};
use num_traits::Float;

/// A dual number with `N` tangent lanes: `re + Σ eps[k] ε_k` with `ε_j ε_k = 0`.
///
/// It implements [`Real`] over any `T: Real`, so it nests (`Dual<Dual<f64, 1>, 1>`) and reverse
/// engines run over it (forward-over-reverse). Comparisons look at the value only.
///
/// ```
/// use difi_core::Dual;
/// use difi_core::Float;
/// let x = Dual::<f64, 1>::seeded(2.0, [1.0]);
/// let y = x * x.sin();
/// assert_eq!(y.re, 2.0 * 2f64.sin());
/// assert_eq!(y.eps[0], 2f64.sin() + 2.0 * 2f64.cos());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Dual<T, const N: usize> {
    /// The value.
    pub re: T,
    /// The tangent lanes.
    pub eps: [T; N],
}

impl<T: Real, const N: usize> Default for Dual<T, N> {
    fn default() -> Self {
        Dual::constant_of(T::zero())
    }
}

impl<T: Real, const N: usize> Dual<T, N> {
    /// A value with zero tangents.
    #[inline]
    pub fn constant_of(re: T) -> Self {
        Dual {
            re,
            eps: [T::zero(); N],
        }
    }

    /// A value with the given tangents.
    #[inline]
    pub fn seeded(re: T, eps: [T; N]) -> Self {
        Dual { re, eps }
    }

    /// `f(re)` with tangents scaled by `f'(re)`. Where `f'` is infinite (`√x` at 0), a lane with
    /// no tangent stays zero: `0 · ∞ = NaN` would put NaN in the partials with respect to
    /// every other input (CppAD's "absolute zero" multiplication).
    #[inline]
    fn chain(self, value: T, derivative: T) -> Self {
        let eps = if derivative.is_finite() {
            self.eps.map(|e| e * derivative)
        } else {
            self.eps.map(|e| times_unless_zero(e, derivative))
        };
        Dual { re: value, eps }
    }

    /// True when some tangent lane is non-zero.
    pub fn has_tangent(&self) -> bool {
        self.eps.iter().any(|e| !e.is_exact_zero())
    }
}

impl<T: Real, const N: usize> PartialEq for Dual<T, N> {
    fn eq(&self, other: &Self) -> bool {
        self.re == other.re
    }
}

impl<T: Real, const N: usize> PartialOrd for Dual<T, N> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.re.partial_cmp(&other.re)
    }
}

impl<T: Real, const N: usize> Add for Dual<T, N> {
    type Output = Self;
    #[inline]
    fn add(self, r: Self) -> Self {
        Dual {
            re: self.re + r.re,
            eps: std::array::from_fn(|k| self.eps[k] + r.eps[k]),
        }
    }
}

impl<T: Real, const N: usize> Sub for Dual<T, N> {
    type Output = Self;
    #[inline]
    fn sub(self, r: Self) -> Self {
        Dual {
            re: self.re - r.re,
            eps: std::array::from_fn(|k| self.eps[k] - r.eps[k]),
        }
    }
}

// The product rule adds two terms.
#[allow(clippy::suspicious_arithmetic_impl)]
impl<T: Real, const N: usize> Mul for Dual<T, N> {
    type Output = Self;
    #[inline]
    fn mul(self, r: Self) -> Self {
        Dual {
            re: self.re * r.re,
            eps: std::array::from_fn(|k| self.eps[k] * r.re + self.re * r.eps[k]),
        }
    }
}

#[allow(clippy::suspicious_arithmetic_impl)]
impl<T: Real, const N: usize> Div for Dual<T, N> {
    type Output = Self;
    #[inline]
    fn div(self, r: Self) -> Self {
        let inv = T::one() / r.re;
        let q = self.re * inv;
        let lane = |k: usize| (self.eps[k] - q * r.eps[k]) * inv;
        // At r = 0 only lanes with a tangent get one, as in `chain`.
        let eps = if inv.is_finite() {
            std::array::from_fn(lane)
        } else {
            std::array::from_fn(|k| {
                if self.eps[k].is_exact_zero() && r.eps[k].is_exact_zero() {
                    T::zero()
                } else {
                    lane(k)
                }
            })
        };
        Dual { re: q, eps }
    }
}

impl<T: Real, const N: usize> Neg for Dual<T, N> {
    type Output = Self;
    #[inline]
    fn neg(self) -> Self {
        Dual {
            re: -self.re,
            eps: self.eps.map(|e| -e),
        }
    }
}

/// `e · d`, but zero when `e` is an exact zero (whatever `d` is).
#[inline]
fn times_unless_zero<T: Real>(e: T, d: T) -> T {
    if e.is_exact_zero() {
        T::zero()
    } else {
        e * d
    }
}

/// Piecewise-constant functions: zero tangents.
macro_rules! flat {
    ($($m:ident),* $(,)?) => {$(
        fn $m(self) -> Self {
            Dual::constant_of(self.re.$m())
        }
    )*};
}

impl<T: Real, const N: usize> Float for Dual<T, N> {
    crate::float_passthrough_methods!(re, Dual::constant_of);
    flat!(floor, ceil, round, trunc, signum);

    fn fract(self) -> Self {
        self.chain(self.re.fract(), T::one())
    }
    /// The subgradient 0 at 0.
    fn abs(self) -> Self {
        let s = if self.re > T::zero() {
            T::one()
        } else if self.re < T::zero() {
            -T::one()
        } else {
            T::zero()
        };
        self.chain(self.re.abs(), s)
    }
    fn recip(self) -> Self {
        let r = self.re.recip();
        self.chain(r, -r * r)
    }
    fn powi(self, n: i32) -> Self {
        let d = if n == 0 {
            T::zero()
        } else {
            T::constant(n as f64) * self.re.powi(n - 1)
        };
        self.chain(self.re.powi(n), d)
    }
    /// `x^y` with `d = y x^(y-1) dx + x^y ln(x) dy`; each term is zero where its factor is
    /// (y = 0, or x^y = 0), so `0^y` and `x^0` have finite derivatives.
    fn powf(self, y: Self) -> Self {
        let z = self.re.powf(y.re);
        // Shortcuts for exact zeros only (a zero that carries a derivative one level down goes
        // through the formula).
        let dx = if y.re.is_exact_zero() {
            T::zero()
        } else {
            y.re * self.re.powf(y.re - T::one())
        };
        let dy = if z.is_exact_zero() || !y.has_tangent() {
            T::zero()
        } else {
            z * self.re.ln()
        };
        Dual {
            re: z,
            eps: std::array::from_fn(|k| {
                let mut e = T::zero();
                if !self.eps[k].is_exact_zero() {
                    e += dx * self.eps[k];
                }
                if !y.eps[k].is_exact_zero() {
                    e += dy * y.eps[k];
                }
                e
            }),
        }
    }
    fn sqrt(self) -> Self {
        let r = self.re.sqrt();
        self.chain(r, T::one() / (r + r))
    }
    fn exp(self) -> Self {
        let e = self.re.exp();
        self.chain(e, e)
    }
    fn exp2(self) -> Self {
        let e = self.re.exp2();
        self.chain(e, e * T::LN_2())
    }
    fn ln(self) -> Self {
        self.chain(self.re.ln(), self.re.recip())
    }
    fn log2(self) -> Self {
        self.chain(self.re.log2(), T::one() / (self.re * T::LN_2()))
    }
    fn log10(self) -> Self {
        self.chain(self.re.log10(), T::one() / (self.re * T::LN_10()))
    }
    fn max(self, other: Self) -> Self {
        if self.re >= other.re {
            self
        } else {
            other
        }
    }
    fn min(self, other: Self) -> Self {
        if self.re <= other.re {
            self
        } else {
            other
        }
    }
    fn cbrt(self) -> Self {
        let c = self.re.cbrt();
        self.chain(c, T::one() / (T::constant(3.0) * c * c))
    }
    /// `(x dx + y dy) / h`, zero at the origin.
    fn hypot(self, other: Self) -> Self {
        let h = self.re.hypot(other.re);
        if h == T::zero() {
            return Dual::constant_of(h);
        }
        let (a, b) = (self.re / h, other.re / h);
        Dual {
            re: h,
            eps: std::array::from_fn(|k| a * self.eps[k] + b * other.eps[k]),
        }
    }
    fn sin(self) -> Self {
        self.chain(self.re.sin(), self.re.cos())
    }
    fn cos(self) -> Self {
        self.chain(self.re.cos(), -self.re.sin())
    }
    fn tan(self) -> Self {
        let t = self.re.tan();
        self.chain(t, T::one() + t * t)
    }
    fn asin(self) -> Self {
        self.chain(
            self.re.asin(),
            T::one() / (T::one() - self.re * self.re).sqrt(),
        )
    }
    fn acos(self) -> Self {
        self.chain(
            self.re.acos(),
            -T::one() / (T::one() - self.re * self.re).sqrt(),
        )
    }
    fn atan(self) -> Self {
        self.chain(self.re.atan(), T::one() / (T::one() + self.re * self.re))
    }
    /// `atan2(y, x)`: `(x dy - y dx) / (x² + y²)`, zero at the origin.
    fn atan2(self, other: Self) -> Self {
        let (y, x) = (self.re, other.re);
        let r2 = x * x + y * y;
        if r2 == T::zero() {
            return Dual::constant_of(y.atan2(x));
        }
        Dual {
            re: y.atan2(x),
            eps: std::array::from_fn(|k| (x * self.eps[k] - y * other.eps[k]) / r2),
        }
    }
    fn exp_m1(self) -> Self {
        self.chain(self.re.exp_m1(), self.re.exp())
    }
    fn ln_1p(self) -> Self {
        self.chain(self.re.ln_1p(), T::one() / (T::one() + self.re))
    }
    fn sinh(self) -> Self {
        self.chain(self.re.sinh(), self.re.cosh())
    }
    fn cosh(self) -> Self {
        self.chain(self.re.cosh(), self.re.sinh())
    }
    fn tanh(self) -> Self {
        let t = self.re.tanh();
        self.chain(t, T::one() - t * t)
    }
    fn asinh(self) -> Self {
        self.chain(
            self.re.asinh(),
            T::one() / (self.re * self.re + T::one()).sqrt(),
        )
    }
    fn acosh(self) -> Self {
        self.chain(
            self.re.acosh(),
            T::one() / (self.re * self.re - T::one()).sqrt(),
        )
    }
    fn atanh(self) -> Self {
        self.chain(self.re.atanh(), T::one() / (T::one() - self.re * self.re))
    }
}

crate::impl_tracer_boilerplate!([T: Real, const N: usize] Dual<T, N>);

impl<T: Real, const N: usize> Real for Dual<T, N> {
    const NEST_LEVEL: usize = T::NEST_LEVEL + 1;

    #[inline]
    fn constant(x: f64) -> Self {
        Dual::constant_of(T::constant(x))
    }

    #[inline]
    fn innermost(self) -> f64 {
        self.re.innermost()
    }

    #[inline]
    fn is_exact_zero(self) -> bool {
        self.re.is_exact_zero() && self.eps.iter().all(|e| e.is_exact_zero())
    }

    fn logistic(self) -> Self {
        let y = self.re.logistic();
        self.chain(y, y * (T::one() - y))
    }

    fn stop_gradient(self) -> Self {
        Dual::constant_of(self.re.stop_gradient())
    }

    /// Runs the rule's forward code on the values with the tangent mask, then its explicit
    /// pushforward lane by lane; a rule without one runs its generic forward code on duals.
    /// Inputs whose tangents are all zero are inactive and get no tangent work.
    fn apply_rule<R: Rule>(rule: &R, inputs: &[ArrayViewD<'_, Self>]) -> Vec<ArrayD<Self>> {
        let active: Vec<bool> = inputs
            .iter()
            .map(|x| x.iter().any(Dual::has_tangent))
            .collect();
        let values: Vec<ArrayD<T>> = inputs.iter().map(|x| x.mapv(|d| d.re)).collect();
        let views: Vec<ArrayViewD<'_, T>> = values.iter().map(|a| a.view()).collect();
        let (outputs, saved) = rule.forward(&views, &active);
        let mut result: Vec<ArrayD<Self>> =
            outputs.iter().map(|o| o.mapv(Dual::constant_of)).collect();
        if !active.iter().any(|&a| a) {
            return result;
        }
        for k in 0..N {
            let lane: Vec<Option<ArrayD<T>>> = inputs
                .iter()
                .zip(&active)
                .map(|(x, &a)| a.then(|| x.mapv(|d| d.eps[k])))
                .collect();
            let lane_views: Vec<Option<ArrayViewD<'_, T>>> =
                lane.iter().map(|t| t.as_ref().map(|a| a.view())).collect();
            match rule.pushforward(&saved, &lane_views) {
                Some(tangents) => {
                    for (out, t) in result.iter_mut().zip(tangents) {
                        out.zip_mut_with(&t, |d, &e| d.eps[k] = e);
                    }
                }
                None => return rule.forward(inputs, &active).0,
            }
        }
        result
    }
}
