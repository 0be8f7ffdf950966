//! The `sluice` binary, end to end on the embedded default (and, for the storage-fault suite,
//! on the S3 server of `cargo xtask services`).

mod bad_input;
mod common;
mod crash;
mod faults;
mod first_hour;
mod interop;
mod jobs;
mod ledger;
mod locations;
mod maintain;
mod quality;
mod runs;
mod scale;
mod serve;
mod sql;
