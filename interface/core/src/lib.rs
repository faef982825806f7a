//! # difi-core: the interface of difi
//!
//! One front end for automatic differentiation in Rust, modelled on
//! DifferentiationInterface.jl. Numerical code is written once, generic over [`Real`]; every
//! argument of a differentiated function is annotated [`Active`] or [`Const`]; engines
//! implement [`Backend`] (and [`SecondOrder`]) and pass one conformance suite.
//!
//! This crate knows no AD engine. It holds the traits, the operators with their defaults, the
//! custom-rule machinery, [`FiniteDifferences`], a reference backend, and [`Dual`], the
//! dual-number scalar that forward mode is built on and that reverse engines use to
//! differentiate small elementwise functions ([`sum_map`]).
//!
//! ```
//! use difi_core::{Active, Backend, Const, FiniteDifferences, NoTangent, Real};
//!
//! fn scaled_norm<T: Real>(x: &[T], scale: T) -> T {
//!     x.iter().fold(T::zero(), |s, &v| s + v * v) * scale
//! }
//! let b = FiniteDifferences::default();
//! let (dx, NoTangent) = b.gradient(|(x, s)| scaled_norm(&x, s), (Active(&[1.0_f64, 2.0]), Const(3.0)))?;
//! assert!((dx[0] - 6.0).abs() < 1e-6 && (dx[1] - 12.0).abs() < 1e-6);
//! # Ok::<(), difi_core::Error>(())
//! ```

#![warn(missing_docs)]

mod args;
mod backend;
mod boilerplate;
mod dual;
mod error;
mod fd;
mod prepared;
mod real;
mod rule;
mod thread_state;
mod value;

pub use args::{
    Active, Annotated, ArgSignature, Args, BatchSignature, Const, Embed, Identity, NoTangent,
    Signature,
};
pub use backend::{Backend, Pullback, PullbackFn, SecondOrder};
pub use dual::Dual;
pub use error::{Error, Result};
pub use fd::{DensePullback, FiniteDifferences};
pub use prepared::{op, GradientPrep, Prepared};
pub use real::{elementwise_len, map, map_by_index, sum, sum_map, sum_map_by_index, Real};
pub use rule::{apply, check_pullback, checkpoint, Elementwise, Hook, Rule, Segment};
pub use value::{flatten, Differentiable, Output, Shape};

pub use ndarray::{ArrayD, ArrayViewD};
/// `Float` in scope gives tracers `sin`, `exp` and the rest as methods.
pub use num_traits::{Float, FloatConst, One, Zero};

/// Paths used by [`impl_tracer_boilerplate!`]; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use ndarray::ScalarOperand;
    pub use num_traits::{
        Float, FloatConst, FromPrimitive, Num, NumCast, One, ParseFloatError, Signed, ToPrimitive,
        Zero,
    };
}
