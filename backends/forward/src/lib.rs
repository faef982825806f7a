//! # difi-forward: dual numbers and forward-over-reverse
//!
//! * [`Dual<T, N>`] (defined in `difi-core`): a value and `N` tangent lanes over any `T: Real`;
//!   it implements `Real`, so it nests and reverse engines run over it.
//! * [`Forward<N>`]: forward mode (pushforward, derivative, Jacobians by chunks of `N` columns).
//! * [`ForwardOverReverse<R>`]: Hessian-vector products, Hessians and second derivatives over
//!   any reverse engine `R`, with first-order operators delegated to `R`.
//!
//! Each nesting level is a distinct type, so perturbations of different levels cannot be
//! confused.

mod backend;

pub use backend::{Forward, ForwardOverReverse};
/// The dual numbers live in `difi-core`, where reverse engines use them too.
pub use difi_core::Dual;
