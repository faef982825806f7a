//! The interface proven on the finite-difference backend: analytic references, mixed activity,
//! derived structs, prepared operators and their errors.

use difi_core::{
    Active, Backend, Const, Differentiable, Error, FiniteDifferences, NoTangent, Real, SecondOrder,
    Shape,
};
use ndarray::{array, Array2};

fn rosenbrock<T: Real>(x: &[T]) -> T {
    x.windows(2).fold(T::zero(), |s, w| {
        let a = T::constant(1.0) - w[0];
        let b = w[1] - w[0] * w[0];
        s + a * a + T::constant(100.0) * b * b
    })
}

fn rosenbrock_gradient(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    let mut g = vec![0.0; n];
    for i in 0..n - 1 {
        g[i] += -2.0 * (1.0 - x[i]) - 400.0 * x[i] * (x[i + 1] - x[i] * x[i]);
        g[i + 1] += 200.0 * (x[i + 1] - x[i] * x[i]);
    }
    g
}

fn assert_rel(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs() / w.abs().max(1.0);
        assert!(
            err <= tol,
            "entry {i}: got {g}, want {w}, relative error {err:e} > {tol:e}"
        );
    }
}

#[test]
fn rosenbrock_gradient_n10_within_1e6() {
    let x: Vec<f64> = (0..10).map(|i| 0.1 * i as f64 - 0.3).collect();
    let b = FiniteDifferences::default();
    let (y, g) = b
        .value_and_gradient(|x| rosenbrock(&x), Active(&x))
        .unwrap();
    assert_eq!(y, rosenbrock(&x));
    assert_rel(&g, &rosenbrock_gradient(&x), 1e-6);
}

fn three_args<T: Real>(a: &[T], c: T, b: &[T]) -> T {
    a.iter().zip(b).fold(T::zero(), |s, (&x, &y)| s + x * x * y) * c
}

#[test]
fn active_const_active_gives_two_gradients_and_no_tangent() {
    let (a, c, b) = (vec![1.0, 2.0], 3.0, vec![4.0, 5.0]);
    let fd = FiniteDifferences::default();
    let (ga, nt, gb) = fd
        .gradient(
            |(a, c, b)| three_args(&a, c, &b),
            (Active(&a), Const(c), Active(&b)),
        )
        .unwrap();
    assert_eq!(nt, NoTangent);
    // d/da_i = 2 a_i b_i c, d/db_i = a_i^2 c
    assert_rel(&ga, &[24.0, 60.0], 1e-8);
    assert_rel(&gb, &[3.0, 12.0], 1e-8);
}

#[derive(Clone, Debug, PartialEq, difi_derive::Differentiable)]
#[difi(crate = "difi_core")]
struct Point<T> {
    x: T,
    y: T,
    weights: Vec<T>,
}

fn point_energy<T: Real>(p: &Point<T>) -> T {
    p.x * p.y + p.weights.iter().fold(T::zero(), |s, &w| s + w * w) * p.x
}

#[test]
fn derived_struct_round_trips_and_its_gradient_is_the_struct() {
    let p = Point {
        x: 2.0,
        y: 3.0,
        weights: vec![1.0, -1.0],
    };
    assert_eq!(
        p.shape(),
        Shape::Struct {
            name: "Point",
            fields: vec![
                ("x", Shape::Scalar),
                ("y", Shape::Scalar),
                ("weights", Shape::Array(vec![2]))
            ]
        }
    );
    let round: Point<f64> = p.map(&mut |v| v);
    assert_eq!(round, p);
    let b = FiniteDifferences::default();
    let g: Point<f64> = b.gradient(|p| point_energy(&p), Active(&p)).unwrap();
    // d/dx = y + |w|^2 = 5, d/dy = x = 2, d/dw = 2 w x
    assert_rel(&[g.x, g.y], &[5.0, 2.0], 1e-8);
    assert_rel(&g.weights, &[4.0, -4.0], 1e-8);
}

#[test]
fn derived_struct_as_output_of_a_jacobian() {
    let b = FiniteDifferences::default();
    let (value, jac) = b
        .value_and_jacobian(
            |x: [f64; 2]| Point {
                x: x[0] * x[1],
                y: x[0],
                weights: vec![x[1]],
            },
            Active(&[2.0, 5.0]),
        )
        .unwrap();
    assert_eq!(
        value,
        Point {
            x: 10.0,
            y: 2.0,
            weights: vec![5.0]
        }
    );
    let want = array![[5.0, 2.0], [1.0, 0.0], [0.0, 1.0]];
    assert_rel(jac.as_slice().unwrap(), want.as_slice().unwrap(), 1e-8);
}

#[test]
fn prepared_gradient_reused_at_a_second_point() {
    let b = FiniteDifferences::default();
    let f = |x: Vec<f64>| rosenbrock(&x);
    let x0 = vec![0.5; 6];
    let mut prep = b.prepare_gradient(f, Active(&x0)).unwrap();
    let x1: Vec<f64> = (0..6).map(|i| i as f64 * 0.2).collect();
    let x2: Vec<f64> = (0..6).map(|i| 1.0 - i as f64 * 0.3).collect();
    for x in [&x1, &x2] {
        let g = prep.gradient(f, Active(x)).unwrap();
        assert_rel(&g, &rosenbrock_gradient(x), 1e-6);
    }
}

#[test]
fn prepared_call_with_another_length_names_the_argument_and_both_shapes() {
    let b = FiniteDifferences::default();
    let f = |(x, c): (Vec<f64>, f64)| x.iter().sum::<f64>() * c;
    let mut prep = b
        .prepare_gradient(f, (Active(&vec![1.0; 4]), Const(2.0)))
        .unwrap();
    let err = prep
        .gradient(f, (Active(&vec![1.0; 5]), Const(2.0)))
        .unwrap_err();
    assert_eq!(
        err,
        Error::PreparedShapeMismatch {
            operator: "gradient",
            argument: 1,
            prepared: "Active(length 4)".into(),
            given: "Active(length 5)".into(),
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains("argument 1") && msg.contains("length 4") && msg.contains("length 5"),
        "{msg}"
    );
    // An activity change is a mismatch too.
    let err = prep
        .gradient(f, (Const(&vec![1.0; 4]), Const(2.0)))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::PreparedShapeMismatch { argument: 1, .. }
    ));
}

#[test]
fn pullback_is_reusable_and_checks_the_seed() {
    let b = FiniteDifferences::default();
    let (y, pb) = b
        .pullback(
            |x: [f64; 2]| vec![x[0] * x[1], x[1].sin()],
            Active(&[2.0, 0.5]),
        )
        .unwrap();
    assert_eq!(y, vec![1.0, 0.5f64.sin()]);
    let r0 = pb.apply(&vec![1.0, 0.0]).unwrap();
    let r1 = pb.apply(&vec![0.0, 1.0]).unwrap();
    assert_rel(&r0, &[0.5, 2.0], 1e-8);
    assert_rel(&r1, &[0.0, 0.5f64.cos()], 1e-8);
    assert!(matches!(pb.apply(&vec![1.0]), Err(Error::SeedShape { .. })));
}

#[test]
fn pushforward_derivative_and_jacobian_agree() {
    let b = FiniteDifferences::default();
    let f = |x: [f64; 2]| vec![x[0] * x[1], x[0].exp()];
    let x = [1.0, 3.0];
    let jv = b.pushforward(f, Active(&x), &[1.0, 2.0]).unwrap();
    assert_rel(&jv, &[3.0 + 2.0, 1f64.exp()], 1e-8);
    let j: Array2<f64> = b.jacobian(f, Active(&x)).unwrap();
    assert_rel(j.as_slice().unwrap(), &[3.0, 1.0, 1f64.exp(), 0.0], 1e-8);
    let d = b
        .derivative(|t: f64| vec![t * t, t.sin()], Active(0.5))
        .unwrap();
    assert_rel(&d, &[1.0, 0.5f64.cos()], 1e-8);
    let err = b
        .derivative(|x: [f64; 2]| x[0], Active(&[1.0, 2.0]))
        .unwrap_err();
    assert!(matches!(err, Error::ActiveCount { given: 2, .. }));
}

#[test]
fn second_order_by_finite_differences() {
    let b = FiniteDifferences::default();
    let x = vec![0.3, -0.2, 0.9];
    let h = b.hessian(|x| rosenbrock(&x), Active(&x)).unwrap();
    // Analytic Hessian of Rosenbrock.
    let mut want = Array2::<f64>::zeros((3, 3));
    for i in 0..2 {
        want[[i, i]] += 2.0 - 400.0 * (x[i + 1] - 3.0 * x[i] * x[i]);
        want[[i + 1, i + 1]] += 200.0;
        want[[i, i + 1]] += -400.0 * x[i];
        want[[i + 1, i]] += -400.0 * x[i];
    }
    assert_rel(h.as_slice().unwrap(), want.as_slice().unwrap(), 1e-5);
    let v = vec![1.0, -1.0, 0.5];
    let hv = b.hvp(|x| rosenbrock(&x), Active(&x), &v).unwrap();
    assert_rel(&hv, &want.dot(&ndarray::arr1(&v)).to_vec(), 1e-5);
    let d2 = b
        .second_derivative(|t: f64| t.powi(3), Active(2.0))
        .unwrap();
    assert_rel(&[d2], &[12.0], 1e-5);
}

#[test]
fn ndarray_arguments_of_any_dimension() {
    let b = FiniteDifferences::default();
    let a = array![[1.0, 2.0], [3.0, 4.0]];
    let g = b
        .gradient(
            |m: ndarray::Array2<f64>| m.iter().map(|v| v * v).sum::<f64>(),
            Active(&a),
        )
        .unwrap();
    assert_eq!(g.shape(), &[2, 2]);
    assert_rel(g.as_slice().unwrap(), &[2.0, 4.0, 6.0, 8.0], 1e-8);
    let cube = ndarray::Array3::<f64>::ones((2, 1, 2));
    let g = b
        .gradient(|m: ndarray::Array3<f64>| m.sum() * 2.0, Active(&cube))
        .unwrap();
    assert_eq!(g.shape(), &[2, 1, 2]);
}
