//! The S3-compatible server: s3s-fs (default), moto, or a MinIO binary found on PATH.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::http;
use crate::layout::Layout;
use crate::process::on_path;
use crate::python;

/// Fixed credentials of the test server; they protect nothing but a local scratch directory.
pub const ACCESS_KEY_ID: &str = "sluice";
pub const SECRET_ACCESS_KEY: &str = "sluice-secret";
pub const REGION: &str = "us-east-1";
/// The bucket that holds the Iceberg warehouse.
pub const WAREHOUSE_BUCKET: &str = "warehouse";
/// The bucket that raw source files land in.
pub const RAW_BUCKET: &str = "raw";

/// 0.14.1 is the last release that builds with Rust 1.95 (0.15 needs 1.96).
pub const S3S_FS_VERSION: &str = "0.14.1";

/// Which program serves S3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Backend {
    /// `s3s-fs` from crates.io: objects are plain files, buckets are directories.
    S3sFs,
    /// moto's server from PyPI: in memory, gone when it stops. pyarrow's S3 client (and so
    /// pyiceberg's writes) fails on its CompleteMultipartUpload answer; reads work.
    Moto,
    /// A `minio` binary the user has on PATH.
    Minio,
}

impl S3Backend {
    pub fn name(self) -> &'static str {
        match self {
            S3Backend::S3sFs => "s3s-fs",
            S3Backend::Moto => "moto",
            S3Backend::Minio => "minio",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "s3s-fs" => Ok(S3Backend::S3sFs),
            "moto" => Ok(S3Backend::Moto),
            "minio" => Ok(S3Backend::Minio),
            other => bail!("unknown S3 server {other:?}: expected s3s-fs, moto or minio"),
        }
    }

    /// Whether its data disappears when it stops (so the catalog must start empty too).
    pub fn is_ephemeral(self) -> bool {
        self == S3Backend::Moto
    }
}

/// A program ready to be started, and the string its command line will contain.
pub struct Prepared {
    pub command: Command,
    pub marker: String,
}

/// Installs what `backend` needs (cached under `target/xtask/`) and builds its command line.
pub fn prepare(backend: S3Backend, layout: &Layout, port: u16) -> Result<Prepared> {
    let address = format!("127.0.0.1:{port}");
    match backend {
        S3Backend::S3sFs => {
            let binary = install_s3s_fs(layout)?;
            let root = layout.s3s_fs_data();
            for bucket in [WAREHOUSE_BUCKET, RAW_BUCKET] {
                let dir = root.join(bucket);
                fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create bucket directory {}", dir.display()))?;
            }
            let mut command = Command::new(&binary);
            command
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args([
                    "--access-key",
                    ACCESS_KEY_ID,
                    "--secret-key",
                    SECRET_ACCESS_KEY,
                ])
                .arg(&root);
            Ok(Prepared {
                command,
                marker: binary.display().to_string(),
            })
        }
        S3Backend::Moto => {
            python::ensure(layout, python::MOTO)?;
            let mut command = Command::new(layout.venv_python());
            command.args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ]);
            Ok(Prepared {
                command,
                marker: "moto.server".to_string(),
            })
        }
        S3Backend::Minio => {
            if !on_path("minio") {
                bail!("--s3 minio needs a `minio` binary on PATH; use --s3 s3s-fs or --s3 moto");
            }
            python::ensure(layout, python::BOTO3)?;
            let data = layout.minio_data();
            fs::create_dir_all(&data)
                .with_context(|| format!("cannot create {}", data.display()))?;
            let mut command = Command::new("minio");
            command
                .args(["server", "--address", &address])
                .arg(&data)
                .env("MINIO_ROOT_USER", ACCESS_KEY_ID)
                .env("MINIO_ROOT_PASSWORD", SECRET_ACCESS_KEY)
                .env("MINIO_SITE_REGION", REGION);
            Ok(Prepared {
                command,
                marker: "minio".to_string(),
            })
        }
    }
}

/// Whether the server answers HTTP (an unsigned request is refused, which is an answer).
pub fn check_health(backend: S3Backend, port: u16) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    match backend {
        S3Backend::Minio => {
            let response = http::get(addr, "/minio/health/live")?;
            if response.status != 200 {
                bail!("GET /minio/health/live answered {}", response.status);
            }
        }
        S3Backend::S3sFs | S3Backend::Moto => {
            http::get(addr, "/")?;
        }
    }
    Ok(())
}

/// Creates the warehouse and raw buckets once the server answers.
pub fn create_buckets(backend: S3Backend, layout: &Layout, port: u16) -> Result<()> {
    match backend {
        // The directories were made before the server started.
        S3Backend::S3sFs => Ok(()),
        S3Backend::Moto | S3Backend::Minio => create_buckets_with_boto3(layout, port),
    }
}

/// Signed `CreateBucket` calls through boto3 (moto depends on it; MinIO checks signatures).
fn create_buckets_with_boto3(layout: &Layout, port: u16) -> Result<()> {
    const SCRIPT: &str = r#"
import sys
import boto3
from botocore.config import Config

client = boto3.client(
    "s3",
    endpoint_url=sys.argv[1],
    region_name=sys.argv[2],
    config=Config(s3={"addressing_style": "path"}),
)
existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
for name in sys.argv[3:]:
    if name not in existing:
        client.create_bucket(Bucket=name)
missing = set(sys.argv[3:]) - {b["Name"] for b in client.list_buckets()["Buckets"]}
if missing:
    sys.exit(f"buckets still missing after CreateBucket: {sorted(missing)}")
"#;
    let output = Command::new(layout.venv_python())
        .args(["-c", SCRIPT])
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(REGION)
        .args([WAREHOUSE_BUCKET, RAW_BUCKET])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .output()
        .context("cannot run the venv's python to create buckets")?;
    if !output.status.success() {
        bail!(
            "creating buckets {WAREHOUSE_BUCKET} and {RAW_BUCKET} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// `cargo install s3s-fs` into `target/xtask/tools`, unless the pinned version is already there.
pub(crate) fn install_s3s_fs(layout: &Layout) -> Result<std::path::PathBuf> {
    let binary = layout.s3s_fs_binary();
    if installed_version(&binary).as_deref() == Some(S3S_FS_VERSION) {
        return Ok(binary);
    }
    println!(
        "building s3s-fs {S3S_FS_VERSION} (once; cached in {})",
        layout.tools_root().display()
    );
    let status = crate::process::cargo()
        .args(["install", &format!("s3s-fs@{S3S_FS_VERSION}")])
        .args(["--features", "binary", "--locked", "--root"])
        .arg(layout.tools_root())
        .status()
        .context("cannot run cargo install")?;
    if !status.success() {
        bail!("`cargo install s3s-fs@{S3S_FS_VERSION}` failed ({status})");
    }
    match installed_version(&binary) {
        Some(version) if version == S3S_FS_VERSION => Ok(binary),
        other => bail!(
            "{} reports version {other:?} after installing {S3S_FS_VERSION}",
            binary.display()
        ),
    }
}

/// The version `s3s-fs --version` prints (`s3s-fs 0.14.1`).
fn installed_version(binary: &Path) -> Option<String> {
    let output = Command::new(binary).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace().nth(1).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_round_trip() {
        for backend in [S3Backend::S3sFs, S3Backend::Moto, S3Backend::Minio] {
            assert_eq!(S3Backend::parse(backend.name()).unwrap(), backend);
        }
        let err = S3Backend::parse("ceph").unwrap_err().to_string();
        assert!(err.contains("ceph") && err.contains("s3s-fs"), "{err}");
    }

    #[test]
    fn only_moto_forgets_its_data() {
        assert!(S3Backend::Moto.is_ephemeral());
        assert!(!S3Backend::S3sFs.is_ephemeral());
        assert!(!S3Backend::Minio.is_ephemeral());
    }
}
