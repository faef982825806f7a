//! Backends and operators.
//!
//! An engine implements one primitive, [`Backend::record`] (run the function once, return its
//! value and a reusable pullback), and gets every first-order operator from it. Engines override
//! what they do faster: forward engines [`Backend::push`] and [`Backend::jacobian_at`], the tape
//! engine the prepared gradient. [`SecondOrder`] adds Hessian-vector products and Hessians.

use std::fmt::Debug;

use ndarray::{Array2, ArrayView2};

use crate::args::{Args, BatchSignature, Embed, Identity};
use crate::error::{Error, Result};
use crate::prepared::{op, GradientPrep, Prepared};
use crate::value::{flatten, Differentiable, Output, Shape};
use crate::Real;
use num_traits::{One, Zero};

/// A reusable pullback: one forward pass, any number of cotangent seeds.
pub trait Pullback<S: Real>: Send {
    /// Number of output scalars (length of a seed).
    fn num_outputs(&self) -> usize;
    /// Number of active input scalars (length of a result).
    fn num_inputs(&self) -> usize;
    /// Cotangents of the active inputs (flat) from cotangents of the outputs (flat).
    fn apply(&self, seed: &[S]) -> Result<Vec<S>>;
}

/// What [`Backend::pullback`] returns: applies a seed shaped like the function's output and
/// gives cotangents per argument.
pub struct PullbackFn<S: Real, P, Tg> {
    engine: P,
    output_shape: Shape,
    template: Tg,
    rebuild: fn(&Tg, &mut dyn FnMut() -> S) -> Tg,
}

impl<S: Real, P: Pullback<S>, Tg> PullbackFn<S, P, Tg> {
    /// Cotangents per argument (`NoTangent` for constants) for the output cotangent `seed`.
    pub fn apply<Y: Differentiable<Scalar = S> + ?Sized>(&self, seed: &Y) -> Result<Tg> {
        let shape = seed.shape();
        if shape != self.output_shape {
            return Err(Error::SeedShape {
                operator: "pullback",
                expected: self.output_shape.clone(),
                given: shape,
            });
        }
        let flat = self.engine.apply(&flatten(seed))?;
        let mut it = flat.into_iter();
        Ok((self.rebuild)(&self.template, &mut || {
            it.next()
                .expect("engine returned fewer cotangents than active inputs")
        }))
    }

    /// The engine's flat pullback.
    pub fn engine(&self) -> &P {
        &self.engine
    }
}

/// An automatic-differentiation engine and the first-order operators.
///
/// Every operator takes the function and its arguments, one [`Active`](crate::Active) or
/// [`Const`](crate::Const) value or a tuple of them; results come per argument.
///
/// ```
/// use difi_core::{Active, Backend, Const, FiniteDifferences, NoTangent, Real};
///
/// fn loss<T: Real>(w: &[T], data: &[T]) -> T {
///     w.iter().zip(data).fold(T::zero(), |s, (&a, &b)| s + (a - b).powi(2))
/// }
/// let b = FiniteDifferences::default();
/// let (w, data) = (vec![1.0_f64, 2.0], vec![0.5, 0.5]);
/// let (y, (dw, NoTangent)) =
///     b.value_and_gradient(|(w, d)| loss(&w, &d), (Active(&w), Const(&data)))?;
/// assert_eq!(y, 0.25 + 2.25);
/// assert!((dw[0] - 1.0).abs() < 1e-6 && (dw[1] - 3.0).abs() < 1e-6);
/// # Ok::<(), difi_core::Error>(())
/// ```
pub trait Backend: Clone + Debug + Send + Sync + 'static {
    /// The scalar the user's function sees, over base scalar `S`.
    type Tracer<S: Real>: Real;
    /// The engine's reusable pullback over base scalar `S`.
    type Pullback<S: Real>: Pullback<S>;
    /// What a prepared gradient keeps between calls (a recorded tape, or nothing).
    type GradientState<S: Real>: Send + Default;

    /// A short name for reports.
    fn name(&self) -> String;

    /// Runs `f` once with arguments embedded into base scalar `S` and returns its value and a
    /// reusable pullback over the active scalars. The one primitive every engine implements.
    fn record<S, A, Y, F, E>(
        &self,
        f: &F,
        args: &A,
        embed: E,
    ) -> Result<(Y::Of<S>, Self::Pullback<S>)>
    where
        S: Real,
        A: Args,
        E: Embed<A::Scalar, S>,
        Y: Output<Self::Tracer<S>>,
        F: Fn(A::Traced<Self::Tracer<S>>) -> Y;

    /// Value and Jacobian-vector products along `directions` (each flat over the active
    /// scalars). Default: Jacobian rows by pullbacks, then products.
    fn push<S, A, Y, F>(
        &self,
        f: &F,
        args: &A,
        directions: &[Vec<S>],
    ) -> Result<(Y::Of<S>, Vec<Vec<S>>)>
    where
        S: Real,
        A: Args<Scalar = S>,
        Y: Output<Self::Tracer<S>>,
        F: Fn(A::Traced<Self::Tracer<S>>) -> Y,
    {
        let (value, jac) = self.jacobian_at(f, args)?;
        let out = directions
            .iter()
            .map(|d| jac.rows().into_iter().map(|r| dot(r.iter(), d)).collect())
            .collect();
        Ok((value, out))
    }

    /// Value and Jacobian (rows: output scalars, columns: active scalars). Default: one
    /// recording, one pullback per row.
    fn jacobian_at<S, A, Y, F>(&self, f: &F, args: &A) -> Result<(Y::Of<S>, Array2<S>)>
    where
        S: Real,
        A: Args<Scalar = S>,
        Y: Output<Self::Tracer<S>>,
        F: Fn(A::Traced<Self::Tracer<S>>) -> Y,
    {
        let (value, pb) = self.record(f, args, Identity)?;
        let (m, n) = (pb.num_outputs(), pb.num_inputs());
        let mut jac = Array2::zeros((m, n));
        let mut seed = vec![S::zero(); m];
        for i in 0..m {
            seed[i] = S::one();
            let row = pb.apply(&seed)?;
            jac.row_mut(i).iter_mut().zip(row).for_each(|(j, r)| *j = r);
            seed[i] = S::zero();
        }
        Ok((value, jac))
    }

    /// [`Backend::jacobian_batch`] over base scalar `S`. Default: [`Backend::jacobian_at`] per
    /// set.
    fn jacobian_batch_at<S, A, Y, F, I>(
        &self,
        f: &F,
        batch: I,
        sink: &mut dyn FnMut(usize, Y::Of<S>, ArrayView2<'_, S>),
    ) -> Result<()>
    where
        S: Real,
        A: Args<Scalar = S>,
        Y: Output<Self::Tracer<S>>,
        F: Fn(A::Traced<Self::Tracer<S>>) -> Y,
        I: Iterator<Item = A>,
    {
        let mut signature = BatchSignature::default();
        for (k, args) in batch.enumerate() {
            signature.check(&args)?;
            let (value, jac) = self.jacobian_at(f, &args)?;
            sink(k, value, jac.view());
        }
        Ok(())
    }

    /// Starts a prepared gradient (engine state, e.g. a recorded tape). Default: nothing kept.
    fn prepare_gradient_state<S, A, F>(&self, f: &F, args: &A) -> Result<Self::GradientState<S>>
    where
        S: Real,
        A: Args<Scalar = S>,
        F: Fn(A::Traced<Self::Tracer<S>>) -> Self::Tracer<S>,
    {
        let _ = (f, args);
        Ok(Default::default())
    }

    /// Value and flat gradient using a prepared state. Default: [`Backend::value_and_gradient`].
    fn gradient_with_state<S, A, F>(
        &self,
        state: &mut Self::GradientState<S>,
        f: &F,
        args: &A,
    ) -> Result<(S, Vec<S>)>
    where
        S: Real,
        A: Args<Scalar = S>,
        F: Fn(A::Traced<Self::Tracer<S>>) -> Self::Tracer<S>,
    {
        let _ = state;
        self.value_and_gradient_flat(f, args)
    }

    /// Value and flat gradient of a scalar function. Default: one recording, one pullback.
    fn value_and_gradient_flat<S, A, F>(&self, f: &F, args: &A) -> Result<(S, Vec<S>)>
    where
        S: Real,
        A: Args<Scalar = S>,
        F: Fn(A::Traced<Self::Tracer<S>>) -> Self::Tracer<S>,
    {
        let (value, pb) = self.record(f, args, Identity)?;
        let grad = pb.apply(&[S::one()])?;
        Ok((value, grad))
    }

    // ---------------- operators ----------------

    /// Value and a reusable pullback (vector-Jacobian product).
    ///
    /// ```
    /// use difi_core::{Active, Backend, FiniteDifferences};
    /// let b = FiniteDifferences::default();
    /// let (y, pb) = b.pullback(|x: [f64; 2]| vec![x[0] * x[1], x[0]], Active(&[2.0_f64, 3.0]))?;
    /// assert_eq!(y, vec![6.0, 2.0]);
    /// let g: [f64; 2] = pb.apply(&vec![1.0, 0.0])?; // row 0 of the Jacobian
    /// assert!((g[0] - 3.0).abs() < 1e-6 && (g[1] - 2.0).abs() < 1e-6);
    /// let g: [f64; 2] = pb.apply(&vec![0.0, 1.0])?; // row 1
    /// assert!((g[0] - 1.0).abs() < 1e-6 && g[1].abs() < 1e-6);
    /// # Ok::<(), difi_core::Error>(())
    /// ```
    fn pullback<A, Y, F>(
        &self,
        f: F,
        args: A,
    ) -> Result<(
        Y::Of<A::Scalar>,
        PullbackFn<A::Scalar, Self::Pullback<A::Scalar>, A::Tangents>,
    )>
    where
        A: Args,
        Y: Output<Self::Tracer<A::Scalar>>,
        F: Fn(A::Traced<Self::Tracer<A::Scalar>>) -> Y,
    {
        let (value, engine) = self.record(&f, &args, Identity)?;
        let pullback = PullbackFn {
            engine,
            output_shape: Differentiable::shape(&value),
            template: args.tangents_from(&mut A::Scalar::zero),
            rebuild: |template, next| A::tangents_like(template, next),
        };
        Ok((value, pullback))
    }

    /// Gradient of a scalar function, per argument.
    fn gradient<A, F>(&self, f: F, args: A) -> Result<A::Tangents>
    where
        A: Args,
        F: Fn(A::Traced<Self::Tracer<A::Scalar>>) -> Self::Tracer<A::Scalar>,
    {
        self.value_and_gradient(f, args).map(|(_, g)| g)
    }

    /// Value and gradient of a scalar function, per argument.
    fn value_and_gradient<A, F>(&self, f: F, args: A) -> Result<(A::Scalar, A::Tangents)>
    where
        A: Args,
        F: Fn(A::Traced<Self::Tracer<A::Scalar>>) -> Self::Tracer<A::Scalar>,
    {
        let (y, g) = self.value_and_gradient_flat(&f, &args)?;
        Ok((y, args.tangents_from_flat(&g)))
    }

    /// Jacobian-vector product: the output tangent along `tangents` (one per active argument,
    /// `NoTangent` for constants).
    fn pushforward<A, Y, F>(
        &self,
        f: F,
        args: A,
        tangents: &A::Tangents,
    ) -> Result<Y::Of<A::Scalar>>
    where
        A: Args,
        Y: Output<Self::Tracer<A::Scalar>>,
        F: Fn(A::Traced<Self::Tracer<A::Scalar>>) -> Y,
    {
        self.value_and_pushforward(f, args, tangents)
            .map(|(_, t)| t)
    }

    /// Value and Jacobian-vector product.
    fn value_and_pushforward<A, Y, F>(
        &self,
        f: F,
        args: A,
        tangents: &A::Tangents,
    ) -> Result<(Y::Of<A::Scalar>, Y::Of<A::Scalar>)>
    where
        A: Args,
        Y: Output<Self::Tracer<A::Scalar>>,
        F: Fn(A::Traced<Self::Tracer<A::Scalar>>) -> Y,
    {
        let dir = args.flatten_tangents("pushforward", tangents)?;
        let (value, mut outs) = self.push(&f, &args, &[dir])?;
        let out = outs.pop().expect("push returns one tangent per direction");
        let mut it = out.into_iter();
        let tangent = value.tangent_from(&mut || it.next().expect("output tangent too short"));
        Ok((value, tangent))
    }

    /// Derivative of a function of one active scalar (any output shape).
    fn derivative<A, Y, F>(&self, f: F, args: A) -> Result<Y::Of<A::Scalar>>
    where
        A: Args,
        Y: Output<Self::Tracer<A::Scalar>>,
        F: Fn(A::Traced<Self::Tracer<A::Scalar>>) -> Y,
    {
        self.value_and_derivative(f, args).map(|(_, d)| d)
    }

    /// Value and derivative of a function of one active scalar.
    fn value_and_derivative<A, Y, F>(
        &self,
        f: F,
        args: A,
    ) -> Result<(Y::Of<A::Scalar>, Y::Of<A::Scalar>)>
    where
        A: Args,
        Y: Output<Self::Tracer<A::Scalar>>,
        F: Fn(A::Traced<Self::Tracer<A::Scalar>>) -> Y,
    {
        one_active("derivative", &args)?;
        let (value, mut outs) = self.push(&f, &args, &[vec![A::Scalar::one()]])?;
        let out = outs.pop().expect("push returns one tangent per direction");
        let mut it = out.into_iter();
        let d = value.tangent_from(&mut || it.next().expect("output tangent too short"));
        Ok((value, d))
    }

    /// Jacobian: rows are the output scalars, columns the active scalars, both in visit order.
    fn jacobian<A, Y, F>(&self, f: F, args: A) -> Result<Array2<A::Scalar>>
    where
        A: Args,
        Y: Output<Self::Tracer<A::Scalar>>,
        F: Fn(A::Traced<Self::Tracer<A::Scalar>>) -> Y,
    {
        self.jacobian_at(&f, &args).map(|(_, j)| j)
    }

    /// Value and Jacobian.
    fn value_and_jacobian<A, Y, F>(
        &self,
        f: F,
        args: A,
    ) -> Result<(Y::Of<A::Scalar>, Array2<A::Scalar>)>
    where
        A: Args,
        Y: Output<Self::Tracer<A::Scalar>>,
        F: Fn(A::Traced<Self::Tracer<A::Scalar>>) -> Y,
    {
        self.jacobian_at(&f, &args)
    }

    /// Value and Jacobian of one function at each argument set of `batch`, handed to
    /// `sink(k, value, jacobian)` for the `k`-th set, in order: what `jax.vmap(jax.jacrev(f))`
    /// computes, for many small independent problems (one block per observation in bundle
    /// adjustment, one per sample in a per-example gradient).
    ///
    /// Every set must have the first one's activities and shapes; another returns
    /// [`Error::PreparedShapeMismatch`] (the sets before it have been handed to `sink`).
    /// `Const` arguments may differ from set to set. As with [`Backend::prepare_gradient`], an
    /// engine that replays a recording (the tape, which replays one recording for many sets at
    /// once) does not run `f` for every set, so data that changes between sets must be an
    /// argument, not a value `f` captures.
    ///
    /// ```
    /// use difi_core::{Active, Backend, Const, FiniteDifferences};
    ///
    /// // Residuals x0 (x1 - t) for targets t that differ from set to set.
    /// let f = |(x, t): ([f64; 2], [f64; 2])| [x[0] * (x[1] - t[0]), x[0] * (x[1] - t[1])];
    /// let sets = [([2.0, 5.0], [1.0, 4.0]), ([3.0, 1.0], [0.0, 0.0])];
    /// let mut rows = Vec::new();
    /// FiniteDifferences::default().jacobian_batch(
    ///     f,
    ///     sets.iter().map(|(x, t)| (Active(x), Const(t))),
    ///     |k, value, jac| rows.push((k, value, jac.row(0).to_vec())),
    /// )?;
    /// assert_eq!((rows[1].0, rows[1].1), (1, [3.0, 3.0]));
    /// // d/dx of x0 (x1 - t0) at the first set: [x1 - t0, x0] = [4, 2].
    /// assert!((rows[0].2[0] - 4.0).abs() < 1e-6 && (rows[0].2[1] - 2.0).abs() < 1e-6);
    /// # Ok::<(), difi_core::Error>(())
    /// ```
    fn jacobian_batch<A, Y, F, I, G>(&self, f: F, batch: I, mut sink: G) -> Result<()>
    where
        A: Args,
        Y: Output<Self::Tracer<A::Scalar>>,
        F: Fn(A::Traced<Self::Tracer<A::Scalar>>) -> Y,
        I: IntoIterator<Item = A>,
        G: FnMut(usize, Y::Of<A::Scalar>, ArrayView2<'_, A::Scalar>),
    {
        self.jacobian_batch_at(&f, batch.into_iter(), &mut sink)
    }

    // ---------------- prepared forms ----------------

    /// Prepares gradients for arguments of this signature; call [`GradientPrep::gradient`] many
    /// times. A call with other activities or shapes returns
    /// [`Error::PreparedShapeMismatch`].
    ///
    /// A preparation is for one function. An engine that replays its recording (the tape) does
    /// not run `f` again while the recording applies, so values `f` captures keep the values
    /// they had when it was recorded: pass data that changes between calls as a `Const`
    /// argument instead, which a replay compares (and records anew when it differs).
    fn prepare_gradient<A, F>(&self, f: F, args: A) -> Result<GradientPrep<Self, A::Scalar>>
    where
        A: Args,
        F: Fn(A::Traced<Self::Tracer<A::Scalar>>) -> Self::Tracer<A::Scalar>,
    {
        let state = self.prepare_gradient_state(&f, &args)?;
        Ok(GradientPrep::new(self.clone(), args.signature(), state))
    }

    /// Prepares pullbacks for arguments of this signature.
    fn prepare_pullback<A: Args>(&self, args: A) -> Prepared<Self, op::Pullback> {
        Prepared::new(self.clone(), args.signature())
    }

    /// Prepares pushforwards for arguments of this signature.
    fn prepare_pushforward<A: Args>(&self, args: A) -> Prepared<Self, op::Pushforward> {
        Prepared::new(self.clone(), args.signature())
    }

    /// Prepares derivatives for arguments of this signature.
    fn prepare_derivative<A: Args>(&self, args: A) -> Prepared<Self, op::Derivative> {
        Prepared::new(self.clone(), args.signature())
    }

    /// Prepares Jacobians for arguments of this signature.
    fn prepare_jacobian<A: Args>(&self, args: A) -> Prepared<Self, op::Jacobian> {
        Prepared::new(self.clone(), args.signature())
    }
}

/// Second-order operators: Hessian-vector products, Hessians, second derivatives.
///
/// The function returns a scalar. `hvp` evaluates it over [`SecondOrder::HvpTracer`] (one
/// tangent lane); `hessian` over [`SecondOrder::HessianTracer`] (several lanes per pass).
pub trait SecondOrder: Backend {
    /// What the function sees in `hvp` and `second_derivative`.
    type HvpTracer<S: Real>: Real;
    /// What the function sees in `hessian`.
    type HessianTracer<S: Real>: Real;

    /// Value, flat gradient, and flat Hessian-vector product along `direction`.
    fn gradient_and_hvp_flat<S, A, F>(
        &self,
        f: &F,
        args: &A,
        direction: &[S],
    ) -> Result<(S, Vec<S>, Vec<S>)>
    where
        S: Real,
        A: Args<Scalar = S>,
        F: Fn(A::Traced<Self::HvpTracer<S>>) -> Self::HvpTracer<S>;

    /// Value, flat gradient and dense Hessian over the active scalars.
    fn gradient_and_hessian_flat<S, A, F>(&self, f: &F, args: &A) -> Result<(S, Vec<S>, Array2<S>)>
    where
        S: Real,
        A: Args<Scalar = S>,
        F: Fn(A::Traced<Self::HessianTracer<S>>) -> Self::HessianTracer<S>;

    /// Hessian-vector product, per argument.
    fn hvp<A, F>(&self, f: F, args: A, direction: &A::Tangents) -> Result<A::Tangents>
    where
        A: Args,
        F: Fn(A::Traced<Self::HvpTracer<A::Scalar>>) -> Self::HvpTracer<A::Scalar>,
    {
        self.gradient_and_hvp(f, args, direction).map(|(_, h)| h)
    }

    /// Gradient and Hessian-vector product, per argument.
    fn gradient_and_hvp<A, F>(
        &self,
        f: F,
        args: A,
        direction: &A::Tangents,
    ) -> Result<(A::Tangents, A::Tangents)>
    where
        A: Args,
        F: Fn(A::Traced<Self::HvpTracer<A::Scalar>>) -> Self::HvpTracer<A::Scalar>,
    {
        let v = args.flatten_tangents("hvp", direction)?;
        let (_, g, hv) = self.gradient_and_hvp_flat(&f, &args, &v)?;
        Ok((args.tangents_from_flat(&g), args.tangents_from_flat(&hv)))
    }

    /// Dense Hessian over the active scalars (in visit order).
    fn hessian<A, F>(&self, f: F, args: A) -> Result<Array2<A::Scalar>>
    where
        A: Args,
        F: Fn(A::Traced<Self::HessianTracer<A::Scalar>>) -> Self::HessianTracer<A::Scalar>,
    {
        self.gradient_and_hessian_flat(&f, &args).map(|(_, _, h)| h)
    }

    /// Value, gradient (per argument) and Hessian.
    fn value_gradient_and_hessian<A, F>(
        &self,
        f: F,
        args: A,
    ) -> Result<(A::Scalar, A::Tangents, Array2<A::Scalar>)>
    where
        A: Args,
        F: Fn(A::Traced<Self::HessianTracer<A::Scalar>>) -> Self::HessianTracer<A::Scalar>,
    {
        let (y, g, h) = self.gradient_and_hessian_flat(&f, &args)?;
        Ok((y, args.tangents_from_flat(&g), h))
    }

    /// Second derivative of a scalar function of one active scalar.
    fn second_derivative<A, F>(&self, f: F, args: A) -> Result<A::Scalar>
    where
        A: Args,
        F: Fn(A::Traced<Self::HvpTracer<A::Scalar>>) -> Self::HvpTracer<A::Scalar>,
    {
        self.value_derivative_and_second_derivative(f, args)
            .map(|(_, _, d2)| d2)
    }

    /// Value, derivative and second derivative of a scalar function of one active scalar.
    fn value_derivative_and_second_derivative<A, F>(
        &self,
        f: F,
        args: A,
    ) -> Result<(A::Scalar, A::Scalar, A::Scalar)>
    where
        A: Args,
        F: Fn(A::Traced<Self::HvpTracer<A::Scalar>>) -> Self::HvpTracer<A::Scalar>,
    {
        one_active("second_derivative", &args)?;
        let (y, g, h) = self.gradient_and_hvp_flat(&f, &args, &[A::Scalar::one()])?;
        Ok((y, g[0], h[0]))
    }

    /// Prepares HVPs for arguments of this signature.
    fn prepare_hvp<A: Args>(&self, args: A) -> Prepared<Self, op::Hvp> {
        Prepared::new(self.clone(), args.signature())
    }

    /// Prepares Hessians for arguments of this signature.
    fn prepare_hessian<A: Args>(&self, args: A) -> Prepared<Self, op::Hessian> {
        Prepared::new(self.clone(), args.signature())
    }

    /// Prepares second derivatives for arguments of this signature.
    fn prepare_second_derivative<A: Args>(&self, args: A) -> Prepared<Self, op::SecondDerivative> {
        Prepared::new(self.clone(), args.signature())
    }
}

fn one_active<A: Args>(operator: &'static str, args: &A) -> Result<()> {
    let n = args.signature().num_active();
    if n == 1 {
        Ok(())
    } else {
        Err(Error::ActiveCount {
            operator,
            expected: "exactly one active scalar",
            given: n,
        })
    }
}

fn dot<'a, S: Real>(a: impl Iterator<Item = &'a S>, b: &[S]) -> S {
    a.zip(b).fold(S::zero(), |s, (&x, &y)| s + x * y)
}
