//! A deliberately wrong engine: the suite must catch it.

use difi_core::{
    Args, Backend, DensePullback, Embed, FiniteDifferences, Output, Real, Result, SecondOrder,
};
use ndarray::Array2;

/// Finite differences with every derivative scaled by 1.5: a self-test of the suite, which must
/// fail on it (`--backend wrong` in the report).
#[derive(Clone, Copy, Debug, Default)]
pub struct WrongGradient {
    inner: FiniteDifferences,
}

fn scale<S: Real>(s: S) -> S {
    s * S::constant(1.5)
}

impl Backend for WrongGradient {
    type Tracer<S: Real> = S;
    type Pullback<S: Real> = DensePullback<S>;
    type GradientState<S: Real> = ();

    fn name(&self) -> String {
        "wrong".into()
    }

    fn record<S, A, Y, F, E>(
        &self,
        f: &F,
        args: &A,
        embed: E,
    ) -> Result<(Y::Of<S>, DensePullback<S>)>
    where
        S: Real,
        A: Args,
        E: Embed<A::Scalar, S>,
        Y: Output<S>,
        F: Fn(A::Traced<S>) -> Y,
    {
        let (y, pb) = self.inner.record(f, args, embed)?;
        Ok((
            y,
            DensePullback {
                jacobian: pb.jacobian.mapv(scale),
            },
        ))
    }

    fn push<S, A, Y, F>(
        &self,
        f: &F,
        args: &A,
        directions: &[Vec<S>],
    ) -> Result<(Y::Of<S>, Vec<Vec<S>>)>
    where
        S: Real,
        A: Args<Scalar = S>,
        Y: Output<S>,
        F: Fn(A::Traced<S>) -> Y,
    {
        let (y, t) = self.inner.push(f, args, directions)?;
        Ok((
            y,
            t.into_iter()
                .map(|d| d.into_iter().map(scale).collect())
                .collect(),
        ))
    }

    fn jacobian_at<S, A, Y, F>(&self, f: &F, args: &A) -> Result<(Y::Of<S>, Array2<S>)>
    where
        S: Real,
        A: Args<Scalar = S>,
        Y: Output<S>,
        F: Fn(A::Traced<S>) -> Y,
    {
        let (y, j) = self.inner.jacobian_at(f, args)?;
        Ok((y, j.mapv(scale)))
    }

    fn value_and_gradient_flat<S, A, F>(&self, f: &F, args: &A) -> Result<(S, Vec<S>)>
    where
        S: Real,
        A: Args<Scalar = S>,
        F: Fn(A::Traced<S>) -> S,
    {
        let (y, g) = self.inner.value_and_gradient_flat(f, args)?;
        Ok((y, g.into_iter().map(scale).collect()))
    }
}

impl SecondOrder for WrongGradient {
    type HvpTracer<S: Real> = S;
    type HessianTracer<S: Real> = S;

    fn gradient_and_hvp_flat<S, A, F>(
        &self,
        f: &F,
        args: &A,
        v: &[S],
    ) -> Result<(S, Vec<S>, Vec<S>)>
    where
        S: Real,
        A: Args<Scalar = S>,
        F: Fn(A::Traced<S>) -> S,
    {
        let (y, g, h) = self.inner.gradient_and_hvp_flat(f, args, v)?;
        Ok((
            y,
            g.into_iter().map(scale).collect(),
            h.into_iter().map(scale).collect(),
        ))
    }

    fn gradient_and_hessian_flat<S, A, F>(&self, f: &F, args: &A) -> Result<(S, Vec<S>, Array2<S>)>
    where
        S: Real,
        A: Args<Scalar = S>,
        F: Fn(A::Traced<S>) -> S,
    {
        let (y, g, h) = self.inner.gradient_and_hessian_flat(f, args)?;
        Ok((y, g.into_iter().map(scale).collect(), h.mapv(scale)))
    }
}
