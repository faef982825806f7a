//! Deliberately wrong engines: the suite must catch them.

use difi_core::{
    Args, Backend, DensePullback, Embed, FiniteDifferences, Output, Real, Result, SecondOrder,
};
use ndarray::Array2;

/// Finite differences made wrong on purpose: a self-test of the suite, which must fail on it.
///
/// * [`WrongGradient::default`]: every derivative scaled by 1.5 (`--backend wrong` in the
///   report).
/// * [`WrongGradient::stale_preparation`]: right everywhere except prepared gradients, which
///   answer with the gradient at the preparation point (`--backend wrong(stale-preparation)`):
///   only preparing at another point than the call catches it.
#[derive(Clone, Copy, Debug, Default)]
pub struct WrongGradient {
    inner: FiniteDifferences,
    stale: bool,
}

impl WrongGradient {
    /// Right derivatives, but a prepared gradient keeps answering for the preparation point.
    pub fn stale_preparation() -> WrongGradient {
        WrongGradient {
            inner: FiniteDifferences::default(),
            stale: true,
        }
    }

    fn scale<S: Real>(&self, s: S) -> S {
        if self.stale {
            s
        } else {
            s * S::constant(1.5)
        }
    }
}

impl Backend for WrongGradient {
    type Tracer<S: Real> = S;
    type Pullback<S: Real> = DensePullback<S>;
    type GradientState<S: Real> = Option<(S, Vec<S>)>;

    fn name(&self) -> String {
        if self.stale {
            "wrong(stale-preparation)".into()
        } else {
            "wrong".into()
        }
    }

    fn prepare_gradient_state<S, A, F>(&self, f: &F, args: &A) -> Result<Option<(S, Vec<S>)>>
    where
        S: Real,
        A: Args<Scalar = S>,
        F: Fn(A::Traced<S>) -> S,
    {
        Ok(if self.stale {
            Some(self.value_and_gradient_flat(f, args)?)
        } else {
            None
        })
    }

    fn gradient_with_state<S, A, F>(
        &self,
        state: &mut Option<(S, Vec<S>)>,
        f: &F,
        args: &A,
    ) -> Result<(S, Vec<S>)>
    where
        S: Real,
        A: Args<Scalar = S>,
        F: Fn(A::Traced<S>) -> S,
    {
        match state {
            Some(answer) => Ok(answer.clone()),
            None => self.value_and_gradient_flat(f, args),
        }
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
                jacobian: pb.jacobian.mapv(|s| self.scale(s)),
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
                .map(|d| d.into_iter().map(|s| self.scale(s)).collect())
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
        Ok((y, j.mapv(|s| self.scale(s))))
    }

    fn value_and_gradient_flat<S, A, F>(&self, f: &F, args: &A) -> Result<(S, Vec<S>)>
    where
        S: Real,
        A: Args<Scalar = S>,
        F: Fn(A::Traced<S>) -> S,
    {
        let (y, g) = self.inner.value_and_gradient_flat(f, args)?;
        Ok((y, g.into_iter().map(|s| self.scale(s)).collect()))
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
            g.into_iter().map(|s| self.scale(s)).collect(),
            h.into_iter().map(|s| self.scale(s)).collect(),
        ))
    }

    fn gradient_and_hessian_flat<S, A, F>(&self, f: &F, args: &A) -> Result<(S, Vec<S>, Array2<S>)>
    where
        S: Real,
        A: Args<Scalar = S>,
        F: Fn(A::Traced<S>) -> S,
    {
        let (y, g, h) = self.inner.gradient_and_hessian_flat(f, args)?;
        Ok((
            y,
            g.into_iter().map(|s| self.scale(s)).collect(),
            h.mapv(|s| self.scale(s)),
        ))
    }
}
