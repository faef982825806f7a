//! Criterion benches of the closure engine (filled by its issue).
fn main() {}
