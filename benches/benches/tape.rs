//! Criterion benches of the tape engine (filled by its issue).
fn main() {}
