//! Test data for sluice's tests and benchmarks, in one place so that every suite writes the
//! same tables the same way.
//!
//! ```text
//!   small table   schema(), batch(ids)            id long, name string, amount double
//!   events        events_schema(), EventGenerator  user-interaction events, seeded
//!   parquet       write_parquet(path, batch)       files as an upstream tool writes them
//!                 parquet_bytes(batch)              (no Iceberg field ids)
//!                 zstd_parquet_bytes(batch, rows)
//! ```
//!
//! Everything here panics on failure: it builds fixtures, and a fixture that cannot be built is
//! a broken test. The crate knows nothing of Iceberg or of sluice's own crates, so any of them
//! can use it in its tests.
//!
//! ```
//! use sluice_testkit::{EventGenerator, batch, parquet_bytes};
//!
//! let rows = batch(0..3);
//! assert_eq!(rows.num_rows(), 3);
//! assert!(parquet_bytes(&rows).starts_with(b"PAR1"));
//!
//! let events = EventGenerator::new(7).first_id(100).batch(10);
//! assert_eq!(events.num_rows(), 10);
//! ```
#![warn(missing_docs)]

mod events;
mod parquet_files;
mod small_table;

pub use events::{COUNTRIES, DEFAULT_START_MICROS, EVENT_TYPES, EventGenerator, events_schema};
pub use parquet_files::{
    parquet_bytes, write_parquet, write_parquet_with, write_zstd_parquet, zstd_parquet_bytes,
    zstd_properties,
};
pub use small_table::{batch, expected_sum, noisy_amount, noisy_batch, schema, sum_column};
