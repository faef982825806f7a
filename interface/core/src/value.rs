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

    /// Whether this value has `shape`: [`Differentiable::shape`] compared, which containers
    /// answer without building a `Shape` (prepared operators ask at every call).
    fn has_shape(&self, shape: &Shape) -> bool {
        self.shape() == *shape
    }

    /// Visits every scalar in a fixed order (the order of flat gradients and Jacobian columns).
    fn visit<F: FnMut(Self::Scalar) + ?Sized>(&self, f: &mut F);

    /// The same structure with every scalar mapped, in [`Differentiable::visit`] order.
    fn map<T: Real, F: FnMut(Self::Scalar) -> T + ?Sized>(&self, f: &mut F) -> Self::Of<T>;

    /// A tangent of this value's shape whose scalars are drawn from `next`, in visit order.
    fn tangent_from<G: FnMut() -> Self::Scalar + ?Sized>(&self, next: &mut G) -> Self::Tangent;

    /// Appends every scalar to `out`, in visit order. Flat values copy in bulk; the default
    /// goes through [`Differentiable::visit`].
    fn extend_scalars(&self, out: &mut Vec<Self::Scalar>) {
        self.visit(&mut |s| out.push(s))
    }

    /// The same structure over `T`, its scalars taken in visit order from `src`. A flat value
    /// collects its part in one loop; the default goes through [`Differentiable::map`].
    ///
    /// # Panics
    ///
    /// If `src` ends before this value's scalars do.
    fn of_from_iter<T: Real, I: Iterator<Item = T>>(&self, src: &mut I) -> Self::Of<T> {
        self.map(&mut |_| src.next().expect(SHORT))
    }

    /// A tangent of this value's shape, its scalars taken in visit order from `src`. A flat
    /// value collects its part in one loop.
    ///
    /// # Panics
    ///
    /// If `src` ends before this value's scalars do.
    fn tangent_from_iter<I: Iterator<Item = Self::Scalar>>(&self, src: &mut I) -> Self::Tangent {
        self.tangent_from(&mut || src.next().expect(SHORT))
    }
}

const SHORT: &str = "fewer scalars than the value holds";

/// A standard-layout array of shape `dim` filled in logical (row-major) order, the order
/// [`Differentiable::visit`] follows. `mapv` follows memory order instead, which differs for a
/// transposed or Fortran-order array, so values drawn in order from a sequence would land in
/// the wrong places.
fn in_logical_order<T, D: Dimension>(dim: D, items: impl Iterator<Item = T>) -> Array<T, D> {
    Array::from_shape_vec(dim, items.collect()).expect("one item per element")
}

/// The next `n` items of `src`, collected in one loop.
fn collect_n<T, I: Iterator<Item = T>>(src: &mut I, n: usize) -> Vec<T> {
    let out: Vec<T> = src.by_ref().take(n).collect();
    assert_eq!(out.len(), n, "{SHORT}");
    out
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
    fn has_shape(&self, shape: &Shape) -> bool {
        *shape == Shape::Scalar
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
            fn has_shape(&self, shape: &Shape) -> bool {
                matches!(shape, Shape::Array(d) if d[..] == [self.len()])
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
            fn extend_scalars(&self, out: &mut Vec<S>) {
                out.extend_from_slice(self)
            }
            fn of_from_iter<T: Real, I: Iterator<Item = T>>(&self, src: &mut I) -> Vec<T> {
                collect_n(src, self.len())
            }
            fn tangent_from_iter<I: Iterator<Item = S>>(&self, src: &mut I) -> Vec<S> {
                collect_n(src, self.len())
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
    fn has_shape(&self, shape: &Shape) -> bool {
        matches!(shape, Shape::Array(d) if d[..] == [N])
    }
    fn visit<F: FnMut(S) + ?Sized>(&self, f: &mut F) {
        self.iter().for_each(|&x| f(x))
    }
    // Filled in place, not by `array::from_fn`: with tracers of a hundred bytes and more (a
    // 16-lane dual), a crate compiled as several codegen units left its closure out of line and
    // moved every element through `memmove`, a quarter of ba's forward Jacobian.
    fn map<T: Real, F: FnMut(S) -> T + ?Sized>(&self, f: &mut F) -> [T; N] {
        let mut out = [T::zero(); N];
        for (o, &x) in out.iter_mut().zip(self) {
            *o = f(x);
        }
        out
    }
    fn tangent_from<G: FnMut() -> S + ?Sized>(&self, next: &mut G) -> [S; N] {
        let mut out = [S::zero(); N];
        out.iter_mut().for_each(|o| *o = next());
        out
    }
    fn extend_scalars(&self, out: &mut Vec<S>) {
        out.extend_from_slice(self)
    }
    fn of_from_iter<T: Real, I: Iterator<Item = T>>(&self, src: &mut I) -> [T; N] {
        let mut out = [T::zero(); N];
        out.iter_mut().for_each(|o| *o = src.next().expect(SHORT));
        out
    }
    fn tangent_from_iter<I: Iterator<Item = S>>(&self, src: &mut I) -> [S; N] {
        self.of_from_iter(src)
    }
}

impl<S: Real, Dt: Data<Elem = S>, D: Dimension> Differentiable for ArrayBase<Dt, D> {
    type Scalar = S;
    type Of<T: Real> = Array<T, D>;
    type Tangent = Array<S, D>;

    fn shape(&self) -> Shape {
        Shape::Array(self.shape().to_vec())
    }
    fn has_shape(&self, shape: &Shape) -> bool {
        matches!(shape, Shape::Array(d) if d[..] == *self.shape())
    }
    // A standard-layout array is walked as a slice: ndarray's element iterator checks its
    // layout at every step (lifting a 6M-element array took 26 ms so, 22 as a slice).
    fn visit<F: FnMut(S) + ?Sized>(&self, f: &mut F) {
        match self.as_slice() {
            Some(flat) => flat.iter().for_each(|&x| f(x)),
            None => self.iter().for_each(|&x| f(x)),
        }
    }
    fn map<T: Real, F: FnMut(S) -> T + ?Sized>(&self, f: &mut F) -> Array<T, D> {
        match self.as_slice() {
            Some(flat) => in_logical_order(self.raw_dim(), flat.iter().map(|&x| f(x))),
            None => in_logical_order(self.raw_dim(), self.iter().map(|&x| f(x))),
        }
    }
    fn tangent_from<G: FnMut() -> S + ?Sized>(&self, next: &mut G) -> Array<S, D> {
        in_logical_order(self.raw_dim(), (0..self.len()).map(|_| next()))
    }
    fn extend_scalars(&self, out: &mut Vec<S>) {
        match self.as_slice() {
            Some(flat) => out.extend_from_slice(flat),
            None => out.extend(self.iter().copied()),
        }
    }
    fn of_from_iter<T: Real, I: Iterator<Item = T>>(&self, src: &mut I) -> Array<T, D> {
        in_logical_order(self.raw_dim(), collect_n(src, self.len()).into_iter())
    }
    fn tangent_from_iter<I: Iterator<Item = S>>(&self, src: &mut I) -> Array<S, D> {
        self.of_from_iter(src)
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
            fn has_shape(&self, shape: &Shape) -> bool {
                Differentiable::has_shape(&**self, shape)
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
            fn extend_scalars(&self, out: &mut Vec<S>) {
                Differentiable::extend_scalars(&**self, out)
            }
            fn of_from_iter<T: Real, I: Iterator<Item = T>>(&self, src: &mut I) -> Self::Of<T> {
                Differentiable::of_from_iter(&**self, src)
            }
            fn tangent_from_iter<I: Iterator<Item = S>>(&self, src: &mut I) -> Self::Tangent {
                Differentiable::tangent_from_iter(&**self, src)
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
    fn has_shape(&self, shape: &Shape) -> bool {
        Differentiable::has_shape(&**self, shape)
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
    fn extend_scalars(&self, out: &mut Vec<S>) {
        Differentiable::extend_scalars(&**self, out)
    }
    fn of_from_iter<T: Real, I: Iterator<Item = T>>(&self, src: &mut I) -> [T; N] {
        Differentiable::of_from_iter(&**self, src)
    }
    fn tangent_from_iter<I: Iterator<Item = S>>(&self, src: &mut I) -> [S; N] {
        Differentiable::tangent_from_iter(&**self, src)
    }
}

impl<S: Real, Dt: Data<Elem = S>, D: Dimension> Differentiable for &ArrayBase<Dt, D> {
    type Scalar = S;
    type Of<T: Real> = Array<T, D>;
    type Tangent = Array<S, D>;

    fn shape(&self) -> Shape {
        Differentiable::shape(*self)
    }
    fn has_shape(&self, shape: &Shape) -> bool {
        Differentiable::has_shape(*self, shape)
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
    fn extend_scalars(&self, out: &mut Vec<S>) {
        Differentiable::extend_scalars(*self, out)
    }
    fn of_from_iter<T: Real, I: Iterator<Item = T>>(&self, src: &mut I) -> Array<T, D> {
        Differentiable::of_from_iter(*self, src)
    }
    fn tangent_from_iter<I: Iterator<Item = S>>(&self, src: &mut I) -> Array<S, D> {
        Differentiable::tangent_from_iter(*self, src)
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
        in_logical_order(self.raw_dim(), (0..self.len()).map(|_| next()))
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
            fn tangent_from<G: FnMut() -> Self::Scalar + ?Sized>(
                &self,
                next: &mut G,
            ) -> Self::Tangent {
                let ($first, $($rest,)*) = self;
                ($first.tangent_from(next), $($rest.tangent_from(next),)*)
            }
            fn extend_scalars(&self, out: &mut Vec<Self::Scalar>) {
                let ($first, $($rest,)*) = self;
                $first.extend_scalars(out);
                $($rest.extend_scalars(out);)*
            }
            fn of_from_iter<T: Real, I: Iterator<Item = T>>(&self, src: &mut I) -> Self::Of<T> {
                let ($first, $($rest,)*) = self;
                ($first.of_from_iter(src), $($rest.of_from_iter(src),)*)
            }
            fn tangent_from_iter<I: Iterator<Item = Self::Scalar>>(
                &self,
                src: &mut I,
            ) -> Self::Tangent {
                let ($first, $($rest,)*) = self;
                ($first.tangent_from_iter(src), $($rest.tangent_from_iter(src),)*)
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

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// A row-major matrix and its transpose as an owned Fortran-order array.
    fn transposed() -> Array2<f64> {
        Array2::from_shape_vec((2, 3), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
            .unwrap()
            .reversed_axes()
    }

    #[test]
    fn arrays_are_filled_in_visit_order_whatever_their_memory_order() {
        let a = transposed();
        let logical: Vec<f64> = a.iter().copied().collect();
        assert_eq!(logical, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        // Values drawn in order from a sequence land where visit order says.
        let mut k = 0.0;
        let drawn = a.tangent_from(&mut || {
            k += 1.0;
            k
        });
        assert_eq!(
            drawn,
            Array2::from_shape_fn((3, 2), |(i, j)| (2 * i + j + 1) as f64)
        );
        let mut k = 0.0;
        let mapped: Array2<f64> = a.map(&mut |_| {
            k += 1.0;
            k
        });
        assert_eq!(mapped, drawn);
        let mut k = 0.0;
        assert_eq!(
            Output::<f64>::rebuild(&a, &mut || {
                k += 1.0;
                k
            }),
            drawn
        );
        let mut seq = (1..=6).map(f64::from);
        assert_eq!(a.of_from_iter(&mut seq), drawn);
        let mut seq = (1..=6).map(f64::from);
        assert_eq!(a.tangent_from_iter(&mut seq), drawn);
    }

    #[test]
    fn bulk_forms_agree_with_the_visiting_forms() {
        let value = (
            vec![1.0, 2.0],
            [3.0, 4.0, 5.0],
            transposed(),
            Array2::from_shape_vec((1, 2), vec![6.5, 7.5]).unwrap(),
        );
        let mut visited = Vec::new();
        value.visit(&mut |s| visited.push(s));
        let mut extended = Vec::new();
        value.extend_scalars(&mut extended);
        assert_eq!(extended, visited);
        // Rebuilding from the visited scalars gives the value back (logically).
        let rebuilt = value.of_from_iter::<f64, _>(&mut visited.iter().copied());
        let tangent = value.tangent_from_iter(&mut visited.iter().copied());
        assert_eq!(flatten(&rebuilt), visited);
        assert_eq!(flatten(&tangent), visited);
        assert_eq!(rebuilt.2, value.2);
    }

    #[test]
    #[should_panic(expected = "fewer scalars than the value holds")]
    fn a_short_sequence_is_a_clear_panic() {
        vec![1.0, 2.0, 3.0].tangent_from_iter(&mut [1.0, 2.0].into_iter());
    }
}
