//! `Tracked<S>`: the closure engine's tracer, and its scalar primitives.
//!
//! Every primitive is a rule in the Zygote sense: it returns its value and registers a pullback
//! that captures exactly what it needs (operand values, not a copy of the graph). The pullback
//! is told which operands need a cotangent and computes only those; an operation on constants
//! registers nothing.

use std::cmp::Ordering;
use std::ops::{Add, Div, Mul, Neg, Sub};

use difi_core::{Elementwise, Error, Hook, Real, Rule, Segment};
use ndarray::{Array1, Array2, ArrayD, ArrayView1, ArrayView2, ArrayViewD};
use num_traits::Float;

use crate::arrays;
use crate::graph::{with_graph, Entry, Graph, ScalarPullback, NO_ID};

/// The closure engine's tracer: a value over base scalar `S` and the id of its pullback in this
/// thread's graph (none for constants). 16 bytes for `S = f64`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tracked<S> {
    pub(crate) value: S,
    pub(crate) id: u32,
    pub(crate) epoch: u32,
}

pub(crate) fn misuse() -> Error {
    Error::TracerMisuse(
        "a tracer was used outside the computation that made it (after its pullback was \
         built, or on another thread); keep tracers inside the differentiated closure"
            .into(),
    )
}

/// Reports a tracer used outside its recording: an error from the running operator, or a
/// panic when none is running to carry it. Out of line, off the hot path.
#[cold]
#[inline(never)]
fn misused<S: Real>(g: &mut Graph<S>) -> u32 {
    if g.recording {
        g.fail(misuse());
    } else {
        panic!("{}", misuse());
    }
    NO_ID
}

impl<S: Real> Tracked<S> {
    /// A tracer with no derivative.
    #[inline]
    pub fn constant_of(value: S) -> Self {
        Tracked {
            value,
            id: NO_ID,
            epoch: 0,
        }
    }

    /// The value at the base scalar.
    #[inline]
    pub fn value(&self) -> S {
        self.value
    }

    /// True when this tracer depends on an active input of the running computation.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.id != NO_ID
    }

    /// The id to pull back into, checking the tracer belongs to the running recording. A
    /// graph that is not recording has epoch 0, which no active tracer carries.
    #[inline(always)]
    pub(crate) fn operand(self, g: &mut Graph<S>) -> u32 {
        if self.id != NO_ID && self.epoch != g.epoch {
            return misused(g);
        }
        self.id
    }

    #[inline(always)]
    fn primitive(
        self,
        other: Self,
        value: S,
        captured: [S; 2],
        pullback: ScalarPullback<S>,
    ) -> Self {
        if self.id == NO_ID && other.id == NO_ID {
            return Tracked::constant_of(value);
        }
        with_graph::<S, _>(|g| {
            let operands = [self.operand(g), other.operand(g)];
            let id = g.push(Entry {
                pullback,
                operands,
                captured,
            });
            Tracked {
                value,
                id,
                epoch: g.epoch,
            }
        })
    }

    #[inline]
    fn unary(self, value: S, captured: S, pullback: ScalarPullback<S>) -> Self {
        self.primitive(
            Tracked::constant_of(S::zero()),
            value,
            [captured, S::zero()],
            pullback,
        )
    }
}

impl<S: Real> PartialEq for Tracked<S> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<S: Real> PartialOrd for Tracked<S> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.value.partial_cmp(&other.value)
    }
}

impl<S: Real> Add for Tracked<S> {
    type Output = Self;
    #[inline(always)]
    fn add(self, r: Self) -> Self {
        self.primitive(r, self.value + r.value, [S::zero(); 2], |_, g, _| [g, g])
    }
}

impl<S: Real> Sub for Tracked<S> {
    type Output = Self;
    #[inline(always)]
    fn sub(self, r: Self) -> Self {
        self.primitive(r, self.value - r.value, [S::zero(); 2], |_, g, _| [g, -g])
    }
}

impl<S: Real> Mul for Tracked<S> {
    type Output = Self;
    #[inline(always)]
    fn mul(self, r: Self) -> Self {
        // Captures both operand values; each cotangent only if needed.
        self.primitive(r, self.value * r.value, [self.value, r.value], |c, g, n| {
            [
                if n[0] { g * c[1] } else { S::zero() },
                if n[1] { g * c[0] } else { S::zero() },
            ]
        })
    }
}

// The quotient rule multiplies.
#[allow(clippy::suspicious_arithmetic_impl)]
impl<S: Real> Div for Tracked<S> {
    type Output = Self;
    #[inline(always)]
    fn div(self, r: Self) -> Self {
        let q = self.value / r.value;
        self.primitive(r, q, [q, r.value], |c, g, n| {
            let gd = g / c[1];
            [gd, if n[1] { -gd * c[0] } else { S::zero() }]
        })
    }
}

impl<S: Real> Neg for Tracked<S> {
    type Output = Self;
    #[inline(always)]
    fn neg(self) -> Self {
        self.unary(-self.value, S::zero(), |_, g, _| [-g, S::zero()])
    }
}

/// Unary primitives: `name => (value from x, captured from (x, y), cotangent from (captured, g))`.
macro_rules! unary_primitives {
    ($($m:ident => |$x:ident, $y:ident| $cap:expr, |$c:ident, $g:ident| $ct:expr;)*) => {$(
        #[inline]
        fn $m(self) -> Self {
            let $x = self.value;
            let $y = $x.$m();
            self.unary($y, $cap, |c, $g, _| {
                let $c = c[0];
                [$ct, S::zero()]
            })
        }
    )*};
}

/// Piecewise-constant functions: no pullback at all.
macro_rules! flat {
    ($($m:ident),* $(,)?) => {$(
        fn $m(self) -> Self {
            Tracked::constant_of(self.value.$m())
        }
    )*};
}

fn sign<S: Real>(x: S) -> S {
    if x > S::zero() {
        S::one()
    } else if x < S::zero() {
        -S::one()
    } else {
        S::zero()
    }
}

impl<S: Real> Float for Tracked<S> {
    difi_core::float_passthrough_methods!(value, Tracked::constant_of);
    flat!(floor, ceil, round, trunc, signum);
    unary_primitives! {
        sqrt => |x, y| y, |y, g| g / (y + y);
        exp => |x, y| y, |y, g| g * y;
        exp2 => |x, y| y, |y, g| g * y * S::LN_2();
        ln => |x, y| x, |x, g| g / x;
        log2 => |x, y| x, |x, g| g / (x * S::LN_2());
        log10 => |x, y| x, |x, g| g / (x * S::LN_10());
        sin => |x, y| x, |x, g| g * x.cos();
        cos => |x, y| x, |x, g| -g * x.sin();
        tan => |x, y| y, |y, g| g * (S::one() + y * y);
        asin => |x, y| x, |x, g| g / (S::one() - x * x).sqrt();
        acos => |x, y| x, |x, g| -g / (S::one() - x * x).sqrt();
        atan => |x, y| x, |x, g| g / (S::one() + x * x);
        sinh => |x, y| x, |x, g| g * x.cosh();
        cosh => |x, y| x, |x, g| g * x.sinh();
        tanh => |x, y| y, |y, g| g * (S::one() - y * y);
        asinh => |x, y| x, |x, g| g / (x * x + S::one()).sqrt();
        acosh => |x, y| x, |x, g| g / (x * x - S::one()).sqrt();
        atanh => |x, y| x, |x, g| g / (S::one() - x * x);
        exp_m1 => |x, y| y, |y, g| g * (y + S::one());
        ln_1p => |x, y| x, |x, g| g / (S::one() + x);
        cbrt => |x, y| y, |y, g| g / (S::constant(3.0) * y * y);
        recip => |x, y| y, |y, g| -g * y * y;
        abs => |x, y| x, |x, g| g * sign(x);
        fract => |x, y| x, |_x, g| g;
    }

    fn powi(self, n: i32) -> Self {
        let x = self.value;
        let d = if n == 0 {
            S::zero()
        } else {
            S::constant(n as f64) * x.powi(n - 1)
        };
        self.unary(x.powi(n), d, |d, g, _| [g * d[0], S::zero()])
    }
    fn powf(self, p: Self) -> Self {
        let (x, e) = (self.value, p.value);
        let y = x.powf(e);
        // The shortcuts are for exact zeros only: a zero value that carries a derivative (one
        // level down) must go through the formula.
        let dx = if e.is_exact_zero() {
            S::zero()
        } else {
            e * x.powf(e - S::one())
        };
        let dp = if y.is_exact_zero() || !p.is_active() {
            S::zero()
        } else {
            y * x.ln()
        };
        self.primitive(p, y, [dx, dp], |c, g, _| [g * c[0], g * c[1]])
    }
    fn max(self, other: Self) -> Self {
        if self.value >= other.value {
            self
        } else {
            other
        }
    }
    fn min(self, other: Self) -> Self {
        if self.value <= other.value {
            self
        } else {
            other
        }
    }
    fn hypot(self, other: Self) -> Self {
        let h = self.value.hypot(other.value);
        if h == S::zero() {
            return Tracked::constant_of(h);
        }
        self.primitive(other, h, [self.value / h, other.value / h], |c, g, _| {
            [g * c[0], g * c[1]]
        })
    }
    fn atan2(self, other: Self) -> Self {
        let (y, x) = (self.value, other.value);
        let r2 = x * x + y * y;
        if r2 == S::zero() {
            return Tracked::constant_of(y.atan2(x));
        }
        self.primitive(other, y.atan2(x), [x / r2, -y / r2], |c, g, _| {
            [g * c[0], g * c[1]]
        })
    }
}

difi_core::impl_tracer_boilerplate!([S: Real] Tracked<S>);

impl<S: Real> Real for Tracked<S> {
    const NEST_LEVEL: usize = S::NEST_LEVEL + 1;

    #[inline]
    fn constant(x: f64) -> Self {
        Tracked::constant_of(S::constant(x))
    }

    #[inline]
    fn innermost(self) -> f64 {
        self.value.innermost()
    }

    #[inline]
    fn is_exact_zero(self) -> bool {
        !self.is_active() && self.value.is_exact_zero()
    }

    fn sum_all(xs: ArrayView1<'_, Self>) -> Self {
        arrays::sum(xs)
    }

    fn sum_map<const N: usize, F: Elementwise<N>>(f: &F, xs: [ArrayView1<'_, Self>; N]) -> Self {
        arrays::sum_map(f, xs)
    }

    fn map_elementwise<const N: usize, F: Elementwise<N>>(
        f: &F,
        xs: [ArrayView1<'_, Self>; N],
    ) -> Array1<Self> {
        arrays::map(f, xs)
    }

    fn dot(a: ArrayView1<'_, Self>, b: ArrayView1<'_, Self>) -> Self {
        arrays::dot(a, b)
    }

    fn matvec(a: ArrayView2<'_, Self>, x: ArrayView1<'_, Self>) -> Array1<Self> {
        let x2 = x.insert_axis(ndarray::Axis(1));
        arrays::matmul(a, x2).remove_axis(ndarray::Axis(1))
    }

    fn matmul(a: ArrayView2<'_, Self>, b: ArrayView2<'_, Self>) -> Array2<Self> {
        arrays::matmul(a, b)
    }

    fn apply_rule<R: Rule>(rule: &R, inputs: &[ArrayViewD<'_, Self>]) -> Vec<ArrayD<Self>> {
        arrays::apply_rule(rule, inputs)
    }

    /// One primitive: the pullback keeps `y` and multiplies by `y (1 − y)`.
    fn logistic(self) -> Self {
        let y = self.value.logistic();
        self.unary(y, y, |y, g, _| [g * y[0] * (S::one() - y[0]), S::zero()])
    }

    /// Stops the derivative at every level.
    fn stop_gradient(self) -> Self {
        Tracked::constant_of(self.value.stop_gradient())
    }

    fn hook<H: Hook>(self, hook: H) -> Self {
        arrays::hook(self, hook)
    }

    fn checkpoint<C: Segment>(segment: &C, inputs: &[Self]) -> Vec<Self> {
        arrays::checkpoint(segment, inputs)
    }
}
