//! Array-level nodes: sum, dot, matrix products, custom rules, hooks and checkpoints. Each is
//! one record with an array-level pullback; constant operands get no adjoint work.

use difi_core::{check_pullback, Hook, Real, Result, Rule, Segment};
use ndarray::{Array1, Array2, ArrayD, ArrayView1, ArrayView2, ArrayViewD, IxDyn};

use crate::tape::{operand_value, with_tape, Op, Special, TapeData, CONST_BIT, NO_INDEX};
use crate::var::Var;

fn any_active<S: Real>(xs: impl IntoIterator<Item = Var<S>>) -> bool {
    xs.into_iter().any(|v| v.is_active())
}

/// Pushes `special` and one output slot per value; returns the output tracers.
fn push_special<S: Real>(
    special: Box<dyn Special<S>>,
    outputs: impl IntoIterator<Item = S>,
) -> Vec<Var<S>> {
    with_tape::<S, _>(|t| {
        let head = t.push(Op::Special, t.specials.len() as u32, 0, S::zero());
        t.specials.push(special);
        let epoch = t.epoch;
        outputs
            .into_iter()
            .enumerate()
            .map(|(k, value)| {
                let index = if head == NO_INDEX {
                    NO_INDEX
                } else {
                    t.push(Op::SpecialOutput, head, k as u32, value)
                };
                Var {
                    value,
                    index,
                    epoch,
                }
            })
            .collect()
    })
}

/// Pushes `special` and one output slot per element of `outputs`, and returns them as arrays
/// of the same shapes (built in place: these can be millions of elements).
fn push_special_arrays<S: Real>(
    special: Box<dyn Special<S>>,
    outputs: &[ArrayD<S>],
) -> Vec<ArrayD<Var<S>>> {
    with_tape::<S, _>(|t| {
        let total: usize = outputs.iter().map(|o| o.len()).sum();
        t.nodes.reserve(total + 1);
        t.values.reserve(total + 1);
        let head = t.push(Op::Special, t.specials.len() as u32, 0, S::zero());
        t.specials.push(special);
        let epoch = t.epoch;
        let mut k = 0u32;
        outputs
            .iter()
            .map(|o| {
                // Slots in logical (row-major) order, as the pullback reads them back; `map`
                // would follow memory order, which differs for non-standard layouts.
                let vars = o
                    .iter()
                    .map(|&value| {
                        let index = if head == NO_INDEX {
                            NO_INDEX
                        } else {
                            t.push(Op::SpecialOutput, head, k, value)
                        };
                        k += 1;
                        Var {
                            value,
                            index,
                            epoch,
                        }
                    })
                    .collect();
                ArrayD::from_shape_vec(o.raw_dim(), vars).expect("shape")
            })
            .collect()
    })
}

/// What an array op says of a tracer from another (or a finished) computation.
const STALE: &str = "a tracer from another computation reached an array operation (keep \
    tracers inside the differentiated closure)";

/// Operand references for tracers (constants go to the constant pool), checking epochs.
fn refs<S: Real>(t: &mut TapeData<S>, xs: impl IntoIterator<Item = Var<S>>) -> Vec<u32> {
    xs.into_iter()
        .map(|v| {
            if v.is_active() {
                if v.epoch != t.epoch {
                    t.misuse(STALE);
                }
                v.index
            } else {
                t.push_const(v.value)
            }
        })
        .collect()
}

#[inline]
fn add_to<S: Real>(adj: &mut [S], r: u32, g: S) {
    if r & CONST_BIT == 0 {
        adj[r as usize] += g;
    }
}

fn all_const(refs: &[u32]) -> bool {
    refs.iter().all(|r| r & CONST_BIT != 0)
}

// ---- sum ----

struct SumNode {
    refs: Vec<u32>,
}

impl<S: Real> Special<S> for SumNode {
    fn operands(&self, out: &mut Vec<u32>) {
        out.extend(&self.refs);
    }
    fn num_outputs(&self) -> usize {
        1
    }
    fn pullback(&self, _v: &[S], _c: &[S], out: &[S], adj: &mut [S]) -> Result<()> {
        let g = out[0];
        self.refs.iter().for_each(|&r| add_to(adj, r, g));
        Ok(())
    }
    fn replay(&self, v: &[S], c: &[S]) -> Option<Vec<S>> {
        Some(vec![self
            .refs
            .iter()
            .fold(S::zero(), |s, &r| s + operand_value(v, c, r))])
    }
}

pub(crate) fn sum<S: Real>(xs: ArrayView1<'_, Var<S>>) -> Var<S> {
    // One pass: the value in order (as the primal sums), the active elements' references, and
    // the constants' sum, which is fixed for this recording.
    let (value, node) = with_tape::<S, _>(|t| {
        let (mut value, mut constant) = (S::zero(), S::zero());
        let mut r = Vec::with_capacity(xs.len() + 1);
        let mut stale = false;
        for x in xs.iter() {
            value += x.value;
            if x.is_active() {
                stale |= x.epoch != t.epoch;
                r.push(x.index);
            } else {
                constant += x.value;
            }
        }
        if stale {
            t.misuse(STALE);
        }
        if r.is_empty() {
            return (value, None);
        }
        r.push(t.push_const(constant));
        (value, Some(SumNode { refs: r }))
    });
    match node {
        Some(node) => push_special(Box::new(node), [value])[0],
        None => Var::constant_of(value),
    }
}

// ---- dot ----

struct DotNode {
    a: Vec<u32>,
    b: Vec<u32>,
}

impl<S: Real> Special<S> for DotNode {
    fn operands(&self, out: &mut Vec<u32>) {
        out.extend(self.a.iter().chain(&self.b));
    }
    fn num_outputs(&self) -> usize {
        1
    }
    fn pullback(&self, v: &[S], c: &[S], out: &[S], adj: &mut [S]) -> Result<()> {
        let g = out[0];
        let (a_const, b_const) = (all_const(&self.a), all_const(&self.b));
        for (&ra, &rb) in self.a.iter().zip(&self.b) {
            if !a_const {
                add_to(adj, ra, g * operand_value(v, c, rb));
            }
            if !b_const {
                add_to(adj, rb, g * operand_value(v, c, ra));
            }
        }
        Ok(())
    }
    fn replay(&self, v: &[S], c: &[S]) -> Option<Vec<S>> {
        Some(vec![self
            .a
            .iter()
            .zip(&self.b)
            .fold(S::zero(), |s, (&x, &y)| {
                s + operand_value(v, c, x) * operand_value(v, c, y)
            })])
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
    let value = a
        .iter()
        .zip(b.iter())
        .fold(S::zero(), |s, (x, y)| s + x.value * y.value);
    if !any_active(a.iter().chain(b.iter()).copied()) {
        return Var::constant_of(value);
    }
    let node = with_tape::<S, _>(|t| DotNode {
        a: refs(t, a.iter().copied()),
        b: refs(t, b.iter().copied()),
    });
    push_special(Box::new(node), [value])[0]
}

// ---- matrix-vector and matrix-matrix products ----

/// `C = A · B` with A (m × k) and B (k × n), all row-major operand references.
struct MatMulNode {
    a: Vec<u32>,
    b: Vec<u32>,
    m: usize,
    k: usize,
    n: usize,
}

impl<S: Real> Special<S> for MatMulNode {
    fn operands(&self, out: &mut Vec<u32>) {
        out.extend(self.a.iter().chain(&self.b));
    }
    fn num_outputs(&self) -> usize {
        self.m * self.n
    }
    fn pullback(&self, v: &[S], c: &[S], out: &[S], adj: &mut [S]) -> Result<()> {
        let (m, k, n) = (self.m, self.k, self.n);
        let val = |r: u32| operand_value(v, c, r);
        if !all_const(&self.a) {
            // Ā = C̄ Bᵀ
            for i in 0..m {
                for p in 0..k {
                    let s = (0..n).fold(S::zero(), |s, j| {
                        s + out[i * n + j] * val(self.b[p * n + j])
                    });
                    add_to(adj, self.a[i * k + p], s);
                }
            }
        }
        if !all_const(&self.b) {
            // B̄ = Aᵀ C̄
            for p in 0..k {
                for j in 0..n {
                    let s = (0..m).fold(S::zero(), |s, i| {
                        s + val(self.a[i * k + p]) * out[i * n + j]
                    });
                    add_to(adj, self.b[p * n + j], s);
                }
            }
        }
        Ok(())
    }
    fn replay(&self, v: &[S], c: &[S]) -> Option<Vec<S>> {
        let a: Vec<S> = self.a.iter().map(|&r| operand_value(v, c, r)).collect();
        let b: Vec<S> = self.b.iter().map(|&r| operand_value(v, c, r)).collect();
        Some(matmul_values(&a, &b, self.m, self.k, self.n))
    }
}

fn matmul_values<S: Real>(a: &[S], b: &[S], m: usize, k: usize, n: usize) -> Vec<S> {
    let mut out = vec![S::zero(); m * n];
    for i in 0..m {
        for p in 0..k {
            let aip = a[i * k + p];
            for j in 0..n {
                out[i * n + j] += aip * b[p * n + j];
            }
        }
    }
    out
}

fn matmul_node<S: Real>(a: &[Var<S>], b: &[Var<S>], m: usize, k: usize, n: usize) -> Vec<Var<S>> {
    let av: Vec<S> = a.iter().map(|x| x.value).collect();
    let bv: Vec<S> = b.iter().map(|x| x.value).collect();
    let values = matmul_values(&av, &bv, m, k, n);
    if !any_active(a.iter().chain(b).copied()) {
        return values.into_iter().map(Var::constant_of).collect();
    }
    let node = with_tape::<S, _>(|t| MatMulNode {
        a: refs(t, a.iter().copied()),
        b: refs(t, b.iter().copied()),
        m,
        k,
        n,
    });
    push_special(Box::new(node), values)
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
    let av: Vec<Var<S>> = a.iter().copied().collect();
    let xv: Vec<Var<S>> = x.iter().copied().collect();
    Array1::from(matmul_node(&av, &xv, a.nrows(), a.ncols(), 1))
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
    let av: Vec<Var<S>> = a.iter().copied().collect();
    let bv: Vec<Var<S>> = b.iter().copied().collect();
    let out = matmul_node(&av, &bv, a.nrows(), a.ncols(), b.ncols());
    Array2::from_shape_vec((a.nrows(), b.ncols()), out).expect("m × n outputs")
}

// ---- custom rules ----

struct RuleNode<R: Rule, S: Real> {
    rule: R,
    saved: R::Saved<S>,
    /// Operand references of each active input; empty for inactive ones (they cost nothing).
    inputs: Vec<Vec<u32>>,
    input_shapes: Vec<Vec<usize>>,
    active: Vec<bool>,
    output_shapes: Vec<Vec<usize>>,
}

impl<R: Rule, S: Real> Special<S> for RuleNode<R, S> {
    fn operands(&self, out: &mut Vec<u32>) {
        self.inputs.iter().for_each(|r| out.extend(r));
    }
    fn num_outputs(&self) -> usize {
        self.output_shapes
            .iter()
            .map(|s| s.iter().product::<usize>())
            .sum()
    }
    fn pullback(&self, _v: &[S], _c: &[S], out: &[S], adj: &mut [S]) -> Result<()> {
        let mut offset = 0;
        let cots: Vec<ArrayD<S>> = self
            .output_shapes
            .iter()
            .map(|shape| {
                let len: usize = shape.iter().product();
                let a = ArrayD::from_shape_vec(IxDyn(shape), out[offset..offset + len].to_vec())
                    .expect("shape matches length");
                offset += len;
                a
            })
            .collect();
        let views: Vec<ArrayViewD<'_, S>> = cots.iter().map(|a| a.view()).collect();
        let result = self.rule.pullback(&self.saved, &views, &self.active);
        check_pullback(self.rule.name(), &result, &self.active, &self.input_shapes)?;
        for (refs, ct) in self.inputs.iter().zip(&result) {
            if let Some(ct) = ct {
                for (&r, &g) in refs.iter().zip(ct.iter()) {
                    add_to(adj, r, g);
                }
            }
        }
        Ok(())
    }
    fn replay(&self, _v: &[S], _c: &[S]) -> Option<Vec<S>> {
        None
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
                    Vec::new()
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
        add_to(adj, self.input, self.hook.cotangent(out[0]));
        Ok(())
    }
    fn replay(&self, v: &[S], c: &[S]) -> Option<Vec<S>> {
        Some(vec![operand_value(v, c, self.input)])
    }
}

pub(crate) fn hook<S: Real, H: Hook>(x: Var<S>, hook: H) -> Var<S> {
    if !x.is_active() {
        return x;
    }
    let input = with_tape::<S, _>(|t| refs(t, [x])[0]);
    push_special(Box::new(HookNode { input, hook }), [x.value])[0]
}

// ---- checkpoints ----

struct CheckpointNode<C> {
    segment: C,
    inputs: Vec<u32>,
    outputs: usize,
}

impl<S: Real, C: Segment> Special<S> for CheckpointNode<C> {
    fn operands(&self, out: &mut Vec<u32>) {
        out.extend(&self.inputs);
    }
    fn num_outputs(&self) -> usize {
        self.outputs
    }
    fn pullback(&self, v: &[S], c: &[S], out: &[S], adj: &mut [S]) -> Result<()> {
        let xs: Vec<S> = self
            .inputs
            .iter()
            .map(|&r| operand_value(v, c, r))
            .collect();
        // Recompute the segment on a fresh recording and pull the output cotangents back.
        let (_, pullback) =
            crate::backend::record_flat::<S>(MAX_SEGMENT, &xs, |vars| self.segment.eval(vars))?;
        let grads = pullback.apply_seed(out)?;
        for (&r, g) in self.inputs.iter().zip(grads) {
            add_to(adj, r, g);
        }
        Ok(())
    }
    fn replay(&self, v: &[S], c: &[S]) -> Option<Vec<S>> {
        let xs: Vec<S> = self
            .inputs
            .iter()
            .map(|&r| operand_value(v, c, r))
            .collect();
        Some(self.segment.eval(&xs))
    }
}

const MAX_SEGMENT: usize = crate::tape::MAX_NODES;

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
    push_special(Box::new(node), outputs)
}
