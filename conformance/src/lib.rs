//! # difi-conformance: one suite every engine passes
//!
//! [`run_first_order`] runs every first-order scenario against any [`difi_core::Backend`];
//! [`run_second_order`] adds the Hessian scenarios for a [`difi_core::SecondOrder`] backend. Each returns
//! one [`Outcome`] per scenario: pass, fail with the worst relative error and the reason, or not
//! applicable with the reason. The `difi-conformance` binary runs every engine of the workspace
//! and prints the table; this crate's tests run the suite per engine.
//!
//! A third-party engine author adds `difi-conformance` as a dev-dependency and calls the same
//! functions from a test (engines cannot depend on this crate the other way round: it depends
//! on them for the report):
//!
//! ```
//! use difi_conformance::{assert_conforms, run_first_order, Profile};
//! let outcomes = run_first_order(&difi_core::FiniteDifferences::default(), &Profile::finite_differences(), "scalar/Sin");
//! assert_conforms("finite-differences", &outcomes);
//! ```
//!
//! Scenarios: scalar → scalar, vector → scalar, vector → vector, matrix → matrix, a derived
//! struct, mixed activity, all-constant arguments, empty and one-element inputs, a gradient at
//! n = 100 000; every operator with its value variant and prepared form (prepared at another
//! point, called twice, and with another shape for the documented error); probes that count
//! which cotangents and tangents custom rules were asked for (the FFT convolution among them);
//! nesting and perturbation confusion; `stop_gradient`, `hook`, `checkpoint`, `nest_level`.

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
