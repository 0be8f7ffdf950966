//! A Python virtual environment under `target/xtask/venv` for the moto S3 server, for the
//! independent readers the interoperability tests call (pyiceberg, DuckDB) and for the pyiceberg
//! peer of `bench-wap`.
//!
//! Versions are pinned, so a developer's machine and CI read with the same libraries. A venv keeps
//! them out of the interpreter's own site-packages.

use std::fs;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::layout::Layout;

/// What the interoperability tests read with.
pub const READERS: &[&str] = &[
    "pyiceberg[pyarrow]==0.12.0",
    "pyarrow==26.0.1",
    "duckdb==2.0.0",
];

/// What `bench-wap` needs: the event generator (numpy, pyarrow) and the pyiceberg peer with its
/// SQLite SQL catalog (and pyiceberg-core, with which it computes partition transforms).
pub const BENCH: &[&str] = &[
    "numpy==2.4.6",
    "pyarrow==26.0.1",
    "pyiceberg[sql-sqlite,pyarrow]==0.12.0",
    "pyiceberg-core==0.10.1",
];

/// The moto S3 server.
pub const MOTO: &[&str] = &["moto[server]==5.2.1"];

/// Used to create buckets on MinIO, which checks request signatures.
pub const BOTO3: &[&str] = &["boto3==1.43.11"];

/// DuckDB with its iceberg extension, which DuckDB itself would download from its own site at
/// run time: the extension's pip packages are built for this DuckDB, older than [`READERS`]',
/// so they live in a venv of their own ([`Layout::duckdb_venv`]).
pub const DUCKDB_ICEBERG: &[&str] = &[
    "duckdb==1.5.5",
    "duckdb-extension-iceberg==1.5.5",
    "duckdb-extension-avro==1.5.5",
];

/// Makes sure the venv exists and holds `requirements`; returns quickly when it already does.
pub fn ensure(layout: &Layout, requirements: &[&str]) -> Result<()> {
    ensure_venv(&layout.venv(), requirements).map(drop)
}

/// [`ensure`] for the venv at `venv`; returns its python.
pub fn ensure_venv(venv: &std::path::Path, requirements: &[&str]) -> Result<std::path::PathBuf> {
    let python = venv.join("bin").join("python");
    ensure_at(venv, &python, requirements)?;
    Ok(python)
}

fn ensure_at(
    venv: &std::path::Path,
    python: &std::path::Path,
    requirements: &[&str],
) -> Result<()> {
    let installed_list = venv.join("xtask-installed.txt");

    if !python.exists() {
        let interpreter = host_python();
        println!("creating Python venv {} with {interpreter}", venv.display());
        let status = Command::new(&interpreter)
            .args(["-m", "venv"])
            .arg(venv)
            .status()
            .with_context(|| format!("cannot run {interpreter}; install Python 3"))?;
        if !status.success() {
            bail!(
                "`{interpreter} -m venv {}` failed ({status}); on Debian/Ubuntu install python3-venv",
                venv.display()
            );
        }
    }

    let mut installed: Vec<String> = fs::read_to_string(&installed_list)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    let missing: Vec<&str> = requirements
        .iter()
        .copied()
        .filter(|requirement| !installed.iter().any(|line| line == requirement))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }

    println!("installing {} into {}", missing.join(" "), venv.display());
    let status = Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(&missing)
        .status()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !status.success() {
        bail!(
            "pip could not install {} ({status}); check network access to PyPI",
            missing.join(" ")
        );
    }
    installed.extend(missing.iter().map(|requirement| requirement.to_string()));
    fs::write(&installed_list, installed.join("\n") + "\n")
        .with_context(|| format!("cannot write {}", installed_list.display()))?;
    Ok(())
}

/// The interpreter that creates the venv: `$PYTHON` or `python3`.
fn host_python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}
