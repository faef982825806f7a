//! Workloads, written once over `T: Real` so every engine runs the same code and `f64` is the
//! primal; criterion benches in `benches/`; the `ratios` and `gradbench` binaries.

pub mod ba;
pub mod basic;
pub mod gmm;
pub mod gradbench;
#[cfg(feature = "heavy-peers")]
pub mod heavy_peers;
pub mod lstm;
pub mod memory;
pub mod mt19937;
pub mod peers;
pub mod workloads;
