//! `cargo xtask bench-py`: the Python package measured against the CLI (a whole `sluice.run`
//! against `sluice run`) and against pyiceberg (`lake.scan` against `table.scan().to_arrow()`),
//! on the bench-wap events, interleaved in one invocation. Release builds of both.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::bench::{build_sluice, generate_events};
use crate::json::Json;
use crate::layout::Layout;
use crate::python;

const SCRIPT: &str = include_str!("bench_py.py");

/// Options of `bench-py`.
#[derive(Debug, PartialEq, Eq)]
pub struct PyBenchOptions {
    pub files: u32,
    pub rows: u64,
    pub repeat: u32,
    pub peer_dir: Option<PathBuf>,
}

pub fn parse_options(options: &[&str]) -> Result<PyBenchOptions> {
    let mut out = PyBenchOptions {
        files: 10,
        rows: 1_000_000,
        repeat: 3,
        peer_dir: None,
    };
    let mut rest = options.iter();
    while let Some(option) = rest.next() {
        let (flag, inline) = match option.split_once('=') {
            Some((flag, value)) => (flag, Some(value)),
            None => (*option, None),
        };
        let mut value = || -> Result<&str> {
            inline
                .or_else(|| rest.next().copied())
                .with_context(|| format!("{flag} needs a value"))
        };
        let number = |text: &str| -> Result<u64> {
            text.parse()
                .ok()
                .filter(|n| *n > 0)
                .with_context(|| format!("{flag}: {text:?} is not a positive number"))
        };
        match flag {
            "--files" => {
                out.files = u32::try_from(number(value()?)?).context("--files is too large")?
            }
            "--rows" => out.rows = number(value()?)?,
            "--repeat" => {
                out.repeat = u32::try_from(number(value()?)?).context("--repeat is too large")?
            }
            "--peer-dir" => out.peer_dir = Some(PathBuf::from(value()?)),
            other => bail!("unknown option {other:?} for `bench-py`; see `cargo xtask --help`"),
        }
    }
    Ok(out)
}

pub fn run(layout: &Layout, options: &PyBenchOptions) -> Result<()> {
    let peer_dir = options
        .peer_dir
        .clone()
        .unwrap_or_else(|| layout.workspace.join("..").join("shared").join("bench"));
    let generator = crate::bench::peer_file(&peer_dir, "gen_events.py")?;
    let sluice = build_sluice(layout)?;
    python::ensure(layout, python::BENCH)?;
    python::ensure(layout, &["maturin==1.16.0"])?;
    let python = layout.venv_python();
    let bin = python.parent().context("the venv has no bin directory")?;
    let wheels = layout.target_dir().join("bench-py").join("wheels");
    let _ = fs::remove_dir_all(&wheels);
    println!("building: maturin build --release (crates/sluice-py)");
    let status = crate::process::without_cargo_run_env(&mut Command::new(bin.join("maturin")))
        .args(["build", "--release", "--locked", "--manifest-path"])
        .arg(layout.workspace.join("crates/sluice-py/Cargo.toml"))
        .arg("--interpreter")
        .arg(&python)
        .arg("--out")
        .arg(&wheels)
        .status()
        .context("cannot run maturin")?;
    if !status.success() {
        bail!("building the Python package in release failed ({status})");
    }
    let wheel = fs::read_dir(&wheels)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .context("maturin wrote no wheel")?;
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--force-reinstall",
        ])
        .arg(&wheel)
        .status()?;
    if !status.success() {
        bail!("cannot install {}", wheel.display());
    }

    let bench_dir = layout.target_dir().join("bench-py");
    let data = generate_events(
        &python,
        &generator,
        &layout.target_dir().join("bench-wap"),
        options.files,
        options.rows,
        "zstd",
    )?;
    let script = bench_dir.join("bench_py.py");
    fs::write(&script, SCRIPT)?;
    println!(
        "{} runs per tool of {} files x {} rows, then {} scans per tool of the table",
        options.repeat, options.files, options.rows, options.repeat
    );
    let output = Command::new(&python)
        .arg(&script)
        .arg(&sluice)
        .arg(&data)
        .arg(bench_dir.join("lakes"))
        .arg(options.repeat.to_string())
        .output()
        .context("cannot run the benchmark script")?;
    if !output.status.success() {
        bail!(
            "the benchmark script failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let result = Json::parse(text.trim()).context("the benchmark script printed no JSON")?;
    let number = |key: &str| result.get(key).and_then(Json::as_f64).unwrap_or(f64::NAN);
    let median = |key: &str| {
        let mut values: Vec<f64> = match result.get(key) {
            Some(Json::Array(items)) => items.iter().filter_map(Json::as_f64).collect(),
            _ => Vec::new(),
        };
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
    };
    println!();
    println!("| measure | sluice (Python) | other | ratio | target |");
    println!("|---|---|---|---|---|");
    let run_ratio = number("run_ratio");
    println!(
        "| whole run: `sluice.run` in process vs `sluice run` process | {:.2} s | {:.2} s (CLI) | **{run_ratio:.3}** | ≤ 1.05 |",
        median("python_run_s"),
        median("cli_run_s")
    );
    let speedup = number("scan_speedup");
    println!(
        "| scan of the table into pyarrow | {:.2} s | {:.2} s (pyiceberg) | **{speedup:.2}× faster** | ≥ 2× |",
        median("sluice_scan_s"),
        median("pyiceberg_scan_s")
    );
    fs::write(bench_dir.join("result.json"), text.trim())?;
    println!("\nwrote {}", bench_dir.join("result.json").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        let defaults = parse_options(&[]).unwrap();
        assert_eq!(
            (defaults.files, defaults.rows, defaults.repeat),
            (10, 1_000_000, 3)
        );
        let o = parse_options(&["--files", "2", "--rows=500", "--repeat", "5"]).unwrap();
        assert_eq!((o.files, o.rows, o.repeat), (2, 500, 5));
        assert!(parse_options(&["--repeat", "0"]).is_err());
        assert!(parse_options(&["--bogus"]).is_err());
        assert!(parse_options(&["--files"]).is_err());
    }
}
