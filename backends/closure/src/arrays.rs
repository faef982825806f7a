//! Array-level primitives, custom rules, hooks and checkpoints: one pullback closure each,
//! capturing only what the active operands' cotangents need.

use difi_core::{check_pullback, elementwise_len, Elementwise, Hook, Real, Result, Rule, Segment};
use ndarray::{Array1, Array2, ArrayD, ArrayView1, ArrayView2, ArrayViewD, IxDyn};

use crate::graph::{with_graph, ArrayPullback, Entry, Graph, NO_ID};
use crate::tracked::Tracked;

fn ids<S: Real>(g: &mut Graph<S>, xs: impl IntoIterator<Item = Tracked<S>>) -> Vec<u32> {
    xs.into_iter().map(|x| x.operand(g)).collect()
}

/// Registers `pullback` with one output slot per value.
fn register<S: Real>(
    g: &mut Graph<S>,
    pullback: ArrayPullback<S>,
    values: Vec<S>,
) -> Vec<Tracked<S>> {
    let p = g.arrays.len();
    g.arrays.push((pullback, values.len()));
    let head = g.push(Entry::array(p));
    let epoch = g.epoch;
    values
        .into_iter()
        .map(|value| Tracked {
            value,
            id: if head == NO_ID {
                NO_ID
            } else {
                g.push(Entry::leaf())
            },
            epoch,
        })
        .collect()
}

#[inline]
fn add<S: Real>(adj: &mut [S], id: u32, v: S) {
    if id != NO_ID {
        adj[id as usize] += v;
    }
}

pub(crate) fn sum<S: Real>(xs: ArrayView1<'_, Tracked<S>>) -> Tracked<S> {
    let value = xs.iter().fold(S::zero(), |s, x| s + x.value);
    if !xs.iter().any(|x| x.is_active()) {
        return Tracked::constant_of(value);
    }
    with_graph::<S, _>(|g| {
        let ids: Vec<u32> = ids(g, xs.iter().copied().filter(|x| x.is_active()));
        let pb: ArrayPullback<S> = Box::new(move |out, adj| {
            ids.iter().for_each(|&i| add(adj, i, out[0]));
            Ok(())
        });
        register(g, pb, vec![value])[0]
    })
}

/// `Σ_i f(x₀[i], …)` (`summed`) or `[f(x₀[i], …)]`: value and gradient of `f` at each element
/// in one pass on duals; the pullback scales the active operands' partials by the cotangents.
fn elementwise<S: Real, F: Elementwise<N>, const N: usize>(
    f: &F,
    xs: [ArrayView1<'_, Tracked<S>>; N],
    summed: bool,
) -> Vec<Tracked<S>> {
    let len = elementwise_len(&xs);
    let active = xs.each_ref().map(|x| x.iter().any(|t| t.is_active()));
    if !active.iter().any(|&a| a) {
        let values = xs.each_ref().map(|x| x.map(|t| t.value));
        let views = values.each_ref().map(|v| v.view());
        return match summed {
            true => vec![Tracked::constant_of(S::sum_map(f, views))],
            false => S::map_elementwise(f, views)
                .map(|&y| Tracked::constant_of(y))
                .to_vec(),
        };
    }
    let mut values = Vec::with_capacity(if summed { 1 } else { len });
    let mut sum = S::zero();
    let mut partials: [Vec<S>; N] = std::array::from_fn(|k| match active[k] {
        true => Vec::with_capacity(len),
        false => Vec::new(),
    });
    for i in 0..len {
        let (y, gradient) = f.value_and_gradient(xs.each_ref().map(|x| x[i].value), active);
        if summed {
            sum += y;
        } else {
            values.push(y);
        }
        for (k, d) in gradient.into_iter().enumerate() {
            if active[k] {
                partials[k].push(d);
            }
        }
    }
    if summed {
        values.push(sum);
    }
    with_graph::<S, _>(|g| {
        let ids: [Vec<u32>; N] = std::array::from_fn(|k| match active[k] {
            true => ids(g, xs[k].iter().copied()),
            false => Vec::new(),
        });
        let pb: ArrayPullback<S> = Box::new(move |out, adj| {
            for (ids, partials) in ids.iter().zip(&partials) {
                for (e, (&i, &d)) in ids.iter().zip(partials).enumerate() {
                    let ct = if summed { out[0] } else { out[e] };
                    // An element no output uses adds nothing, even where `d` is infinite.
                    if !ct.is_exact_zero() {
                        add(adj, i, ct * d);
                    }
                }
            }
            Ok(())
        });
        register(g, pb, values)
    })
}

pub(crate) fn sum_map<S: Real, F: Elementwise<N>, const N: usize>(
    f: &F,
    xs: [ArrayView1<'_, Tracked<S>>; N],
) -> Tracked<S> {
    elementwise(f, xs, true)[0]
}

pub(crate) fn map<S: Real, F: Elementwise<N>, const N: usize>(
    f: &F,
    xs: [ArrayView1<'_, Tracked<S>>; N],
) -> Array1<Tracked<S>> {
    Array1::from(elementwise(f, xs, false))
}

pub(crate) fn dot<S: Real>(
    a: ArrayView1<'_, Tracked<S>>,
    b: ArrayView1<'_, Tracked<S>>,
) -> Tracked<S> {
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
    let (need_a, need_b) = (
        a.iter().any(|x| x.is_active()),
        b.iter().any(|x| x.is_active()),
    );
    if !(need_a || need_b) {
        return Tracked::constant_of(value);
    }
    with_graph::<S, _>(|g| {
        // A constant operand gets no ids. a's cotangent needs b's values and the other way
        // round: capture only what is needed.
        let (ia, bv): (Vec<u32>, Vec<S>) = if need_a {
            (
                ids(g, a.iter().copied()),
                b.iter().map(|x| x.value).collect(),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let (ib, av): (Vec<u32>, Vec<S>) = if need_b {
            (
                ids(g, b.iter().copied()),
                a.iter().map(|x| x.value).collect(),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let pb: ArrayPullback<S> = Box::new(move |out, adj| {
            let g = out[0];
            for (&i, &v) in ia.iter().zip(&bv) {
                add(adj, i, g * v);
            }
            for (&i, &v) in ib.iter().zip(&av) {
                add(adj, i, g * v);
            }
            Ok(())
        });
        register(g, pb, vec![value])[0]
    })
}

pub(crate) fn matmul<S: Real>(
    a: ArrayView2<'_, Tracked<S>>,
    b: ArrayView2<'_, Tracked<S>>,
) -> Array2<Tracked<S>> {
    assert_eq!(
        a.ncols(),
        b.nrows(),
        "Real::matmul: left operand has {} columns but the right one has {} rows",
        a.ncols(),
        b.nrows()
    );
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    let av = a.mapv(|x| x.value);
    let bv = b.mapv(|x| x.value);
    let values = S::matmul(av.view(), bv.view());
    let (need_a, need_b) = (
        a.iter().any(|x| x.is_active()),
        b.iter().any(|x| x.is_active()),
    );
    if !(need_a || need_b) {
        return values.mapv(Tracked::constant_of);
    }
    let outs = with_graph::<S, _>(|g| {
        // A constant operand gets no ids: its cotangent is never computed.
        let ia = if need_a {
            ids(g, a.iter().copied())
        } else {
            Vec::new()
        };
        let ib = if need_b {
            ids(g, b.iter().copied())
        } else {
            Vec::new()
        };
        let bv = if need_a { Some(bv) } else { None };
        let av = if need_b { Some(av) } else { None };
        let pb: ArrayPullback<S> = Box::new(move |out, adj| {
            let cbar = ndarray::ArrayView2::from_shape((m, n), out).expect("m × n cotangents");
            if let Some(bv) = &bv {
                let abar = S::matmul(cbar, bv.t());
                for (&i, &v) in ia.iter().zip(abar.iter()) {
                    add(adj, i, v);
                }
            }
            if let Some(av) = &av {
                let bbar = S::matmul(av.t(), cbar);
                for (&i, &v) in ib.iter().zip(bbar.iter()) {
                    add(adj, i, v);
                }
            }
            Ok(())
        });
        register(g, pb, values.iter().copied().collect())
    });
    let _ = k;
    Array2::from_shape_vec((m, n), outs).expect("m × n outputs")
}

pub(crate) fn apply_rule<S: Real, R: Rule>(
    rule: &R,
    inputs: &[ArrayViewD<'_, Tracked<S>>],
) -> Vec<ArrayD<Tracked<S>>> {
    let active: Vec<bool> = inputs
        .iter()
        .map(|x| x.iter().any(|v| v.is_active()))
        .collect();
    let values: Vec<ArrayD<S>> = inputs.iter().map(|x| x.mapv(|v| v.value)).collect();
    let views: Vec<ArrayViewD<'_, S>> = values.iter().map(|a| a.view()).collect();
    let (outputs, saved) = rule.forward(&views, &active);
    if !active.iter().any(|&a| a) {
        return outputs
            .into_iter()
            .map(|o| o.mapv(Tracked::constant_of))
            .collect();
    }
    let shapes: Vec<Vec<usize>> = outputs.iter().map(|o| o.shape().to_vec()).collect();
    let input_shapes: Vec<Vec<usize>> = inputs.iter().map(|x| x.shape().to_vec()).collect();
    // Clones run user code: before the graph is borrowed (closures given to `with_graph` only
    // move data).
    let rule = rule.clone();
    let flat = with_graph::<S, _>(|g| {
        // Constant inputs get no ids: their cotangents are never asked for.
        let input_ids: Vec<Vec<u32>> = inputs
            .iter()
            .zip(&active)
            .map(|(x, &a)| {
                if a {
                    ids(g, x.iter().copied())
                } else {
                    Vec::new()
                }
            })
            .collect();
        let shapes = shapes.clone();
        let active = active.clone();
        let pb: ArrayPullback<S> = Box::new(move |out, adj| {
            // The output cotangents are consecutive: the rule reads them in place.
            let mut offset = 0;
            let views: Vec<ArrayViewD<'_, S>> = shapes
                .iter()
                .map(|s| {
                    let len: usize = s.iter().product();
                    let a = ArrayViewD::from_shape(IxDyn(s), &out[offset..offset + len])
                        .expect("shape");
                    offset += len;
                    a
                })
                .collect();
            let result = rule.pullback(&saved, &views, &active);
            check_pullback(rule.name(), &result, &active, &input_shapes)?;
            for (ids, ct) in input_ids.iter().zip(&result) {
                if let Some(ct) = ct {
                    for (&id, &v) in ids.iter().zip(ct.iter()) {
                        add(adj, id, v);
                    }
                }
            }
            Ok(())
        });
        register(
            g,
            pb,
            outputs.iter().flat_map(|o| o.iter().copied()).collect(),
        )
    });
    let mut it = flat.into_iter();
    shapes
        .iter()
        .map(|s| {
            ArrayD::from_shape_vec(IxDyn(s), it.by_ref().take(s.iter().product()).collect())
                .expect("shape")
        })
        .collect()
}

pub(crate) fn hook<S: Real, H: Hook>(x: Tracked<S>, hook: H) -> Tracked<S> {
    if !x.is_active() {
        return x;
    }
    with_graph::<S, _>(|g| {
        let id = x.operand(g);
        let pb: ArrayPullback<S> = Box::new(move |out, adj| {
            add(adj, id, hook.cotangent(out[0]));
            Ok(())
        });
        register(g, pb, vec![x.value])[0]
    })
}

pub(crate) fn checkpoint<S: Real, C: Segment>(
    segment: &C,
    inputs: &[Tracked<S>],
) -> Vec<Tracked<S>> {
    let xs: Vec<S> = inputs.iter().map(|v| v.value).collect();
    let outputs = segment.eval(&xs);
    if !inputs.iter().any(|x| x.is_active()) {
        return outputs.into_iter().map(Tracked::constant_of).collect();
    }
    // The clone runs user code: before the graph is borrowed.
    let segment = segment.clone();
    with_graph::<S, _>(|g| {
        let ids = ids(g, inputs.iter().copied());
        // Keeps only the inputs; the segment is recomputed when the pullback runs.
        let pb: ArrayPullback<S> = Box::new(move |out, adj| -> Result<()> {
            let (_, pullback) = crate::backend::record_flat::<S>(&xs, |v| segment.eval(v))?;
            for (&id, ct) in ids.iter().zip(pullback.apply_seed(out)?) {
                add(adj, id, ct);
            }
            Ok(())
        });
        register(g, pb, outputs)
    })
}
