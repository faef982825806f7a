//! Differentiable values: what arguments and results of a differentiated function may be.
//!
//! A [`Differentiable`] value is a structure of scalars of one [`Real`] type: a scalar, a slice,
//! `Vec`, `[S; N]`, an ndarray array of any dimension, a tuple, or a user struct with
//! `#[derive(Differentiable)]`. It maps to its traced form (`Of<T>`, the same structure over the
//! engine's tracer `T`) and its tangent has the same shape.
//!
//! [`Output`] is the other direction: what a function may return, collected from tracers.

use std::fmt::{self, Debug};

use ndarray::{Array, ArrayBase, Data, Dimension};

use crate::Real;

/// The shape of a value, for checks and error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    /// One scalar.
    Scalar,
    /// A flat sequence or an n-dimensional array with these dimensions.
    Array(Vec<usize>),
    /// A tuple of values.
    Tuple(Vec<Shape>),
    /// A derived struct: its name and its fields.
    Struct {
        /// The struct's name.
        name: &'static str,
        /// Field names and shapes, in declaration order.
        fields: Vec<(&'static str, Shape)>,
    },
}

impl Shape {
    /// Number of scalars.
    pub fn len(&self) -> usize {
        match self {
            Shape::Scalar => 1,
            Shape::Array(d) => d.iter().product(),
            Shape::Tuple(s) => s.iter().map(Shape::len).sum(),
            Shape::Struct { fields, .. } => fields.iter().map(|(_, s)| s.len()).sum(),
        }
    }

    /// True when the value holds no scalar.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Scalar => write!(f, "a scalar"),
            Shape::Array(d) if d.len() == 1 => write!(f, "length {}", d[0]),
            Shape::Array(d) => write!(f, "an array of shape {d:?}"),
            Shape::Tuple(s) => {
                write!(f, "(")?;
                for (i, x) in s.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{x}")?;
                }
                write!(f, ")")
            }
            Shape::Struct { name, fields } => {
                write!(f, "{name} {{ ")?;
                for (i, (n, s)) in fields.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{n}: {s}")?;
                }
                write!(f, " }}")
            }
        }
    }
}

/// A structure of scalars of one type that can be an argument of a differentiated function.
///
/// Implemented for every [`Real`], slices, `Vec`, arrays `[S; N]`, ndarray arrays and views of
/// any dimension, references to those, tuples of up to four, and structs with
/// `#[derive(Differentiable)]`.
///
/// ```
/// use difi_core::{Differentiable, Shape};
/// let x = vec![1.0, 2.0, 3.0];
/// assert_eq!(x.shape(), Shape::Array(vec![3]));
/// let doubled: Vec<f64> = x.map(&mut |v| 2.0 * v);
/// assert_eq!(doubled, vec![2.0, 4.0, 6.0]);
/// ```
pub trait Differentiable {
    /// The scalar type.
    type Scalar: Real;
    /// The same structure over another scalar type (what the user's function receives).
    type Of<T: Real>;
    /// The tangent / cotangent: same structure, owned, over `Self::Scalar`.
    type Tangent: Differentiable<Scalar = Self::Scalar, Tangent = Self::Tangent> + Clone + Debug;

    /// The shape of this value.
    fn shape(&self) -> Shape;

    /// Visits every scalar in a fixed order (the order of flat gradients and Jacobian columns).
    fn visit<F: FnMut(Self::Scalar) + ?Sized>(&self, f: &mut F);

    /// The same structure with every scalar mapped, in [`Differentiable::visit`] order.
    fn map<T: Real, F: FnMut(Self::Scalar) -> T + ?Sized>(&self, f: &mut F) -> Self::Of<T>;

    /// A tangent of this value's shape whose scalars are drawn from `next`, in visit order.
    fn tangent_from<G: FnMut() -> Self::Scalar + ?Sized>(&self, next: &mut G) -> Self::Tangent;
}

/// What a differentiated function may return: a structure of tracer scalars `T`.
///
/// Implemented for `T` itself, `Vec<T>`, `[T; N]`, owned ndarray arrays, tuples of up to four,
/// and structs with `#[derive(Differentiable)]`.
pub trait Output<T: Real> {
    /// The same structure over another scalar type (the value and seeds the user sees).
    type Of<U: Real>: Differentiable<Scalar = U, Tangent = Self::Of<U>> + Clone + Debug;

    /// The shape of this value.
    fn output_shape(&self) -> Shape;

    /// Visits every scalar in a fixed order.
    fn visit_output<F: FnMut(T) + ?Sized>(&self, f: &mut F);

    /// The same structure over `U`, scalars drawn from `next` in visit order.
    fn rebuild<U: Real, G: FnMut() -> U + ?Sized>(&self, next: &mut G) -> Self::Of<U>;
}

// ---- scalars ----

impl<S: Real> Differentiable for S {
    type Scalar = S;
    type Of<T: Real> = T;
    type Tangent = S;

    fn shape(&self) -> Shape {
        Shape::Scalar
    }
    fn visit<F: FnMut(S) + ?Sized>(&self, f: &mut F) {
        f(*self)
    }
    fn map<T: Real, F: FnMut(S) -> T + ?Sized>(&self, f: &mut F) -> T {
        f(*self)
    }
    fn tangent_from<G: FnMut() -> S + ?Sized>(&self, next: &mut G) -> S {
        next()
    }
}

impl<T: Real> Output<T> for T {
    type Of<U: Real> = U;

    fn output_shape(&self) -> Shape {
        Shape::Scalar
    }
    fn visit_output<F: FnMut(T) + ?Sized>(&self, f: &mut F) {
        f(*self)
    }
    fn rebuild<U: Real, G: FnMut() -> U + ?Sized>(&self, next: &mut G) -> U {
        next()
    }
}

// ---- flat sequences ----

macro_rules! flat_differentiable {
    ($($ty:ty),*) => {$(
        impl<S: Real> Differentiable for $ty {
            type Scalar = S;
            type Of<T: Real> = Vec<T>;
            type Tangent = Vec<S>;

            fn shape(&self) -> Shape {
                Shape::Array(vec![self.len()])
            }
            fn visit<F: FnMut(S) + ?Sized>(&self, f: &mut F) {
                self.iter().for_each(|&x| f(x))
            }
            fn map<T: Real, F: FnMut(S) -> T + ?Sized>(&self, f: &mut F) -> Vec<T> {
                self.iter().map(|&x| f(x)).collect()
            }
            fn tangent_from<G: FnMut() -> S + ?Sized>(&self, next: &mut G) -> Vec<S> {
                (0..self.len()).map(|_| next()).collect()
            }
        }
    )*};
}
flat_differentiable!([S], Vec<S>);

impl<S: Real, const N: usize> Differentiable for [S; N] {
    type Scalar = S;
    type Of<T: Real> = [T; N];
    type Tangent = [S; N];

    fn shape(&self) -> Shape {
        Shape::Array(vec![N])
    }
    fn visit<F: FnMut(S) + ?Sized>(&self, f: &mut F) {
        self.iter().for_each(|&x| f(x))
    }
    fn map<T: Real, F: FnMut(S) -> T + ?Sized>(&self, f: &mut F) -> [T; N] {
        std::array::from_fn(|i| f(self[i]))
    }
    fn tangent_from<G: FnMut() -> S + ?Sized>(&self, next: &mut G) -> [S; N] {
        std::array::from_fn(|_| next())
    }
}

impl<S: Real, Dt: Data<Elem = S>, D: Dimension> Differentiable for ArrayBase<Dt, D> {
    type Scalar = S;
    type Of<T: Real> = Array<T, D>;
    type Tangent = Array<S, D>;

    fn shape(&self) -> Shape {
        Shape::Array(self.shape().to_vec())
    }
    fn visit<F: FnMut(S) + ?Sized>(&self, f: &mut F) {
        self.iter().for_each(|&x| f(x))
    }
    fn map<T: Real, F: FnMut(S) -> T + ?Sized>(&self, f: &mut F) -> Array<T, D> {
        self.mapv(f)
    }
    fn tangent_from<G: FnMut() -> S + ?Sized>(&self, next: &mut G) -> Array<S, D> {
        self.mapv(|_| next())
    }
}

macro_rules! reference_differentiable {
    ($($ty:ty),*) => {$(
        impl<'a, S: Real> Differentiable for &'a $ty {
            type Scalar = S;
            type Of<T: Real> = <$ty as Differentiable>::Of<T>;
            type Tangent = <$ty as Differentiable>::Tangent;

            fn shape(&self) -> Shape {
                Differentiable::shape(&**self)
            }
            fn visit<F: FnMut(S) + ?Sized>(&self, f: &mut F) {
                Differentiable::visit(&**self, f)
            }
            fn map<T: Real, F: FnMut(S) -> T + ?Sized>(&self, f: &mut F) -> Self::Of<T> {
                Differentiable::map(&**self, f)
            }
            fn tangent_from<G: FnMut() -> S + ?Sized>(&self, next: &mut G) -> Self::Tangent {
                Differentiable::tangent_from(&**self, next)
            }
        }
    )*};
}
reference_differentiable!([S], Vec<S>);

impl<S: Real, const N: usize> Differentiable for &[S; N] {
    type Scalar = S;
    type Of<T: Real> = [T; N];
    type Tangent = [S; N];

    fn shape(&self) -> Shape {
        Differentiable::shape(&**self)
    }
    fn visit<F: FnMut(S) + ?Sized>(&self, f: &mut F) {
        Differentiable::visit(&**self, f)
    }
    fn map<T: Real, F: FnMut(S) -> T + ?Sized>(&self, f: &mut F) -> [T; N] {
        Differentiable::map(&**self, f)
    }
    fn tangent_from<G: FnMut() -> S + ?Sized>(&self, next: &mut G) -> [S; N] {
        Differentiable::tangent_from(&**self, next)
    }
}

impl<S: Real, Dt: Data<Elem = S>, D: Dimension> Differentiable for &ArrayBase<Dt, D> {
    type Scalar = S;
    type Of<T: Real> = Array<T, D>;
    type Tangent = Array<S, D>;

    fn shape(&self) -> Shape {
        Differentiable::shape(*self)
    }
    fn visit<F: FnMut(S) + ?Sized>(&self, f: &mut F) {
        Differentiable::visit(*self, f)
    }
    fn map<T: Real, F: FnMut(S) -> T + ?Sized>(&self, f: &mut F) -> Array<T, D> {
        Differentiable::map(*self, f)
    }
    fn tangent_from<G: FnMut() -> S + ?Sized>(&self, next: &mut G) -> Array<S, D> {
        Differentiable::tangent_from(*self, next)
    }
}

impl<T: Real> Output<T> for Vec<T> {
    type Of<U: Real> = Vec<U>;

    fn output_shape(&self) -> Shape {
        Shape::Array(vec![self.len()])
    }
    fn visit_output<F: FnMut(T) + ?Sized>(&self, f: &mut F) {
        self.iter().for_each(|&x| f(x))
    }
    fn rebuild<U: Real, G: FnMut() -> U + ?Sized>(&self, next: &mut G) -> Vec<U> {
        (0..self.len()).map(|_| next()).collect()
    }
}

impl<T: Real, const N: usize> Output<T> for [T; N] {
    type Of<U: Real> = [U; N];

    fn output_shape(&self) -> Shape {
        Shape::Array(vec![N])
    }
    fn visit_output<F: FnMut(T) + ?Sized>(&self, f: &mut F) {
        self.iter().for_each(|&x| f(x))
    }
    fn rebuild<U: Real, G: FnMut() -> U + ?Sized>(&self, next: &mut G) -> [U; N] {
        std::array::from_fn(|_| next())
    }
}

impl<T: Real, D: Dimension> Output<T> for Array<T, D> {
    type Of<U: Real> = Array<U, D>;

    fn output_shape(&self) -> Shape {
        Shape::Array(self.shape().to_vec())
    }
    fn visit_output<F: FnMut(T) + ?Sized>(&self, f: &mut F) {
        self.iter().for_each(|&x| f(x))
    }
    fn rebuild<U: Real, G: FnMut() -> U + ?Sized>(&self, next: &mut G) -> Array<U, D> {
        self.mapv(|_| next())
    }
}

// ---- tuples ----

macro_rules! tuple_values {
    ($first:ident $(, $rest:ident)*) => {
        #[allow(non_snake_case)]
        impl<$first: Differentiable $(, $rest: Differentiable<Scalar = $first::Scalar>)*> Differentiable
            for ($first, $($rest,)*)
        {
            type Scalar = $first::Scalar;
            type Of<T: Real> = ($first::Of<T>, $($rest::Of<T>,)*);
            type Tangent = ($first::Tangent, $($rest::Tangent,)*);

            fn shape(&self) -> Shape {
                let ($first, $($rest,)*) = self;
                Shape::Tuple(vec![$first.shape() $(, $rest.shape())*])
            }
            fn visit<F: FnMut(Self::Scalar) + ?Sized>(&self, f: &mut F) {
                let ($first, $($rest,)*) = self;
                $first.visit(f);
                $($rest.visit(f);)*
            }
            fn map<T: Real, F: FnMut(Self::Scalar) -> T + ?Sized>(&self, f: &mut F) -> Self::Of<T> {
                let ($first, $($rest,)*) = self;
                ($first.map(f), $($rest.map(f),)*)
            }
            fn tangent_from<G: FnMut() -> Self::Scalar + ?Sized>(&self, next: &mut G) -> Self::Tangent {
                let ($first, $($rest,)*) = self;
                ($first.tangent_from(next), $($rest.tangent_from(next),)*)
            }
        }

        #[allow(non_snake_case)]
        impl<T: Real, $first: Output<T> $(, $rest: Output<T>)*> Output<T> for ($first, $($rest,)*) {
            type Of<U: Real> = ($first::Of<U>, $($rest::Of<U>,)*);

            fn output_shape(&self) -> Shape {
                let ($first, $($rest,)*) = self;
                Shape::Tuple(vec![$first.output_shape() $(, $rest.output_shape())*])
            }
            fn visit_output<F: FnMut(T) + ?Sized>(&self, f: &mut F) {
                let ($first, $($rest,)*) = self;
                $first.visit_output(f);
                $($rest.visit_output(f);)*
            }
            fn rebuild<U: Real, G: FnMut() -> U + ?Sized>(&self, next: &mut G) -> Self::Of<U> {
                let ($first, $($rest,)*) = self;
                ($first.rebuild(next), $($rest.rebuild(next),)*)
            }
        }
    };
}
tuple_values!(V1, V2);
tuple_values!(V1, V2, V3);
tuple_values!(V1, V2, V3, V4);

/// Flattens a value's scalars into a vector, in visit order.
pub fn flatten<X: Differentiable + ?Sized>(x: &X) -> Vec<X::Scalar> {
    let mut out = Vec::with_capacity(x.shape().len());
    x.visit(&mut |s| out.push(s));
    out
}
