//! Apache Iceberg's REST catalog server, the one behind the `iceberg-rest-fixture` image:
//! `org.apache.iceberg.rest.RESTCatalogServer` from `org.apache.iceberg:iceberg-open-api`.
//!
//! The 1.10.1 jar is self-contained (JDBC catalog with sqlite-jdbc, S3FileIO with the AWS SDK,
//! Jetty), so it runs with `java -cp <jar>` alone. From 1.10.2 on only a thin `test-fixtures`
//! jar is published; moving past 1.10.1 means resolving its runtime classpath with Maven.
//!
//! The server reads its catalog properties from `CATALOG_*` environment variables: the prefix is
//! dropped, `__` becomes `-`, `_` becomes `.`, and the name is lower-cased
//! (`CATALOG_S3_PATH__STYLE__ACCESS` is `s3.path-style-access`). It listens on all interfaces:
//! the port is the only listening option it has.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::http;
use crate::layout::Layout;
use crate::process::on_path;
use crate::s3_server::{ACCESS_KEY_ID, REGION, S3Backend, SECRET_ACCESS_KEY, WAREHOUSE_BUCKET};

pub const ICEBERG_VERSION: &str = "1.10.1";
pub const MAIN_CLASS: &str = "org.apache.iceberg.rest.RESTCatalogServer";

/// The warehouse location the catalog gives new namespaces and tables.
pub fn warehouse() -> String {
    format!("s3://{WAREHOUSE_BUCKET}/")
}

/// Downloads the jar if needed and builds the `java` command line.
///
/// `fresh_catalog` deletes the catalog database first: used when the S3 server starts empty.
pub fn prepare(
    layout: &Layout,
    port: u16,
    s3_backend: S3Backend,
    s3_endpoint: &str,
    fresh_catalog: bool,
) -> Result<Command> {
    let jar = fetch_jar(layout)?;
    if !on_path("java") {
        bail!("the Iceberg REST catalog needs `java` (17 or newer) on PATH");
    }
    let db = layout.catalog_db(s3_backend.name());
    let db_dir = db.parent().context("catalog database path has no parent")?;
    fs::create_dir_all(db_dir).with_context(|| format!("cannot create {}", db_dir.display()))?;
    if fresh_catalog && db.exists() {
        fs::remove_file(&db).with_context(|| format!("cannot remove {}", db.display()))?;
    }

    let mut command = Command::new("java");
    command
        .arg("-cp")
        .arg(&jar)
        .arg(MAIN_CLASS)
        .envs(server_env(&db, port, s3_endpoint));
    Ok(command)
}

/// The server's configuration: catalog properties as `CATALOG_*` variables, S3 credentials for
/// the AWS SDK's default chain.
fn server_env(db: &Path, port: u16, s3_endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CATALOG_WAREHOUSE", warehouse()),
        (
            "CATALOG_IO__IMPL",
            "org.apache.iceberg.aws.s3.S3FileIO".into(),
        ),
        ("CATALOG_S3_ENDPOINT", s3_endpoint.into()),
        ("CATALOG_S3_PATH__STYLE__ACCESS", "true".into()),
        ("CATALOG_URI", format!("jdbc:sqlite:file:{}", db.display())),
        // SQLite allows one writer: with a pool of connections, two concurrent commits fail with
        // SQLITE_BUSY and leave the catalog failing every later write until it restarts.
        ("CATALOG_CLIENTS", "1".into()),
        ("CATALOG_REST_PORT", port.to_string()),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.into()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.into()),
        ("AWS_REGION", REGION.into()),
    ]
}

/// `GET /v1/config` must answer 200.
pub fn check_health(port: u16) -> Result<()> {
    let response = http::get(SocketAddr::from(([127, 0, 0, 1], port)), "/v1/config")?;
    if response.status != 200 {
        bail!(
            "GET /v1/config answered {}: {}",
            response.status,
            response.body.trim()
        );
    }
    Ok(())
}

/// `mvn dependency:copy` of the pinned jar into `target/xtask/rest/`, once.
fn fetch_jar(layout: &Layout) -> Result<PathBuf> {
    let dir = layout.rest_dir();
    let jar = dir.join(format!("iceberg-open-api-{ICEBERG_VERSION}.jar"));
    if jar.is_file() {
        return Ok(jar);
    }
    if !on_path("mvn") {
        bail!(
            "{} is missing and `mvn` is not on PATH to download it; install Maven",
            jar.display()
        );
    }
    // Downloaded beside the final name first, so an interrupted download is never mistaken for
    // the jar.
    let partial = dir.join("download");
    if partial.exists() {
        fs::remove_dir_all(&partial)
            .with_context(|| format!("cannot remove {}", partial.display()))?;
    }
    fs::create_dir_all(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    println!("downloading org.apache.iceberg:iceberg-open-api:{ICEBERG_VERSION} with mvn (once)");
    let status = Command::new("mvn")
        .args([
            "--batch-mode",
            "--quiet",
            "-Dstyle.color=never",
            "dependency:copy",
        ])
        .arg(format!(
            "-Dartifact=org.apache.iceberg:iceberg-open-api:{ICEBERG_VERSION}"
        ))
        .arg(format!("-DoutputDirectory={}", partial.display()))
        .current_dir(&dir)
        .status()
        .context("cannot run mvn")?;
    if !status.success() {
        bail!("mvn could not fetch iceberg-open-api {ICEBERG_VERSION} ({status})");
    }
    fs::rename(
        partial.join(jar.file_name().context("jar has no name")?),
        &jar,
    )
    .with_context(|| format!("mvn did not produce {}", jar.display()))?;
    fs::remove_dir_all(&partial).ok();
    Ok(jar)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn catalog_points_at_the_local_server_with_path_style_access() {
        let env: BTreeMap<&str, String> = server_env(
            Path::new("/lake/target/xtask/catalog/rest-s3s-fs.sqlite"),
            18181,
            "http://127.0.0.1:19000",
        )
        .into_iter()
        .collect();
        assert_eq!(env["CATALOG_WAREHOUSE"], "s3://warehouse/");
        assert_eq!(
            env["CATALOG_IO__IMPL"],
            "org.apache.iceberg.aws.s3.S3FileIO"
        );
        assert_eq!(env["CATALOG_S3_ENDPOINT"], "http://127.0.0.1:19000");
        assert_eq!(env["CATALOG_S3_PATH__STYLE__ACCESS"], "true");
        assert_eq!(env["CATALOG_REST_PORT"], "18181");
        assert_eq!(env["CATALOG_CLIENTS"], "1");
        assert_eq!(
            env["CATALOG_URI"],
            "jdbc:sqlite:file:/lake/target/xtask/catalog/rest-s3s-fs.sqlite"
        );
        assert_eq!(env["AWS_REGION"], "us-east-1");
    }
}
