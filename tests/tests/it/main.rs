//! End-to-end conformance suite: the same test bodies against every backend (embedded SQLite
//! catalog + local directory; Iceberg REST catalog + S3 server), plus interoperability with
//! pyiceberg through the REST catalog.
//!
//! Each module writes `async fn name(backend: Backend)` bodies and lists them in
//! `sluice_tests::conformance!`, which makes the tests `name::embedded` and `name::rest_s3`.
//! Every test creates its own uniquely named table, so tests run in parallel against the
//! shared REST catalog.

mod append;
mod bad_input;
mod interop;
mod jobs;
mod publish;
mod refs;
mod rollback;
mod time_travel;
mod wap;
