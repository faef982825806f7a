//! The one error type of the interface.

use std::fmt;

use crate::value::Shape;

/// Everything an operator can refuse. Messages say what to change.
#[derive(Clone, Debug, PartialEq)]
pub enum Error {
    /// A prepared operator was called with arguments of another type or shape.
    PreparedShapeMismatch {
        /// Which operator.
        operator: &'static str,
        /// 1-based argument position.
        argument: usize,
        /// What the preparation saw.
        prepared: String,
        /// What the call passed.
        given: String,
    },
    /// A prepared operator was called with another number of arguments.
    PreparedArityMismatch {
        /// Which operator.
        operator: &'static str,
        /// Arguments at preparation.
        prepared: usize,
        /// Arguments at the call.
        given: usize,
    },
    /// A seed or tangent does not have the shape it must have.
    SeedShape {
        /// Which operator.
        operator: &'static str,
        /// The shape required.
        expected: Shape,
        /// The shape given.
        given: Shape,
    },
    /// An operator that needs a scalar output got another shape.
    NotScalarOutput {
        /// Which operator.
        operator: &'static str,
        /// The output's shape.
        shape: Shape,
    },
    /// An operator needs a number of active scalars the arguments do not have.
    ActiveCount {
        /// Which operator.
        operator: &'static str,
        /// What it needs, in words.
        expected: &'static str,
        /// How many active scalars the call had.
        given: usize,
    },
    /// A tracer was used outside the computation that made it (after it ended, or on another
    /// thread), or a tape was otherwise misused.
    TracerMisuse(String),
    /// The engine's tape is full.
    TapeOverflow {
        /// How many records it can hold.
        capacity: usize,
    },
    /// A custom rule broke its contract (wrong count or shape of outputs, a cotangent missing or
    /// given where it was not asked for).
    RuleContract {
        /// The rule's name.
        rule: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The engine cannot do this.
    Unsupported(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::PreparedShapeMismatch {
                operator,
                argument,
                prepared,
                given,
            } => write!(
                f,
                "{operator}: argument {argument} was prepared as {prepared} but the call passes \
                 {given}; prepare again for the new shape or pass an argument of the prepared shape"
            ),
            Error::PreparedArityMismatch {
                operator,
                prepared,
                given,
            } => write!(
                f,
                "{operator}: prepared for {prepared} arguments but called with {given}; pass the \
                 same argument tuple as at preparation"
            ),
            Error::SeedShape {
                operator,
                expected,
                given,
            } => write!(
                f,
                "{operator}: the seed has shape {given} but must have shape {expected} (the shape \
                 of the function's output for a pullback, of the active arguments for a \
                 pushforward)"
            ),
            Error::NotScalarOutput { operator, shape } => write!(
                f,
                "{operator}: the function returns {shape}, but this operator needs a scalar \
                 output; use jacobian or pullback for non-scalar outputs"
            ),
            Error::ActiveCount {
                operator,
                expected,
                given,
            } => write!(
                f,
                "{operator}: needs {expected}, but the arguments have {given} active scalars; \
                 mark the others Const"
            ),
            Error::TracerMisuse(m) => write!(f, "tracer misuse: {m}"),
            Error::TapeOverflow { capacity } => write!(
                f,
                "the tape is full ({capacity} records); split the computation, use checkpoint, \
                 or differentiate fewer operations per call"
            ),
            Error::RuleContract { rule, message } => {
                write!(f, "custom rule `{rule}` broke its contract: {message}")
            }
            Error::Unsupported(m) => write!(f, "unsupported: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
