//! `--target rest`: both tools on the Iceberg REST catalog and the S3 server of `services up`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::tail;
use crate::json::Json;
use crate::services::ServicesConfig;
use crate::{rest_catalog, s3_server};

/// Runs the peer against the REST catalog, and drops tables there (see its docstring).
pub(crate) const REST_PEER_PY: &str = include_str!("../bench_rest_peer.py");

/// sluice's table on the REST catalog: apart from the peer's, so neither sees the other's data.
pub(crate) const SLUICE_REST_TABLE: &str = "bench_wap.events";

/// The REST catalog and S3 server both tools use with `--target rest`.
pub(crate) struct RestLake {
    pub(crate) config: ServicesConfig,
    /// `rest_peer.py`, written into `target/bench-wap/`.
    pub(crate) wrapper: PathBuf,
}

impl RestLake {
    /// sluice's configuration for the REST catalog and the S3 server; the journal stays in the
    /// measurement's directory, and the credentials come from [`s3_credentials_env`].
    pub(crate) fn sluice_toml(&self) -> String {
        format!(
            "# Written by `cargo xtask` for the REST catalog and S3 server of `services up`.\n\
             [catalog]\n\
             type = \"rest\"\n\
             uri = \"{uri}\"\n\
             warehouse = \"{warehouse}\"\n\
             \n\
             [storage.s3]\n\
             endpoint = \"{endpoint}\"\n\
             region = \"{region}\"\n\
             path_style = true\n\
             allow_http = true\n\
             \n\
             [journal]\n\
             location = \".sluice/journal\"\n",
            uri = self.config.rest_uri(),
            warehouse = rest_catalog::warehouse(),
            endpoint = self.config.s3_endpoint(),
            region = s3_server::REGION,
        )
    }

    /// pyiceberg `RestCatalog` properties (JSON) for the same catalog and S3 server, with the
    /// property names the interoperability tests use. pyiceberg 0.12 has no path-style setting:
    /// pyarrow's S3 client sends path-style requests when it is given an endpoint.
    pub(crate) fn pyiceberg_properties(&self) -> String {
        Json::object([
            ("uri", Json::string(self.config.rest_uri())),
            ("warehouse", Json::string(rest_catalog::warehouse())),
            ("s3.endpoint", Json::string(self.config.s3_endpoint())),
            ("s3.region", Json::string(s3_server::REGION)),
        ])
        .to_pretty()
    }

    /// Drops `tables` with their files where they exist (`rest_peer.py --drop`).
    pub(crate) fn drop_tables(&self, python: &Path, tables: &[&str]) -> Result<()> {
        let output = Command::new(python)
            .envs(s3_credentials_env())
            .arg(&self.wrapper)
            .arg(self.pyiceberg_properties())
            .arg("--drop")
            .args(tables)
            .output()
            .with_context(|| format!("cannot run {}", python.display()))?;
        if !output.status.success() {
            bail!(
                "dropping {} on the REST catalog failed ({}):\n{}",
                tables.join(", "),
                output.status,
                tail(&output.stderr, 20)
            );
        }
        Ok(())
    }
}

/// The S3 server's credentials, given to both tools as AWS variables: never in a file or on a
/// command line.
pub(crate) fn s3_credentials_env() -> [(&'static str, &'static str); 3] {
    [
        ("AWS_ACCESS_KEY_ID", s3_server::ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", s3_server::SECRET_ACCESS_KEY),
        ("AWS_REGION", s3_server::REGION),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::peer::PEER_TABLE;

    #[test]
    fn rest_runs_point_both_tools_at_the_same_catalog_and_s3_server() {
        let rest = RestLake {
            config: ServicesConfig {
                s3_port: 19000,
                rest_port: 18181,
                ..ServicesConfig::default()
            },
            wrapper: PathBuf::from("/t/bench-wap/rest_peer.py"),
        };
        let toml = rest.sluice_toml();
        for line in [
            "[catalog]\ntype = \"rest\"\nuri = \"http://127.0.0.1:18181\"\n",
            "warehouse = \"s3://warehouse/\"\n",
            "[storage.s3]\nendpoint = \"http://127.0.0.1:19000\"\nregion = \"us-east-1\"\n",
            "path_style = true\nallow_http = true\n",
            "[journal]\nlocation = \".sluice/journal\"\n",
        ] {
            assert!(toml.contains(line), "{line:?} not in\n{toml}");
        }
        assert!(!toml.contains("secret"), "credentials stay out of the file");
        assert!(s3_credentials_env().contains(&("AWS_SECRET_ACCESS_KEY", "sluice-secret")));

        let properties = Json::parse(&rest.pyiceberg_properties()).unwrap();
        let property = |name: &str| properties.get(name).and_then(Json::as_str);
        assert_eq!(property("uri"), Some("http://127.0.0.1:18181"));
        assert_eq!(property("warehouse"), Some("s3://warehouse/"));
        assert_eq!(property("s3.endpoint"), Some("http://127.0.0.1:19000"));
        assert_eq!(
            property("s3.access-key-id"),
            None,
            "credentials stay off the command line"
        );
        assert_eq!(property("s3.secret-access-key"), None);
        assert_eq!(property("s3.region"), Some("us-east-1"));
        assert_ne!(PEER_TABLE, SLUICE_REST_TABLE);
    }
}
