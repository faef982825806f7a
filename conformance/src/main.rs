//! The conformance report: every engine of the workspace over every scenario.
//!
//! ```text
//! cargo run --release -p difi-conformance [-- --backend NAME ... --filter TEXT --json PATH --list]
//! ```
//!
//! Prints a table (scenarios by engines), then `N passed, M failed`, and exits non-zero if
//! anything failed. `--backend wrong` runs a deliberately wrong engine (derivatives off by a
//! factor 1.5) and `--backend 'wrong(stale-preparation)'` one whose prepared gradients answer
//! for the preparation point: self-tests, the report must fail on them.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use difi_conformance::workspace::{run_engine, ENGINES, WRONG, WRONG_STALE};
use difi_conformance::{Outcome, Status};

struct Options {
    backends: Vec<String>,
    filter: String,
    json: Option<String>,
}

fn parse() -> Result<Options, String> {
    let mut o = Options {
        backends: Vec::new(),
        filter: String::new(),
        json: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |flag: &str| args.next().ok_or(format!("{flag} needs a value"));
        match a.as_str() {
            "--backend" => o.backends.push(value("--backend")?),
            "--filter" => o.filter = value("--filter")?,
            "--json" => o.json = Some(value("--json")?),
            "--list" => {
                for name in difi_conformance::scenario_names() {
                    println!("{name}");
                }
                std::process::exit(0);
            }
            "-h" | "--help" => {
                println!(
                    "usage: difi-conformance [--backend NAME]... [--filter TEXT] [--json PATH] [--list]\n\
                     engines: {} (default: all); `{WRONG}` and `{WRONG_STALE}` are deliberately \
                     wrong engines (self-tests: the report must fail on them)\n\
                     --filter TEXT selects the scenarios whose names contain TEXT; =NAME selects one\n\
                     --json PATH writes one record per scenario and engine (JSON lines)\n\
                     --list prints every scenario name and exits",
                    ENGINES.join(", ")
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other:?}; see --help")),
        }
    }
    if o.backends.is_empty() {
        o.backends = ENGINES.iter().map(|s| s.to_string()).collect();
    }
    Ok(o)
}

/// A table cell; `reasons` numbers the not-applicable reasons for the notes under the table.
fn cell(s: &Status, reasons: &mut Vec<String>) -> String {
    match s {
        Status::Pass { .. } => "pass".into(),
        Status::Fail { worst, .. } if worst.is_finite() => format!("FAIL {worst:.1e}"),
        Status::Fail { .. } => "FAIL error".into(),
        Status::NotApplicable(reason) => {
            let k = match reasons.iter().position(|r| r == reason) {
                Some(k) => k,
                None => {
                    reasons.push(reason.clone());
                    reasons.len() - 1
                }
            };
            format!("n/a [{}]", k + 1)
        }
    }
}

fn main() -> ExitCode {
    let opts = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("difi-conformance: {e}");
            return ExitCode::from(2);
        }
    };
    let mut results: Vec<(String, Vec<Outcome>)> = Vec::new();
    for name in &opts.backends {
        eprint!("running {name} ... ");
        let _ = std::io::stderr().flush();
        let start = std::time::Instant::now();
        match run_engine(name, &opts.filter) {
            Some(o) => {
                eprintln!(
                    "{} scenarios in {:.1} s",
                    o.len(),
                    start.elapsed().as_secs_f64()
                );
                results.push((name.clone(), o));
            }
            None => {
                eprintln!("unknown engine");
                eprintln!(
                    "difi-conformance: unknown engine {name:?}; engines: {}, {WRONG}, \
                     {WRONG_STALE}",
                    ENGINES.join(", ")
                );
                return ExitCode::from(2);
            }
        }
    }

    // Table: scenarios by engine.
    let mut rows: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut reasons = Vec::new();
    for (i, (_, outcomes)) in results.iter().enumerate() {
        for o in outcomes {
            let row = rows
                .entry(o.scenario.clone())
                .or_insert_with(|| vec!["".into(); results.len()]);
            row[i] = cell(&o.status, &mut reasons);
        }
    }
    let width = rows.keys().map(String::len).max().unwrap_or(8).max(8);
    let widths: Vec<usize> = results.iter().map(|(n, _)| n.len().max(10)).collect();
    print!("{:width$}", "scenario");
    for ((n, _), w) in results.iter().zip(&widths) {
        print!("  {n:>w$}");
    }
    println!();
    for (scenario, cells) in &rows {
        print!("{scenario:width$}");
        for (c, w) in cells.iter().zip(&widths) {
            print!("  {c:>w$}");
        }
        println!();
    }

    // Reasons for failures and for what did not apply.
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut notes: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (engine, outcomes) in &results {
        for o in outcomes {
            match &o.status {
                Status::Pass { .. } => passed += 1,
                Status::Fail { worst, reason } => {
                    failed += 1;
                    println!(
                        "FAIL {engine} {}: worst relative error {worst:.2e}: {reason}",
                        o.scenario
                    );
                }
                Status::NotApplicable(reason) => {
                    skipped += 1;
                    notes
                        .entry(reason.as_str())
                        .or_default()
                        .push(format!("{engine} {}", o.scenario));
                }
            }
        }
    }
    if !notes.is_empty() {
        println!("not applicable ({skipped}):");
        for (k, reason) in reasons.iter().enumerate() {
            let cases = &notes[reason.as_str()];
            println!(
                "  [{}] {reason}: {} case(s), e.g. {}",
                k + 1,
                cases.len(),
                cases[0]
            );
        }
    }

    if let Some(path) = &opts.json {
        let mut out = String::new();
        for (engine, outcomes) in &results {
            for o in outcomes {
                let (status, worst, reason) = match &o.status {
                    Status::Pass { worst } => ("pass", Some(*worst), ""),
                    Status::Fail { worst, reason } => ("fail", Some(*worst), reason.as_str()),
                    Status::NotApplicable(r) => ("not-applicable", None, r.as_str()),
                };
                // An error (infinite worst) has no number: null.
                let record = serde_json::json!({
                    "engine": engine,
                    "scenario": o.scenario,
                    "status": status,
                    "worst_relative_error": worst.filter(|w| w.is_finite()),
                    "reason": reason,
                });
                out.push_str(&record.to_string());
                out.push('\n');
            }
        }
        if let Err(e) = std::fs::write(path, out) {
            eprintln!("difi-conformance: cannot write {path}: {e}");
            return ExitCode::from(2);
        }
    }

    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
