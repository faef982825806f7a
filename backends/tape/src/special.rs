//! Array-level nodes: sum, sums and maps of elementwise functions, dot, matrix products, custom
//! rules, hooks and checkpoints. Each is one record with an array-level pullback; constant
//! operands get no adjoint work.

use std::borrow::Cow;

use difi_core::{
    check_pullback, elementwise_len, map_by_index, sum_map_by_index, Elementwise, Hook, Real,
    Result, Rule, Segment,
};
use ndarray::{Array1, Array2, ArrayD, ArrayView1, ArrayView2, ArrayViewD, IxDyn};

use crate::tape::{
    accumulate, operand_value, with_tape, Op, Special, TapeData, CONST_BIT, NO_INDEX,
};
use crate::var::Var;

fn any_active<S: Real>(xs: impl IntoIterator<Item = Var<S>>) -> bool {
    xs.into_iter().any(|v| v.is_active())
}

/// Pushes `special` and one output slot per value; returns the output tracers.
fn push_special<S: Real>(special: Box<dyn Special<S>>, outputs: &[S]) -> Vec<Var<S>> {
    with_tape::<S, _>(|t| {
        let head = t.push(Op::Special, t.specials.len() as u32, 0, S::zero());
        t.specials.push(special);
        let first = t.push_special_outputs(head, 0, outputs);
        tracers_of_slots(outputs, first, t.epoch)
    })
}

/// The tracers of consecutive output slots from `first` (`NO_INDEX`: none were pushed).
fn tracers_of_slots<S: Real>(values: &[S], first: u32, epoch: u32) -> Vec<Var<S>> {
    let index = |k: usize| match first {
        NO_INDEX => NO_INDEX,
        first => first + k as u32,
    };
    values
        .iter()
        .enumerate()
        .map(|(k, &value)| Var {
            value,
            index: index(k),
            epoch,
        })
        .collect()
}

/// Pushes `special` and one output slot per element of `outputs`, and returns them as arrays
/// of the same shapes (built in place: these can be millions of elements).
fn push_special_arrays<S: Real>(
    special: Box<dyn Special<S>>,
    outputs: &[ArrayD<S>],
) -> Vec<ArrayD<Var<S>>> {
    with_tape::<S, _>(|t| {
        let head = t.push(Op::Special, t.specials.len() as u32, 0, S::zero());
        t.specials.push(special);
        let mut slot = 0;
        outputs
            .iter()
            .map(|o| {
                // Slots in logical (row-major) order, as the pullback reads them back; memory
                // order differs for non-standard layouts.
                let values: Cow<'_, [S]> = match o.as_slice() {
                    Some(s) => s.into(),
                    None => o.iter().copied().collect::<Vec<_>>().into(),
                };
                let first = t.push_special_outputs(head, slot, &values);
                slot += values.len() as u32;
                let vars = tracers_of_slots(&values, first, t.epoch);
                ArrayD::from_shape_vec(o.raw_dim(), vars).expect("shape")
            })
            .collect()
    })
}

/// What an array op says of a tracer from another (or a finished) computation.
const STALE: &str = "a tracer from another computation reached an array operation (keep \
    tracers inside the differentiated closure)";

/// Operand references of an array operand. Kept as an arithmetic progression while they form
/// one, as the elements of an input, of one node's outputs, or of an elementwise map that
/// records a fixed number of nodes per element do: three numbers instead of one per element,
/// and a pullback adds to a strided slice of adjoints.
#[derive(Clone, Debug)]
enum Refs {
    Strided {
        start: u32,
        len: u32,
        stride: u32,
    },
    /// Runs of consecutive nodes, as an operand concatenated from slices of inputs and of node
    /// outputs (`[x₀, y…]`) has: per run its first node and the number of references up to its
    /// end (so the run of reference `i` is a binary search away), and a pullback adds to
    /// contiguous slices of adjoints.
    Runs(Vec<(u32, u32)>),
    List(Vec<u32>),
}

impl Default for Refs {
    fn default() -> Self {
        Refs::Strided {
            start: 0,
            len: 0,
            stride: 1,
        }
    }
}

impl Refs {
    #[inline(always)]
    fn push(&mut self, r: u32) {
        match self {
            Refs::Strided { start, len, .. } if *len == 0 && r & CONST_BIT == 0 => {
                (*start, *len) = (r, 1);
            }
            Refs::Strided { start, len, stride }
                if *len == 1 && r > *start && r & CONST_BIT == 0 =>
            {
                (*stride, *len) = (r - *start, 2);
            }
            Refs::Strided { start, len, stride } if *len > 1 && r == *start + *len * *stride => {
                *len += 1
            }
            Refs::Strided { .. } | Refs::Runs(_) => {
                let mut list: Vec<u32> = self.iter().collect();
                list.push(r);
                *self = Refs::List(list);
            }
            Refs::List(list) => list.push(r),
        }
    }

    /// The `i`-th reference.
    fn at(&self, i: usize) -> u32 {
        match self {
            Refs::Strided { start, stride, .. } => start + i as u32 * stride,
            Refs::Runs(runs) => run_of(runs, i).0 as u32,
            Refs::List(list) => list[i],
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Refs::Strided { len, .. } => *len == 0,
            Refs::Runs(runs) => runs.is_empty(),
            Refs::List(list) => list.is_empty(),
        }
    }

    /// The references in order.
    fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        let ((start, len, stride), runs, list) = match self {
            Refs::Strided { start, len, stride } => ((*start, *len, *stride), &[][..], &[][..]),
            Refs::Runs(runs) => ((0, 0, 1), &runs[..], &[][..]),
            Refs::List(list) => ((0, 0, 1), &[][..], &list[..]),
        };
        (0..len)
            .map(move |k| start + k * stride)
            .chain(run_ranges(runs).flatten())
            .chain(list.iter().copied())
    }

    /// Adds `g` (in order) to the adjoints of the referenced nodes.
    fn accumulate<S: Real>(&self, adj: &mut [S], g: impl IntoIterator<Item = S>) {
        match self {
            Refs::Strided { start, len, stride } if *len > 0 => {
                let (start, len, stride) = (*start as usize, *len as usize, *stride as usize);
                adj[start..=start + (len - 1) * stride]
                    .iter_mut()
                    .step_by(stride)
                    .zip(g)
                    .for_each(|(a, g)| *a += g);
            }
            Refs::Strided { .. } => {}
            Refs::Runs(runs) => {
                let mut g = g.into_iter();
                for run in run_ranges(runs) {
                    let run = &mut adj[run.start as usize..run.end as usize];
                    run.iter_mut().zip(g.by_ref()).for_each(|(a, g)| *a += g);
                }
            }
            Refs::List(list) => list.iter().zip(g).for_each(|(&r, g)| accumulate(adj, r, g)),
        }
    }
}

/// The node ranges of [`Refs::Runs`], in order.
fn run_ranges(runs: &[(u32, u32)]) -> impl Iterator<Item = std::ops::Range<u32>> + '_ {
    runs.iter().scan(0, |begin, &(start, end)| {
        let len = end - std::mem::replace(begin, end);
        Some(start..start + len)
    })
}

/// The node of reference `i` of [`Refs::Runs`], and the number of references up to the end of
/// its run: references `i..end` are consecutive nodes.
#[inline]
fn run_of(runs: &[(u32, u32)], i: usize) -> (usize, usize) {
    let k = runs.partition_point(|&(_, end)| end as usize <= i);
    let begin = k.checked_sub(1).map_or(0, |k| runs[k].1 as usize);
    (runs[k].0 as usize + i - begin, runs[k].1 as usize)
}

/// The references of `xs` when every one is an active tracer of recording `epoch` and their
/// indices form an arithmetic progression (inputs, one node's outputs, a map recording k nodes
/// per element), found in one pass without branches per element; `None` otherwise.
fn progression<S: Real>(xs: impl Iterator<Item = Var<S>> + Clone, epoch: u32) -> Option<Refs> {
    let mut it = xs.clone();
    let start = it.next()?.index;
    let stride = match it.next() {
        Some(second) if second.index > start => second.index - start,
        Some(_) => return None,
        None => 1,
    };
    // Differences OR-ed together: no compares in the loop, and one check after it.
    let (mut expect, mut differs, mut len) = (start, 0u32, 0u32);
    for x in xs {
        differs |= (x.index ^ expect) | (x.epoch ^ epoch);
        expect = expect.wrapping_add(stride);
        len += 1;
    }
    // The last index below CONST_BIT: every one is a node, none a constant or NO_INDEX.
    let last = start as u64 + (len as u64 - 1) * stride as u64;
    (differs == 0 && last < CONST_BIT as u64).then_some(Refs::Strided { start, len, stride })
}

/// The references of `xs` as [`Refs::Runs`] when every one is an active tracer of recording
/// `epoch` and they form at most one run of consecutive nodes per eight elements (so a list that
/// merely has some neighbours stays a list); `None` otherwise.
fn runs<S: Real>(mut xs: impl Iterator<Item = Var<S>>, epoch: u32) -> Option<Refs> {
    let most = xs.size_hint().0.div_ceil(8);
    let first = xs.next()?;
    // Mismatches OR-ed together and checked once, as in `progression`: a branch only where a
    // run ends.
    let mut differs = (first.epoch ^ epoch) | (first.index & CONST_BIT);
    let (mut runs, mut start, mut end) = (Vec::new(), first.index, first.index.wrapping_add(1));
    let mut count = 1;
    for x in xs {
        differs |= (x.epoch ^ epoch) | (x.index & CONST_BIT);
        if x.index != end {
            // Already too many with this one: a scattered list stops here.
            if runs.len() == most {
                return None;
            }
            runs.push((start, count));
            start = x.index;
        }
        end = x.index.wrapping_add(1);
        count += 1;
    }
    runs.push((start, count));
    (differs == 0 && runs.len() <= most).then_some(Refs::Runs(runs))
}

/// Operand references for tracers (constants go to the constant pool), checking epochs.
fn refs<S: Real>(t: &mut TapeData<S>, xs: impl Iterator<Item = Var<S>> + Clone) -> Refs {
    // A concatenation shows in its first three references (`[x₀, y₀, y₁, …]`): skip the pass
    // that would find it is not one progression.
    let mut head = xs.clone().map(|x| x.index);
    let concatenated = match (head.next(), head.next(), head.next()) {
        (Some(a), Some(b), Some(c)) => b.wrapping_sub(a) != c.wrapping_sub(b),
        _ => false,
    };
    if !concatenated {
        if let Some(refs) = progression(xs.clone(), t.epoch) {
            return refs;
        }
    }
    if let Some(refs) = runs(xs.clone(), t.epoch) {
        return refs;
    }
    // Neither: a plain list, in one pass.
    Refs::List(
        xs.map(|v| {
            if v.is_active() {
                if v.epoch != t.epoch {
                    t.misuse(STALE);
                }
                v.index
            } else {
                t.push_const(v.value)
            }
        })
        .collect(),
    )
}

// ---- sum ----

/// `Σ x`: references of the active elements, and the constant elements' sum (fixed for the
/// recording) as one constant-pool reference.
struct SumNode {
    refs: Refs,
    constant: u32,
}

impl<S: Real> Special<S> for SumNode {
    fn operands(&self, out: &mut Vec<u32>) {
        out.extend(self.refs.iter());
    }
    fn num_outputs(&self) -> usize {
        1
    }
    fn pullback(&self, _v: &[S], _c: &[S], out: &[S], adj: &mut [S]) -> Result<()> {
        let g = out[0];
        self.refs.accumulate(adj, std::iter::repeat(g));
        Ok(())
    }
    fn replay(&self, v: &[S], c: &[S], out: &mut [S]) -> bool {
        let active = self
            .refs
            .iter()
            .fold(S::zero(), |s, r| s + operand_value(v, c, r));
        out[0] = active + operand_value(v, c, self.constant);
        true
    }
}

pub(crate) fn sum<S: Real>(xs: ArrayView1<'_, Var<S>>) -> Var<S> {
    // One pass: the value in order (as the primal sums), the active elements' references, and
    // the constants' sum, which is fixed for this recording.
    let (value, node) = with_tape::<S, _>(|t| {
        if let Some(refs) = progression(xs.iter().copied(), t.epoch) {
            let value = xs.iter().fold(S::zero(), |s, x| s + x.value);
            let constant = t.push_const(S::zero());
            return (value, Some(SumNode { refs, constant }));
        }
        let (mut value, mut constant) = (S::zero(), S::zero());
        let mut refs = Refs::default();
        let mut stale = false;
        for x in xs.iter() {
            value += x.value;
            if x.is_active() {
                stale |= x.epoch != t.epoch;
                refs.push(x.index);
            } else {
                constant += x.value;
            }
        }
        if stale {
            t.misuse(STALE);
        }
        if refs.is_empty() {
            return (value, None);
        }
        let constant = t.push_const(constant);
        (value, Some(SumNode { refs, constant }))
    });
    match node {
        Some(node) => push_special(Box::new(node), &[value])[0],
        None => Var::constant_of(value),
    }
}

// ---- dot and matrix products ----

/// An array operand of a product node. A constant operand is kept as its values, once, so it
/// costs no references and no adjoint work ("Const costs nothing" at array level); an operand
/// with any active element is kept as references (its constant elements go to the pool), so a
/// replay reads its new values.
enum Operand<S> {
    Const(Vec<S>),
    Active(Refs),
}

impl<S: Real> Operand<S> {
    /// Records `xs` (in logical order) as an operand; `values` are their values and `active`
    /// whether any is active ([`values_and_activity`]), taken by value so a constant operand
    /// moves in without a copy. An active operand's values are not kept (they may be empty).
    fn record(t: &mut TapeData<S>, xs: &[Var<S>], (values, active): (Vec<S>, bool)) -> Self {
        if active {
            Operand::Active(refs(t, xs.iter().copied()))
        } else {
            Operand::Const(values)
        }
    }

    fn is_active(&self) -> bool {
        matches!(self, Operand::Active(_))
    }

    /// The operand's current values: held, or read from the tape (new after a replay).
    fn values<'a>(&'a self, v: &'a [S], c: &[S]) -> Cow<'a, [S]> {
        if let Some(x) = self.contiguous_values(v) {
            return x.into();
        }
        match self {
            Operand::Const(_) => unreachable!("a constant is one slice"),
            Operand::Active(Refs::Runs(runs)) => {
                let mut values = Vec::with_capacity(runs.last().map_or(0, |r| r.1 as usize));
                for run in run_ranges(runs) {
                    values.extend_from_slice(&v[run.start as usize..run.end as usize]);
                }
                values.into()
            }
            Operand::Active(r) => r
                .iter()
                .map(|r| operand_value(v, c, r))
                .collect::<Vec<_>>()
                .into(),
        }
    }

    /// The operand's current values where they are one slice: held (a constant) or consecutive
    /// nodes (an input, one node's outputs).
    fn contiguous_values<'a>(&'a self, v: &'a [S]) -> Option<&'a [S]> {
        match self {
            Operand::Const(x) => Some(x),
            &Operand::Active(Refs::Strided {
                start,
                len,
                stride: 1,
            }) => Some(&v[start as usize..(start + len) as usize]),
            Operand::Active(_) => None,
        }
    }

    fn operands(&self, out: &mut Vec<u32>) {
        if let Operand::Active(r) = self {
            out.extend(r.iter());
        }
    }

    /// Adds `g` (in the operand's logical order) to the adjoints of its active elements.
    fn add_adjoint(&self, adj: &mut [S], g: impl IntoIterator<Item = S>) {
        if let Operand::Active(r) = self {
            r.accumulate(adj, g);
        }
    }
}

/// The values of tracers, and whether any is active (operands can be large: slices, so both
/// loops run at memory speed).
fn values_and_activity<S: Real>(xs: &[Var<S>]) -> (Vec<S>, bool) {
    (
        xs.iter().map(|x| x.value).collect(),
        xs.iter().any(|x| x.is_active()),
    )
}

// ---- elementwise functions: sums and maps ----

/// `Σ_i f(x₀[i], …)` (`summed`) or `[f(x₀[i], …)]`: `f` and the operands. The pullback
/// differentiates `f` element by element on duals with one lane per active operand, from the
/// operands' current values, so a replay needs nothing renewed.
struct ElementwiseNode<S, F, const N: usize> {
    f: F,
    operands: [Operand<S>; N],
    len: usize,
    summed: bool,
}

impl<S: Real, F: Elementwise<N>, const N: usize> ElementwiseNode<S, F, N> {
    fn values<'a>(&'a self, v: &'a [S], c: &[S]) -> [Cow<'a, [S]>; N] {
        self.operands.each_ref().map(|o| o.values(v, c))
    }

    /// The operands' cotangents at element `i`, `g` arriving there. With `SKIP_ZERO` (a map,
    /// whose elements each have their own cotangent), an element no output uses adds nothing,
    /// even where a partial is infinite; a sum's one cotangent is checked once instead.
    #[inline(always)]
    fn element_cotangents<const SKIP_ZERO: bool>(
        &self,
        values: [&[S]; N],
        needed: [bool; N],
        i: usize,
        g: S,
    ) -> [S; N] {
        if SKIP_ZERO && g.is_exact_zero() {
            return [S::zero(); N];
        }
        let x = values.map(|x| x[i]);
        let (_, gradient) = self.f.value_and_gradient(x, needed);
        gradient.map(|d| d * g)
    }

    /// Adds to `adj` the operands' cotangents when every operand is active, `out` holding the
    /// cotangents of the outputs (one if summed). A chunk's partials are computed in one loop
    /// the compiler vectorizes, as the mask of needed partials is then a constant, and added to
    /// each operand's adjoints after it. Element by element (with the mask known only at run
    /// time) the loop stayed scalar: ode's gradient spent half its time there.
    fn pull_back_in_chunks(&self, v: &[S], c: &[S], adj: &mut [S], out: &[S]) {
        let mut operands = ChunkedOperands::new(self, v);
        let refs = self.operands.each_ref().map(|o| match o {
            Operand::Active(r) => r,
            Operand::Const(_) => unreachable!("every operand is active here"),
        });
        let mut partials = [[S::zero(); CHUNK]; N];
        let mut lo = 0;
        while lo < self.len {
            let hi = operands.end(lo);
            let cotangents = match self.summed {
                true => Cotangents::One(out[0]),
                false => Cotangents::Each(&out[lo..hi]),
            };
            let values = operands.values(v, c, (lo, hi));
            // An element no output uses adds nothing, even where a partial is infinite: such a
            // chunk goes element by element.
            if let Cotangents::Each(g) = cotangents {
                if g.iter().fold(false, |zero, g| zero | g.is_exact_zero()) {
                    self.pull_back_elements(values, refs, lo, g, adj);
                    lo = hi;
                    continue;
                }
            }
            partials_of(&self.f, values, &mut partials);
            for (r, partials) in refs.iter().zip(&partials) {
                add_scaled(adj, r, lo, &partials[..hi - lo], cotangents);
            }
            lo = hi;
        }
    }

    /// [`ElementwiseNode::pull_back_in_chunks`] for the chunk of elements from `lo` with
    /// values `values` and cotangents `g`, some exactly zero: element by element, skipping
    /// those. Out of line and cold: inlined, a small change to it moved Rosenbrock's sum_map
    /// gradient from 3.45 to 3.9 µs.
    #[cold]
    #[inline(never)]
    fn pull_back_elements(
        &self,
        values: [&[S]; N],
        refs: [&Refs; N],
        lo: usize,
        g: &[S],
        adj: &mut [S],
    ) {
        for (j, &g) in g.iter().enumerate() {
            let ct = self.element_cotangents::<true>(values, [true; N], j, g);
            for (r, ct) in refs.iter().zip(ct) {
                accumulate(adj, r.at(lo + j), ct);
            }
        }
    }

    /// Adds to `adj` the operands' cotangents, `cotangent(i)` arriving at element `i`, when
    /// some operand is constant: each element is asked only for the partials of the active
    /// ones, as custom rules are asked only for needed cotangents.
    fn pull_back<const SKIP_ZERO: bool>(
        &self,
        v: &[S],
        c: &[S],
        adj: &mut [S],
        cotangent: impl Fn(usize) -> S,
    ) {
        let values = self.values(v, c);
        let values = values.each_ref().map(|x| &x[..]);
        let needed = self.operands.each_ref().map(Operand::is_active);
        // Each element's cotangents go straight to the adjoints. Plain loops: compiled as one
        // codegen unit, an iterator's closure per element was left out of line, a call per
        // element (Rosenbrock's gradient 4.6 -> 7.0 µs).
        // Operands constant or strided (slices of inputs or of one node's outputs) have a loop
        // of their own: with a list's branch in it, or its targets computed as the other loop's,
        // Rosenbrock's sum_map gradient (then on this path) took 6-9% longer.
        let strided = self.operands.each_ref().map(|o| match o {
            Operand::Const(_) => Some(None),
            Operand::Active(Refs::Strided { start, stride, .. }) => {
                Some(Some((*start as usize, *stride as usize)))
            }
            Operand::Active(Refs::Runs(_) | Refs::List(_)) => None,
        });
        if strided.iter().all(Option::is_some) {
            let strided = strided.map(Option::flatten);
            for i in 0..self.len {
                let ct = self.element_cotangents::<SKIP_ZERO>(values, needed, i, cotangent(i));
                for (k, ct) in ct.into_iter().enumerate() {
                    if let Some((start, stride)) = strided[k] {
                        adj[start + i * stride] += ct;
                    }
                }
            }
            return;
        }
        let targets = self.operands.each_ref().map(|o| match o {
            Operand::Const(_) => AdjointTarget::None,
            Operand::Active(Refs::Strided { start, stride, .. }) => {
                AdjointTarget::Strided(*start as usize, *stride as usize)
            }
            Operand::Active(r @ (Refs::Runs(_) | Refs::List(_))) => AdjointTarget::Refs(r),
        });
        for i in 0..self.len {
            let ct = self.element_cotangents::<SKIP_ZERO>(values, needed, i, cotangent(i));
            for (k, ct) in ct.into_iter().enumerate() {
                match targets[k] {
                    AdjointTarget::None => {}
                    AdjointTarget::Strided(start, stride) => adj[start + i * stride] += ct,
                    AdjointTarget::Refs(r) => accumulate(adj, r.at(i), ct),
                }
            }
        }
    }
}

/// An elementwise node's operands read chunk by chunk, for its replay and its pullback when all
/// are active: a chunk is at most [`CHUNK`] elements and lies within one run of each runs
/// operand, so that its values (and adjoints) there are slices; list operands are gathered.
struct ChunkedOperands<'a, S, const N: usize> {
    operands: &'a [Operand<S>; N],
    len: usize,
    /// The operands' values where they are one slice.
    contiguous: [Option<&'a [S]>; N],
    any_runs: bool,
    /// Gathered values of list operands.
    buffers: [Vec<S>; N],
}

impl<'a, S: Real, const N: usize> ChunkedOperands<'a, S, N> {
    fn new<F>(node: &'a ElementwiseNode<S, F, N>, v: &'a [S]) -> Self {
        ChunkedOperands {
            operands: &node.operands,
            len: node.len,
            contiguous: node.operands.each_ref().map(|o| o.contiguous_values(v)),
            any_runs: node
                .operands
                .iter()
                .any(|o| matches!(o, Operand::Active(Refs::Runs(_)))),
            buffers: [const { Vec::new() }; N],
        }
    }

    /// The end of the chunk that starts at element `lo`.
    #[inline]
    fn end(&self, lo: usize) -> usize {
        let hi = (lo + CHUNK).min(self.len);
        if !self.any_runs {
            return hi;
        }
        self.operands.iter().fold(hi, |hi, o| match o {
            Operand::Active(Refs::Runs(runs)) => hi.min(run_of(runs, lo).1),
            _ => hi,
        })
    }

    /// The operands' values at the chunk `lo..hi`.
    #[inline]
    fn values(&mut self, v: &'a [S], c: &[S], (lo, hi): (usize, usize)) -> [&[S]; N] {
        if self.contiguous.iter().all(Option::is_some) {
            return self.contiguous.map(|x| &x.expect("contiguous")[lo..hi]);
        }
        let mut buffers = self.buffers.each_mut().into_iter();
        std::array::from_fn(|k| {
            let buffer = buffers.next().expect("N buffers");
            match (self.contiguous[k], &self.operands[k]) {
                (Some(x), _) => &x[lo..hi],
                (None, Operand::Active(Refs::Runs(runs))) => {
                    let start = run_of(runs, lo).0;
                    &v[start..start + hi - lo]
                }
                (None, Operand::Active(r)) => {
                    buffer.clear();
                    buffer.extend((lo..hi).map(|i| operand_value(v, c, r.at(i))));
                    &buffer[..]
                }
                (None, Operand::Const(_)) => unreachable!("a constant is one slice"),
            }
        })
    }
}

/// Elements per chunk of [`ChunkedOperands`].
const CHUNK: usize = 64;

/// The cotangents arriving at a chunk of an elementwise node's elements.
#[derive(Clone, Copy)]
enum Cotangents<'a, S> {
    /// A sum's one cotangent, for every element.
    One(S),
    Each(&'a [S]),
}

/// The partials of `f` with respect to every operand at each element of `xs` (at most
/// [`CHUNK`]), into `out[k][i]`. Out of line, so its slices keep `noalias` and the loop
/// vectorizes.
#[inline(never)]
fn partials_of<S: Real, F: Elementwise<N>, const N: usize>(
    f: &F,
    xs: [&[S]; N],
    out: &mut [[S; CHUNK]; N],
) {
    let len = xs[0].len().min(CHUNK);
    let xs = xs.map(|x| &x[..len]);
    for i in 0..len {
        let (_, d) = f.value_and_gradient(xs.map(|x| x[i]), [true; N]);
        for (out, d) in out.iter_mut().zip(d) {
            out[i] = d;
        }
    }
}

/// Adds `partials[j] · g[j]` to the adjoint of the operand element `lo + j` that `refs` names.
/// Out of line, so a contiguous operand's loop vectorizes.
#[inline(never)]
fn add_scaled<S: Real>(adj: &mut [S], refs: &Refs, lo: usize, partials: &[S], g: Cotangents<S>) {
    match (refs, g) {
        (
            &Refs::Strided {
                start, stride: 1, ..
            },
            g,
        ) => {
            let adj = &mut adj[start as usize + lo..][..partials.len()];
            add_scaled_slice(adj, partials, g);
        }
        (Refs::Runs(runs), g) => {
            let (start, run_end) = run_of(runs, lo);
            debug_assert!(lo + partials.len() <= run_end, "a chunk is within one run");
            add_scaled_slice(&mut adj[start..][..partials.len()], partials, g);
        }
        _ => partials.iter().enumerate().for_each(|(j, &d)| {
            let g = match g {
                Cotangents::One(g) => g,
                Cotangents::Each(g) => g[j],
            };
            accumulate(adj, refs.at(lo + j), d * g);
        }),
    }
}

/// `adj[j] += partials[j] · g[j]`, or `· g` for a sum's one cotangent.
#[inline(always)]
fn add_scaled_slice<S: Real>(adj: &mut [S], partials: &[S], g: Cotangents<S>) {
    match g {
        Cotangents::One(g) => adj.iter_mut().zip(partials).for_each(|(a, &d)| *a += d * g),
        Cotangents::Each(g) => adj
            .iter_mut()
            .zip(partials)
            .zip(g)
            .for_each(|((a, &d), &g)| *a += d * g),
    }
}

/// Where an elementwise operand's cotangent at element `i` goes.
#[derive(Clone, Copy)]
enum AdjointTarget<'a> {
    /// A constant operand: nowhere.
    None,
    /// `adj[start + i · stride]`
    Strided(usize, usize),
    /// The `i`-th reference of a list or of runs (a constant one takes nothing).
    Refs(&'a Refs),
}

impl<S: Real, F: Elementwise<N>, const N: usize> Special<S> for ElementwiseNode<S, F, N> {
    fn operands(&self, out: &mut Vec<u32>) {
        self.operands.iter().for_each(|o| o.operands(out));
    }
    fn num_outputs(&self) -> usize {
        if self.summed {
            1
        } else {
            self.len
        }
    }
    fn pullback(&self, v: &[S], c: &[S], out: &[S], adj: &mut [S]) -> Result<()> {
        // One loop per form, so the summed one reads its single cotangent without a branch.
        match self.summed {
            // A sum no output uses adds nothing, even where a partial is infinite.
            true if out[0].is_exact_zero() => {}
            _ if self.operands.iter().all(Operand::is_active) => {
                self.pull_back_in_chunks(v, c, adj, out)
            }
            true => self.pull_back::<false>(v, c, adj, |_| out[0]),
            false => self.pull_back::<true>(v, c, adj, |i| out[i]),
        }
        Ok(())
    }
    fn replay(&self, v: &[S], c: &[S], out: &mut [S]) -> bool {
        // `f` element by element, in order, as the base scalars' `sum_map` and
        // `map_elementwise` are (f64, f32, Dual): chunk by chunk, without an array per node.
        let mut operands = ChunkedOperands::new(self, v);
        let (mut lo, mut sum) = (0, S::zero());
        while lo < self.len {
            let hi = operands.end(lo);
            let xs = operands.values(v, c, (lo, hi));
            let at = |i: usize| self.f.eval(xs.map(|x| x[i]));
            match self.summed {
                true => sum = (0..hi - lo).fold(sum, |s, i| s + at(i)),
                false => (0..hi - lo).for_each(|i| out[lo + i] = at(i)),
            }
            lo = hi;
        }
        if self.summed {
            out[0] = sum;
        }
        true
    }
}

/// The operands' tracers in logical order, borrowed where contiguous.
fn elementwise_tracers<'a, S: Real, const N: usize>(
    xs: &'a [ArrayView1<'_, Var<S>>; N],
) -> [Cow<'a, [Var<S>]>; N] {
    elementwise_len(xs);
    xs.each_ref().map(|x| match x.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(x.iter().copied().collect()),
    })
}

/// The values of the operands as plain numbers, for evaluating `f` at a tracer `S` through its
/// own engine's hooks (which record one node).
fn elementwise_values<S: Real, const N: usize>(tracers: &[Cow<'_, [Var<S>]>; N]) -> [Vec<S>; N] {
    tracers
        .each_ref()
        .map(|x| x.iter().map(|v| v.value).collect())
}

/// Records the node with its outputs `values` (one if `summed`); constants if no operand is
/// active. Constant operands are held as values, active ones as references.
fn push_elementwise<S: Real, F: Elementwise<N>, const N: usize>(
    f: &F,
    tracers: &[Cow<'_, [Var<S>]>; N],
    summed: bool,
    values: Vec<S>,
) -> Vec<Var<S>> {
    let active = tracers.each_ref().map(|x| x.iter().any(|v| v.is_active()));
    if !active.iter().any(|&a| a) {
        return values.into_iter().map(Var::constant_of).collect();
    }
    // Values are copied for constant operands only (active ones are read from the tape).
    let values_if_constant = |k: usize| match active[k] {
        true => Vec::new(),
        false => tracers[k].iter().map(|v| v.value).collect(),
    };
    let operands = with_tape::<S, _>(|t| {
        std::array::from_fn(|k| Operand::record(t, &tracers[k], (values_if_constant(k), active[k])))
    });
    let node = ElementwiseNode {
        f: f.clone(),
        operands,
        len: tracers[0].len(),
        summed,
    };
    push_special(Box::new(node), &values)
}

/// `Σ_i f(x[i])` on the tracers' values. Out of line: inlined into [`sum_map`], its accumulator
/// was kept on the stack, a store and a load on the loop's critical path (Rosenbrock's gradient
/// 5.3 -> 7.3 µs).
#[inline(never)]
fn value_of_tracers<S: Real, F: Elementwise<N>, const N: usize>(f: &F, xs: [&[Var<S>]; N]) -> S {
    sum_map_by_index(f, xs[0].len(), |i| xs.map(|x| x[i].value))
}

pub(crate) fn sum_map<S: Real, F: Elementwise<N>, const N: usize>(
    f: &F,
    xs: [ArrayView1<'_, Var<S>>; N],
) -> Var<S> {
    let tracers = elementwise_tracers(&xs);
    // The value as the primal computes it: read straight from the tracers when `S` is a plain
    // number (no copy of the operands), through `S::sum_map` when it is a tracer, whose engine
    // records it as one node.
    let value = if S::NEST_LEVEL == 0 {
        value_of_tracers(f, tracers.each_ref().map(|x| &x[..]))
    } else {
        let values = elementwise_values(&tracers);
        S::sum_map(f, values.each_ref().map(|v| ArrayView1::from(&v[..])))
    };
    push_elementwise(f, &tracers, true, vec![value])[0]
}

pub(crate) fn map<S: Real, F: Elementwise<N>, const N: usize>(
    f: &F,
    xs: [ArrayView1<'_, Var<S>>; N],
) -> Array1<Var<S>> {
    let tracers = elementwise_tracers(&xs);
    // As in `sum_map`.
    let values = if S::NEST_LEVEL == 0 {
        let slices = tracers.each_ref().map(|x| &x[..]);
        map_by_index(f, slices[0].len(), |i| slices.map(|x| x[i].value))
    } else {
        let values = elementwise_values(&tracers);
        S::map_elementwise(f, values.each_ref().map(|v| ArrayView1::from(&v[..]))).to_vec()
    };
    Array1::from(push_elementwise(f, &tracers, false, values))
}

struct DotNode<S> {
    a: Operand<S>,
    b: Operand<S>,
}

impl<S: Real> Special<S> for DotNode<S> {
    fn operands(&self, out: &mut Vec<u32>) {
        self.a.operands(out);
        self.b.operands(out);
    }
    fn num_outputs(&self) -> usize {
        1
    }
    fn pullback(&self, v: &[S], c: &[S], out: &[S], adj: &mut [S]) -> Result<()> {
        let g = out[0];
        // ā = g b and b̄ = g a: each operand's values only where the other needs a cotangent.
        if self.a.is_active() {
            let b = self.b.values(v, c);
            self.a.add_adjoint(adj, b.iter().map(|&x| g * x));
        }
        if self.b.is_active() {
            let a = self.a.values(v, c);
            self.b.add_adjoint(adj, a.iter().map(|&x| g * x));
        }
        Ok(())
    }
    fn replay(&self, v: &[S], c: &[S], out: &mut [S]) -> bool {
        let (a, b) = (self.a.values(v, c), self.b.values(v, c));
        out[0] = S::dot(ArrayView1::from(&a[..]), ArrayView1::from(&b[..]));
        true
    }
}

pub(crate) fn dot<S: Real>(a: ArrayView1<'_, Var<S>>, b: ArrayView1<'_, Var<S>>) -> Var<S> {
    assert_eq!(
        a.len(),
        b.len(),
        "Real::dot: the operands have lengths {} and {}; they must be equal",
        a.len(),
        b.len()
    );
    let (a, b) = (a.as_standard_layout(), b.as_standard_layout());
    let (a, b) = (
        a.as_slice().expect("standard layout"),
        b.as_slice().expect("standard layout"),
    );
    let (av, bv) = (values_and_activity(a), values_and_activity(b));
    let value = S::dot(ArrayView1::from(&av.0[..]), ArrayView1::from(&bv.0[..]));
    if !(av.1 || bv.1) {
        return Var::constant_of(value);
    }
    let node = with_tape::<S, _>(|t| DotNode {
        a: Operand::record(t, a, av),
        b: Operand::record(t, b, bv),
    });
    push_special(Box::new(node), &[value])[0]
}

/// `C = A · B` with A (m × k) and B (k × n), both row-major.
struct MatMulNode<S> {
    a: Operand<S>,
    b: Operand<S>,
    m: usize,
    k: usize,
    n: usize,
}

impl<S: Real> Special<S> for MatMulNode<S> {
    fn operands(&self, out: &mut Vec<u32>) {
        self.a.operands(out);
        self.b.operands(out);
    }
    fn num_outputs(&self) -> usize {
        self.m * self.n
    }
    fn pullback(&self, v: &[S], c: &[S], out: &[S], adj: &mut [S]) -> Result<()> {
        let (m, k, n) = (self.m, self.k, self.n);
        let cbar = ArrayView2::from_shape((m, n), out).expect("m × n cotangents");
        if self.a.is_active() {
            // Ā = C̄ Bᵀ
            let b = self.b.values(v, c);
            let b = ArrayView2::from_shape((k, n), &b[..]).expect("k × n");
            self.a
                .add_adjoint(adj, S::matmul(cbar, b.t()).iter().copied());
        }
        if self.b.is_active() {
            // B̄ = Aᵀ C̄
            let a = self.a.values(v, c);
            let a = ArrayView2::from_shape((m, k), &a[..]).expect("m × k");
            self.b
                .add_adjoint(adj, S::matmul(a.t(), cbar).iter().copied());
        }
        Ok(())
    }
    fn replay(&self, v: &[S], c: &[S], out: &mut [S]) -> bool {
        let (a, b) = (self.a.values(v, c), self.b.values(v, c));
        out.copy_from_slice(&matmul_values(&a, &b, self.m, self.k, self.n));
        true
    }
}

/// The product of row-major `a` (m × k) and `b` (k × n) by the base scalar's own products
/// (library kernels for `f64`; one recorded node when the base is itself a tracer).
fn matmul_values<S: Real>(a: &[S], b: &[S], m: usize, k: usize, n: usize) -> Vec<S> {
    let a = ArrayView2::from_shape((m, k), a).expect("m × k");
    if n == 1 {
        return S::matvec(a, ArrayView1::from(b)).to_vec();
    }
    let b = ArrayView2::from_shape((k, n), b).expect("k × n");
    S::matmul(a, b)
        .as_standard_layout()
        .as_slice()
        .expect("row-major")
        .to_vec()
}

fn matmul_node<S: Real>(a: ArrayView2<'_, Var<S>>, b: ArrayView2<'_, Var<S>>) -> Vec<Var<S>> {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    let (a, b) = (a.as_standard_layout(), b.as_standard_layout());
    let (a, b) = (
        a.as_slice().expect("standard layout"),
        b.as_slice().expect("standard layout"),
    );
    let (av, bv) = (values_and_activity(a), values_and_activity(b));
    let values = matmul_values(&av.0, &bv.0, m, k, n);
    if !(av.1 || bv.1) {
        return values.into_iter().map(Var::constant_of).collect();
    }
    let node = with_tape::<S, _>(|t| MatMulNode {
        a: Operand::record(t, a, av),
        b: Operand::record(t, b, bv),
        m,
        k,
        n,
    });
    push_special(Box::new(node), &values)
}

pub(crate) fn matvec<S: Real>(
    a: ArrayView2<'_, Var<S>>,
    x: ArrayView1<'_, Var<S>>,
) -> Array1<Var<S>> {
    assert_eq!(
        a.ncols(),
        x.len(),
        "Real::matvec: matrix has {} columns but the vector has length {}",
        a.ncols(),
        x.len()
    );
    let x = x.insert_axis(ndarray::Axis(1));
    Array1::from(matmul_node(a, x))
}

pub(crate) fn matmul<S: Real>(
    a: ArrayView2<'_, Var<S>>,
    b: ArrayView2<'_, Var<S>>,
) -> Array2<Var<S>> {
    assert_eq!(
        a.ncols(),
        b.nrows(),
        "Real::matmul: left operand has {} columns but the right one has {} rows",
        a.ncols(),
        b.nrows()
    );
    let (m, n) = (a.nrows(), b.ncols());
    Array2::from_shape_vec((m, n), matmul_node(a, b)).expect("m × n outputs")
}

// ---- custom rules ----

struct RuleNode<R: Rule, S: Real> {
    rule: R,
    saved: R::Saved<S>,
    /// Operand references of each active input; empty for inactive ones (they cost nothing).
    inputs: Vec<Refs>,
    input_shapes: Vec<Vec<usize>>,
    active: Vec<bool>,
    output_shapes: Vec<Vec<usize>>,
}

impl<R: Rule, S: Real> Special<S> for RuleNode<R, S> {
    fn operands(&self, out: &mut Vec<u32>) {
        self.inputs.iter().for_each(|r| out.extend(r.iter()));
    }
    fn num_outputs(&self) -> usize {
        self.output_shapes
            .iter()
            .map(|s| s.iter().product::<usize>())
            .sum()
    }
    fn pullback(&self, _v: &[S], _c: &[S], out: &[S], adj: &mut [S]) -> Result<()> {
        // The output cotangents are consecutive adjoints: the rule reads them in place.
        let mut offset = 0;
        let views: Vec<ArrayViewD<'_, S>> = self
            .output_shapes
            .iter()
            .map(|shape| {
                let len: usize = shape.iter().product();
                let a = ArrayViewD::from_shape(IxDyn(shape), &out[offset..offset + len])
                    .expect("shape matches length");
                offset += len;
                a
            })
            .collect();
        let result = self.rule.pullback(&self.saved, &views, &self.active);
        check_pullback(self.rule.name(), &result, &self.active, &self.input_shapes)?;
        for (refs, ct) in self.inputs.iter().zip(&result) {
            match ct.as_ref().map(|ct| (ct, ct.as_slice())) {
                // As a slice where it is one: ndarray's element iterator checks the layout per
                // element.
                Some((_, Some(flat))) => refs.accumulate(adj, flat.iter().copied()),
                Some((ct, None)) => refs.accumulate(adj, ct.iter().copied()),
                None => {}
            }
        }
        Ok(())
    }
    fn replay(&self, _v: &[S], _c: &[S], _out: &mut [S]) -> bool {
        false
    }
}

pub(crate) fn apply_rule<S: Real, R: Rule>(
    rule: &R,
    inputs: &[ArrayViewD<'_, Var<S>>],
) -> Vec<ArrayD<Var<S>>> {
    // One pass per input for its values and whether any element is active.
    let mut active = Vec::with_capacity(inputs.len());
    let values: Vec<ArrayD<S>> = inputs
        .iter()
        .map(|x| {
            let mut any = false;
            let v = x.mapv(|v| {
                any |= v.is_active();
                v.value
            });
            active.push(any);
            v
        })
        .collect();
    let views: Vec<ArrayViewD<'_, S>> = values.iter().map(|a| a.view()).collect();
    let (outputs, saved) = rule.forward(&views, &active);
    if !active.iter().any(|&a| a) {
        return outputs
            .into_iter()
            .map(|o| o.mapv(Var::constant_of))
            .collect();
    }
    let refs = with_tape::<S, _>(|t| {
        inputs
            .iter()
            .zip(&active)
            .map(|(x, &a)| {
                if a {
                    refs(t, x.iter().copied())
                } else {
                    Refs::default()
                }
            })
            .collect()
    });
    let node = RuleNode {
        rule: rule.clone(),
        saved,
        inputs: refs,
        input_shapes: inputs.iter().map(|x| x.shape().to_vec()).collect(),
        active,
        output_shapes: outputs.iter().map(|o| o.shape().to_vec()).collect(),
    };
    push_special_arrays(Box::new(node), &outputs)
}

// ---- hooks ----

struct HookNode<H> {
    input: u32,
    hook: H,
}

impl<S: Real, H: Hook> Special<S> for HookNode<H> {
    fn operands(&self, out: &mut Vec<u32>) {
        out.push(self.input);
    }
    fn num_outputs(&self) -> usize {
        1
    }
    fn pullback(&self, _v: &[S], _c: &[S], out: &[S], adj: &mut [S]) -> Result<()> {
        accumulate(adj, self.input, self.hook.cotangent(out[0]));
        Ok(())
    }
    fn replay(&self, v: &[S], c: &[S], out: &mut [S]) -> bool {
        out[0] = operand_value(v, c, self.input);
        true
    }
}

pub(crate) fn hook<S: Real, H: Hook>(x: Var<S>, hook: H) -> Var<S> {
    if !x.is_active() {
        return x;
    }
    let input = with_tape::<S, _>(|t| refs(t, [x].into_iter()).iter().next())
        .expect("one reference for one tracer");
    push_special(Box::new(HookNode { input, hook }), &[x.value])[0]
}

// ---- checkpoints ----

struct CheckpointNode<C> {
    segment: C,
    inputs: Refs,
    outputs: usize,
}

impl<S: Real, C: Segment> Special<S> for CheckpointNode<C> {
    fn operands(&self, out: &mut Vec<u32>) {
        out.extend(self.inputs.iter());
    }
    fn num_outputs(&self) -> usize {
        self.outputs
    }
    fn pullback(&self, v: &[S], c: &[S], out: &[S], adj: &mut [S]) -> Result<()> {
        let xs: Vec<S> = self.inputs.iter().map(|r| operand_value(v, c, r)).collect();
        // Recompute the segment and pull the output cotangents back: by replaying the recording
        // of an equal segment kept from the last checkpoint pulled back on this thread, or on a
        // fresh recording.
        let reusable = self.segment.same_as(&self.segment);
        let kept = match reusable {
            true => take_kept_segment::<S, C>(),
            false => None,
        };
        let replayed = kept.and_then(|(segment, mut pullback)| {
            (segment.same_as(&self.segment) && pullback.replay(&xs)).then_some(pullback)
        });
        let pullback = match replayed {
            Some(pullback) => pullback,
            None => {
                crate::backend::record_flat::<S>(MAX_SEGMENT, &xs, |vars| self.segment.eval(vars))?
                    .1
            }
        };
        let grads = pullback.apply_seed(out)?;
        self.inputs.accumulate(adj, grads);
        if reusable {
            keep_segment(self.segment.clone(), pullback);
        }
        Ok(())
    }
    fn replay(&self, v: &[S], c: &[S], out: &mut [S]) -> bool {
        let xs: Vec<S> = self.inputs.iter().map(|r| operand_value(v, c, r)).collect();
        // A segment whose output length changed with its inputs is recorded anew.
        let ys = self.segment.eval(&xs);
        let same_length = ys.len() == out.len();
        if same_length {
            out.copy_from_slice(&ys);
        }
        same_length
    }
}

const MAX_SEGMENT: usize = crate::tape::MAX_NODES;

thread_local! {
    /// The last recording of a segment that declared itself reusable ([`Segment::same_as`]),
    /// with the segment: `(C, TapePullback<S>)`. Cleared when a sweep that is not a segment's
    /// own ends ([`ClearKeptSegment`]), so it does not outlive the gradient.
    static KEPT_SEGMENT: std::cell::RefCell<Option<Box<dyn std::any::Any>>> =
        const { std::cell::RefCell::new(None) };
}

/// Takes the kept segment recording if it is of segment type `C` over `S`.
fn take_kept_segment<S: Real, C: Segment>() -> Option<(C, crate::backend::TapePullback<S>)> {
    let kept = KEPT_SEGMENT.try_with(|k| k.borrow_mut().take()).ok()??;
    // Another type's recording is dropped here, outside the borrow.
    kept.downcast().ok().map(|b| *b)
}

fn keep_segment<S: Real, C: Segment>(segment: C, pullback: crate::backend::TapePullback<S>) {
    let old = KEPT_SEGMENT.try_with(|k| k.borrow_mut().replace(Box::new((segment, pullback))));
    // The one it replaces (user data in its segment) is dropped outside the borrow.
    drop(old);
}

/// On drop, drops the kept segment recording, if any: held for the span of a sweep that is not
/// a segment's own, however it ends.
pub(crate) struct ClearKeptSegment;

impl Drop for ClearKeptSegment {
    fn drop(&mut self) {
        let old = KEPT_SEGMENT.try_with(|k| k.borrow_mut().take());
        drop(old);
    }
}

pub(crate) fn checkpoint<S: Real, C: Segment>(segment: &C, inputs: &[Var<S>]) -> Vec<Var<S>> {
    let xs: Vec<S> = inputs.iter().map(|v| v.value).collect();
    let outputs = segment.eval(&xs);
    if !any_active(inputs.iter().copied()) {
        return outputs.into_iter().map(Var::constant_of).collect();
    }
    let refs = with_tape::<S, _>(|t| refs(t, inputs.iter().copied()));
    let node = CheckpointNode {
        segment: segment.clone(),
        inputs: refs,
        outputs: outputs.len(),
    };
    push_special(Box::new(node), &outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tracers with these indices, of recording `epoch`.
    fn vars(indices: &[u32], epoch: u32) -> Vec<Var<f64>> {
        indices
            .iter()
            .map(|&index| Var {
                value: 1.0,
                index,
                epoch,
            })
            .collect()
    }

    fn refs_of(rs: &[u32]) -> Refs {
        let mut out = Refs::default();
        rs.iter().for_each(|&r| out.push(r));
        out
    }

    #[test]
    fn progressions_stay_strided_and_others_become_a_list_in_order() {
        assert!(matches!(
            refs_of(&[5, 6, 7]),
            Refs::Strided {
                start: 5,
                len: 3,
                stride: 1
            }
        ));
        assert!(matches!(
            refs_of(&[4, 7, 10, 13]),
            Refs::Strided {
                start: 4,
                len: 4,
                stride: 3
            }
        ));
        for rs in [
            &[5, 6, 9, 10][..],
            &[5, 5],
            &[3, 2],
            &[CONST_BIT | 4, 5],
            &[5, CONST_BIT | 6],
            &[1, 3, 6],
        ] {
            let got = refs_of(rs);
            assert!(matches!(got, Refs::List(_)), "{rs:?} gave {got:?}");
            assert_eq!(got.iter().collect::<Vec<_>>(), rs);
        }
        assert!(refs_of(&[]).is_empty());
    }

    #[test]
    fn progression_takes_only_active_tracers_of_this_recording_in_step() {
        let of = |xs: &[Var<f64>]| progression(xs.iter().copied(), 7);
        assert!(matches!(
            of(&vars(&[4, 7, 10, 13], 7)),
            Some(Refs::Strided {
                start: 4,
                len: 4,
                stride: 3
            })
        ));
        assert!(matches!(
            of(&vars(&[9], 7)),
            Some(Refs::Strided {
                start: 9,
                len: 1,
                ..
            })
        ));
        // Out of step, repeated, descending, a constant, another recording's tracer, nothing.
        for xs in [
            vars(&[4, 7, 11], 7),
            vars(&[4, 4], 7),
            vars(&[5, 4], 7),
            vars(&[4, NO_INDEX], 7),
            vars(&[NO_INDEX], 7),
            vars(&[4, 5], 6),
            vars(&[], 7),
        ] {
            assert!(of(&xs).is_none(), "{xs:?}");
        }
    }

    #[test]
    fn runs_take_concatenated_slices_of_this_recording_and_no_scattered_list() {
        let of = |xs: &[Var<f64>]| runs(xs.iter().copied(), 7);
        // 100..108 then 3..11: two runs of 16 references, each with the count up to its end.
        let concatenated: Vec<u32> = (100..108).chain(3..11).collect();
        let Some(Refs::Runs(r)) = of(&vars(&concatenated, 7)) else {
            panic!("two runs in 16 references")
        };
        assert_eq!(r, [(100, 8), (3, 16)]);
        let r = Refs::Runs(r);
        assert_eq!(r.iter().collect::<Vec<_>>(), concatenated);
        assert_eq!((0..16).map(|i| r.at(i)).collect::<Vec<_>>(), concatenated);
        let mut adj = [0.0; 110];
        r.accumulate(&mut adj, (0..16).map(|i| i as f64 + 1.0));
        assert_eq!((adj[100], adj[107], adj[3], adj[10]), (1.0, 8.0, 9.0, 16.0));
        assert_eq!(adj.iter().sum::<f64>(), (1..=16).sum::<i32>() as f64);
        // Three runs in 16 (more than one per eight), another recording's tracer, a constant.
        let three: Vec<u32> = (100..105).chain(3..8).chain(50..56).collect();
        let mut stale = vars(&concatenated, 7);
        stale[9].epoch = 6;
        let mut constant = vars(&concatenated, 7);
        constant[15].index = NO_INDEX;
        for xs in [vars(&three, 7), stale, constant, vars(&[], 7)] {
            assert!(of(&xs).is_none(), "{xs:?}");
        }
    }

    #[test]
    fn both_forms_add_to_the_referenced_adjoints_only() {
        let mut adj = [0.0; 5];
        refs_of(&[1, 2, 3]).accumulate(&mut adj, [1.0, 10.0, 100.0]);
        assert_eq!(adj, [0.0, 1.0, 10.0, 100.0, 0.0]);
        let mut adj = [0.0; 5];
        refs_of(&[0, 2, 4]).accumulate(&mut adj, [1.0, 10.0, 100.0]);
        assert_eq!(adj, [1.0, 0.0, 10.0, 0.0, 100.0]);
        // A constant reference takes nothing; a repeated one takes both.
        let mut adj = [0.0; 5];
        refs_of(&[3, CONST_BIT, 1, 3]).accumulate(&mut adj, [1.0, 10.0, 100.0, 1000.0]);
        assert_eq!(adj, [0.0, 100.0, 0.0, 1001.0, 0.0]);
    }
}
