//! `jacobian_batch` on the tape: one recording replayed for many argument sets at once must
//! answer what a Jacobian per set answers.

use std::cell::Cell;

use difi_core::{sum, Active, Backend, Const, Error, FiniteDifferences, Real};
use difi_tape::{Tape, Var};
use ndarray::{Array2, ArrayView1};

/// Many ops, a constant output, one that depends on the constants only, and a branch.
fn mixed<T: Real>(x: &[T], c: &[T]) -> [T; 5] {
    let r = (x[0] * x[0] + x[1] * x[1] + c[0]).sqrt();
    let s = x[0].sin() * x[1].cos() - (x[2] / r).exp() + x[2].tanh() * c[1];
    let t = x[0].powi(3) + x[1].abs().powf(x[2]) + x[0].atan2(x[1]) + x[1].hypot(c[0]);
    let u = if x[0] > x[1] {
        x[0] - x[1]
    } else {
        (x[1] - x[0]) * x[2]
    };
    [s / r, -t + x[2].max(c[1]), u, T::constant(7.0), c[0] * c[1]]
}

/// 37 sets (two full chunks and a partial one) whose constants differ from set to set; 13 take
/// the other branch of `mixed` than the first set, 7 and 6 in the two full chunks.
fn sets() -> Vec<([f64; 3], [f64; 2])> {
    (0..37)
        .map(|k| {
            let t = k as f64;
            let x0 = 0.3 + 0.1 * t;
            let x = [x0, x0 + 0.3 * (0.7 * t).sin() - 0.1, 0.2 + 0.05 * t];
            (x, [1.0 + 0.1 * t, 0.4 - 0.02 * t])
        })
        .collect()
}

#[test]
fn batch_matches_a_jacobian_per_set_and_finite_differences() {
    let b = Tape::new();
    let calls = Cell::new(0);
    let f = |(x, c): ([Var<f64>; 3], [Var<f64>; 2])| {
        calls.set(calls.get() + 1);
        mixed(&x, &c)
    };
    let sets = sets();
    let other_branch = sets.iter().filter(|(x, _)| x[0] <= x[1]).count();
    assert_eq!((other_branch, sets[0].0[0] > sets[0].0[1]), (13, true));
    let mut seen = 0;
    b.jacobian_batch(
        f,
        sets.iter().map(|(x, c)| (Active(x), Const(c))),
        |k, value, jac| {
            assert_eq!(k, seen);
            seen += 1;
            let (x, c) = &sets[k];
            let (want_value, want) = b.value_and_jacobian(f, (Active(x), Const(c))).unwrap();
            assert_eq!(value, want_value, "set {k}");
            for (got, want) in jac.iter().zip(&want) {
                assert!(
                    (got - want).abs() <= 1e-14 * want.abs().max(1.0),
                    "set {k}: {jac} vs {want}"
                );
            }
            let fd = FiniteDifferences::default()
                .jacobian(
                    |(x, c): ([f64; 3], [f64; 2])| mixed(&x, &c),
                    (Active(x), Const(c)),
                )
                .unwrap();
            for (got, fd) in jac.iter().zip(&fd) {
                assert!(
                    (got - fd).abs() <= 1e-6 * fd.abs().max(1.0),
                    "set {k}: {jac} vs {fd}"
                );
            }
            assert_eq!(
                jac.row(3).iter().chain(jac.row(4)).copied().sum::<f64>(),
                0.0
            );
        },
    )
    .unwrap();
    assert_eq!(seen, sets.len());
    // One recording for the batch, one per set on the branch it did not record (no chunk has a
    // majority of them), and one per set for the checks above.
    assert_eq!(calls.get(), 1 + other_branch + sets.len());
}

#[test]
fn a_chunk_mostly_on_the_other_branch_is_recorded_again() {
    // The first set takes the rare branch: the first chunk's other sets fail its guard, and the
    // chunks after it replay a recording of the common branch.
    let calls = Cell::new(0);
    let f = |x: [Var<f64>; 1]| {
        calls.set(calls.get() + 1);
        [if x[0] > Var::constant(0.0) {
            x[0] * x[0]
        } else {
            -x[0]
        }]
    };
    let xs: Vec<[f64; 1]> = (0..48).map(|k| [k as f64 - 0.5]).collect();
    let mut grads = Vec::new();
    Tape::new()
        .jacobian_batch(f, xs.iter().map(Active), |_, _, jac| {
            grads.push(jac[[0, 0]])
        })
        .unwrap();
    let want: Vec<f64> = xs
        .iter()
        .map(|x| if x[0] > 0.0 { 2.0 * x[0] } else { -1.0 })
        .collect();
    assert_eq!(grads, want);
    // The batch recording, 15 sets of the first chunk alone, a recording of the common branch.
    assert_eq!(calls.get(), 1 + 15 + 1);
}

#[test]
fn array_nodes_fall_back_to_a_jacobian_per_set() {
    // `sum` is an array node, which has no lane-wise replay.
    let f = |(x, w): (Vec<Var<f64>>, Var<f64>)| {
        let s = sum(&ArrayView1::from(&x[..]));
        [s * w, s * s]
    };
    let xs: Vec<Vec<f64>> = (0..20).map(|k| vec![k as f64, 1.0, -2.0]).collect();
    let mut got = Vec::new();
    Tape::new()
        .jacobian_batch(
            f,
            xs.iter()
                .enumerate()
                .map(|(k, x)| (Active(x), Const(k as f64))),
            |k, v, jac| got.push((k, v, jac.to_owned())),
        )
        .unwrap();
    for (k, value, jac) in got {
        let s = k as f64 - 1.0;
        assert_eq!(value, [s * k as f64, s * s]);
        assert_eq!(
            jac,
            Array2::from_shape_fn((2, 3), |(r, _)| if r == 0 { k as f64 } else { 2.0 * s })
        );
    }
}

#[test]
fn a_set_of_another_shape_is_an_error_after_the_sets_before_it() {
    let f = |x: Vec<Var<f64>>| vec![x[0] * x[0]];
    let xs = [vec![1.0, 2.0], vec![3.0, 4.0], vec![5.0]];
    let mut seen = Vec::new();
    let err = Tape::new()
        .jacobian_batch(f, xs.iter().map(Active), |k, _, jac| {
            seen.push((k, jac[[0, 0]]))
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::PreparedShapeMismatch {
                operator: "jacobian_batch",
                argument: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(seen, vec![(0, 2.0), (1, 6.0)]);
}

#[test]
fn nested_tapes_batch_too() {
    // The derivative of x ↦ (d/dx x³) · c, batched over x and c, on the tape over itself.
    let f = |(x, c): (Var<f64>, Var<f64>)| {
        let d = Tape::new()
            .derivative(|y: Var<Var<f64>>| y * y * y, Active(x))
            .unwrap();
        [d * c]
    };
    let sets: Vec<(f64, f64)> = (0..20).map(|k| (0.5 + k as f64, 2.0 - k as f64)).collect();
    let mut got = Vec::new();
    Tape::new()
        .jacobian_batch(
            f,
            sets.iter().map(|&(x, c)| (Active(x), Const(c))),
            |k, v, jac| got.push((k, v[0], jac[[0, 0]])),
        )
        .unwrap();
    for (k, value, d) in got {
        let (x, c) = sets[k];
        assert_eq!((value, d), (3.0 * x * x * c, 6.0 * x * c));
    }
}

#[test]
fn an_outer_tape_differentiates_through_a_batch() {
    // d/dp Σ_k ∂/∂x₀ [x₀ x₁ p] at x_k = (k, 2 + k) = Σ_k (2 + k): the batch runs on tracers of an
    // outer tape, its constant p one of them.
    let sets: Vec<[f64; 2]> = (0..20).map(|k| [k as f64, 2.0 + k as f64]).collect();
    let total = |p: Var<f64>| {
        let mut s = Var::constant(0.0);
        Tape::new()
            .jacobian_batch(
                |(x, c): ([Var<Var<f64>>; 2], Var<Var<f64>>)| [x[0] * x[1] * c],
                sets.iter()
                    .map(|x| (Active(x.map(Var::constant)), Const(p))),
                |_, _, jac| s += jac[[0, 0]],
            )
            .unwrap();
        s
    };
    let d = Tape::new().derivative(total, Active(3.0)).unwrap();
    assert_eq!(d, sets.iter().map(|x| x[1]).sum::<f64>());
}
