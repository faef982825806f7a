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
            fn zero() -> Self {
                <Self as $crate::Real>::constant(0.0)
            }
            fn is_zero(&self) -> bool {
                <Self as $crate::Real>::innermost(*self) == 0.0
            }
        }

        impl<$($gen)*> $crate::__private::One for $ty {
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
            fn add_assign(&mut self, rhs: Self) {
                *self = *self + rhs;
            }
        }
        impl<$($gen)*> ::std::ops::SubAssign for $ty {
            fn sub_assign(&mut self, rhs: Self) {
                *self = *self - rhs;
            }
        }
        impl<$($gen)*> ::std::ops::MulAssign for $ty {
            fn mul_assign(&mut self, rhs: Self) {
                *self = *self * rhs;
            }
        }
        impl<$($gen)*> ::std::ops::DivAssign for $ty {
            fn div_assign(&mut self, rhs: Self) {
                *self = *self / rhs;
            }
        }
        impl<$($gen)*> ::std::ops::RemAssign for $ty {
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
