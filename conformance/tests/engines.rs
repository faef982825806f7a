//! The suite against every engine of the workspace, one test per scenario and engine: a
//! failure names both (e.g. `tape::scenario_12_...`), and its message gives the worst relative
//! error and the reason.
//!
//! The scenario list below is checked against [`difi_conformance::scenario_names`], so a
//! scenario added to the suite without a test here fails `every_scenario_has_a_test`.

use difi_conformance::workspace::{run_engine, ENGINES, WRONG, WRONG_STALE};
use difi_conformance::{
    assert_conforms, run_first_order, run_second_order, run_suite, scenario_names, Outcome,
    Profile, Status, WrongGradient,
};
use rstest::rstest;

/// Runs one scenario on one engine; panics with the scenario's report if it failed.
fn check(engine: &str, scenario: &str) {
    let outcomes = run_engine(engine, &format!("={scenario}")).expect("a workspace engine");
    assert_eq!(
        outcomes.len(),
        1,
        "the filter ={scenario} selected {} scenarios",
        outcomes.len()
    );
    match &outcomes[0].status {
        Status::Pass { .. } => {}
        Status::NotApplicable(reason) => eprintln!("{engine} {scenario}: not applicable: {reason}"),
        Status::Fail { worst, reason } => {
            panic!("{engine} fails {scenario}: worst relative error {worst:.2e}: {reason}")
        }
    }
}

/// Calls `$callback!` with every scenario name.
macro_rules! with_scenarios {
    ($callback:ident) => {
        $callback! {
            "scalar/Sin/derivative",
            "scalar/Sin/derivative/prepared",
            "scalar/Exp/derivative",
            "scalar/Exp/derivative/prepared",
            "scalar/Log/derivative",
            "scalar/Log/derivative/prepared",
            "scalar/Powi/derivative",
            "scalar/Powi/derivative/prepared",
            "scalar/Powf/derivative",
            "scalar/Powf/derivative/prepared",
            "scalar/Tanh/derivative",
            "scalar/Tanh/derivative/prepared",
            "scalar/Logistic/derivative",
            "scalar/Logistic/derivative/prepared",
            "scalar/Abs/derivative",
            "scalar/Abs/derivative/prepared",
            "vector/SumSquares/gradient",
            "vector/SumSquares/gradient/prepared",
            "vector/Rosenbrock/gradient",
            "vector/Rosenbrock/gradient/prepared",
            "vector/DotConst/gradient",
            "vector/DotConst/gradient/prepared",
            "vector/LogSumExp/gradient",
            "vector/LogSumExp/gradient/prepared",
            "vector/LoopBranch/gradient",
            "vector/LoopBranch/gradient/prepared",
            "vector/SumMapRosenbrock/gradient",
            "vector/SumMapRosenbrock/gradient/prepared",
            "vector/SumMapViews/gradient",
            "vector/SumMapViews/gradient/prepared",
            "vector/LoopBranch/gradient/prepared-branch-change",
            "vector-vector/singular-off-path",
            "vector-vector/singular-other-input",
            "vector-vector/Elementwise/jacobian",
            "vector-vector/Elementwise/jacobian_batch",
            "vector-vector/Elementwise/pullback",
            "vector-vector/Elementwise/pushforward",
            "vector-vector/Elementwise/prepared",
            "vector-vector/MatVec/jacobian",
            "vector-vector/MatVec/jacobian_batch",
            "vector-vector/MatVec/pullback",
            "vector-vector/MatVec/pushforward",
            "vector-vector/MatVec/prepared",
            "vector-vector/CumSum/jacobian",
            "vector-vector/CumSum/jacobian_batch",
            "vector-vector/CumSum/pullback",
            "vector-vector/CumSum/pushforward",
            "vector-vector/CumSum/prepared",
            "vector-vector/Map/jacobian",
            "vector-vector/Map/jacobian_batch",
            "vector-vector/Map/pullback",
            "vector-vector/Map/pushforward",
            "vector-vector/Map/prepared",
            "matrix/map/jacobian",
            "matrix/map/pullback",
            "matrix/map/pushforward",
            "matrix/map/prepared",
            "matrix/transposed-input/jacobian",
            "matrix/transposed-input/gradient",
            "matrix/transposed-input/pullback",
            "matrix/transposed-output/jacobian",
            "struct/particle/gradient",
            "struct/particle/gradient/prepared",
            "mixed/active-const-active/gradient",
            "mixed/active-const-active/pushforward",
            "mixed/active-const-active/jacobian",
            "mixed/active-const-active/pullback",
            "mixed/active-const-active/prepared",
            "mixed/all-const/pushforward",
            "mixed/all-const/gradient",
            "edge/empty/gradient",
            "edge/one-element/gradient",
            "edge/empty/jacobian",
            "edge/one-element/jacobian",
            "edge/one-element/pushforward",
            "edge/non-finite/jacobian",
            "edge/n=21/gradient",
            "edge/n=11/jacobian",
            "edge/n=100000/gradient",
            "error/derivative/two-active-scalars",
            "error/pushforward/tangent-length",
            "error/prepared/arity",
            "error/prepared/activity",
            "error/tracer-misuse",
            "rule/column-major-output/gradient",
            "probe/rule-mask/const-never-asked",
            "probe/sum-map-mask/const-never-asked",
            "probe/rule-mask/const-tangent-never-asked",
            "probe/conv/cotangents-computed",
            "nested/perturbation-confusion/product",
            "nested/perturbation-confusion/sum",
            "nested/perturbation-confusion/outer-tracer-active-inside",
            "nested/gradient-of-gradient",
            "nested/gradient-of-gradient/sum-map",
            "feature/stop_gradient",
            "feature/nest_level",
            "feature/hook",
            "feature/checkpoint",
            "feature/checkpoint/equal-segments",
            "probe/checkpoint/recomputed-in-reverse",
            "scalar/Sin/second_derivative",
            "scalar/Sin/second_derivative/prepared",
            "scalar/Exp/second_derivative",
            "scalar/Exp/second_derivative/prepared",
            "scalar/Log/second_derivative",
            "scalar/Log/second_derivative/prepared",
            "scalar/Powi/second_derivative",
            "scalar/Powi/second_derivative/prepared",
            "scalar/Powf/second_derivative",
            "scalar/Powf/second_derivative/prepared",
            "scalar/Tanh/second_derivative",
            "scalar/Tanh/second_derivative/prepared",
            "scalar/Logistic/second_derivative",
            "scalar/Logistic/second_derivative/prepared",
            "scalar/Abs/second_derivative",
            "scalar/Abs/second_derivative/prepared",
            "vector/SumSquares/hessian",
            "vector/SumSquares/hvp",
            "vector/SumSquares/second-order/prepared",
            "vector/Rosenbrock/hessian",
            "vector/Rosenbrock/hvp",
            "vector/Rosenbrock/second-order/prepared",
            "vector/DotConst/hessian",
            "vector/DotConst/hvp",
            "vector/DotConst/second-order/prepared",
            "vector/LogSumExp/hessian",
            "vector/LogSumExp/hvp",
            "vector/LogSumExp/second-order/prepared",
            "vector/LoopBranch/hessian",
            "vector/LoopBranch/hvp",
            "vector/LoopBranch/second-order/prepared",
            "vector/SumMapRosenbrock/hessian",
            "vector/SumMapRosenbrock/hvp",
            "vector/SumMapRosenbrock/second-order/prepared",
            "vector/SumMapViews/hessian",
            "vector/SumMapViews/hvp",
            "vector/SumMapViews/second-order/prepared",
            "error/hvp/direction-length",
            "vector/powf-at-zero-exponent/hessian",
            "feature/checkpoint/equal-segments/hessian",
            "mixed/active-const-active/hessian",
        }
    };
}

macro_rules! per_engine_tests {
    ($($scenario:literal),* $(,)?) => {
        const SCENARIOS: &[&str] = &[$($scenario),*];

        #[rstest]
        fn finite_differences(#[values($($scenario),*)] scenario: &str) {
            check("finite-differences", scenario);
        }

        #[rstest]
        fn tape(#[values($($scenario),*)] scenario: &str) {
            check("tape", scenario);
        }

        #[rstest]
        fn closure(#[values($($scenario),*)] scenario: &str) {
            check("closure", scenario);
        }

        #[rstest]
        fn forward(#[values($($scenario),*)] scenario: &str) {
            check("forward", scenario);
        }

        #[rstest]
        fn forward_over_reverse_tape(#[values($($scenario),*)] scenario: &str) {
            check("forward-over-reverse(tape)", scenario);
        }

        #[rstest]
        fn forward_over_reverse_closure(#[values($($scenario),*)] scenario: &str) {
            check("forward-over-reverse(closure)", scenario);
        }
    };
}

with_scenarios!(per_engine_tests);

#[test]
fn every_scenario_has_a_test() {
    let names = scenario_names();
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !SCENARIOS.contains(&n.as_str()))
        .collect();
    let stale: Vec<&&str> = SCENARIOS
        .iter()
        .filter(|s| !names.iter().any(|n| n == *s))
        .collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "update `with_scenarios!` from `difi-conformance --list`: missing {missing:?}, stale {stale:?}"
    );
    assert_eq!(SCENARIOS, names.as_slice(), "same names, another order");
    assert_eq!(
        ENGINES.len(),
        6,
        "a new engine needs its test function above"
    );
}

#[test]
fn every_engine_reports_each_selected_scenario_once() {
    // A scenario silently missing for one engine would pass every per-scenario test above only
    // if the filter found nothing; `check` asserts it finds exactly one. Here: whole-suite runs
    // name every scenario once.
    for engine in ENGINES {
        let outcomes = run_engine(engine, "scalar/Sin").unwrap();
        let names: Vec<&str> = outcomes.iter().map(|o| o.scenario.as_str()).collect();
        let want: Vec<&str> = SCENARIOS
            .iter()
            .copied()
            .filter(|s| s.contains("scalar/Sin"))
            .collect();
        assert_eq!(names, want, "{engine}");
    }
}

fn failed(outcomes: &[Outcome]) -> Vec<&str> {
    outcomes
        .iter()
        .filter(|o| matches!(o.status, Status::Fail { .. }))
        .map(|o| o.scenario.as_str())
        .collect()
}

#[test]
fn the_suite_catches_a_deliberately_wrong_engine() {
    let b = WrongGradient::default();
    let p = Profile::finite_differences();
    let outcomes = run_first_order(&b, &p, "");
    let first = failed(&outcomes);
    for scenario in [
        "vector/Rosenbrock/gradient",
        "vector/Rosenbrock/gradient/prepared",
        "vector-vector/MatVec/jacobian",
        "vector-vector/CumSum/pullback",
        "vector-vector/Elementwise/pushforward",
        "scalar/Exp/derivative",
        "matrix/map/jacobian",
        "struct/particle/gradient",
        "mixed/active-const-active/gradient",
    ] {
        assert!(first.contains(&scenario), "{scenario} passed: {first:?}");
    }
    // Scenarios without a derivative to get wrong pass: the value of an all-Const call.
    assert!(!first.contains(&"mixed/all-const/gradient"));
    assert!(
        first.len() > outcomes.len() / 2,
        "only {} of {} failed",
        first.len(),
        outcomes.len()
    );
    let second = run_second_order(&b, &p, "");
    assert!(failed(&second).contains(&"vector/Rosenbrock/hessian"));
    assert!(failed(&second).contains(&"scalar/Sin/second_derivative"));
    let panicked = std::panic::catch_unwind(|| assert_conforms(WRONG, &outcomes));
    assert!(panicked.is_err());
    // Through the registry, as the report runs it.
    assert!(!failed(&run_engine(WRONG, "").unwrap()).is_empty());
}

#[test]
fn the_suite_catches_an_engine_with_stale_preparations() {
    let outcomes = run_engine(WRONG_STALE, "").unwrap();
    let failed = failed(&outcomes);
    // Caught where the preparation point differs from the call point, and nowhere else (for
    // the linear DotConst, by the stale value)...
    for f in [
        "SumSquares",
        "Rosenbrock",
        "DotConst",
        "LogSumExp",
        "LoopBranch",
    ] {
        assert!(
            failed.contains(&format!("vector/{f}/gradient/prepared").as_str()),
            "{f}: {failed:?}"
        );
        assert!(!failed.contains(&format!("vector/{f}/gradient").as_str()));
    }
    assert!(failed.contains(&"struct/particle/gradient/prepared"));
    assert!(failed.contains(&"vector/LoopBranch/gradient/prepared-branch-change"));
    assert!(failed.contains(&"mixed/active-const-active/prepared"));
    assert!(failed.iter().all(|s| s.contains("prepared")), "{failed:?}");
}

#[test]
fn the_filter_selects_scenarios() {
    let (b, p) = (difi_tape::Tape::new(), Profile::reverse());
    let outcomes = run_first_order(&b, &p, "scalar/Sin");
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes
        .iter()
        .all(|o| o.scenario.starts_with("scalar/Sin")));
    let exact = run_first_order(&b, &p, "=scalar/Sin/derivative");
    assert_eq!(exact.len(), 1);
    assert_eq!(exact[0].scenario, "scalar/Sin/derivative");
    assert!(run_first_order(&b, &p, "=scalar/Sin").is_empty());
}

#[test]
fn a_first_order_engine_lists_second_order_scenarios_as_not_applicable() {
    let outcomes = run_suite(
        &difi_tape::Tape::new(),
        &Profile::reverse(),
        "vector/SumSquares",
    );
    let hessian = outcomes
        .iter()
        .find(|o| o.scenario == "vector/SumSquares/hessian")
        .expect("listed");
    assert!(matches!(hessian.status, Status::NotApplicable(_)));
    let gradient = outcomes
        .iter()
        .find(|o| o.scenario == "vector/SumSquares/gradient")
        .expect("run");
    assert!(matches!(gradient.status, Status::Pass { .. }));
}

#[test]
fn forward_with_other_lane_counts_conforms() {
    // The report runs Forward<8>; chunking with one lane and with a remainder must agree.
    use difi_forward::Forward;
    assert_conforms(
        "forward<1>",
        &run_suite(&Forward::<1>, &Profile::forward(), ""),
    );
    assert_conforms(
        "forward<3>",
        &run_suite(&Forward::<3>, &Profile::forward(), ""),
    );
}

#[test]
fn every_pair_of_engines_nests() {
    // Each engine's tracer is generic over its base scalar, so any engine runs inside any
    // other: reverse over reverse, forward over reverse, reverse over forward, and the rest.
    use difi_closure::Closure;
    use difi_conformance::run_nested;
    use difi_forward::Forward;
    use difi_tape::Tape;
    let p = Profile::reverse();
    let (tape, closure, forward) = (Tape::new(), Closure::default(), Forward::<4>);
    let runs = [
        ("tape over closure", run_nested(&tape, &closure, &p, "")),
        ("closure over tape", run_nested(&closure, &tape, &p, "")),
        ("forward over tape", run_nested(&forward, &tape, &p, "")),
        (
            "forward over closure",
            run_nested(&forward, &closure, &p, ""),
        ),
        ("tape over forward", run_nested(&tape, &forward, &p, "")),
        (
            "closure over forward",
            run_nested(&closure, &forward, &p, ""),
        ),
    ];
    for (pair, outcomes) in &runs {
        assert_eq!(outcomes.len(), 5, "{pair}");
        assert_conforms(pair, outcomes);
    }
}
