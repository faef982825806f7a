//! The GradBench protocol: one JSON message per line in, one response per line out.
//!
//! [`Session::respond`] answers one line; the `gradbench` binary loops over stdin. Malformed
//! input gets `{"id": ..., "success": false, "error": ...}`, never a crash. Timings cover only
//! the function: inputs are parsed before the timed runs and the output written after.

use std::time::Instant;

use difi_closure::Closure;
use difi_core::{Active, Backend, Const, NoTangent, SecondOrder};
use difi_forward::ForwardOverReverse;
use difi_tape::Tape;
use serde_json::{json, Value};

use crate::ba::{ba_jacobian, ba_objective, BaInput};
use crate::gmm::gmm_objective;
use crate::lstm::lstm_objective;
use crate::workloads::{det, kmeans_cost, llsq, lse, ode};

/// Modules this tool evaluates.
pub const MODULES: [&str; 9] = [
    "hello", "llsq", "lse", "det", "ode", "kmeans", "lstm", "gmm", "ba",
];

/// The engine a session differentiates with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// difi-tape (second order: forward-over-reverse on it).
    Tape,
    /// difi-closure (second order: forward-over-reverse on it).
    Closure,
}

impl Engine {
    /// Parses `tape` or `closure`.
    pub fn parse(name: &str) -> Option<Engine> {
        match name {
            "tape" => Some(Engine::Tape),
            "closure" => Some(Engine::Closure),
            _ => None,
        }
    }
}

/// One tool session.
pub struct Session {
    engine: Engine,
}

/// An evaluation's output and the nanoseconds of each timed run.
type Evaluated = Result<(Value, Vec<u64>), String>;

/// How often to run a function: at least `min_runs` times and until `min_seconds` passed.
#[derive(Clone, Copy, Debug)]
struct Runs {
    min_runs: u64,
    min_seconds: f64,
}

impl Runs {
    /// Runs `f` as asked, timing only `f` (inputs are parsed before, output written after).
    fn measure<T>(
        &self,
        mut f: impl FnMut() -> Result<T, String>,
    ) -> Result<(T, Vec<u64>), String> {
        let start = Instant::now();
        let mut timings = Vec::new();
        loop {
            let t = Instant::now();
            let out = f()?;
            timings.push(t.elapsed().as_nanos() as u64);
            if timings.len() as u64 >= self.min_runs
                && start.elapsed().as_secs_f64() >= self.min_seconds
            {
                return Ok((out, timings));
            }
        }
    }

    /// [`Runs::measure`] with the result written as JSON afterwards.
    fn json<T: serde::Serialize>(&self, f: impl FnMut() -> Result<T, String>) -> Evaluated {
        let (out, t) = self.measure(f)?;
        Ok((json!(out), t))
    }
}

fn holds_null(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(items) => items.iter().any(holds_null),
        Value::Object(fields) => fields.values().any(holds_null),
        _ => false,
    }
}

fn floats(v: &Value, field: &str) -> Result<Vec<f64>, String> {
    v.get(field)
        .and_then(Value::as_array)
        .ok_or(format!("input field `{field}` must be an array of numbers"))?
        .iter()
        .map(|x| x.as_f64().ok_or(format!("`{field}` holds a non-number")))
        .collect()
}

fn rows(v: &Value, field: &str) -> Result<(Vec<f64>, usize), String> {
    let rows = v
        .get(field)
        .and_then(Value::as_array)
        .ok_or(format!("input field `{field}` must be an array of arrays"))?;
    let mut flat = Vec::new();
    let mut width = None;
    for r in rows {
        let r = r.as_array().ok_or(format!("`{field}` holds a non-array"))?;
        if *width.get_or_insert(r.len()) != r.len() {
            return Err(format!("`{field}` rows have different lengths"));
        }
        for x in r {
            flat.push(x.as_f64().ok_or(format!("`{field}` holds a non-number"))?);
        }
    }
    Ok((flat, width.unwrap_or(0)))
}

fn int(v: &Value, field: &str) -> Result<usize, String> {
    v.get(field)
        .and_then(Value::as_u64)
        .map(|n| n as usize)
        .ok_or(format!(
            "input field `{field}` must be a non-negative integer"
        ))
}

/// ode's `x` and step count `s`: zero steps would integrate nothing and answer zeros.
fn ode_input(input: &Value) -> Result<(Vec<f64>, usize), String> {
    let (x, s) = (floats(input, "x")?, int(input, "s")?);
    if s == 0 {
        return Err("ode: s (the number of steps to t = 2) must be at least 1".into());
    }
    Ok((x, s))
}

fn number(v: &Value, field: &str) -> Result<f64, String> {
    v.get(field)
        .and_then(Value::as_f64)
        .ok_or(format!("input field `{field}` must be a number"))
}

/// GradBench's shortening of a long list: its first 30 entries, then its last one. Lists of
/// at most 31 entries stay whole.
fn cut<T: Clone>(v: &[T]) -> Vec<T> {
    if v.len() <= 31 {
        v.to_vec()
    } else {
        v[..30].iter().chain(v.last()).cloned().collect()
    }
}

/// The `ba` module: `objective` and `jacobian` on the problem GradBench's input replicates.
pub mod ba {
    use super::*;

    fn input(v: &Value) -> Result<BaInput, String> {
        BaInput::replicate(
            int(v, "n")?,
            int(v, "m")?,
            int(v, "p")?,
            &floats(v, "cam")?,
            &floats(v, "x")?,
            number(v, "w")?,
            &floats(v, "feat")?,
        )
    }

    /// `{"reproj_error": {"elements": [first two residuals], "repeated": p}, "w_err":
    /// {"element": first weight residual, "repeated": p}}`.
    pub(super) fn objective(v: &Value, runs: Runs) -> Evaluated {
        let input = input(v)?;
        let ((reproj, w_err), t) = runs.measure(|| Ok(ba_objective(&input)))?;
        Ok((
            json!({
                "reproj_error": {"elements": &reproj[..2], "repeated": input.p},
                "w_err": {"element": w_err[0], "repeated": input.p},
            }),
            t,
        ))
    }

    /// `{"rows": ..., "cols": ..., "vals": ...}`: the sparse Jacobian's row pointers, columns
    /// and values, each cut to its first 30 entries and its last one, as GradBench's reference
    /// tools answer.
    pub(super) fn jacobian(engine: Engine, v: &Value, runs: Runs) -> Evaluated {
        let input = input(v)?;
        let (jac, t) = runs.measure(|| {
            match engine {
                Engine::Tape => ba_jacobian(&Tape::new(), &input),
                Engine::Closure => ba_jacobian(&Closure::default(), &input),
            }
            .map_err(|e| e.to_string())
        })?;
        Ok((
            json!({"rows": cut(&jac.rows), "cols": cut(&jac.cols), "vals": cut(&jac.vals)}),
            t,
        ))
    }
}

fn gradient<F1, F2>(engine: Engine, x: &[f64], tape: F1, closure: F2) -> Result<Vec<f64>, String>
where
    F1: Fn(Vec<difi_tape::Var<f64>>) -> difi_tape::Var<f64>,
    F2: Fn(Vec<difi_closure::Tracked<f64>>) -> difi_closure::Tracked<f64>,
{
    let x = x.to_vec();
    match engine {
        Engine::Tape => Tape::new().gradient(tape, Active(&x)),
        Engine::Closure => Closure::default().gradient(closure, Active(&x)),
    }
    .map_err(|e| e.to_string())
}

impl Session {
    /// A session differentiating with `engine`.
    pub fn new(engine: Engine) -> Session {
        Session { engine }
    }

    /// The response line to one message line.
    pub fn respond(&mut self, line: &str) -> String {
        let msg: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => return json!({"id": null, "success": false, "error": format!("malformed JSON: {e}")}).to_string(),
        };
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let fail = |error: String| json!({"id": id, "success": false, "error": error}).to_string();
        match msg.get("kind").and_then(Value::as_str) {
            Some("start") => json!({"id": id, "tool": "difi", "config": {"engine": format!("{:?}", self.engine).to_lowercase()}}).to_string(),
            Some("analysis") => json!({"id": id}).to_string(),
            Some("define") => match msg.get("module").and_then(Value::as_str) {
                Some(m) if MODULES.contains(&m) => json!({"id": id, "success": true}).to_string(),
                Some(m) => json!({"id": id, "success": false, "error": format!("module `{m}` is not implemented by difi yet")}).to_string(),
                None => fail("define needs a `module`".into()),
            },
            Some("evaluate") => {
                let (module, function) = (
                    msg.get("module").and_then(Value::as_str).unwrap_or(""),
                    msg.get("function").and_then(Value::as_str).unwrap_or(""),
                );
                let input = msg.get("input").cloned().unwrap_or(Value::Null);
                let min_runs = input.get("min_runs").and_then(Value::as_u64).unwrap_or(1).max(1);
                let min_seconds = input.get("min_seconds").and_then(Value::as_f64).unwrap_or(0.0);
                let runs = Runs {
                    min_runs,
                    min_seconds,
                };
                match self.evaluate(module, function, &input, runs) {
                    // serde_json writes NaN and ±infinity as null: say so instead of answering
                    // null, whichever module computed it.
                    Ok((out, _)) if holds_null(&out) => fail(format!(
                        "{module} {function}: the output holds NaN or ±infinity, which JSON \
                         cannot carry"
                    )),
                    Ok((out, nanos)) => {
                        let timings: Vec<Value> = nanos
                            .into_iter()
                            .map(|t| json!({"name": "evaluate", "nanoseconds": t}))
                            .collect();
                        json!({"id": id, "success": true, "output": out, "timings": timings})
                            .to_string()
                    }
                    Err(e) => fail(e),
                }
            }
            Some(other) => fail(format!("unknown message kind `{other}`")),
            None => fail("a message needs a `kind`".into()),
        }
    }

    fn evaluate(&self, module: &str, function: &str, input: &Value, runs: Runs) -> Evaluated {
        let e = self.engine;
        match (module, function) {
            ("hello", "square") => {
                let x = input.as_f64().ok_or("hello takes a number")?;
                runs.json(|| Ok(x * x))
            }
            ("hello", "double") => {
                let x = input.as_f64().ok_or("hello takes a number")?;
                runs.json(|| Ok(gradient(e, &[x], |v| v[0] * v[0], |v| v[0] * v[0])?[0]))
            }
            ("llsq", "primal") => {
                let (x, n) = (floats(input, "x")?, int(input, "n")?);
                runs.json(|| Ok(llsq(&x, n)))
            }
            ("llsq", "gradient") => {
                let (x, n) = (floats(input, "x")?, int(input, "n")?);
                runs.json(|| gradient(e, &x, |v| llsq(&v, n), |v| llsq(&v, n)))
            }
            ("lse", "primal") => {
                let x = floats(input, "x")?;
                runs.json(|| Ok(lse(&x)))
            }
            ("lse", "gradient") => {
                let x = floats(input, "x")?;
                runs.json(|| gradient(e, &x, |v| lse(&v), |v| lse(&v)))
            }
            ("det", "primal") | ("det", "gradient") => {
                let (a, ell) = (floats(input, "A")?, int(input, "ell")?);
                if a.len() != ell * ell {
                    return Err(format!(
                        "det: A has {} entries but ell² = {}",
                        a.len(),
                        ell * ell
                    ));
                }
                if function == "primal" {
                    runs.json(|| Ok(det(&a, ell)))
                } else {
                    runs.json(|| gradient(e, &a, |v| det(&v, ell), |v| det(&v, ell)))
                }
            }
            ("ode", "primal") => {
                let (x, s) = ode_input(input)?;
                runs.json(|| Ok(ode(&x, s)))
            }
            ("ode", "gradient") => {
                let (x, s) = ode_input(input)?;
                if x.is_empty() {
                    return Err("ode: x is empty".into());
                }
                runs.json(|| {
                    gradient(
                        e,
                        &x,
                        |v| ode(&v, s)[x.len() - 1],
                        |v| ode(&v, s)[x.len() - 1],
                    )
                })
            }
            ("kmeans", "cost") | ("kmeans", "dir") => {
                let (p, d) = rows(input, "points")?;
                let (c, dc) = rows(input, "centroids")?;
                if d != dc {
                    return Err(format!("kmeans: points have dimension {d}, centroids {dc}"));
                }
                if function == "cost" {
                    return runs.json(|| Ok(kmeans_cost(&c, &p, d)));
                }
                let ones = (vec![1.0; c.len()], NoTangent);
                let (dir, t) = runs.measure(|| {
                    let ((g, _), (h, _)) = match e {
                        Engine::Tape => ForwardOverReverse::<Tape>::default().gradient_and_hvp(
                            |(c, p): (Vec<_>, Vec<_>)| kmeans_cost(&c, &p, d),
                            (Active(&c), Const(&p)),
                            &ones,
                        ),
                        Engine::Closure => ForwardOverReverse::<Closure>::default()
                            .gradient_and_hvp(
                                |(c, p): (Vec<_>, Vec<_>)| kmeans_cost(&c, &p, d),
                                (Active(&c), Const(&p)),
                                &ones,
                            ),
                    }
                    .map_err(|e| e.to_string())?;
                    // J / diag(H) is 0 / 0 for a centroid nearest to no point.
                    if let Some(j) = h.iter().position(|&h| h == 0.0) {
                        return Err(format!(
                            "kmeans dir: centroid {} is nearest to no point, so its Hessian \
                             diagonal is 0 and J / diag(H) is undefined there (every centroid \
                             needs a nearest point)",
                            j / d.max(1)
                        ));
                    }
                    Ok(g.iter().zip(&h).map(|(a, b)| a / b).collect::<Vec<f64>>())
                })?;
                Ok((json!(dir.chunks(d.max(1)).collect::<Vec<_>>()), t))
            }
            ("lstm", "objective") | ("lstm", "jacobian") => {
                let (main, b4) = rows(input, "main_params")?;
                let (extra, b) = rows(input, "extra_params")?;
                let (state, _) = rows(input, "state")?;
                let (sequence, _) = rows(input, "sequence")?;
                if b == 0
                    || b4 != 4 * b
                    || extra.len() != 3 * b
                    || state.len() * 4 != main.len()
                    || sequence.len() % b != 0
                {
                    return Err("lstm: shapes must be main_params[2l][4b], extra_params[3][b], state[2l][b], sequence[c][b]".into());
                }
                let (l, c) = (state.len() / (2 * b), sequence.len() / b);
                if c < 2 {
                    return Err("lstm: the sequence needs at least two steps".into());
                }
                if function == "objective" {
                    return runs
                        .json(|| Ok(lstm_objective(&main, &extra, &state, &sequence, l, c, b)));
                }
                let args = (
                    Active(&main),
                    Active(&extra),
                    Const(&state),
                    Const(&sequence),
                );
                runs.json(|| {
                    let (gm, ge, NoTangent, NoTangent) = match e {
                        Engine::Tape => Tape::new().gradient(
                            |(m, x, s, q): (Vec<_>, Vec<_>, Vec<_>, Vec<_>)| {
                                lstm_objective(&m, &x, &s, &q, l, c, b)
                            },
                            args,
                        ),
                        Engine::Closure => Closure::default().gradient(
                            |(m, x, s, q): (Vec<_>, Vec<_>, Vec<_>, Vec<_>)| {
                                lstm_objective(&m, &x, &s, &q, l, c, b)
                            },
                            args,
                        ),
                    }
                    .map_err(|e| e.to_string())?;
                    Ok(gm.into_iter().chain(ge).collect::<Vec<f64>>())
                })
            }
            ("gmm", "objective") | ("gmm", "jacobian") => {
                let (d, k) = (int(input, "d")?, int(input, "k")?);
                let alpha = floats(input, "alpha")?;
                let (mu, dm) = rows(input, "mu")?;
                let (q, dq) = rows(input, "q")?;
                let (l, _) = rows(input, "l")?;
                let (x, dx) = rows(input, "x")?;
                let m = int(input, "m")?;
                let gamma = input
                    .get("gamma")
                    .and_then(Value::as_f64)
                    .ok_or("input field `gamma` must be a number")?;
                let tri = d * d.saturating_sub(1) / 2;
                if d == 0
                    || alpha.len() != k
                    || dm != d
                    || dq != d
                    || dx != d
                    || mu.len() != k * d
                    || q.len() != k * d
                    || l.len() != k * tri
                {
                    return Err(
                        "gmm: shapes must be alpha[k], mu[k][d], q[k][d], l[k][d(d-1)/2], x[n][d]"
                            .into(),
                    );
                }
                if function == "objective" {
                    return runs
                        .json(|| Ok(gmm_objective(&alpha, &mu, &q, &l, &x, d, k, gamma, m)));
                }
                let args = (
                    Active(&alpha),
                    Active(&mu),
                    Active(&q),
                    Active(&l),
                    Const(&x),
                );
                let ((ga, gm, gq, gl), t) = runs.measure(|| {
                    let (ga, gm, gq, gl, NoTangent) = match e {
                        Engine::Tape => Tape::new().gradient(
                            |(a, mu, q, l, x): (Vec<_>, Vec<_>, Vec<_>, Vec<_>, Vec<_>)| {
                                gmm_objective(&a, &mu, &q, &l, &x, d, k, gamma, m)
                            },
                            args,
                        ),
                        Engine::Closure => Closure::default().gradient(
                            |(a, mu, q, l, x): (Vec<_>, Vec<_>, Vec<_>, Vec<_>, Vec<_>)| {
                                gmm_objective(&a, &mu, &q, &l, &x, d, k, gamma, m)
                            },
                            args,
                        ),
                    }
                    .map_err(|e| e.to_string())?;
                    Ok((ga, gm, gq, gl))
                })?;
                let by_row = |v: Vec<f64>, w: usize| {
                    v.chunks(w.max(1)).map(<[f64]>::to_vec).collect::<Vec<_>>()
                };
                Ok((
                    json!({"alpha": ga, "mu": by_row(gm, d), "q": by_row(gq, d), "l": by_row(gl, tri)}),
                    t,
                ))
            }
            ("ba", "objective") => ba::objective(input, runs),
            ("ba", "jacobian") => ba::jacobian(e, input, runs),
            _ => Err(format!("`{module}` has no function `{function}` here")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use difi_core::{FiniteDifferences, NoTangent};

    fn ok(line: &str) -> Value {
        let v: Value = serde_json::from_str(line).expect("a JSON line");
        assert_eq!(v["success"], json!(true), "{line}");
        v
    }

    fn fd_gradient(f: impl Fn(&[f64]) -> f64, x: &[f64]) -> Vec<f64> {
        FiniteDifferences::default()
            .gradient(|x: Vec<f64>| f(&x), Active(&x.to_vec()))
            .unwrap()
    }

    fn assert_gradbench_close(got: &Value, want: &[f64]) {
        let got: Vec<f64> = got
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(got.len(), want.len());
        for (x, y) in got.iter().zip(want) {
            // GradBench's own validation.
            assert!(
                (x - y).abs() / (x.abs() + y.abs()).max(1.0) <= 1e-4,
                "{x} vs {y}"
            );
        }
    }

    /// ba through the protocol: the shortened objective, and the shortened sparse Jacobian
    /// against finite differences of one observation's residual.
    fn check_ba(s: &mut Session) {
        let cam = [
            1.797201, 0.590697, -0.635786, 90.859550, 29.361415, 28.777534, 211.628116, -0.284531,
            -14.762924, 0.058931, 0.069976,
        ];
        let (x, w, feat) = (
            [4.173048, 5.586898, 1.403869],
            0.417022,
            [-525.672849, 161.811929],
        );
        let (n, m, p) = (2, 3, 12);
        let input = format!(
            r#"{{"n":{n},"m":{m},"p":{p},"cam":{cam:?},"x":{x:?},"w":{w},"feat":{feat:?}}}"#
        );
        let v = ok(&s.respond(&format!(
            r#"{{"id":20,"kind":"evaluate","module":"ba","function":"objective","input":{input}}}"#
        )));
        let want = crate::ba::ba_reprojection(&cam, &x, w, &feat);
        assert_gradbench_close(&v["output"]["reproj_error"]["elements"], &want);
        assert_eq!(v["output"]["reproj_error"]["repeated"], json!(p));
        assert_gradbench_close(&json!([v["output"]["w_err"]["element"]]), &[1.0 - w * w]);
        assert_eq!(v["output"]["w_err"]["repeated"], json!(p));
        let v = ok(&s.respond(&format!(
            r#"{{"id":21,"kind":"evaluate","module":"ba","function":"jacobian","input":{input}}}"#
        )));
        // Rows: 3p + 1 = 37 pointers cut to 31: 0, 15, ..., 15·24 = 360 (the 2p reprojection
        // rows), 361, ..., 365, then the last one, 30p + p.
        let rows: Vec<u64> = (0..=24)
            .map(|r| 15 * r)
            .chain((1..=5).map(|i| 360 + i))
            .chain([31 * p as u64])
            .collect();
        assert_eq!(v["output"]["rows"], json!(rows));
        // Cols: observation 0 (camera 0, point 0, weight 0) on both rows, then the last weight
        // row's column 11n + 3m + p − 1.
        let block: Vec<usize> = (0..11)
            .chain(11 * n..11 * n + 3)
            .chain([11 * n + 3 * m])
            .collect();
        let cols: Vec<usize> = block
            .iter()
            .chain(&block)
            .copied()
            .chain([11 * n + 3 * m + p - 1])
            .collect();
        assert_eq!(v["output"]["cols"], json!(cols));
        let mut local = [0.0; 15];
        local[..11].copy_from_slice(&cam);
        local[11..14].copy_from_slice(&x);
        local[14] = w;
        let fd = FiniteDifferences::default()
            .jacobian(
                |v: [f64; 15]| crate::ba::ba_reprojection(&v[..11], &v[11..14], v[14], &feat),
                Active(&local),
            )
            .unwrap();
        let want: Vec<f64> = fd.iter().copied().chain([-2.0 * w]).collect();
        assert_gradbench_close(&v["output"]["vals"], &want);
    }

    #[test]
    fn a_scripted_session() {
        for engine in [Engine::Tape, Engine::Closure] {
            let mut s = Session::new(engine);
            let start: Value =
                serde_json::from_str(&s.respond(r#"{"id":0,"kind":"start"}"#)).unwrap();
            assert_eq!(start["id"], json!(0));
            for (i, m) in MODULES.iter().enumerate() {
                ok(&s.respond(&format!(
                    r#"{{"id":{},"kind":"define","module":"{m}"}}"#,
                    i + 1
                )));
            }
            let ht: Value =
                serde_json::from_str(&s.respond(r#"{"id":9,"kind":"define","module":"ht"}"#))
                    .unwrap();
            assert_eq!(ht["success"], json!(false));
            check_ba(&mut s);
            let v = ok(&s.respond(r#"{"id":18,"kind":"evaluate","module":"gmm","function":"jacobian","input":{"d":2,"k":2,"n":3,"alpha":[0.1,-0.2],"mu":[[0.0,0.5],[1.0,-0.5]],"q":[[0.1,0.2],[-0.1,0.0]],"l":[[0.3],[-0.2]],"x":[[0.2,0.1],[0.9,-0.4],[-0.3,0.6]],"m":0,"gamma":1.0}}"#));
            let (fa, fmu, NoTangent, NoTangent, NoTangent) = FiniteDifferences::default()
                .gradient(
                    |(a, mu, q, l, x): (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>)| {
                        gmm_objective(&a, &mu, &q, &l, &x, 2, 2, 1.0, 0)
                    },
                    (
                        Active(&vec![0.1, -0.2]),
                        Active(&vec![0.0, 0.5, 1.0, -0.5]),
                        Const(&vec![0.1, 0.2, -0.1, 0.0]),
                        Const(&vec![0.3, -0.2]),
                        Const(&vec![0.2, 0.1, 0.9, -0.4, -0.3, 0.6]),
                    ),
                )
                .unwrap();
            assert_gradbench_close(&v["output"]["alpha"], &fa);
            let mu: Vec<f64> = v["output"]["mu"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
                .collect();
            assert_gradbench_close(&json!(mu), &fmu);
            let v = ok(&s.respond(
                r#"{"id":10,"kind":"evaluate","module":"hello","function":"double","input":3.0}"#,
            ));
            assert_eq!(v["output"], json!(6.0));
            let x = [0.3, -0.2, 0.5, 0.1];
            let v = ok(&s.respond(&format!(
                r#"{{"id":11,"kind":"evaluate","module":"llsq","function":"gradient","input":{{"x":{x:?},"n":7,"min_runs":3,"min_seconds":0}}}}"#
            )));
            assert_eq!(v["timings"].as_array().unwrap().len(), 3);
            assert_gradbench_close(&v["output"], &fd_gradient(|x| llsq(x, 7), &x));
            let v = ok(&s.respond(&format!(r#"{{"id":12,"kind":"evaluate","module":"lse","function":"gradient","input":{{"x":{x:?}}}}}"#)));
            assert_gradbench_close(&v["output"], &fd_gradient(lse, &x));
            let a = [1.0, 2.0, 0.5, -1.0, 3.0, 0.2, 0.7, 0.1, 2.0];
            let v = ok(&s.respond(&format!(r#"{{"id":13,"kind":"evaluate","module":"det","function":"gradient","input":{{"A":{a:?},"ell":3}}}}"#)));
            assert_gradbench_close(&v["output"], &fd_gradient(|a| det(a, 3), &a));
            let v = ok(&s.respond(&format!(r#"{{"id":14,"kind":"evaluate","module":"ode","function":"gradient","input":{{"x":{x:?},"s":5}}}}"#)));
            assert_gradbench_close(
                &v["output"],
                &fd_gradient(|x| *ode(x, 5).last().unwrap(), &x),
            );
            let v = ok(&s.respond(r#"{"id":15,"kind":"evaluate","module":"kmeans","function":"dir","input":{"points":[[0,0],[1,1],[0.2,0.1],[0.9,1.2]],"centroids":[[0.1,0.1],[1,1]]}}"#));
            // dir = J / diag(H): each centroid moves to the mean of its points (J = 2 m (c − mean), H = 2 m).
            let want = [0.1 - 0.1, 0.1 - 0.05, 1.0 - 0.95, 1.0 - 1.1];
            let got: Vec<f64> = v["output"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
                .collect();
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-12, "{got:?}");
            }
            let v = ok(&s.respond(r#"{"id":17,"kind":"evaluate","module":"lstm","function":"jacobian","input":{"main_params":[[0.1,0.2,0.3,0.4],[0.0,0.1,0.0,0.1]],"extra_params":[[1.0],[0.5],[0.1]],"state":[[0.2],[0.3]],"sequence":[[0.5],[0.1],[0.7]]}}"#));
            let want = {
                let (main, extra) = (
                    vec![0.1, 0.2, 0.3, 0.4, 0.0, 0.1, 0.0, 0.1],
                    vec![1.0, 0.5, 0.1],
                );
                let (state, seq) = (vec![0.2, 0.3], vec![0.5, 0.1, 0.7]);
                let (fm, fe, NoTangent, NoTangent) = FiniteDifferences::default()
                    .gradient(
                        |(m, e, s, q): (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>)| {
                            lstm_objective(&m, &e, &s, &q, 1, 3, 1)
                        },
                        (Active(&main), Active(&extra), Const(&state), Const(&seq)),
                    )
                    .unwrap();
                fm.into_iter().chain(fe).collect::<Vec<_>>()
            };
            assert_gradbench_close(&v["output"], &want);
            let done: Value =
                serde_json::from_str(&s.respond(r#"{"id":16,"kind":"analysis"}"#)).unwrap();
            assert_eq!(done, json!({"id": 16}));
        }
    }

    #[test]
    fn malformed_input_gets_an_error_response() {
        let mut s = Session::new(Engine::Tape);
        for line in [
            "not json",
            r#"{"id":1}"#,
            r#"{"id":2,"kind":"evaluate","module":"det","function":"gradient","input":{"A":[1,2],"ell":3}}"#,
            r#"{"id":3,"kind":"evaluate","module":"lse","function":"gradient","input":{"x":"no"}}"#,
            r#"{"id":4,"kind":"evaluate","module":"ba","function":"jacobian","input":{"n":1,"m":1,"p":1,"cam":[1,2],"x":[1,2,3],"w":1,"feat":[1,2]}}"#,
            r#"{"id":5,"kind":"evaluate","module":"ba","function":"objective","input":{"n":1,"m":0,"p":1,"cam":[1,2,3,4,5,6,7,8,9,10,11],"x":[1,2,3],"w":1,"feat":[1,2]}}"#,
            r#"{"id":6,"kind":"evaluate","module":"ba","function":"objective","input":{"n":1,"m":1,"p":1,"cam":[1,2,3,4,5,6,7,8,9,10,11],"x":[1,2,3],"feat":[1,2]}}"#,
            r#"{"id":7,"kind":"evaluate","module":"ode","function":"gradient","input":{"x":[1,2],"s":0}}"#,
            r#"{"id":8,"kind":"evaluate","module":"ode","function":"primal","input":{"x":[1,2],"s":0}}"#,
            // log Σ over no terms is −∞, which JSON cannot carry.
            r#"{"id":9,"kind":"evaluate","module":"lse","function":"primal","input":{"x":[]}}"#,
            // A point at the camera's centre projects to 0 / 0 (ba's output is built outside
            // `Runs::json`).
            r#"{"id":10,"kind":"evaluate","module":"ba","function":"objective","input":{"n":1,"m":1,"p":1,"cam":[0,0,0,0,0,0,1,0,0,0,0],"x":[0,0,0],"w":1,"feat":[1,2]}}"#,
            // The second centroid is nearest to no point: J / diag(H) is 0 / 0 there.
            r#"{"id":11,"kind":"evaluate","module":"kmeans","function":"dir","input":{"points":[[1,2]],"centroids":[[1,1],[5,5]]}}"#,
        ] {
            let v: Value = serde_json::from_str(&s.respond(line)).expect("a JSON response");
            assert_eq!(v["success"], json!(false), "{line}");
            assert!(v["error"].as_str().unwrap().len() > 5);
            if v["id"] == json!(11) {
                assert!(v["error"]
                    .as_str()
                    .unwrap()
                    .contains("centroid 1 is nearest to no point"));
            }
        }
    }
}
