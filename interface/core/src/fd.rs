//! Central finite differences behind the same traits as the AD engines: the reference of the
//! conformance suite, and a fallback where no engine applies.

use ndarray::Array2;

use crate::args::{Args, Embed, Identity};
use crate::backend::{Backend, Pullback, SecondOrder};
use crate::error::Result;
use crate::value::Output;
use crate::Real;

/// Central finite differences.
///
/// First derivatives use the step `h = step · max(1, |x|)` with `step = ε^(1/3) ≈ 6e-6` by
/// default, which balances truncation (O(h²)) against rounding (O(ε/h)): about 1e-10 relative
/// error on smooth functions of moderate size. Hessians use `ε^(1/4)` on the four-point formula.
///
/// ```
/// use difi_core::{Active, Backend, FiniteDifferences, SecondOrder};
/// let b = FiniteDifferences::default();
/// let g = b.gradient(|x: [f64; 2]| x[0].sin() * x[1], Active(&[0.5, 2.0]))?;
/// assert!((g[0] - 2.0 * 0.5f64.cos()).abs() < 1e-8);
/// let h = b.hessian(|x: [f64; 2]| x[0] * x[0] * x[1], Active(&[1.0, 3.0]))?;
/// assert!((h[[0, 0]] - 6.0).abs() < 1e-5 && (h[[0, 1]] - 2.0).abs() < 1e-5);
/// # Ok::<(), difi_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct FiniteDifferences {
    /// Relative step for first differences.
    pub step: f64,
    /// Relative step for second differences.
    pub second_step: f64,
}

impl Default for FiniteDifferences {
    fn default() -> Self {
        FiniteDifferences {
            step: f64::EPSILON.cbrt(),
            second_step: f64::EPSILON.powf(0.25),
        }
    }
}

/// A pullback through a dense Jacobian: `seed ↦ Jᵀ seed`.
#[derive(Clone, Debug)]
pub struct DensePullback<S> {
    /// Rows: outputs, columns: active inputs.
    pub jacobian: Array2<S>,
}

impl<S: Real> Pullback<S> for DensePullback<S> {
    fn num_outputs(&self) -> usize {
        self.jacobian.nrows()
    }
    fn num_inputs(&self) -> usize {
        self.jacobian.ncols()
    }
    fn apply(&self, seed: &[S]) -> Result<Vec<S>> {
        if seed.len() != self.jacobian.nrows() {
            return Err(crate::Error::SeedShape {
                operator: "pullback",
                expected: crate::Shape::Array(vec![self.jacobian.nrows()]),
                given: crate::Shape::Array(vec![seed.len()]),
            });
        }
        Ok(self
            .jacobian
            .columns()
            .into_iter()
            .map(|c| c.iter().zip(seed).fold(S::zero(), |s, (&j, &w)| s + j * w))
            .collect())
    }
}

/// The function at the active point `x` (base scalars), constants through `embed`.
fn eval_at<S, A, Y, F, E>(f: &F, args: &A, embed: &mut E, x: &[S]) -> Y
where
    S: Real,
    A: Args,
    E: Embed<A::Scalar, S>,
    F: Fn(A::Traced<S>) -> Y,
{
    let mut i = 0;
    let traced = args.lift(
        &mut |_| {
            i += 1;
            x[i - 1]
        },
        &mut |c| embed.constant(c),
    );
    f(traced)
}

fn flat_output<S: Real, Y: Output<S>>(y: &Y) -> Vec<S> {
    let mut out = Vec::new();
    y.visit_output(&mut |v| out.push(v));
    out
}

fn base_point<S: Real, A: Args, E: Embed<A::Scalar, S>>(args: &A, embed: &mut E) -> Vec<S> {
    let mut x = Vec::new();
    args.visit_active(&mut |a| {
        let i = x.len();
        x.push(embed.active(i, a));
    });
    x
}

impl FiniteDifferences {
    fn h<S: Real>(step: f64, x: S) -> S {
        S::constant(step * x.innermost().abs().max(1.0))
    }

    /// Value and Jacobian by central differences, column by column.
    fn value_and_jacobian_fd<S, A, Y, F, E>(
        &self,
        f: &F,
        args: &A,
        mut embed: E,
    ) -> (Y::Of<S>, Array2<S>)
    where
        S: Real,
        A: Args,
        E: Embed<A::Scalar, S>,
        Y: Output<S>,
        F: Fn(A::Traced<S>) -> Y,
    {
        let mut x = base_point(args, &mut embed);
        let y0: Y = eval_at(f, args, &mut embed, &x);
        let flat0 = flat_output(&y0);
        let mut jac = Array2::zeros((flat0.len(), x.len()));
        for i in 0..x.len() {
            let xi = x[i];
            let h = Self::h(self.step, xi);
            x[i] = xi + h;
            let up = flat_output(&eval_at::<S, A, Y, F, E>(f, args, &mut embed, &x));
            x[i] = xi - h;
            let down = flat_output(&eval_at::<S, A, Y, F, E>(f, args, &mut embed, &x));
            x[i] = xi;
            for (r, (u, d)) in up.into_iter().zip(down).enumerate() {
                jac[[r, i]] = (u - d) / (h + h);
            }
        }
        let mut it = flat0.into_iter();
        (y0.rebuild(&mut || it.next().expect("output length")), jac)
    }

    /// Flat gradient of a scalar function at `x` by central differences.
    fn gradient_at<S, A, F>(&self, f: &F, args: &A, x: &mut [S]) -> Vec<S>
    where
        S: Real,
        A: Args<Scalar = S>,
        F: Fn(A::Traced<S>) -> S,
    {
        (0..x.len())
            .map(|i| {
                let xi = x[i];
                let h = Self::h(self.step, xi);
                x[i] = xi + h;
                let up = eval_at(f, args, &mut Identity, x);
                x[i] = xi - h;
                let down = eval_at(f, args, &mut Identity, x);
                x[i] = xi;
                (up - down) / (h + h)
            })
            .collect()
    }
}

impl Backend for FiniteDifferences {
    type Tracer<S: Real> = S;
    type Pullback<S: Real> = DensePullback<S>;
    type GradientState<S: Real> = ();

    fn name(&self) -> String {
        "finite-differences".into()
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
        let (value, jacobian) = self.value_and_jacobian_fd(f, args, embed);
        Ok((value, DensePullback { jacobian }))
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
        let x = base_point(args, &mut Identity);
        let y0: Y = eval_at(f, args, &mut Identity, &x);
        let flat0 = flat_output(&y0);
        let scale = x.iter().fold(1.0_f64, |m, v| m.max(v.innermost().abs()));
        let outs = directions
            .iter()
            .map(|d| {
                let norm = d.iter().fold(0.0_f64, |m, v| m.max(v.innermost().abs()));
                if norm == 0.0 {
                    return vec![S::zero(); flat0.len()];
                }
                let h = S::constant(self.step * scale / norm);
                let shifted = |sign: S| -> Vec<S> {
                    let xs: Vec<S> = x.iter().zip(d).map(|(&a, &b)| a + sign * h * b).collect();
                    flat_output(&eval_at::<S, A, Y, F, Identity>(
                        f,
                        args,
                        &mut Identity,
                        &xs,
                    ))
                };
                let (up, down) = (shifted(S::one()), shifted(-S::one()));
                up.into_iter()
                    .zip(down)
                    .map(|(u, l)| (u - l) / (h + h))
                    .collect()
            })
            .collect();
        let mut it = flat0.into_iter();
        Ok((y0.rebuild(&mut || it.next().expect("output length")), outs))
    }

    fn jacobian_at<S, A, Y, F>(&self, f: &F, args: &A) -> Result<(Y::Of<S>, Array2<S>)>
    where
        S: Real,
        A: Args<Scalar = S>,
        Y: Output<S>,
        F: Fn(A::Traced<S>) -> Y,
    {
        Ok(self.value_and_jacobian_fd(f, args, Identity))
    }

    fn value_and_gradient_flat<S, A, F>(&self, f: &F, args: &A) -> Result<(S, Vec<S>)>
    where
        S: Real,
        A: Args<Scalar = S>,
        F: Fn(A::Traced<S>) -> S,
    {
        let mut x = base_point(args, &mut Identity);
        let y = eval_at(f, args, &mut Identity, &x);
        Ok((y, self.gradient_at(f, args, &mut x)))
    }
}

impl SecondOrder for FiniteDifferences {
    type HvpTracer<S: Real> = S;
    type HessianTracer<S: Real> = S;

    /// Gradient by central differences; the HVP as a central difference of gradients along
    /// the direction.
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
        let mut x = base_point(args, &mut Identity);
        if v.len() != x.len() {
            return Err(crate::Error::SeedShape {
                operator: "hvp",
                expected: crate::Shape::Array(vec![x.len()]),
                given: crate::Shape::Array(vec![v.len()]),
            });
        }
        let y = eval_at(f, args, &mut Identity, &x);
        let g = self.gradient_at(f, args, &mut x);
        let norm = v.iter().fold(0.0_f64, |m, a| m.max(a.innermost().abs()));
        if norm == 0.0 {
            return Ok((y, g, vec![S::zero(); x.len()]));
        }
        let scale = x.iter().fold(1.0_f64, |m, a| m.max(a.innermost().abs()));
        let h = S::constant(self.second_step * scale / norm);
        let shifted = |sign: S| {
            let mut xs: Vec<S> = x.iter().zip(v).map(|(&a, &b)| a + sign * h * b).collect();
            self.gradient_at(f, args, &mut xs)
        };
        let (up, down) = (shifted(S::one()), shifted(-S::one()));
        let hv = up
            .into_iter()
            .zip(down)
            .map(|(u, l)| (u - l) / (h + h))
            .collect();
        Ok((y, g, hv))
    }

    /// The Hessian by the four-point formula on function values.
    fn gradient_and_hessian_flat<S, A, F>(&self, f: &F, args: &A) -> Result<(S, Vec<S>, Array2<S>)>
    where
        S: Real,
        A: Args<Scalar = S>,
        F: Fn(A::Traced<S>) -> S,
    {
        let mut x = base_point(args, &mut Identity);
        let n = x.len();
        let y = eval_at(f, args, &mut Identity, &x);
        let g = self.gradient_at(f, args, &mut x);
        let hs: Vec<S> = x.iter().map(|&a| Self::h(self.second_step, a)).collect();
        let at = |x: &mut [S], i: usize, si: S, j: usize, sj: S| {
            let (xi, xj) = (x[i], x[j]);
            x[i] += si * hs[i];
            x[j] += sj * hs[j];
            let v = eval_at(f, args, &mut Identity, x);
            x[i] = xi;
            x[j] = xj;
            v
        };
        let mut hess = Array2::zeros((n, n));
        let one = S::one();
        for i in 0..n {
            for j in i..n {
                let pp = at(&mut x, i, one, j, one);
                let pm = at(&mut x, i, one, j, -one);
                let mp = at(&mut x, i, -one, j, one);
                let mm = at(&mut x, i, -one, j, -one);
                let hij = (pp - pm - mp + mm) / (S::constant(4.0) * hs[i] * hs[j]);
                hess[[i, j]] = hij;
                hess[[j, i]] = hij;
            }
        }
        Ok((y, g, hess))
    }
}
