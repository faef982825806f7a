//! The `Backend` implementation: one forward pass builds the pullback, which is then applied to
//! any number of seeds.

use std::cell::Cell;

use difi_core::{Args, Backend, Embed, Error, Output, Pullback, Real, Result, Shape};

use crate::graph::{pull_back, with_graph, Graph, Recording, MAX_ENTRIES, NO_ID};
use crate::tracked::Tracked;

/// Zygote-style reverse mode: every primitive registers its pullback as it runs; the function's
/// pullback is their composition.
///
/// ```
/// use difi_core::{Active, Backend, Const, NoTangent};
/// use difi_closure::Closure;
/// let (y, pb) = Closure::default().pullback(|x: Vec<_>| vec![x[0] * x[1], x[1]], Active(&vec![2.0, 3.0]))?;
/// assert_eq!(y, vec![6.0, 3.0]);
/// assert_eq!(pb.apply(&vec![1.0, 0.0])?, vec![3.0, 2.0]);
/// assert_eq!(pb.apply(&vec![0.0, 1.0])?, vec![0.0, 1.0]);
/// # Ok::<(), difi_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Closure {
    max_entries: usize,
}

impl Default for Closure {
    fn default() -> Self {
        Closure {
            max_entries: MAX_ENTRIES,
        }
    }
}

impl Closure {
    /// Limits the pullbacks one computation may register ([`Error::TapeOverflow`] past it).
    pub fn with_max_entries(self, max_entries: usize) -> Closure {
        Closure {
            max_entries: max_entries.min(MAX_ENTRIES),
        }
    }
}

/// Sizes of a recorded pullback, for tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PullbackStats {
    /// Scalar pullbacks registered.
    pub scalar_pullbacks: usize,
    /// Array-level pullback closures (sum, dot, products, rules, hooks, checkpoints).
    pub array_pullbacks: usize,
}

thread_local! {
    static LAST: Cell<PullbackStats> = const { Cell::new(PullbackStats { scalar_pullbacks: 0, array_pullbacks: 0 }) };
}

/// The sizes of the last pullback built on this thread.
pub fn last_pullback() -> PullbackStats {
    LAST.with(|l| l.get())
}

/// A function's pullback: owns its closures, is `Send`, and is applied to any number of seeds.
pub struct ClosurePullback<S: Real> {
    graph: Graph<S>,
    inputs: Vec<u32>,
    outputs: Vec<u32>,
}

impl<S: Real> Drop for ClosurePullback<S> {
    fn drop(&mut self) {
        crate::graph::recycle(std::mem::replace(&mut self.graph, Graph::new()));
    }
}

impl<S: Real> ClosurePullback<S> {
    pub(crate) fn apply_seed(&self, seed: &[S]) -> Result<Vec<S>> {
        if seed.len() != self.outputs.len() {
            return Err(Error::SeedShape {
                operator: "pullback",
                expected: Shape::Array(vec![self.outputs.len()]),
                given: Shape::Array(vec![seed.len()]),
            });
        }
        let mut adj = vec![S::zero(); self.graph.entries.len()];
        for (&o, &s) in self.outputs.iter().zip(seed) {
            if o != NO_ID {
                adj[o as usize] += s;
            }
        }
        pull_back(&self.graph, &mut adj)?;
        Ok(self.inputs.iter().map(|&i| adj[i as usize]).collect())
    }

    /// Sizes of this pullback.
    pub fn stats(&self) -> PullbackStats {
        stats(&self.graph)
    }
}

fn stats<S: Real>(g: &Graph<S>) -> PullbackStats {
    PullbackStats {
        scalar_pullbacks: g.entries.iter().filter(|e| e.is_scalar()).count(),
        array_pullbacks: g.arrays.len(),
    }
}

impl<S: Real> Pullback<S> for ClosurePullback<S> {
    fn num_outputs(&self) -> usize {
        self.outputs.len()
    }
    fn num_inputs(&self) -> usize {
        self.inputs.len()
    }
    fn apply(&self, seed: &[S]) -> Result<Vec<S>> {
        self.apply_seed(seed)
    }
}

/// One leaf per active input value, pushed in one graph access; returns their ids.
fn input_leaves<S: Real>(n: usize) -> Vec<u32> {
    with_graph::<S, _>(|g| g.push_leaves(n))
}

fn finish<S: Real>(
    rec: Recording<S>,
    outs: &[Tracked<S>],
    inputs: Vec<u32>,
    report: bool,
) -> Result<ClosurePullback<S>> {
    let epoch = rec.epoch;
    let graph = rec.finish();
    if report {
        LAST.with(|l| l.set(stats(&graph)));
    }
    if let Some(e) = graph.error {
        return Err(e);
    }
    let outputs = outs
        .iter()
        .map(|v| match (v.is_active(), v.epoch == epoch) {
            (false, _) => Ok(NO_ID),
            (true, true) => Ok(v.id),
            (true, false) => Err(Error::TracerMisuse(
                "the function returned a tracer of another computation".into(),
            )),
        })
        .collect::<Result<Vec<u32>>>()?;
    Ok(ClosurePullback {
        graph,
        inputs,
        outputs,
    })
}

/// Builds the pullback of `f` on flat inputs (checkpoints recompute their segment with it).
pub(crate) fn record_flat<S: Real>(
    xs: &[S],
    f: impl FnOnce(&[Tracked<S>]) -> Vec<Tracked<S>>,
) -> Result<(Vec<S>, ClosurePullback<S>)> {
    let rec = Recording::<S>::begin(u32::MAX as usize - 1)?;
    let inputs = input_leaves::<S>(xs.len());
    let vars: Vec<Tracked<S>> = xs
        .iter()
        .zip(&inputs)
        .map(|(&value, &id)| Tracked {
            value,
            id,
            epoch: rec.epoch,
        })
        .collect();
    let outs = f(&vars);
    let values = outs.iter().map(|v| v.value).collect();
    Ok((values, finish(rec, &outs, inputs, false)?))
}

impl Backend for Closure {
    type Tracer<S: Real> = Tracked<S>;
    type Pullback<S: Real> = ClosurePullback<S>;
    type GradientState<S: Real> = ();

    fn name(&self) -> String {
        "closure".into()
    }

    fn record<S, A, Y, F, E>(
        &self,
        f: &F,
        args: &A,
        embed: E,
    ) -> Result<(Y::Of<S>, ClosurePullback<S>)>
    where
        S: Real,
        A: Args,
        E: Embed<A::Scalar, S>,
        Y: Output<Tracked<S>>,
        F: Fn(A::Traced<Tracked<S>>) -> Y,
    {
        let rec = Recording::<S>::begin(self.max_entries)?;
        let epoch = rec.epoch;
        let mut embed = embed;
        let values = args.embed_active(&mut embed);
        let inputs = input_leaves::<S>(values.len());
        let mut tracked =
            values
                .iter()
                .zip(&inputs)
                .map(|(&value, &id)| Tracked { value, id, epoch });
        let traced = args.lift_from_iter(&mut tracked, &mut |c| {
            Tracked::constant_of(embed.constant(c))
        });
        let y = f(traced);
        let mut outs = Vec::new();
        y.visit_output(&mut |v| outs.push(v));
        let pullback = finish(rec, &outs, inputs, true)?;
        let mut it = outs.iter();
        let value = y.rebuild(&mut || it.next().expect("output count").value);
        Ok((value, pullback))
    }
}
