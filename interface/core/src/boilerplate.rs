//! The num-traits plumbing every tracer needs, identical across engines.

/// Implements, for an engine's tracer type, the traits whose behaviour does not depend on the
/// engine: `FloatConst`, `FromPrimitive`, `ToPrimitive`, `NumCast`, `Num`, `Zero`, `One`,
/// `Signed`, `Rem`, the assign operators, `Sum`, `Product`, `Display` and ndarray's
/// `ScalarOperand`.
///
/// The type must implement `Copy`, `PartialEq`, `PartialOrd`, `Add`, `Sub`, `Mul`, `Div`, `Neg`,
/// `num_traits::Float` and [`Real`](crate::Real) (whose `constant` and `innermost` this uses)
/// itself. Literals become constants at every level; conversions read the innermost value.
///
/// ```ignore
/// difi_core::impl_tracer_boilerplate!([S: difi_core::Real] Var<S>);
/// difi_core::impl_tracer_boilerplate!([S: difi_core::Real, const N: usize] Dual<S, N>);
/// ```
#[macro_export]
macro_rules! impl_tracer_boilerplate {
    ([$($gen:tt)*] $ty:ty) => {
        impl<$($gen)*> $crate::__private::FloatConst for $ty {
            $crate::impl_tracer_boilerplate!(@consts E, FRAC_1_PI, FRAC_1_SQRT_2, FRAC_2_PI,
                FRAC_2_SQRT_PI, FRAC_PI_2, FRAC_PI_3, FRAC_PI_4, FRAC_PI_6, FRAC_PI_8, LN_10,
                LN_2, LOG10_E, LOG2_E, PI, SQRT_2, TAU, LOG10_2, LOG2_10);
        }

        impl<$($gen)*> $crate::__private::FromPrimitive for $ty {
            fn from_i64(n: i64) -> Option<Self> {
                Some(<Self as $crate::Real>::constant(n as f64))
            }
            fn from_u64(n: u64) -> Option<Self> {
                Some(<Self as $crate::Real>::constant(n as f64))
            }
            fn from_f64(n: f64) -> Option<Self> {
                Some(<Self as $crate::Real>::constant(n))
            }
        }

        impl<$($gen)*> $crate::__private::ToPrimitive for $ty {
            fn to_i64(&self) -> Option<i64> {
                $crate::__private::ToPrimitive::to_i64(&<Self as $crate::Real>::innermost(*self))
            }
            fn to_u64(&self) -> Option<u64> {
                $crate::__private::ToPrimitive::to_u64(&<Self as $crate::Real>::innermost(*self))
            }
            fn to_f64(&self) -> Option<f64> {
                Some(<Self as $crate::Real>::innermost(*self))
            }
        }

        impl<$($gen)*> $crate::__private::NumCast for $ty {
            fn from<P: $crate::__private::ToPrimitive>(n: P) -> Option<Self> {
                n.to_f64().map(<Self as $crate::Real>::constant)
            }
        }

        impl<$($gen)*> $crate::__private::Zero for $ty {
            #[inline]
            fn zero() -> Self {
                <Self as $crate::Real>::constant(0.0)
            }
            fn is_zero(&self) -> bool {
                <Self as $crate::Real>::innermost(*self) == 0.0
            }
        }

        impl<$($gen)*> $crate::__private::One for $ty {
            #[inline]
            fn one() -> Self {
                <Self as $crate::Real>::constant(1.0)
            }
        }

        impl<$($gen)*> $crate::__private::Num for $ty {
            type FromStrRadixErr = $crate::__private::ParseFloatError;
            fn from_str_radix(s: &str, radix: u32) -> Result<Self, Self::FromStrRadixErr> {
                <f64 as $crate::__private::Num>::from_str_radix(s, radix)
                    .map(<Self as $crate::Real>::constant)
            }
        }

        impl<$($gen)*> $crate::__private::Signed for $ty {
            fn abs(&self) -> Self {
                $crate::__private::Float::abs(*self)
            }
            fn abs_sub(&self, other: &Self) -> Self {
                if *self <= *other {
                    <Self as $crate::__private::Zero>::zero()
                } else {
                    *self - *other
                }
            }
            fn signum(&self) -> Self {
                $crate::__private::Float::signum(*self)
            }
            fn is_positive(&self) -> bool {
                <Self as $crate::Real>::innermost(*self) > 0.0
            }
            fn is_negative(&self) -> bool {
                <Self as $crate::Real>::innermost(*self) < 0.0
            }
        }

        impl<$($gen)*> ::std::ops::Rem for $ty {
            type Output = Self;
            fn rem(self, rhs: Self) -> Self {
                self - $crate::__private::Float::trunc(self / rhs) * rhs
            }
        }

        impl<$($gen)*> ::std::ops::AddAssign for $ty {
            #[inline(always)]
            fn add_assign(&mut self, rhs: Self) {
                *self = *self + rhs;
            }
        }
        impl<$($gen)*> ::std::ops::SubAssign for $ty {
            #[inline(always)]
            fn sub_assign(&mut self, rhs: Self) {
                *self = *self - rhs;
            }
        }
        impl<$($gen)*> ::std::ops::MulAssign for $ty {
            #[inline(always)]
            fn mul_assign(&mut self, rhs: Self) {
                *self = *self * rhs;
            }
        }
        impl<$($gen)*> ::std::ops::DivAssign for $ty {
            #[inline(always)]
            fn div_assign(&mut self, rhs: Self) {
                *self = *self / rhs;
            }
        }
        impl<$($gen)*> ::std::ops::RemAssign for $ty {
            #[inline(always)]
            fn rem_assign(&mut self, rhs: Self) {
                *self = *self % rhs;
            }
        }

        impl<$($gen)*> ::std::iter::Sum for $ty {
            fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
                iter.fold(<Self as $crate::__private::Zero>::zero(), |a, b| a + b)
            }
        }
        impl<'__a, $($gen)*> ::std::iter::Sum<&'__a $ty> for $ty {
            fn sum<I: Iterator<Item = &'__a Self>>(iter: I) -> Self {
                iter.fold(<Self as $crate::__private::Zero>::zero(), |a, &b| a + b)
            }
        }
        impl<$($gen)*> ::std::iter::Product for $ty {
            fn product<I: Iterator<Item = Self>>(iter: I) -> Self {
                iter.fold(<Self as $crate::__private::One>::one(), |a, b| a * b)
            }
        }

        impl<$($gen)*> ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Display::fmt(&<Self as $crate::Real>::innermost(*self), f)
            }
        }

        impl<$($gen)*> $crate::__private::ScalarOperand for $ty {}
    };
    (@consts $($name:ident),*) => {
        $(
            #[allow(non_snake_case)]
            fn $name() -> Self {
                <Self as $crate::Real>::constant(::std::f64::consts::$name)
            }
        )*
    };
}

/// Inside an `impl num_traits::Float for Tracer` block: the methods that do not depend on the
/// engine. Constants are built with `$ctor` (a function from the base scalar to a constant
/// tracer), queries read `self.$field`, and `mul_add`, `log`, `sin_cos`, `abs_sub`,
/// `to_degrees` and `to_radians` are composed from the tracer's own arithmetic.
///
/// ```ignore
/// impl<S: Real> Float for Var<S> {
///     difi_core::float_passthrough_methods!(value, Var::constant_of);
///     // ... the differentiable methods
/// }
/// ```
#[macro_export]
macro_rules! float_passthrough_methods {
    ($field:ident, $ctor:path) => {
        $crate::float_passthrough_methods!(@ctor $ctor; nan, infinity, neg_infinity, neg_zero,
            min_value, min_positive_value, max_value, epsilon);
        $crate::float_passthrough_methods!(@query $field; is_nan -> bool, is_infinite -> bool,
            is_finite -> bool, is_normal -> bool, classify -> ::std::num::FpCategory,
            is_sign_positive -> bool, is_sign_negative -> bool, integer_decode -> (u64, i16, i8));
        fn mul_add(self, a: Self, b: Self) -> Self {
            self * a + b
        }
        fn log(self, base: Self) -> Self {
            self.ln() / base.ln()
        }
        fn sin_cos(self) -> (Self, Self) {
            (self.sin(), self.cos())
        }
        fn abs_sub(self, other: Self) -> Self {
            (self - other).max(<Self as $crate::__private::Zero>::zero())
        }
        fn to_degrees(self) -> Self {
            self * <Self as $crate::Real>::constant(180.0 / ::std::f64::consts::PI)
        }
        fn to_radians(self) -> Self {
            self * <Self as $crate::Real>::constant(::std::f64::consts::PI / 180.0)
        }
    };
    (@ctor $ctor:path; $($m:ident),*) => {$(
        fn $m() -> Self {
            $ctor($crate::__private::Float::$m())
        }
    )*};
    (@query $field:ident; $($m:ident -> $t:ty),*) => {$(
        fn $m(self) -> $t {
            $crate::__private::Float::$m(self.$field)
        }
    )*};
}
