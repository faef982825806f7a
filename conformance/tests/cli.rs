//! The report CLI as a user runs it: the table, the final `N passed, M failed` line, the exit
//! status, `--backend`, `--filter` and `--json`.

use std::process::{Command, Output};

fn report(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_difi-conformance"))
        .args(args)
        .output()
        .expect("the report binary runs")
}

fn last_line(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

/// `N passed, M failed` as numbers.
fn counts(line: &str) -> (usize, usize) {
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        (words.len(), words[1], words[3]),
        (4, "passed,", "failed"),
        "final line {line:?}"
    );
    (words[0].parse().unwrap(), words[2].parse().unwrap())
}

#[test]
fn a_passing_engine_exits_zero_with_the_final_line() {
    let o = report(&["--backend", "tape", "--filter", "vector/Rosenbrock"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let (passed, failed) = counts(&last_line(&o));
    assert_eq!(failed, 0);
    // gradient and its prepared form run; the three second-order scenarios are not applicable.
    assert_eq!(passed, 2);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("vector/Rosenbrock/gradient"), "{out}");
    assert!(out.contains("n/a"), "{out}");
}

#[test]
fn the_deliberately_wrong_engine_exits_non_zero() {
    let o = report(&["--backend", "wrong", "--filter", "vector/"]);
    assert!(!o.status.success());
    let (_, failed) = counts(&last_line(&o));
    assert!(failed > 0);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("FAIL wrong vector/Rosenbrock/gradient"),
        "{out}"
    );
    let o = report(&[
        "--backend",
        "wrong(stale-preparation)",
        "--filter",
        "/prepared",
    ]);
    assert!(!o.status.success());
    assert!(counts(&last_line(&o)).1 > 0);
}

#[test]
fn several_backends_and_a_json_record_per_scenario_and_engine() {
    let path = std::env::temp_dir().join(format!("difi-conformance-{}.json", std::process::id()));
    let o = report(&[
        "--backend",
        "finite-differences",
        "--backend",
        "forward",
        "--filter",
        "scalar/Exp",
        "--json",
        path.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // scalar/Exp: derivative, its prepared form, second_derivative, its prepared form.
    assert_eq!(records.len(), 2 * 4);
    let fd_derivative = records
        .iter()
        .find(|r| r["engine"] == "finite-differences" && r["scenario"] == "scalar/Exp/derivative")
        .unwrap();
    assert_eq!(fd_derivative["status"], "pass");
    assert!(fd_derivative["worst_relative_error"].as_f64().unwrap() < 1e-6);
    let forward_second = records
        .iter()
        .find(|r| r["engine"] == "forward" && r["scenario"] == "scalar/Exp/second_derivative")
        .unwrap();
    assert_eq!(forward_second["status"], "not-applicable");
    assert!(!forward_second["reason"].as_str().unwrap().is_empty());
}

#[test]
fn bad_options_are_refused() {
    let o = report(&["--backend", "no-such-engine"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown engine"));
    let o = report(&["--filter"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn list_prints_every_scenario_name() {
    let o = report(&["--list"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    let listed: Vec<&str> = out.lines().collect();
    assert_eq!(listed, difi_conformance::scenario_names());
    assert!(listed.contains(&"edge/n=100000/gradient"));
}
