//! The forward backend and the forward-over-reverse combinator.

use std::cell::RefCell;

use difi_core::{Args, Backend, DensePullback, Embed, Identity, Output, Real, Result, SecondOrder};
use ndarray::{Array2, ArrayView2};

use difi_core::Dual;

/// Forward mode with `N` tangent lanes per pass.
///
/// Each pass pushes `N` directions at once, so a Jacobian or gradient with `n` active scalars
/// takes `⌈n / N⌉` passes, the last one partial. `N` is a type parameter because the user's
/// function sees `Dual<S, N>`: the default of 8 amortises the value computation over 8 lanes
/// without making single directional derivatives much dearer; pick `Forward<1>` for one JVP at
/// a time, a larger `N` for wide Jacobians.
///
/// ```
/// use difi_core::{Active, Backend, Float};
/// use difi_forward::Forward;
/// let b = Forward::<4>::default();
/// let j = b.jacobian(|x: Vec<_>| vec![x[0] * x[1], x[1].exp()], Active(&vec![2.0, 0.0]))?;
/// assert_eq!(j.as_slice().unwrap(), &[0.0, 2.0, 0.0, 1.0]);
/// # Ok::<(), difi_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Forward<const N: usize = 8>;

/// Runs `f` once with active scalar `i` seeded by `seed(i)`, constants through `embed`. The seed
/// is `dyn` on purpose: generic, it was inlined into the lift, and the user's function compiled
/// around it ran ba's forward Jacobian at half speed (one codegen unit).
fn eval_seeded<S, A, Y, F, E, const N: usize>(
    f: &F,
    args: &A,
    embed: E,
    seed: &dyn Fn(usize) -> [S; N],
) -> Y
where
    S: Real,
    A: Args,
    E: Embed<A::Scalar, S>,
    F: Fn(A::Traced<Dual<S, N>>) -> Y,
{
    let embed = RefCell::new(embed);
    let mut i = 0;
    let traced = args.lift(
        &mut |a| {
            let d = Dual::seeded(embed.borrow_mut().active(i, a), seed(i));
            i += 1;
            d
        },
        &mut |c| Dual::constant_of(embed.borrow_mut().constant(c)),
    );
    f(traced)
}

fn outputs<S: Real, Y: Output<Dual<S, N>>, const N: usize>(y: &Y) -> Vec<Dual<S, N>> {
    let mut out = Vec::new();
    y.visit_output(&mut |d| out.push(d));
    out
}

fn num_active<A: Args>(args: &A) -> usize {
    args.signature().num_active()
}

impl<const N: usize> Forward<N> {
    /// Value and Jacobian with the given embedding, `⌈n / N⌉` passes.
    fn jacobian_with<S, A, Y, F, E>(&self, f: &F, args: &A, embed: E) -> (Y::Of<S>, Array2<S>)
    where
        S: Real,
        A: Args,
        E: Embed<A::Scalar, S> + Clone,
        Y: Output<Dual<S, N>>,
        F: Fn(A::Traced<Dual<S, N>>) -> Y,
    {
        let n = num_active(args);
        let passes = n.div_ceil(N).max(1);
        let mut jac: Option<Array2<S>> = None;
        let mut value = None;
        for p in 0..passes {
            let start = p * N;
            // Input `i` is lane `i − start` of this pass, or no lane.
            let y: Y = eval_seeded(f, args, embed.clone(), &|i| {
                let mut seed = [S::zero(); N];
                if let Some(lane) = i.checked_sub(start).and_then(|k| seed.get_mut(k)) {
                    *lane = S::one();
                }
                seed
            });
            let outs = outputs(&y);
            let jac = jac.get_or_insert_with(|| Array2::zeros((outs.len(), n)));
            for (r, d) in outs.iter().enumerate() {
                for k in 0..N.min(n.saturating_sub(start)) {
                    jac[[r, start + k]] = d.eps[k];
                }
            }
            if value.is_none() {
                let mut it = outs.iter();
                value = Some(y.rebuild(&mut || it.next().expect("output count").re));
            }
        }
        (
            value.expect("at least one pass"),
            jac.expect("at least one pass"),
        )
    }
}

/// An embedding usable several times (the forward engine needs one per pass).
struct Reusable<'a, E>(&'a RefCell<E>);

impl<E> Clone for Reusable<'_, E> {
    fn clone(&self) -> Self {
        Reusable(self.0)
    }
}

impl<A: Real, S: Real, E: Embed<A, S>> Embed<A, S> for Reusable<'_, E> {
    fn active(&mut self, index: usize, x: A) -> S {
        self.0.borrow_mut().active(index, x)
    }
    fn constant(&mut self, x: A) -> S {
        self.0.borrow_mut().constant(x)
    }
}

impl<const N: usize> Backend for Forward<N> {
    type Tracer<S: Real> = Dual<S, N>;
    type Pullback<S: Real> = DensePullback<S>;
    type GradientState<S: Real> = ();

    fn name(&self) -> String {
        format!("forward<{N}>")
    }

    /// A pullback from forward mode needs the whole Jacobian: `⌈n / N⌉` passes.
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
        Y: Output<Dual<S, N>>,
        F: Fn(A::Traced<Dual<S, N>>) -> Y,
    {
        let cell = RefCell::new(embed);
        let (value, jacobian) = self.jacobian_with(f, args, Reusable(&cell));
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
        Y: Output<Dual<S, N>>,
        F: Fn(A::Traced<Dual<S, N>>) -> Y,
    {
        let n = num_active(args);
        for d in directions {
            if d.len() != n {
                return Err(difi_core::Error::SeedShape {
                    operator: "pushforward",
                    expected: difi_core::Shape::Array(vec![n]),
                    given: difi_core::Shape::Array(vec![d.len()]),
                });
            }
        }
        let mut value = None;
        let mut out = Vec::with_capacity(directions.len());
        for chunk in directions
            .chunks(N)
            .chain(directions.is_empty().then_some(&[][..]))
        {
            let y: Y = eval_seeded(f, args, Identity, &|i| {
                std::array::from_fn(|k| chunk.get(k).map_or(S::zero(), |d| d[i]))
            });
            let outs = outputs(&y);
            for k in 0..chunk.len() {
                out.push(outs.iter().map(|d| d.eps[k]).collect());
            }
            if value.is_none() {
                let mut it = outs.iter();
                value = Some(y.rebuild(&mut || it.next().expect("output count").re));
            }
        }
        Ok((value.expect("at least one pass"), out))
    }

    fn jacobian_at<S, A, Y, F>(&self, f: &F, args: &A) -> Result<(Y::Of<S>, Array2<S>)>
    where
        S: Real,
        A: Args<Scalar = S>,
        Y: Output<Dual<S, N>>,
        F: Fn(A::Traced<Dual<S, N>>) -> Y,
    {
        Ok(self.jacobian_with(f, args, Identity))
    }

    fn value_and_gradient_flat<S, A, F>(&self, f: &F, args: &A) -> Result<(S, Vec<S>)>
    where
        S: Real,
        A: Args<Scalar = S>,
        F: Fn(A::Traced<Dual<S, N>>) -> Dual<S, N>,
    {
        let (y, j) = self.jacobian_with(f, args, Identity);
        Ok((y, j.row(0).to_vec()))
    }
}

/// Second order by forward mode over any reverse engine `R`: the reverse engine runs over dual
/// numbers, so the adjoints' values are the gradient and their lanes Hessian-vector products.
///
/// `hvp` runs one pass over `Dual<S, 1>`; `hessian` runs `⌈n / N⌉` passes over `Dual<S, N>`.
/// First-order operators go to `R` unchanged, so `ForwardOverReverse<R>` is a complete backend.
///
/// ```
/// use difi_core::{Active, SecondOrder};
/// use difi_forward::ForwardOverReverse;
/// use difi_tape::Tape;
/// let b = ForwardOverReverse::<Tape>::default();
/// let h = b.hessian(|x: Vec<_>| x[0] * x[0] * x[1], Active(&vec![1.0, 3.0]))?;
/// assert_eq!(h.as_slice().unwrap(), &[6.0, 2.0, 2.0, 0.0]);
/// # Ok::<(), difi_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct ForwardOverReverse<R, const N: usize = 8> {
    /// The reverse engine.
    pub reverse: R,
}

impl<R: Backend, const N: usize> ForwardOverReverse<R, N> {
    /// Forward-over-reverse on the given reverse engine.
    pub fn new(reverse: R) -> Self {
        ForwardOverReverse { reverse }
    }
}

/// Seeds lane `k` of active scalar `i` with `directions[k][i]`.
struct SeedLanes<'a, S, const K: usize> {
    directions: [&'a [S]; K],
}

impl<S: Real, const K: usize> Embed<S, Dual<S, K>> for SeedLanes<'_, S, K> {
    fn active(&mut self, index: usize, x: S) -> Dual<S, K> {
        Dual::seeded(
            x,
            std::array::from_fn(|k| self.directions[k].get(index).copied().unwrap_or(S::zero())),
        )
    }
    fn constant(&mut self, x: S) -> Dual<S, K> {
        Dual::constant_of(x)
    }
}

impl<R: Backend, const N: usize> Backend for ForwardOverReverse<R, N> {
    type Tracer<S: Real> = R::Tracer<S>;
    type Pullback<S: Real> = R::Pullback<S>;
    type GradientState<S: Real> = R::GradientState<S>;

    fn name(&self) -> String {
        format!("forward-over-reverse({})", self.reverse.name())
    }

    fn record<S, A, Y, F, E>(&self, f: &F, args: &A, embed: E) -> Result<(Y::Of<S>, R::Pullback<S>)>
    where
        S: Real,
        A: Args,
        E: Embed<A::Scalar, S>,
        Y: Output<R::Tracer<S>>,
        F: Fn(A::Traced<R::Tracer<S>>) -> Y,
    {
        self.reverse.record(f, args, embed)
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
        Y: Output<R::Tracer<S>>,
        F: Fn(A::Traced<R::Tracer<S>>) -> Y,
    {
        self.reverse.push(f, args, directions)
    }

    fn jacobian_at<S, A, Y, F>(&self, f: &F, args: &A) -> Result<(Y::Of<S>, Array2<S>)>
    where
        S: Real,
        A: Args<Scalar = S>,
        Y: Output<R::Tracer<S>>,
        F: Fn(A::Traced<R::Tracer<S>>) -> Y,
    {
        self.reverse.jacobian_at(f, args)
    }

    fn jacobian_batch_at<S, A, Y, F, I>(
        &self,
        f: &F,
        batch: I,
        sink: &mut dyn FnMut(usize, Y::Of<S>, ArrayView2<'_, S>),
    ) -> Result<()>
    where
        S: Real,
        A: Args<Scalar = S>,
        Y: Output<R::Tracer<S>>,
        F: Fn(A::Traced<R::Tracer<S>>) -> Y,
        I: Iterator<Item = A>,
    {
        self.reverse.jacobian_batch_at(f, batch, sink)
    }

    fn prepare_gradient_state<S, A, F>(&self, f: &F, args: &A) -> Result<R::GradientState<S>>
    where
        S: Real,
        A: Args<Scalar = S>,
        F: Fn(A::Traced<R::Tracer<S>>) -> R::Tracer<S>,
    {
        self.reverse.prepare_gradient_state(f, args)
    }

    fn gradient_with_state<S, A, F>(
        &self,
        state: &mut R::GradientState<S>,
        f: &F,
        args: &A,
    ) -> Result<(S, Vec<S>)>
    where
        S: Real,
        A: Args<Scalar = S>,
        F: Fn(A::Traced<R::Tracer<S>>) -> R::Tracer<S>,
    {
        self.reverse.gradient_with_state(state, f, args)
    }

    fn value_and_gradient_flat<S, A, F>(&self, f: &F, args: &A) -> Result<(S, Vec<S>)>
    where
        S: Real,
        A: Args<Scalar = S>,
        F: Fn(A::Traced<R::Tracer<S>>) -> R::Tracer<S>,
    {
        self.reverse.value_and_gradient_flat(f, args)
    }
}

impl<R: Backend, const N: usize> SecondOrder for ForwardOverReverse<R, N> {
    type HvpTracer<S: Real> = R::Tracer<Dual<S, 1>>;
    type HessianTracer<S: Real> = R::Tracer<Dual<S, N>>;

    fn gradient_and_hvp_flat<S, A, F>(
        &self,
        f: &F,
        args: &A,
        direction: &[S],
    ) -> Result<(S, Vec<S>, Vec<S>)>
    where
        S: Real,
        A: Args<Scalar = S>,
        F: Fn(A::Traced<R::Tracer<Dual<S, 1>>>) -> R::Tracer<Dual<S, 1>>,
    {
        let n = num_active(args);
        if direction.len() != n {
            return Err(difi_core::Error::SeedShape {
                operator: "hvp",
                expected: difi_core::Shape::Array(vec![n]),
                given: difi_core::Shape::Array(vec![direction.len()]),
            });
        }
        let embed = SeedLanes {
            directions: [direction],
        };
        let (y, pullback) = self
            .reverse
            .record::<Dual<S, 1>, A, R::Tracer<Dual<S, 1>>, F, _>(f, args, embed)?;
        let adj = difi_core::Pullback::apply(&pullback, &[Dual::constant_of(S::one())])?;
        Ok((
            y.re,
            adj.iter().map(|d| d.re).collect(),
            adj.iter().map(|d| d.eps[0]).collect(),
        ))
    }

    fn gradient_and_hessian_flat<S, A, F>(&self, f: &F, args: &A) -> Result<(S, Vec<S>, Array2<S>)>
    where
        S: Real,
        A: Args<Scalar = S>,
        F: Fn(A::Traced<R::Tracer<Dual<S, N>>>) -> R::Tracer<Dual<S, N>>,
    {
        let n = num_active(args);
        let mut hessian = Array2::zeros((n, n));
        let mut first = None;
        let units: Vec<Vec<S>> = (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| if i == j { S::one() } else { S::zero() })
                    .collect()
            })
            .collect();
        let empty: Vec<S> = Vec::new();
        for start in (0..n.max(1)).step_by(N) {
            let directions: [&[S]; N] =
                std::array::from_fn(|k| units.get(start + k).map_or(&empty[..], |u| &u[..]));
            let (y, pullback) = self
                .reverse
                .record::<Dual<S, N>, A, R::Tracer<Dual<S, N>>, F, _>(
                    f,
                    args,
                    SeedLanes { directions },
                )?;
            let adj = difi_core::Pullback::apply(&pullback, &[Dual::constant_of(S::one())])?;
            for k in 0..N.min(n.saturating_sub(start)) {
                for (i, d) in adj.iter().enumerate() {
                    hessian[[i, start + k]] = d.eps[k];
                }
            }
            first.get_or_insert_with(|| (y.re, adj.iter().map(|d| d.re).collect::<Vec<S>>()));
        }
        let (y, g) = first.expect("at least one pass");
        Ok((y, g, hessian))
    }
}
