//! Jacobians at many argument sets ([`Backend::jacobian_batch`]): one recording, replayed for a
//! chunk of sets at once. Values and adjoints are kept lane by lane (node `i` of set `l` at
//! `i * LANES + l`) and each node's arithmetic runs over all lanes, so the dispatch on a node's
//! kind, which dominates a scalar sweep, is paid once per chunk instead of once per set.

use difi_core::{Args, Backend, BatchSignature, Output, Real, Result};
use ndarray::{ArrayView2, ArrayView3, Axis};

use crate::backend::{all_scalars, record_with_constants_as_inputs, Tape, TapePullback};
use crate::tape::{
    eval_op, is_binary, pull_op, sin_cos_node, Node, Op, TapeData, CONST_BIT, NO_INDEX,
};
use crate::var::Var;

/// Sets per chunk. 16 lanes of `f64` keep a block of about a hundred nodes (values, adjoints
/// and the recorded derivatives of `sin` and `cos`) in the first-level cache.
const LANES: usize = 16;

/// Runs `$body` with `$o` bound to `$op`. Each listed op gets its own arm in which `$o` is a
/// constant, so a loop over lanes in `$body` compiles to that op's arithmetic alone; the other
/// ops share one arm that dispatches per lane.
macro_rules! with_op_hoisted {
    ($op:expr, [$($name:ident),*], |$o:ident| $body:expr) => {
        match $op {
            $(Op::$name => {
                // A constant, not a variable: a closure in `$body` then names the op instead of
                // capturing it, and compiles to that op's arithmetic.
                #[allow(non_upper_case_globals)]
                const $o: Op = Op::$name;
                $body
            })*
            $o => $body,
        }
    };
}

/// A recording that every set of a batch can replay: all scalars of the arguments are its inputs
/// (constants too, so sets with other constants replay it), guards check the branches.
struct Recording<S: Real, Y> {
    pb: TapePullback<S>,
    /// The traced output, for its structure.
    output: Y,
    /// The recorded value of each output (what a constant output keeps).
    output_values: Vec<S>,
    /// The input node of each Jacobian column (the active scalars).
    columns: Vec<u32>,
}

impl<S: Real, Y: Output<Var<S>>> Recording<S, Y> {
    fn new<A, F>(tape: &Tape, f: &F, args: &A) -> Result<Self>
    where
        A: Args<Scalar = S>,
        F: Fn(A::Traced<Var<S>>) -> Y,
    {
        let (output, pb, columns) = record_with_constants_as_inputs(tape, f, args)?;
        let mut output_values = Vec::new();
        output.visit_output(&mut |v: Var<S>| output_values.push(v.value));
        Ok(Recording {
            pb,
            output,
            output_values,
            columns,
        })
    }

    /// Array nodes (custom rules, checkpoints, hooks) have no lane-wise replay, and a recording
    /// that branched on a plain value has no guard to check.
    fn replays_in_lanes(&self) -> bool {
        let data = self.pb.data();
        !data.unguarded_read && data.specials.is_empty()
    }
}

/// Buffers of one chunk, reused from chunk to chunk.
struct Lanes<S> {
    values: Vec<S>,
    /// The derivative of each `sin` and `cos` node, per lane.
    derivatives: Vec<S>,
    /// Node `i`'s lanes at `(i + 1) * LANES`; the first `LANES` take (and drop) what the
    /// sweep adds to constants, so adding needs no branch.
    adjoints: Vec<S>,
    /// Lane `l`'s Jacobian, row-major, at `l * rows * columns`.
    jacobians: Vec<S>,
    flat: Vec<S>,
}

/// The operand `r`'s lanes: a node's, or constant `r` repeated into `broadcast`.
#[inline(always)]
fn lanes<'a, S: Real>(
    below: &'a [S],
    consts: &[S],
    r: u32,
    broadcast: &'a mut [S; LANES],
) -> &'a [S; LANES] {
    if r & CONST_BIT != 0 {
        *broadcast = [consts[(r & !CONST_BIT) as usize]; LANES];
        broadcast
    } else {
        let i = r as usize * LANES;
        below[i..i + LANES].try_into().expect("LANES values")
    }
}

impl<S: Real> Lanes<S> {
    fn new(data: &TapeData<S>, rows: usize, columns: usize) -> Self {
        let len = data.nodes.len() * LANES;
        Lanes {
            values: vec![S::zero(); len],
            derivatives: vec![S::zero(); len],
            adjoints: vec![S::zero(); len + LANES],
            jacobians: vec![S::zero(); rows * columns * LANES],
            flat: Vec::new(),
        }
    }

    /// Writes set `args` into lane `l`'s inputs.
    fn load<A: Args<Scalar = S>>(&mut self, args: &A, l: usize) {
        self.flat.clear();
        all_scalars(args, &mut self.flat, None);
        for (k, &x) in self.flat.iter().enumerate() {
            self.values[k * LANES + l] = x;
        }
    }

    /// Recomputes every node's value in every lane from the inputs.
    fn forward(&mut self, data: &TapeData<S>, num_inputs: usize) {
        let consts = &data.consts[..];
        let (mut tx, mut tp) = ([S::zero(); LANES], [S::zero(); LANES]);
        for (i, &Node { op, a, b }) in data.nodes.iter().enumerate().skip(num_inputs) {
            let (below, rest) = self.values.split_at_mut(i * LANES);
            let out = &mut rest[..LANES];
            let x = lanes(below, consts, a, &mut tx);
            if matches!(op, Op::Sin | Op::Cos) {
                let d = &mut self.derivatives[i * LANES..(i + 1) * LANES];
                for l in 0..LANES {
                    (out[l], d[l]) = sin_cos_node(op, x[l]);
                }
                continue;
            }
            let p = if is_binary(op) {
                lanes(below, consts, b, &mut tp)
            } else {
                &tp
            };
            let out: &mut [S; LANES] = out.try_into().expect("LANES values");
            with_op_hoisted!(op, [Add, Sub, Mul, Div, Neg, Sqrt], |o| {
                eval_lanes(x, p, out, |x, p| eval_op(o, x, p, b, &mut []))
            });
        }
    }

    /// Whether lane `l` takes the recorded branch at every comparison.
    fn guards_hold(&self, data: &TapeData<S>, l: usize) -> bool {
        let value = |r: u32| {
            if r & CONST_BIT != 0 {
                data.consts[(r & !CONST_BIT) as usize]
            } else {
                self.values[r as usize * LANES + l]
            }
        };
        data.guards
            .iter()
            .all(|g| value(g.a).partial_cmp(&value(g.b)) == g.result)
    }

    /// One reverse sweep in every lane from output node `top`, seeded with one; the adjoints of
    /// nodes `0..=top` are left in `adjoints`.
    fn reverse(&mut self, data: &TapeData<S>, num_inputs: usize, top: usize) {
        let consts = &data.consts[..];
        self.adjoints[..(top + 2) * LANES].fill(S::zero());
        self.adjoints[(top + 1) * LANES..(top + 2) * LANES].fill(S::one());
        let slot = |r: u32| {
            if r & CONST_BIT != 0 {
                0
            } else {
                (r as usize + 1) * LANES
            }
        };
        let (mut tx, mut tp) = ([S::zero(); LANES], [S::zero(); LANES]);
        for i in (num_inputs..=top).rev() {
            let Node { op, a, b } = data.nodes[i];
            let (below, rest) = self.adjoints.split_at_mut((i + 1) * LANES);
            let g: &[S; LANES] = rest[..LANES].try_into().expect("LANES adjoints");
            if g.iter().all(|&g| g.is_exact_zero()) {
                continue;
            }
            let values = &self.values[..];
            let y: &[S; LANES] = values[i * LANES..(i + 1) * LANES]
                .try_into()
                .expect("LANES values");
            let x = lanes(values, consts, a, &mut tx);
            let p = if matches!(op, Op::Sin | Op::Cos) {
                self.derivatives[i * LANES..(i + 1) * LANES]
                    .try_into()
                    .expect("LANES derivatives")
            } else if is_binary(op) {
                lanes(values, consts, b, &mut tp)
            } else {
                &tp
            };
            // Each lane adds straight to its operands' lanes: two disjoint arrays, or one and a
            // scratch array for a unary op or for `x * x`.
            let (ka, kb) = (slot(a), slot(b));
            let two = is_binary(op) && ka != kb;
            let mut scratch = [S::zero(); LANES];
            let (adj_a, adj_b) = if two {
                two_lanes(below, ka, kb)
            } else {
                let adj: &mut [S; LANES] = (&mut below[ka..ka + LANES])
                    .try_into()
                    .expect("LANES adjoints");
                (adj, &mut scratch)
            };
            with_op_hoisted!(op, [Add, Sub, Mul, Div, Neg, Sqrt, Sin, Cos], |o| {
                pull_lanes([g, y, x, p], adj_a, adj_b, |g, y, x, p| {
                    let (mut ca, mut cb) = (S::zero(), S::zero());
                    pull_op(
                        o,
                        b,
                        g,
                        y,
                        || x,
                        || p,
                        |second, c| {
                            if second {
                                cb = c
                            } else {
                                ca = c
                            }
                        },
                    );
                    (ca, cb)
                })
            });
            if is_binary(op) && !two {
                for (adj, &c) in adj_a.iter_mut().zip(&scratch) {
                    *adj += c;
                }
            }
        }
    }
}

/// `rule` (the contributions to operands `a` and `b`) in every lane, added to `adj_a` and
/// `adj_b`. Out of line on purpose: as a function of its own, its array arguments are known not
/// to overlap and the loop vectorises; inlined, that knowledge is lost and it runs lane by lane.
#[inline(never)]
fn pull_lanes<S: Real>(
    [g, y, x, p]: [&[S; LANES]; 4],
    adj_a: &mut [S; LANES],
    adj_b: &mut [S; LANES],
    rule: impl Fn(S, S, S, S) -> (S, S),
) {
    for l in 0..LANES {
        let (ca, cb) = rule(g[l], y[l], x[l], p[l]);
        adj_a[l] += ca;
        adj_b[l] += cb;
    }
}

/// `rule` in every lane (out of line for the reason given at [`pull_lanes`]).
#[inline(never)]
fn eval_lanes<S: Real>(
    x: &[S; LANES],
    p: &[S; LANES],
    out: &mut [S; LANES],
    rule: impl Fn(S, S) -> S,
) {
    for l in 0..LANES {
        out[l] = rule(x[l], p[l]);
    }
}

/// The lanes at `ka` and at `kb != ka`, borrowed together.
fn two_lanes<S>(adjoints: &mut [S], ka: usize, kb: usize) -> (&mut [S; LANES], &mut [S; LANES]) {
    let (lo, hi, swap) = if ka < kb {
        (ka, kb, false)
    } else {
        (kb, ka, true)
    };
    let (below, above) = adjoints.split_at_mut(hi);
    let first: &mut [S; LANES] = (&mut below[lo..lo + LANES]).try_into().expect("LANES");
    let second: &mut [S; LANES] = (&mut above[..LANES]).try_into().expect("LANES");
    if swap {
        (second, first)
    } else {
        (first, second)
    }
}

/// [`Backend::jacobian_batch`] on the tape: sets are taken `LANES` at a time and replayed
/// together; a set whose guards fail is recorded on its own (and when most of a chunk's sets
/// fail, the next chunks replay a recording of the first that failed).
pub(crate) fn jacobian_batch<S, A, Y, F, I>(
    tape: &Tape,
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
    let mut batch = batch;
    let mut signature = BatchSignature::default();
    let mut chunk: Vec<A> = Vec::with_capacity(LANES);
    let mut recording: Option<Recording<S, Y>> = None;
    let mut lanes: Option<Lanes<S>> = None;
    let mut done = 0;
    loop {
        chunk.clear();
        let mut mismatch = None;
        for args in batch.by_ref() {
            if let Err(e) = signature.check(&args) {
                mismatch = Some(e);
                break;
            }
            chunk.push(args);
            if chunk.len() == LANES {
                break;
            }
        }
        if chunk.is_empty() {
            return mismatch.map_or(Ok(()), Err);
        }
        if recording.is_none() {
            let rec = Recording::new(tape, f, &chunk[0])?;
            lanes = None;
            recording = Some(rec);
        }
        let rec = recording.as_ref().expect("recorded above");
        if !rec.replays_in_lanes() {
            for args in &chunk {
                let (value, jac) = tape.jacobian_at(f, args)?;
                sink(done, value, jac.view());
                done += 1;
            }
        } else {
            let data = rec.pb.data();
            let (num_inputs, outputs) = (rec.pb.num_inputs(), rec.pb.outputs());
            let (rows, columns) = (outputs.len(), rec.columns.len());
            let buf = lanes.get_or_insert_with(|| Lanes::new(data, rows, columns));
            // Lanes past the chunk's end repeat its first set, so they compute sane numbers.
            for l in 0..LANES {
                buf.load(&chunk[if l < chunk.len() { l } else { 0 }], l);
            }
            buf.forward(data, num_inputs);
            let holds: [bool; LANES] =
                std::array::from_fn(|l| l < chunk.len() && buf.guards_hold(data, l));
            let size = rows * columns;
            for (r, &o) in outputs.iter().enumerate() {
                if o == NO_INDEX {
                    for l in 0..LANES {
                        let row = l * size + r * columns;
                        buf.jacobians[row..row + columns].fill(S::zero());
                    }
                    continue;
                }
                buf.reverse(data, num_inputs, o as usize);
                for (c, &node) in rec.columns.iter().enumerate() {
                    let k = (node as usize + 1) * LANES;
                    let lanes = &buf.adjoints[k..k + LANES];
                    for (l, &adj) in lanes.iter().enumerate() {
                        buf.jacobians[l * size + r * columns + c] = adj;
                    }
                }
            }
            let jacobians = ArrayView3::from_shape((LANES, rows, columns), &buf.jacobians[..])
                .expect("one Jacobian per lane");
            for (l, args) in chunk.iter().enumerate() {
                if holds[l] {
                    let mut next = outputs.iter().zip(&rec.output_values);
                    let value = rec.output.rebuild(&mut || {
                        let (&o, &recorded) = next.next().expect("one value per output");
                        if o == NO_INDEX {
                            recorded
                        } else {
                            buf.values[o as usize * LANES + l]
                        }
                    });
                    sink(done, value, jacobians.index_axis(Axis(0), l));
                } else {
                    let (value, jac) = tape.jacobian_at(f, args)?;
                    sink(done, value, jac.view());
                }
                done += 1;
            }
            let holds = &holds[..chunk.len()];
            let failed = holds.iter().filter(|&&h| !h).count();
            if 2 * failed > chunk.len() {
                let first = holds.iter().position(|&h| !h).expect("a failed lane");
                recording = Some(Recording::new(tape, f, &chunk[first])?);
                lanes = None;
            }
        }
        if let Some(e) = mismatch {
            return Err(e);
        }
    }
}
