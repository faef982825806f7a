//! Prepared operators: prepare once for an argument signature, call many times. A call whose
//! activities or shapes differ from the preparation returns an error naming the argument and
//! both shapes, never a silently wrong answer.

use std::marker::PhantomData;

use ndarray::Array2;

use crate::args::{Args, Signature};
use crate::backend::{Backend, PullbackFn, SecondOrder};
use crate::error::Result;
use crate::value::Output;
use crate::Real;

/// A prepared gradient: the backend, the signature, and engine state (the tape engine keeps a
/// recording and replays it).
///
/// ```
/// use difi_core::{Active, Backend, Error, FiniteDifferences};
/// let b = FiniteDifferences::default();
/// let f = |x: Vec<f64>| x[0] * x[1];
/// let mut prep = b.prepare_gradient(f, Active(&vec![1.0, 2.0]))?;
/// let g = prep.gradient(f, Active(&vec![3.0, 4.0]))?;
/// assert!((g[0] - 4.0).abs() < 1e-6);
/// let err = prep.gradient(|x: Vec<f64>| x[0], Active(&vec![1.0; 3])).unwrap_err();
/// assert!(matches!(err, Error::PreparedShapeMismatch { argument: 1, .. }));
/// # Ok::<(), Error>(())
/// ```
pub struct GradientPrep<B: Backend, S: Real> {
    backend: B,
    signature: Signature,
    state: B::GradientState<S>,
}

impl<B: Backend, S: Real> GradientPrep<B, S> {
    pub(crate) fn new(backend: B, signature: Signature, state: B::GradientState<S>) -> Self {
        GradientPrep {
            backend,
            signature,
            state,
        }
    }

    /// The signature this preparation accepts.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The engine state (for engines' tests and counters).
    pub fn state(&self) -> &B::GradientState<S> {
        &self.state
    }

    /// Gradient per argument. `f` must be the function this was prepared for, capturing the
    /// same values: a replaying engine answers from its recording without running `f` (see
    /// [`Backend::prepare_gradient`]).
    pub fn gradient<A, F>(&mut self, f: F, args: A) -> Result<A::Tangents>
    where
        A: Args<Scalar = S>,
        F: Fn(A::Traced<B::Tracer<S>>) -> B::Tracer<S>,
    {
        self.value_and_gradient(f, args).map(|(_, g)| g)
    }

    /// Value and gradient per argument.
    pub fn value_and_gradient<A, F>(&mut self, f: F, args: A) -> Result<(S, A::Tangents)>
    where
        A: Args<Scalar = S>,
        F: Fn(A::Traced<B::Tracer<S>>) -> B::Tracer<S>,
    {
        self.signature.check_args("gradient", &args)?;
        let (y, g) = self
            .backend
            .gradient_with_state(&mut self.state, &f, &args)?;
        Ok((y, args.tangents_from_flat(&g)))
    }
}

/// Marker types naming the operator a [`Prepared`] is for.
pub mod op {
    /// [`crate::Backend::pullback`].
    pub struct Pullback;
    /// [`crate::Backend::pushforward`].
    pub struct Pushforward;
    /// [`crate::Backend::derivative`].
    pub struct Derivative;
    /// [`crate::Backend::jacobian`].
    pub struct Jacobian;
    /// [`crate::SecondOrder::hvp`].
    pub struct Hvp;
    /// [`crate::SecondOrder::hessian`].
    pub struct Hessian;
    /// [`crate::SecondOrder::second_derivative`].
    pub struct SecondDerivative;
}

/// A prepared operator `Op` on backend `B`: checks every call's signature against the
/// preparation's.
pub struct Prepared<B, Op> {
    backend: B,
    signature: Signature,
    op: PhantomData<fn() -> Op>,
}

impl<B, Op> Prepared<B, Op> {
    pub(crate) fn new(backend: B, signature: Signature) -> Self {
        Prepared {
            backend,
            signature,
            op: PhantomData,
        }
    }

    /// The signature this preparation accepts.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }
}

impl<B: Backend> Prepared<B, op::Pullback> {
    /// See [`Backend::pullback`].
    pub fn pullback<A, Y, F>(
        &self,
        f: F,
        args: A,
    ) -> Result<(
        Y::Of<A::Scalar>,
        PullbackFn<A::Scalar, B::Pullback<A::Scalar>, A::Tangents>,
    )>
    where
        A: Args,
        Y: Output<B::Tracer<A::Scalar>>,
        F: Fn(A::Traced<B::Tracer<A::Scalar>>) -> Y,
    {
        self.signature.check_args("pullback", &args)?;
        self.backend.pullback(f, args)
    }
}

impl<B: Backend> Prepared<B, op::Pushforward> {
    /// See [`Backend::pushforward`].
    pub fn pushforward<A, Y, F>(
        &self,
        f: F,
        args: A,
        tangents: &A::Tangents,
    ) -> Result<Y::Of<A::Scalar>>
    where
        A: Args,
        Y: Output<B::Tracer<A::Scalar>>,
        F: Fn(A::Traced<B::Tracer<A::Scalar>>) -> Y,
    {
        self.signature.check_args("pushforward", &args)?;
        self.backend.pushforward(f, args, tangents)
    }

    /// See [`Backend::value_and_pushforward`].
    pub fn value_and_pushforward<A, Y, F>(
        &self,
        f: F,
        args: A,
        tangents: &A::Tangents,
    ) -> Result<(Y::Of<A::Scalar>, Y::Of<A::Scalar>)>
    where
        A: Args,
        Y: Output<B::Tracer<A::Scalar>>,
        F: Fn(A::Traced<B::Tracer<A::Scalar>>) -> Y,
    {
        self.signature.check_args("pushforward", &args)?;
        self.backend.value_and_pushforward(f, args, tangents)
    }
}

impl<B: Backend> Prepared<B, op::Derivative> {
    /// See [`Backend::derivative`].
    pub fn derivative<A, Y, F>(&self, f: F, args: A) -> Result<Y::Of<A::Scalar>>
    where
        A: Args,
        Y: Output<B::Tracer<A::Scalar>>,
        F: Fn(A::Traced<B::Tracer<A::Scalar>>) -> Y,
    {
        self.signature.check_args("derivative", &args)?;
        self.backend.derivative(f, args)
    }

    /// See [`Backend::value_and_derivative`].
    pub fn value_and_derivative<A, Y, F>(
        &self,
        f: F,
        args: A,
    ) -> Result<(Y::Of<A::Scalar>, Y::Of<A::Scalar>)>
    where
        A: Args,
        Y: Output<B::Tracer<A::Scalar>>,
        F: Fn(A::Traced<B::Tracer<A::Scalar>>) -> Y,
    {
        self.signature.check_args("derivative", &args)?;
        self.backend.value_and_derivative(f, args)
    }
}

impl<B: Backend> Prepared<B, op::Jacobian> {
    /// See [`Backend::jacobian`].
    pub fn jacobian<A, Y, F>(&self, f: F, args: A) -> Result<Array2<A::Scalar>>
    where
        A: Args,
        Y: Output<B::Tracer<A::Scalar>>,
        F: Fn(A::Traced<B::Tracer<A::Scalar>>) -> Y,
    {
        self.signature.check_args("jacobian", &args)?;
        self.backend.jacobian(f, args)
    }

    /// See [`Backend::value_and_jacobian`].
    pub fn value_and_jacobian<A, Y, F>(
        &self,
        f: F,
        args: A,
    ) -> Result<(Y::Of<A::Scalar>, Array2<A::Scalar>)>
    where
        A: Args,
        Y: Output<B::Tracer<A::Scalar>>,
        F: Fn(A::Traced<B::Tracer<A::Scalar>>) -> Y,
    {
        self.signature.check_args("jacobian", &args)?;
        self.backend.value_and_jacobian(f, args)
    }
}

impl<B: SecondOrder> Prepared<B, op::Hvp> {
    /// See [`SecondOrder::hvp`].
    pub fn hvp<A, F>(&self, f: F, args: A, direction: &A::Tangents) -> Result<A::Tangents>
    where
        A: Args,
        F: Fn(A::Traced<B::HvpTracer<A::Scalar>>) -> B::HvpTracer<A::Scalar>,
    {
        self.signature.check_args("hvp", &args)?;
        self.backend.hvp(f, args, direction)
    }

    /// See [`SecondOrder::gradient_and_hvp`].
    pub fn gradient_and_hvp<A, F>(
        &self,
        f: F,
        args: A,
        direction: &A::Tangents,
    ) -> Result<(A::Tangents, A::Tangents)>
    where
        A: Args,
        F: Fn(A::Traced<B::HvpTracer<A::Scalar>>) -> B::HvpTracer<A::Scalar>,
    {
        self.signature.check_args("hvp", &args)?;
        self.backend.gradient_and_hvp(f, args, direction)
    }
}

impl<B: SecondOrder> Prepared<B, op::Hessian> {
    /// See [`SecondOrder::hessian`].
    pub fn hessian<A, F>(&self, f: F, args: A) -> Result<Array2<A::Scalar>>
    where
        A: Args,
        F: Fn(A::Traced<B::HessianTracer<A::Scalar>>) -> B::HessianTracer<A::Scalar>,
    {
        self.signature.check_args("hessian", &args)?;
        self.backend.hessian(f, args)
    }

    /// See [`SecondOrder::value_gradient_and_hessian`].
    pub fn value_gradient_and_hessian<A, F>(
        &self,
        f: F,
        args: A,
    ) -> Result<(A::Scalar, A::Tangents, Array2<A::Scalar>)>
    where
        A: Args,
        F: Fn(A::Traced<B::HessianTracer<A::Scalar>>) -> B::HessianTracer<A::Scalar>,
    {
        self.signature.check_args("hessian", &args)?;
        self.backend.value_gradient_and_hessian(f, args)
    }
}

impl<B: SecondOrder> Prepared<B, op::SecondDerivative> {
    /// See [`SecondOrder::second_derivative`].
    pub fn second_derivative<A, F>(&self, f: F, args: A) -> Result<A::Scalar>
    where
        A: Args,
        F: Fn(A::Traced<B::HvpTracer<A::Scalar>>) -> B::HvpTracer<A::Scalar>,
    {
        self.signature.check_args("second_derivative", &args)?;
        self.backend.second_derivative(f, args)
    }

    /// See [`SecondOrder::value_derivative_and_second_derivative`].
    pub fn value_derivative_and_second_derivative<A, F>(
        &self,
        f: F,
        args: A,
    ) -> Result<(A::Scalar, A::Scalar, A::Scalar)>
    where
        A: Args,
        F: Fn(A::Traced<B::HvpTracer<A::Scalar>>) -> B::HvpTracer<A::Scalar>,
    {
        self.signature.check_args("second_derivative", &args)?;
        self.backend.value_derivative_and_second_derivative(f, args)
    }
}
