//! `Var<S>`: the tape engine's tracer over any base scalar.

use std::cmp::Ordering;
use std::ops::{Add, Div, Mul, Neg, Sub};

use difi_core::{Elementwise, Hook, Real, Rule, Segment};
use ndarray::{Array1, Array2, ArrayD, ArrayView1, ArrayView2, ArrayViewD};
use num_traits::Float;

use crate::special;
use crate::tape::{sin_cos_node, with_tape, Guard, Op, NO_INDEX};

/// The tape engine's tracer: a value of base scalar `S` and, when it depends on an active
/// input, its index on this thread's tape for `S`. 16 bytes for `S = f64`.
///
/// Arithmetic on tracers that carry no index (constants, `Const` arguments) records nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Var<S> {
    pub(crate) value: S,
    pub(crate) index: u32,
    pub(crate) epoch: u32,
}

impl<S: Real> Var<S> {
    /// A tracer with no derivative.
    #[inline]
    pub fn constant_of(value: S) -> Self {
        Var {
            value,
            index: NO_INDEX,
            epoch: 0,
        }
    }

    /// The value at this tracer's base scalar. As with [`Real::innermost`], reading an active
    /// tracer's value while recording marks the recording as never replayed: a branch on it
    /// makes no guard.
    #[inline]
    pub fn value(&self) -> S {
        self.mark_unguarded_read();
        self.value
    }

    /// Notes that the running recording read this active tracer's value outside a comparison.
    #[inline]
    fn mark_unguarded_read(&self) {
        if self.is_active() {
            let epoch = self.epoch;
            with_tape::<S, _>(|t| t.unguarded_read |= t.recording && t.epoch == epoch);
        }
    }

    /// True when this tracer depends on an active input of the running recording.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.index != NO_INDEX
    }

    /// The operand reference of `self` on the tape (registering a constant if needed).
    #[inline]
    fn operand(self, t: &mut crate::tape::TapeData<S>) -> u32 {
        if self.index == NO_INDEX {
            t.push_const(self.value)
        } else {
            self.check(t);
            self.index
        }
    }

    /// An active tracer must belong to the running recording. A tape that is not recording
    /// has epoch 0, which no active tracer carries, so one comparison covers both cases.
    #[inline(always)]
    fn check(self, t: &mut crate::tape::TapeData<S>) {
        if self.epoch != t.epoch {
            t.misuse(MISUSE);
        }
    }

    /// Records `op` on one active operand (with an immediate `imm`: the exponent of `powi`, the
    /// derivative's constant-pool reference of `sin` and `cos`).
    #[inline(always)]
    fn record_unary(self, op: Op, imm: u32, value: S) -> Self {
        if self.index == NO_INDEX {
            return Var::constant_of(value);
        }
        // Small closures on purpose: the per-op path must inline into user code.
        with_tape::<S, _>(|t| {
            self.check(t);
            Var {
                value,
                index: t.push(op, self.index, imm, value),
                epoch: t.epoch,
            }
        })
    }

    /// `sin` or `cos`: the derivative goes to the constant pool beside the node (`b` refers to
    /// it), from the same `sin_cos` call as the value, so the sweep makes no libm call. Two
    /// small closures, as in `binary`, so both inline into user code.
    #[inline(always)]
    fn sin_or_cos(self, op: Op) -> Self {
        if !self.is_active() {
            let x = self.value;
            return Var::constant_of(if op == Op::Sin { x.sin() } else { x.cos() });
        }
        let (value, d) = sin_cos_node(op, self.value);
        let d = with_tape::<S, _>(|t| t.push_const(d));
        self.record_unary(op, d, value)
    }

    #[inline(always)]
    pub(crate) fn unary(self, op: Op, value: S) -> Self {
        self.record_unary(op, 0, value)
    }

    #[inline(always)]
    pub(crate) fn binary(self, other: Self, op: Op, value: S) -> Self {
        let (a_active, b_active) = (self.index != NO_INDEX, other.index != NO_INDEX);
        if !a_active && !b_active {
            return Var::constant_of(value);
        }
        // Small closures, each inlined into user code: a constant operand goes to the pool
        // first, then the op is one push.
        let a = if a_active {
            self.index
        } else {
            with_tape::<S, _>(|t| t.push_const(self.value))
        };
        let b = if b_active {
            other.index
        } else {
            with_tape::<S, _>(|t| t.push_const(other.value))
        };
        with_tape::<S, _>(|t| {
            let epoch = t.epoch;
            if (a_active && self.epoch != epoch) | (b_active && other.epoch != epoch) {
                t.misuse(MISUSE);
            }
            Var {
                value,
                index: t.push(op, a, b, value),
                epoch,
            }
        })
    }
}

/// What a scalar op says of a tracer from another (or a finished) computation.
const MISUSE: &str = "a tracer was used outside the computation that made it (after its \
    gradient or pullback ended, or on another thread); keep tracers inside the differentiated \
    closure and return plain values";

impl<S: Real> PartialEq for Var<S> {
    fn eq(&self, other: &Self) -> bool {
        self.partial_cmp(other) == Some(Ordering::Equal)
    }
}

impl<S: Real> PartialOrd for Var<S> {
    /// Compares values. While recording, a comparison involving an active tracer becomes a
    /// guard: a replayed tape whose inputs would compare otherwise is recorded anew.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        let result = self.value.partial_cmp(&other.value);
        if self.index != NO_INDEX || other.index != NO_INDEX {
            with_tape::<S, _>(|t| {
                if t.recording {
                    let a = self.operand(t);
                    let b = other.operand(t);
                    t.guards.push(Guard { a, b, result });
                }
            });
        }
        result
    }
}

macro_rules! binop {
    ($tr:ident, $m:ident, $op:ident, $sym:tt) => {
        impl<S: Real> $tr for Var<S> {
            type Output = Var<S>;
            #[inline(always)]
            fn $m(self, r: Var<S>) -> Var<S> {
                self.binary(r, Op::$op, self.value $sym r.value)
            }
        }
    };
}
binop!(Add, add, Add, +);
binop!(Sub, sub, Sub, -);
binop!(Mul, mul, Mul, *);
binop!(Div, div, Div, /);

impl<S: Real> Neg for Var<S> {
    type Output = Var<S>;
    #[inline(always)]
    fn neg(self) -> Var<S> {
        self.unary(Op::Neg, -self.value)
    }
}

macro_rules! unary_ops {
    ($($m:ident => $op:ident),* $(,)?) => {$(
        #[inline]
        fn $m(self) -> Self {
            self.unary(Op::$op, self.value.$m())
        }
    )*};
}

impl<S: Real> Float for Var<S> {
    difi_core::float_passthrough_methods!(value, Var::constant_of);
    unary_ops!(floor => Floor, ceil => Ceil, round => Round, trunc => Trunc, fract => Fract,
        abs => Abs, signum => Signum, sqrt => Sqrt, exp => Exp, exp2 => Exp2, ln => Ln,
        log2 => Log2, log10 => Log10, cbrt => Cbrt, tan => Tan,
        asin => Asin, acos => Acos, atan => Atan, exp_m1 => ExpM1, ln_1p => Ln1p, sinh => Sinh,
        cosh => Cosh, tanh => Tanh, asinh => Asinh, acosh => Acosh, atanh => Atanh,
        recip => Recip);

    /// Records `cos x` beside the node, from the same `sin_cos` call as the value.
    #[inline]
    fn sin(self) -> Self {
        self.sin_or_cos(Op::Sin)
    }
    /// Records `−sin x` beside the node.
    #[inline]
    fn cos(self) -> Self {
        self.sin_or_cos(Op::Cos)
    }
    fn powi(self, n: i32) -> Self {
        self.record_unary(Op::Powi, n as u32, self.value.powi(n))
    }
    fn powf(self, n: Self) -> Self {
        self.binary(n, Op::Powf, self.value.powf(n.value))
    }
    fn max(self, other: Self) -> Self {
        let v = if self.value >= other.value {
            self.value
        } else {
            other.value
        };
        self.binary(other, Op::Max, v)
    }
    fn min(self, other: Self) -> Self {
        let v = if self.value <= other.value {
            self.value
        } else {
            other.value
        };
        self.binary(other, Op::Min, v)
    }
    fn hypot(self, other: Self) -> Self {
        self.binary(other, Op::Hypot, self.value.hypot(other.value))
    }
    fn atan2(self, other: Self) -> Self {
        self.binary(other, Op::Atan2, self.value.atan2(other.value))
    }
}

difi_core::impl_tracer_boilerplate!([S: Real] Var<S>);

impl<S: Real> Real for Var<S> {
    const NEST_LEVEL: usize = S::NEST_LEVEL + 1;

    #[inline]
    fn constant(x: f64) -> Self {
        Var::constant_of(S::constant(x))
    }

    /// The plain value. Reading it from an active tracer while recording marks the recording
    /// as never replayed: a branch on it makes no guard.
    #[inline]
    fn innermost(self) -> f64 {
        self.mark_unguarded_read();
        self.value.innermost()
    }

    #[inline]
    fn is_exact_zero(self) -> bool {
        !self.is_active() && self.value.is_exact_zero()
    }

    fn sum_all(xs: ArrayView1<'_, Self>) -> Self {
        special::sum(xs)
    }

    fn sum_map<const N: usize, F: Elementwise<N>>(f: &F, xs: [ArrayView1<'_, Self>; N]) -> Self {
        special::sum_map(f, xs)
    }

    fn map_elementwise<const N: usize, F: Elementwise<N>>(
        f: &F,
        xs: [ArrayView1<'_, Self>; N],
    ) -> Array1<Self> {
        special::map(f, xs)
    }

    fn dot(a: ArrayView1<'_, Self>, b: ArrayView1<'_, Self>) -> Self {
        special::dot(a, b)
    }

    fn matvec(a: ArrayView2<'_, Self>, x: ArrayView1<'_, Self>) -> Array1<Self> {
        special::matvec(a, x)
    }

    fn matmul(a: ArrayView2<'_, Self>, b: ArrayView2<'_, Self>) -> Array2<Self> {
        special::matmul(a, b)
    }

    fn apply_rule<R: Rule>(rule: &R, inputs: &[ArrayViewD<'_, Self>]) -> Vec<ArrayD<Self>> {
        special::apply_rule(rule, inputs)
    }

    /// One record, its derivative `y (1 − y)` taken from the stored value.
    #[inline]
    fn logistic(self) -> Self {
        self.unary(Op::Logistic, self.value.logistic())
    }

    /// Stops the derivative at every level (the value keeps no dependence at all). On an active
    /// tracer this is a record with no derivative, so a replay recomputes the value.
    fn stop_gradient(self) -> Self {
        self.unary(Op::StopGradient, self.value.stop_gradient())
    }

    fn hook<H: Hook>(self, hook: H) -> Self {
        special::hook(self, hook)
    }

    fn checkpoint<C: Segment>(segment: &C, inputs: &[Self]) -> Vec<Self> {
        special::checkpoint(segment, inputs)
    }
}
