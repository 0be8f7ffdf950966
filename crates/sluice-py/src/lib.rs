//! `sluice._sluice`: the native half of the Python package `sluice`.
//!
//! The Python modules in `python/sluice/` give the public API (typed classes, docstrings,
//! exceptions); this module does the work by calling the same library entry points as the
//! `sluice` command (`sluice_wap::Pipeline`, `sluice_lake::Lake`), so no Write-Audit-Publish
//! logic is written twice. Every call releases the GIL while it does I/O or computes, on one
//! tokio runtime per process, and looks for Ctrl-C every tenth of a second: a run stops at its
//! next safe point and rolls back, any other call is abandoned, and `KeyboardInterrupt` is
//! raised.
//!
//! Results cross as plain Python values (dicts, lists, numbers, strings) that the Python side
//! wraps in its classes; rows cross as Arrow record batches through the C stream interface,
//! without a copy.

mod convert;
mod errors;
mod lake;
mod runtime;

use pyo3::prelude::*;

/// The native module.
#[pymodule]
fn _sluice(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<lake::NativeLake>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
