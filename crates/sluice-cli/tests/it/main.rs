//! The `sluice` binary, end to end on the embedded default.

mod bad_input;
mod common;
mod crash;
mod first_hour;
mod runs;
