//! `cargo xtask py-test`: builds the Python package (`crates/sluice-py`) in the dev profile with
//! maturin (with its crash-testing pause points), installs it into xtask's venv and runs its
//! pytest suite.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use anyhow::{Context, Result, bail};

use crate::layout::Layout;
use crate::python;

/// What the Python tests need besides the package: the builder, the test runner, pyiceberg
/// (with pyarrow) to read back what sluice wrote, and Prefect for the example flow.
pub const PY_TEST: &[&str] = &[
    "maturin==1.16.0",
    "pytest==8.4.2",
    "pyarrow==26.0.1",
    "pyiceberg[sql-sqlite,pyarrow]==0.12.0",
    "prefect==3.9.1",
];

/// Builds, installs and tests the package; `pytest_args` go to pytest.
pub fn run(layout: &Layout, pytest_args: &[String]) -> Result<ExitStatus> {
    python::ensure(layout, PY_TEST)?;
    let python = layout.venv_python();
    let bin = python.parent().context("the venv has no bin directory")?;
    let wheels = layout.target_dir().join("xtask").join("wheels");
    // Old wheels would be picked up as well as the new one.
    let _ = std::fs::remove_dir_all(&wheels);
    let manifest = layout.workspace.join("crates/sluice-py/Cargo.toml");
    let mut build = Command::new(bin.join("maturin"));
    crate::process::without_cargo_run_env(&mut build)
        .args([
            "build",
            "--profile",
            "dev",
            "--locked",
            "--features",
            "test-hooks",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--interpreter")
        .arg(&python)
        .arg("--out")
        .arg(&wheels);
    step("build the wheel", &mut build)?;
    let wheel = only_wheel(&wheels)?;
    let mut install = Command::new(&python);
    install
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--force-reinstall",
        ])
        .arg(&wheel);
    step("install it", &mut install)?;
    let mut test = Command::new(&python);
    test.args(["-m", "pytest", "-q"])
        .arg(layout.workspace.join("crates/sluice-py/tests"))
        .args(pytest_args)
        .current_dir(&layout.workspace);
    println!("==> python tests: {}", describe(&test));
    test.status()
        .with_context(|| format!("cannot run {}", python.display()))
}

fn step(what: &str, command: &mut Command) -> Result<()> {
    println!("==> {what}: {}", describe(command));
    let status = command
        .status()
        .with_context(|| format!("cannot {what}: {}", describe(command)))?;
    if !status.success() {
        bail!("cannot {what} ({status}): {}", describe(command));
    }
    Ok(())
}

/// The one wheel maturin wrote into `dir`.
fn only_wheel(dir: &Path) -> Result<PathBuf> {
    let wheels: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("maturin wrote nothing to {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "whl"))
        .collect();
    match wheels.as_slice() {
        [wheel] => Ok(wheel.clone()),
        other => bail!(
            "expected one wheel in {}, found {}",
            dir.display(),
            other.len()
        ),
    }
}

fn describe(command: &Command) -> String {
    std::iter::once(command.get_program().to_string_lossy().into_owned())
        .chain(command.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}
