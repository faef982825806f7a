//! A third-party scalar type can implement `Real` with `impl_tracer_boilerplate!` plus its own
//! arithmetic and `Float`; user code then runs on it unchanged.

use std::num::FpCategory;
use std::ops::{Add, Div, Mul, Neg, Sub};

use difi_core::Real;
use num_traits::Float;

/// A plain wrapper that counts nothing and derives nothing: the smallest possible `Real`.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
struct Wrapped(f64);

macro_rules! binop {
    ($tr:ident, $m:ident, $op:tt) => {
        impl $tr for Wrapped {
            type Output = Wrapped;
            fn $m(self, r: Wrapped) -> Wrapped {
                Wrapped(self.0 $op r.0)
            }
        }
    };
}
binop!(Add, add, +);
binop!(Sub, sub, -);
binop!(Mul, mul, *);
binop!(Div, div, /);
impl Neg for Wrapped {
    type Output = Wrapped;
    fn neg(self) -> Wrapped {
        Wrapped(-self.0)
    }
}

macro_rules! unary {
    ($($m:ident),*) => {$(fn $m(self) -> Self { Wrapped(self.0.$m()) })*};
}
macro_rules! binary {
    ($($m:ident),*) => {$(fn $m(self, o: Self) -> Self { Wrapped(self.0.$m(o.0)) })*};
}

impl Float for Wrapped {
    unary!(
        floor, ceil, round, trunc, fract, abs, signum, sqrt, exp, exp2, ln, log2, log10, cbrt, sin,
        cos, tan, asin, acos, atan, exp_m1, ln_1p, sinh, cosh, tanh, asinh, acosh, atanh, recip
    );
    binary!(max, min, powf, log, hypot, atan2);
    fn nan() -> Self {
        Wrapped(f64::NAN)
    }
    fn infinity() -> Self {
        Wrapped(f64::INFINITY)
    }
    fn neg_infinity() -> Self {
        Wrapped(f64::NEG_INFINITY)
    }
    fn neg_zero() -> Self {
        Wrapped(-0.0)
    }
    fn min_value() -> Self {
        Wrapped(f64::MIN)
    }
    fn min_positive_value() -> Self {
        Wrapped(f64::MIN_POSITIVE)
    }
    fn max_value() -> Self {
        Wrapped(f64::MAX)
    }
    fn is_nan(self) -> bool {
        self.0.is_nan()
    }
    fn is_infinite(self) -> bool {
        self.0.is_infinite()
    }
    fn is_finite(self) -> bool {
        self.0.is_finite()
    }
    fn is_normal(self) -> bool {
        self.0.is_normal()
    }
    fn classify(self) -> FpCategory {
        self.0.classify()
    }
    fn is_sign_positive(self) -> bool {
        self.0.is_sign_positive()
    }
    fn is_sign_negative(self) -> bool {
        self.0.is_sign_negative()
    }
    fn mul_add(self, a: Self, b: Self) -> Self {
        Wrapped(self.0.mul_add(a.0, b.0))
    }
    fn powi(self, n: i32) -> Self {
        Wrapped(self.0.powi(n))
    }
    #[allow(deprecated)]
    fn abs_sub(self, o: Self) -> Self {
        Wrapped(Float::abs_sub(self.0, o.0))
    }
    fn sin_cos(self) -> (Self, Self) {
        (self.sin(), self.cos())
    }
    fn integer_decode(self) -> (u64, i16, i8) {
        Float::integer_decode(self.0)
    }
}

difi_core::impl_tracer_boilerplate!([] Wrapped);

impl Real for Wrapped {
    const NEST_LEVEL: usize = 0;
    fn constant(x: f64) -> Self {
        Wrapped(x)
    }
    fn innermost(self) -> f64 {
        self.0
    }
}

fn softplus_sum<T: Real>(x: &[T]) -> T {
    x.iter().map(|&v| (T::one() + v.exp()).ln()).sum::<T>() * T::PI() / T::from_f64(2.0).unwrap()
}

#[test]
fn user_code_runs_on_a_third_party_real() {
    let xs = [0.5, -1.0, 2.0];
    let plain = softplus_sum(&xs);
    let wrapped: Vec<Wrapped> = xs.iter().map(|&v| Wrapped(v)).collect();
    assert_eq!(softplus_sum(&wrapped).innermost(), plain);
    assert_eq!(format!("{}", Wrapped(1.5)), "1.5");
    assert_eq!(Wrapped(7.0) % Wrapped(4.0), Wrapped(3.0));
    assert!(<Wrapped as num_traits::Signed>::is_negative(&Wrapped(-2.0)));
    let mut acc = Wrapped(1.0);
    acc += Wrapped(2.0);
    acc *= Wrapped(3.0);
    assert_eq!(acc, Wrapped(9.0));
    let a = ndarray::arr1(&[Wrapped(1.0), Wrapped(2.0)]);
    assert_eq!((&a * Wrapped(2.0))[1], Wrapped(4.0));
    assert_eq!(Wrapped::dot(a.view(), a.view()), Wrapped(5.0));
}
