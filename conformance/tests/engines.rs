//! The suite against every engine of the workspace. A failure lists every failing scenario.

use difi_closure::Closure;
use difi_conformance::{
    assert_conforms, run_first_order, run_second_order, Profile, Status, WrongGradient,
};
use difi_core::FiniteDifferences;
use difi_forward::{Forward, ForwardOverReverse};
use difi_tape::Tape;

#[test]
fn finite_differences_conforms() {
    let b = FiniteDifferences::default();
    let p = Profile::finite_differences();
    assert_conforms("finite-differences", &run_first_order(&b, &p, ""));
    assert_conforms("finite-differences", &run_second_order(&b, &p, ""));
}

#[test]
fn tape_conforms() {
    assert_conforms(
        "tape",
        &run_first_order(&Tape::new(), &Profile::reverse(), ""),
    );
}

#[test]
fn forward_conforms() {
    assert_conforms(
        "forward<8>",
        &run_first_order(&Forward::<8>, &Profile::forward(), ""),
    );
}

#[test]
fn forward_over_reverse_tape_conforms() {
    let b = ForwardOverReverse::<Tape>::default();
    assert_conforms(
        "forward-over-reverse(tape)",
        &run_first_order(&b, &Profile::reverse(), ""),
    );
    assert_conforms(
        "forward-over-reverse(tape)",
        &run_second_order(&b, &Profile::reverse(), ""),
    );
}

#[test]
fn closure_conforms() {
    assert_conforms(
        "closure",
        &run_first_order(&Closure::default(), &Profile::reverse(), ""),
    );
}

#[test]
fn forward_over_reverse_closure_conforms() {
    let b = ForwardOverReverse::<Closure>::default();
    assert_conforms(
        "forward-over-reverse(closure)",
        &run_first_order(&b, &Profile::reverse(), ""),
    );
    assert_conforms(
        "forward-over-reverse(closure)",
        &run_second_order(&b, &Profile::reverse(), ""),
    );
}

#[test]
fn the_suite_catches_a_deliberately_wrong_engine() {
    let b = WrongGradient::default();
    let p = Profile::finite_differences();
    let outcomes = run_first_order(&b, &p, "");
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| matches!(o.status, Status::Fail { .. }))
        .map(|o| o.scenario.as_str())
        .collect();
    assert!(failed.contains(&"vector/Rosenbrock/gradient"), "{failed:?}");
    assert!(
        failed.contains(&"vector-vector/MatVec/jacobian"),
        "{failed:?}"
    );
    assert!(
        failed.len() > outcomes.len() / 2,
        "only {} of {} failed",
        failed.len(),
        outcomes.len()
    );
    let second = run_second_order(&b, &p, "");
    assert!(second
        .iter()
        .any(|o| matches!(o.status, Status::Fail { .. })));
    let panicked = std::panic::catch_unwind(|| assert_conforms("wrong", &outcomes));
    assert!(panicked.is_err());
}

#[test]
fn the_filter_selects_scenarios() {
    let outcomes = run_first_order(&Tape::new(), &Profile::reverse(), "scalar/Sin");
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes
        .iter()
        .all(|o| o.scenario.starts_with("scalar/Sin")));
}
