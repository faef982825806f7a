//! Activity annotations: every argument of a differentiated function is `Active` or `Const`.

use std::fmt::Debug;

use crate::error::{Error, Result};
use crate::value::{Differentiable, Shape};
use crate::Real;

/// An argument to differentiate with respect to.
#[derive(Clone, Copy, Debug)]
pub struct Active<X>(pub X);

/// An argument held constant: it records nothing, allocates no adjoint, and a custom rule is
/// never asked for its cotangent. Its result slot is [`NoTangent`].
#[derive(Clone, Copy, Debug)]
pub struct Const<X>(pub X);

/// The result slot of a [`Const`] argument.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoTangent;

/// The activity and shape of one argument, as a preparation remembers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgSignature {
    /// `Active` or `Const`.
    pub active: bool,
    /// The argument's shape.
    pub shape: Shape,
}

/// The signature of a batch's first argument set, which every later set must match
/// ([`Backend::jacobian_batch`](crate::Backend::jacobian_batch)).
#[derive(Clone, Debug, Default)]
pub struct BatchSignature(Option<Signature>);

impl BatchSignature {
    /// Remembers the first set's signature; for a later set, the error naming the first argument
    /// that differs from it.
    pub fn check<A: Args>(&mut self, args: &A) -> Result<()> {
        match &self.0 {
            Some(first) => first.check_args("jacobian_batch", args),
            None => {
                self.0 = Some(args.signature());
                Ok(())
            }
        }
    }
}

/// Activities and shapes of an argument list; prepared operators compare it at every call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature(pub Vec<ArgSignature>);

impl Signature {
    /// Number of active scalars.
    pub fn num_active(&self) -> usize {
        self.0
            .iter()
            .filter(|a| a.active)
            .map(|a| a.shape.len())
            .sum()
    }

    /// `Ok` if `args` have this signature (checked without building theirs); else the error
    /// naming the first differing argument.
    pub fn check_args<A: Args>(&self, operator: &'static str, args: &A) -> Result<()> {
        if args.matches(self) {
            Ok(())
        } else {
            self.check(operator, &args.signature())
        }
    }

    /// `Ok` if `given` matches; else the error naming the first differing argument.
    pub fn check(&self, operator: &'static str, given: &Signature) -> Result<()> {
        if self.0.len() != given.0.len() {
            return Err(Error::PreparedArityMismatch {
                operator,
                prepared: self.0.len(),
                given: given.0.len(),
            });
        }
        for (i, (p, g)) in self.0.iter().zip(&given.0).enumerate() {
            if p != g {
                let describe = |a: &ArgSignature| {
                    format!("{}({})", if a.active { "Active" } else { "Const" }, a.shape)
                };
                return Err(Error::PreparedShapeMismatch {
                    operator,
                    argument: i + 1,
                    prepared: describe(p),
                    given: describe(g),
                });
            }
        }
        Ok(())
    }
}

/// One annotated argument: [`Active`] or [`Const`] around a [`Differentiable`] value.
pub trait Annotated {
    /// The scalar type of the value.
    type Scalar: Real;
    /// What the user's function receives for this argument.
    type Of<T: Real>;
    /// The result slot: the value's tangent type, or [`NoTangent`].
    type Tangent: Clone + Debug;
    /// True for [`Active`].
    const ACTIVE: bool;

    /// The value's shape.
    fn shape(&self) -> Shape;
    /// Whether this argument has `signature`'s activity and shape.
    fn matches(&self, signature: &ArgSignature) -> bool {
        signature.active == Self::ACTIVE && self.shape() == signature.shape
    }
    /// Visits the value's scalars if active, nothing if constant.
    fn visit_active<F: FnMut(Self::Scalar) + ?Sized>(&self, f: &mut F);
    /// The traced form: active scalars through `active`, constant ones through `constant`.
    fn lift<T: Real, FA: FnMut(Self::Scalar) -> T + ?Sized, FC: FnMut(Self::Scalar) -> T + ?Sized>(
        &self,
        active: &mut FA,
        constant: &mut FC,
    ) -> Self::Of<T>;
    /// The result slot, with scalars drawn from `next` for an active argument.
    fn tangent_from<G: FnMut() -> Self::Scalar + ?Sized>(&self, next: &mut G) -> Self::Tangent;
    /// A result slot shaped like `template`, scalars drawn from `next`.
    fn tangent_like<G: FnMut() -> Self::Scalar + ?Sized>(
        template: &Self::Tangent,
        next: &mut G,
    ) -> Self::Tangent;
    /// Visits a result slot's scalars; `None` for [`NoTangent`].
    fn tangent_shape(t: &Self::Tangent) -> Option<Shape>;
    /// Visits a result slot's scalars.
    fn visit_tangent<F: FnMut(Self::Scalar) + ?Sized>(t: &Self::Tangent, f: &mut F);
    /// Appends the value's scalars to `out` if active, nothing if constant.
    fn extend_active(&self, out: &mut Vec<Self::Scalar>);
    /// The traced form: active scalars taken in order from `active`, constant ones through
    /// `constant`.
    fn lift_from_iter<T: Real, I: Iterator<Item = T>, FC: FnMut(Self::Scalar) -> T + ?Sized>(
        &self,
        active: &mut I,
        constant: &mut FC,
    ) -> Self::Of<T>;
    /// The result slot, with scalars taken from `src` for an active argument.
    fn tangent_from_iter<I: Iterator<Item = Self::Scalar>>(&self, src: &mut I) -> Self::Tangent;
}

impl<X: Differentiable> Annotated for Active<X> {
    type Scalar = X::Scalar;
    type Of<T: Real> = X::Of<T>;
    type Tangent = X::Tangent;
    const ACTIVE: bool = true;

    fn shape(&self) -> Shape {
        self.0.shape()
    }
    fn matches(&self, signature: &ArgSignature) -> bool {
        signature.active && self.0.has_shape(&signature.shape)
    }
    fn visit_active<F: FnMut(Self::Scalar) + ?Sized>(&self, f: &mut F) {
        self.0.visit(f)
    }
    fn lift<
        T: Real,
        FA: FnMut(Self::Scalar) -> T + ?Sized,
        FC: FnMut(Self::Scalar) -> T + ?Sized,
    >(
        &self,
        active: &mut FA,
        _constant: &mut FC,
    ) -> X::Of<T> {
        self.0.map(active)
    }
    fn tangent_from<G: FnMut() -> Self::Scalar + ?Sized>(&self, next: &mut G) -> X::Tangent {
        self.0.tangent_from(next)
    }
    fn tangent_like<G: FnMut() -> Self::Scalar + ?Sized>(
        template: &X::Tangent,
        next: &mut G,
    ) -> X::Tangent {
        template.tangent_from(next)
    }
    fn tangent_shape(t: &X::Tangent) -> Option<Shape> {
        Some(t.shape())
    }
    fn visit_tangent<F: FnMut(Self::Scalar) + ?Sized>(t: &X::Tangent, f: &mut F) {
        t.visit(f)
    }
    fn extend_active(&self, out: &mut Vec<Self::Scalar>) {
        self.0.extend_scalars(out)
    }
    fn lift_from_iter<T: Real, I: Iterator<Item = T>, FC: FnMut(Self::Scalar) -> T + ?Sized>(
        &self,
        active: &mut I,
        _constant: &mut FC,
    ) -> X::Of<T> {
        self.0.of_from_iter(active)
    }
    fn tangent_from_iter<I: Iterator<Item = Self::Scalar>>(&self, src: &mut I) -> X::Tangent {
        self.0.tangent_from_iter(src)
    }
}

impl<X: Differentiable> Annotated for Const<X> {
    type Scalar = X::Scalar;
    type Of<T: Real> = X::Of<T>;
    type Tangent = NoTangent;
    const ACTIVE: bool = false;

    fn shape(&self) -> Shape {
        self.0.shape()
    }
    fn matches(&self, signature: &ArgSignature) -> bool {
        !signature.active && self.0.has_shape(&signature.shape)
    }
    fn visit_active<F: FnMut(Self::Scalar) + ?Sized>(&self, _f: &mut F) {}
    fn lift<
        T: Real,
        FA: FnMut(Self::Scalar) -> T + ?Sized,
        FC: FnMut(Self::Scalar) -> T + ?Sized,
    >(
        &self,
        _active: &mut FA,
        constant: &mut FC,
    ) -> X::Of<T> {
        self.0.map(constant)
    }
    fn tangent_from<G: FnMut() -> Self::Scalar + ?Sized>(&self, _next: &mut G) -> NoTangent {
        NoTangent
    }
    fn tangent_like<G: FnMut() -> Self::Scalar + ?Sized>(
        _: &NoTangent,
        _next: &mut G,
    ) -> NoTangent {
        NoTangent
    }
    fn tangent_shape(_: &NoTangent) -> Option<Shape> {
        None
    }
    fn visit_tangent<F: FnMut(Self::Scalar) + ?Sized>(_: &NoTangent, _f: &mut F) {}
    fn extend_active(&self, _out: &mut Vec<Self::Scalar>) {}
    fn lift_from_iter<T: Real, I: Iterator<Item = T>, FC: FnMut(Self::Scalar) -> T + ?Sized>(
        &self,
        _active: &mut I,
        constant: &mut FC,
    ) -> X::Of<T> {
        self.0.map(constant)
    }
    fn tangent_from_iter<I: Iterator<Item = Self::Scalar>>(&self, _src: &mut I) -> NoTangent {
        NoTangent
    }
}

/// The argument list of a differentiated function: one annotated argument, or a tuple of up to
/// six, any mix of [`Active`] and [`Const`], all over one scalar type.
///
/// The function receives [`Args::Traced`] (the value itself for one argument, a tuple for a
/// tuple); results come back as [`Args::Tangents`], per argument.
pub trait Args {
    /// The scalar type shared by all arguments.
    type Scalar: Real;
    /// What the user's function receives.
    type Traced<T: Real>;
    /// Results per argument: a tangent for each active one, [`NoTangent`] for each constant.
    type Tangents: Clone + Debug;

    /// Activities and shapes.
    fn signature(&self) -> Signature;
    /// Whether these arguments have `signature` (the provided tuples and annotations answer
    /// without building one).
    fn matches(&self, signature: &Signature) -> bool {
        self.signature() == *signature
    }
    /// Visits the active scalars in order (the order of flat gradients and Jacobian columns).
    fn visit_active<F: FnMut(Self::Scalar) + ?Sized>(&self, f: &mut F);
    /// The traced arguments: active scalars through `active` (in visit order), constant ones
    /// through `constant`.
    fn lift<T: Real, FA: FnMut(Self::Scalar) -> T + ?Sized, FC: FnMut(Self::Scalar) -> T + ?Sized>(
        &self,
        active: &mut FA,
        constant: &mut FC,
    ) -> Self::Traced<T>;
    /// Per-argument results, active scalars drawn from `next` in visit order.
    fn tangents_from<G: FnMut() -> Self::Scalar + ?Sized>(&self, next: &mut G) -> Self::Tangents;
    /// Per-argument results shaped like `template`.
    fn tangents_like<G: FnMut() -> Self::Scalar + ?Sized>(
        template: &Self::Tangents,
        next: &mut G,
    ) -> Self::Tangents;
    /// Shapes of the active slots of a result tuple (for checking user-given tangents).
    fn tangent_shapes(t: &Self::Tangents) -> Vec<Option<Shape>>;
    /// Visits the scalars of a result tuple in order.
    fn visit_tangents<F: FnMut(Self::Scalar) + ?Sized>(t: &Self::Tangents, f: &mut F);
    /// Appends the active scalars to `out`, in visit order (flat values copy in bulk).
    fn extend_active(&self, out: &mut Vec<Self::Scalar>);
    /// The traced arguments: active scalars taken in visit order from `active`, constant ones
    /// through `constant`. A flat value collects its part of `active` in one loop.
    fn lift_from_iter<T: Real, I: Iterator<Item = T>, FC: FnMut(Self::Scalar) -> T + ?Sized>(
        &self,
        active: &mut I,
        constant: &mut FC,
    ) -> Self::Traced<T>;
    /// Per-argument results, active scalars taken from `src` in visit order.
    fn tangents_from_iter<I: Iterator<Item = Self::Scalar>>(&self, src: &mut I) -> Self::Tangents;

    /// The active scalars, flat.
    fn active_values(&self) -> Vec<Self::Scalar> {
        let mut out = Vec::new();
        self.extend_active(&mut out);
        out
    }

    /// The active scalars at an engine's base scalar, flat: `embed.active(k, x)` for the
    /// `k`-th.
    fn embed_active<S: Real, E: Embed<Self::Scalar, S>>(&self, embed: &mut E) -> Vec<S> {
        // A bulk copy, then a map that reuses its buffer when `S` has the argument scalar's
        // size (always for first-order operators).
        self.active_values()
            .into_iter()
            .enumerate()
            .map(|(k, x)| embed.active(k, x))
            .collect()
    }

    /// Checks that `t` has one tangent of the right shape per active argument and flattens it.
    fn flatten_tangents(
        &self,
        operator: &'static str,
        t: &Self::Tangents,
    ) -> Result<Vec<Self::Scalar>> {
        let sig = self.signature();
        for (a, s) in sig.0.iter().zip(Self::tangent_shapes(t)) {
            if let Some(s) = s {
                if s != a.shape {
                    return Err(Error::SeedShape {
                        operator,
                        expected: a.shape.clone(),
                        given: s,
                    });
                }
            }
        }
        let mut out = Vec::with_capacity(sig.num_active());
        Self::visit_tangents(t, &mut |x| out.push(x));
        Ok(out)
    }

    /// Per-argument results from a flat vector of active scalars.
    fn tangents_from_flat(&self, flat: &[Self::Scalar]) -> Self::Tangents {
        self.tangents_from_iter(&mut flat.iter().copied())
    }
}

macro_rules! single_args {
    ($wrapper:ident) => {
        impl<X: Differentiable> Args for $wrapper<X> {
            type Scalar = X::Scalar;
            type Traced<T: Real> = X::Of<T>;
            type Tangents = <$wrapper<X> as Annotated>::Tangent;

            fn signature(&self) -> Signature {
                Signature(vec![ArgSignature {
                    active: <Self as Annotated>::ACTIVE,
                    shape: Annotated::shape(self),
                }])
            }
            fn matches(&self, signature: &Signature) -> bool {
                matches!(&signature.0[..], [only] if Annotated::matches(self, only))
            }
            fn visit_active<F: FnMut(Self::Scalar) + ?Sized>(&self, f: &mut F) {
                Annotated::visit_active(self, f)
            }
            fn lift<
                T: Real,
                FA: FnMut(Self::Scalar) -> T + ?Sized,
                FC: FnMut(Self::Scalar) -> T + ?Sized,
            >(
                &self,
                active: &mut FA,
                constant: &mut FC,
            ) -> X::Of<T> {
                Annotated::lift(self, active, constant)
            }
            fn tangents_from<G: FnMut() -> Self::Scalar + ?Sized>(
                &self,
                next: &mut G,
            ) -> Self::Tangents {
                Annotated::tangent_from(self, next)
            }
            fn tangents_like<G: FnMut() -> Self::Scalar + ?Sized>(
                template: &Self::Tangents,
                next: &mut G,
            ) -> Self::Tangents {
                <Self as Annotated>::tangent_like(template, next)
            }
            fn tangent_shapes(t: &Self::Tangents) -> Vec<Option<Shape>> {
                vec![<Self as Annotated>::tangent_shape(t)]
            }
            fn visit_tangents<F: FnMut(Self::Scalar) + ?Sized>(t: &Self::Tangents, f: &mut F) {
                <Self as Annotated>::visit_tangent(t, f)
            }
            fn extend_active(&self, out: &mut Vec<Self::Scalar>) {
                Annotated::extend_active(self, out)
            }
            fn lift_from_iter<
                T: Real,
                I: Iterator<Item = T>,
                FC: FnMut(Self::Scalar) -> T + ?Sized,
            >(
                &self,
                active: &mut I,
                constant: &mut FC,
            ) -> X::Of<T> {
                Annotated::lift_from_iter(self, active, constant)
            }
            fn tangents_from_iter<I: Iterator<Item = Self::Scalar>>(
                &self,
                src: &mut I,
            ) -> Self::Tangents {
                Annotated::tangent_from_iter(self, src)
            }
        }
    };
}
single_args!(Active);
single_args!(Const);

macro_rules! tuple_args {
    ($first:ident $(, $rest:ident)*) => {
        #[allow(non_snake_case)]
        impl<$first: Annotated $(, $rest: Annotated<Scalar = $first::Scalar>)*> Args
            for ($first, $($rest,)*)
        {
            type Scalar = $first::Scalar;
            type Traced<T: Real> = ($first::Of<T>, $($rest::Of<T>,)*);
            type Tangents = ($first::Tangent, $($rest::Tangent,)*);

            fn signature(&self) -> Signature {
                let ($first, $($rest,)*) = self;
                Signature(vec![
                    ArgSignature { active: $first::ACTIVE, shape: $first.shape() },
                    $(ArgSignature { active: $rest::ACTIVE, shape: $rest.shape() },)*
                ])
            }
            fn matches(&self, signature: &Signature) -> bool {
                let ($first, $($rest,)*) = self;
                let mut each = signature.0.iter();
                each.next().is_some_and(|s| $first.matches(s))
                    $(&& each.next().is_some_and(|s| $rest.matches(s)))*
                    && each.next().is_none()
            }
            fn visit_active<F: FnMut(Self::Scalar) + ?Sized>(&self, f: &mut F) {
                let ($first, $($rest,)*) = self;
                $first.visit_active(f);
                $($rest.visit_active(f);)*
            }
            fn lift<
                T: Real,
                FA: FnMut(Self::Scalar) -> T + ?Sized,
                FC: FnMut(Self::Scalar) -> T + ?Sized,
            >(
                &self,
                active: &mut FA,
                constant: &mut FC,
            ) -> Self::Traced<T> {
                let ($first, $($rest,)*) = self;
                ($first.lift(active, constant), $($rest.lift(active, constant),)*)
            }
            fn tangents_from<G: FnMut() -> Self::Scalar + ?Sized>(
                &self,
                next: &mut G,
            ) -> Self::Tangents {
                let ($first, $($rest,)*) = self;
                ($first.tangent_from(next), $($rest.tangent_from(next),)*)
            }
            fn tangents_like<G: FnMut() -> Self::Scalar + ?Sized>(
                template: &Self::Tangents,
                next: &mut G,
            ) -> Self::Tangents {
                let ($first, $($rest,)*) = template;
                ($first::tangent_like($first, next), $($rest::tangent_like($rest, next),)*)
            }
            fn tangent_shapes(t: &Self::Tangents) -> Vec<Option<Shape>> {
                let ($first, $($rest,)*) = t;
                vec![$first::tangent_shape($first) $(, $rest::tangent_shape($rest))*]
            }
            fn visit_tangents<F: FnMut(Self::Scalar) + ?Sized>(t: &Self::Tangents, f: &mut F) {
                let ($first, $($rest,)*) = t;
                $first::visit_tangent($first, f);
                $($rest::visit_tangent($rest, f);)*
            }
            fn extend_active(&self, out: &mut Vec<Self::Scalar>) {
                let ($first, $($rest,)*) = self;
                $first.extend_active(out);
                $($rest.extend_active(out);)*
            }
            fn lift_from_iter<
                T: Real,
                I: Iterator<Item = T>,
                FC: FnMut(Self::Scalar) -> T + ?Sized,
            >(
                &self,
                active: &mut I,
                constant: &mut FC,
            ) -> Self::Traced<T> {
                let ($first, $($rest,)*) = self;
                (
                    $first.lift_from_iter(active, constant),
                    $($rest.lift_from_iter(active, constant),)*
                )
            }
            fn tangents_from_iter<I: Iterator<Item = Self::Scalar>>(
                &self,
                src: &mut I,
            ) -> Self::Tangents {
                let ($first, $($rest,)*) = self;
                ($first.tangent_from_iter(src), $($rest.tangent_from_iter(src),)*)
            }
        }
    };
}
tuple_args!(A1);
tuple_args!(A1, A2);
tuple_args!(A1, A2, A3);
tuple_args!(A1, A2, A3, A4);
tuple_args!(A1, A2, A3, A4, A5);
tuple_args!(A1, A2, A3, A4, A5, A6);
tuple_args!(A1, A2, A3, A4, A5, A6, A7);
tuple_args!(A1, A2, A3, A4, A5, A6, A7, A8);

/// How an engine's base scalar is made from argument scalars. Plain operators use [`Identity`];
/// forward-over-reverse seeds tangent lanes here.
pub trait Embed<A: Real, S: Real> {
    /// The base value of the `index`-th active scalar.
    fn active(&mut self, index: usize, x: A) -> S;
    /// The base value of a constant scalar.
    fn constant(&mut self, x: A) -> S;
}

/// The embedding of a scalar type into itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity;

impl<S: Real> Embed<S, S> for Identity {
    fn active(&mut self, _index: usize, x: S) -> S {
        x
    }
    fn constant(&mut self, x: S) -> S {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// `matches` must answer what comparing signatures answers, for every kind of value.
    fn agree<A: Args, B: Args>(a: &A, b: &B) {
        let want = a.signature() == b.signature();
        assert_eq!(
            a.matches(&b.signature()),
            want,
            "{:?} vs {:?}",
            a.signature(),
            b.signature()
        );
    }

    #[test]
    fn matches_agrees_with_comparing_signatures() {
        let (v2, v3) = (vec![1.0, 2.0], vec![1.0, 2.0, 3.0]);
        let (m23, m32) = (Array2::<f64>::zeros((2, 3)), Array2::<f64>::zeros((3, 2)));
        agree(&Active(&v2), &Active(&v2));
        agree(&Active(&v2), &Active(&v3));
        agree(&Active(&v2), &Const(&v2));
        agree(&Const(&v2), &Const(&v2));
        agree(&Active(&v2[..]), &Active(&v2));
        agree(&Active([1.0, 2.0]), &Active(&v2));
        agree(&Active(&[1.0, 2.0, 3.0]), &Active(&v2));
        agree(&Active(&m23), &Active(&m32));
        agree(&Active(&m23), &Active(&m23.view()));
        agree(&Active(1.0), &Active(&[1.0]));
        agree(&Active(1.0), &Const(1.0));
        agree(&(Active(&v2), Const(1.0)), &(Active(&v2), Const(2.0)));
        agree(&(Active(&v2), Const(1.0)), &(Active(&v3), Const(1.0)));
        agree(&(Active(&v2), Const(1.0)), &(Active(&v2), Active(1.0)));
        agree(
            &(Active(&v2), Const(1.0)),
            &(Active(&v2), Const(1.0), Const(1.0)),
        );
        agree(
            &(Active(&v2), Const(1.0), Const(1.0)),
            &(Active(&v2), Const(1.0)),
        );
        agree(&Active(&v2), &(Active(&v2), Const(1.0)));
        agree(&(Active(&v2),), &Active(&v2));
    }
}
