//! # difi-conformance: one suite every engine passes
//!
//! One call runs the whole suite against any engine value: [`run_suite`] for a
//! [`difi_core::Backend`] (the second-order scenarios are listed as not applicable), or
//! [`run_suite_second_order`] for a [`difi_core::SecondOrder`] backend. Each returns one
//! [`Outcome`] per scenario: pass (with the worst relative error), fail (with the worst relative
//! error and the reason), or not applicable (with the reason). [`run_first_order`] and
//! [`run_second_order`] run the two halves separately, and [`run_nested`] runs the nesting
//! scenarios with one engine inside another.
//!
//! ## Running it on your engine
//!
//! Cargo allows no dependency cycle, and this crate depends on the engines of the workspace
//! (for the report CLI and its per-engine tests), so engines do not depend on it. Instead:
//!
//! * the engines of this workspace are tested here: `tests/engines.rs` has one test per scenario
//!   and engine (`tape::scenario_017___vector_Rosenbrock_gradient__`), so `cargo test` names
//!   the failing scenario; [`workspace::run_engine`] runs an engine by its name;
//! * a third-party engine adds `difi-conformance` as a dev-dependency and calls the suite from
//!   its own tests (no cycle: a dev-dependency of theirs, not a dependency of ours):
//!
//! ```
//! use difi_conformance::{assert_conforms, run_suite_second_order, Profile};
//!
//! // In your crate: `let engine = my_engine::MyBackend::default();` and `Profile::reverse()`.
//! let engine = difi_core::FiniteDifferences::default();
//! let outcomes = run_suite_second_order(&engine, &Profile::finite_differences(), "");
//! assert_conforms("finite-differences", &outcomes); // panics listing every failing scenario
//! ```
//!
//! For one test per scenario, iterate [`scenario_names`] in a generated test, or select one
//! scenario with the filter `=NAME` (e.g. `=vector/Rosenbrock/gradient`).
//!
//! ## What is checked
//!
//! Scenario names read `family/function/operator[/form]`. The functions are data: enums in
//! [`functions`] with one generic `eval<T: Real>` and analytic derivatives, so the same
//! scenario runs under every engine's tracer. References are analytic where possible, else
//! central finite differences (with a looser tolerance); the tolerance of each engine is in its
//! [`Profile`].
//!
//! * Families: scalar → scalar (sin, exp, ln, powi, powf, tanh, logistic, abs away from 0);
//!   vector → scalar (sum of squares, Rosenbrock, dot with a constant, logsumexp, a loop with a
//!   branch, and two [`difi_core::sum_map`]s: Rosenbrock's terms, and terms over a reversed view
//!   and a constant operand); vector → vector (elementwise, matrix-vector, cumulative sum, a
//!   [`difi_core::map`] over a reversed view); ndarray matrix in
//!   and out, also transposed (Fortran order); a derived struct; tuples
//!   `(Active, Const, Active)` and all `Const`; empty and one-element inputs; a gradient at
//!   n = 100 000 (reverse engines).
//! * Every operator with its value variant and its prepared form: prepared at another point,
//!   each prepared call made twice, and a call with another shape (or activity, or arity)
//!   returns the documented error. Inputs are compared before and after calls.
//! * Bad input (`error/...`): the documented [`difi_core::Error`], never a panic.
//! * Probes (`probe/...`): custom rules that log which cotangents and tangents they were asked
//!   for prove `Const` inputs never are, and so does an elementwise function of a `sum_map`;
//!   the FFT convolution of `difi-fft` computes one cotangent with one input `Const` and two
//!   with both active; a checkpointed segment is evaluated on plain values forward and
//!   recomputed traced in reverse.
//! * Nesting and perturbation confusion (`nested/...`); `stop_gradient`, `hook`, `checkpoint`,
//!   `nest_level` and `is_deriving` (`feature/...`).
//!
//! [`WrongGradient`] is a deliberately wrong engine: the suite must fail on it (`--backend
//! wrong` in the report CLI, and a test here).

pub mod functions;
mod scenarios;
pub mod workspace;
mod wrong;

pub use scenarios::{run_first_order, run_second_order};
pub use wrong::WrongGradient;

use difi_core::{Backend, FiniteDifferences, SecondOrder};

/// Why the second-order scenarios do not apply to an engine run through [`run_suite`].
pub const FIRST_ORDER_ONLY: &str =
    "first-order engine: second-order operators need SecondOrder (e.g. forward-over-reverse)";

/// The whole suite for a first-order engine, in one call: every first-order scenario run, and
/// every second-order scenario listed as not applicable. Use [`run_suite_second_order`] when
/// the engine implements [`SecondOrder`].
///
/// `filter` selects scenarios: empty for all, `=NAME` for exactly one, any other text for the
/// names containing it.
///
/// ```
/// use difi_conformance::{assert_conforms, run_suite, Profile};
/// let outcomes = run_suite(&difi_core::FiniteDifferences::default(), &Profile::finite_differences(), "vector/Rosenbrock");
/// assert_conforms("finite-differences", &outcomes);
/// ```
pub fn run_suite<B: Backend>(backend: &B, profile: &Profile, filter: &str) -> Vec<Outcome> {
    let mut r = scenarios::Runner::new(filter);
    scenarios::first_order(backend, profile, &mut r);
    let mut listed = scenarios::Runner::new(filter);
    listed.list_only();
    scenarios::second_order(
        &FiniteDifferences::default(),
        &Profile::finite_differences(),
        &mut listed,
    );
    r.outcomes
        .extend(listed.outcomes.into_iter().map(|o| Outcome {
            scenario: o.scenario,
            status: Status::NotApplicable(FIRST_ORDER_ONLY.into()),
        }));
    r.outcomes
}

/// The whole suite for an engine with second-order operators: every scenario, in one call.
/// The filter works as in [`run_suite`].
pub fn run_suite_second_order<B: SecondOrder>(
    backend: &B,
    profile: &Profile,
    filter: &str,
) -> Vec<Outcome> {
    let mut r = scenarios::Runner::new(filter);
    scenarios::first_order(backend, profile, &mut r);
    scenarios::second_order(backend, profile, &mut r);
    r.outcomes
}

/// The nesting scenarios (`nested/...`) with two engines: `inner` differentiates inside a
/// function that `outer` differentiates, over `outer`'s tracers. [`run_suite`] runs them with
/// the same engine at both levels; this runs any pair, e.g. a reverse engine inside a forward
/// one. The filter works as in [`run_suite`].
///
/// ```
/// use difi_conformance::{assert_conforms, run_nested, Profile};
/// let outcomes = run_nested(&difi_tape::Tape::new(), &difi_closure::Closure::default(), &Profile::reverse(), "");
/// assert_conforms("tape over closure", &outcomes);
/// ```
pub fn run_nested<O: Backend, I: Backend>(
    outer: &O,
    inner: &I,
    profile: &Profile,
    filter: &str,
) -> Vec<Outcome> {
    let mut r = scenarios::Runner::new(filter);
    scenarios::nested(outer, inner, profile, &mut r);
    r.outcomes
}

/// The names of every scenario, first-order ones first, without running any.
///
/// ```
/// let names = difi_conformance::scenario_names();
/// assert!(names.iter().any(|n| n == "vector/Rosenbrock/gradient"));
/// assert!(names.iter().any(|n| n == "vector/Rosenbrock/hessian"));
/// ```
pub fn scenario_names() -> Vec<String> {
    let mut r = scenarios::Runner::lister();
    let (fd, p) = (FiniteDifferences::default(), Profile::finite_differences());
    scenarios::first_order(&fd, &p, &mut r);
    scenarios::second_order(&fd, &p, &mut r);
    r.outcomes.into_iter().map(|o| o.scenario).collect()
}

/// How one scenario went.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Within tolerance; the worst relative error seen.
    Pass {
        /// Worst relative error, `|a - b| / max(1, |b|)`.
        worst: f64,
    },
    /// Outside tolerance or an unexpected error.
    Fail {
        /// Worst relative error (infinite for an error).
        worst: f64,
        /// What went wrong.
        reason: String,
    },
    /// The scenario does not apply to this engine.
    NotApplicable(String),
}

/// The result of one scenario on one engine.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Scenario name, `family/function/operator`.
    pub scenario: String,
    /// How it went.
    pub status: Status,
}

/// What an engine is expected to do, beyond the interface.
#[derive(Clone, Copy, Debug)]
pub struct Profile {
    /// Reverse mode: gradients cost a small multiple of the function (the n = 100 000 gradient
    /// runs) and hooks see cotangents.
    pub reverse: bool,
    /// The engine's tracers know the computation that made them, so one leaked out of a finished
    /// computation gives [`difi_core::Error::TracerMisuse`]. Plain dual numbers cannot (a leaked
    /// dual carries a stale tangent); for them the misuse scenario is not applicable, with
    /// that reason in the report.
    pub detects_leaked_tracers: bool,
    /// Relative tolerance for first-order results.
    pub first_order_tolerance: f64,
    /// Relative tolerance for second-order results.
    pub second_order_tolerance: f64,
}

impl Profile {
    /// An automatic-differentiation engine with reverse-mode gradients.
    pub fn reverse() -> Profile {
        Profile {
            reverse: true,
            detects_leaked_tracers: true,
            first_order_tolerance: 1e-10,
            second_order_tolerance: 1e-9,
        }
    }

    /// A forward-mode engine on dual numbers (exact, but a gradient costs n/N passes; a dual
    /// does not know which computation made it).
    pub fn forward() -> Profile {
        Profile {
            reverse: false,
            detects_leaked_tracers: false,
            ..Profile::reverse()
        }
    }

    /// Central finite differences.
    pub fn finite_differences() -> Profile {
        Profile {
            reverse: false,
            detects_leaked_tracers: false,
            first_order_tolerance: 1e-6,
            second_order_tolerance: 1e-4,
        }
    }
}

/// Panics with a report naming every failing scenario, if any failed.
pub fn assert_conforms(engine: &str, outcomes: &[Outcome]) {
    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|o| match &o.status {
            Status::Fail { worst, reason } => Some(format!(
                "  {}: worst relative error {worst:.2e}: {reason}",
                o.scenario
            )),
            _ => None,
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{engine} failed {} of {} scenarios:\n{}",
        failures.len(),
        outcomes.len(),
        failures.join("\n")
    );
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o.status, Status::Pass { .. })),
        "{engine}: no scenario ran"
    );
}
