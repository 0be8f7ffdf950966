//! SQL over a sluice lake's tables at any branch, tag, snapshot or point in time, with
//! Apache DataFusion.
//!
//! ```no_run
//! # async fn example(lake: &sluice_lake::Lake) -> sluice_sql::Result<()> {
//! use sluice_sql::SqlSession;
//!
//! let session = SqlSession::new(lake);
//! // main against an audit branch, in one query
//! let frame = session
//!     .sql(
//!         r#"SELECT b.event_type, count(*) AS new_rows
//!            FROM analytics."events@audit" b
//!            LEFT JOIN analytics.events m ON b.event_id = m.event_id
//!            WHERE m.event_id IS NULL
//!            GROUP BY 1"#,
//!     )
//!     .await?;
//! let batches = frame.collect().await.map_err(sluice_sql::Error::from)?;
//! # let _ = batches;
//! # Ok(())
//! # }
//! ```
//!
//! [`names`] documents how a query names a table at a ref. [`SqlSession::context`] is a plain
//! DataFusion `SessionContext`: [`RefTable`] can be registered on any context, and queries
//! can use all of DataFusion's API. Scans push projections and filters into Iceberg's scan
//! planning (see [`table`]); `EXPLAIN` shows what each scan reads.

pub mod error;
pub mod names;
pub mod session;
pub mod table;

pub use error::{Error, Result};
pub use names::{DefaultRef, LakeRef};
pub use session::SqlSession;
pub use table::{RefScanExec, RefTable};

/// DataFusion, as this crate uses it, for callers that need its types.
pub use datafusion;
