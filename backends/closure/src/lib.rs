//! # difi-closure: Zygote-style reverse mode
//!
//! [`Closure`] implements the difi interface by composing pullbacks: every primitive returns its
//! value and registers a pullback capturing exactly what it needs; the function's pullback is
//! their composition, owned by a [`ClosurePullback`] that is `Send` and applied to any number
//! of seeds.
//!
//! * Scalar primitives are rules with a fixed contract (value forward; pullback given which
//!   operands need a cotangent). Their pullbacks are function pointers stored with their
//!   captures in a per-computation arena: no allocation per scalar operation. They are not the
//!   array-level [`difi_core::Rule`] trait itself, whose per-call arrays would cost an allocation
//!   per scalar; user rules, sum, dot, products, hooks and checkpoints are one boxed pullback
//!   closure each and follow the same mask contract.
//! * `Const` inputs register nothing; a rule is never asked for a constant input's cotangent.
//! * The tracer [`Tracked<S>`] is generic over its base scalar: it nests over itself, over other
//!   engines' tracers, and runs over dual numbers for forward-over-reverse.

mod arrays;
mod backend;
mod graph;
mod tracked;

pub use backend::{last_pullback, Closure, ClosurePullback, PullbackStats};
pub use tracked::Tracked;
