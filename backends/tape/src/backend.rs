//! The `Backend` implementation: recording, the reusable pullback, prepared replay.

use std::cell::Cell;

use difi_core::{Args, Backend, Embed, Error, Identity, Output, Pullback, Real, Result, Shape};

use crate::batch;
use crate::tape::{self, begin, sweep, sweep_cone, RecordingGuard, TapeData, MAX_NODES, NO_INDEX};
use crate::var::Var;
use ndarray::{Array2, ArrayView2};

/// Reverse mode on a per-thread Wengert list of compact records.
///
/// ```
/// use difi_core::{Active, Backend, Const, NoTangent};
/// use difi_tape::Tape;
///
/// let b = Tape::default();
/// let (y, (g, NoTangent)) = b.value_and_gradient(
///     |(x, c)| x.iter().fold(c, |s, &v| s + v * v),
///     (Active(&vec![1.0, 2.0]), Const(10.0)),
/// )?;
/// assert_eq!(y, 15.0);
/// assert_eq!(g, vec![2.0, 4.0]);
/// # Ok::<(), difi_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Tape {
    max_nodes: usize,
}

impl Default for Tape {
    fn default() -> Self {
        Tape {
            max_nodes: MAX_NODES,
        }
    }
}

impl Tape {
    /// A tape engine with the largest capacity.
    pub fn new() -> Tape {
        Tape::default()
    }

    /// Limits the records one computation may hold; past it the operator returns
    /// [`Error::TapeOverflow`].
    pub fn with_max_nodes(self, max_nodes: usize) -> Tape {
        Tape {
            max_nodes: max_nodes.min(MAX_NODES),
        }
    }
}

/// Up to this many outputs a Jacobian sweeps densely per row (bounded by a constant factor
/// of the tape); past it, rows sweep their dependency cones.
const DENSE_JACOBIAN_ROWS: usize = 4;

/// Sizes of a recording, for tests and tuning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordingStats {
    /// Records (scalar ops, array nodes and their output slots, inputs).
    pub nodes: usize,
    /// Bytes held by records, values, constants and guards.
    pub bytes: usize,
    /// Array-level nodes (sum, dot, products, rules, hooks, checkpoints).
    pub array_nodes: usize,
    /// Comparisons recorded as replay guards.
    pub guards: usize,
}

thread_local! {
    static LAST: Cell<RecordingStats> = const { Cell::new(RecordingStats { nodes: 0, bytes: 0, array_nodes: 0, guards: 0 }) };
}

/// The sizes of the last recording finished on this thread (any base scalar).
pub fn last_recording() -> RecordingStats {
    LAST.with(|l| l.get())
}

fn stats_of<S: Real>(d: &TapeData<S>) -> RecordingStats {
    RecordingStats {
        nodes: d.nodes.len(),
        bytes: d.bytes(),
        array_nodes: d.specials.len(),
        guards: d.guards.len(),
    }
}

/// A finished recording: applied to any number of seeds.
pub struct TapePullback<S: Real> {
    data: TapeData<S>,
    /// The active inputs are the recording's first nodes, `0..num_inputs`.
    num_inputs: usize,
    outputs: Vec<u32>,
    /// A checkpointed segment's recomputation, swept inside another recording's sweep.
    segment: bool,
}

impl<S: Real> TapePullback<S> {
    /// Sizes of the recording.
    pub fn stats(&self) -> RecordingStats {
        stats_of(&self.data)
    }

    pub(crate) fn data(&self) -> &TapeData<S> {
        &self.data
    }

    pub(crate) fn num_inputs(&self) -> usize {
        self.num_inputs
    }

    /// The node of each output, `NO_INDEX` for a constant one.
    pub(crate) fn outputs(&self) -> &[u32] {
        &self.outputs
    }

    /// Replays the recording at `inputs` (all of its inputs, in order); `false` if it does not
    /// apply there (a guard fails, an unguarded read), leaving it to be recorded anew.
    pub(crate) fn replay(&mut self, inputs: &[S]) -> bool {
        inputs.len() == self.num_inputs && tape::replay(&mut self.data, inputs)
    }

    pub(crate) fn apply_seed(&self, seed: &[S]) -> Result<Vec<S>> {
        if seed.len() != self.outputs.len() {
            return Err(Error::SeedShape {
                operator: "pullback",
                expected: Shape::Array(vec![self.outputs.len()]),
                given: Shape::Array(vec![seed.len()]),
            });
        }
        // A segment recording kept for the next checkpoint does not outlive this sweep.
        let _kept = (!self.segment).then_some(crate::special::ClearKeptSegment);
        let mut adj = tape::adjoint_buffer(self.data.nodes.len());
        for (&o, &s) in self.outputs.iter().zip(seed) {
            if o != NO_INDEX {
                adj[o as usize] += s;
            }
        }
        let swept = sweep(&self.data, &mut adj, self.data.nodes.len());
        let grad = swept.map(|()| adj[..self.num_inputs].to_vec());
        tape::give_back_adjoint(adj);
        grad
    }
}

impl<S: Real> Drop for TapePullback<S> {
    fn drop(&mut self) {
        tape::recycle(std::mem::replace(&mut self.data, TapeData::new()));
    }
}

impl<S: Real> Pullback<S> for TapePullback<S> {
    fn num_outputs(&self) -> usize {
        self.outputs.len()
    }
    fn num_inputs(&self) -> usize {
        self.num_inputs
    }
    fn apply(&self, seed: &[S]) -> Result<Vec<S>> {
        self.apply_seed(seed)
    }
}

/// Records the active inputs in one tape access: they are the recording's first nodes, input
/// `k` at index `k`. Per-input thread-state access was a tenth of a small gradient.
fn input_nodes<S: Real>(xs: &[S], epoch: u32) -> impl Iterator<Item = Var<S>> + '_ {
    let fits = tape::with_tape::<S, _>(|t| t.push_inputs(xs));
    // Past the tape's capacity the recording carries the error; the inputs become constants.
    xs.iter().enumerate().map(move |(k, &value)| Var {
        value,
        index: if fits { k as u32 } else { NO_INDEX },
        epoch,
    })
}

fn finish<S: Real>(
    guard: RecordingGuard<S>,
    epoch: u32,
    outputs: &[Var<S>],
    num_inputs: usize,
    report: bool,
) -> Result<TapePullback<S>> {
    let data = guard.finish();
    if report {
        LAST.with(|l| l.set(stats_of(&data)));
    }
    if let Some(e) = data.error {
        return Err(e);
    }
    let outputs = outputs
        .iter()
        .map(|v| {
            if !v.is_active() {
                Ok(NO_INDEX)
            } else if v.epoch != epoch {
                Err(Error::TracerMisuse(
                    "the function returned a tracer of another computation".into(),
                ))
            } else {
                Ok(v.index)
            }
        })
        .collect::<Result<Vec<u32>>>()?;
    Ok(TapePullback {
        segment: false,
        data,
        num_inputs,
        outputs,
    })
}

/// Records `f` on flat inputs (used by checkpoints to recompute a segment).
pub(crate) fn record_flat<S: Real>(
    max_nodes: usize,
    xs: &[S],
    f: impl FnOnce(&[Var<S>]) -> Vec<Var<S>>,
) -> Result<(Vec<S>, TapePullback<S>)> {
    let epoch = begin::<S>(max_nodes)?;
    let guard = RecordingGuard::<S>::new();
    let vars: Vec<Var<S>> = input_nodes(xs, epoch).collect();
    let outs = f(&vars);
    let values = outs.iter().map(|v| v.value).collect();
    // A segment's recomputation is not what `last_recording` reports.
    let mut pullback = finish(guard, epoch, &outs, xs.len(), false)?;
    pullback.segment = true;
    Ok((values, pullback))
}

/// Appends the scalars of `args`, active and constant, in the order `lift` visits them, to `all`;
/// and the position of each active one to `active`.
pub(crate) fn all_scalars<A: Args>(
    args: &A,
    all: &mut Vec<A::Scalar>,
    active: Option<&mut Vec<u32>>,
) {
    let lists = std::cell::RefCell::new((all, active));
    let _ = args.lift(
        &mut |x: A::Scalar| {
            let (all, active) = &mut *lists.borrow_mut();
            if let Some(active) = active {
                active.push(all.len() as u32);
            }
            all.push(x);
            x
        },
        &mut |x: A::Scalar| {
            lists.borrow_mut().0.push(x);
            x
        },
    );
}

/// Records `f` with every scalar of `args` as an input, `Const` ones too, so the recording
/// replays for other constants; returns the traced output, the recording and the input node of
/// each active scalar (in order).
pub(crate) fn record_with_constants_as_inputs<S, A, Y, F>(
    tape: &Tape,
    f: &F,
    args: &A,
) -> Result<(Y, TapePullback<S>, Vec<u32>)>
where
    S: Real,
    A: Args<Scalar = S>,
    Y: Output<Var<S>>,
    F: Fn(A::Traced<Var<S>>) -> Y,
{
    let (mut all, mut active) = (Vec::new(), Vec::new());
    all_scalars(args, &mut all, Some(&mut active));
    let epoch = begin::<S>(tape.max_nodes)?;
    let guard = RecordingGuard::<S>::new();
    let vars = std::cell::RefCell::new(input_nodes(&all, epoch));
    let next = |_: S| vars.borrow_mut().next().expect("one input node per scalar");
    let traced = args.lift(&mut &next, &mut &next);
    let y = f(traced);
    let mut outs = Vec::new();
    y.visit_output(&mut |v| outs.push(v));
    let pullback = finish(guard, epoch, &outs, all.len(), false)?;
    Ok((y, pullback, active))
}

/// What a prepared gradient keeps: the recording it replays for new inputs.
pub struct Replay<S: Real> {
    recording: Option<(TapePullback<S>, Vec<S>)>,
    rerecords: usize,
    replays: usize,
}

impl<S: Real> Default for Replay<S> {
    fn default() -> Self {
        Replay {
            recording: None,
            rerecords: 0,
            replays: 0,
        }
    }
}

impl<S: Real> Replay<S> {
    /// Calls answered by replaying the recording.
    pub fn replays(&self) -> usize {
        self.replays
    }
    /// Calls that had to record anew (a guard failed, a constant changed, or a node cannot be
    /// replayed).
    pub fn rerecords(&self) -> usize {
        self.rerecords
    }
}

fn constants_of<A: Args>(args: &A) -> Vec<A::Scalar> {
    let mut out = Vec::new();
    let _ = args.lift(&mut |a: A::Scalar| a, &mut |c: A::Scalar| {
        out.push(c);
        c
    });
    out
}

fn same<S: Real>(a: &[S], b: &[S]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
}

impl Backend for Tape {
    type Tracer<S: Real> = Var<S>;
    type Pullback<S: Real> = TapePullback<S>;
    type GradientState<S: Real> = Replay<S>;

    fn name(&self) -> String {
        "tape".into()
    }

    fn record<S, A, Y, F, E>(
        &self,
        f: &F,
        args: &A,
        embed: E,
    ) -> Result<(Y::Of<S>, TapePullback<S>)>
    where
        S: Real,
        A: Args,
        E: Embed<A::Scalar, S>,
        Y: Output<Var<S>>,
        F: Fn(A::Traced<Var<S>>) -> Y,
    {
        let epoch = begin::<S>(self.max_nodes)?;
        let guard = RecordingGuard::<S>::new();
        let mut embed = embed;
        let values = args.embed_active(&mut embed);
        let mut vars = input_nodes(&values, epoch);
        let traced = args.lift_from_iter(&mut vars, &mut |c| Var::constant_of(embed.constant(c)));
        let y = f(traced);
        let mut outs = Vec::new();
        y.visit_output(&mut |v| outs.push(v));
        let pullback = finish(guard, epoch, &outs, values.len(), true)?;
        let mut it = outs.iter();
        let value = y.rebuild(&mut || it.next().expect("output count").value);
        Ok((value, pullback))
    }

    /// One recording. With few outputs each row is a dense sweep below its output (cheapest
    /// on small tapes); with more, each row sweeps only its output's dependency cone, so a row
    /// costs what that output depends on, not the rows recorded before it.
    fn jacobian_at<S, A, Y, F>(&self, f: &F, args: &A) -> Result<(Y::Of<S>, Array2<S>)>
    where
        S: Real,
        A: Args<Scalar = S>,
        Y: Output<Var<S>>,
        F: Fn(A::Traced<Var<S>>) -> Y,
    {
        let (value, pb) = self.record(f, args, Identity)?;
        // A segment recording kept for the next checkpoint does not outlive these sweeps.
        let _kept = crate::special::ClearKeptSegment;
        let (m, n) = (pb.outputs.len(), pb.num_inputs);
        let mut jac = Array2::zeros((m, n));
        let mut adj = tape::adjoint_buffer(pb.data.nodes.len());
        if m <= DENSE_JACOBIAN_ROWS {
            for (row, &o) in pb.outputs.iter().enumerate() {
                if o == NO_INDEX {
                    continue;
                }
                let end = o as usize + 1;
                // All of it: inputs above `end` must read zero, not the last row's adjoints.
                adj.fill(S::zero());
                adj[o as usize] = S::one();
                sweep(&pb.data, &mut adj, end)?;
                jac.row_mut(row)
                    .iter_mut()
                    .zip(&adj[..n])
                    .for_each(|(j, &a)| *j = a);
            }
            tape::give_back_adjoint(adj);
            return Ok((value, jac));
        }
        let mut pending = vec![0u64; pb.data.nodes.len().div_ceil(64)];
        let mut touched = Vec::new();
        for (row, &o) in pb.outputs.iter().enumerate() {
            if o == NO_INDEX {
                continue;
            }
            adj[o as usize] = S::one();
            sweep_cone(&pb.data, &mut adj, &mut pending, &[o], &mut touched)?;
            for &i in &touched {
                // Input `c` is node `c`.
                if (i as usize) < n {
                    jac[[row, i as usize]] += adj[i as usize];
                }
                adj[i as usize] = S::zero();
            }
        }
        tape::give_back_adjoint(adj);
        Ok((value, jac))
    }

    /// One recording with the `Const` arguments as inputs too, replayed for up to 16 sets at
    /// once, each node's arithmetic looped over the sets.
    fn jacobian_batch_at<S, A, Y, F, I>(
        &self,
        f: &F,
        batch: I,
        sink: &mut dyn FnMut(usize, Y::Of<S>, ArrayView2<'_, S>),
    ) -> Result<()>
    where
        S: Real,
        A: Args<Scalar = S>,
        Y: Output<Var<S>>,
        F: Fn(A::Traced<Var<S>>) -> Y,
        I: Iterator<Item = A>,
    {
        batch::jacobian_batch(self, f, batch, sink)
    }

    fn prepare_gradient_state<S, A, F>(&self, f: &F, args: &A) -> Result<Replay<S>>
    where
        S: Real,
        A: Args<Scalar = S>,
        F: Fn(A::Traced<Var<S>>) -> Var<S>,
    {
        let (_, pullback) = self.record(f, args, Identity)?;
        Ok(Replay {
            recording: Some((pullback, constants_of(args))),
            rerecords: 0,
            replays: 0,
        })
    }

    fn gradient_with_state<S, A, F>(
        &self,
        state: &mut Replay<S>,
        f: &F,
        args: &A,
    ) -> Result<(S, Vec<S>)>
    where
        S: Real,
        A: Args<Scalar = S>,
        F: Fn(A::Traced<Var<S>>) -> Var<S>,
    {
        if let Some((pb, consts)) = state.recording.as_mut() {
            let x = args.active_values();
            if pb.outputs.len() == 1
                && pb.outputs[0] != NO_INDEX
                && same(consts, &constants_of(args))
                && tape::replay(&mut pb.data, &x)
            {
                state.replays += 1;
                let value = pb.data.values[pb.outputs[0] as usize];
                return Ok((value, pb.apply_seed(&[S::one()])?));
            }
        }
        // The recording does not apply (or was never made): record anew and keep it.
        state.rerecords += 1;
        let (value, pullback) = self.record(f, args, Identity)?;
        let grad = pullback.apply_seed(&[S::one()])?;
        state.recording = Some((pullback, constants_of(args)));
        Ok((value, grad))
    }
}
