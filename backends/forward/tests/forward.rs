//! Forward mode and forward-over-reverse against analytic values and finite differences.

use std::sync::{Arc, Mutex};

use difi_core::{
    apply, Active, ArrayD, ArrayViewD, Backend, Const, Error, FiniteDifferences, Float, NoTangent,
    Real, Rule, SecondOrder,
};
use difi_forward::{Dual, Forward, ForwardOverReverse};
use difi_tape::Tape;
use ndarray::{arr1, Array2};

fn rosenbrock<T: Real>(x: &[T]) -> T {
    x.windows(2).fold(T::zero(), |s, w| {
        let a = T::constant(1.0) - w[0];
        let b = w[1] - w[0] * w[0];
        s + a * a + T::constant(100.0) * b * b
    })
}

fn rosenbrock_hessian(x: &[f64]) -> Array2<f64> {
    let n = x.len();
    let mut h = Array2::zeros((n, n));
    for i in 0..n - 1 {
        h[[i, i]] += 2.0 - 400.0 * (x[i + 1] - 3.0 * x[i] * x[i]);
        h[[i + 1, i + 1]] += 200.0;
        h[[i, i + 1]] -= 400.0 * x[i];
        h[[i + 1, i]] -= 400.0 * x[i];
    }
    h
}

fn close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * y.abs().max(1.0),
            "entry {i}: {x} vs {y}"
        );
    }
}

type D = Dual<f64, 2>;

#[test]
fn elementary_functions_match_finite_differences() {
    let cases: Vec<(&str, fn(D) -> D, f64)> = vec![
        ("sin", |x| x.sin(), 0.7),
        ("cos", |x| x.cos(), 0.7),
        ("tan", |x| x.tan(), 0.7),
        ("exp", |x| x.exp(), 0.7),
        ("exp2", |x| x.exp2(), 0.7),
        ("ln", |x| x.ln(), 0.7),
        ("log2", |x| x.log2(), 0.7),
        ("log10", |x| x.log10(), 0.7),
        ("sqrt", |x| x.sqrt(), 0.7),
        ("cbrt", |x| x.cbrt(), 0.7),
        ("asin", |x| x.asin(), 0.3),
        ("acos", |x| x.acos(), 0.3),
        ("atan", |x| x.atan(), 0.3),
        ("sinh", |x| x.sinh(), 0.3),
        ("cosh", |x| x.cosh(), 0.3),
        ("tanh", |x| x.tanh(), 0.3),
        ("asinh", |x| x.asinh(), 0.3),
        ("acosh", |x| x.acosh(), 1.3),
        ("atanh", |x| x.atanh(), 0.3),
        ("exp_m1", |x| x.exp_m1(), 0.3),
        ("ln_1p", |x| x.ln_1p(), 0.3),
        ("recip", |x| x.recip(), 0.3),
        ("abs", |x| x.abs(), -0.3),
        ("powi", |x| x.powi(3), 0.3),
        ("powf", |x| x.powf(Dual::constant(2.5)), 0.3),
        ("cpowf", |x| Dual::constant(2.5).powf(x), 0.3),
        ("powf-self", |x| x.powf(x), 0.3),
        ("atan2-y", |x| x.atan2(Dual::constant(0.4)), 0.3),
        ("atan2-x", |x| Dual::constant(0.4).atan2(x), 0.3),
        ("hypot", |x| x.hypot(Dual::constant(0.4)), 0.3),
        ("max", |x| x.max(Dual::constant(0.1)), 0.3),
        ("min", |x| x.min(Dual::constant(0.1)), 0.3),
        ("div", |x| Dual::constant(2.0) / x, 0.3),
        ("log", |x| x.log(Dual::constant(3.0)), 0.3),
        ("to_degrees", |x| x.to_degrees(), 0.3),
    ];
    let fd = FiniteDifferences::default();
    for (name, f, x) in cases {
        let d = Forward::<2>.derivative(f, Active(x)).unwrap();
        let reference = fd
            .derivative(|t: f64| f(Dual::constant(t)).re, Active(x))
            .unwrap();
        assert!(
            (d - reference).abs() <= 1e-7 * reference.abs().max(1.0),
            "{name}: forward {d} vs finite differences {reference}"
        );
    }
}

#[test]
fn awkward_points_have_the_documented_derivatives() {
    let d = |f: fn(D) -> D, x: f64| Forward::<2>.derivative(f, Active(x)).unwrap();
    assert_eq!(d(|x| x.abs(), 0.0), 0.0, "abs at 0: the subgradient 0");
    assert_eq!(d(|x| x.powf(Dual::constant(2.0)), 0.0), 0.0, "x² at 0");
    assert_eq!(
        d(|x| x.powf(Dual::constant(0.0)), 0.0),
        0.0,
        "x⁰ is constant"
    );
    assert_eq!(
        d(|x| Dual::constant(0.0).powf(x), 2.0),
        0.0,
        "0^x for x > 0"
    );
    assert_eq!(
        d(|x| x.hypot(Dual::constant(0.0)), 0.0),
        0.0,
        "hypot at the origin"
    );
    assert_eq!(
        d(|x| x.atan2(Dual::constant(0.0)), 0.0),
        0.0,
        "atan2 at the origin"
    );
    assert_eq!(d(|x| x.max(Dual::constant(1.0)), 2.0), 1.0);
    assert_eq!(d(|x| x.min(Dual::constant(1.0)), 2.0), 0.0);
}

#[test]
fn jacobian_by_chunks_with_a_partial_last_chunk() {
    let f = |x: Vec<Dual<f64, 3>>| -> Vec<Dual<f64, 3>> {
        (0..x.len())
            .map(|i| x[i] * x[(i + 1) % x.len()].sin())
            .collect()
    };
    let x: Vec<f64> = (0..7).map(|i| 0.1 * i as f64 + 0.2).collect();
    let j = Forward::<3>.jacobian(f, Active(&x)).unwrap();
    let jfd = FiniteDifferences::default()
        .jacobian(
            |x: Vec<f64>| {
                (0..x.len())
                    .map(|i| x[i] * x[(i + 1) % x.len()].sin())
                    .collect::<Vec<_>>()
            },
            Active(&x),
        )
        .unwrap();
    close(j.as_slice().unwrap(), jfd.as_slice().unwrap(), 1e-8);
    // Gradient by forward passes equals the tape's.
    let g = Forward::<3>
        .gradient(|x| rosenbrock(&x), Active(&x))
        .unwrap();
    let gt = Tape::new()
        .gradient(|x| rosenbrock(&x), Active(&x))
        .unwrap();
    close(&g, &gt, 1e-14);
}

#[test]
fn pushforward_with_mixed_activity() {
    let f =
        |(a, c, b): (Vec<Dual<f64, 1>>, Dual<f64, 1>, Vec<Dual<f64, 1>>)| a[0] * b[0] * c + a[1];
    let (y, t) = Forward::<1>
        .value_and_pushforward(
            f,
            (Active(&vec![2.0, 3.0]), Const(5.0), Active(&vec![7.0])),
            &(vec![1.0, 1.0], NoTangent, vec![2.0]),
        )
        .unwrap();
    assert_eq!(y, 2.0 * 7.0 * 5.0 + 3.0);
    // d = b c da0 + da1 + a c db = 35 + 1 + 2*5*2
    assert_eq!(t, 35.0 + 1.0 + 20.0);
    let err = Forward::<1>.pushforward(
        f,
        (Active(&vec![2.0, 3.0]), Const(5.0), Active(&vec![7.0])),
        &(vec![1.0], NoTangent, vec![2.0]),
    );
    assert!(matches!(err, Err(Error::SeedShape { .. })));
}

/// y = a ⊙ b with an explicit pushforward, recording which tangents it computed.
#[derive(Clone, Default)]
struct CountingMul {
    pushed: Arc<Mutex<Vec<Vec<bool>>>>,
    explicit: bool,
}

impl Rule for CountingMul {
    type Saved<T: Real> = (ArrayD<T>, ArrayD<T>);
    fn forward<T: Real>(
        &self,
        x: &[ArrayViewD<'_, T>],
        _a: &[bool],
    ) -> (Vec<ArrayD<T>>, Self::Saved<T>) {
        (vec![&x[0] * &x[1]], (x[0].to_owned(), x[1].to_owned()))
    }
    fn pullback<T: Real>(
        &self,
        s: &Self::Saved<T>,
        ct: &[ArrayViewD<'_, T>],
        n: &[bool],
    ) -> Vec<Option<ArrayD<T>>> {
        vec![n[0].then(|| &ct[0] * &s.1), n[1].then(|| &ct[0] * &s.0)]
    }
    fn pushforward<T: Real>(
        &self,
        s: &Self::Saved<T>,
        t: &[Option<ArrayViewD<'_, T>>],
    ) -> Option<Vec<ArrayD<T>>> {
        if !self.explicit {
            return None;
        }
        self.pushed
            .lock()
            .unwrap()
            .push(t.iter().map(Option::is_some).collect());
        let mut out = ArrayD::zeros(s.0.raw_dim());
        if let Some(da) = &t[0] {
            out = out + da * &s.1;
        }
        if let Some(db) = &t[1] {
            out = out + db * &s.0;
        }
        Some(vec![out])
    }
}

#[test]
fn rules_use_their_pushforward_and_const_inputs_get_no_tangent_work() {
    for explicit in [true, false] {
        let rule = CountingMul {
            explicit,
            ..Default::default()
        };
        let (u, v) = (arr1(&[1.0, 2.0]).into_dyn(), arr1(&[3.0, 4.0]).into_dyn());
        let f = |(u, v): (ArrayD<Dual<f64, 1>>, ArrayD<Dual<f64, 1>>)| {
            apply(&rule, &[u.view(), v.view()])[0].sum()
        };
        let (gu, NoTangent) = Forward::<1>.gradient(f, (Active(&u), Const(&v))).unwrap();
        assert_eq!(gu.as_slice().unwrap(), &[3.0, 4.0]);
        let (gu, gv) = Forward::<1>.gradient(f, (Active(&u), Active(&v))).unwrap();
        assert_eq!(gu.as_slice().unwrap(), &[3.0, 4.0]);
        assert_eq!(gv.as_slice().unwrap(), &[1.0, 2.0]);
        if explicit {
            let pushed = rule.pushed.lock().unwrap();
            // With v constant, no pass ever asked for v's tangent.
            assert!(
                pushed[..2].iter().all(|m| m == &vec![true, false]),
                "{pushed:?}"
            );
            // With both active, every pass is told which input carries a tangent in it.
            assert!(
                pushed[2..]
                    .iter()
                    .all(|m| m.iter().filter(|&&a| a).count() == 1),
                "{pushed:?}"
            );
        }
    }
}

#[test]
fn nested_forward_has_no_perturbation_confusion() {
    let d = Forward::<1>
        .derivative(
            |x: Dual<f64, 1>| {
                let inner = Forward::<1>
                    .derivative(
                        |(x, y): (Dual<Dual<f64, 1>, 1>, Dual<Dual<f64, 1>, 1>)| x * y,
                        (Const(x), Active(Dual::constant(3.0))),
                    )
                    .unwrap();
                x * inner
            },
            Active(4.0),
        )
        .unwrap();
    assert_eq!(d, 8.0);
    let d = Forward::<1>
        .derivative(
            |x: Dual<f64, 1>| {
                let inner = Forward::<1>
                    .derivative(
                        |(x, y): (Dual<Dual<f64, 1>, 1>, Dual<Dual<f64, 1>, 1>)| x + y,
                        (Const(x), Active(Dual::constant(3.0))),
                    )
                    .unwrap();
                x * inner
            },
            Active(4.0),
        )
        .unwrap();
    assert_eq!(d, 1.0);
    assert_eq!(<Dual<Dual<f64, 1>, 1>>::nest_level(), 2);
}

#[test]
fn forward_over_reverse_hessian_hvp_and_second_derivative_are_exact() {
    let b = ForwardOverReverse::<Tape, 4>::default();
    let x: Vec<f64> = (0..9).map(|i| (0.4 * i as f64).cos()).collect();
    let want = rosenbrock_hessian(&x);
    let (y, g, h) = b
        .value_gradient_and_hessian(|x| rosenbrock(&x), Active(&x))
        .unwrap();
    assert_eq!(y, rosenbrock(&x));
    let gt = Tape::new()
        .gradient(|x| rosenbrock(&x), Active(&x))
        .unwrap();
    close(&g, &gt, 1e-14);
    close(h.as_slice().unwrap(), want.as_slice().unwrap(), 1e-13);
    let v: Vec<f64> = (0..9).map(|i| i as f64 - 4.0).collect();
    let (g2, hv) = b
        .gradient_and_hvp(|x| rosenbrock(&x), Active(&x), &v)
        .unwrap();
    close(&g2, &gt, 1e-14);
    close(&hv, &want.dot(&arr1(&v)).to_vec(), 1e-12);
    let d2 = b
        .second_derivative(|t| t.powi(4) + t.sin(), Active(0.5))
        .unwrap();
    assert!((d2 - (12.0 * 0.25 - 0.5f64.sin())).abs() < 1e-14);
    // First-order operators go to the reverse engine.
    assert_eq!(b.gradient(|x| rosenbrock(&x), Active(&x)).unwrap(), gt);
}

#[test]
fn forward_over_reverse_with_mixed_activity_and_prepared_forms() {
    let b = ForwardOverReverse::<Tape>::default();
    // f(a, c, b) = c · Σ a_i² b_i: H_aa = 2c diag(b), H_ab = 2c diag(a), H_bb = 0.
    let f = |(a, c, bb): (Vec<_>, _, Vec<_>)| {
        a.iter().zip(&bb).fold(
            Real::constant(0.0),
            |s: difi_tape::Var<Dual<f64, 8>>, (&x, &y)| s + x * x * y,
        ) * c
    };
    let h = b
        .hessian(
            f,
            (Active(&vec![1.0, 2.0]), Const(3.0), Active(&vec![4.0, 5.0])),
        )
        .unwrap();
    let want = [
        24.0, 0.0, 6.0, 0.0, 0.0, 30.0, 0.0, 12.0, 6.0, 0.0, 0.0, 0.0, 0.0, 12.0, 0.0, 0.0,
    ];
    close(h.as_slice().unwrap(), &want, 1e-14);
    let prep = b.prepare_hessian((Active(&vec![0.0, 0.0]), Const(1.0), Active(&vec![0.0, 0.0])));
    for _ in 0..2 {
        let h2 = prep
            .hessian(
                f,
                (Active(&vec![1.0, 2.0]), Const(3.0), Active(&vec![4.0, 5.0])),
            )
            .unwrap();
        assert_eq!(h2, h);
    }
    let err = prep
        .hessian(
            f,
            (
                Active(&vec![1.0, 2.0, 3.0]),
                Const(3.0),
                Active(&vec![4.0, 5.0]),
            ),
        )
        .unwrap_err();
    assert!(matches!(
        err,
        Error::PreparedShapeMismatch { argument: 1, .. }
    ));
    let hvp = |(a, c, bb): (
        Vec<difi_tape::Var<Dual<f64, 1>>>,
        difi_tape::Var<Dual<f64, 1>>,
        Vec<difi_tape::Var<Dual<f64, 1>>>,
    )| {
        a.iter().zip(&bb).fold(
            Real::constant(0.0),
            |s: difi_tape::Var<Dual<f64, 1>>, (&x, &y)| s + x * x * y,
        ) * c
    };
    let (ha, NoTangent, hb) = b
        .hvp(
            hvp,
            (Active(&vec![1.0, 2.0]), Const(3.0), Active(&vec![4.0, 5.0])),
            &(vec![1.0, 0.0], NoTangent, vec![0.0, 1.0]),
        )
        .unwrap();
    assert_eq!(ha, vec![24.0, 12.0]);
    assert_eq!(hb, vec![6.0, 0.0]);
}

#[test]
fn forward_over_reverse_on_finite_differences_is_close() {
    // Any reverse engine works as R, even the finite-difference one (approximately).
    let b = ForwardOverReverse::<FiniteDifferences, 2>::default();
    let x = vec![0.3, -0.2, 0.5];
    let h = b.hessian(|x| rosenbrock(&x), Active(&x)).unwrap();
    close(
        h.as_slice().unwrap(),
        rosenbrock_hessian(&x).as_slice().unwrap(),
        1e-5,
    );
}

#[test]
fn forward_over_reverse_through_a_rule_is_exact() {
    // The rule's generic pullback runs on duals: second derivatives through a custom rule.
    let rule = CountingMul::default();
    let b = ForwardOverReverse::<Tape, 2>::default();
    let u = arr1(&[1.0, 2.0]).into_dyn();
    // f(u) = Σ (u ⊙ u)² ⇒ H = diag(12 u²)
    let h = b
        .hessian(
            |u: ArrayD<_>| {
                let sq = apply(&rule, &[u.view(), u.view()]).pop().unwrap();
                apply(&rule, &[sq.view(), sq.view()])[0].sum()
            },
            Active(&u),
        )
        .unwrap();
    assert_eq!(h.as_slice().unwrap(), &[12.0, 0.0, 0.0, 48.0]);
}

#[test]
fn forward_over_reverse_batches_jacobians_on_its_reverse_engine() {
    // The tape replays one recording for the whole batch: `f` runs once, not once per set.
    let calls = std::cell::Cell::new(0);
    let f = |(x, c): ([difi_tape::Var<f64>; 2], difi_tape::Var<f64>)| {
        calls.set(calls.get() + 1);
        [x[0] * x[1] * c]
    };
    let sets: Vec<([f64; 2], f64)> = (0..20).map(|k| ([k as f64, 2.0], 0.5)).collect();
    let mut got = Vec::new();
    ForwardOverReverse::<Tape>::default()
        .jacobian_batch(
            f,
            sets.iter().map(|(x, c)| (Active(x), Const(*c))),
            |_, _, jac| got.push([jac[[0, 0]], jac[[0, 1]]]),
        )
        .unwrap();
    let want: Vec<[f64; 2]> = sets.iter().map(|(x, c)| [x[1] * c, x[0] * c]).collect();
    assert_eq!((got, calls.get()), (want, 1));
}

#[test]
fn forward_inside_a_tape_keeps_a_tangent_whose_value_is_zero() {
    // g(p) = d/dt (t (p − 3) + 1)^2.5 at t = 0 = 2.5 (p − 3), so g'(3) = 2.5. At p = 3 the inner
    // tangent t (p − 3) has value 0 but depends on p: it is not an exact zero.
    let g = |p: difi_tape::Var<f64>| {
        Forward::<1>
            .derivative(
                |t: Dual<difi_tape::Var<f64>, 1>| {
                    let p = Dual::constant_of(p);
                    (t * (p - Dual::constant_of(difi_tape::Var::constant(3.0)))
                        + Dual::constant_of(difi_tape::Var::constant(1.0)))
                    .powf(Dual::constant_of(difi_tape::Var::constant(2.5)))
                },
                Active(difi_tape::Var::constant(0.0)),
            )
            .unwrap()
    };
    let d = Tape::new().derivative(g, Active(3.0)).unwrap();
    assert!((d - 2.5).abs() < 1e-12, "{d}");
}
