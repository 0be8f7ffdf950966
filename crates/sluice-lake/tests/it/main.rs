//! Integration tests of sluice-lake against the embedded SQL catalog and a local warehouse.

mod bad_input;
mod chunk_copy;
mod common;
mod concurrency;
mod expire;
mod model;
mod multi_table;
mod partitioned;
mod publish;
mod pyiceberg;
mod round_trip;
mod storage_faults;
mod time_travel;
