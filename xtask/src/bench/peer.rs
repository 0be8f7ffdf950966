//! The pyiceberg peer (`wap_pyiceberg.py`): its files, its audit as sluice checks, and the line
//! it reports.

use std::path::{Path, PathBuf};
use std::process::Output;

use anyhow::{Context, Result, bail};

use super::tail;
use super::timing::{Measurement, Steps};

/// The peer's audit, expressed as sluice checks: the table is fresh, so uniqueness over the table
/// and over the branch's new rows is the same condition.
pub(super) const CHECKS_TOML: &str = r#"# The audit of wap_pyiceberg.py, as sluice checks.
[[check]]
kind = "not_null"
column = "user_id"

[[check]]
kind = "unique"
column = "event_id"
scope = "table"

[[check]]
kind = "range"
column = "amount"
min = 0

[[check]]
kind = "accepted_values"
column = "event_type"
values = ["view", "click", "add_to_cart", "purchase", "search"]
"#;

/// The table the peer always writes.
pub(super) const PEER_TABLE: &str = "ns.events";

pub(crate) fn peer_file(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{} not found; point --peer-dir at the directory holding gen_events.py and \
             wap_pyiceberg.py",
            path.display()
        );
    }
    path.canonicalize()
        .with_context(|| format!("cannot resolve {}", path.display()))
}

pub(super) fn peer_measurement(output: &Output, wall_s: f64, peak_kib: u64) -> Result<Measurement> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "the peer failed ({}):\n{}{}",
            output.status,
            tail(&output.stdout, 10),
            tail(&output.stderr, 20)
        );
    }
    let (rows, steps) = parse_peer_line(&stdout)?;
    Ok(Measurement {
        wall_s,
        peak_kib,
        rows,
        steps,
        commits: None,
        copied_as_is: None,
        partition_files: None,
    })
}

/// Rows and step seconds from the peer's
/// `published rows=N files=F write=1.23s audit=0.45s publish=0.01s total=1.69s` line.
fn parse_peer_line(stdout: &str) -> Result<(u64, Steps)> {
    let line = stdout
        .lines()
        .rev()
        .find(|line| line.starts_with("published "))
        .with_context(|| format!("the peer printed no `published` line:\n{stdout}"))?;
    let mut rows = None;
    let mut steps = Vec::new();
    for (key, value) in line
        .split_whitespace()
        .filter_map(|word| word.split_once('='))
    {
        match key {
            "rows" => rows = Some(value.parse().context("rows= is not a number")?),
            "write" | "audit" | "publish" | "total" => {
                let seconds = value.strip_suffix('s').unwrap_or(value);
                steps.push((
                    key.to_string(),
                    seconds
                        .parse()
                        .with_context(|| format!("{key}={value} is not seconds"))?,
                ));
            }
            _ => {}
        }
    }
    let rows = rows.with_context(|| format!("no rows= in {line:?}"))?;
    Ok((rows, steps))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::timing::step;

    #[test]
    fn peer_line_gives_rows_and_steps() {
        let stdout = "some warning\npublished rows=3000000 files=3 write=2.51s audit=1.02s \
                      publish=0.03s total=3.56s\n";
        let (rows, steps) = parse_peer_line(stdout).unwrap();
        assert_eq!(rows, 3_000_000);
        assert_eq!(step(&steps, "write"), Some(2.51));
        assert_eq!(step(&steps, "audit"), Some(1.02));
        assert_eq!(step(&steps, "total"), Some(3.56));
        assert!(parse_peer_line("AUDIT FAILED ['unique(event_id)'] rows=5").is_err());
    }

    #[test]
    fn the_checks_file_holds_the_peers_four_audits() {
        for needle in [
            "kind = \"not_null\"\ncolumn = \"user_id\"",
            "kind = \"unique\"\ncolumn = \"event_id\"\nscope = \"table\"",
            "kind = \"range\"\ncolumn = \"amount\"\nmin = 0",
            "values = [\"view\", \"click\", \"add_to_cart\", \"purchase\", \"search\"]",
        ] {
            assert!(CHECKS_TOML.contains(needle), "{needle}");
        }
        assert_eq!(CHECKS_TOML.matches("[[check]]").count(), 4);
    }
}
