//! Branch and tag names, and how a ref written by a user resolves to a snapshot.
//!
//! A ref is written as one of:
//!
//! * a branch or tag name: `main`, `sluice/0193…`, `v1`;
//! * a snapshot id: `5125346238493624000`;
//! * any of those followed by `@<RFC 3339 timestamp>`: `main@2026-11-25T10:00:00Z` is the
//!   snapshot the ref pointed at then. A time without fractional seconds stands for the end of
//!   that second (Iceberg records milliseconds), so a commit shown at `10:00:00` is included.
//!
//! For `main`, "pointed at then" comes from the table's snapshot log, which records every move
//! of `main` (a fast-forward at 10:05 to a snapshot written at 10:01 is visible from 10:05, not
//! from 10:01). Other branches keep no log in Iceberg metadata, so for them the answer is the
//! newest ancestor of the branch head committed at or before the time.

use std::fmt;

use chrono::{DateTime, Utc};
use iceberg::spec::{SnapshotReference, TableMetadata};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The name of the main branch.
pub const MAIN: &str = "main";

/// A validated branch or tag name.
///
/// Rules: not empty, at most 255 bytes, no control characters, no `..`, no leading `/`,
/// no `@` (it separates a ref from a timestamp), and not all digits (that reads as a snapshot id).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RefName(String);

impl RefName {
    /// Validates a name.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let invalid = |reason: &'static str| Error::InvalidRefName {
            name: name.escape_default().to_string(),
            reason,
        };
        if name.is_empty() {
            return Err(invalid("a ref name cannot be empty"));
        }
        if name.len() > 255 {
            return Err(invalid("a ref name can have at most 255 bytes"));
        }
        if name.chars().any(char::is_control) {
            return Err(invalid("control characters are not allowed"));
        }
        if name.contains("..") {
            return Err(invalid("`..` is not allowed"));
        }
        if name.starts_with('/') {
            return Err(invalid("a ref name cannot start with `/`"));
        }
        if name.ends_with('/') {
            return Err(invalid("a ref name cannot end with `/`"));
        }
        if name.contains('@') {
            return Err(invalid(
                "`@` is not allowed (it separates a ref from a timestamp)",
            ));
        }
        if name.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("an all-digit name would read as a snapshot id"));
        }
        Ok(RefName(name))
    }

    /// The main branch.
    pub fn main() -> Self {
        RefName(MAIN.to_string())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is `main`.
    pub fn is_main(&self) -> bool {
        self.0 == MAIN
    }
}

impl TryFrom<String> for RefName {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        RefName::new(value)
    }
}

impl From<RefName> for String {
    fn from(value: RefName) -> Self {
        value.0
    }
}

impl fmt::Display for RefName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for RefName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        RefName::new(s)
    }
}

/// A ref as a user writes it (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefSpec {
    /// A branch or tag name (or, if no such ref exists and it is all digits, a snapshot id).
    Named(String),
    /// A snapshot id.
    Snapshot(i64),
    /// A ref's state at a point in time.
    AsOf(Box<RefSpec>, DateTime<Utc>),
}

impl RefSpec {
    /// `main`.
    pub fn main() -> Self {
        RefSpec::Named(MAIN.to_string())
    }

    /// Parses `name`, `snapshot-id`, or either followed by `@<RFC 3339 timestamp>`.
    pub fn parse(s: &str) -> Result<Self> {
        if let Some((base, time)) = s.rsplit_once('@') {
            let at = parse_time(time).ok_or_else(|| Error::InvalidRefName {
                name: s.escape_default().to_string(),
                reason: "the part after `@` must be a time such as 2026-11-25T10:00:00Z or \
                         2026-11-25 10:00:00.123 (UTC when no zone is given)",
            })?;
            return Ok(RefSpec::AsOf(Box::new(RefSpec::parse(base)?), at));
        }
        if s.is_empty() {
            return Err(Error::InvalidRefName {
                name: String::new(),
                reason: "a ref cannot be empty",
            });
        }
        if s.bytes().all(|b| b.is_ascii_digit())
            && let Ok(id) = s.parse::<i64>()
        {
            return Ok(RefSpec::Snapshot(id));
        }
        Ok(RefSpec::Named(RefName::new(s)?.0))
    }
}

/// A time after `@`: RFC 3339 (`2026-11-25T10:00:00.123Z`, any offset), or the same with a
/// space instead of the `T` and without a zone, as `sluice log` used to print it, read as UTC.
/// A time written to the second means the whole second: `sluice log` shows commit times to the
/// millisecond, and a time copied from it, or cut to the second, must include the commit shown.
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    let with_t = match text.as_bytes().get(10) {
        Some(b' ') | Some(b't') => format!("{}T{}", &text[..10], text[11..].trim_start()),
        _ => text.to_string(),
    };
    let at = DateTime::parse_from_rfc3339(&with_t)
        .map(|at| at.with_timezone(&Utc))
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(&with_t, "%Y-%m-%dT%H:%M:%S%.f")
                .map(|naive| naive.and_utc())
        })
        .ok()?;
    let fraction = with_t.get(19..).is_some_and(|rest| rest.starts_with('.'));
    Some(if fraction {
        at
    } else {
        at + chrono::Duration::milliseconds(999)
    })
}

impl fmt::Display for RefSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefSpec::Named(n) => f.write_str(n),
            RefSpec::Snapshot(id) => write!(f, "{id}"),
            RefSpec::AsOf(base, at) => write!(f, "{base}@{}", at.to_rfc3339()),
        }
    }
}

impl From<&RefName> for RefSpec {
    fn from(value: &RefName) -> Self {
        RefSpec::Named(value.0.clone())
    }
}

/// Kind of a named ref.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefKind {
    /// A movable branch.
    Branch,
    /// A fixed tag.
    Tag,
}

impl RefKind {
    /// The word users read: `branch` or `tag`.
    pub fn as_str(self) -> &'static str {
        match self {
            RefKind::Branch => "branch",
            RefKind::Tag => "tag",
        }
    }
}

impl fmt::Display for RefKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The one check every operation on a named ref of a given kind makes: the ref is of that
/// kind, so a command meant for tags never moves or deletes a branch, nor the other way round.
pub(crate) fn expect_kind(
    table: &str,
    name: &RefName,
    reference: &SnapshotReference,
    expected: RefKind,
) -> Result<()> {
    let found = ref_kind(reference);
    if found == expected {
        return Ok(());
    }
    Err(Error::WrongRefKind {
        table: table.to_string(),
        name: name.to_string(),
        expected,
        found,
    })
}

/// A branch or tag and the snapshot it points at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefInfo {
    /// The name.
    pub name: String,
    /// Branch or tag.
    pub kind: RefKind,
    /// The snapshot it points at.
    pub snapshot_id: i64,
}

pub(crate) fn ref_kind(reference: &SnapshotReference) -> RefKind {
    if reference.is_branch() {
        RefKind::Branch
    } else {
        RefKind::Tag
    }
}

/// Every branch and tag of a table. (iceberg's `TableMetadata` does not expose its ref map,
/// so it is read back from the metadata's own serialised form.)
pub(crate) fn all(
    metadata: &TableMetadata,
) -> std::collections::HashMap<String, SnapshotReference> {
    serde_json::to_value(metadata)
        .ok()
        .and_then(|mut v| v.get_mut("refs").map(serde_json::Value::take))
        .and_then(|refs| serde_json::from_value(refs).ok())
        .unwrap_or_default()
}

/// Resolves a ref against table metadata to a snapshot id (`None`: a branch with no snapshot,
/// i.e. `main` of a table nothing was ever committed to).
pub(crate) fn resolve(
    table: &str,
    metadata: &TableMetadata,
    spec: &RefSpec,
) -> Result<Option<i64>> {
    let not_found = |reason: String| Error::RefNotFound {
        table: table.to_string(),
        reference: spec.to_string(),
        reason,
    };
    match spec {
        RefSpec::Named(name) => {
            if let Some(snapshot) = metadata.snapshot_for_ref(name) {
                return Ok(Some(snapshot.snapshot_id()));
            }
            if name == MAIN {
                return Ok(None);
            }
            Err(not_found(format!(
                "no branch or tag of that name (existing: {})",
                ref_names(metadata)
            )))
        }
        RefSpec::Snapshot(id) => {
            if metadata.snapshot_by_id(*id).is_some() {
                Ok(Some(*id))
            } else {
                Err(not_found("no snapshot with that id".to_string()))
            }
        }
        RefSpec::AsOf(base, at) => {
            let at_ms = at.timestamp_millis();
            let mut head_of_main = None;
            if matches!(base.as_ref(), RefSpec::Named(n) if n == MAIN) {
                // The snapshot log records each move of main with the time it happened.
                let history = metadata.history();
                if let Some(e) = history.iter().rev().find(|e| e.timestamp_ms <= at_ms) {
                    return Ok(Some(e.snapshot_id));
                }
                // Before the oldest move the log still holds (engines trim it when they
                // expire snapshots), main's ancestors are all there is to go by.
                match history.first() {
                    Some(oldest) => head_of_main = Some(oldest.snapshot_id),
                    None => {
                        return Err(not_found(format!(
                            "main had no snapshot at {}",
                            at.to_rfc3339()
                        )));
                    }
                }
            }
            let head = match head_of_main {
                Some(head) => head,
                None => resolve(table, metadata, base)?
                    .ok_or_else(|| not_found("the ref has no snapshot".to_string()))?,
            };
            let mut cursor = metadata.snapshot_by_id(head);
            while let Some(snapshot) = cursor {
                if snapshot.timestamp_ms() <= at_ms {
                    return Ok(Some(snapshot.snapshot_id()));
                }
                cursor = snapshot
                    .parent_snapshot_id()
                    .and_then(|p| metadata.snapshot_by_id(p));
            }
            Err(not_found(if head_of_main.is_some() {
                format!("main had no snapshot at {}", at.to_rfc3339())
            } else {
                format!(
                    "no snapshot of it was committed at or before {}",
                    at.to_rfc3339()
                )
            }))
        }
    }
}

fn ref_names(metadata: &TableMetadata) -> String {
    let refs = all(metadata);
    let mut names: Vec<&str> = refs.keys().map(String::as_str).collect();
    names.sort_unstable();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// When `ref_name` reached each of `ancestry` (newest first, as [`ancestry`] returns it), in
/// milliseconds: a time at or after it reads a state of the ref that includes the snapshot.
///
/// For `main` this is when main moved onto the snapshot, or onto a descendant of it when main
/// never pointed at the snapshot itself (a fast-forward over several commits), from the table's
/// snapshot log; a snapshot older than the oldest move the log still holds keeps its own commit
/// time. `not_after` bounds the moves looked at (the time of `main@<time>`). Other refs keep no
/// log, and their `@<time>` goes by commit times, so those are what they reached them at.
pub(crate) fn reached_at(
    metadata: &TableMetadata,
    ref_name: &str,
    not_after: Option<i64>,
    ancestry: &[i64],
) -> Vec<i64> {
    let own = |id: i64| metadata.snapshot_by_id(id).map_or(0, |s| s.timestamp_ms());
    if ref_name != MAIN {
        return ancestry.iter().map(|id| own(*id)).collect();
    }
    let history = metadata.history();
    let logged_since = history.first().map_or(i64::MAX, |e| e.timestamp_ms);
    // Each snapshot's moves, oldest first (the log is in time order).
    let mut moves: std::collections::HashMap<i64, Vec<i64>> = std::collections::HashMap::new();
    for entry in history {
        moves
            .entry(entry.snapshot_id)
            .or_default()
            .push(entry.timestamp_ms);
    }
    let mut bound = not_after.unwrap_or(i64::MAX);
    let mut later: Option<i64> = None;
    ancestry
        .iter()
        .map(|&id| {
            let moved = moves
                .get(&id)
                .and_then(|times| times.iter().rev().find(|t| **t <= bound).copied());
            let at = match (moved, later) {
                (Some(at), _) => at,
                (None, Some(child)) if own(id) >= logged_since => child,
                _ => own(id),
            };
            bound = bound.min(at);
            later = Some(at);
            at
        })
        .collect()
}

/// The snapshot ids from `head` back to the root, newest first.
pub(crate) fn ancestry(metadata: &TableMetadata, head: Option<i64>) -> Vec<i64> {
    let mut out = Vec::new();
    let mut cursor = head.and_then(|h| metadata.snapshot_by_id(h));
    while let Some(snapshot) = cursor {
        out.push(snapshot.snapshot_id());
        cursor = snapshot
            .parent_snapshot_id()
            .and_then(|p| metadata.snapshot_by_id(p));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        for good in ["main", "sluice/0193abcd", "feature-1", "v1.2", "a/b/c"] {
            RefName::new(good).unwrap();
        }
        let long = "x".repeat(256);
        for bad in [
            "",
            "/abs",
            "a..b",
            "tab\there",
            "nl\n",
            "a@b",
            "12345",
            long.as_str(),
            "x/",
        ] {
            let err = RefName::new(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidRefName { .. }), "{bad}: {err}");
        }
        assert!(RefName::new("x".repeat(255)).is_ok());
    }

    #[test]
    fn specs_parse() {
        assert_eq!(RefSpec::parse("main").unwrap(), RefSpec::main());
        assert_eq!(RefSpec::parse("42").unwrap(), RefSpec::Snapshot(42));
        let spec = RefSpec::parse("main@2026-11-25T10:00:00Z").unwrap();
        match spec {
            RefSpec::AsOf(base, at) => {
                assert_eq!(*base, RefSpec::main());
                // A time to the second stands for the whole second.
                assert_eq!(at.to_rfc3339(), "2026-11-25T10:00:00.999+00:00");
            }
            other => panic!("{other:?}"),
        }
        match RefSpec::parse("main@2026-11-25T10:00:00.250Z").unwrap() {
            RefSpec::AsOf(_, at) => assert_eq!(at.to_rfc3339(), "2026-11-25T10:00:00.250+00:00"),
            other => panic!("{other:?}"),
        }
        assert!(RefSpec::parse("main@yesterday").is_err());
        assert!(RefSpec::parse("a..b").is_err());
    }
}
