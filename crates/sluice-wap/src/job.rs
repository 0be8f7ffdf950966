//! Jobs: one Write-Audit-Publish run over several tables, published together.
//!
//! A job file (TOML) names the tables, each with its source, checks, mode and options:
//!
//! ```toml
//! atomic = true          # default: publish every table in one catalog commit, or none
//!
//! [[table]]
//! name = "shop.orders"
//! source = "s3://raw/orders/"
//! checks = "checks/orders.toml"
//!
//! [[table]]
//! name = "shop.order_lines"
//! source = "s3://raw/order_lines/"
//! checks = "checks/order_lines.toml"
//! mode = "register"
//! ```
//!
//! Relative paths (checks files, local sources) are relative to the job file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sluice_checks::CheckSuite;
use sluice_lake::TableName;

use crate::error::{Error, Result};
use crate::options::{Mode, RunOptions, SchemaChange};
use crate::schedule::StopSignal;

/// What a job does: the run of every table, and how they are published.
#[derive(Clone, Debug)]
pub struct JobOptions {
    /// Where the job was read from (for reports and the journal).
    pub source: String,
    /// One entry per table, in the job file's order. Each table's `cancel` is the job's.
    pub tables: Vec<RunOptions>,
    /// `true` (the default): all tables are published in one atomic catalog commit, and a
    /// catalog that cannot do that fails the job before anything is written. `false`: table
    /// by table (see `docs/lake.md` for what a reader can see in between).
    pub atomic: bool,
    /// Raised, the job stops at its next safe point (as [`RunOptions::cancel`]).
    pub cancel: StopSignal,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobFile {
    #[serde(default = "atomic_default")]
    atomic: bool,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    author: Option<String>,
    #[serde(default, rename = "table")]
    tables: Vec<TableEntry>,
}

fn atomic_default() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TableEntry {
    pub(crate) name: String,
    pub(crate) source: String,
    #[serde(default)]
    pub(crate) checks: Option<String>,
    #[serde(default)]
    pub(crate) mode: Mode,
    #[serde(default)]
    pub(crate) partition_by: Option<String>,
    #[serde(default)]
    pub(crate) on_schema_change: SchemaChange,
    #[serde(default)]
    pub(crate) rewrite: bool,
    #[serde(default)]
    pub(crate) key_columns: Vec<String>,
    #[serde(default)]
    pub(crate) message: Option<String>,
}

impl JobOptions {
    /// Reads a job file. `author` is the commits' author when the file does not name one.
    pub fn from_path(path: impl AsRef<Path>, author: Option<String>) -> Result<JobOptions> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!("cannot read the job file {}: {e}", path.display()))
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::from_toml(&text, &base, &path.display().to_string(), author)
    }

    /// Parses a job file's text; relative paths are taken from `base`. `origin` names the file
    /// in errors.
    pub fn from_toml(
        text: &str,
        base: &Path,
        origin: &str,
        author: Option<String>,
    ) -> Result<JobOptions> {
        let bad = |reason: String| Error::Config(format!("job file {origin}: {reason}"));
        let file: JobFile = toml::from_str(text).map_err(|e| bad(e.message().to_string()))?;
        if file.tables.is_empty() {
            return Err(bad(
                "it names no table; add a [[table]] with `name` and `source`".to_string(),
            ));
        }
        let cancel = StopSignal::new();
        let mut seen = HashSet::new();
        let mut tables = Vec::with_capacity(file.tables.len());
        for entry in file.tables {
            let table: TableName = entry
                .name
                .parse()
                .map_err(|e| bad(format!("table `{}`: {e}", entry.name)))?;
            if !seen.insert(table.to_string()) {
                return Err(bad(format!(
                    "table {table} is named twice; give each table one [[table]]"
                )));
            }
            let mut options = entry_options(base, &table, entry).map_err(bad)?;
            options.message = options.message.take().or_else(|| file.message.clone());
            options.author = file.author.clone().or_else(|| author.clone());
            options.cancel = cancel.clone();
            tables.push(options);
        }
        Ok(JobOptions {
            source: origin.to_string(),
            tables,
            atomic: file.atomic,
            cancel,
        })
    }

    /// A job over `tables` (given in the order they are written), published atomically.
    pub fn new(tables: Vec<RunOptions>) -> JobOptions {
        let cancel = StopSignal::new();
        let tables = tables
            .into_iter()
            .map(|mut t| {
                t.cancel = cancel.clone();
                t
            })
            .collect();
        JobOptions {
            source: "job".to_string(),
            tables,
            atomic: true,
            cancel,
        }
    }

    /// The tables' names, in order.
    pub fn table_names(&self) -> Vec<TableName> {
        self.tables.iter().map(|t| t.table.clone()).collect()
    }
}

/// The run options of one table entry (of a job file, or a trigger of `sluice.toml`): its
/// source and checks taken from `base` when relative. The error names the table.
pub(crate) fn entry_options(
    base: &Path,
    table: &TableName,
    entry: TableEntry,
) -> std::result::Result<RunOptions, String> {
    let source = crate::source::source_location(&relative(base, &entry.source))
        .map_err(|e| format!("table {table}: {e}"))?;
    let mut options = RunOptions::new(source, table.clone());
    if let Some(checks) = &entry.checks {
        let path = relative(base, checks);
        options.checks = Some(
            CheckSuite::from_path(&path)
                .map_err(|e| format!("table {table}: checks file {path}: {e}"))?,
        );
    }
    if let Some(spec) = &entry.partition_by {
        sluice_lake::partition::parse_partition_by(spec)
            .map_err(|e| format!("table {table}: partition_by: {e}"))?;
    }
    options.mode = entry.mode;
    options.partition_by = entry.partition_by;
    options.on_schema_change = entry.on_schema_change;
    options.rewrite = entry.rewrite;
    options.key_columns = entry.key_columns;
    options.message = entry.message;
    Ok(options)
}

/// A path or URL of the job file, taken from the job file's directory when it is a relative
/// local path.
pub(crate) fn relative(base: &Path, value: &str) -> String {
    if value.contains("://") || Path::new(value).is_absolute() {
        value.to_string()
    } else {
        base.join(value).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_file_becomes_one_run_per_table_with_paths_from_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("raw/orders")).unwrap();
        std::fs::write(
            dir.path().join("orders.toml"),
            "[[check]]\nkind = \"not_null\"\ncolumn = \"id\"\n",
        )
        .unwrap();
        let text = r#"
            message = "nightly"
            [[table]]
            name = "shop.orders"
            source = "raw/orders"
            checks = "orders.toml"
            [[table]]
            name = "shop.order_lines"
            source = "s3://raw/order_lines/"
            mode = "register"
            on_schema_change = "add-columns"
        "#;
        let job = JobOptions::from_toml(text, dir.path(), "wap.toml", Some("bot".into())).unwrap();
        assert!(job.atomic);
        assert_eq!(job.tables.len(), 2);
        let (orders, lines) = (&job.tables[0], &job.tables[1]);
        assert_eq!(orders.table.to_string(), "shop.orders");
        assert!(orders.source.ends_with("/raw/orders"), "{}", orders.source);
        assert!(orders.checks.is_some());
        assert_eq!(orders.message.as_deref(), Some("nightly"));
        assert_eq!(orders.author.as_deref(), Some("bot"));
        assert_eq!(lines.source, "s3://raw/order_lines/");
        assert_eq!(lines.mode, Mode::Register);
        assert_eq!(lines.on_schema_change, SchemaChange::AddColumns);
        job.cancel.stop();
        assert!(orders.cancel.is_stopped() && lines.cancel.is_stopped());
    }

    #[test]
    fn a_bad_job_file_says_what_is_wrong_and_where() {
        let dir = tempfile::tempdir().unwrap();
        let err = |text: &str| {
            JobOptions::from_toml(text, dir.path(), "wap.toml", None)
                .unwrap_err()
                .to_string()
        };
        assert!(err("atomic = true").contains("names no table"));
        let twice = "[[table]]\nname = \"a.b\"\nsource = \"s3://x/\"\n[[table]]\nname = \"a.b\"\nsource = \"s3://y/\"\n";
        let e = err(twice);
        assert!(
            e.contains("wap.toml") && e.contains("a.b is named twice"),
            "{e}"
        );
        let e = err("[[table]]\nname = \"a.b\"\nsource = \"s3://x/\"\nmdoe = \"copy\"\n");
        assert!(e.contains("mdoe"), "{e}");
        let e = err("[[table]]\nname = \"a.b\"\nsource = \"s3://x/\"\nchecks = \"nope.toml\"\n");
        assert!(e.contains("table a.b") && e.contains("nope.toml"), "{e}");
        let e =
            err("[[table]]\nname = \"a.b\"\nsource = \"s3://x/\"\npartition_by = \"weekly(ts)\"\n");
        assert!(e.contains("partition_by"), "{e}");
    }
}
