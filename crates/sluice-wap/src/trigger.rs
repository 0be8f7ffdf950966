//! `[[trigger]]` in `sluice.toml`: which source locations start runs of which table when
//! `sluice serve` hears of new files, and how events are gathered into runs.
//!
//! ```toml
//! [[trigger]]
//! prefix = "s3://raw/events/"      # objects created under it start runs for this table
//! table = "analytics.events"
//! checks = "checks/events.toml"
//! batch_window = "30s"             # gather events for this long (or max_files) before a run
//! max_files = 500
//! poll_every = "5m"                # also list the prefix this often (optional)
//! ```

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_lake::TableName;

use crate::config::parse_duration;
use crate::job::{TableEntry, entry_options};
use crate::options::{Mode, RunOptions, SchemaChange};

/// How long events are gathered before a run, when the trigger does not say.
pub const DEFAULT_BATCH_WINDOW: Duration = Duration::from_secs(30);
/// The most files a run started by events takes, when the trigger does not say.
pub const DEFAULT_MAX_FILES: usize = 500;

/// One `[[trigger]]` as written in the file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TriggerEntry {
    prefix: String,
    table: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checks: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    batch_window: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_files: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    poll_every: Option<String>,
    #[serde(default)]
    mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    partition_by: Option<String>,
    #[serde(default)]
    on_schema_change: SchemaChange,
    #[serde(default)]
    rewrite: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    key_columns: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

/// A trigger: the runs of one table that new files under a prefix start.
#[derive(Clone, Debug)]
pub struct Trigger {
    /// The prefix as a URL (`s3://bucket/dir/`, `file:///abs/dir/`): an object whose location
    /// starts with it belongs to this trigger.
    pub prefix: String,
    /// The options of the trigger's runs (source, table, checks, mode …).
    pub options: RunOptions,
    /// How long events are gathered before a run starts.
    pub batch_window: Duration,
    /// A run starts as soon as this many files are waiting, and takes at most this many.
    pub max_files: usize,
    /// List the prefix this often too (for stores that send no notifications).
    pub poll_every: Option<Duration>,
}

impl Trigger {
    /// Whether an object at `location` (a URL) is one of this trigger's.
    pub fn matches(&self, location: &str) -> bool {
        location.starts_with(&self.prefix)
    }

    /// The table the trigger's runs write.
    pub fn table(&self) -> &TableName {
        &self.options.table
    }
}

/// Builds the triggers of a configuration file whose directory is `base`; their runs' author is
/// `author` (`[run] author`), else the user or host. Errors name the trigger by its position and
/// table.
pub(crate) fn triggers(
    entries: Vec<TriggerEntry>,
    base: &Path,
    author: Option<&str>,
) -> std::result::Result<Vec<Trigger>, String> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let n = i + 1;
        let table: TableName = entry
            .table
            .parse()
            .map_err(|e| format!("[[trigger]] {n}: table `{}`: {e}", entry.table))?;
        if !seen.insert(table.to_string()) {
            return Err(format!(
                "[[trigger]] {n}: table {table} has a trigger already; give each table one \
                 [[trigger]]"
            ));
        }
        let duration = |key: &str, value: &Option<String>| -> Result<Option<Duration>, String> {
            match value {
                None => Ok(None),
                Some(text) => match parse_duration(text) {
                    Ok(d) if !d.is_zero() => Ok(Some(d)),
                    Ok(_) => Err(format!(
                        "[[trigger]] {n} ({table}): {key} `{text}` is zero; give a positive \
                         duration such as 30s"
                    )),
                    Err(e) => Err(format!("[[trigger]] {n} ({table}): {key}: {e}")),
                },
            }
        };
        let batch_window = duration("batch_window", &entry.batch_window)?;
        let poll_every = duration("poll_every", &entry.poll_every)?;
        let max_files = entry.max_files.unwrap_or(DEFAULT_MAX_FILES);
        if max_files == 0 {
            return Err(format!(
                "[[trigger]] {n} ({table}): max_files is 0; give at least 1"
            ));
        }
        let mut options = entry_options(
            base,
            &table,
            TableEntry {
                name: entry.table.clone(),
                source: entry.prefix.clone(),
                checks: entry.checks,
                mode: entry.mode,
                partition_by: entry.partition_by,
                on_schema_change: entry.on_schema_change,
                rewrite: entry.rewrite,
                key_columns: entry.key_columns,
                message: entry.message,
            },
        )
        .map_err(|e| format!("[[trigger]] {n}: {e}"))?;
        options.author = Some(crate::author::default_author(author));
        let prefix = prefix_url(&options.source);
        out.push(Trigger {
            prefix,
            options,
            batch_window: batch_window.unwrap_or(DEFAULT_BATCH_WINDOW),
            max_files,
            poll_every,
        });
    }
    Ok(out)
}

/// A source as the URL prefix the locations of its files start with: a local directory
/// becomes `file:///abs/dir/`.
fn prefix_url(source: &str) -> String {
    if source.contains("://") {
        return source.to_string();
    }
    let mut url = format!("file://{source}");
    if Path::new(source).is_dir() && !url.ends_with('/') {
        url.push('/');
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, base: &Path) -> Result<Vec<Trigger>, String> {
        #[derive(Deserialize)]
        struct File {
            trigger: Vec<TriggerEntry>,
        }
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        triggers(file.trigger, base, Some("bot"))
    }

    #[test]
    fn triggers_take_paths_from_the_file_and_match_locations_under_their_prefix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("raw")).unwrap();
        let t = parse(
            r#"
            [[trigger]]
            prefix = "s3://raw/events/"
            table = "analytics.events"
            batch_window = "2s"
            max_files = 10
            poll_every = "5m"
            [[trigger]]
            prefix = "raw"
            table = "analytics.local"
            "#,
            dir.path(),
        )
        .unwrap();
        assert_eq!(t[0].prefix, "s3://raw/events/");
        assert_eq!(t[0].batch_window, Duration::from_secs(2));
        assert_eq!(t[0].max_files, 10);
        assert_eq!(t[0].poll_every, Some(Duration::from_secs(300)));
        assert!(t[0].matches("s3://raw/events/2026/a.parquet"));
        assert!(!t[0].matches("s3://raw/other/a.parquet"));
        assert_eq!(t[1].batch_window, DEFAULT_BATCH_WINDOW);
        assert_eq!(t[1].options.author.as_deref(), Some("bot"));
        let raw = dir.path().canonicalize().unwrap().join("raw");
        assert_eq!(t[1].prefix, format!("file://{}/", raw.display()));
        assert!(t[1].matches(&format!("file://{}/x.parquet", raw.display())));
        assert!(!t[1].matches(&format!("file://{}2/x.parquet", raw.display())));
    }

    #[test]
    fn a_bad_trigger_says_which_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let err = |text: &str| parse(text, dir.path()).unwrap_err();
        let e =
            err("[[trigger]]\nprefix = \"s3://a/\"\ntable = \"a.b\"\nbatch_window = \"soon\"\n");
        assert!(
            e.contains("[[trigger]] 1") && e.contains("batch_window"),
            "{e}"
        );
        let e = err(
            "[[trigger]]\nprefix = \"s3://a/\"\ntable = \"a.b\"\n[[trigger]]\nprefix = \"s3://b/\"\ntable = \"a.b\"\n",
        );
        assert!(e.contains("[[trigger]] 2") && e.contains("a.b"), "{e}");
        let e = err("[[trigger]]\nprefix = \"s3://a/\"\ntable = \"a.b\"\nmax_files = 0\n");
        assert!(e.contains("max_files"), "{e}");
        let e = err("[[trigger]]\nprefix = \"nowhere\"\ntable = \"a.b\"\n");
        assert!(
            e.contains("[[trigger]] 1") && e.contains("does not exist"),
            "{e}"
        );
        let e = err("[[trigger]]\nprefix = \"s3://a/\"\ntable = \"a.b\"\nbatch = \"1s\"\n");
        assert!(e.contains("batch"), "{e}");
    }
}
