//! A GradBench tool: `cargo run --release -p difi-benches --bin gradbench -- --engine tape`.

use std::io::{BufRead, Write};

use difi_benches::gradbench::{Engine, Session};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let engine = match args
        .iter()
        .position(|a| a == "--engine")
        .and_then(|i| args.get(i + 1))
    {
        None => Engine::Tape,
        Some(name) => match Engine::parse(name) {
            Some(e) => e,
            None => {
                eprintln!("gradbench: unknown engine {name:?}; use tape or closure");
                std::process::exit(2);
            }
        },
    };
    let mut session = Session::new(engine);
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let mut out = stdout.lock();
        let _ = writeln!(out, "{}", session.respond(&line));
        let _ = out.flush();
    }
}
