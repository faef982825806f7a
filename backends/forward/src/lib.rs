//! Forward-mode dual numbers and forward-over-reverse second order for difi.
