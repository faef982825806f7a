//! # difi-tape: reverse mode on a Wengert list
//!
//! [`Tape`] implements the difi interface by recording every operation on tracers
//! ([`Var<S>`]) into a per-thread tape of compact, data-only records, then sweeping it in
//! reverse. The tracer is generic over its base scalar `S: Real`, so the engine nests over
//! itself (`Var<Var<f64>>`) and runs over dual numbers for forward-over-reverse.
//!
//! * `Const` arguments carry no tape index; operations whose inputs are all constant record
//!   nothing; custom rules are told which inputs need cotangents ([`last_recording`] counts).
//! * Sum, dot, matrix products, custom rules, hooks and checkpoints are one record each.
//! * A prepared gradient replays its recording for new inputs; comparisons made while
//!   recording are guards, and a replay whose guards fail records anew.
//! * A tracer used outside its computation is an error ([`difi_core::Error::TracerMisuse`]),
//!   or a panic with that message where an arithmetic operator cannot return one.

mod backend;
mod special;
mod tape;
mod var;

pub use backend::{last_recording, RecordingStats, Replay, Tape, TapePullback};
pub use var::Var;
