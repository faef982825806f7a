//! The closure engine against analytic values, finite differences and the tape engine.

use std::sync::{Arc, Mutex};

use difi_closure::{last_pullback, Closure, Tracked};
use difi_core::{
    apply, checkpoint, Active, ArrayD, ArrayViewD, Backend, Const, Error, FiniteDifferences, Float,
    Hook, NoTangent, Real, Rule, SecondOrder, Segment,
};
use difi_forward::{Dual, ForwardOverReverse};
use difi_tape::{Tape, Var};
use ndarray::arr1;

fn rosenbrock<T: Real>(x: &[T]) -> T {
    x.windows(2).fold(T::zero(), |s, w| {
        let a = T::constant(1.0) - w[0];
        let b = w[1] - w[0] * w[0];
        s + a * a + T::constant(100.0) * b * b
    })
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

#[test]
fn tracked_is_copy_and_16_bytes() {
    fn copy<T: Copy>() {}
    copy::<Tracked<f64>>();
    assert!(std::mem::size_of::<Tracked<f64>>() <= 16);
}

#[test]
fn gradients_agree_with_the_tape_and_finite_differences() {
    let x: Vec<f64> = (0..15).map(|i| (i as f64 * 0.37).sin()).collect();
    let g = Closure::default()
        .gradient(|x| rosenbrock(&x), Active(&x))
        .unwrap();
    let gt = Tape::new()
        .gradient(|x| rosenbrock(&x), Active(&x))
        .unwrap();
    assert_eq!(g, gt);
    let f = |x: Vec<Tracked<f64>>| {
        (x[0].sin() * x[1].exp() / x[2].sqrt()).atan2(x[1].tanh()) + x[0].powf(x[2])
    };
    let y = vec![0.3, -0.4, 1.7];
    let g = Closure::default().gradient(f, Active(&y)).unwrap();
    let gfd = FiniteDifferences::default()
        .gradient(
            |x: Vec<f64>| {
                (x[0].sin() * x[1].exp() / x[2].sqrt()).atan2(x[1].tanh()) + x[0].powf(x[2])
            },
            Active(&y),
        )
        .unwrap();
    close(&g, &gfd, 1e-8);
}

#[test]
fn the_pullback_is_send_and_applied_to_many_seeds() {
    let (y, pb) = Closure::default()
        .pullback(
            |x: Vec<Tracked<f64>>| vec![x[0] * x[1], x[1].sin(), x[0] + x[2]],
            Active(&vec![2.0, 0.5, -1.0]),
        )
        .unwrap();
    assert_eq!(y, vec![1.0, 0.5f64.sin(), 1.0]);
    let rows = std::thread::spawn(move || {
        (0..3)
            .map(|i| {
                pb.apply(&(0..3).map(|k| (k == i) as u8 as f64).collect::<Vec<_>>())
                    .unwrap()
            })
            .collect::<Vec<_>>()
    })
    .join()
    .unwrap();
    assert_eq!(
        rows,
        vec![
            vec![0.5, 2.0, 0.0],
            vec![0.0, 0.5f64.cos(), 0.0],
            vec![1.0, 0.0, 1.0]
        ]
    );
}

#[test]
fn const_inputs_create_no_pullbacks() {
    let f = |(a, c, b): (Vec<Tracked<f64>>, Tracked<f64>, Vec<Tracked<f64>>)| {
        a.iter()
            .zip(&b)
            .fold(Tracked::constant(0.0), |s, (&x, &y)| s + x * x * y)
            * c
    };
    let (a, b) = (vec![1.0, 2.0], vec![4.0, 5.0]);
    let (ga, NoTangent, gb) = Closure::default()
        .gradient(f, (Active(&a), Const(3.0), Active(&b)))
        .unwrap();
    assert_eq!((ga, gb), (vec![24.0, 60.0], vec![3.0, 12.0]));
    // g = a0² + b0 b1 c: four pullbacks with b active (a0·a0, b0·b1, ·c, +); with b constant
    // the product b0 b1 c is plain arithmetic and only a0·a0 and + register one.
    let g = |(a, c, b): (Vec<Tracked<f64>>, Tracked<f64>, Vec<Tracked<f64>>)| {
        a[0] * a[0] + b[0] * b[1] * c
    };
    Closure::default()
        .gradient(g, (Active(&a), Const(3.0), Active(&b)))
        .unwrap();
    assert_eq!(last_pullback().scalar_pullbacks, 4);
    Closure::default()
        .gradient(g, (Active(&a), Const(3.0), Const(&b)))
        .unwrap();
    assert_eq!(last_pullback().scalar_pullbacks, 2);
    Closure::default()
        .gradient(f, (Const(&a), Const(3.0), Const(&b)))
        .unwrap();
    assert_eq!(last_pullback().scalar_pullbacks, 0);
}

#[derive(Clone, Default)]
struct CountingMul {
    asked: Arc<Mutex<Vec<Vec<bool>>>>,
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
        self.asked.lock().unwrap().push(n.to_vec());
        vec![n[0].then(|| &ct[0] * &s.1), n[1].then(|| &ct[0] * &s.0)]
    }
}

#[test]
fn rules_are_one_pullback_and_told_the_mask() {
    let rule = CountingMul::default();
    let (u, v) = (arr1(&[1.0, 2.0]).into_dyn(), arr1(&[3.0, 4.0]).into_dyn());
    let f = |(u, v): (ArrayD<Tracked<f64>>, ArrayD<Tracked<f64>>)| {
        let y = apply(&rule, &[u.view(), v.view()]).pop().unwrap();
        Tracked::sum_all(y.view().into_dimensionality().unwrap())
    };
    let (gu, NoTangent) = Closure::default()
        .gradient(f, (Active(&u), Const(&v)))
        .unwrap();
    assert_eq!(gu.as_slice().unwrap(), &[3.0, 4.0]);
    assert_eq!(last_pullback().array_pullbacks, 2, "the rule and the sum");
    assert_eq!(last_pullback().scalar_pullbacks, 0);
    let (_, gv) = Closure::default()
        .gradient(f, (Active(&u), Active(&v)))
        .unwrap();
    assert_eq!(gv.as_slice().unwrap(), &[1.0, 2.0]);
    assert_eq!(
        *rule.asked.lock().unwrap(),
        vec![vec![true, false], vec![true, true]]
    );
}

#[test]
fn nesting_over_itself_and_over_the_tape() {
    // Closure over closure.
    let d = Closure::default()
        .derivative(
            |x: Tracked<f64>| {
                x * Closure::default()
                    .derivative(
                        |(x, y): (Tracked<Tracked<f64>>, Tracked<Tracked<f64>>)| x * y,
                        (Const(x), Active(Tracked::constant(3.0))),
                    )
                    .unwrap()
            },
            Active(4.0),
        )
        .unwrap();
    assert_eq!(d, 8.0);
    // Closure inside the tape: the closure engine over the tape's tracers.
    let d = Tape::new()
        .derivative(
            |x: Var<f64>| {
                x * Closure::default()
                    .derivative(
                        |(x, y): (Tracked<Var<f64>>, Tracked<Var<f64>>)| x + y,
                        (Const(x), Active(Var::constant(3.0))),
                    )
                    .unwrap()
            },
            Active(4.0),
        )
        .unwrap();
    assert_eq!(d, 1.0);
    assert_eq!(<Tracked<Var<f64>>>::nest_level(), 2);
}

#[test]
fn forward_over_closure_gives_exact_second_order() {
    let b = ForwardOverReverse::<Closure, 3>::default();
    let x = vec![0.3, -0.2, 0.9, 0.1];
    let h = b.hessian(|x| rosenbrock(&x), Active(&x)).unwrap();
    let ht = ForwardOverReverse::<Tape, 3>::default()
        .hessian(|x| rosenbrock(&x), Active(&x))
        .unwrap();
    assert_eq!(h, ht);
    let hv = b
        .hvp(
            |x: Vec<Tracked<Dual<f64, 1>>>| rosenbrock(&x),
            Active(&x),
            &vec![1.0, 0.0, 0.0, 0.0],
        )
        .unwrap();
    close(&hv, &h.column(0).to_vec(), 1e-14);
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
        for _ in 0..30 {
            t = (t.cos() + x[1]).sin();
        }
        vec![t]
    }
}

#[test]
fn stop_gradient_hook_and_checkpoint() {
    let b = Closure::default();
    assert_eq!(
        b.gradient(
            |x: Vec<Tracked<f64>>| x[0] * x[1].stop_gradient(),
            Active(&vec![3.0, 5.0])
        )
        .unwrap(),
        vec![5.0, 0.0]
    );
    assert_eq!(
        b.gradient(
            |x: Vec<Tracked<f64>>| x[0].hook(Double) * x[1] + x[0],
            Active(&vec![3.0, 5.0])
        )
        .unwrap(),
        vec![11.0, 3.0]
    );
    let x = vec![0.3, 0.7];
    let plain = b
        .gradient(|x: Vec<Tracked<f64>>| Steps.eval(&x)[0], Active(&x))
        .unwrap();
    let plain_size = last_pullback().scalar_pullbacks;
    let ck = b
        .gradient(|x: Vec<Tracked<f64>>| checkpoint(&Steps, &x)[0], Active(&x))
        .unwrap();
    let ck_stats = last_pullback();
    close(&ck, &plain, 1e-14);
    assert_eq!(
        (ck_stats.scalar_pullbacks, ck_stats.array_pullbacks),
        (0, 1)
    );
    assert_eq!(plain_size, 90, "30 steps of cos, +, sin");
}

#[test]
fn misuse_is_an_error() {
    use std::cell::Cell;
    let b = Closure::default();
    let leaked: Cell<Option<Tracked<f64>>> = Cell::new(None);
    b.gradient(
        |x: Vec<Tracked<f64>>| {
            leaked.set(Some(x[0]));
            x[0] * x[0]
        },
        Active(&vec![1.0]),
    )
    .unwrap();
    let old = leaked.get().unwrap();
    let err = b
        .gradient(|x: Vec<Tracked<f64>>| x[0] * old, Active(&vec![2.0]))
        .unwrap_err();
    assert!(matches!(err, Error::TracerMisuse(_)), "{err}");
    assert!(std::panic::catch_unwind(|| old * old).is_err());
    let err = Closure::default()
        .with_max_entries(20)
        .gradient(
            |x: Vec<Tracked<f64>>| (0..50).fold(x[0], |s, _| s.sin()),
            Active(&vec![1.0]),
        )
        .unwrap_err();
    assert_eq!(err, Error::TapeOverflow { capacity: 20 });
    // More inputs than the limit: their leaves are pushed in bulk, before f runs.
    let err = Closure::default()
        .with_max_entries(20)
        .gradient(|x: Vec<Tracked<f64>>| x[0] * x[29], Active(&vec![1.0; 30]))
        .unwrap_err();
    assert_eq!(err, Error::TapeOverflow { capacity: 20 });
}

// The recording graph is reached through a cached pointer (`difi_core::per_thread_state!`);
// these cover threads at once, nesting at two non-f64 levels and reuse of recycled buffers.

#[test]
fn threads_and_nesting_keep_their_own_graphs() {
    let handles: Vec<_> = (0..4)
        .map(|k| {
            std::thread::spawn(move || {
                for i in 0..100 {
                    let x: Vec<f64> = (0..10).map(|j| ((k * 17 + i + j) as f64).cos()).collect();
                    let g = Closure::default()
                        .gradient(|x| rosenbrock(&x), Active(&x))
                        .unwrap();
                    let fd = FiniteDifferences::default()
                        .gradient(|x: Vec<f64>| rosenbrock(&x), Active(&x))
                        .unwrap();
                    for (a, b) in g.iter().zip(&fd) {
                        assert!((a - b).abs() < 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // d³/dx³ x⁵ = 60 x² through three closure levels.
    fn d<T: Real>(f: impl Fn(Tracked<T>) -> Tracked<T>, x: T) -> T {
        Closure::default().derivative(f, Active(x)).unwrap()
    }
    let third = d(
        |x: Tracked<f64>| {
            d(
                |y: Tracked<Tracked<f64>>| d(|z: Tracked<Tracked<Tracked<f64>>>| z.powi(5), y),
                x,
            )
        },
        1.5,
    );
    assert!((third - 60.0 * 2.25).abs() < 1e-9, "{third}");
}
