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
//! * [`difi_core::Backend::jacobian_batch`] records once, with the `Const` arguments as inputs
//!   too, and replays 16 argument sets at a time, values and adjoints stored set by set beside
//!   each other so each node's arithmetic is one loop over the sets. The price of replaying for
//!   other constants: the sweeps carry adjoints to the `Const` scalars as well, and drop them
//!   (ba's two feature coordinates per set; a large `Const` array would cost its share).
//! * A tracer used outside its computation is an error ([`difi_core::Error::TracerMisuse`]),
//!   or a panic with that message where an arithmetic operator cannot return one.
//!
//! ## What it costs
//!
//! Figures from the project's 2-core benchmark machine (`ratios` in `difi-benches`); the
//! proportions, not the nanoseconds, carry over.
//!
//! * A scalar operation on an active tracer is one 12-byte record and an 8-byte value: about
//!   2 ns to record and 1.5 ns to sweep. Vectorised `f64` code spends 0.1–1 ns per flop, so a
//!   gradient of scalar code costs 10–35 times its primal (Rosenbrock, n = 1000: about 32).
//! * [`difi_core::Real::sum_all`], `dot`, `matvec`, `matmul` and custom rules are one record
//!   each with a vectorised pullback: write array work with them (gmm, whose hot part is one
//!   matrix product, costs about 3 times its primal; llsq about 2).
//! * [`difi_core::sum_map`] is one record whose pullback differentiates the term on dual
//!   numbers (one lane per active operand), 64 elements at a time in a vectorised loop when
//!   every operand is active, against 8 records per element for the loop. Rosenbrock written
//!   with it takes 3.3–4 µs for a gradient instead of 31–33 (6.4–7.4 times its own primal,
//!   which is itself faster than the loop's); lse about 2.7 times its primal.
//!   [`difi_core::map`] is the same node with one output slot per element (a record and a
//!   value each). Operands are cheapest as slices, or as a few slices pieced together.
//! * A checkpoint keeps its segment's inputs and outputs and records the segment again in
//!   reverse; when the segment says it is the same function as the last one recomputed
//!   ([`difi_core::Segment::same_as`]), that recording replays instead (ode, 1000 steps in
//!   segments of 32: 1.9 ms instead of 3.7).
//! * Each active input and gradient entry costs about 1.5 ns (lift and extraction), and each
//!   call has a fixed cost of about 150 ns.
//! * In `jacobian_batch` the dispatch on a node's kind is paid once per 16 sets: ba's 2 × 15
//!   block (64 scalar ops) takes about 200 ns a set, 9 times its primal, against 780 ns for
//!   one Jacobian per block.
//! * `Const` arguments record nothing and get no adjoints, but their scalars still become
//!   16-byte tracers.
//! * `sin` and `cos` compute their derivative when recorded (one `sin_cos`), so the sweep calls
//!   no libm function for them.
//! * Arrays of tens of megabytes pay page faults: glibc returns blocks above 32 MB to the system
//!   when they are freed, and every tracer array is such a block. At 6M elements that is the
//!   larger part of the cost beyond the primal (the 512 × 512 × 23 convolution's gradient: 2.3
//!   times its primal, 1.9 where the allocator keeps freed memory for reuse).

mod backend;
mod batch;
mod special;
mod tape;
mod var;

pub use backend::{last_recording, RecordingStats, Replay, Tape, TapePullback};
pub use var::Var;
