//! The engines of this workspace, by name: what the report CLI and this crate's tests run.
//!
//! A third-party engine is not listed here (this crate cannot depend on every engine there is);
//! its author calls [`crate::run_suite`] or [`crate::run_suite_second_order`] directly.

use difi_closure::Closure;
use difi_core::FiniteDifferences;
use difi_forward::{Forward, ForwardOverReverse};
use difi_tape::Tape;

use crate::{run_suite, run_suite_second_order, Outcome, Profile, WrongGradient};

/// Every engine of the workspace, in report order.
pub const ENGINES: [&str; 6] = [
    "finite-differences",
    "tape",
    "closure",
    "forward",
    "forward-over-reverse(tape)",
    "forward-over-reverse(closure)",
];

/// The deliberately wrong engine ([`WrongGradient`]): not in [`ENGINES`], run only when named;
/// the suite must fail on it.
pub const WRONG: &str = "wrong";

/// The engine whose prepared gradients answer for the preparation point
/// ([`WrongGradient::stale_preparation`]): not in [`ENGINES`]; the suite must fail on it.
pub const WRONG_STALE: &str = "wrong(stale-preparation)";

/// Runs the whole suite (filtered as in [`run_suite`]) on the engine called `name`, one of
/// [`ENGINES`], [`WRONG`] or [`WRONG_STALE`]; `None` for an unknown name.
///
/// ```
/// let outcomes = difi_conformance::workspace::run_engine("tape", "=vector/Rosenbrock/gradient").unwrap();
/// difi_conformance::assert_conforms("tape", &outcomes);
/// ```
pub fn run_engine(name: &str, filter: &str) -> Option<Vec<Outcome>> {
    Some(match name {
        "finite-differences" => run_suite_second_order(
            &FiniteDifferences::default(),
            &Profile::finite_differences(),
            filter,
        ),
        "tape" => run_suite(&Tape::new(), &Profile::reverse(), filter),
        "closure" => run_suite(&Closure::default(), &Profile::reverse(), filter),
        "forward" => run_suite(&Forward::<8>, &Profile::forward(), filter),
        "forward-over-reverse(tape)" => run_suite_second_order(
            &ForwardOverReverse::<Tape>::default(),
            &Profile::reverse(),
            filter,
        ),
        "forward-over-reverse(closure)" => run_suite_second_order(
            &ForwardOverReverse::<Closure>::default(),
            &Profile::reverse(),
            filter,
        ),
        WRONG => run_suite_second_order(
            &WrongGradient::default(),
            &Profile::finite_differences(),
            filter,
        ),
        WRONG_STALE => run_suite_second_order(
            &WrongGradient::stale_preparation(),
            &Profile::finite_differences(),
            filter,
        ),
        _ => return None,
    })
}
