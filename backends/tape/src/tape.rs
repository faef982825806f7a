//! The per-thread tape: compact data records, the reverse sweep and replay.

use std::cmp::Ordering;
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};

use difi_core::{Error, Real, Result};

/// Marks an operand reference as an index into the constants rather than a node.
pub(crate) const CONST_BIT: u32 = 1 << 31;
/// The index of a tracer that is not on any tape.
pub(crate) const NO_INDEX: u32 = u32::MAX;
/// Largest number of nodes a tape can hold (indices need the top bit free).
pub(crate) const MAX_NODES: usize = (CONST_BIT - 1) as usize;

/// The kind of a record. Scalar ops keep their operands; partials are recomputed from stored
/// values in the reverse sweep, which is what makes replay for new inputs possible.
// Four bytes, not one: a `Node` then has no padding, the `Input` node is twelve zero bytes, and
// pushing a recording's inputs compiles to a memset (a gradient of x₀ x₉₉₉ over 1000 inputs
// 1.25 -> 1.13 µs, Rosenbrock's sum_map 4.27 -> 4.08 µs; ba's tape Jacobian 771 -> 784 ns a
// block).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Op {
    /// An active input. Inputs are pushed right after a recording begins, before any other
    /// node; the reverse sweep stops at the first one it meets.
    Input,
    /// An output slot of a special (array-level) node; its adjoint is read by the special.
    SpecialOutput,
    /// An array-level node; `a` indexes `specials`.
    Special,
    Add,
    Sub,
    Mul,
    Div,
    Neg,
    Sqrt,
    Exp,
    Exp2,
    Ln,
    Log2,
    Log10,
    /// `b` refers to the derivative `cos a`, a constant-pool entry made with the node.
    Sin,
    /// `b` refers to the derivative `−sin a`, as for `Sin`.
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Asinh,
    Acosh,
    Atanh,
    ExpM1,
    Ln1p,
    Cbrt,
    Recip,
    /// The logistic sigmoid ([`Real::logistic`]).
    Logistic,
    Abs,
    /// `b` holds the exponent as `i32` bits.
    Powi,
    Powf,
    Atan2,
    Hypot,
    Max,
    Min,
    /// Piecewise-constant ops: zero derivative, but recomputed on replay.
    Floor,
    Ceil,
    Round,
    Trunc,
    Signum,
    Fract,
    /// [`Real::stop_gradient`]: no derivative, but the value is recomputed on replay.
    StopGradient,
}

/// One record: 12 bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Node {
    pub op: Op,
    pub a: u32,
    pub b: u32,
}

/// An array-level node: one record whose pullback works on whole arrays.
pub(crate) trait Special<S: Real>: Send {
    /// Number of output slots following the node.
    fn num_outputs(&self) -> usize;
    /// Adds the input cotangents given the output cotangents `out_adj`.
    fn pullback(&self, values: &[S], consts: &[S], out_adj: &[S], adj: &mut [S]) -> Result<()>;
    /// Recomputes the outputs from (new) values into `out` (`num_outputs` long); `false` if this
    /// node cannot be replayed.
    fn replay(&self, values: &[S], consts: &[S], out: &mut [S]) -> bool;
    /// The operand references its pullback may add to.
    fn operands(&self, out: &mut Vec<u32>);
}

/// A comparison made on tracers while recording.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Guard {
    pub a: u32,
    pub b: u32,
    pub result: Option<Ordering>,
}

/// The records of one computation at base scalar `S`.
pub(crate) struct TapeData<S: Real> {
    pub epoch: u32,
    pub recording: bool,
    pub max_nodes: usize,
    pub nodes: Vec<Node>,
    pub values: Vec<S>,
    pub consts: Vec<S>,
    pub specials: Vec<Box<dyn Special<S>>>,
    pub guards: Vec<Guard>,
    pub error: Option<Error>,
    /// On a thread's own tape: the adjoint buffer of the last finished sweep, kept for the next
    /// ([`adjoint_buffer`]).
    pub spare_adjoint: Vec<S>,
    /// The recording read an active tracer's plain value ([`Real::innermost`]): a branch on it
    /// left no guard, so the recording is never replayed.
    pub unguarded_read: bool,
}

impl<S: Real> TapeData<S> {
    pub const fn new() -> Self {
        TapeData {
            epoch: 0,
            recording: false,
            max_nodes: MAX_NODES,
            nodes: Vec::new(),
            values: Vec::new(),
            consts: Vec::new(),
            specials: Vec::new(),
            guards: Vec::new(),
            error: None,
            spare_adjoint: Vec::new(),
            unguarded_read: false,
        }
    }

    pub fn fail(&mut self, e: Error) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// Bytes held by the records.
    pub fn bytes(&self) -> usize {
        self.nodes.len() * std::mem::size_of::<Node>()
            + (self.values.len() + self.consts.len()) * std::mem::size_of::<S>()
            + self.guards.len() * std::mem::size_of::<Guard>()
    }

    #[inline(always)]
    pub fn push(&mut self, op: Op, a: u32, b: u32, value: S) -> u32 {
        let i = self.nodes.len();
        if i >= self.max_nodes {
            return self.overflow();
        }
        self.nodes.push(Node { op, a, b });
        self.values.push(value);
        i as u32
    }

    /// Output slots `slot..` of the special node `head`, one `SpecialOutput` per value, pushed
    /// in bulk as [`TapeData::push_inputs`] does. Returns the first one's index; `NO_INDEX` if
    /// `head` is or they do not fit (the overflow error is kept).
    pub fn push_special_outputs(&mut self, head: u32, slot: u32, values: &[S]) -> u32 {
        let first = self.nodes.len();
        if head == NO_INDEX {
            return NO_INDEX;
        }
        if values.len() > self.max_nodes - first {
            return self.overflow();
        }
        self.nodes
            .extend((slot..slot + values.len() as u32).map(|k| Node {
                op: Op::SpecialOutput,
                a: head,
                b: k,
            }));
        self.values.extend_from_slice(values);
        first as u32
    }

    /// One `Input` node per value, pushed in bulk (a loop of [`TapeData::push`] reloads the
    /// lengths after every store). They are the recording's first nodes, so input `k` is node
    /// `k`. `false` (and the overflow error) if they do not fit.
    pub fn push_inputs(&mut self, xs: &[S]) -> bool {
        debug_assert!(
            self.nodes.is_empty(),
            "inputs are a recording's first nodes"
        );
        if xs.len() > self.max_nodes {
            self.overflow();
            return false;
        }
        let input = Node {
            op: Op::Input,
            a: 0,
            b: 0,
        };
        self.nodes.extend(std::iter::repeat_n(input, xs.len()));
        self.values.extend_from_slice(xs);
        true
    }

    /// A tracer used outside its recording: an error the running operator returns, or a panic
    /// when no recording is running to carry it. Out of line, off the hot path.
    #[cold]
    #[inline(never)]
    pub fn misuse(&mut self, what: &str) {
        let e = Error::TracerMisuse(what.into());
        if self.recording {
            self.fail(e);
        } else {
            panic!("{e}");
        }
    }

    #[cold]
    #[inline(never)]
    fn overflow(&mut self) -> u32 {
        self.fail(Error::TapeOverflow {
            capacity: self.max_nodes,
        });
        NO_INDEX
    }

    #[inline(always)]
    pub fn push_const(&mut self, c: S) -> u32 {
        let i = self.consts.len() as u32;
        self.consts.push(c);
        i | CONST_BIT
    }

    #[inline]
    pub fn value_of(&self, r: u32) -> S {
        operand_value(&self.values, &self.consts, r)
    }
}

#[inline]
pub(crate) fn operand_value<S: Real>(values: &[S], consts: &[S], r: u32) -> S {
    if r & CONST_BIT != 0 {
        consts[(r & !CONST_BIT) as usize]
    } else {
        values[r as usize]
    }
}

#[inline]
pub(crate) fn accumulate<S: Real>(adj: &mut [S], r: u32, g: S) {
    if r & CONST_BIT == 0 {
        adj[r as usize] += g;
    }
}

// Safety: every closure given to `with_tape` in this crate only moves data; user code (rule and
// segment clones, drops of leftover nodes) runs outside them.
difi_core::per_thread_state!(unsafe TapeData, with = with_tape);

static NEXT_EPOCH: AtomicU32 = AtomicU32::new(1);

/// Starts a recording on this thread's tape for `S`; returns its epoch.
pub(crate) fn begin<S: Real>(max_nodes: usize) -> Result<u32> {
    with_owner::<S, _>(|cell| {
        let mut t = cell.borrow_mut();
        if t.recording {
            return Err(Error::TracerMisuse(format!(
                "a recording over {} is already running on this thread; differentiate the inner \
                 function with its own arguments (nested differentiation uses a tracer over the \
                 outer tracer, not the same type)",
                std::any::type_name::<S>()
            )));
        }
        let mut epoch = NEXT_EPOCH.fetch_add(1, AtomicOrdering::Relaxed);
        if epoch == 0 {
            epoch = NEXT_EPOCH.fetch_add(1, AtomicOrdering::Relaxed);
        }
        // Keep the buffers a dropped recording gave back: no allocation, no page faults.
        t.nodes.clear();
        t.values.clear();
        t.consts.clear();
        // Array nodes hold user rules: any left are dropped after the borrow ends, so no user
        // code runs while the tape is borrowed (`with_tape` relies on it).
        let stale: Vec<_> = t.specials.drain(..).collect();
        t.guards.clear();
        t.error = None;
        t.unguarded_read = false;
        t.epoch = epoch;
        t.recording = true;
        t.max_nodes = max_nodes.min(MAX_NODES);
        drop(t);
        drop(stale);
        set_recording(Some(cell));
        Ok(epoch)
    })
}

/// Ends the recording and takes its records off the thread.
pub(crate) fn end<S: Real>() -> TapeData<S> {
    with_owner::<S, _>(|cell| {
        set_recording::<S>(None);
        let mut t = cell.borrow_mut();
        let mut data = std::mem::replace(&mut *t, TapeData::new());
        // The spare adjoint buffer stays with the thread, for this recording's sweeps.
        t.spare_adjoint = std::mem::take(&mut data.spare_adjoint);
        data.recording = false;
        data
    })
}

/// Gives a finished recording's buffers back to this thread's tape for `S`, unless a
/// recording is running there or the thread is exiting.
pub(crate) fn recycle<S: Real>(mut data: TapeData<S>) {
    data.specials.clear();
    try_with_owner::<S, _>(|cell| {
        if let Ok(mut t) = cell.try_borrow_mut() {
            if !t.recording && t.nodes.capacity() < data.nodes.capacity() {
                std::mem::swap(&mut t.nodes, &mut data.nodes);
                std::mem::swap(&mut t.values, &mut data.values);
                std::mem::swap(&mut t.consts, &mut data.consts);
                std::mem::swap(&mut t.guards, &mut data.guards);
            }
        }
    });
}

/// A zeroed adjoint buffer of `len` slots, this thread's spare one when there is one: a sweep
/// over millions of nodes would otherwise fault in fresh pages every time (glibc maps
/// allocations above 32 MB anew each time).
pub(crate) fn adjoint_buffer<S: Real>(len: usize) -> Vec<S> {
    let mut adj = try_with_owner::<S, _>(|cell| {
        cell.try_borrow_mut()
            .map(|mut t| std::mem::take(&mut t.spare_adjoint))
            .unwrap_or_default()
    })
    .unwrap_or_default();
    adj.clear();
    adj.resize(len, S::zero());
    adj
}

/// Keeps `adj` as this thread's spare adjoint buffer if it is larger than the one there.
pub(crate) fn give_back_adjoint<S: Real>(adj: Vec<S>) {
    try_with_owner::<S, _>(|cell| {
        if let Ok(mut t) = cell.try_borrow_mut() {
            if t.spare_adjoint.capacity() < adj.capacity() {
                t.spare_adjoint = adj;
            }
        }
    });
}

/// Ends a recording on drop, so a panic in user code leaves the thread's tape usable.
pub(crate) struct RecordingGuard<S: Real> {
    active: bool,
    _s: std::marker::PhantomData<S>,
}

impl<S: Real> RecordingGuard<S> {
    pub fn new() -> Self {
        RecordingGuard {
            active: true,
            _s: std::marker::PhantomData,
        }
    }
    pub fn finish(mut self) -> TapeData<S> {
        self.active = false;
        end::<S>()
    }
}

impl<S: Real> Drop for RecordingGuard<S> {
    fn drop(&mut self) {
        if self.active {
            end::<S>();
        }
    }
}

/// The reverse sweep over nodes `0..end`: `adj` holds seeds on entry and all adjoints on exit.
/// Nodes at `end` and after cannot reach a seed below `end`, so they are skipped.
pub(crate) fn sweep<S: Real>(data: &TapeData<S>, adj: &mut [S], end: usize) -> Result<()> {
    let (values, consts) = (&data.values[..], &data.consts[..]);
    let mut i = end;
    while i > 0 {
        i -= 1;
        let Node { op, a, .. } = data.nodes[i];
        match op {
            // The inputs are the recording's first nodes: nothing below needs a sweep.
            Op::Input => {
                debug_assert!(data.nodes[..i].iter().all(|n| n.op == Op::Input));
                break;
            }
            // Output slots follow their node's head: go straight to it (an array node's
            // millions of slots are not visited one by one).
            Op::SpecialOutput => i = a as usize + 1,
            Op::Special => {
                let s = &data.specials[a as usize];
                let m = s.num_outputs();
                let (head, tail) = adj.split_at_mut(i + 1);
                s.pullback(values, consts, &tail[..m], head)?;
            }
            _ => sweep_node(data, adj, i),
        }
    }
    Ok(())
}

/// Propagates the adjoint of scalar node `i` to its operands.
#[inline(always)]
fn sweep_node<S: Real>(data: &TapeData<S>, adj: &mut [S], i: usize) {
    let (values, consts) = (&data.values[..], &data.consts[..]);
    let v = |r: u32| operand_value(values, consts, r);
    let Node { op, a, b } = data.nodes[i];
    // A node off every seeded output's path adds nothing, even where a partial is infinite.
    if adj[i].is_exact_zero() {
        return;
    }
    // For `Sin` and `Cos`, `b` refers to the recorded derivative: `p()` reads it.
    pull_op(
        op,
        b,
        adj[i],
        values[i],
        || v(a),
        || v(b),
        |second, g| accumulate(adj, if second { b } else { a }, g),
    );
}

/// The adjoint rule of scalar op `op`: given the node's adjoint `g`, its value `y`, its
/// operands' values `x()` and `p()` (read only where the rule needs them; for `Sin` and `Cos`,
/// `p()` is the derivative recorded with the node) and its immediate `b`, calls
/// `give(false, ·)` with what it adds to operand `a`'s adjoint and `give(true, ·)` with what
/// it adds to operand `b`'s, each at most once. The dense sweep and the batched replay share it.
#[inline(always)]
pub(crate) fn pull_op<S: Real>(
    op: Op,
    b: u32,
    g: S,
    y: S,
    x: impl Fn() -> S,
    p: impl Fn() -> S,
    mut give: impl FnMut(bool, S),
) {
    let one = S::one();
    match op {
        Op::Add => {
            give(false, g);
            give(true, g);
        }
        Op::Sub => {
            give(false, g);
            give(true, -g);
        }
        Op::Mul => {
            give(false, g * p());
            give(true, g * x());
        }
        Op::Div => {
            let d = p();
            give(false, g / d);
            give(true, -g * y / d);
        }
        Op::Neg => give(false, -g),
        Op::Sqrt => give(false, g / (y + y)),
        Op::Exp => give(false, g * y),
        Op::Exp2 => give(false, g * y * S::LN_2()),
        Op::Ln => give(false, g / x()),
        Op::Log2 => give(false, g / (x() * S::LN_2())),
        Op::Log10 => give(false, g / (x() * S::LN_10())),
        // `b` refers to the derivative, recorded with the node.
        Op::Sin | Op::Cos => give(false, g * p()),
        Op::Tan => give(false, g * (one + y * y)),
        Op::Asin => {
            let x = x();
            give(false, g / (one - x * x).sqrt())
        }
        Op::Acos => {
            let x = x();
            give(false, -g / (one - x * x).sqrt())
        }
        Op::Atan => {
            let x = x();
            give(false, g / (one + x * x))
        }
        Op::Sinh => give(false, g * x().cosh()),
        Op::Cosh => give(false, g * x().sinh()),
        Op::Tanh => give(false, g * (one - y * y)),
        Op::Asinh => {
            let x = x();
            give(false, g / (x * x + one).sqrt())
        }
        Op::Acosh => {
            let x = x();
            give(false, g / (x * x - one).sqrt())
        }
        Op::Atanh => {
            let x = x();
            give(false, g / (one - x * x))
        }
        Op::ExpM1 => give(false, g * (y + one)),
        Op::Ln1p => give(false, g / (one + x())),
        Op::Cbrt => give(false, g / (S::constant(3.0) * y * y)),
        Op::Recip => give(false, -g * y * y),
        Op::Logistic => give(false, g * y * (one - y)),
        Op::Abs => {
            let x = x();
            let s = if x > S::zero() {
                one
            } else if x < S::zero() {
                -one
            } else {
                S::zero()
            };
            give(false, g * s)
        }
        Op::Powi => {
            let n = b as i32;
            let d = if n == 0 {
                S::zero()
            } else {
                S::constant(n as f64) * x().powi(n - 1)
            };
            give(false, g * d)
        }
        Op::Powf => {
            let (x, p) = (x(), p());
            // Shortcuts for exact zeros only: a zero value that carries a derivative one level
            // down (forward-over-reverse, nesting) must go through the formula.
            let dx = if p.is_exact_zero() {
                S::zero()
            } else {
                p * x.powf(p - one)
            };
            give(false, g * dx);
            if b & CONST_BIT == 0 {
                let dp = if y.is_exact_zero() {
                    S::zero()
                } else {
                    y * x.ln()
                };
                give(true, g * dp);
            }
        }
        Op::Atan2 => {
            let (yy, xx) = (x(), p());
            let r2 = xx * xx + yy * yy;
            if r2 != S::zero() {
                give(false, g * xx / r2);
                give(true, -g * yy / r2);
            }
        }
        Op::Hypot => {
            if y != S::zero() {
                give(false, g * x() / y);
                give(true, g * p() / y);
            }
        }
        Op::Max => {
            if x() >= p() {
                give(false, g)
            } else {
                give(true, g)
            }
        }
        Op::Min => {
            if x() <= p() {
                give(false, g)
            } else {
                give(true, g)
            }
        }
        Op::Fract => give(false, g),
        Op::Floor | Op::Ceil | Op::Round | Op::Trunc | Op::Signum | Op::StopGradient => {}
        Op::Input | Op::SpecialOutput | Op::Special => unreachable!(),
    }
}

/// The reverse sweep restricted to the dependency cone of the seeded nodes: nodes are visited
/// from the highest pending index down, so a Jacobian row costs what its output depends on
/// (plus a scan of one bit per node between them), not the whole tape. `adj` must be zero
/// except at the seeds; on exit it is zero except at the indices left in `touched`.
/// `pending` is a bit set over the tape (`(len + 63) / 64` words), all clear on entry and exit.
pub(crate) fn sweep_cone<S: Real>(
    data: &TapeData<S>,
    adj: &mut [S],
    pending: &mut [u64],
    seeds: &[u32],
    touched: &mut Vec<u32>,
) -> Result<()> {
    touched.clear();
    // Operands are always below the node that uses them, so the highest pending index only
    // falls: a cursor scanning the bit set downward replaces a priority queue.
    let mark = |r: u32, pending: &mut [u64]| {
        if r & CONST_BIT == 0 {
            pending[r as usize / 64] |= 1 << (r % 64);
        }
    };
    for &s in seeds {
        mark(s, pending);
    }
    let mut operands = Vec::new();
    let mut word = match seeds.iter().filter(|&&s| s & CONST_BIT == 0).max() {
        Some(&t) => t as usize / 64,
        None => return Ok(()),
    };
    loop {
        // The highest pending bit at or below the cursor's word.
        while pending[word] == 0 {
            if word == 0 {
                return Ok(());
            }
            word -= 1;
        }
        let bit = 63 - pending[word].leading_zeros() as usize;
        pending[word] &= !(1 << bit);
        let i = word * 64 + bit;
        touched.push(i as u32);
        let Node { op, a, b } = data.nodes[i];
        match op {
            Op::Input => continue,
            Op::SpecialOutput => {
                mark(a, pending);
                continue;
            }
            Op::Special => {
                let sp = &data.specials[a as usize];
                let m = sp.num_outputs();
                let (head, tail) = adj.split_at_mut(i + 1);
                sp.pullback(&data.values, &data.consts, &tail[..m], head)?;
                operands.clear();
                sp.operands(&mut operands);
                for &r in &operands {
                    mark(r, pending);
                }
                continue;
            }
            _ => {}
        }
        // One scalar node: reuse the dense sweep's arithmetic on a one-node range.
        sweep_node(data, adj, i);
        mark(a, pending);
        if is_binary(op) {
            mark(b, pending);
        }
    }
}

/// Value and derivative of a `Sin` or `Cos` node at `x`, from one `sin_cos`.
#[inline]
pub(crate) fn sin_cos_node<S: Real>(op: Op, x: S) -> (S, S) {
    let (s, c) = x.sin_cos();
    if op == Op::Sin {
        (s, c)
    } else {
        (c, -s)
    }
}

/// Recomputes one scalar op's value from its operands, and the derivative a `Sin` or `Cos`
/// node keeps in `consts`, which changes with `x` too.
#[inline(always)]
pub(crate) fn eval_op<S: Real>(op: Op, x: S, p: S, b: u32, consts: &mut [S]) -> S {
    match op {
        Op::Add => x + p,
        Op::Sub => x - p,
        Op::Mul => x * p,
        Op::Div => x / p,
        Op::Neg => -x,
        Op::Sqrt => x.sqrt(),
        Op::Exp => x.exp(),
        Op::Exp2 => x.exp2(),
        Op::Ln => x.ln(),
        Op::Log2 => x.log2(),
        Op::Log10 => x.log10(),
        Op::Sin | Op::Cos => {
            let (y, d) = sin_cos_node(op, x);
            consts[(b & !CONST_BIT) as usize] = d;
            y
        }
        Op::Tan => x.tan(),
        Op::Asin => x.asin(),
        Op::Acos => x.acos(),
        Op::Atan => x.atan(),
        Op::Sinh => x.sinh(),
        Op::Cosh => x.cosh(),
        Op::Tanh => x.tanh(),
        Op::Asinh => x.asinh(),
        Op::Acosh => x.acosh(),
        Op::Atanh => x.atanh(),
        Op::ExpM1 => x.exp_m1(),
        Op::Ln1p => x.ln_1p(),
        Op::Cbrt => x.cbrt(),
        Op::Recip => x.recip(),
        Op::Logistic => x.logistic(),
        Op::Abs => x.abs(),
        Op::Powi => x.powi(b as i32),
        Op::Powf => x.powf(p),
        Op::Atan2 => x.atan2(p),
        Op::Hypot => x.hypot(p),
        Op::Max => {
            if x >= p {
                x
            } else {
                p
            }
        }
        Op::Min => {
            if x <= p {
                x
            } else {
                p
            }
        }
        Op::Floor => x.floor(),
        Op::Ceil => x.ceil(),
        Op::Round => x.round(),
        Op::Trunc => x.trunc(),
        Op::Signum => x.signum(),
        Op::Fract => x.fract(),
        Op::StopGradient => x.stop_gradient(),
        Op::Input | Op::SpecialOutput | Op::Special => unreachable!("not a scalar op"),
    }
}

/// True for ops whose `b` is an operand (not an immediate).
pub(crate) fn is_binary(op: Op) -> bool {
    matches!(
        op,
        Op::Add
            | Op::Sub
            | Op::Mul
            | Op::Div
            | Op::Powf
            | Op::Atan2
            | Op::Hypot
            | Op::Max
            | Op::Min
    )
}

/// Recomputes every value for new inputs. Returns false if the guards or a special node say
/// the recording does not apply to these inputs.
pub(crate) fn replay<S: Real>(data: &mut TapeData<S>, new_inputs: &[S]) -> bool {
    if data.unguarded_read {
        return false;
    }
    // The inputs are the first nodes.
    data.values[..new_inputs.len()].copy_from_slice(new_inputs);
    let mut i = 0;
    while i < data.nodes.len() {
        let Node { op, a, b } = data.nodes[i];
        match op {
            Op::Input | Op::SpecialOutput => {}
            Op::Special => {
                // The outputs follow the node: written in place, then skipped.
                let s = &data.specials[a as usize];
                let outputs = s.num_outputs();
                let (before, after) = data.values.split_at_mut(i + 1);
                if !s.replay(before, &data.consts, &mut after[..outputs]) {
                    return false;
                }
                i += outputs;
            }
            _ => {
                let x = data.value_of(a);
                let p = if is_binary(op) {
                    data.value_of(b)
                } else {
                    S::zero()
                };
                data.values[i] = eval_op(op, x, p, b, &mut data.consts);
            }
        }
        i += 1;
    }
    data.guards.iter().all(|g| {
        let (x, y) = (data.value_of(g.a), data.value_of(g.b));
        x.partial_cmp(&y) == g.result
    })
}
