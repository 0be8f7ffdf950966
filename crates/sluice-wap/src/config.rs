//! `sluice.toml`: where the catalog, the warehouse and the run journal are, and the defaults
//! of runs. The `sluice` command and the Python package read it the same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_lake::{
    CatalogConfig, LakeConfig,
    storage::{Secret, StorageOptions},
};

use crate::PipelineConfig;
use crate::error::{Error, Result};
use crate::trigger::{Trigger, TriggerEntry};

/// A configuration error: what was read, and why it does not do.
fn config_error(what: impl std::fmt::Display, reason: impl std::fmt::Display) -> Error {
    Error::Config(format!("{what}: {reason}"))
}

/// The file `sluice init` writes: the embedded default.
pub const DEFAULT_CONFIG: &str = r#"# sluice configuration. Relative paths are relative to this file.

# The catalog: the embedded SQL catalog on a SQLite file (nothing to start),
# or any Iceberg REST catalog:
#   [catalog]
#   type = "rest"
#   uri = "http://127.0.0.1:8181"
#   warehouse = "s3://warehouse/"
# A REST token or OAuth2 client credentials come from SLUICE_CATALOG_TOKEN or
# SLUICE_CATALOG_CREDENTIAL ("client_id:client_secret"); they are never printed.
[catalog]
type = "sql"
uri = ".sluice/catalog.db"
warehouse = ".sluice/warehouse"
# The catalog name in the database's `catalog_name` column: other engines that open this file
# must use the same name (pyiceberg: SqlCatalog("default", ...); Spark: spark.sql.catalog.default).
name = "default"

# S3-compatible storage for s3:// sources and warehouses. Credentials come from the
# usual AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION variables.
# [storage.s3]
# endpoint = "http://127.0.0.1:9000"
# region = "us-east-1"
# path_style = true

# The run journal (a directory, or an s3:// prefix shared by several machines).
[journal]
location = ".sluice/journal"
lease_ttl_secs = 60

# What `sluice serve` runs when it hears of new files (see docs/serve.md):
# [[trigger]]
# prefix = "s3://raw/events/"    # objects created under it start runs of this table
# table = "analytics.events"
# checks = "checks/events.toml"
# batch_window = "30s"           # gather events this long (or max_files) before a run
# max_files = 500
# poll_every = "5m"              # also list the prefix this often (optional)

# Defaults of `sluice maintain` (see docs/maintenance.md); its flags override them.
# [maintenance]
# older_than = "7d"    # expire snapshots older than this on every branch
# retain_last = 100    # but always keep this many newest snapshots of every branch
# orphans_older_than = "3d"  # remove unreferenced files only when older than this
# [maintenance.table."analytics.events"]   # one table's own settings
# retain_last = 500

# Defaults of `sluice run`, `watch` and `backfill`.
# [run]
# author = "etl-bot"   # the commits' author when --author or SLUICE_AUTHOR does not say;
#                      # otherwise the user the process runs as, else the host name
"#;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    catalog: CatalogConfig,
    #[serde(default)]
    storage: StorageOptions,
    #[serde(default)]
    journal: JournalConfig,
    #[serde(default)]
    run: RunDefaults,
    #[serde(default)]
    maintenance: MaintenanceDefaults,
    /// `[[trigger]]`: what `sluice serve` runs when it hears of new files.
    #[serde(default, rename = "trigger", skip_serializing_if = "Vec::is_empty")]
    triggers: Vec<TriggerEntry>,
}

/// `[run]`: defaults of `sluice run`, `watch` and `backfill`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RunDefaults {
    /// The author of the commits runs make, when `--author` does not say.
    author: Option<String>,
}

/// `[maintenance]` as written: defaults for every table, and `[maintenance.table."NS.T"]`
/// for one table.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct MaintenanceDefaults {
    older_than: Option<String>,
    retain_last: Option<u32>,
    orphans_older_than: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    table: BTreeMap<String, MaintenanceValues>,
}

/// `[maintenance.table."NS.T"]` as written.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct MaintenanceValues {
    older_than: Option<String>,
    retain_last: Option<u32>,
    orphans_older_than: Option<String>,
}

/// `[maintenance]`: the defaults of `sluice maintain` (see [`Maintenance::for_table`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Maintenance {
    /// Expire snapshots older than this on every branch.
    pub older_than: Option<Duration>,
    /// Always keep this many newest snapshots of every branch.
    pub retain_last: Option<u32>,
    /// Remove orphan files only when older than this.
    pub orphans_older_than: Option<Duration>,
    /// `[maintenance.table."NS.T"]`: one table's own settings.
    pub tables: BTreeMap<String, Maintenance>,
}

impl Maintenance {
    /// The settings of one table: its own, else those of `[maintenance]`.
    pub fn for_table(&self, table: &str) -> Maintenance {
        let own = self.tables.get(table);
        Maintenance {
            older_than: own.and_then(|t| t.older_than).or(self.older_than),
            retain_last: own.and_then(|t| t.retain_last).or(self.retain_last),
            orphans_older_than: own
                .and_then(|t| t.orphans_older_than)
                .or(self.orphans_older_than),
            tables: BTreeMap::new(),
        }
    }
}

fn resolve_values(
    section: &str,
    older_than: Option<&String>,
    retain_last: Option<u32>,
    orphans_older_than: Option<&String>,
) -> Result<Maintenance> {
    let duration = |key: &str, text: Option<&String>| -> Result<Option<Duration>> {
        match text {
            Some(text) => Ok(Some(parse_duration(text).map_err(|e| {
                Error::Config(format!("{section} {key} = {text:?}: {e}"))
            })?)),
            None => Ok(None),
        }
    };
    if retain_last == Some(0) {
        return Err(Error::Config(format!(
            "{section} retain_last must be at least 1"
        )));
    }
    Ok(Maintenance {
        older_than: duration("older_than", older_than)?,
        retain_last,
        orphans_older_than: duration("orphans_older_than", orphans_older_than)?,
        tables: BTreeMap::new(),
    })
}

impl MaintenanceDefaults {
    fn resolve(&self) -> Result<Maintenance> {
        let mut out = resolve_values(
            "[maintenance]",
            self.older_than.as_ref(),
            self.retain_last,
            self.orphans_older_than.as_ref(),
        )?;
        for (name, values) in &self.table {
            let section = format!("[maintenance.table.\"{name}\"]");
            if name.parse::<sluice_lake::TableName>().is_err() {
                return Err(Error::Config(format!(
                    "{section}: `{name}` is not a NAMESPACE.TABLE name"
                )));
            }
            let resolved = resolve_values(
                &section,
                values.older_than.as_ref(),
                values.retain_last,
                values.orphans_older_than.as_ref(),
            )?;
            out.tables.insert(name.clone(), resolved);
        }
        Ok(out)
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct JournalConfig {
    #[serde(default = "default_journal")]
    location: String,
    #[serde(default = "default_ttl")]
    lease_ttl_secs: u64,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            location: default_journal(),
            lease_ttl_secs: default_ttl(),
        }
    }
}

fn default_journal() -> String {
    ".sluice/journal".to_string()
}

fn default_ttl() -> u64 {
    60
}

/// The loaded configuration and where it came from.
#[derive(Debug, Clone)]
pub struct Config {
    /// The lake and the journal.
    pub pipeline: PipelineConfig,
    /// `[run] author`: the author of the commits runs make, when they name none.
    pub author: Option<String>,
    /// The file it was read from, or the words for the embedded default.
    pub source: String,
    /// The directory relative paths are taken from: the file's, or the current directory.
    pub dir: PathBuf,
    /// `[[trigger]]`: the runs `sluice serve` starts when it hears of new files.
    pub triggers: Vec<Trigger>,
    /// `[maintenance]`: the defaults of `sluice maintain`.
    pub maintenance: Maintenance,
}

/// Finds the configuration: `--config`, then `SLUICE_CONFIG`, then `./sluice.toml`; without
/// any, the embedded default under `./.sluice/`.
pub fn load(explicit: Option<&Path>) -> Result<Config> {
    let from_env = std::env::var_os("SLUICE_CONFIG").map(PathBuf::from);
    let path = explicit.map(Path::to_path_buf).or(from_env).or_else(|| {
        let local = PathBuf::from("sluice.toml");
        local.exists().then_some(local)
    });
    match path {
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                config_error(
                    format_args!("cannot read the configuration file {}", path.display()),
                    e,
                )
            })?;
            let dir = path
                .canonicalize()
                .map_err(|e| config_error(format_args!("cannot resolve {}", path.display()), e))?
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("/"));
            let invalid = |e: &dyn std::fmt::Display| {
                config_error(
                    format_args!("invalid configuration in {}", path.display()),
                    e,
                )
            };
            let (pipeline, run, entries, maintenance) =
                parse_with_env(&text, &dir, |name| std::env::var(name).ok())
                    .map_err(|e| invalid(&e))?;
            let triggers = crate::trigger::triggers(entries, &dir, run.author.as_deref())
                .map_err(|e| invalid(&e))?;
            Ok(Config {
                pipeline,
                author: run.author,
                source: path.display().to_string(),
                dir,
                triggers,
                maintenance,
            })
        }
        None => {
            let dir = std::env::current_dir()
                .map_err(|e| config_error("cannot read the current directory", e))?;
            Ok(Config {
                pipeline: parse(DEFAULT_CONFIG, &dir)?,
                author: None,
                source: "embedded default (./.sluice)".to_string(),
                dir,
                triggers: Vec::new(),
                maintenance: Maintenance::default(),
            })
        }
    }
}

/// Parses a configuration whose relative paths are relative to `dir`; REST secrets missing
/// from the file come from `SLUICE_CATALOG_TOKEN` and `SLUICE_CATALOG_CREDENTIAL`.
pub fn parse(text: &str, dir: &Path) -> Result<PipelineConfig> {
    Ok(parse_with_env(text, dir, |name| std::env::var(name).ok())?.0)
}

fn parse_with_env(
    text: &str,
    dir: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(PipelineConfig, RunDefaults, Vec<TriggerEntry>, Maintenance)> {
    let file: FileConfig = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
    let maintenance = file.maintenance.resolve()?;
    for key in secrets_in_file(&file) {
        tracing::warn!(
            "the configuration file holds `{key}`: credentials belong in the environment (SLUICE_CATALOG_TOKEN, SLUICE_CATALOG_CREDENTIAL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), not in a file that is easily shared; see docs/deploy.md"
        );
    }
    let mut catalog = file.catalog;
    match &mut catalog {
        CatalogConfig::Sql { uri, warehouse, .. } => {
            *uri = absolute(dir, uri);
            *warehouse = location(dir, warehouse);
            if let Some(path) = warehouse.strip_prefix("file://") {
                std::fs::create_dir_all(path).map_err(|e| {
                    config_error(
                        format_args!("cannot create the warehouse directory {path}"),
                        e,
                    )
                })?;
            }
        }
        CatalogConfig::Rest {
            token, credential, ..
        } => {
            // Secrets may stay out of the file.
            let from_env = |name: &str| env(name).map(Secret::new);
            if token.is_none() {
                *token = from_env("SLUICE_CATALOG_TOKEN");
            }
            if credential.is_none() {
                *credential = from_env("SLUICE_CATALOG_CREDENTIAL");
            }
        }
    }
    let pipeline = PipelineConfig {
        lake: LakeConfig {
            catalog,
            storage: file.storage,
        },
        journal: location(dir, &file.journal.location),
        lease_ttl: Duration::from_secs(file.journal.lease_ttl_secs.max(1)),
    };
    Ok((pipeline, file.run, file.triggers, maintenance))
}

/// The keys of the file that hold credentials.
fn secrets_in_file(file: &FileConfig) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if let CatalogConfig::Rest {
        token, credential, ..
    } = &file.catalog
    {
        if token.is_some() {
            keys.push("token");
        }
        if credential.is_some() {
            keys.push("credential");
        }
    }
    let s3 = &file.storage.s3;
    if s3.secret_access_key.is_some() {
        keys.push("secret_access_key");
    }
    if s3.session_token.is_some() {
        keys.push("session_token");
    }
    keys
}

fn absolute(dir: &Path, path: &str) -> String {
    let p = Path::new(path);
    if p.is_absolute() {
        path.to_string()
    } else {
        dir.join(p).display().to_string()
    }
}

/// A URL stays as it is; a path becomes an absolute `file://` URL.
fn location(dir: &Path, value: &str) -> String {
    if value.contains("://") {
        value.to_string()
    } else {
        format!("file://{}", absolute(dir, value))
    }
}

/// Parses `90s`, `5m`, `1h`, `2d`, `500ms`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration such as 30s, 5m or 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => return Ok(std::time::Duration::from_millis(n)),
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => {
            return Err(format!(
                "`{s}`: unknown unit `{unit}` (use ms, s, m, h or d)"
            ));
        }
    };
    Ok(std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_resolves_relative_to_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let config = parse(DEFAULT_CONFIG, dir.path()).unwrap();
        match &config.lake.catalog {
            CatalogConfig::Sql {
                uri,
                warehouse,
                name,
            } => {
                assert_eq!(
                    uri,
                    &dir.path().join(".sluice/catalog.db").display().to_string()
                );
                assert_eq!(
                    warehouse,
                    &format!("file://{}", dir.path().join(".sluice/warehouse").display())
                );
                assert_eq!(name, "default");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            config.journal,
            format!("file://{}", dir.path().join(".sluice/journal").display())
        );
    }

    #[test]
    fn rest_secrets_come_from_the_file_or_else_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let env = |name: &str| match name {
            "SLUICE_CATALOG_TOKEN" => Some("env-token".to_string()),
            "SLUICE_CATALOG_CREDENTIAL" => Some("id:env-secret".to_string()),
            _ => None,
        };
        let rest = "[catalog]\ntype = \"rest\"\nuri = \"http://127.0.0.1:8181\"\n";
        let secrets = |text: &str| match parse_with_env(text, dir.path(), env)
            .unwrap()
            .0
            .lake
            .catalog
        {
            CatalogConfig::Rest {
                token, credential, ..
            } => (
                token.map(|t| t.expose().to_string()),
                credential.map(|c| c.expose().to_string()),
            ),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            secrets(rest),
            (
                Some("env-token".to_string()),
                Some("id:env-secret".to_string())
            )
        );
        let in_file = format!("{rest}token = \"file-token\"\n");
        assert_eq!(
            secrets(&in_file),
            (
                Some("file-token".to_string()),
                Some("id:env-secret".to_string())
            )
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = parse(
            "[catalog]\ntype = \"sql\"\nuri = \"x\"\nwarehouse = \"y\"\nbogus = 1\n",
            dir.path(),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("bogus"), "{err:#}");
    }

    #[test]
    fn the_run_section_names_the_author() {
        let dir = tempfile::tempdir().unwrap();
        let sql = "[catalog]\ntype = \"sql\"\nuri = \"c.db\"\nwarehouse = \"w\"\n";
        let author = |text: &str| parse_with_env(text, dir.path(), |_| None).map(|c| c.1.author);
        assert_eq!(author(sql).unwrap(), None);
        let with_run = format!("{sql}[run]\nauthor = \"etl-bot\"\n");
        assert_eq!(author(&with_run).unwrap().as_deref(), Some("etl-bot"));
        let typo = format!("{sql}[run]\nauthr = \"etl-bot\"\n");
        assert!(format!("{:#}", author(&typo).unwrap_err()).contains("authr"));
    }
    #[test]
    fn the_maintenance_section_gives_the_defaults_of_maintain() {
        let dir = tempfile::tempdir().unwrap();
        let sql = "[catalog]\ntype = \"sql\"\nuri = \"c.db\"\nwarehouse = \"w\"\n";
        let read = |text: &str| parse_with_env(text, dir.path(), |_| None).map(|c| c.3);
        assert_eq!(read(sql).unwrap(), Maintenance::default());
        let set = format!(
            "{sql}[maintenance]\nolder_than = \"7d\"\nretain_last = 100\norphans_older_than = \"1d\"\n"
        );
        assert_eq!(
            read(&set).unwrap(),
            Maintenance {
                older_than: Some(Duration::from_secs(7 * 24 * 3600)),
                retain_last: Some(100),
                orphans_older_than: Some(Duration::from_secs(24 * 3600)),
                tables: BTreeMap::new(),
            }
        );
        let per_table = format!(
            "{sql}[maintenance]\nolder_than = \"7d\"\n[maintenance.table.\"ns.events\"]\nretain_last = 5\n"
        );
        let m = read(&per_table).unwrap();
        assert_eq!(m.for_table("ns.events").retain_last, Some(5));
        assert_eq!(
            m.for_table("ns.events").older_than,
            Some(Duration::from_secs(7 * 24 * 3600))
        );
        assert_eq!(m.for_table("ns.other").retain_last, None);
        let bad_name = format!("{sql}[maintenance.table.events]\nretain_last = 5\n");
        assert!(format!("{:#}", read(&bad_name).unwrap_err()).contains("not a NAMESPACE.TABLE"));
        let bad = format!("{sql}[maintenance]\nolder_than = \"a week\"\n");
        assert!(format!("{:#}", read(&bad).unwrap_err()).contains("[maintenance] older_than"));
        let zero = format!("{sql}[maintenance]\nretain_last = 0\n");
        assert!(format!("{:#}", read(&zero).unwrap_err()).contains("at least 1"));
    }
}
