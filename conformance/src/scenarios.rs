//! The scenarios and the generic runners.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use difi_core::{
    apply, checkpoint, map, sum_map, Active, ArrayD, ArrayViewD, Backend, Const, Elementwise,
    Error, FiniteDifferences, Hook, NoTangent, Real, Rule, SecondOrder, Segment,
};
use difi_fft::{conv, FftConv};
use ndarray::{arr1, arr2, Array1, Array2, Array3, ArrayView1};

use crate::functions::{matrix_map, matrix_map_jacobian, ScalarFn, VectorFn, VectorVectorFn};
use crate::{Outcome, Profile, Status};

type Check = std::result::Result<f64, String>;

/// Tolerance of scenarios whose reference comes from finite differences.
const FD_REFERENCE: f64 = 1e-6;
const FD_SECOND_REFERENCE: f64 = 1e-4;

pub(crate) struct Runner<'a> {
    filter: &'a str,
    /// Only list the selected names; run nothing.
    list_only: bool,
    pub(crate) outcomes: Vec<Outcome>,
}

impl<'a> Runner<'a> {
    pub(crate) fn new(filter: &'a str) -> Self {
        Runner {
            filter,
            list_only: false,
            outcomes: Vec::new(),
        }
    }

    pub(crate) fn lister() -> Self {
        let mut r = Runner::new("");
        r.list_only();
        r
    }

    pub(crate) fn list_only(&mut self) {
        self.list_only = true;
    }

    fn wanted(&self, name: &str) -> bool {
        match self.filter.strip_prefix('=') {
            Some(exact) => name == exact,
            None => self.filter.is_empty() || name.contains(self.filter),
        }
    }

    fn run(&mut self, name: String, tolerance: f64, body: impl FnOnce() -> Check) {
        if !self.wanted(&name) {
            return;
        }
        if self.list_only {
            self.not_applicable(name, "listed, not run");
            return;
        }
        let status = match catch_unwind(AssertUnwindSafe(body)) {
            Ok(Ok(worst)) if worst <= tolerance => Status::Pass { worst },
            Ok(Ok(worst)) => Status::Fail {
                worst,
                reason: format!("relative error above the tolerance {tolerance:.0e}"),
            },
            Ok(Err(reason)) => Status::Fail {
                worst: f64::INFINITY,
                reason,
            },
            Err(panic) => Status::Fail {
                worst: f64::INFINITY,
                reason: format!(
                    "panicked: {}",
                    panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default()
                ),
            },
        };
        self.outcomes.push(Outcome {
            scenario: name,
            status,
        });
    }

    fn not_applicable(&mut self, name: String, reason: &str) {
        if self.wanted(&name) {
            self.outcomes.push(Outcome {
                scenario: name,
                status: Status::NotApplicable(reason.into()),
            });
        }
    }
}

fn err(e: Error) -> String {
    format!("unexpected error: {e}")
}

/// Worst relative error `|a - b| / max(1, |b|)`; infinite on a length mismatch or NaN.
fn rel(got: &[f64], want: &[f64]) -> f64 {
    if got.len() != want.len() {
        return f64::INFINITY;
    }
    got.iter().zip(want).fold(0.0, |m: f64, (a, b)| {
        let e = (a - b).abs() / b.abs().max(1.0);
        if e.is_nan() {
            f64::INFINITY
        } else {
            m.max(e)
        }
    })
}

/// Elements in logical (row-major) order, whatever the memory layout.
fn elements(a: &Array2<f64>) -> Vec<f64> {
    a.iter().copied().collect()
}

/// `Err` if a call changed its input.
fn unchanged<T: PartialEq + std::fmt::Debug>(
    now: &T,
    before: &T,
) -> std::result::Result<(), String> {
    if now == before {
        Ok(())
    } else {
        Err(format!(
            "the input changed during the call: {before:?} became {now:?}"
        ))
    }
}

fn rel1(got: f64, want: f64) -> f64 {
    rel(&[got], &[want])
}

fn expect_shape_error<T>(r: difi_core::Result<T>) -> Check {
    match r {
        Err(Error::PreparedShapeMismatch { argument: 1, .. }) => Ok(0.0),
        Err(e) => Err(format!(
            "expected PreparedShapeMismatch for argument 1, got: {e}"
        )),
        Ok(_) => Err("a prepared call with another shape succeeded".into()),
    }
}

/// `√a + c`, singular at a = 0 in `a` only.
#[derive(Clone, Copy, Debug)]
struct SqrtPlus;

impl Elementwise<2> for SqrtPlus {
    fn eval<T: Real>(&self, [a, c]: [T; 2]) -> T {
        difi_core::Float::sqrt(a) + c
    }
}

const X6: [f64; 6] = [0.5, -0.3, 0.8, 1.1, -0.6, 0.2];
const X4: [f64; 4] = [0.4, -0.7, 1.3, 0.2];

/// A derived struct input.
#[derive(Clone, Debug, PartialEq, difi_derive::Differentiable)]
#[difi(crate = "difi_core")]
pub struct Particle<T> {
    /// Position.
    pub x: T,
    /// Velocity.
    pub v: T,
    /// Weights.
    pub w: Vec<T>,
}

fn particle_energy<T: Real>(p: &Particle<T>) -> T {
    p.x * p.v + p.w.iter().fold(T::zero(), |s, &w| s + w * w) * p.x
}

fn mixed<T: Real>(a: &[T], c: T, b: &[T]) -> T {
    a.iter().zip(b).fold(T::zero(), |s, (&x, &y)| s + x * x * y) * c
}

/// `a b` for [`difi_core::sum_map`], recording the masks engines pass to its
/// `value_and_gradient`.
#[derive(Clone, Default)]
struct ElementwiseMaskProbe {
    asked: Arc<Mutex<Vec<Vec<bool>>>>,
}

impl Elementwise<2> for ElementwiseMaskProbe {
    fn eval<T: Real>(&self, [a, b]: [T; 2]) -> T {
        a * b
    }
    fn value_and_gradient<T: Real>(&self, [a, b]: [T; 2], needed: [bool; 2]) -> (T, [T; 2]) {
        self.asked.lock().unwrap().push(needed.to_vec());
        let partial = |n: bool, d: T| if n { d } else { T::zero() };
        (a * b, [partial(needed[0], b), partial(needed[1], a)])
    }
}

/// y = a ⊙ b, recording which inputs each pullback and pushforward was asked about.
#[derive(Clone, Default)]
struct MaskProbe {
    asked: Arc<Mutex<Vec<Vec<bool>>>>,
}

impl Rule for MaskProbe {
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
        self.asked.lock().unwrap().push(n.to_vec());
        vec![n[0].then(|| &ct[0] * &s.1), n[1].then(|| &ct[0] * &s.0)]
    }
    fn pushforward<T: Real>(
        &self,
        s: &Self::Saved<T>,
        t: &[Option<ArrayViewD<'_, T>>],
    ) -> Option<Vec<ArrayD<T>>> {
        self.asked
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

/// y = 2 xᵀ, returned in column-major memory (a transposed copy keeps its layout): engines
/// must pair output cotangents and tangents with elements in logical order, whatever the
/// layout a rule returns.
#[derive(Clone)]
struct TransposeTwice;

impl Rule for TransposeTwice {
    type Saved<T: Real> = ();
    fn forward<T: Real>(&self, x: &[ArrayViewD<'_, T>], _a: &[bool]) -> (Vec<ArrayD<T>>, ()) {
        (vec![x[0].t().mapv(|v| v * T::constant(2.0))], ())
    }
    fn pullback<T: Real>(
        &self,
        _s: &(),
        ct: &[ArrayViewD<'_, T>],
        n: &[bool],
    ) -> Vec<Option<ArrayD<T>>> {
        vec![n[0].then(|| ct[0].t().mapv(|v| v * T::constant(2.0)))]
    }
}

#[derive(Clone)]
struct Double;
impl Hook for Double {
    fn cotangent<T: Real>(&self, ct: T) -> T {
        ct * T::constant(2.0)
    }
}

#[derive(Clone)]
struct Steps;
impl Segment for Steps {
    fn eval<T: Real>(&self, x: &[T]) -> Vec<T> {
        let mut t = x[0];
        for _ in 0..20 {
            t = (t.cos() + x[1]).sin();
        }
        vec![t * x[1], t]
    }
}

/// The gradient of `t (x₁ + 1)` after [`Steps`] at `x`, with `t` and `dt/dx` carried through
/// the 20 steps.
fn steps_gradient(x: &[f64]) -> [f64; 2] {
    let (mut t, mut dt): (f64, [f64; 2]) = (x[0], [1.0, 0.0]);
    for _ in 0..20 {
        let u = t.cos() + x[1];
        dt = [
            u.cos() * (-t.sin() * dt[0]),
            u.cos() * (-t.sin() * dt[1] + 1.0),
        ];
        t = u.sin();
    }
    [dt[0] * (x[1] + 1.0), dt[1] * (x[1] + 1.0) + t]
}

/// A pendulum's step, `[a, b] → [a + h b, b − h sin(a + h b)]`, declared equal to itself
/// ([`Segment::same_as`]): a tape records it once and replays it for the other steps. The
/// state keeps swinging, so a step replayed at another step's values would be found out.
#[derive(Clone)]
struct PendulumStep;
impl PendulumStep {
    const H: f64 = 0.3;
}
impl Segment for PendulumStep {
    fn eval<T: Real>(&self, x: &[T]) -> Vec<T> {
        let a = x[0] + T::constant(Self::H) * x[1];
        vec![a, x[1] - T::constant(Self::H) * a.sin()]
    }
    fn same_as(&self, _: &Self) -> bool {
        true
    }
}

/// `a b + a` after 20 pendulum steps, each its own checkpoint, or all plain.
fn pendulum<T: Real>(x: &[T], checkpointed: bool) -> T {
    let y = (0..20).fold(x.to_vec(), |y, _| match checkpointed {
        true => checkpoint(&PendulumStep, &y),
        false => PendulumStep.eval(&y),
    });
    y[0] * y[1] + y[0]
}

/// The gradient of [`pendulum`] by hand: the state's derivatives carried through the steps.
fn pendulum_gradient(x: &[f64]) -> [f64; 2] {
    let h = PendulumStep::H;
    let (mut a, mut b) = (x[0], x[1]);
    // d(a, b)/dx₀ and d(a, b)/dx₁
    let (mut da, mut db) = ([1.0, 0.0], [0.0, 1.0]);
    for _ in 0..20 {
        a += h * b;
        da = [da[0] + h * db[0], da[1] + h * db[1]];
        let c = a.cos();
        b -= h * a.sin();
        db = [db[0] - h * c * da[0], db[1] - h * c * da[1]];
    }
    [0, 1].map(|k| da[k] * b + a * db[k] + da[k])
}

/// Runs every first-order scenario whose name contains `filter` (all when empty).
///
/// A filter `=NAME` selects exactly the scenario `NAME`; any other filter selects the scenarios
/// whose names contain it.
pub fn run_first_order<B: Backend>(b: &B, profile: &Profile, filter: &str) -> Vec<Outcome> {
    let mut r = Runner::new(filter);
    first_order(b, profile, &mut r);
    r.outcomes
}

pub(crate) fn first_order<B: Backend>(b: &B, profile: &Profile, r: &mut Runner<'_>) {
    let tol = profile.first_order_tolerance;
    let deriving = B::Tracer::<f64>::is_deriving();
    let fd = FiniteDifferences::default();

    // ---- scalar → scalar ----
    for f in ScalarFn::ALL {
        let x0 = f.point();
        let (d1, _) = f.derivatives(x0);
        let func = |x| f.eval(x);
        r.run(format!("scalar/{f:?}/derivative"), tol, || {
            let (y, d) = b.value_and_derivative(func, Active(x0)).map_err(err)?;
            let d2 = b.derivative(func, Active(x0)).map_err(err)?;
            Ok(rel1(y, f.eval(x0)).max(rel1(d, d1)).max(rel1(d2, d1)))
        });
        r.run(format!("scalar/{f:?}/derivative/prepared"), tol, || {
            let prep = b.prepare_derivative(Active(x0 + 0.1));
            let mut worst = 0.0_f64;
            for _ in 0..2 {
                let d = prep.derivative(func, Active(x0)).map_err(err)?;
                let (y, d2) = prep.value_and_derivative(func, Active(x0)).map_err(err)?;
                worst = worst
                    .max(rel1(d, d1))
                    .max(rel1(d2, d1))
                    .max(rel1(y, f.eval(x0)));
            }
            expect_shape_error(prep.derivative(|x: [_; 2]| f.eval(x[0]), Active([x0, x0])))?;
            Ok(worst)
        });
    }

    // ---- vector → scalar ----
    for f in VectorFn::ALL {
        let x = X6.to_vec();
        let (want, tolerance) = match f.analytic(&x) {
            Some((g, _)) => (g, tol),
            None => (
                fd.gradient(|x: Vec<f64>| f.eval(&x), Active(&x))
                    .expect("FD reference"),
                tol.max(FD_REFERENCE),
            ),
        };
        let func = |x: Vec<_>| f.eval(&x);
        r.run(format!("vector/{f:?}/gradient"), tolerance, || {
            let before = x.clone();
            let (y, g) = b.value_and_gradient(func, Active(&x)).map_err(err)?;
            let g2 = b.gradient(func, Active(&x)).map_err(err)?;
            unchanged(&x, &before)?;
            Ok(rel1(y, f.eval(&x)).max(rel(&g, &want)).max(rel(&g2, &want)))
        });
        r.run(format!("vector/{f:?}/gradient/prepared"), tolerance, || {
            let elsewhere: Vec<f64> = x.iter().map(|v| v * 0.9 + 0.05).collect();
            let mut prep = b.prepare_gradient(func, Active(&elsewhere)).map_err(err)?;
            let mut worst = 0.0_f64;
            for _ in 0..2 {
                let g1 = prep.gradient(func, Active(&x)).map_err(err)?;
                let (y, g2) = prep.value_and_gradient(func, Active(&x)).map_err(err)?;
                worst = worst
                    .max(rel(&g1, &want))
                    .max(rel(&g2, &want))
                    .max(rel1(y, f.eval(&x)));
            }
            expect_shape_error(prep.gradient(func, Active(&vec![0.1; 7])))?;
            Ok(worst)
        });
    }

    // A prepared gradient of a function with a branch, called where the branches go another way
    // (a replaying engine must notice and record anew), then back where it was prepared.
    r.run(
        "vector/LoopBranch/gradient/prepared-branch-change".into(),
        tol,
        || {
            let f = VectorFn::LoopBranch;
            let func = |x: Vec<_>| f.eval(&x);
            let here = X6.to_vec();
            let there: Vec<f64> = here.iter().map(|v| -v).collect();
            if branches(&here) == branches(&there) {
                return Err("the two points take the same branches: fix the scenario".into());
            }
            let reference = |x: &Vec<f64>| f.analytic(x).expect("analytic").0;
            let mut prep = b.prepare_gradient(func, Active(&here)).map_err(err)?;
            let mut worst = 0.0_f64;
            for x in [&here, &there, &there, &here] {
                let (y, g) = prep.value_and_gradient(func, Active(x)).map_err(err)?;
                worst = worst.max(rel(&g, &reference(x))).max(rel1(y, f.eval(x)));
            }
            Ok(worst)
        },
    );

    // A value with an infinite derivative (sqrt at 0) that an output does not use must add
    // nothing to that output's derivatives: not 0 · ∞ = NaN.
    r.run("vector-vector/singular-off-path".into(), tol, || {
        let jac = b
            .jacobian(
                |x: Vec<_>| vec![difi_core::Float::sqrt(x[0]), x[1] * Real::constant(2.0)],
                Active(&vec![0.0, 1.0]),
            )
            .map_err(err)?;
        let g = b
            .gradient(
                |x: Vec<_>| {
                    let _unused = difi_core::Float::sqrt(x[0]);
                    x[0] * Real::constant(2.0)
                },
                Active(&vec![0.0]),
            )
            .map_err(err)?;
        // The same through a `map`: element 0 (√0) is not used.
        let gm = b
            .gradient(
                |a: Vec<_>| {
                    map(
                        &SqrtPlus,
                        [ArrayView1::from(&a[..]), ArrayView1::from(&a[..])],
                    )[1]
                },
                Active(&vec![0.0, 4.0]),
            )
            .map_err(err)?;
        Ok(rel(&[jac[[1, 0]], jac[[1, 1]], g[0]], &[0.0, 2.0, 2.0]).max(rel(&gm, &[0.0, 1.25])))
    });
    // The same singularity on a path the output does use: the partials with respect to the
    // other inputs stay finite (∂/∂x₁ (√x₀ + x₁) = 1 at x₀ = 0), in plain code and inside a
    // sum_map, whose pullback runs forward mode element by element.
    r.run("vector-vector/singular-other-input".into(), tol, || {
        let jac = b
            .jacobian(
                |x: Vec<_>| vec![difi_core::Float::sqrt(x[0]) + x[1]],
                Active(&vec![0.0, 1.0]),
            )
            .map_err(err)?;
        let (a, c) = (vec![0.0, 4.0], vec![1.0, 2.0]);
        let f = |(a, c): (Vec<_>, Vec<_>)| {
            sum_map(
                &SqrtPlus,
                [ArrayView1::from(&a[..]), ArrayView1::from(&c[..])],
            )
        };
        let (NoTangent, dc) = b.gradient(f, (Const(&a), Active(&c))).map_err(err)?;
        let (_, dc_both) = b.gradient(f, (Active(&a), Active(&c))).map_err(err)?;
        Ok(rel(&[jac[[0, 1]]], &[1.0])
            .max(rel(&dc, &[1.0, 1.0]))
            .max(rel(&dc_both, &[1.0, 1.0])))
    });

    // ---- vector → vector ----
    for f in VectorVectorFn::ALL {
        let x = X4.to_vec();
        let jac = f.jacobian(&x);
        let y0 = f.eval(&x);
        let func = |x: Vec<_>| f.eval(&x);
        r.run(format!("vector-vector/{f:?}/jacobian"), tol, || {
            let (y, j) = b.value_and_jacobian(func, Active(&x)).map_err(err)?;
            let j2 = b.jacobian(func, Active(&x)).map_err(err)?;
            unchanged(&x, &X4.to_vec())?;
            let flat = jac.as_slice().unwrap();
            Ok(rel(&y, &y0)
                .max(rel(&elements(&j), flat))
                .max(rel(&elements(&j2), flat)))
        });
        r.run(format!("vector-vector/{f:?}/jacobian_batch"), tol, || {
            // 20 sets (more than one chunk of an engine that replays sets together), each at its
            // own point and with its own constant scale c: the Jacobian is c J(x).
            let sets: Vec<(Vec<f64>, f64)> = (0..20)
                .map(|k| {
                    let t = k as f64;
                    let x = X4.iter().map(|v| v + 0.05 * t).collect();
                    (x, 1.0 + 0.25 * t)
                })
                .collect();
            let scaled = |(x, c): (Vec<_>, _)| {
                let y: Vec<_> = f.eval(&x).into_iter().map(|v| v * c).collect();
                y
            };
            let mut worst = 0.0_f64;
            let mut seen = 0;
            b.jacobian_batch(
                scaled,
                sets.iter().map(|(x, c)| (Active(x), Const(*c))),
                |k, y, j| {
                    let (x, c) = &sets[k];
                    let want_y: Vec<f64> = f.eval(x).iter().map(|v| v * c).collect();
                    let want_j = f.jacobian(x) * *c;
                    worst = worst
                        .max(rel(&y, &want_y))
                        .max(rel(&elements(&j.to_owned()), want_j.as_slice().unwrap()));
                    seen += 1;
                },
            )
            .map_err(err)?;
            if seen != sets.len() {
                return Err(format!("{seen} of {} sets reached the sink", sets.len()));
            }
            let other = [X4.to_vec(), vec![0.0; 5]];
            expect_shape_error(b.jacobian_batch(
                scaled,
                other.iter().map(|x| (Active(x), Const(1.0))),
                |_, _, _| {},
            ))?;
            Ok(worst)
        });
        r.run(format!("vector-vector/{f:?}/pullback"), tol, || {
            let (y, pb) = b.pullback(func, Active(&x)).map_err(err)?;
            let mut worst = rel(&y, &y0);
            let m = y0.len();
            // Two different seeds, each applied twice: one forward pass, many reverse passes.
            let seeds = [
                (0..m).map(|i| (i == 0) as u8 as f64).collect::<Vec<_>>(),
                (0..m).map(|i| 1.0 - 0.3 * i as f64).collect(),
            ];
            for seed in &seeds {
                let want = jac.t().dot(&Array1::from(seed.clone())).to_vec();
                for _ in 0..2 {
                    worst = worst.max(rel(&pb.apply(seed).map_err(err)?, &want));
                }
            }
            unchanged(&x, &X4.to_vec())?;
            match pb.apply(&vec![1.0; m + 1]) {
                Err(Error::SeedShape { .. }) => Ok(worst),
                other => Err(format!(
                    "a seed of the wrong length gave {:?}",
                    other.map(|_| ())
                )),
            }
        });
        r.run(format!("vector-vector/{f:?}/pushforward"), tol, || {
            let v = vec![1.0, -1.0, 0.5, 2.0];
            let want = jac.dot(&Array1::from(v.clone())).to_vec();
            let (y, t) = b.value_and_pushforward(func, Active(&x), &v).map_err(err)?;
            let t2 = b.pushforward(func, Active(&x), &v).map_err(err)?;
            unchanged(&x, &X4.to_vec())?;
            unchanged(&v, &vec![1.0, -1.0, 0.5, 2.0])?;
            Ok(rel(&y, &y0).max(rel(&t, &want)).max(rel(&t2, &want)))
        });
        r.run(format!("vector-vector/{f:?}/prepared"), tol, || {
            let before = x.clone();
            let elsewhere: Vec<f64> = x.iter().map(|v| v + 0.1).collect();
            let flat = jac.as_slice().unwrap();
            let pj = b.prepare_jacobian(Active(&elsewhere));
            let mut worst = 0.0_f64;
            for _ in 0..2 {
                let j = pj.jacobian(func, Active(&x)).map_err(err)?;
                let (y, j2) = pj.value_and_jacobian(func, Active(&x)).map_err(err)?;
                worst = worst
                    .max(rel(&elements(&j), flat))
                    .max(rel(&elements(&j2), flat))
                    .max(rel(&y, &y0));
            }
            expect_shape_error(pj.jacobian(func, Active(&vec![0.0; 5])))?;
            let pp = b.prepare_pullback(Active(&elsewhere));
            let seed: Vec<f64> = vec![1.0; y0.len()];
            let want = jac.t().dot(&Array1::from(seed.clone())).to_vec();
            for _ in 0..2 {
                let (y, pb) = pp.pullback(func, Active(&x)).map_err(err)?;
                worst = worst
                    .max(rel(&pb.apply(&seed).map_err(err)?, &want))
                    .max(rel(&y, &y0));
            }
            expect_shape_error(pp.pullback(func, Active(&vec![0.0; 3])).map(|_| ()))?;
            let pf = b.prepare_pushforward(Active(&elsewhere));
            let v = vec![0.5; 4];
            let want = jac.dot(&Array1::from(v.clone())).to_vec();
            for _ in 0..2 {
                let t = pf.pushforward(func, Active(&x), &v).map_err(err)?;
                let (y, t2) = pf
                    .value_and_pushforward(func, Active(&x), &v)
                    .map_err(err)?;
                worst = worst
                    .max(rel(&t, &want))
                    .max(rel(&t2, &want))
                    .max(rel(&y, &y0));
            }
            expect_shape_error(pf.pushforward(func, Active(&vec![0.0; 3]), &vec![0.0; 3]))?;
            unchanged(&x, &before)?;
            Ok(worst)
        });
    }

    // ---- matrix in, matrix out ----
    let a = Array2::from_shape_fn((2, 3), |(i, j)| 0.3 * i as f64 - 0.2 * j as f64 + 0.1);
    r.run("matrix/map/jacobian".into(), tol, || {
        let (y, j) = b
            .value_and_jacobian(|a: Array2<_>| matrix_map(&a), Active(&a))
            .map_err(err)?;
        let want = matrix_map_jacobian(&a);
        Ok(
            rel(y.as_slice().unwrap(), matrix_map(&a).as_slice().unwrap())
                .max(rel(&elements(&j), want.as_slice().unwrap())),
        )
    });
    r.run("matrix/map/pullback".into(), tol, || {
        let (_, pb) = b
            .pullback(|a: Array2<_>| matrix_map(&a), Active(&a))
            .map_err(err)?;
        let seed = Array2::from_shape_fn((2, 3), |(i, j)| (i + j) as f64);
        let g = pb.apply(&seed).map_err(err)?;
        if g.shape() != [2, 3] {
            return Err(format!(
                "cotangent has shape {:?}, the input [2, 3]",
                g.shape()
            ));
        }
        let want = matrix_map_jacobian(&a)
            .t()
            .dot(&Array1::from_iter(seed.iter().copied()));
        Ok(rel(
            &g.iter().copied().collect::<Vec<_>>(),
            want.as_slice().unwrap(),
        ))
    });

    r.run("matrix/map/pushforward".into(), tol, || {
        let before = a.clone();
        let da = Array2::from_shape_fn((2, 3), |(i, j)| 1.0 - 0.4 * (i * 3 + j) as f64);
        let (y, t) = b
            .value_and_pushforward(|a: Array2<_>| matrix_map(&a), Active(&a), &da)
            .map_err(err)?;
        if t.shape() != [2, 3] {
            return Err(format!(
                "tangent has shape {:?}, the output [2, 3]",
                t.shape()
            ));
        }
        unchanged(&a, &before)?;
        let want = matrix_map_jacobian(&a).dot(&Array1::from_iter(da.iter().copied()));
        Ok(rel(&elements(&y), &elements(&matrix_map(&a)))
            .max(rel(&elements(&t), want.as_slice().unwrap())))
    });
    r.run("matrix/map/prepared".into(), tol, || {
        let f = |a: Array2<_>| matrix_map(&a);
        let want = matrix_map_jacobian(&a);
        let pj = b.prepare_jacobian(Active(&(&a * 0.5 + 0.2)));
        let mut worst = 0.0_f64;
        for _ in 0..2 {
            let (y, j) = pj.value_and_jacobian(f, Active(&a)).map_err(err)?;
            worst = worst
                .max(rel(&elements(&y), &elements(&matrix_map(&a))))
                .max(rel(&elements(&j), want.as_slice().unwrap()));
        }
        // Same number of elements, another shape: still the documented error.
        expect_shape_error(pj.jacobian(f, Active(&Array2::<f64>::zeros((3, 2)))))?;
        Ok(worst)
    });

    // ---- non-standard layouts: a transposed (Fortran-order) matrix in and out ----
    // Scalars are visited in logical (row-major) order whatever the memory order; an engine
    // that fills arrays in memory order puts values and derivatives in the wrong places.
    let at = a.clone().reversed_axes();
    let at_std = at.as_standard_layout().into_owned();
    r.run("matrix/transposed-input/jacobian".into(), tol, || {
        let (y, j) = b
            .value_and_jacobian(|x: Array2<_>| matrix_map(&x), Active(&at))
            .map_err(err)?;
        Ok(rel(&elements(&y), &elements(&matrix_map(&at_std)))
            .max(rel(&elements(&j), &elements(&matrix_map_jacobian(&at_std)))))
    });
    r.run("matrix/transposed-input/gradient".into(), tol, || {
        let g = b
            .gradient(|x: Array2<_>| matrix_map(&x).sum(), Active(&at))
            .map_err(err)?;
        let want = matrix_map_jacobian(&at_std).sum_axis(ndarray::Axis(0));
        Ok(rel(&elements(&g), want.as_slice().unwrap()))
    });
    r.run("matrix/transposed-input/pullback".into(), tol, || {
        let (_, pb) = b
            .pullback(|x: Array2<_>| matrix_map(&x), Active(&at))
            .map_err(err)?;
        let seed = Array2::from_shape_fn((2, 3), |(i, j)| (i + 2 * j) as f64 - 1.5).reversed_axes();
        let g = pb.apply(&seed).map_err(err)?;
        let want = matrix_map_jacobian(&at_std)
            .t()
            .dot(&Array1::from_iter(seed.iter().copied()));
        Ok(rel(&elements(&g), want.as_slice().unwrap()))
    });
    r.run("matrix/transposed-output/jacobian".into(), tol, || {
        let (y, j) = b
            .value_and_jacobian(|x: Array2<_>| matrix_map(&x).reversed_axes(), Active(&a))
            .map_err(err)?;
        let (m, n) = a.dim();
        // Output element (q, p) of the transpose is element (p, q) of matrix_map.
        let full = matrix_map_jacobian(&a);
        let want = Array2::from_shape_fn((m * n, m * n), |(r, c)| full[[(r % m) * n + r / m, c]]);
        Ok(
            rel(&elements(&y), &elements(&matrix_map(&a).t().to_owned()))
                .max(rel(&elements(&j), &elements(&want))),
        )
    });

    // ---- a derived struct ----
    r.run("struct/particle/gradient".into(), tol, || {
        let p = Particle {
            x: 2.0,
            v: 3.0,
            w: vec![1.0, -0.5],
        };
        let g: Particle<f64> = b
            .gradient(|p| particle_energy(&p), Active(&p))
            .map_err(err)?;
        // d/dx = v + |w|², d/dv = x, d/dw = 2 w x
        Ok(rel(&[g.x, g.v], &[3.0 + 1.25, 2.0]).max(rel(&g.w, &[4.0, -2.0])))
    });
    r.run("struct/particle/gradient/prepared".into(), tol, || {
        let p = Particle {
            x: 2.0,
            v: 3.0,
            w: vec![1.0, -0.5],
        };
        let before = p.clone();
        let elsewhere = Particle {
            x: -1.0,
            v: 0.5,
            w: vec![0.2, 0.3],
        };
        let f = |p: Particle<_>| particle_energy(&p);
        let mut prep = b.prepare_gradient(f, Active(&elsewhere)).map_err(err)?;
        let mut worst = 0.0_f64;
        for _ in 0..2 {
            let (y, g) = prep.value_and_gradient(f, Active(&p)).map_err(err)?;
            worst = worst
                .max(rel1(y, particle_energy(&p)))
                .max(rel(&[g.x, g.v], &[3.0 + 1.25, 2.0]))
                .max(rel(&g.w, &[4.0, -2.0]));
        }
        unchanged(&p, &before)?;
        let longer = Particle {
            x: 1.0,
            v: 1.0,
            w: vec![1.0; 3],
        };
        expect_shape_error(prep.gradient(f, Active(&longer)))?;
        Ok(worst)
    });

    // ---- mixed activity ----
    let (ma, mc, mb) = (vec![1.0, 2.0], 3.0, vec![4.0, 5.0]);
    let mixed_fn = |(a, c, bb): (Vec<_>, _, Vec<_>)| mixed(&a, c, &bb);
    r.run("mixed/active-const-active/gradient".into(), tol, || {
        let (y, (ga, NoTangent, gb)) = b
            .value_and_gradient(mixed_fn, (Active(&ma), Const(mc), Active(&mb)))
            .map_err(err)?;
        Ok(rel1(y, mixed(&ma, mc, &mb))
            .max(rel(&ga, &[24.0, 60.0]))
            .max(rel(&gb, &[3.0, 12.0])))
    });
    r.run("mixed/active-const-active/pushforward".into(), tol, || {
        // Tangents per argument, NoTangent in the Const slot:
        // d = Σ 2c a b da + c a² db = 24·1 + 60·(-1) + 3·0.5 + 12·2.
        let t = (vec![1.0, -1.0], NoTangent, vec![0.5, 2.0]);
        let (y, d) = b
            .value_and_pushforward(mixed_fn, (Active(&ma), Const(mc), Active(&mb)), &t)
            .map_err(err)?;
        Ok(rel1(y, mixed(&ma, mc, &mb)).max(rel1(d, -10.5)))
    });
    r.run("mixed/active-const-active/jacobian".into(), tol, || {
        let j = b
            .jacobian(mixed_fn, (Active(&ma), Const(mc), Active(&mb)))
            .map_err(err)?;
        if j.dim() != (1, 4) {
            return Err(format!(
                "Jacobian is {:?}; want 1 x 4 (active scalars only)",
                j.dim()
            ));
        }
        Ok(rel(&elements(&j), &[24.0, 60.0, 3.0, 12.0]))
    });
    r.run("mixed/active-const-active/pullback".into(), tol, || {
        let (y, pb) = b
            .pullback(mixed_fn, (Active(&ma), Const(mc), Active(&mb)))
            .map_err(err)?;
        let mut worst = rel1(y, mixed(&ma, mc, &mb));
        for _ in 0..2 {
            let (ga, NoTangent, gb) = pb.apply(&2.0).map_err(err)?;
            worst = worst
                .max(rel(&ga, &[48.0, 120.0]))
                .max(rel(&gb, &[6.0, 24.0]));
        }
        Ok(worst)
    });
    r.run("mixed/active-const-active/prepared".into(), tol, || {
        let mut prep = b
            .prepare_gradient(mixed_fn, (Active(&mb), Const(1.0), Active(&ma)))
            .map_err(err)?;
        let mut worst = 0.0_f64;
        for _ in 0..2 {
            let (ga, NoTangent, gb) = prep
                .gradient(mixed_fn, (Active(&ma), Const(mc), Active(&mb)))
                .map_err(err)?;
            worst = worst
                .max(rel(&ga, &[24.0, 60.0]))
                .max(rel(&gb, &[3.0, 12.0]));
        }
        // The first argument with another length: the error names argument 1.
        expect_shape_error(
            prep.gradient(mixed_fn, (Active(&vec![1.0; 3]), Const(mc), Active(&mb))),
        )?;
        Ok(worst)
    });
    r.run("mixed/all-const/pushforward".into(), tol, || {
        let (y, d) = b
            .value_and_pushforward(
                mixed_fn,
                (Const(&ma), Const(mc), Const(&mb)),
                &(NoTangent, NoTangent, NoTangent),
            )
            .map_err(err)?;
        Ok(rel1(y, mixed(&ma, mc, &mb)).max(rel1(d, 0.0)))
    });
    r.run("mixed/all-const/gradient".into(), tol, || {
        let (y, (NoTangent, NoTangent, NoTangent)) = b
            .value_and_gradient(mixed_fn, (Const(&ma), Const(mc), Const(&mb)))
            .map_err(err)?;
        Ok(rel1(y, mixed(&ma, mc, &mb)))
    });

    // ---- edges ----
    let sum_squares = |x: Vec<_>| VectorFn::SumSquares.eval(&x);
    r.run("edge/empty/gradient".into(), tol, || {
        let (y, g) = b
            .value_and_gradient(sum_squares, Active(&Vec::<f64>::new()))
            .map_err(err)?;
        if !g.is_empty() {
            return Err(format!("gradient of an empty input has length {}", g.len()));
        }
        Ok(rel1(y, 0.0))
    });
    r.run("edge/one-element/gradient".into(), tol, || {
        let g = b.gradient(sum_squares, Active(&vec![0.3])).map_err(err)?;
        Ok(rel(&g, &[0.6]))
    });
    let elementwise = |x: Vec<_>| VectorVectorFn::Elementwise.eval(&x);
    r.run("edge/empty/jacobian".into(), tol, || {
        let (y, j) = b
            .value_and_jacobian(elementwise, Active(&Vec::<f64>::new()))
            .map_err(err)?;
        if !y.is_empty() || !j.is_empty() {
            return Err(format!(
                "value {y:?} and Jacobian {:?} of an empty input",
                j.dim()
            ));
        }
        Ok(0.0)
    });
    r.run("edge/one-element/jacobian".into(), tol, || {
        let x = vec![0.3];
        let j = b.jacobian(elementwise, Active(&x)).map_err(err)?;
        Ok(rel(
            &elements(&j),
            VectorVectorFn::Elementwise.jacobian(&x).as_slice().unwrap(),
        ))
    });
    r.run("edge/one-element/pushforward".into(), tol, || {
        let x = vec![0.3];
        let t = b
            .pushforward(elementwise, Active(&x), &vec![2.0])
            .map_err(err)?;
        Ok(rel(&t, &[2.0 * (0.3_f64.sin() + 0.3 * 0.3_f64.cos())]))
    });
    // Non-finite values propagate as IEEE says: no panic, no error, the finite part right.
    r.run("edge/non-finite/jacobian".into(), tol, || {
        let x = vec![f64::NAN, 0.5];
        let (y, j) = b.value_and_jacobian(elementwise, Active(&x)).map_err(err)?;
        if !y[0].is_nan() || !j[[0, 0]].is_nan() {
            return Err(format!(
                "NaN input: value {y:?}, Jacobian {j:?}; want NaN in slot 0"
            ));
        }
        let want = VectorVectorFn::Elementwise.jacobian(&[0.0, 0.5]);
        Ok(rel1(y[1], 0.5 * 0.5_f64.sin()).max(rel1(j[[1, 1]], want[[1, 1]])))
    });

    // Sizes that are not a multiple of a forward engine's lane count: chunks with a remainder.
    r.run("edge/n=21/gradient".into(), tol, || {
        let x: Vec<f64> = (0..21).map(|i| (i as f64 * 0.7).cos()).collect();
        let (y, g) = b
            .value_and_gradient(|x: Vec<_>| VectorFn::Rosenbrock.eval(&x), Active(&x))
            .map_err(err)?;
        let (want, _) = VectorFn::Rosenbrock.analytic(&x).expect("analytic");
        Ok(rel(&g, &want).max(rel1(y, VectorFn::Rosenbrock.eval(&x))))
    });
    r.run("edge/n=11/jacobian".into(), tol, || {
        let x: Vec<f64> = (0..11).map(|i| (i as f64 * 0.3).sin()).collect();
        let mut worst = 0.0_f64;
        for f in [VectorVectorFn::CumSum, VectorVectorFn::MatVec] {
            let j = b
                .jacobian(|x: Vec<_>| f.eval(&x), Active(&x))
                .map_err(err)?;
            worst = worst.max(rel(&elements(&j), f.jacobian(&x).as_slice().unwrap()));
        }
        Ok(worst)
    });
    if profile.reverse {
        r.run("edge/n=100000/gradient".into(), tol, || {
            let x: Vec<f64> = (0..100_000).map(|i| (i as f64 * 1e-3).sin()).collect();
            let g = b.gradient(sum_squares, Active(&x)).map_err(err)?;
            Ok(rel(&g, &x.iter().map(|v| 2.0 * v).collect::<Vec<_>>()))
        });
    } else {
        r.not_applicable(
            "edge/n=100000/gradient".into(),
            "gradients cost n evaluations or passes here",
        );
    }

    // ---- bad input: the documented error, never a panic or a silent answer ----
    let x4 = X4.to_vec();
    let elementwise = |x: Vec<_>| VectorVectorFn::Elementwise.eval(&x);
    r.run(
        "error/derivative/two-active-scalars".into(),
        tol,
        || match b.derivative(|x: Vec<_>| x[0] * x[1], Active(&vec![1.0, 2.0])) {
            Err(Error::ActiveCount { given: 2, .. }) => Ok(0.0),
            other => Err(format!("want ActiveCount with 2 given, got {other:?}")),
        },
    );
    r.run("error/pushforward/tangent-length".into(), tol, || {
        match b.pushforward(elementwise, Active(&x4), &vec![1.0; 3]) {
            Err(Error::SeedShape { .. }) => Ok(0.0),
            other => Err(format!("want SeedShape, got {:?}", other.map(|_| ()))),
        }
    });
    r.run("error/prepared/arity".into(), tol, || {
        let prep = b.prepare_jacobian(Active(&x4));
        match prep.jacobian(
            |(x, _c): (Vec<_>, _)| elementwise(x),
            (Active(&x4), Const(1.0)),
        ) {
            Err(Error::PreparedArityMismatch {
                prepared: 1,
                given: 2,
                ..
            }) => Ok(0.0),
            other => Err(format!(
                "want PreparedArityMismatch 1 vs 2, got {:?}",
                other.map(|_| ())
            )),
        }
    });
    r.run("error/prepared/activity".into(), tol, || {
        let f = |(a, c): (Vec<_>, Vec<_>)| VectorFn::SumSquares.eval(&a) * c[0];
        let mut prep = b
            .prepare_gradient(f, (Active(&x4), Const(&vec![2.0])))
            .map_err(err)?;
        // Same shapes, activities swapped: the first argument differs.
        expect_shape_error(prep.gradient(f, (Const(&x4), Active(&vec![2.0]))))?;
        let pf = b.prepare_pushforward((Active(&x4), Const(&vec![2.0])));
        expect_shape_error(pf.pushforward(
            f,
            (Const(&x4), Active(&vec![2.0])),
            &(NoTangent, vec![1.0]),
        ))
    });
    if deriving && profile.detects_leaked_tracers {
        r.run("error/tracer-misuse".into(), tol, || {
            let leaked = Mutex::new(None);
            b.gradient(
                |x: Vec<_>| {
                    *leaked.lock().unwrap() = Some(x[0]);
                    x[0] * x[0]
                },
                Active(&vec![2.0]),
            )
            .map_err(err)?;
            let old = leaked.lock().unwrap().take().expect("stored");
            match b.gradient(|x: Vec<_>| x[0] * old, Active(&vec![3.0])) {
                Err(Error::TracerMisuse(_)) => {}
                other => {
                    return Err(format!(
                        "a tracer of a finished computation gave {other:?}; want TracerMisuse"
                    ))
                }
            }
            // The engine is usable afterwards.
            let g = b
                .gradient(|x: Vec<_>| x[0] * x[0], Active(&vec![3.0]))
                .map_err(err)?;
            Ok(rel(&g, &[6.0]))
        });
    } else if deriving {
        r.not_applicable(
            "error/tracer-misuse".into(),
            "known limitation: a dual number does not know its computation, so a leaked one \
             is not detected (its stale tangent gives a wrong answer)",
        );
    } else {
        r.not_applicable(
            "error/tracer-misuse".into(),
            "the engine evaluates plain numbers: no tracer to misuse",
        );
    }

    // ---- rules returning arrays in any memory layout ----
    {
        let x = arr2(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).into_dyn();
        // f = Σ_ij w_ij y_ij with distinct weights, so a misplaced element shows: ∂f/∂x_ij = 2 w_ji.
        let w = arr2(&[[1.0, 10.0], [100.0, 1000.0], [0.5, 0.25]]);
        let f = |x: ArrayD<_>| {
            let y = apply(&TransposeTwice, &[x.view()]).remove(0);
            y.indexed_iter().fold(Real::constant(0.0), |s, (ix, &v)| {
                s + v * Real::constant(w[[ix[0], ix[1]]])
            })
        };
        r.run("rule/column-major-output/gradient".into(), tol, || {
            let g = b.gradient(f, Active(&x)).map_err(err)?;
            Ok(rel(
                g.as_slice().unwrap_or(&[]),
                &[2.0, 200.0, 1.0, 20.0, 2000.0, 0.5],
            ))
        });
    }

    // ---- probes: Const inputs are never asked for ----
    let (u, v) = (
        arr1(&[1.0, 2.0, 3.0]).into_dyn(),
        arr1(&[4.0, 5.0, 6.0]).into_dyn(),
    );
    {
        let probe = MaskProbe::default();
        let f = |(u, v): (ArrayD<_>, ArrayD<_>)| apply(&probe, &[u.view(), v.view()])[0].sum();
        let reason = "the engine differentiates the rule's forward code, never its pullback or \
                      pushforward";
        let name = "probe/rule-mask/const-never-asked";
        const_never_asked(r, b, tol, name, f, &probe.asked, (&u, &v), reason);
    }
    {
        // sum_map: the elementwise gradient is asked only for the active operand.
        let probe = ElementwiseMaskProbe::default();
        let f = |(u, v): (ArrayD<_>, ArrayD<_>)| {
            let (u, v) = (u.into_dimensionality(), v.into_dimensionality());
            let (u, v) = (u.expect("1-D"), v.expect("1-D"));
            sum_map(&probe, [u.view(), v.view()])
        };
        let reason = "the engine differentiates sum_map's loop, never asking for elementwise \
                      gradients";
        let name = "probe/sum-map-mask/const-never-asked";
        const_never_asked(r, b, tol, name, f, &probe.asked, (&u, &v), reason);
    }
    {
        // The same probe through pushforward: no tangent is ever asked of the Const input.
        let probe = MaskProbe::default();
        let f = |(u, v): (ArrayD<_>, ArrayD<_>)| apply(&probe, &[u.view(), v.view()])[0].sum();
        let name = "probe/rule-mask/const-tangent-never-asked".to_string();
        let mut result = None;
        r.run(name.clone(), tol, || {
            let du = arr1(&[1.0, -1.0, 0.5]).into_dyn();
            let d = b
                .pushforward(f, (Active(&u), Const(&v)), &(du.clone(), NoTangent))
                .map_err(err)?;
            let asked = probe.asked.lock().unwrap().clone();
            if asked.iter().any(|m| m[1]) {
                return Err(format!(
                    "the Const input was asked for a derivative: {asked:?}"
                ));
            }
            result = Some(asked.is_empty());
            Ok(rel1(d, (&du * &v).sum()))
        });
        if result == Some(true) {
            r.outcomes.pop();
            r.not_applicable(name, "the engine differentiates the rule's forward code, never its pullback or pushforward");
        }
    }
    {
        let rule = FftConv::new();
        let (cu, cv) = (
            Array3::from_shape_fn((4, 3, 2), |(i, j, k)| (i + 2 * j + 3 * k) as f64 * 0.1)
                .into_dyn(),
            Array3::from_shape_fn((4, 3, 2), |(i, j, k)| ((i * j) as f64 - k as f64) * 0.2)
                .into_dyn(),
        );
        let f = |(u, v): (ArrayD<_>, ArrayD<_>)| conv(&rule, u.view(), v.view()).unwrap().sum();
        let name = "probe/conv/cotangents-computed".to_string();
        let mut skipped = false;
        r.run(name.clone(), tol, || {
            // d/du Σ conv(u, v) = Σ v everywhere, and symmetrically for v.
            let (su, sv) = (cu.sum(), cv.sum());
            rule.reset();
            let (gu, NoTangent) = b.gradient(f, (Active(&cu), Const(&cv))).map_err(err)?;
            let one = rule.stats();
            rule.reset();
            let (gu2, gv) = b.gradient(f, (Active(&cu), Active(&cv))).map_err(err)?;
            let two = rule.stats();
            rule.reset();
            let (NoTangent, gv2) = b.gradient(f, (Const(&cu), Active(&cv))).map_err(err)?;
            let other = rule.stats();
            if one.pullback_calls == 0 {
                skipped = true;
                return Ok(0.0);
            }
            if one.cotangents != 1 || two.cotangents != 2 || other.cotangents != 1 {
                return Err(format!(
                    "cotangents computed: {} with v Const (want 1), {} with both active (want 2), \
                     {} with u Const (want 1)",
                    one.cotangents, two.cotangents, other.cotangents
                ));
            }
            if one.transforms >= two.transforms {
                return Err(format!(
                    "{} FFTs with v Const, {} with both active: the Const input cost work",
                    one.transforms, two.transforms
                ));
            }
            Ok(gu
                .iter()
                .chain(gu2.iter())
                .fold(0.0, |m: f64, &g| m.max(rel1(g, sv)))
                .max(
                    gv.iter()
                        .chain(gv2.iter())
                        .fold(0.0, |m: f64, &g| m.max(rel1(g, su))),
                ))
        });
        if skipped {
            r.outcomes.pop();
            r.not_applicable(name, "the engine never calls rule pullbacks");
        }
    }

    // ---- nesting and perturbation confusion ----
    nested(b, b, profile, r);

    // ---- stop_gradient, hook, checkpoint, reflection ----
    if deriving {
        r.run("feature/stop_gradient".into(), tol, || {
            let g = b
                .gradient(
                    |x: Vec<_>| x[0] * x[1].stop_gradient(),
                    Active(&vec![3.0, 5.0]),
                )
                .map_err(err)?;
            Ok(rel(&g, &[5.0, 0.0]))
        });
        r.run("feature/nest_level".into(), tol, || {
            let level = Mutex::new((0, 0, false));
            b.gradient(
                |x: Vec<_>| {
                    let inner = b
                        .gradient(
                            |y: Vec<_>| {
                                level.lock().unwrap().1 = nest_level_of(&y);
                                y[0] * y[0]
                            },
                            Active(&x),
                        )
                        .expect("inner gradient");
                    let mut l = level.lock().unwrap();
                    l.0 = nest_level_of(&x);
                    l.2 = is_deriving_of(&x);
                    inner[0]
                },
                Active(&vec![1.0]),
            )
            .map_err(err)?;
            let (outer, inner, deriving) = *level.lock().unwrap();
            if (outer, inner, deriving) != (1, 2, true) {
                return Err(format!("nest_level {outer} outside, {inner} inside, is_deriving {deriving}; want 1, 2, true"));
            }
            Ok(0.0)
        });
    } else {
        for name in ["feature/stop_gradient", "feature/nest_level"] {
            r.not_applicable(
                name.into(),
                "the engine evaluates plain numbers: no tracer to stop or inspect",
            );
        }
    }
    if deriving && profile.reverse {
        r.run("feature/hook".into(), tol, || {
            let g = b
                .gradient(
                    |x: Vec<_>| x[0].hook(Double) * x[1] + x[0],
                    Active(&vec![3.0, 5.0]),
                )
                .map_err(err)?;
            Ok(rel(&g, &[2.0 * 5.0 + 1.0, 3.0]))
        });
    } else {
        r.not_applicable(
            "feature/hook".into(),
            "hooks act on cotangents; this engine has none",
        );
    }
    r.run("feature/checkpoint".into(), tol, || {
        let x = vec![0.3, 0.7];
        let g = b
            .gradient(
                |x: Vec<_>| {
                    let y = checkpoint(&Steps, &x);
                    y[0] + y[1]
                },
                Active(&x),
            )
            .map_err(err)?;
        Ok(rel(&g, &steps_gradient(&x)))
    });
    r.run("feature/checkpoint/equal-segments".into(), tol, || {
        let x = vec![0.3, 0.7];
        let g = b
            .gradient(|x: Vec<_>| pendulum(&x, true), Active(&x))
            .map_err(err)?;
        Ok(rel(&g, &pendulum_gradient(&x)))
    });
    let name = "probe/checkpoint/recomputed-in-reverse".to_string();
    if deriving && profile.reverse {
        r.run(name, tol, || {
            // y = x0² x1 through a segment that logs the nesting level of every evaluation.
            let probe = LevelProbe::default();
            let level = <B::Tracer<f64> as Real>::NEST_LEVEL;
            let g = b
                .gradient(
                    |x: Vec<_>| checkpoint(&probe, &x)[0],
                    Active(&vec![3.0, 2.0]),
                )
                .map_err(err)?;
            let levels = probe.levels.lock().unwrap().clone();
            // Forward: the plain values only, nothing recorded. Reverse: recomputed, traced.
            if levels.first() != Some(&(level - 1)) || !levels[1..].contains(&level) {
                return Err(format!(
                    "segment evaluated at nesting levels {levels:?}; want first {} (forward \
                     keeps only inputs), then {level} (recomputed in reverse)",
                    level - 1
                ));
            }
            Ok(rel(&g, &[12.0, 9.0]))
        });
    } else {
        r.not_applicable(name, "no reverse pass here: nothing is recomputed");
    }
}

/// A segment `[x0² x1]` that logs `T::NEST_LEVEL` at every evaluation.
#[derive(Clone, Default)]
struct LevelProbe {
    levels: Arc<Mutex<Vec<usize>>>,
}

impl Segment for LevelProbe {
    fn eval<T: Real>(&self, x: &[T]) -> Vec<T> {
        self.levels.lock().unwrap().push(T::NEST_LEVEL);
        vec![x[0] * x[0] * x[1]]
    }
}

/// Nesting: `inner` differentiates inside a function that `outer` differentiates (the same
/// engine in [`run_first_order`]; any pair through [`crate::run_nested`]).
pub(crate) fn nested<O: Backend, I: Backend>(
    outer: &O,
    inner: &I,
    profile: &Profile,
    r: &mut Runner<'_>,
) {
    type Outer<O> = <O as Backend>::Tracer<f64>;
    // Finite differences anywhere in the pair: differences of differences, looser.
    let exact = Outer::<O>::NEST_LEVEL == 1 && <I::Tracer<Outer<O>> as Real>::NEST_LEVEL == 2;
    let tol = if exact {
        profile.first_order_tolerance
    } else {
        profile.first_order_tolerance.max(FD_SECOND_REFERENCE)
    };
    let three = || <Outer<O> as Real>::constant(3.0);
    // d/dx [x · d/dy (x y)] = d/dx x² = 2x.
    r.run("nested/perturbation-confusion/product".into(), tol, || {
        let d = outer
            .derivative(
                |x| {
                    let d = inner
                        .derivative(|(x, y)| x * y, (Const(x), Active(three())))
                        .expect("inner derivative");
                    x * d
                },
                Active(4.0),
            )
            .map_err(err)?;
        Ok(rel1(d, 8.0))
    });
    // d/dx [x · d/dy (x + y)] = 1; an engine that confuses the two perturbations says 2.
    r.run("nested/perturbation-confusion/sum".into(), tol, || {
        let d = outer
            .derivative(
                |x| {
                    let d = inner
                        .derivative(|(x, y)| x + y, (Const(x), Active(three())))
                        .expect("inner derivative");
                    x * d
                },
                Active(4.0),
            )
            .map_err(err)?;
        Ok(rel1(d, 1.0))
    });
    // The inner active argument is the outer tracer itself: d/dx [x · d/dy (x + y)|y=x] = 1
    // and d/dx [x · d/dy (x y)|y=x] = 2x.
    r.run(
        "nested/perturbation-confusion/outer-tracer-active-inside".into(),
        tol,
        || {
            let sum = outer
                .derivative(
                    |x| {
                        let d = inner
                            .derivative(|(c, y)| c + y, (Const(x), Active(x)))
                            .expect("inner derivative");
                        x * d
                    },
                    Active(4.0),
                )
                .map_err(err)?;
            let product = outer
                .derivative(
                    |x| {
                        let d = inner
                            .derivative(|(c, y)| c * y, (Const(x), Active(x)))
                            .expect("inner derivative");
                        x * d
                    },
                    Active(4.0),
                )
                .map_err(err)?;
            Ok(rel1(sum, 1.0).max(rel1(product, 8.0)))
        },
    );
    // The Hessian as the Jacobian of a gradient.
    // The Jacobian of a gradient is the Hessian; the second function runs the inner engine's
    // `sum_map` node over the outer engine's tracers.
    for (name, f, x) in [
        (
            "nested/gradient-of-gradient",
            VectorFn::Rosenbrock,
            &[0.3, -0.4, 0.8][..],
        ),
        (
            "nested/gradient-of-gradient/sum-map",
            VectorFn::SumMapViews,
            &X6[..],
        ),
    ] {
        r.run(name.into(), tol, || {
            let x = x.to_vec();
            let h = outer
                .jacobian(
                    |x: Vec<_>| {
                        inner
                            .gradient(|y: Vec<_>| f.eval(&y), Active(&x))
                            .expect("inner gradient")
                    },
                    Active(&x),
                )
                .map_err(err)?;
            let (_, want) = f.analytic(&x).unwrap();
            Ok(rel(&elements(&h), want.as_slice().unwrap()))
        });
    }
}

/// Scenario `name` for a probe `f(u, v) = Σ u v` that logs in `asked` the masks it is given:
/// the derivative with respect to `u`, `v` constant, by every reverse path (gradient, pullback,
/// Jacobian, a gradient prepared with the roles swapped) must be `v`, and no mask may ask for
/// `v` (entry 1). An engine that asked nothing gets "not applicable" with `reason`.
#[allow(clippy::too_many_arguments)]
fn const_never_asked<B: Backend>(
    r: &mut Runner<'_>,
    b: &B,
    tol: f64,
    name: &str,
    f: impl Fn((ArrayD<B::Tracer<f64>>, ArrayD<B::Tracer<f64>>)) -> B::Tracer<f64> + Copy,
    asked: &Mutex<Vec<Vec<bool>>>,
    (u, v): (&ArrayD<f64>, &ArrayD<f64>),
    reason: &str,
) {
    let mut asked_nothing = None;
    r.run(name.into(), tol, || {
        let flat = |a: ArrayD<f64>| a.iter().copied().collect::<Vec<f64>>();
        let (gu, NoTangent) = b.gradient(f, (Active(u), Const(v))).map_err(err)?;
        let (_, pb) = b.pullback(f, (Active(u), Const(v))).map_err(err)?;
        let (pu, NoTangent) = pb.apply(&1.0).map_err(err)?;
        let j = b.jacobian(f, (Active(u), Const(v))).map_err(err)?;
        let mut prep = b.prepare_gradient(f, (Active(v), Const(u))).map_err(err)?;
        let (qu, NoTangent) = prep.gradient(f, (Active(u), Const(v))).map_err(err)?;
        let asked = asked.lock().unwrap().clone();
        if asked.iter().any(|m| m[1]) {
            return Err(format!(
                "the Const input was asked for a derivative: {asked:?}"
            ));
        }
        asked_nothing = Some(asked.is_empty());
        let want = v.as_slice().unwrap();
        Ok([flat(gu), flat(pu), elements(&j), flat(qu)]
            .iter()
            .fold(0.0, |w, d| w.max(rel(d, want))))
    });
    if asked_nothing == Some(true) {
        r.outcomes.pop();
        r.not_applicable(name.into(), reason);
    }
}

/// The branch [`VectorFn::LoopBranch`] takes at each step.
fn branches(x: &[f64]) -> Vec<bool> {
    let mut acc = 0.0;
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let taken = v > acc;
            acc = if taken {
                acc * 0.5 + v * v
            } else {
                acc + (v * (i as f64 + 1.0)).sin()
            };
            taken
        })
        .collect()
}

fn nest_level_of<T: Real>(_: &[T]) -> usize {
    T::nest_level()
}

fn is_deriving_of<T: Real>(_: &[T]) -> bool {
    T::is_deriving()
}

/// Runs every second-order scenario whose name contains `filter`.
/// The filter works as in [`run_first_order`].
pub fn run_second_order<B: SecondOrder>(b: &B, profile: &Profile, filter: &str) -> Vec<Outcome> {
    let mut r = Runner::new(filter);
    second_order(b, profile, &mut r);
    r.outcomes
}

pub(crate) fn second_order<B: SecondOrder>(b: &B, profile: &Profile, r: &mut Runner<'_>) {
    let tol = profile.second_order_tolerance;
    let fd = FiniteDifferences::default();

    for f in ScalarFn::ALL {
        let x0 = f.point();
        let (d1, d2) = f.derivatives(x0);
        let func = |x| f.eval(x);
        r.run(format!("scalar/{f:?}/second_derivative"), tol, || {
            let (y, d, dd) = b
                .value_derivative_and_second_derivative(func, Active(x0))
                .map_err(err)?;
            let dd2 = b.second_derivative(func, Active(x0)).map_err(err)?;
            Ok(rel1(y, f.eval(x0))
                .max(rel1(d, d1))
                .max(rel1(dd, d2))
                .max(rel1(dd2, d2)))
        });
        r.run(
            format!("scalar/{f:?}/second_derivative/prepared"),
            tol,
            || {
                let prep = b.prepare_second_derivative(Active(x0 + 0.1));
                let mut worst = 0.0_f64;
                for _ in 0..2 {
                    let a = prep.second_derivative(func, Active(x0)).map_err(err)?;
                    let (y, d, c) = prep
                        .value_derivative_and_second_derivative(func, Active(x0))
                        .map_err(err)?;
                    worst = worst
                        .max(rel1(a, d2))
                        .max(rel1(c, d2))
                        .max(rel1(d, d1))
                        .max(rel1(y, f.eval(x0)));
                }
                expect_shape_error(
                    prep.second_derivative(|x: [_; 2]| f.eval(x[0]), Active([x0, x0])),
                )?;
                Ok(worst)
            },
        );
    }

    for f in VectorFn::ALL {
        let x = X6.to_vec();
        let (grad, hess, tolerance) = match f.analytic(&x) {
            Some((g, h)) => (g, h, tol),
            None => {
                let g = fd
                    .gradient(|x: Vec<f64>| f.eval(&x), Active(&x))
                    .expect("FD");
                let h = fd
                    .hessian(|x: Vec<f64>| f.eval(&x), Active(&x))
                    .expect("FD");
                (g, h, tol.max(FD_SECOND_REFERENCE))
            }
        };
        let flat = hess.as_slice().unwrap().to_vec();
        let func_h = |x: Vec<_>| f.eval(&x);
        let func_v = |x: Vec<_>| f.eval(&x);
        let v: Vec<f64> = (0..6).map(|i| 1.0 - 0.25 * i as f64).collect();
        let hv = hess.dot(&Array1::from(v.clone())).to_vec();
        r.run(format!("vector/{f:?}/hessian"), tolerance, || {
            let (y, g, h) = b
                .value_gradient_and_hessian(func_h, Active(&x))
                .map_err(err)?;
            let h2 = b.hessian(func_h, Active(&x)).map_err(err)?;
            Ok(rel1(y, f.eval(&x))
                .max(rel(&g, &grad))
                .max(rel(&elements(&h), &flat))
                .max(rel(&elements(&h2), &flat)))
        });
        r.run(format!("vector/{f:?}/hvp"), tolerance, || {
            let (g, h) = b.gradient_and_hvp(func_v, Active(&x), &v).map_err(err)?;
            let h2 = b.hvp(func_v, Active(&x), &v).map_err(err)?;
            Ok(rel(&g, &grad).max(rel(&h, &hv)).max(rel(&h2, &hv)))
        });
        r.run(
            format!("vector/{f:?}/second-order/prepared"),
            tolerance,
            || {
                let elsewhere: Vec<f64> = x.iter().map(|v| v * 0.9 + 0.05).collect();
                let ph = b.prepare_hessian(Active(&elsewhere));
                let pv = b.prepare_hvp(Active(&elsewhere));
                let mut worst = 0.0_f64;
                for _ in 0..2 {
                    let h = ph.hessian(func_h, Active(&x)).map_err(err)?;
                    let (y, g, h2) = ph
                        .value_gradient_and_hessian(func_h, Active(&x))
                        .map_err(err)?;
                    worst = worst
                        .max(rel(&elements(&h), &flat))
                        .max(rel(&elements(&h2), &flat))
                        .max(rel(&g, &grad))
                        .max(rel1(y, f.eval(&x)));
                    let (g, hv1) = pv.gradient_and_hvp(func_v, Active(&x), &v).map_err(err)?;
                    worst = worst
                        .max(rel(&pv.hvp(func_v, Active(&x), &v).map_err(err)?, &hv))
                        .max(rel(&hv1, &hv))
                        .max(rel(&g, &grad));
                }
                unchanged(&x, &X6.to_vec())?;
                expect_shape_error(ph.hessian(func_h, Active(&vec![0.0; 7])))?;
                expect_shape_error(pv.hvp(func_v, Active(&vec![0.0; 7]), &vec![0.0; 7]))?;
                Ok(worst)
            },
        );
    }

    r.run("error/hvp/direction-length".into(), tol, || {
        let f = |x: Vec<_>| VectorFn::Rosenbrock.eval(&x);
        match b.hvp(f, Active(&X6.to_vec()), &vec![1.0; 5]) {
            Err(Error::SeedShape { .. }) => Ok(0.0),
            other => Err(format!("want SeedShape, got {other:?}")),
        }
    });
    // x^p at p = 0: the first-order shortcut "p = 0, so d/dx is 0" holds for the value only; the
    // mixed second derivative ∂²/∂x∂p = x^(p-1) (1 + p ln x) is 1/x there.
    r.run("vector/powf-at-zero-exponent/hessian".into(), tol, || {
        let h = b
            .hessian(
                |v: Vec<_>| difi_core::Float::powf(v[0], v[1]),
                Active(&vec![2.0, 0.0]),
            )
            .map_err(err)?;
        let ln2 = 2f64.ln();
        Ok(rel(&elements(&h), &[0.0, 0.5, 0.5, ln2 * ln2]))
    });
    // Checkpoints of one segment declared equal (a tape replays one recording of it) against
    // the same steps without checkpoints, on this engine.
    r.run(
        "feature/checkpoint/equal-segments/hessian".into(),
        tol,
        || {
            let x = vec![0.3, 0.7];
            let h = b
                .hessian(|x: Vec<_>| pendulum(&x, true), Active(&x))
                .map_err(err)?;
            let plain = b
                .hessian(|x: Vec<_>| pendulum(&x, false), Active(&x))
                .map_err(err)?;
            Ok(rel(&elements(&h), &elements(&plain)))
        },
    );
    r.run("mixed/active-const-active/hessian".into(), tol, || {
        let f = |(a, c, bb): (Vec<_>, _, Vec<_>)| mixed(&a, c, &bb);
        let h = b
            .hessian(
                f,
                (Active(&vec![1.0, 2.0]), Const(3.0), Active(&vec![4.0, 5.0])),
            )
            .map_err(err)?;
        // H_aa = 2c diag(b), H_ab = 2c diag(a), H_bb = 0, over (a0, a1, b0, b1).
        let want = [
            24.0, 0.0, 6.0, 0.0, 0.0, 30.0, 0.0, 12.0, 6.0, 0.0, 0.0, 0.0, 0.0, 12.0, 0.0, 0.0,
        ];
        Ok(rel(&elements(&h), &want))
    });
}
