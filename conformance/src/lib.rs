//! The shared conformance suite of difi engines, its harness and the report CLI.
