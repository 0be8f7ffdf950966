//! Where xtask keeps its tools, data, pids and logs: everything under `target/xtask/`, so that
//! `cargo clean` resets it and nothing leaks into the source tree.

use std::env;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The two long-running services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    S3,
    Rest,
}

impl Service {
    pub const ALL: [Service; 2] = [Service::S3, Service::Rest];

    pub fn name(self) -> &'static str {
        match self {
            Service::S3 => "s3",
            Service::Rest => "rest",
        }
    }
}

/// Paths of the workspace and of xtask's state.
#[derive(Debug, Clone)]
pub struct Layout {
    pub workspace: PathBuf,
    pub state: PathBuf,
}

impl Layout {
    /// The layout of the workspace that contains this xtask, honouring `CARGO_TARGET_DIR`.
    pub fn discover() -> Result<Self> {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("xtask/ has no parent directory")?
            .to_path_buf();
        let target = match env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => workspace.join(dir),
            None => workspace.join("target"),
        };
        Ok(Self {
            workspace,
            state: target.join("xtask"),
        })
    }

    /// The cargo target directory (`target/`, or `CARGO_TARGET_DIR`).
    pub fn target_dir(&self) -> PathBuf {
        self.state
            .parent()
            .map_or_else(|| self.state.join(".."), Path::to_path_buf)
    }

    /// `cargo install --root` for tools built from crates.io.
    pub fn tools_root(&self) -> PathBuf {
        self.state.join("tools")
    }

    pub fn s3s_fs_binary(&self) -> PathBuf {
        self.tools_root().join("bin").join("s3s-fs")
    }

    /// Where the Iceberg REST catalog jar is downloaded.
    pub fn rest_dir(&self) -> PathBuf {
        self.state.join("rest")
    }

    /// Root directory of s3s-fs: each sub-directory is a bucket.
    pub fn s3s_fs_data(&self) -> PathBuf {
        self.state.join("s3-data")
    }

    pub fn minio_data(&self) -> PathBuf {
        self.state.join("minio-data")
    }

    /// The REST catalog's SQLite database. One per S3 backend, because the catalog points at
    /// metadata files that only that backend holds.
    pub fn catalog_db(&self, s3_backend: &str) -> PathBuf {
        self.state
            .join("catalog")
            .join(format!("rest-{s3_backend}.sqlite"))
    }

    /// Python virtual environment with moto and the independent readers (pyiceberg).
    pub fn venv(&self) -> PathBuf {
        self.state.join("venv")
    }

    /// Python virtual environment with DuckDB and its iceberg extension (`bench-sql`).
    pub fn duckdb_venv(&self) -> PathBuf {
        self.state.join("duckdb-iceberg-venv")
    }

    pub fn venv_python(&self) -> PathBuf {
        self.venv().join("bin").join("python")
    }

    pub fn pid_file(&self, service: Service) -> PathBuf {
        self.state
            .join("pids")
            .join(format!("{}.pid", service.name()))
    }

    pub fn log_file(&self, service: Service) -> PathBuf {
        self.state
            .join("logs")
            .join(format!("{}.log", service.name()))
    }

    /// The `export NAME=value` lines that tests read, written by `services up`.
    pub fn env_file(&self) -> PathBuf {
        self.state.join("services.env")
    }
}
