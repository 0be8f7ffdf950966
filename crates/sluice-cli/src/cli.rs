//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "sluice",
    version,
    about = "Write-Audit-Publish for Apache Iceberg: import files on a branch, audit them, publish only what passes",
    after_help = "Examples:\n  sluice demo\n  sluice run --source ./raw --table analytics.events --checks checks.toml\n  sluice log analytics.events --limit 5\n\nExit codes: 0 published or nothing to do, 3 audit failed (rolled back), 1 other failure, 2 usage error."
)]
pub struct Cli {
    /// Configuration file (default: $SLUICE_CONFIG, then ./sluice.toml, then the embedded default in ./.sluice).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print one JSON document on stdout instead of tables, also when the command fails
    /// (`{"status": "failed", "error": ...}`); `watch` prints one compact document per line.
    #[arg(long, global = true)]
    pub json: bool,
    /// More logging (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors; no progress bar.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write ./sluice.toml with the embedded defaults (SQLite catalog and warehouse under ./.sluice/),
    /// and, where missing, a commented checks.toml and sample events in ./raw/ to try.
    #[command(
        after_help = "Example:\n  sluice init && sluice run --source ./raw --table analytics.events"
    )]
    Init {
        /// Overwrite an existing sluice.toml.
        #[arg(long)]
        force: bool,
    },
    /// Generate sample events and run the whole WAP on them: a good batch published, a bad batch rejected.
    #[command(after_help = "Example:\n  mkdir try && cd try && sluice demo")]
    Demo {
        /// Directory to create the demo in.
        #[arg(long, default_value = "sluice-demo")]
        dir: PathBuf,
    },
    /// One Write-Audit-Publish run over the new files of a source.
    #[command(
        after_help = "Examples:\n  sluice run --source ./raw --table analytics.events --checks checks.toml --message \"hourly load\"\n  sluice run --job wap.toml      # several tables, published together"
    )]
    Run(RunArgs),
    /// Poll a source and run whenever new files arrive; stops cleanly on Ctrl-C or SIGTERM after the current run.
    /// With --json, one compact JSON document per run, one per line (JSON Lines).
    #[command(
        after_help = "Example:\n  sluice watch --source s3://raw/events/ --table analytics.events --every 5m --checks checks.toml"
    )]
    Watch {
        #[command(flatten)]
        run: RunArgs,
        /// Poll interval, e.g. 30s, 5m, 1h (more than zero).
        #[arg(long, value_parser = parse_interval)]
        every: std::time::Duration,
        /// Also maintain the table this often, between runs: compaction (audited with the
        /// run's checks), manifest rewrite, snapshot expiry and orphan removal, with the
        /// defaults of `[maintenance]` in sluice.toml (see `sluice maintain`); with --job,
        /// each table of the job.
        #[arg(long, value_parser = parse_interval)]
        maintain_every: Option<std::time::Duration>,
    },
    /// Ingest historical files in batches, each its own transaction; run again to resume.
    #[command(
        after_help = "Example:\n  sluice backfill --source ./archive --table analytics.events --batch-files 50\n  sluice backfill --source s3://raw/events/ --table analytics.events --window 1h"
    )]
    Backfill {
        #[command(flatten)]
        run: RunArgs,
        /// Files per batch (at least 1).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
        batch_files: u32,
        /// Batch by time window of file modification instead, e.g. 1h or 1d.
        #[arg(long, value_parser = parse_interval, conflicts_with = "batch_files")]
        window: Option<std::time::Duration>,
    },
    /// Finish or roll back what a dead process left open.
    #[command(after_help = "Example:\n  sluice recover --wait")]
    Recover {
        /// Also wait for the leases of runs that stopped on other machines to expire, then
        /// recover those runs too (a run killed on this machine is recovered at once).
        #[arg(long)]
        wait: bool,
    },
    /// Past runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Branches of a table.
    #[command(subcommand)]
    Branch(BranchCommand),
    /// Tags of a table.
    #[command(subcommand)]
    Tag(TagCommand),
    /// Tables of the catalog.
    #[command(after_help = "Example:\n  sluice tables analytics")]
    Tables {
        /// Only this namespace.
        namespace: Option<String>,
    },
    /// Commit history of a ref: snapshot, time, operation, message, author, rows.
    #[command(after_help = "Example:\n  sluice log analytics.events@main --limit 10")]
    Log {
        /// NS.TABLE or NS.TABLE@REF.
        target: String,
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Table maintenance: expire the snapshots no branch or tag keeps under Iceberg's ref
    /// retention, and delete the files only they referenced. Never touches a file outside the
    /// table's location, nor the ingest ledger that exactly-once needs.
    #[command(
        after_help = "Examples:\n  sluice maintain analytics.events --dry-run\n  sluice maintain analytics.events --checks checks.toml\n  sluice maintain analytics.events --only expire-snapshots --older-than 7d --retain-last 100\n  sluice maintain analytics.events --only remove-orphan-files --orphans-older-than 1d\n\nSteps, in the order they run: rewrite-data-files (compaction, audited on a branch, then\npublished), rewrite-manifests, expire-snapshots, remove-orphan-files. The maintenance is\njournalled as a run: `sluice runs list` shows it and `sluice recover` finishes or undoes it.\nExit codes: 0 done, 3 the checks failed on the compacted branch, 1 a step failed.\nSee docs/maintenance.md."
    )]
    Maintain {
        /// NS.TABLE.
        table: String,
        /// Say what each step would do; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Run only these steps (comma-separated; default: all).
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<MaintainStepArg>,
        /// Expire snapshots older than this on every branch (default: `[maintenance]
        /// older_than` of sluice.toml, else each ref's max-snapshot-age-ms, else the table's
        /// history.expire.max-snapshot-age-ms, else 5d).
        #[arg(long, value_parser = parse_duration)]
        older_than: Option<std::time::Duration>,
        /// Always keep this many newest snapshots of every branch (default: `[maintenance]
        /// retain_last`, else each ref's min-snapshots-to-keep, else the table's
        /// history.expire.min-snapshots-to-keep, else 1).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        retain_last: Option<u32>,
        /// Remove orphan files only when older than this (default: `[maintenance]
        /// orphans_older_than`, else 3d). Files of runs in flight are always kept.
        #[arg(long, value_parser = parse_duration)]
        orphans_older_than: Option<std::time::Duration>,
        /// Compact data files smaller than this many bytes (default: 3/4 of the table's
        /// write.target-file-size-bytes, 512 MiB unless set).
        #[arg(long)]
        min_file_size: Option<u64>,
        /// The table's checks: run on the compacted branch before it is published.
        #[arg(long)]
        checks: Option<PathBuf>,
    },
    /// What the last publishes recorded of their new rows: rows and, per column their checks
    /// read, null fraction, min, max, mean and distinct count (what anomaly checks compare
    /// with), with a sparkline per metric.
    #[command(
        after_help = "Examples:\n  sluice metrics analytics.events\n  sluice metrics analytics.events --column user_id --last 50\n  sluice --json metrics analytics.events\n\nSee docs/checks.md (anomaly checks)."
    )]
    Metrics {
        /// NS.TABLE or NS.TABLE@REF (main by default).
        target: String,
        /// Only this column's metrics, and a line per publish.
        #[arg(long)]
        column: Option<String>,
        /// How many publishes, newest first.
        #[arg(long, default_value_t = 20)]
        last: usize,
    },
    /// What ref B of a table holds that ref A does not: rows and files added and removed,
    /// schema changes, each column's nulls and bounds on both sides, and B's audit. Reads
    /// metadata only.
    #[command(
        after_help = "Examples:\n  sluice diff analytics.events@main analytics.events@sluice/0193...\n  sluice diff analytics.events@v1 analytics.events@main --format markdown\n\nA failed run's branch is kept for this with `sluice run --keep-failed`."
    )]
    Diff {
        /// NS.TABLE@A: the older side (`main` when no @REF).
        from: String,
        /// NS.TABLE@B: the newer side, of the same table.
        to: String,
        #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
        format: DiffFormat,
    },
    /// Publish a branch into another: fast-forward, or rebase of its appends.
    #[command(
        after_help = "Examples:\n  sluice merge analytics.events fix-1 --into main\n  sluice merge --tables shop.orders,shop.order_lines fix-1   # one atomic commit"
    )]
    Merge {
        /// NS.TABLE, then BRANCH; with --tables, only BRANCH.
        #[arg(value_name = "TABLE")]
        table: String,
        #[arg(value_name = "BRANCH")]
        branch: Option<String>,
        /// Merge BRANCH of each of these tables (comma-separated) in one atomic catalog commit.
        #[arg(long, value_delimiter = ',', value_parser = trimmed)]
        tables: Vec<String>,
        #[arg(long, default_value = "main")]
        into: String,
    },
    /// Move a branch back to one of its ancestors (a snapshot id, a tag, REF@TIME).
    #[command(after_help = "Example:\n  sluice rollback analytics.events --to v1")]
    Rollback {
        table: String,
        /// Where to move the branch to.
        #[arg(long)]
        to: String,
        /// The branch to move.
        #[arg(long, default_value = "main")]
        branch: String,
    },
    /// Read rows of a ref (time travel with NS.T@TAG, NS.T@SNAPSHOT_ID, NS.T@main@TIME, where TIME
    /// is as `sluice log` prints it, e.g. 2026-11-25T10:00:00.123Z).
    #[command(
        after_help = "Examples:\n  sluice scan analytics.events@main@2026-11-25T10:00:00Z --columns event_id,amount --limit 5\n  sluice scan analytics.events --where \"amount > 100 AND country = 'IT'\" --format csv"
    )]
    Scan {
        /// NS.TABLE or NS.TABLE@REF.
        target: String,
        /// Comma-separated columns.
        #[arg(long, value_delimiter = ',', value_parser = trimmed)]
        columns: Option<Vec<String>>,
        /// Only rows for which this SQL condition holds; files whose partition values or
        /// column bounds rule it out are not read (see docs/sql.md).
        #[arg(long = "where", value_name = "CONDITION")]
        filter: Option<String>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Run one read-only SQL query over the lake's tables at any branch, tag, snapshot or time.
    /// A table at a ref is one quoted name: ns."t@audit", "ns.t@v1", ns."t@main@2026-11-30T10:00:00Z";
    /// a table without @ is read at main. EXPLAIN shows the files each scan reads.
    #[command(
        after_help = "Examples:\n  sluice sql \"SELECT event_type, count(*) FROM analytics.events GROUP BY 1\"\n  sluice sql 'SELECT count(*) FROM analytics.\"events@audit\" a LEFT JOIN analytics.events m USING (event_id) WHERE m.event_id IS NULL'\n  sluice sql \"SELECT * FROM analytics.events WHERE amount > 100\" --format parquet --output big.parquet\n\nSee docs/sql.md for names, functions and what is pushed into the scan."
    )]
    Sql {
        /// The query (SELECT, WITH, VALUES or EXPLAIN).
        query: String,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Serve HTTP: object-store notifications and webhooks start runs of the tables named by
    /// the trigger entries of sluice.toml; a read-only web view of the lake at /, Prometheus metrics at
    /// /metrics. Accepted events are written to an event log before the 202, and run after a
    /// crash. SIGTERM or Ctrl-C stops taking requests and lets the runs in progress finish.
    #[command(
        after_help = "Examples:\n  sluice serve\n  sluice serve --ui-only --listen 127.0.0.1:8080\n  SLUICE_SERVE_TOKEN=... sluice serve --listen 0.0.0.0:8080 --max-concurrent-runs 4\n  curl -X POST localhost:8080/v1/runs -d '{\"table\": \"analytics.events\"}'\n\nSee docs/serve.md for the routes, the triggers, and MinIO and AWS S3 notification setups."
    )]
    Serve(ServeArgs),
    /// Audit a ref with a checks file and print the report (nothing changes).
    #[command(after_help = "Example:\n  sluice check analytics.events@main --checks checks.toml")]
    Check {
        target: String,
        #[arg(long)]
        checks: PathBuf,
        /// Failing rows shown per check.
        #[arg(long, default_value_t = 5)]
        samples: usize,
        /// Columns shown with every failing row (e.g. event_id).
        #[arg(long, value_delimiter = ',', value_parser = trimmed)]
        key_columns: Vec<String>,
    },
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Parquet files: a directory, a file:// or s3:// prefix, or one file.
    #[arg(long, required_unless_present = "job")]
    pub source: Option<String>,
    /// Target table NS.TABLE (created from the first file's schema if missing).
    #[arg(long, required_unless_present = "job")]
    pub table: Option<String>,
    /// A job file (TOML, see docs/lake.md): several tables, each with its source, checks and
    /// mode, written on one branch, audited together and published together or not at all.
    #[arg(long, conflicts_with_all = ["source", "table", "checks", "partition_by", "mode", "on_schema_change"])]
    pub job: Option<PathBuf>,
    /// Checks file (TOML, see docs/checks.md).
    #[arg(long)]
    pub checks: Option<PathBuf>,
    /// copy: copy the data into the warehouse; register: add the files in place.
    #[arg(long, value_enum, default_value_t = ModeArg::Copy)]
    pub mode: ModeArg,
    /// Partition a table the run creates, e.g. "day(ts), bucket(16, user_id)": identity (a
    /// bare column), year, month, day, hour, bucket(N, col), truncate(W, col), void. An existing
    /// table keeps its own spec (a different one here is an error); without this flag new tables
    /// are unpartitioned.
    #[arg(long, value_parser = partition_spec)]
    pub partition_by: Option<String>,
    /// Copy mode: decode and re-encode every file (in the table's codec). By default a file
    /// with statistics, the table's types, large enough row groups and a common codec (zstd,
    /// snappy, gzip, lz4_raw) has its column chunks copied as they are.
    #[arg(long)]
    pub rewrite: bool,
    /// When the audit fails, keep the rejected batch on branch sluice/failed/RUN_ID for
    /// inspection (`sluice diff`, `sluice scan`) instead of deleting it; delete it with
    /// `sluice branch delete`.
    #[arg(long)]
    pub keep_failed: bool,
    /// Commit message.
    #[arg(long)]
    pub message: Option<String>,
    /// Commit author. Default: `[run] author` in sluice.toml, else the user the process runs
    /// as ($USER, $LOGNAME, the system's name for its user id), else the host name.
    #[arg(long, env = "SLUICE_AUTHOR")]
    pub author: Option<String>,
    /// What to do with columns the table lacks.
    #[arg(long, value_enum, default_value_t = SchemaChangeArg::Fail)]
    pub on_schema_change: SchemaChangeArg,
    /// Drop the sub-microsecond part of nanosecond timestamps. Tables store microseconds
    /// (readable by every engine); without this flag a value that would lose precision fails
    /// the run, naming the column.
    #[arg(long)]
    pub truncate_timestamps: bool,
    /// Take only this worker's share of the source: K/N, index K (from 0) of N workers. Each
    /// file belongs to one shard (by a hash of its location), so N processes given the same
    /// source and table, each its own K, ingest every file once (e.g. a Kubernetes Indexed
    /// Job: --shard $JOB_COMPLETION_INDEX/N).
    #[arg(long, conflicts_with = "job")]
    pub shard: Option<sluice_wap::Shard>,
    /// Failing rows shown per check.
    #[arg(long, default_value_t = 5)]
    pub samples: usize,
    /// Columns shown with every failing row (e.g. event_id).
    #[arg(long, value_delimiter = ',', value_parser = trimmed)]
    pub key_columns: Vec<String>,
}

/// A `--partition-by` value that parses (the terms' columns are checked against the data).
fn partition_spec(text: &str) -> Result<String, String> {
    sluice_lake::partition::parse_partition_by(text)
        .map(|_| text.trim().to_string())
        .map_err(|e| e.to_string())
}

/// A step of `sluice maintain`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaintainStepArg {
    /// Compact small data files (an audited replace).
    RewriteDataFiles,
    /// Merge the manifests of main.
    RewriteManifests,
    /// Expire snapshots under the refs' retention.
    ExpireSnapshots,
    /// Delete files nothing refers to.
    RemoveOrphanFiles,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ModeArg {
    Copy,
    Register,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum SchemaChangeArg {
    Fail,
    AddColumns,
}

/// How `diff` prints.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiffFormat {
    /// For the terminal.
    Text,
    /// A block for a pull-request comment or a chat message.
    Markdown,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
    Parquet,
}

/// How `scan` and `sql` write rows.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Rows to print at most (0: none, only the columns). Default: 20 for a table on the
    /// terminal (stderr says when more exist), every row otherwise.
    #[arg(long)]
    pub limit: Option<usize>,
    /// table: for reading; csv, json and parquet: every row, for programs (--json means
    /// json; parquet needs --output).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write the rows to this file instead of standard output (it appears only when
    /// complete).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum RunsCommand {
    /// Recent runs, newest first.
    #[command(after_help = "Example:\n  sluice runs list --limit 5")]
    List {
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// One run: steps, attempts, errors, compensations.
    #[command(after_help = "Example:\n  sluice runs show 0193a3c1-...")]
    Show { run_id: String },
}

#[derive(Subcommand, Debug)]
pub enum BranchCommand {
    /// List the branches with their snapshot ids.
    #[command(after_help = "Example:\n  sluice branch list analytics.events")]
    List { table: String },
    /// Create a branch.
    #[command(
        after_help = "Examples:\n  sluice branch create analytics.events dev --from main\n  sluice branch create --tables shop.orders,shop.order_lines dev   # in every table, one commit"
    )]
    Create {
        /// NS.TABLE, then NAME; with --tables, only NAME.
        #[arg(value_name = "TABLE")]
        table: String,
        #[arg(value_name = "NAME")]
        name: Option<String>,
        /// Create the branch in each of these tables (comma-separated), in one atomic commit.
        #[arg(long, value_delimiter = ',', value_parser = trimmed)]
        tables: Vec<String>,
        /// Ref to start from: a branch, a tag, a snapshot id or REF@TIME.
        #[arg(long, alias = "at", default_value = "main")]
        from: String,
    },
    /// Delete a branch (`main` cannot be deleted; a tag of that name is left alone).
    #[command(after_help = "Example:\n  sluice branch delete analytics.events dev")]
    Delete { table: String, name: String },
}

#[derive(Subcommand, Debug)]
pub enum TagCommand {
    /// List the tags with their snapshot ids.
    #[command(after_help = "Example:\n  sluice tag list analytics.events")]
    List { table: String },
    /// Create a tag.
    #[command(
        after_help = "Examples:\n  sluice tag create analytics.events v1 --at main\n  sluice tag create --tables shop.orders,shop.order_lines v1   # in every table, one commit"
    )]
    Create {
        /// NS.TABLE, then NAME; with --tables, only NAME.
        #[arg(value_name = "TABLE")]
        table: String,
        #[arg(value_name = "NAME")]
        name: Option<String>,
        /// Create the tag in each of these tables (comma-separated), in one atomic commit.
        #[arg(long, value_delimiter = ',', value_parser = trimmed)]
        tables: Vec<String>,
        /// What to tag: a branch, a tag, a snapshot id or REF@TIME.
        #[arg(long, alias = "from", default_value = "main")]
        at: String,
    },
    /// Delete a tag (a branch of that name is left alone).
    #[command(after_help = "Example:\n  sluice tag delete analytics.events v1")]
    Delete { table: String, name: String },
}

/// What `sluice branch` and `sluice tag` do, once the kind of ref is known.
pub enum RefAction<'a> {
    List {
        table: &'a str,
    },
    Create {
        table: &'a str,
        name: Option<&'a str>,
        tables: &'a [String],
        from: &'a str,
    },
    Delete {
        table: &'a str,
        name: &'a str,
    },
}

impl BranchCommand {
    pub fn action(&self) -> RefAction<'_> {
        match self {
            BranchCommand::List { table } => RefAction::List { table },
            BranchCommand::Create {
                table,
                name,
                tables,
                from,
            } => RefAction::Create {
                table,
                name: name.as_deref(),
                tables,
                from,
            },
            BranchCommand::Delete { table, name } => RefAction::Delete { table, name },
        }
    }
}

impl TagCommand {
    pub fn action(&self) -> RefAction<'_> {
        match self {
            TagCommand::List { table } => RefAction::List { table },
            TagCommand::Create {
                table,
                name,
                tables,
                at,
            } => RefAction::Create {
                table,
                name: name.as_deref(),
                tables,
                from: at,
            },
            TagCommand::Delete { table, name } => RefAction::Delete { table, name },
        }
    }
}

/// Options of `sluice serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on. Any address but a loopback one needs SLUICE_SERVE_TOKEN.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Runs in progress at once (each of a different table).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_runs: u32,
    /// Files waiting for runs at most; more events get 429 until runs take some.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_queue: u64,
    /// Largest request body in bytes; larger ones get 413.
    #[arg(long, default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_body: u64,
    /// Directory of the event log (default: .sluice/events next to sluice.toml).
    #[arg(long, value_name = "DIR")]
    pub queue_dir: Option<PathBuf>,
    /// Serve only the read-only web view of the lake: no triggers, no event routes.
    #[arg(long)]
    pub ui_only: bool,
}

/// A list item without the spaces around it (`--columns "a, b"`).
pub fn trimmed(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("an empty name in the list".to_string());
    }
    Ok(s.to_string())
}

/// A duration that is more than zero.
pub fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!(
            "`{}` is zero; give a positive duration such as 30s",
            s.trim()
        ));
    }
    Ok(d)
}

/// Parses `90s`, `5m`, `1h`, `2d`, `500ms`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    sluice_wap::config::parse_duration(s)
}
