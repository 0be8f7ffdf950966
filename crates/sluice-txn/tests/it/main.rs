//! Integration tests of sluice-txn (one binary, one module per concern).

mod ambiguous;
mod child;
mod common;
mod crash;
mod hooks;
mod idempotency;
mod isolation;
mod journal;
mod retry;
