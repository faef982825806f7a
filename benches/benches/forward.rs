//! Criterion benches of the forward engine (filled by its issue).
fn main() {}
