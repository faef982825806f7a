//! The tape engine against analytic values and finite differences.

use difi_core::{
    apply, checkpoint, map, sum_map, Active, ArrayD, ArrayViewD, Backend, Const, Elementwise,
    Error, FiniteDifferences, Float, Hook, NoTangent, Real, Rule, Segment,
};
use difi_tape::{last_recording, Tape, Var};
use ndarray::{arr1, arr2, s, Array1, Array2, ArrayView1};

fn rosenbrock<T: Real>(x: &[T]) -> T {
    x.windows(2).fold(T::zero(), |s, w| {
        let a = T::constant(1.0) - w[0];
        let b = w[1] - w[0] * w[0];
        s + a * a + T::constant(100.0) * b * b
    })
}

fn rosenbrock_gradient(x: &[f64]) -> Vec<f64> {
    let mut g = vec![0.0; x.len()];
    for i in 0..x.len() - 1 {
        let b = x[i + 1] - x[i] * x[i];
        g[i] += -2.0 * (1.0 - x[i]) - 400.0 * x[i] * b;
        g[i + 1] += 200.0 * b;
    }
    g
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
fn var_is_copy_and_16_bytes_over_f64() {
    fn copy<T: Copy>() {}
    copy::<Var<f64>>();
    assert!(std::mem::size_of::<Var<f64>>() <= 16);
}

#[test]
fn rosenbrock_gradient_is_exact() {
    let x: Vec<f64> = (0..20).map(|i| (i as f64 * 0.37).sin()).collect();
    let (y, g) = Tape::new()
        .value_and_gradient(|x| rosenbrock(&x), Active(&x))
        .unwrap();
    assert_eq!(y, rosenbrock(&x));
    close(&g, &rosenbrock_gradient(&x), 1e-14);
}

/// Every elementary function against central finite differences.
#[test]
fn elementary_functions_match_finite_differences() {
    type F = fn(Var<f64>) -> Var<f64>;
    let cases: Vec<(&str, F, f64)> = vec![
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
        ("abs-", |x| x.abs(), -0.3),
        ("powi", |x| x.powi(3), 0.3),
        ("powf", |x| x.powf(Var::constant(2.5)), 0.3),
        ("cpowf", |x| Var::constant(2.5).powf(x), 0.3),
        ("powf-self", |x| x.powf(x), 0.3),
        ("atan2", |x| x.atan2(Var::constant(0.4)), 0.3),
        ("hypot", |x| x.hypot(Var::constant(0.4)), 0.3),
        ("max", |x| x.max(Var::constant(0.1)), 0.3),
        ("min", |x| x.min(Var::constant(0.1)), 0.3),
        ("div", |x| Var::constant(2.0) / x, 0.3),
        ("mul_add", |x| x.mul_add(x, x), 0.3),
        ("log", |x| x.log(Var::constant(3.0)), 0.3),
    ];
    let fd = FiniteDifferences::default();
    for (name, f, x) in cases {
        let g = Tape::new().derivative(f, Active(x)).unwrap();
        // Reference: central differences of the same function evaluated on constants.
        let reference = fd
            .derivative(|t: f64| f(Var::constant(t)).value(), Active(x))
            .unwrap();
        assert!(
            (g - reference).abs() <= 1e-7 * reference.abs().max(1.0),
            "{name}: tape {g} vs finite differences {reference}"
        );
    }
}

fn three<T: Real>(a: &[T], c: T, b: &[T]) -> T {
    a.iter().zip(b).fold(T::zero(), |s, (&x, &y)| s + x * x * y) * c
}

#[test]
fn const_arguments_record_nothing_and_get_no_tangent() {
    let (a, c, b) = (vec![1.0, 2.0], 3.0, vec![4.0, 5.0]);
    let (ga, NoTangent, gb) = Tape::new()
        .gradient(
            |(a, c, b)| three(&a, c, &b),
            (Active(&a), Const(c), Active(&b)),
        )
        .unwrap();
    assert_eq!(ga, vec![24.0, 60.0]);
    assert_eq!(gb, vec![3.0, 12.0]);
    // With b constant, the products b_i * c involve constants only and record nothing.
    let both = {
        Tape::new()
            .gradient(
                |(a, c, b)| three(&a, c, &b),
                (Active(&a), Const(c), Active(&b)),
            )
            .unwrap();
        last_recording().nodes
    };
    let one = {
        Tape::new()
            .gradient(
                |(a, c, b)| three(&a, c, &b),
                (Active(&a), Const(c), Const(&b)),
            )
            .unwrap();
        last_recording().nodes
    };
    assert!(
        one < both,
        "{one} nodes with b constant vs {both} with b active"
    );
    // Nothing active: nothing recorded.
    let g = Tape::new()
        .gradient(|x: Vec<Var<f64>>| x[0] * x[1], Const(&vec![1.0, 2.0]))
        .unwrap();
    assert_eq!(g, NoTangent);
    assert_eq!(last_recording().nodes, 0);
}

#[test]
fn array_nodes_are_one_record_each() {
    let a = arr2(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    let x = arr1(&[0.5, -1.0, 2.0]);
    // f(A, x) = sum(A x) + dot(x, x) + sum(A Aᵀ)
    let f = |(a, x): (Array2<Var<f64>>, Array1<Var<f64>>)| {
        let ax = Var::matvec(a.view(), x.view());
        let aat = Var::matmul(a.view(), a.t());
        Var::sum_all(ax.view()) + Var::dot(x.view(), x.view()) + aat.sum()
    };
    let (ga, gx) = Tape::new().gradient(f, (Active(&a), Active(&x))).unwrap();
    let stats = last_recording();
    assert_eq!(stats.array_nodes, 4, "matvec, matmul, sum, dot");
    // Analytic: d/dA sum(Ax) = 1 xᵀ; d/dA sum(AAᵀ) = 2 (1 1ᵀ) A; d/dx = Aᵀ1 + 2x.
    let ones = Array2::<f64>::ones((2, 2));
    let want_a = Array2::from_shape_fn((2, 3), |(_, j)| x[j]) + ones.dot(&a) * 2.0;
    let want_x = a.t().dot(&arr1(&[1.0, 1.0])) + &x * 2.0;
    close(ga.as_slice().unwrap(), want_a.as_slice().unwrap(), 1e-14);
    close(gx.as_slice().unwrap(), want_x.as_slice().unwrap(), 1e-14);
    // With A constant, the matvec pullback does no work for A and A records nothing.
    let gx2 = Tape::new().gradient(f, (Const(&a), Active(&x))).unwrap().1;
    close(gx2.as_slice().unwrap(), want_x.as_slice().unwrap(), 1e-14);
}

/// `w (x − y)²`, for `sum_map`.
#[derive(Clone)]
struct WeightedSquare;

impl Elementwise<3> for WeightedSquare {
    fn eval<T: Real>(&self, [w, x, y]: [T; 3]) -> T {
        w * (x - y) * (x - y)
    }
}

/// `Σ_i w_i (x_i − y_i)²`, with `x` read through a view of stride 2.
fn weighted_squares<T: Real>(w: &[T], x: &[T], y: &[T]) -> T {
    let x = ArrayView1::from(x);
    sum_map(
        &WeightedSquare,
        [w.into(), x.slice(s![..;2]), ArrayView1::from(y)],
    )
}

#[test]
fn sum_map_is_one_record_holds_constant_operands_and_replays() {
    let n = 200;
    let w: Vec<f64> = (0..n).map(|i| 1.0 + 0.01 * i as f64).collect();
    let x: Vec<f64> = (0..2 * n).map(|i| (i as f64 * 0.37).sin()).collect();
    let y: Vec<f64> = (0..n).map(|i| (i as f64 * 0.11).cos()).collect();
    // d/dx_{2i} = 2 w_i (x_{2i} − y_i), zero at odd indices; d/dy_i is its negative.
    let want_x = |x: &[f64]| -> Vec<f64> {
        (0..2 * n)
            .map(|j| match j % 2 {
                0 => 2.0 * w[j / 2] * (x[j] - y[j / 2]),
                _ => 0.0,
            })
            .collect()
    };
    let want_y: Vec<f64> = (0..n).map(|i| -2.0 * w[i] * (x[2 * i] - y[i])).collect();
    let f = |(w, x, y): (Vec<Var<f64>>, Vec<Var<f64>>, Vec<Var<f64>>)| weighted_squares(&w, &x, &y);
    let b = Tape::new();

    let (value, (NoTangent, gx, gy)) = b
        .value_and_gradient(f, (Const(&w), Active(&x), Active(&y)))
        .unwrap();
    let stats = last_recording();
    assert_eq!(value, weighted_squares(&w, &x, &y));
    close(&gx, &want_x(&x), 1e-14);
    close(&gy, &want_y, 1e-14);
    // The inputs, one array node and its output: nothing per element of the sum.
    assert_eq!(stats.array_nodes, 1);
    assert_eq!(stats.nodes, 3 * n + 2);
    // The constant weights are held by the node, not put in the recording's constant pool.
    assert!(
        stats.bytes < (3 * n + 2) * 20 + n * 8,
        "{} bytes",
        stats.bytes
    );

    // All constant: nothing recorded.
    let (_, NoTangent, NoTangent) = b.gradient(f, (Const(&w), Const(&x), Const(&y))).unwrap();
    assert_eq!(last_recording().nodes, 0);

    // A prepared gradient replays the node at a new point.
    let x2: Vec<f64> = x.iter().map(|v| v * 0.5 + 0.1).collect();
    let mut prep = b
        .prepare_gradient(f, (Const(&w), Active(&x), Active(&y)))
        .unwrap();
    let (NoTangent, gx2, _) = prep
        .gradient(f, (Const(&w), Active(&x2), Active(&y)))
        .unwrap();
    assert_eq!(prep.state().replays(), 1);
    close(&gx2, &want_x(&x2), 1e-14);

    // An operand mixing active tracers, literals and a product (not one progression): w_i = 1,
    // y_i = 0, so the terms are x², 4 and (x₀ x₁)².
    let mixed = |x: Vec<Var<f64>>| {
        let operand = [x[0], Var::constant(2.0), x[0] * x[1]];
        let ones = [Var::constant(1.0); 3];
        let zeros = [Var::constant(0.0); 3];
        sum_map(
            &WeightedSquare,
            [(&ones).into(), (&operand).into(), (&zeros).into()],
        )
    };
    let (value, g) = b
        .value_and_gradient(mixed, Active(&vec![3.0, -2.0]))
        .unwrap();
    assert_eq!(value, 9.0 + 4.0 + 36.0);
    // d/dx₀ = 2 x₀ + 2 x₀ x₁², d/dx₁ = 2 x₀² x₁
    close(&g, &[6.0 + 24.0, -36.0], 1e-14);
}

/// `x tanh(x + b)`, for `map`.
#[derive(Clone)]
struct BiasedSwish;

impl Elementwise<2> for BiasedSwish {
    fn eval<T: Real>(&self, [x, b]: [T; 2]) -> T {
        x * (x + b).tanh()
    }
}

/// `a b + √c a`: infinite partial in `c` at `c = 0`.
#[derive(Clone)]
struct ProductPlusRoot;

impl Elementwise<3> for ProductPlusRoot {
    fn eval<T: Real>(&self, [a, b, c]: [T; 3]) -> T {
        a * b + c.sqrt() * a
    }
}

/// By hand, the gradient of `Σ_i w_i f(x[a(i)], x[b(i)], x[c(i)])` over `len` elements, `f`
/// [`ProductPlusRoot`] and `w(i, f_i)` its weight (which may depend on the term's value); an
/// element of weight 0 adds nothing, even where a partial is infinite.
fn product_plus_root_gradient(
    x: &[f64],
    len: usize,
    [a_of, b_of, c_of]: [&dyn Fn(usize) -> usize; 3],
    w: &dyn Fn(usize, f64) -> f64,
) -> Vec<f64> {
    let mut g = vec![0.0; x.len()];
    for i in 0..len {
        let (a, b, c) = (x[a_of(i)], x[b_of(i)], x[c_of(i)]);
        let w = w(i, a * b + c.sqrt() * a);
        if w != 0.0 {
            g[a_of(i)] += w * (b + c.sqrt());
            g[b_of(i)] += w * a;
            g[c_of(i)] += w * a / (2.0 * c.sqrt());
        }
    }
    g
}

#[test]
fn every_sweep_starts_from_zero_adjoints() {
    // A thread's sweeps reuse one adjoint buffer: a gradient taken again, a pullback applied
    // again and a Jacobian's next row must not see the adjoints of the sweep before. f has
    // scalar nodes and an array node (whose output slots the sweep jumps over):
    // y_i = x_i x_{i+1} + √x_i x_i, then loss = Σ y_i² + x₀ x₁.
    let n = 40;
    let x: Vec<f64> = (0..n).map(|i| 0.3 + 0.05 * i as f64).collect();
    let y_of = |x: &[Var<f64>]| {
        let views = [&x[..n - 1], &x[1..], &x[..n - 1]].map(ArrayView1::from);
        map(&ProductPlusRoot, views)
    };
    let loss = |x: Vec<Var<f64>>| y_of(&x).iter().fold(x[0] * x[1], |s, &y| s + y * y);
    let of: [&dyn Fn(usize) -> usize; 3] = [&|i| i, &|i| i + 1, &|i| i];
    let mut want = product_plus_root_gradient(&x, n - 1, of, &|_, y| 2.0 * y);
    want[0] += x[1];
    want[1] += x[0];
    for _ in 0..3 {
        close(
            &Tape::new().gradient(loss, Active(&x)).unwrap(),
            &want,
            1e-13,
        );
    }
    let (_, pb) = Tape::new().pullback(loss, Active(&x)).unwrap();
    for _ in 0..2 {
        let g: Vec<f64> = pb.apply(&1.0).unwrap();
        close(&g, &want, 1e-13);
    }
    // Three rows sharing inputs (a Jacobian this small sweeps row by row below each output).
    let rows = |x: Vec<Var<f64>>| {
        let y = y_of(&x);
        vec![
            loss(x.clone()),
            x[0] * x[2],
            y.iter().fold(Var::constant_of(0.0), |s, &v| s + v),
        ]
    };
    let j = Tape::new().jacobian(rows, Active(&x)).unwrap();
    let mut product = vec![0.0; n];
    (product[0], product[2]) = (x[2], x[0]);
    let sum = product_plus_root_gradient(&x, n - 1, of, &|_, _| 1.0);
    for (row, want) in [want, product, sum].iter().enumerate() {
        close(&j.row(row).to_vec(), want, 1e-13);
    }
}

#[test]
fn maps_and_sums_of_active_operands_over_several_chunks() {
    // Operands of 150 elements (several chunks of the pullback): `a` a slice; `b` a stride-2
    // view, or the elements 150..300 in reverse (a list of references); `c` gathered from two
    // places (two runs). Weights 0 on elements 64..80 and 140 (a chunk with unused elements,
    // where c = 0 at element 70: its infinite partial must add nothing).
    let x: Vec<f64> = (0..300)
        .map(|j| {
            if j == 169 {
                0.0
            } else {
                0.5 + 0.4 * (j as f64 * 0.7).sin()
            }
        })
        .collect();
    let weight = |i: usize| {
        if (64..80).contains(&i) || i == 140 {
            0.0
        } else {
            1.0 + 0.01 * i as f64
        }
    };
    let weights: Vec<f64> = (0..150).map(weight).collect();
    let a_of = |i: usize| i;
    let c_of = |i: usize| if i == 0 { 299 } else { 99 + i };
    for b_of in [|i: usize| 2 * i, |i: usize| 299 - i] {
        let operands = |x: &[Var<f64>]| -> [Vec<Var<f64>>; 3] {
            [a_of, b_of, c_of].map(|of| (0..150).map(|i| x[of(i)]).collect())
        };
        let want = |x: &[f64], w: &dyn Fn(usize, f64) -> f64| {
            product_plus_root_gradient(x, 150, [&a_of, &b_of, &c_of], w)
        };
        let (g, NoTangent) = Tape::new()
            .gradient(
                |(x, w): (Vec<Var<f64>>, Vec<Var<f64>>)| {
                    let ops = operands(&x);
                    let y = map(&ProductPlusRoot, ops.each_ref().map(|o| o[..].into()));
                    Var::dot(y.view(), ArrayView1::from(&w[..]))
                },
                (Active(&x), Const(&weights)),
            )
            .unwrap();
        assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
        close(&g, &want(&x, &|i, _| weight(i)), 1e-13);
        // Summed, with every weight 1 and no c = 0.
        let mut x1 = x.clone();
        x1[169] = 0.25;
        let g = Tape::new()
            .gradient(
                |x: Vec<Var<f64>>| {
                    let ops = operands(&x);
                    sum_map(&ProductPlusRoot, ops.each_ref().map(|o| o[..].into()))
                },
                Active(&x1),
            )
            .unwrap();
        close(&g, &want(&x1, &|_, _| 1.0), 1e-13);
    }
}

#[test]
fn replayed_maps_read_slices_lists_and_runs_chunk_by_chunk() {
    // y = map(f, [a, b, c]) over 150 elements, `a` a slice, `b` a list (elements 150..300 in
    // reverse) or a stride-2 view, `c` two runs (x₂₉₉, then x₁₀₀..x₂₄₉); loss = y·y + Σ f.
    // Its gradient reads the replayed y, so a prepared gradient at a new x checks the map's
    // replay (and the sum's) against the hand gradient there.
    let a_of = |i: usize| i;
    let c_of = |i: usize| if i == 0 { 299 } else { 99 + i };
    let x_at = |shift: f64| -> Vec<f64> {
        (0..300)
            .map(|j| 0.5 + 0.4 * (j as f64 * 0.7 + shift).sin())
            .collect()
    };
    for b_of in [|i: usize| 299 - i, |i: usize| 2 * i] {
        let f = |x: Vec<Var<f64>>| {
            let ops = [a_of, b_of, c_of].map(|of| (0..150).map(|i| x[of(i)]).collect::<Vec<_>>());
            let views = || ops.each_ref().map(|o| ArrayView1::from(&o[..]));
            let y = map(&ProductPlusRoot, views());
            Var::dot(y.view(), y.view()) + sum_map(&ProductPlusRoot, views())
        };
        // d/dy_i of y·y + Σ y is 2 y_i + 1.
        let want = |x: &[f64]| {
            product_plus_root_gradient(x, 150, [&a_of, &b_of, &c_of], &|_, y| 2.0 * y + 1.0)
        };
        let mut prep = Tape::new().prepare_gradient(f, Active(&x_at(0.0))).unwrap();
        let x = x_at(1.3);
        let g = prep.gradient(f, Active(&x)).unwrap();
        assert_eq!(prep.state().replays(), 1);
        close(&g, &want(&x), 1e-13);
    }
}

#[test]
fn map_is_one_record_with_an_output_per_element_and_replays() {
    let n = 100;
    let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.3).sin()).collect();
    let bias: Vec<f64> = (0..n).map(|i| 0.01 * i as f64).collect();
    // f = Σ_i c_i y_i with y = map(x, b), c_i = 1 + i:
    // d/dx_i = c_i (t + x (1 − t²)), t = tanh(x + b).
    let f = |(x, b): (Vec<Var<f64>>, Vec<Var<f64>>)| {
        let y = map(
            &BiasedSwish,
            [ArrayView1::from(&x[..]), ArrayView1::from(&b[..])],
        );
        y.iter().enumerate().fold(Var::constant(0.0), |s, (i, &v)| {
            s + Var::constant(1.0 + i as f64) * v
        })
    };
    let want = |x: &[f64]| -> Vec<f64> {
        (0..n)
            .map(|i| {
                let t = (x[i] + bias[i]).tanh();
                (1.0 + i as f64) * (t + x[i] * (1.0 - t * t))
            })
            .collect()
    };
    let b = Tape::new();
    let (gx, NoTangent) = b.gradient(f, (Active(&x), Const(&bias))).unwrap();
    close(&gx, &want(&x), 1e-14);
    let stats = last_recording();
    assert_eq!(stats.array_nodes, 1);
    // Inputs, the node and its outputs, then two records per term of the weighted sum.
    assert_eq!(stats.nodes, n + 1 + n + 2 * n);
    // A prepared gradient replays the node's outputs at a new point.
    let x2: Vec<f64> = x.iter().map(|v| 0.7 * v - 0.2).collect();
    let mut prep = b.prepare_gradient(f, (Active(&x), Const(&bias))).unwrap();
    let (gx2, NoTangent) = prep.gradient(f, (Active(&x2), Const(&bias))).unwrap();
    assert_eq!(prep.state().replays(), 1);
    close(&gx2, &want(&x2), 1e-14);
}

#[test]
fn constant_product_operands_are_held_not_referenced() {
    // A 200 × 10 constant matrix: referenced element by element it would put 2000 values into
    // the recording's constant pool; the product node holds it instead and records nothing for it.
    let a = Array2::from_shape_fn((200, 10), |(i, j)| ((i * 10 + j) as f64 * 0.37).sin());
    let x = Array1::from_shape_fn(10, |j| 0.5 - 0.1 * j as f64);
    let f = |(a, x): (Array2<Var<f64>>, Array1<Var<f64>>)| {
        let ax = Var::matvec(a.view(), x.view());
        Var::dot(ax.view(), ax.view())
    };
    // d/dx |Ax|² = 2 Aᵀ A x
    let want = a.t().dot(&a.dot(&x)) * 2.0;
    let gx = Tape::new().gradient(f, (Const(&a), Active(&x))).unwrap().1;
    let held = last_recording();
    close(gx.as_slice().unwrap(), want.as_slice().unwrap(), 1e-12);
    assert!(
        held.bytes < a.len() * std::mem::size_of::<f64>(),
        "{} bytes recorded with A constant",
        held.bytes
    );
    // Active, A costs references, and its cotangent is 2 (Ax) xᵀ.
    let (ga, gx) = Tape::new().gradient(f, (Active(&a), Active(&x))).unwrap();
    assert!(last_recording().bytes > held.bytes);
    close(gx.as_slice().unwrap(), want.as_slice().unwrap(), 1e-12);
    let ax = a.dot(&x);
    let want_a = Array2::from_shape_fn((200, 10), |(i, j)| 2.0 * ax[i] * x[j]);
    close(ga.as_slice().unwrap(), want_a.as_slice().unwrap(), 1e-12);
}

/// y = a ⊙ b, counting which cotangents it was asked for.
#[derive(Clone, Default)]
struct CountingMul {
    asked: std::sync::Arc<std::sync::Mutex<Vec<Vec<bool>>>>,
}

impl Rule for CountingMul {
    type Saved<T: Real> = (ArrayD<T>, ArrayD<T>);
    fn forward<T: Real>(
        &self,
        x: &[ArrayViewD<'_, T>],
        _active: &[bool],
    ) -> (Vec<ArrayD<T>>, Self::Saved<T>) {
        (vec![&x[0] * &x[1]], (x[0].to_owned(), x[1].to_owned()))
    }
    fn pullback<T: Real>(
        &self,
        s: &Self::Saved<T>,
        ct: &[ArrayViewD<'_, T>],
        needed: &[bool],
    ) -> Vec<Option<ArrayD<T>>> {
        self.asked.lock().unwrap().push(needed.to_vec());
        vec![
            needed[0].then(|| &ct[0] * &s.1),
            needed[1].then(|| &ct[0] * &s.0),
        ]
    }
}

#[test]
fn custom_rules_are_asked_only_for_needed_cotangents() {
    let rule = CountingMul::default();
    let (u, v) = (arr1(&[1.0, 2.0]).into_dyn(), arr1(&[3.0, 4.0]).into_dyn());
    let f =
        |(u, v): (ArrayD<Var<f64>>, ArrayD<Var<f64>>)| apply(&rule, &[u.view(), v.view()])[0].sum();
    let (gu, NoTangent) = Tape::new().gradient(f, (Active(&u), Const(&v))).unwrap();
    assert_eq!(gu.as_slice().unwrap(), &[3.0, 4.0]);
    let (gu, gv) = Tape::new().gradient(f, (Active(&u), Active(&v))).unwrap();
    assert_eq!(gu.as_slice().unwrap(), &[3.0, 4.0]);
    assert_eq!(gv.as_slice().unwrap(), &[1.0, 2.0]);
    assert_eq!(
        *rule.asked.lock().unwrap(),
        vec![vec![true, false], vec![true, true]]
    );
}

/// A rule that breaks its contract by answering for a constant input.
#[derive(Clone)]
struct Greedy;
impl Rule for Greedy {
    type Saved<T: Real> = ();
    fn forward<T: Real>(&self, x: &[ArrayViewD<'_, T>], _a: &[bool]) -> (Vec<ArrayD<T>>, ()) {
        (vec![&x[0] + &x[1]], ())
    }
    fn pullback<T: Real>(
        &self,
        _: &(),
        ct: &[ArrayViewD<'_, T>],
        _n: &[bool],
    ) -> Vec<Option<ArrayD<T>>> {
        vec![Some(ct[0].to_owned()), Some(ct[0].to_owned())]
    }
}

#[test]
fn a_rule_breaking_its_contract_is_an_error() {
    let (u, v) = (arr1(&[1.0]).into_dyn(), arr1(&[3.0]).into_dyn());
    let err = Tape::new()
        .gradient(
            |(u, v): (ArrayD<Var<f64>>, ArrayD<Var<f64>>)| {
                apply(&Greedy, &[u.view(), v.view()])[0].sum()
            },
            (Active(&u), Const(&v)),
        )
        .unwrap_err();
    assert!(matches!(err, Error::RuleContract { .. }), "{err}");
}

#[test]
fn pullback_is_reusable_and_jacobian_rows_are_exact() {
    let f = |x: Vec<Var<f64>>| vec![x[0] * x[1], x[1].sin(), x[0] + x[2]];
    let x = vec![2.0, 0.5, -1.0];
    let (y, pb) = Tape::new().pullback(f, Active(&x)).unwrap();
    assert_eq!(y, vec![1.0, 0.5f64.sin(), 1.0]);
    for _ in 0..2 {
        assert_eq!(pb.apply(&vec![1.0, 0.0, 0.0]).unwrap(), vec![0.5, 2.0, 0.0]);
        assert_eq!(
            pb.apply(&vec![0.0, 1.0, 0.0]).unwrap(),
            vec![0.0, 0.5f64.cos(), 0.0]
        );
    }
    let j = Tape::new().jacobian(f, Active(&x)).unwrap();
    let want = [0.5, 2.0, 0.0, 0.0, 0.5f64.cos(), 0.0, 1.0, 0.0, 1.0];
    close(j.as_slice().unwrap(), &want, 1e-15);
    let jfd = FiniteDifferences::default()
        .jacobian(
            |x: Vec<f64>| vec![x[0] * x[1], x[1].sin(), x[0] + x[2]],
            Active(&x),
        )
        .unwrap();
    close(j.as_slice().unwrap(), jfd.as_slice().unwrap(), 1e-8);
    // The pullback object moves to another thread.
    std::thread::spawn(move || pb.apply(&vec![0.0, 0.0, 1.0]).unwrap())
        .join()
        .unwrap();
}

fn branchy<T: Real>(x: &[T]) -> T {
    if x[0] > x[1] {
        x[0] * x[0] * x[1]
    } else {
        x[1].sin() * x[0]
    }
}

#[test]
fn replayed_sin_and_cos_use_derivatives_at_the_new_point() {
    // sin and cos record their derivative beside the node; a replay must renew it.
    let f = |x: Vec<Var<f64>>| x[0].sin() * x[1].cos() + x[0].cos().sin();
    let want = |x: [f64; 2]| {
        [
            x[0].cos() * x[1].cos() - x[0].cos().cos() * x[0].sin(),
            -x[0].sin() * x[1].sin(),
        ]
    };
    let mut prep = Tape::new()
        .prepare_gradient(f, Active(&vec![0.3, 0.4]))
        .unwrap();
    for x in [[1.1, -0.7], [2.5, 0.9]] {
        let g = prep.gradient(f, Active(&x.to_vec())).unwrap();
        for (a, b) in g.iter().zip(want(x)) {
            assert!((a - b).abs() < 1e-14, "{g:?} vs {:?}", want(x));
        }
    }
    assert_eq!(prep.state().replays(), 2);
}

#[test]
fn prepared_gradient_replays_and_rerecords_when_a_guard_fails() {
    let b = Tape::new();
    let f = |x: Vec<Var<f64>>| branchy(&x);
    let mut prep = b.prepare_gradient(f, Active(&vec![2.0, 1.0])).unwrap();
    // Same branch: replayed.
    let g = prep.gradient(f, Active(&vec![3.0, 2.0])).unwrap();
    assert_eq!(g, vec![2.0 * 3.0 * 2.0, 9.0]);
    assert_eq!((prep.state().replays(), prep.state().rerecords()), (1, 0));
    // Other branch: the guard fails and the engine records anew.
    let g = prep.gradient(f, Active(&vec![1.0, 2.0])).unwrap();
    assert_eq!(g, vec![2f64.sin(), 2f64.cos()]);
    assert_eq!(prep.state().rerecords(), 1);
    // Back: replay of the new recording fails its guard, record again; answers stay right.
    let g = prep.gradient(f, Active(&vec![3.0, 2.0])).unwrap();
    assert_eq!(g, vec![12.0, 9.0]);
    // A Const argument changed between calls is not replayed with the old value.
    let h = |(x, c): (Vec<Var<f64>>, Var<f64>)| x[0] * c;
    let mut prep = b
        .prepare_gradient(h, (Active(&vec![1.0]), Const(2.0)))
        .unwrap();
    assert_eq!(
        prep.gradient(h, (Active(&vec![1.0]), Const(5.0)))
            .unwrap()
            .0,
        vec![5.0]
    );
}

#[test]
fn prepared_gradient_rerecords_after_a_branch_on_plain_values() {
    // A branch on `innermost()` or `Var::value` makes no tracer comparison, so no guard can
    // catch it: a recording that read an active tracer's plain value is never replayed.
    let reads: [fn(Var<f64>) -> f64; 2] = [|v| v.innermost(), |v| v.value()];
    for read in reads {
        let f = |x: Vec<Var<f64>>| {
            if read(x[0]) > 0.0 {
                x[0] * x[0]
            } else {
                -x[0]
            }
        };
        let mut prep = Tape::new().prepare_gradient(f, Active(&vec![1.0])).unwrap();
        assert_eq!(prep.gradient(f, Active(&vec![-1.0])).unwrap(), vec![-1.0]);
        assert_eq!(prep.gradient(f, Active(&vec![3.0])).unwrap(), vec![6.0]);
        assert_eq!((prep.state().replays(), prep.state().rerecords()), (0, 2));
    }
    // Reading a constant's value is no such branch: replayed.
    let g = |(x, c): (Vec<Var<f64>>, Var<f64>)| x[0] * Var::constant(c.innermost());
    let mut prep = Tape::new()
        .prepare_gradient(g, (Active(&vec![1.0]), Const(2.0)))
        .unwrap();
    let got = prep
        .gradient(g, (Active(&vec![4.0]), Const(2.0)))
        .unwrap()
        .0;
    assert_eq!(got, vec![2.0]);
    assert_eq!(prep.state().replays(), 1);
}

#[test]
fn prepared_gradient_with_another_shape_is_an_error() {
    let f = |x: Vec<Var<f64>>| rosenbrock(&x);
    let mut prep = Tape::new()
        .prepare_gradient(f, Active(&vec![1.0; 3]))
        .unwrap();
    let err = prep.gradient(f, Active(&vec![1.0; 4])).unwrap_err();
    assert!(
        matches!(err, Error::PreparedShapeMismatch { argument: 1, .. }),
        "{err}"
    );
}

#[test]
fn nested_gradients_and_perturbation_confusion() {
    let outer = Tape::new();
    // d/dx [x · d/dy (x·y)] = d/dx x² = 2x: 8 at x = 4.
    let d = outer
        .derivative(
            |x: Var<f64>| {
                assert_eq!(Var::<f64>::nest_level(), 1);
                let inner = Tape::new()
                    .derivative(
                        |(x, y): (Var<Var<f64>>, Var<Var<f64>>)| {
                            assert_eq!(<Var<Var<f64>>>::nest_level(), 2);
                            x * y
                        },
                        (Const(x), Active(Var::constant(3.0))),
                    )
                    .unwrap();
                x * inner
            },
            Active(4.0),
        )
        .unwrap();
    assert_eq!(d, 8.0);
    // d/dx [x · d/dy (x + y)] = 1 at any x.
    for x0 in [-2.0, 0.0, 4.0] {
        let d = outer
            .derivative(
                |x: Var<f64>| {
                    let inner = Tape::new()
                        .derivative(
                            |(x, y): (Var<Var<f64>>, Var<Var<f64>>)| x + y,
                            (Const(x), Active(Var::constant(1.0))),
                        )
                        .unwrap();
                    x * inner
                },
                Active(x0),
            )
            .unwrap();
        assert_eq!(d, 1.0);
    }
    // A gradient of a gradient: the Hessian of Rosenbrock row by row.
    let x = vec![0.3, -0.4, 0.8];
    let h = outer
        .jacobian(
            |x: Vec<Var<f64>>| {
                Tape::new()
                    .gradient(|y| rosenbrock(&y), Active(&x))
                    .unwrap()
            },
            Active(&x),
        )
        .unwrap();
    let hfd = FiniteDifferences::default()
        .jacobian(|x: Vec<f64>| rosenbrock_gradient(&x), Active(&x))
        .unwrap();
    close(h.as_slice().unwrap(), hfd.as_slice().unwrap(), 1e-6);
    assert!(!f64::is_deriving() && Var::<f64>::is_deriving());
}

#[derive(Clone)]
struct Double;
impl Hook for Double {
    fn cotangent<T: Real>(&self, ct: T) -> T {
        ct * T::constant(2.0)
    }
}

#[test]
fn stop_gradient_and_hook() {
    let b = Tape::new();
    let g = b
        .gradient(
            |x: Vec<Var<f64>>| x[0] * x[1].stop_gradient(),
            Active(&vec![3.0, 5.0]),
        )
        .unwrap();
    assert_eq!(g, vec![5.0, 0.0]);
    // The hook doubles the cotangent arriving at that use only.
    let g = b
        .gradient(
            |x: Vec<Var<f64>>| x[0].hook(Double) * x[1] + x[0],
            Active(&vec![3.0, 5.0]),
        )
        .unwrap();
    assert_eq!(g, vec![2.0 * 5.0 + 1.0, 3.0]);
    assert_eq!(3.0f64.hook(Double), 3.0);
}

#[derive(Clone)]
struct Steps(usize);
impl Segment for Steps {
    fn eval<T: Real>(&self, x: &[T]) -> Vec<T> {
        let mut t = x[0];
        for _ in 0..self.0 {
            t = (t.cos() + x[1]).sin();
        }
        vec![t, t * x[1]]
    }
}

/// A segment with one output more where `x₀ > 0`: `[x₀x₁, x₁]`, else `[x₀x₁]`.
#[derive(Clone)]
struct SignSizedStep;
impl Segment for SignSizedStep {
    fn eval<T: Real>(&self, x: &[T]) -> Vec<T> {
        match x[0] > T::zero() {
            true => vec![x[0] * x[1], x[1]],
            false => vec![x[0] * x[1]],
        }
    }
}

#[test]
fn a_replayed_checkpoint_whose_output_length_changes_is_recorded_anew() {
    let f = |x: Vec<Var<f64>>| checkpoint(&SignSizedStep, &x).into_iter().sum::<Var<f64>>();
    let mut prep = Tape::new()
        .prepare_gradient(f, Active(&vec![1.0, 2.0]))
        .unwrap();
    let g = prep.gradient(f, Active(&vec![-1.5, 2.0])).unwrap();
    assert_eq!(g, vec![2.0, -1.5]);
    assert_eq!((prep.state().replays(), prep.state().rerecords()), (0, 1));
    let g = prep.gradient(f, Active(&vec![-0.5, 3.0])).unwrap();
    assert_eq!(g, vec![3.0, -0.5]);
    assert_eq!(prep.state().replays(), 1);
}

#[test]
fn checkpoint_keeps_only_inputs_and_outputs_and_gives_the_same_gradient() {
    let b = Tape::new();
    let x = vec![0.3, 0.7];
    let plain = b
        .gradient(
            |x: Vec<Var<f64>>| {
                let y = Steps(50).eval(&x);
                y[0] + y[1]
            },
            Active(&x),
        )
        .unwrap();
    let plain_nodes = last_recording().nodes;
    let ck = b
        .gradient(
            |x: Vec<Var<f64>>| {
                let y = checkpoint(&Steps(50), &x);
                y[0] + y[1]
            },
            Active(&x),
        )
        .unwrap();
    let ck_nodes = last_recording().nodes;
    close(&ck, &plain, 1e-14);
    assert!(ck_nodes <= 6, "checkpointed recording has {ck_nodes} nodes");
    assert!(plain_nodes > 100, "plain recording has {plain_nodes} nodes");
}

/// One step of a state `(u, w)` whose update branches on the sign of `u`; `reusable` says so
/// through `same_as`. Counts its recordings (evaluations at a tracer).
#[derive(Clone, PartialEq)]
struct BranchingStep {
    h: f64,
    reusable: bool,
}

static BRANCHING_STEP_RECORDINGS: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

impl Segment for BranchingStep {
    fn eval<T: Real>(&self, x: &[T]) -> Vec<T> {
        if T::NEST_LEVEL > 0 {
            BRANCHING_STEP_RECORDINGS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let (u, w, h) = (x[0], x[1], T::constant(self.h));
        if u > T::zero() {
            vec![u - h * (T::one() + w * w), w * (T::one() + h * u.sin())]
        } else {
            vec![
                u - h * (T::one() + w * w) * T::constant(0.5),
                w * (T::one() + h * u),
            ]
        }
    }
    fn same_as(&self, other: &Self) -> bool {
        self.reusable && self == other
    }
}

#[test]
fn equal_checkpoint_segments_are_recorded_once_and_replayed_until_a_branch_differs() {
    // From u = 0.3, u falls by about 0.125 a step: 3 steps on the u > 0 branch, 7 on the other.
    let steps = |x: &[f64], reusable: bool| {
        let f = |x: Vec<Var<f64>>| {
            let step = BranchingStep { h: 0.1, reusable };
            let y = (0..10).fold(x, |y, _| checkpoint(&step, &y));
            y[0] * y[1]
        };
        BRANCHING_STEP_RECORDINGS.store(0, std::sync::atomic::Ordering::Relaxed);
        let g = Tape::new().gradient(f, Active(x)).unwrap();
        (
            g,
            BRANCHING_STEP_RECORDINGS.load(std::sync::atomic::Ordering::Relaxed),
        )
    };
    let x = vec![0.3, 0.5];
    let (each, recorded_each) = steps(&x, false);
    let (replayed, recorded_replayed) = steps(&x, true);
    assert_eq!(recorded_each, 10);
    // The last segment's recording replays for the 6 before it; the third fails its guard
    // and is recorded, and that recording replays for the first two.
    assert_eq!(recorded_replayed, 2);
    close(&replayed, &each, 1e-15);
    let fd = FiniteDifferences::default()
        .gradient(
            |x: Vec<f64>| {
                let step = BranchingStep {
                    h: 0.1,
                    reusable: false,
                };
                let y = (0..10).fold(x, |y, _| step.eval(&y));
                y[0] * y[1]
            },
            Active(&x),
        )
        .unwrap();
    close(&replayed, &fd, 1e-7);
}

/// A reusable step that counts its live copies.
struct CountedStep;

static LIVE_COUNTED_STEPS: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);

impl CountedStep {
    fn new() -> Self {
        LIVE_COUNTED_STEPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        CountedStep
    }
}

impl Clone for CountedStep {
    fn clone(&self) -> Self {
        CountedStep::new()
    }
}

impl Drop for CountedStep {
    fn drop(&mut self) {
        LIVE_COUNTED_STEPS.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Segment for CountedStep {
    fn eval<T: Real>(&self, x: &[T]) -> Vec<T> {
        vec![x[0].sin() + x[1], x[1] * x[0]]
    }
    fn same_as(&self, _: &Self) -> bool {
        true
    }
}

#[test]
fn a_kept_segment_recording_does_not_outlive_the_gradient_or_jacobian() {
    let f = |x: Vec<Var<f64>>| {
        let step = CountedStep::new();
        (0..5).fold(x, |y, _| checkpoint(&step, &y))
    };
    let x = vec![0.4, 0.9];
    let b = Tape::new();
    b.gradient(|x: Vec<Var<f64>>| f(x)[0], Active(&x)).unwrap();
    assert_eq!(
        LIVE_COUNTED_STEPS.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    b.jacobian(f, Active(&x)).unwrap();
    assert_eq!(
        LIVE_COUNTED_STEPS.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[test]
fn tracers_outside_their_computation_are_errors() {
    use std::cell::Cell;
    let b = Tape::new();
    let leaked: Cell<Option<Var<f64>>> = Cell::new(None);
    b.gradient(
        |x: Vec<Var<f64>>| {
            leaked.set(Some(x[0]));
            x[0] * x[0]
        },
        Active(&vec![1.0]),
    )
    .unwrap();
    let old = leaked.get().unwrap();
    // Used inside another computation: Err, not a wrong value.
    let err = b
        .gradient(|x: Vec<Var<f64>>| x[0] * old, Active(&vec![2.0]))
        .unwrap_err();
    assert!(matches!(err, Error::TracerMisuse(_)), "{err}");
    // Used outside any computation: a panic with a clear message.
    let panic = std::panic::catch_unwind(|| old * old).unwrap_err();
    let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("outside the computation"), "{msg}");
    // The same through an array operation, inside another computation and outside any.
    let err = b
        .gradient(
            |x: Vec<Var<f64>>| difi_core::sum(&Array1::from(vec![x[0], old])),
            Active(&vec![2.0]),
        )
        .unwrap_err();
    assert!(matches!(err, Error::TracerMisuse(_)), "{err}");
    let panic =
        std::panic::catch_unwind(|| difi_core::sum(&Array1::from(vec![old, old]))).unwrap_err();
    let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("another computation"), "{msg}");
    // The thread's tape is still usable.
    assert_eq!(
        b.gradient(|x: Vec<Var<f64>>| x[0] * x[0], Active(&vec![3.0]))
            .unwrap(),
        vec![6.0]
    );
}

#[test]
fn a_tracer_sent_to_another_thread_is_an_error_there() {
    let b = Tape::new();
    let (tx, rx) = std::sync::mpsc::channel::<Var<f64>>();
    let handle = std::thread::spawn(move || {
        let foreign = rx.recv().unwrap();
        Tape::new().gradient(|x: Vec<Var<f64>>| x[0] + foreign, Active(&vec![1.0]))
    });
    b.gradient(
        |x: Vec<Var<f64>>| {
            tx.send(x[0]).unwrap();
            x[0]
        },
        Active(&vec![1.0]),
    )
    .unwrap();
    let err = handle.join().unwrap().unwrap_err();
    assert!(matches!(err, Error::TracerMisuse(_)), "{err}");
}

#[test]
fn tape_overflow_is_an_error() {
    let err = Tape::new()
        .with_max_nodes(50)
        .gradient(
            |x: Vec<Var<f64>>| (0..100).fold(x[0], |s, _| s.sin()),
            Active(&vec![1.0]),
        )
        .unwrap_err();
    assert_eq!(err, Error::TapeOverflow { capacity: 50 });
    // More inputs than the limit: they are pushed in bulk, before f runs.
    let err = Tape::new()
        .with_max_nodes(50)
        .gradient(|x: Vec<Var<f64>>| x[0] * x[59], Active(&vec![1.0; 60]))
        .unwrap_err();
    assert_eq!(err, Error::TapeOverflow { capacity: 50 });
    // An array node's 60 output slots, also pushed in bulk, after 10 inputs.
    let product_sum = |x: Vec<Var<f64>>| {
        let a = Array2::from_elem((60, 10), Var::constant(0.5));
        difi_core::sum(&Var::matvec(a.view(), ArrayView1::from(&x[..])))
    };
    let err = Tape::new()
        .with_max_nodes(50)
        .gradient(product_sum, Active(&vec![1.0; 10]))
        .unwrap_err();
    assert_eq!(err, Error::TapeOverflow { capacity: 50 });
    // Exactly enough: 10 inputs, the product and its 60 outputs, the sum and its output.
    let (y, g) = Tape::new()
        .with_max_nodes(73)
        .value_and_gradient(product_sum, Active(&vec![1.0; 10]))
        .unwrap();
    assert_eq!((y, g), (300.0, vec![30.0; 10]));
}

#[test]
fn a_panic_in_user_code_leaves_the_tape_usable() {
    let b = Tape::new();
    let r = std::panic::catch_unwind(|| {
        b.gradient(
            |x: Vec<Var<f64>>| -> Var<f64> { panic!("user code {}", x[0]) },
            Active(&vec![1.0]),
        )
    });
    assert!(r.is_err());
    assert_eq!(
        b.gradient(|x: Vec<Var<f64>>| x[0] * x[0], Active(&vec![2.0]))
            .unwrap(),
        vec![4.0]
    );
}

// The recording tape is reached through a cached pointer (see `with_tape`); these tests cover
// the situations its safety argument is about.

#[test]
fn threads_recording_at_once_keep_their_own_tapes() {
    let handles: Vec<_> = (0..4)
        .map(|k| {
            std::thread::spawn(move || {
                for i in 0..200 {
                    let x: Vec<f64> = (0..20).map(|j| ((k * 31 + i + j) as f64).sin()).collect();
                    let g = Tape::new()
                        .gradient(|x| rosenbrock(&x), Active(&x))
                        .unwrap();
                    close(&g, &rosenbrock_gradient(&x), 1e-12);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn three_levels_of_nesting_switch_between_tapes() {
    // d³/dx³ x⁵ = 60 x²; every level records on its own base type's tape, and the innermost
    // two alternate while the outer one waits.
    fn d<T: Real>(f: impl Fn(Var<T>) -> Var<T>, x: T) -> T {
        Tape::new().derivative(f, Active(x)).unwrap()
    }
    let x0 = 1.5_f64;
    let third = d(
        |x: Var<f64>| {
            d(
                |y: Var<Var<f64>>| d(|z: Var<Var<Var<f64>>>| z.powi(5), y),
                x,
            )
        },
        x0,
    );
    assert!((third - 60.0 * x0 * x0).abs() < 1e-9, "{third}");
}

#[test]
fn a_panic_inside_a_nested_recording_leaves_both_tapes_usable() {
    let r = std::panic::catch_unwind(|| {
        Tape::new().derivative(
            |x: Var<f64>| {
                Tape::new()
                    .derivative(
                        |y: Var<Var<f64>>| -> Var<Var<f64>> { panic!("inner {}", y.value()) },
                        Active(x),
                    )
                    .unwrap()
            },
            Active(1.0),
        )
    });
    assert!(r.is_err());
    let d2 = Tape::new()
        .derivative(
            |x: Var<f64>| {
                Tape::new()
                    .derivative(|y: Var<Var<f64>>| y * y * y, Active(x))
                    .unwrap()
            },
            Active(2.0),
        )
        .unwrap();
    assert_eq!(d2, 12.0);
}

#[test]
fn gradients_work_in_a_thread_local_destructor() {
    struct OnExit(std::sync::mpsc::Sender<Option<Vec<f64>>>);
    impl Drop for OnExit {
        fn drop(&mut self) {
            // The tapes may already be gone: an error or a right answer, never a crash.
            let g = std::panic::catch_unwind(|| {
                Tape::new()
                    .gradient(|x: Vec<Var<f64>>| x[0] * x[1], Active(&vec![2.0, 3.0]))
                    .ok()
            })
            .ok()
            .flatten();
            let _ = self.0.send(g);
        }
    }
    thread_local! {
        static ON_EXIT: std::cell::RefCell<Option<OnExit>> = const { std::cell::RefCell::new(None) };
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        ON_EXIT.with(|e| *e.borrow_mut() = Some(OnExit(tx)));
        // Touch the tape so its owner exists (and may be destroyed before `ON_EXIT`).
        Tape::new()
            .gradient(|x: Vec<Var<f64>>| x[0], Active(&vec![1.0]))
            .unwrap();
    })
    .join()
    .unwrap();
    if let Some(g) = rx.recv().unwrap() {
        assert_eq!(g, vec![3.0, 2.0]);
    }
}

#[test]
fn jacobian_rows_whose_outputs_are_inputs_in_any_order() {
    // Few rows take the dense sweep, many the cone sweep; both must give the same exact answer.
    let x = vec![2.0, 3.0];
    let j = Tape::new()
        .jacobian(|x: Vec<Var<f64>>| vec![x[1], x[0], x[0] * x[1]], Active(&x))
        .unwrap();
    assert_eq!(j, arr2(&[[0.0, 1.0], [1.0, 0.0], [3.0, 2.0]]));
    let j = Tape::new()
        .jacobian(
            |x: Vec<Var<f64>>| vec![x[1], x[0], x[0] * x[1], x[1], x[0].sin(), x[0] + x[1]],
            Active(&x),
        )
        .unwrap();
    let c = 2.0_f64.cos();
    assert_eq!(
        j,
        arr2(&[
            [0.0, 1.0],
            [1.0, 0.0],
            [3.0, 2.0],
            [0.0, 1.0],
            [c, 0.0],
            [1.0, 1.0]
        ])
    );
}

/// Returns `2 xᵀ` in column-major memory (a transposed copy keeps its layout), to check that
/// output slots follow logical order whatever the layout a rule returns.
#[derive(Clone)]
struct TransposeTwice;

impl Rule for TransposeTwice {
    type Saved<T: Real> = ();
    fn forward<T: Real>(&self, x: &[ArrayViewD<'_, T>], _active: &[bool]) -> (Vec<ArrayD<T>>, ()) {
        let y = x[0].t().mapv(|v| v * T::constant(2.0));
        (vec![y], ())
    }
    fn pullback<T: Real>(
        &self,
        _s: &(),
        ct: &[ArrayViewD<'_, T>],
        needed: &[bool],
    ) -> Vec<Option<ArrayD<T>>> {
        vec![needed[0].then(|| ct[0].t().mapv(|v| v * T::constant(2.0)))]
    }
}

#[test]
fn rule_outputs_in_column_major_layout_get_the_right_cotangents() {
    let x = arr2(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).into_dyn();
    let (y, _) = TransposeTwice.forward(&[x.view()], &[true]);
    assert!(
        !y[0].is_standard_layout(),
        "the test needs a column-major output"
    );
    // f = Σ_ij w_ij y_ij with distinct weights: ∂f/∂x_ij = 2 w_ji.
    let w = arr2(&[[1.0, 10.0], [100.0, 1000.0], [0.5, 0.25]]);
    let f = |x: ArrayD<Var<f64>>| {
        let y = apply(&TransposeTwice, &[x.view()]).remove(0);
        y.indexed_iter().fold(Var::constant(0.0), |s, (ix, &v)| {
            s + v * Var::constant(w[[ix[0], ix[1]]])
        })
    };
    let g = Tape::new().gradient(f, Active(&x)).unwrap();
    let want = arr2(&[[2.0, 200.0, 1.0], [20.0, 2000.0, 0.5]]).into_dyn();
    assert_eq!(g, want);
}

#[test]
fn replayed_stop_gradient_takes_the_new_value() {
    // d/dx [x · sg(x)] = sg(x) = x, and the value is x²: a replay at a new point must not keep
    // the stopped value of the recording.
    let f = |x: Vec<Var<f64>>| x[0] * x[0].stop_gradient();
    let mut prep = Tape::new().prepare_gradient(f, Active(&vec![1.0])).unwrap();
    let (y, g) = prep.value_and_gradient(f, Active(&vec![3.0])).unwrap();
    assert_eq!((y, g), (9.0, vec![3.0]));
}
