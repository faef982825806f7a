//! # difi
//!
//! One interface for automatic differentiation in Rust. Write numerical code once, generic over
//! [`Real`]; annotate every argument [`Active`] or [`Const`]; pick engines with Cargo features.
//!
//! Library authors depend on `difi` with no features and write `fn f<B: Backend>(b: &B)`.
//! Applications enable engines (`difi = { features = ["tape", "forward"] }`) and use
//! [`DefaultBackend`]:
//!
//! | features          | `DefaultBackend`                          |
//! |-------------------|-------------------------------------------|
//! | `tape`, `forward` | `ForwardOverReverse<Tape>` (all operators) |
//! | `tape`            | `Tape` (first order)                       |
//! | `forward`         | `Forward<8>` (first order)                 |
//! | none              | [`FiniteDifferences`]                      |
//!
//! The engines are re-exported as `difi::tape`, `difi::forward` and custom FFT rules as `difi::fft` when
//! their features are on.
//!
//! ```
//! use difi::{Active, Backend, Const, NoTangent, Real};
//!
//! fn loss<T: Real>(w: &[T], data: &[T]) -> T {
//!     w.iter().zip(data).fold(T::zero(), |s, (&a, &b)| s + (a - b).powi(2))
//! }
//! let (w, data) = (vec![1.0_f64, 2.0], vec![0.5, 0.5]);
//! let b = difi::DefaultBackend::default();
//! let (y, (dw, NoTangent)) = b.value_and_gradient(|(w, d)| loss(&w, &d), (Active(&w), Const(&data)))?;
//! assert_eq!(y, 2.5);
//! assert!((dw[0] - 1.0).abs() < 1e-6 && (dw[1] - 3.0).abs() < 1e-6);
//! # Ok::<(), difi::Error>(())
//! ```
//!
//! Array work is cheapest through the array-level primitives, each one node with an array-level
//! pullback on the reverse engines: [`sum`], [`Real::dot`], [`Real::matvec`], [`Real::matmul`],
//! custom rules ([`apply`]), and for elementwise expressions [`sum_map`] and [`map`], which
//! differentiate an [`Elementwise`] function element by element on [`Dual`] numbers. Many small
//! Jacobians of one function (one per observation or sample) belong in one
//! [`Backend::jacobian_batch`] call, which the tape answers from one recording replayed for 16
//! argument sets at a time.

pub use difi_core::*;
/// `#[derive(Differentiable)]` for structs generic over their scalar.
pub use difi_derive::Differentiable;

#[cfg(feature = "fft")]
pub use difi_fft as fft;
#[cfg(feature = "forward")]
pub use difi_forward as forward;
#[cfg(feature = "tape")]
pub use difi_tape as tape;

/// The backend applications get from the enabled engine features.
#[cfg(all(feature = "tape", feature = "forward"))]
pub type DefaultBackend = difi_forward::ForwardOverReverse<difi_tape::Tape>;
/// The backend applications get from the enabled engine features.
#[cfg(all(feature = "tape", not(feature = "forward")))]
pub type DefaultBackend = difi_tape::Tape;
/// The backend applications get from the enabled engine features.
#[cfg(all(feature = "forward", not(feature = "tape")))]
pub type DefaultBackend = difi_forward::Forward;
/// The backend applications get from the enabled engine features.
#[cfg(not(any(feature = "tape", feature = "forward")))]
pub type DefaultBackend = difi_core::FiniteDifferences;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
