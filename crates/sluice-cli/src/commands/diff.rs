//! `sluice diff`: what one ref of a table holds that another does not (an audit branch against
//! `main`, a tag against today), from metadata only; as text, markdown for a review, or JSON.

use anyhow::{Result, bail};
use sluice_lake::{ColumnSide, RefDiff};

use super::{Ctx, parse_target};
use crate::cli::DiffFormat;
use crate::exit_code;
use crate::render::{Fit, table};

pub(super) async fn diff(ctx: &Ctx<'_>, from: &str, to: &str, format: DiffFormat) -> Result<u8> {
    let (from_table, from_spec) = parse_target(from)?;
    let (to_table, to_spec) = parse_target(to)?;
    if from_table != to_table {
        bail!(
            "diff compares two refs of one table, not {from_table} and {to_table}: for example \
             `sluice diff {from_table}@main {from_table}@<branch>`"
        );
    }
    let pipeline = ctx.pipeline().await?;
    let diff = pipeline
        .lake()
        .diff(&from_table, &from_spec, &to_spec)
        .await?;
    if ctx.cli.json {
        ctx.print_json(&serde_json::to_value(&diff)?);
    } else {
        match format {
            DiffFormat::Text => out!("{}", text(&diff)),
            DiffFormat::Markdown => out!("{}", markdown(&diff)),
        }
    }
    Ok(exit_code::SUCCESS)
}

fn signed(n: i128) -> String {
    if n > 0 {
        format!("+{n}")
    } else {
        n.to_string()
    }
}

fn snapshot(id: Option<i64>) -> String {
    id.map_or_else(|| "no snapshot".to_string(), |id| format!("snapshot {id}"))
}

fn percent(from: u64, to: u64) -> String {
    if from == 0 {
        return String::new();
    }
    let change = (to as f64 - from as f64) / from as f64 * 100.0;
    format!(" ({change:+.1}%)")
}

/// The lines every format shares: files, schema, audit.
fn findings(d: &RefDiff, code: impl Fn(&str) -> String) -> Vec<String> {
    let mut out = vec![format!(
        "files: {} added ({} rows), {} removed ({} rows)",
        d.files_added,
        signed(i128::from(d.rows_added)),
        d.files_removed,
        signed(-i128::from(d.rows_removed)),
    )];
    if d.schema_changes.is_empty() {
        out.push("schema: unchanged".to_string());
    }
    for c in &d.schema_changes {
        out.push(match c.change.as_str() {
            "added" => format!(
                "schema: column {} added ({})",
                code(&c.column),
                c.after.clone().unwrap_or_default()
            ),
            "dropped" => format!(
                "schema: column {} dropped (was {})",
                code(&c.column),
                c.before.clone().unwrap_or_default()
            ),
            "renamed" => format!(
                "schema: column {} renamed to {}",
                code(c.before.as_deref().unwrap_or_default()),
                code(&c.column)
            ),
            _ => format!(
                "schema: column {} changed type from {} to {}",
                code(&c.column),
                c.before.clone().unwrap_or_default(),
                c.after.clone().unwrap_or_default()
            ),
        });
    }
    let audit = d.to.audit.as_deref().unwrap_or("no audit recorded");
    out.push(match &d.to.run_id {
        Some(run) => format!("audit of {}: {audit} (run {run})", code(&d.to.reference)),
        None => format!("audit of {}: {audit}", code(&d.to.reference)),
    });
    if d.from.delete_files + d.to.delete_files > 0 {
        out.push(format!(
            "note: delete files ({} and {}) are not subtracted from the row counts",
            d.from.delete_files, d.to.delete_files
        ));
    }
    out
}

fn cell(side: &Option<ColumnSide>, get: impl Fn(&ColumnSide) -> Option<String>) -> String {
    match side {
        None => "—".to_string(),
        Some(s) => get(s).unwrap_or_default(),
    }
}

fn column_rows(d: &RefDiff) -> Vec<Vec<String>> {
    d.columns
        .iter()
        .map(|c| {
            vec![
                c.column.clone(),
                cell(&c.from, |s| s.nulls.map(|n| n.to_string())),
                cell(&c.to, |s| s.nulls.map(|n| n.to_string())),
                cell(&c.from, |s| s.min.clone()),
                cell(&c.to, |s| s.min.clone()),
                cell(&c.from, |s| s.max.clone()),
                cell(&c.to, |s| s.max.clone()),
            ]
        })
        .collect()
}

const COLUMN_HEADER: [&str; 7] = [
    "COLUMN", "NULLS A", "NULLS B", "MIN A", "MIN B", "MAX A", "MAX B",
];

/// The terminal form.
pub(crate) fn text(d: &RefDiff) -> String {
    let mut out = format!(
        "{}: A = {} ({}), B = {} ({})\n\n",
        d.table,
        d.from.reference,
        snapshot(d.from.snapshot_id),
        d.to.reference,
        snapshot(d.to.snapshot_id)
    );
    out.push_str(&table(
        &["", "A", "B", "CHANGE"],
        &[
            vec![
                "rows".into(),
                d.from.rows.to_string(),
                d.to.rows.to_string(),
                format!(
                    "{}{}",
                    signed(i128::from(d.to.rows) - i128::from(d.from.rows)),
                    percent(d.from.rows, d.to.rows)
                ),
            ],
            vec![
                "data files".into(),
                d.from.files.to_string(),
                d.to.files.to_string(),
                signed(i128::from(d.to.files) - i128::from(d.from.files)),
            ],
        ],
        Fit {
            whole: &[0, 1, 2, 3],
            droppable: &[],
        },
    ));
    out.push('\n');
    for line in findings(d, |s| format!("`{s}`")) {
        out.push_str(&line);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&table(
        &COLUMN_HEADER,
        &column_rows(d),
        Fit {
            whole: &[0],
            droppable: &[5, 6],
        },
    ));
    out
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

/// A markdown block for a pull-request comment or a chat message.
pub(crate) fn markdown(d: &RefDiff) -> String {
    let mut out = format!(
        "#### `{}`: `{}` → `{}`\n\n| | `{}` | `{}` | change |\n|---|---:|---:|---:|\n",
        d.table, d.from.reference, d.to.reference, d.from.reference, d.to.reference
    );
    out.push_str(&format!(
        "| snapshot | {} | {} | |\n",
        d.from
            .snapshot_id
            .map_or_else(|| "—".to_string(), |s| s.to_string()),
        d.to.snapshot_id
            .map_or_else(|| "—".to_string(), |s| s.to_string()),
    ));
    out.push_str(&format!(
        "| rows | {} | {} | {}{} |\n",
        d.from.rows,
        d.to.rows,
        signed(i128::from(d.to.rows) - i128::from(d.from.rows)),
        percent(d.from.rows, d.to.rows)
    ));
    out.push_str(&format!(
        "| data files | {} | {} | {} |\n\n",
        d.from.files,
        d.to.files,
        signed(i128::from(d.to.files) - i128::from(d.from.files))
    ));
    for line in findings(d, |s| format!("`{s}`")) {
        let (head, rest) = line.split_once(": ").unwrap_or(("", &line));
        out.push_str(&format!("- **{head}**: {rest}\n"));
    }
    out.push_str("\n| column | nulls A | nulls B | min A | min B | max A | max B |\n");
    out.push_str("|---|---:|---:|---|---|---|---|\n");
    for row in column_rows(d) {
        let cells: Vec<String> = row.iter().map(|c| md_escape(c)).collect();
        out.push_str(&format!(
            "| `{}` | {} |\n",
            cells[0],
            cells[1..].join(" | ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use sluice_lake::{ColumnDiff, DiffSide, SchemaChange};

    use super::*;

    fn sample() -> RefDiff {
        RefDiff {
            table: "ns.events".into(),
            from: DiffSide {
                reference: "main".into(),
                snapshot_id: Some(11),
                rows: 1000,
                files: 2,
                delete_files: 0,
                audit: Some("passed: 2 checks".into()),
                run_id: Some("r1".into()),
                message: None,
            },
            to: DiffSide {
                reference: "sluice/r2".into(),
                snapshot_id: Some(12),
                rows: 1250,
                files: 3,
                delete_files: 0,
                audit: Some("failed: unique(event_id)".into()),
                run_id: Some("r2".into()),
                message: None,
            },
            files_added: 1,
            rows_added: 250,
            files_removed: 0,
            rows_removed: 0,
            schema_changes: vec![SchemaChange {
                change: "added".into(),
                column: "country".into(),
                before: None,
                after: Some("string".into()),
            }],
            columns: vec![
                ColumnDiff {
                    column: "event_id".into(),
                    from: Some(ColumnSide {
                        nulls: Some(0),
                        min: Some("0".into()),
                        max: Some("999".into()),
                    }),
                    to: Some(ColumnSide {
                        nulls: Some(0),
                        min: Some("0".into()),
                        max: Some("1249".into()),
                    }),
                },
                ColumnDiff {
                    column: "country".into(),
                    from: None,
                    to: Some(ColumnSide {
                        nulls: Some(1000),
                        min: Some("\"DE\"".into()),
                        max: Some("\"IT|FR\"".into()),
                    }),
                },
            ],
        }
    }

    #[test]
    fn markdown_is_a_review_block() {
        let expected = "\
#### `ns.events`: `main` → `sluice/r2`

| | `main` | `sluice/r2` | change |
|---|---:|---:|---:|
| snapshot | 11 | 12 | |
| rows | 1000 | 1250 | +250 (+25.0%) |
| data files | 2 | 3 | +1 |

- **files**: 1 added (+250 rows), 0 removed (0 rows)
- **schema**: column `country` added (string)
- **audit of `sluice/r2`**: failed: unique(event_id) (run r2)

| column | nulls A | nulls B | min A | min B | max A | max B |
|---|---:|---:|---|---|---|---|
| `event_id` | 0 | 0 | 0 | 0 | 999 | 1249 |
| `country` | — | 1000 | — | \"DE\" | — | \"IT\\|FR\" |
";
        assert_eq!(markdown(&sample()), expected);
    }

    #[test]
    fn text_names_both_sides_and_the_findings() {
        let t = text(&sample());
        assert!(
            t.starts_with("ns.events: A = main (snapshot 11), B = sluice/r2 (snapshot 12)"),
            "{t}"
        );
        assert!(t.contains("+250 (+25.0%)"), "{t}");
        assert!(t.contains("schema: column `country` added (string)"), "{t}");
        assert!(
            t.contains("audit of `sluice/r2`: failed: unique(event_id) (run r2)"),
            "{t}"
        );
    }
}
