//! Sources: the parquet files under a URL and the run key.

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sluice_lake::{Lake, TableName};

use crate::error::{Error, Result};

/// A source file.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceFile {
    /// Full location (`file:///…`, `s3://bucket/…`).
    pub location: String,
    /// Size in bytes.
    pub size: u64,
    /// The store's entity tag, when it has one.
    pub etag: Option<String>,
    /// When the file was last written (used to batch a backfill by time window).
    #[serde(default)]
    pub modified: Option<chrono::DateTime<chrono::Utc>>,
}

/// Lists the `*.parquet` files under `source` (a directory, a prefix, or a single file),
/// sorted by location. Other files are ignored.
pub async fn list_source(lake: &Lake, source: &str) -> Result<Vec<SourceFile>> {
    let url = sluice_lake::storage::parse_location(source)?;
    let (store, prefix) = lake.stores().resolve(source)?;
    let base = match url.scheme() {
        "file" => "file://".to_string(),
        scheme => format!("{scheme}://{}", url.host_str().unwrap_or_default()),
    };
    let location_of = |path: &object_store::path::Path| format!("{base}/{path}");
    // A single file?
    if source.to_ascii_lowercase().ends_with(".parquet")
        && let Ok(meta) = store.head(&prefix).await
    {
        return Ok(vec![SourceFile {
            location: location_of(&meta.location),
            size: meta.size,
            etag: meta.e_tag,
            modified: Some(meta.last_modified),
        }]);
    }
    let listing: Vec<object_store::ObjectMeta> = store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| Error::Source {
            source_url: source.to_string(),
            reason: e.to_string(),
        })?;
    let mut files: Vec<SourceFile> = listing
        .into_iter()
        .filter(|m| {
            m.location.filename().is_some_and(|f| {
                f.to_ascii_lowercase().ends_with(".parquet") && !f.starts_with('.')
            })
        })
        .map(|m| SourceFile {
            location: location_of(&m.location),
            size: m.size,
            etag: m.e_tag,
            modified: Some(m.last_modified),
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Keys of Hive-style directories (`date=2026-12-01/`, as Spark and Hive write partitioned
/// output) below `source` (the run's source, as [`source_location`] gives it) in the files'
/// locations that the files themselves do not hold as columns, each with one directory that
/// names it. Such values live only in the paths: a run imports the columns inside the files.
pub(crate) fn directory_only_columns<'a>(
    source: &str,
    files: impl IntoIterator<Item = (&'a str, &'a arrow_schema::Schema)>,
) -> Vec<(String, String)> {
    let without_scheme = |s: &'a str| s.split_once("://").map_or(s, |(_, p)| p);
    let root = source
        .split_once("://")
        .map_or(source, |(_, p)| p)
        .trim_end_matches('/');
    let mut found: Vec<(String, String)> = Vec::new();
    for (location, schema) in files {
        let path = without_scheme(location);
        let below = path.strip_prefix(root).unwrap_or(path);
        let mut segments: Vec<&str> = below.split('/').collect();
        segments.pop();
        for segment in segments {
            let Some((key, value)) = segment.split_once('=') else {
                continue;
            };
            let plausible = !key.is_empty()
                && !value.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if plausible
                && schema.field_with_name(key).is_err()
                && !found.iter().any(|(k, _)| k == key)
            {
                found.push((key.to_string(), segment.to_string()));
            }
        }
    }
    found
}

/// The size, entity tag and modification time of one source file, as the store has them now;
/// `None` when there is no object at `location` (a URL).
pub async fn head_file(lake: &Lake, location: &str) -> Result<Option<SourceFile>> {
    let (store, path) = lake.stores().resolve(location)?;
    match store.head(&path).await {
        Ok(meta) => Ok(Some(SourceFile {
            location: location.to_string(),
            size: meta.size,
            etag: meta.e_tag,
            modified: Some(meta.last_modified),
        })),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(Error::Source {
            source_url: location.to_string(),
            reason: e.to_string(),
        }),
    }
}

/// One worker's share of a source: `--shard K/N` takes the files whose location hashes to `K`
/// modulo `N` (FNV-1a, 64 bit). Deterministic and per file, so N workers given the same source
/// split it with no file taken twice and none left, and the split is stable as new files
/// arrive (a file's shard never changes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This worker's index, from 0.
    pub index: u32,
    /// How many workers share the source.
    pub count: u32,
}

impl Shard {
    /// Whether this shard owns the file at `location`.
    pub fn owns(&self, location: &str) -> bool {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in location.bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash % u64::from(self.count) == u64::from(self.index)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let usage = || {
            format!(
                "`{text}` is not a shard: write K/N, this worker's index K (from 0) of N workers, \
                 e.g. 0/4 (in a Kubernetes Indexed Job: $JOB_COMPLETION_INDEX/N)"
            )
        };
        let (k, n) = text.trim().split_once('/').ok_or_else(usage)?;
        let index: u32 = k.trim().parse().map_err(|_| usage())?;
        let count: u32 = n.trim().parse().map_err(|_| usage())?;
        if count == 0 || index >= count {
            return Err(format!(
                "shard {index}/{count}: the index must be below the number of shards (0 to {})",
                count.saturating_sub(1)
            ));
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The run key: a digest of the file set (locations, sizes and etags), independent of order.
pub fn run_key(table: &TableName, files: &[SourceFile]) -> String {
    let mut lines: Vec<String> = files
        .iter()
        .map(|f| {
            format!(
                "{}\t{}\t{}",
                f.location,
                f.size,
                f.etag.as_deref().unwrap_or("")
            )
        })
        .collect();
    lines.sort();
    let mut hasher = Sha256::new();
    hasher.update(table.to_string().as_bytes());
    for line in lines {
        hasher.update(b"\n");
        hasher.update(line.as_bytes());
    }
    hex::encode(&hasher.finalize()[..16])
}

/// A source as a run takes it: a URL (`s3://…`, `file://…`) stays as it is; a local path becomes
/// absolute. A path that does not exist, or a local file that is not parquet, is
/// [`Error::InvalidSource`].
pub fn source_location(source: &str) -> Result<String> {
    if source.contains("://") {
        return Ok(source.to_string());
    }
    let invalid = |reason: String| Error::InvalidSource {
        source_url: source.to_string(),
        reason,
    };
    let path = std::path::Path::new(source);
    let absolute = path.canonicalize().map_err(|_| {
        invalid(
            "does not exist; give a directory of parquet files or a URL such as \
             s3://bucket/prefix"
                .to_string(),
        )
    })?;
    if absolute.is_file() && !is_parquet(&absolute) {
        return Err(invalid(
            "is not a parquet file (it does not start with the PAR1 marker); give a parquet \
             file or a directory of them"
                .to_string(),
        ));
    }
    Ok(absolute.display().to_string())
}

/// Whether a local file starts with parquet's magic bytes.
fn is_parquet(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| &magic == b"PAR1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_hive_style_directories_missing_from_the_files_are_named() {
        use arrow_schema::{DataType, Field, Schema};
        let with_day = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("day", DataType::Utf8, true),
        ]);
        let plain = Schema::new(vec![Field::new("id", DataType::Int64, true)]);
        let files = [
            (
                "s3://raw/events/day=2026-12-01/country=IT/part-00000.parquet",
                &with_day,
            ),
            (
                "s3://raw/events/a=b/day=2026-12-02/country=DE/part-00001.parquet",
                &plain,
            ),
            ("s3://raw/events/x=/y/part=1.parquet", &plain),
        ];
        assert_eq!(
            directory_only_columns("s3://raw/events/", files),
            vec![
                ("country".to_string(), "country=IT".to_string()),
                ("a".to_string(), "a=b".to_string()),
                ("day".to_string(), "day=2026-12-02".to_string()),
            ]
        );
        assert!(directory_only_columns("s3://raw/events", []).is_empty());
        // Directories at or above the source are the user's choice of source, not columns.
        let local = [("file:///data/env=prod/events/part-00000.parquet", &plain)];
        assert!(directory_only_columns("/data/env=prod/events", local).is_empty());
        let chosen = [("s3://raw/events/day=2026-12-01/part-00000.parquet", &plain)];
        assert!(directory_only_columns("s3://raw/events/day=2026-12-01", chosen).is_empty());
    }

    #[test]
    fn shards_split_a_source_with_every_file_in_exactly_one() {
        let shards: Vec<Shard> = (0..4).map(|k| format!("{k}/4").parse().unwrap()).collect();
        let mut owned = [0usize; 4];
        for i in 0..1000 {
            let location = format!("s3://raw/events/2026/12/06/part-{i:05}.parquet");
            let owners: Vec<usize> = (0..4).filter(|&k| shards[k].owns(&location)).collect();
            assert_eq!(owners.len(), 1, "{location}");
            owned[owners[0]] += 1;
        }
        assert!(owned.iter().all(|&n| n > 150), "{owned:?}");
        assert!("0/1".parse::<Shard>().unwrap().owns("anything"));
        for bad in ["4/4", "1", "a/b", "0/0", "-1/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert!("4/4".parse::<Shard>().unwrap_err().contains("0 to 3"));
    }

    #[test]
    fn run_key_ignores_order_and_sees_changes() {
        let t: TableName = "ns.t".parse().unwrap();
        let a = SourceFile {
            location: "file:///a.parquet".into(),
            size: 1,
            etag: None,
            modified: None,
        };
        let b = SourceFile {
            location: "file:///b.parquet".into(),
            size: 2,
            etag: None,
            modified: None,
        };
        assert_eq!(
            run_key(&t, &[a.clone(), b.clone()]),
            run_key(&t, &[b.clone(), a.clone()])
        );
        let b2 = SourceFile {
            size: 3,
            ..b.clone()
        };
        assert_ne!(run_key(&t, &[a.clone(), b]), run_key(&t, &[a.clone(), b2]));
        let other: TableName = "ns.u".parse().unwrap();
        assert_ne!(run_key(&t, std::slice::from_ref(&a)), run_key(&other, &[a]));
    }
}
