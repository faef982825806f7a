//! lstm: the GradBench LSTM loss and ADBench's file reader.

use std::path::Path;

use difi_core::{map, sum_map, Elementwise, Real};

use crate::workloads::{view, Product};

/// One lstm problem as ADBench stores it.
#[derive(Clone, Debug)]
pub struct LstmInput {
    /// Layers.
    pub l: usize,
    /// Sequence length.
    pub c: usize,
    /// Width.
    pub b: usize,
    /// Weights and biases, `2l × 4b`.
    pub main: Vec<f64>,
    /// Input scale, output scale and output bias, `3 × b`.
    pub extra: Vec<f64>,
    /// Hidden and cell state per layer, `2l × b`.
    pub state: Vec<f64>,
    /// The sequence, `c × b`.
    pub sequence: Vec<f64>,
}

impl LstmInput {
    /// Reads ADBench's format: `l c b`, then main, extra, state, sequence.
    pub fn read(path: &Path) -> Result<LstmInput, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut tokens = text.split_whitespace();
        let mut next = |what: &str| -> Result<f64, String> {
            tokens
                .next()
                .ok_or(format!("lstm file ends before {what}"))?
                .parse::<f64>()
                .map_err(|e| format!("lstm file: {what}: {e}"))
        };
        let (l, c, b) = (
            next("l")? as usize,
            next("c")? as usize,
            next("b")? as usize,
        );
        let mut take =
            |n: usize, what: &str| (0..n).map(|_| next(what)).collect::<Result<Vec<_>, _>>();
        let main = take(2 * l * 4 * b, "main_params")?;
        let extra = take(3 * b, "extra_params")?;
        let state = take(2 * l * b, "state")?;
        let sequence = take(c * b, "sequence")?;
        Ok(LstmInput {
            l,
            c,
            b,
            main,
            extra,
            state,
            sequence,
        })
    }
}

/// The loss: `−Σ_t ⟨sequence[t+1], y_t − lse(y_t)⟩ / ((c − 1) b)` over the LSTM of WORKLOADS.md.
/// `state` is updated in place over time, as the reference does (a copy is taken here).
///
/// The cells are scalar code (their `logistic` and `tanh` are most of the primal, and a tape
/// records each once; a [`map`] would compute them again in its pullback). The input scaling,
/// the output layer and the loss are array operations (two [`map`]s, a [`sum_map`], a dot),
/// which reverse engines record as one node each: ratios' lstm gradient read 4.17–4.29 times
/// its primal before, 3.65–4.1 after (on one machine), the primal itself a little faster. The
/// tape is 10.5 MB: with another process streaming memory, the ratio read 4.4.
pub fn lstm_objective<T: Real>(
    main: &[T],
    extra: &[T],
    state: &[T],
    sequence: &[T],
    l: usize,
    c: usize,
    b: usize,
) -> T {
    let mut state = state.to_vec();
    let mut total = T::zero();
    for t in 0..c.saturating_sub(1) {
        let mut x = map(
            &Product,
            [view(&sequence[t * b..(t + 1) * b]), view(&extra[..b])],
        )
        .to_vec();
        for i in 0..l {
            let w = &main[(2 * i) * 4 * b..(2 * i + 1) * 4 * b];
            let bb = &main[(2 * i + 1) * 4 * b..(2 * i + 2) * 4 * b];
            for j in 0..b {
                let h = state[(2 * i) * b + j];
                let cell = state[(2 * i + 1) * b + j];
                let f = (x[j] * w[j] + bb[j]).logistic();
                let inp = (h * w[b + j] + bb[b + j]).logistic();
                let o = (x[j] * w[2 * b + j] + bb[2 * b + j]).logistic();
                let g = (h * w[3 * b + j] + bb[3 * b + j]).tanh();
                let cell = cell * f + inp * g;
                let h = o * cell.tanh();
                state[(2 * i + 1) * b + j] = cell;
                state[(2 * i) * b + j] = h;
                x[j] = h;
            }
        }
        let y = map(
            &Affine,
            [view(&x), view(&extra[b..2 * b]), view(&extra[2 * b..3 * b])],
        );
        let lse = (sum_map(&Exp, [y.view()]) + T::constant(2.0)).ln();
        let next = &sequence[(t + 1) * b..(t + 2) * b];
        let weight = next.iter().fold(T::zero(), |s, &v| s + v);
        total += T::dot(view(next), y.view()) - weight * lse;
    }
    -total / T::constant(((c - 1) * b) as f64)
}

/// `x a + c`
#[derive(Clone, Copy, Debug)]
struct Affine;

impl Elementwise<3> for Affine {
    #[inline]
    fn eval<T: Real>(&self, [x, a, c]: [T; 3]) -> T {
        x * a + c
    }
}

/// `exp x`
#[derive(Clone, Copy, Debug)]
struct Exp;

impl Elementwise<1> for Exp {
    #[inline]
    fn eval<T: Real>(&self, [x]: [T; 1]) -> T {
        x.exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mt19937::Mt19937;
    use difi_core::{Active, Backend, Const, FiniteDifferences, NoTangent};
    use difi_tape::Tape;

    /// The loss of WORKLOADS.md written out on `f64`, one scalar at a time.
    fn loss_by_formula(
        main: &[f64],
        extra: &[f64],
        state: &[f64],
        sequence: &[f64],
        (l, c, b): (usize, usize, usize),
    ) -> f64 {
        let sigma = |z: f64| 1.0 / (1.0 + (-z).exp());
        let mut state = state.to_vec();
        let mut total = 0.0;
        for t in 0..c - 1 {
            let mut x: Vec<f64> = (0..b).map(|j| sequence[t * b + j] * extra[j]).collect();
            for i in 0..l {
                let (w, bias) = (&main[2 * i * 4 * b..], &main[(2 * i + 1) * 4 * b..]);
                for j in 0..b {
                    let (h, cell) = (state[2 * i * b + j], state[(2 * i + 1) * b + j]);
                    let forget = sigma(x[j] * w[j] + bias[j]);
                    let input = sigma(h * w[b + j] + bias[b + j]);
                    let output = sigma(x[j] * w[2 * b + j] + bias[2 * b + j]);
                    let change = (h * w[3 * b + j] + bias[3 * b + j]).tanh();
                    let cell = cell * forget + input * change;
                    state[(2 * i + 1) * b + j] = cell;
                    state[2 * i * b + j] = output * cell.tanh();
                    x[j] = state[2 * i * b + j];
                }
            }
            let y: Vec<f64> = (0..b)
                .map(|j| x[j] * extra[b + j] + extra[2 * b + j])
                .collect();
            let lse = (y.iter().map(|v| v.exp()).sum::<f64>() + 2.0).ln();
            for j in 0..b {
                total += sequence[(t + 1) * b + j] * (y[j] - lse);
            }
        }
        -total / ((c - 1) * b) as f64
    }

    /// main_params, extra_params, state and sequence of sizes `(l, c, b)`, drawn in [−½, ½).
    fn draw_input(seed: u32, (l, c, b): (usize, usize, usize)) -> [Vec<f64>; 4] {
        let mut r = Mt19937::new(seed);
        [2 * l * 4 * b, 3 * b, 2 * l * b, c * b]
            .map(|n| (0..n).map(|_| r.next_f64() - 0.5).collect())
    }

    #[test]
    fn loss_is_the_formula() {
        let (l, c, b) = (2, 6, 5);
        let [main, extra, state, seq] = draw_input(7, (l, c, b));
        let loss = lstm_objective(&main, &extra, &state, &seq, l, c, b);
        let want = loss_by_formula(&main, &extra, &state, &seq, (l, c, b));
        assert!(
            (loss - want).abs() <= 1e-13 * want.abs(),
            "{loss} vs {want}"
        );
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (l, c, b) = (2, 4, 3);
        let [main, extra, state, seq] = draw_input(31337, (l, c, b));
        let (gm, ge, NoTangent, NoTangent) = Tape::new()
            .gradient(
                |(m, e, s, q): (Vec<_>, Vec<_>, Vec<_>, Vec<_>)| {
                    lstm_objective(&m, &e, &s, &q, l, c, b)
                },
                (Active(&main), Active(&extra), Const(&state), Const(&seq)),
            )
            .unwrap();
        let (fm, fe, NoTangent, NoTangent) = FiniteDifferences::default()
            .gradient(
                |(m, e, s, q): (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>)| {
                    lstm_objective(&m, &e, &s, &q, l, c, b)
                },
                (Active(&main), Active(&extra), Const(&state), Const(&seq)),
            )
            .unwrap();
        for (a, f) in gm.iter().chain(&ge).zip(fm.iter().chain(&fe)) {
            assert!((a - f).abs() <= 1e-7 * f.abs().max(1.0), "{a} vs {f}");
        }
    }

    #[test]
    fn reads_the_adbench_file() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/adbench/lstm/lstm_l2_c1024.txt");
        let input = LstmInput::read(&path).expect("the ADBench data beside the repository");
        assert_eq!((input.l, input.c, input.b), (2, 1024, 14));
        assert_eq!(input.sequence.len(), 1024 * 14);
        let loss = lstm_objective(
            &input.main,
            &input.extra,
            &input.state,
            &input.sequence,
            2,
            1024,
            14,
        );
        assert!(loss.is_finite());
    }
}
