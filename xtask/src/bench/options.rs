//! What `bench-wap` is asked to do: the data set, the modes, the target.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::s3_server::S3Backend;
use crate::services::ServicesConfig;

/// The options of `services up` that `--target rest` also takes.
const SERVICE_FLAGS: [&str; 4] = ["--s3", "--s3-port", "--rest-port", "--timeout"];

/// How the source files get into the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The data is copied into the warehouse (sluice keeps the column chunks of files the
    /// table would store the same way, and re-encodes the others).
    Copy,
    /// Copy mode with `sluice run --rewrite`: sluice decodes and re-encodes every file, as
    /// the peer does.
    Rewrite,
    /// Files are added to the table where they are.
    Register,
    /// Copy mode into a table partitioned by `day(ts)`, the events spread over 30 days (the
    /// peer's table gets the same spec).
    Partitioned,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::Copy, Mode::Rewrite, Mode::Register, Mode::Partitioned];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Copy => "copy",
            Mode::Rewrite => "rewrite",
            Mode::Register => "register",
            Mode::Partitioned => "partitioned",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        match text {
            "copy" => Ok(Mode::Copy),
            "rewrite" => Ok(Mode::Rewrite),
            "register" => Ok(Mode::Register),
            "partitioned" => Ok(Mode::Partitioned),
            other => {
                bail!("--mode: {other:?} is not a mode (copy, rewrite, register or partitioned)")
            }
        }
    }

    /// The peer's `--mode` (it has no rewrite mode: its copy mode always re-encodes).
    pub(super) fn peer_mode(self) -> &'static str {
        match self {
            Mode::Copy | Mode::Rewrite | Mode::Partitioned => "copy",
            Mode::Register => "register",
        }
    }

    /// `sluice run`'s arguments for this mode.
    pub(super) fn sluice_args(self) -> &'static [&'static str] {
        match self {
            Mode::Copy => &["--mode", "copy"],
            Mode::Rewrite => &["--mode", "copy", "--rewrite"],
            Mode::Register => &["--mode", "register"],
            Mode::Partitioned => &["--mode", "copy", "--partition-by", "day(ts)"],
        }
    }

    /// The largest sluice/peer wall-time ratio that meets the target. Copy mode keeps the
    /// column chunks of zstd sources as they are, so its target is tighter there; with other
    /// codecs (`--compression`) it is held to the re-encode-era target.
    pub fn target_ratio(self, compression: &str) -> f64 {
        match self {
            Mode::Copy if compression == "zstd" => 0.13,
            Mode::Copy | Mode::Partitioned => 0.25,
            Mode::Rewrite => 0.22,
            Mode::Register => 0.09,
        }
    }

    /// The most memory sluice may use for the default data set, in MB.
    pub fn memory_target_mb(self) -> f64 {
        match self {
            Mode::Partitioned => 400.0,
            _ => 250.0,
        }
    }

    /// Whether the events are spread over 30 days (one partition a day) for this mode.
    pub(super) fn spread_over_days(self) -> bool {
        self == Mode::Partitioned
    }
}

/// Where both tools keep the catalog and the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A SQLite SQL catalog and a local warehouse directory per measurement.
    Embedded,
    /// The Iceberg REST catalog and the S3 server that `services up` starts with this
    /// configuration.
    Rest(ServicesConfig),
}

impl Target {
    pub fn name(&self) -> &'static str {
        match self {
            Target::Embedded => "embedded",
            Target::Rest(_) => "rest",
        }
    }

    /// What is measured, for the table and `result.json`.
    pub(super) fn description(&self) -> String {
        match self {
            Target::Embedded => "SQLite SQL catalog, local warehouse".to_string(),
            Target::Rest(config) => format!(
                "Iceberg REST catalog at {}, {} S3 at {}",
                config.rest_uri(),
                config.s3.name(),
                config.s3_endpoint()
            ),
        }
    }
}

/// What `bench-wap` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchOptions {
    pub files: u32,
    pub rows: u64,
    pub repeat: u32,
    /// Directory holding `gen_events.py` and `wap_pyiceberg.py`; `None`: `../shared/bench`.
    pub peer_dir: Option<PathBuf>,
    pub modes: Vec<Mode>,
    pub target: Target,
    /// The generated sources' parquet codec (`gen_events.py --compression`).
    pub compression: String,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            files: 10,
            rows: 1_000_000,
            repeat: 1,
            peer_dir: None,
            modes: Mode::ALL.to_vec(),
            target: Target::Embedded,
            compression: "zstd".to_string(),
        }
    }
}

/// Parses the options after `bench-wap`. With `--target rest`, the services are configured as
/// for `services up`: its options, then its `SLUICE_XTASK_*` variables (read through `env`).
pub fn parse_options(
    options: &[&str],
    env: &impl Fn(&str) -> Option<String>,
) -> Result<BenchOptions> {
    let mut parsed = BenchOptions::default();
    let mut modes = Vec::new();
    let mut target = TargetFlags::default();
    let mut rest = options.iter();
    while let Some(option) = rest.next() {
        let (flag, inline) = match option.split_once('=') {
            Some((flag, value)) => (flag, Some(value)),
            None => (*option, None),
        };
        let mut value = || -> Result<&str> {
            match inline {
                Some(value) => Ok(value),
                None => rest
                    .next()
                    .copied()
                    .with_context(|| format!("{flag} needs a value")),
            }
        };
        match flag {
            "--files" => parsed.files = positive(flag, value()?)?,
            "--rows" => parsed.rows = positive(flag, value()?)?,
            "--repeat" => parsed.repeat = positive(flag, value()?)?,
            "--peer-dir" => parsed.peer_dir = Some(PathBuf::from(value()?)),
            "--compression" => match value()? {
                codec @ ("zstd" | "snappy" | "gzip" | "none") => {
                    parsed.compression = codec.to_string()
                }
                other => bail!(
                    "--compression {other:?} is not a codec the generator writes: zstd, snappy \
                     (pyarrow's and Spark's default), gzip or none"
                ),
            },
            "--mode" => {
                let mode = Mode::parse(value()?)?;
                if !modes.contains(&mode) {
                    modes.push(mode);
                }
            }
            flag if target.takes(flag) => target.set(flag, value()?)?,
            _ => bail!("unknown option {option:?} for `bench-wap`; see `cargo xtask --help`"),
        }
    }
    if !modes.is_empty() {
        parsed.modes = modes;
    }
    parsed.target = target.target(false, env)?;
    Ok(parsed)
}

/// `--target embedded|rest` and the options of `services up` that go with `rest`, as the
/// benchmarks that can run on the services take them.
#[derive(Debug, Default)]
pub(crate) struct TargetFlags {
    rest: Option<bool>,
    service_options: Vec<String>,
}

impl TargetFlags {
    /// Whether `flag` is one of these.
    pub(crate) fn takes(&self, flag: &str) -> bool {
        flag == "--target" || SERVICE_FLAGS.contains(&flag)
    }

    pub(crate) fn set(&mut self, flag: &str, value: &str) -> Result<()> {
        match (flag, value) {
            ("--target", "embedded") => self.rest = Some(false),
            ("--target", "rest") => self.rest = Some(true),
            ("--target", other) => bail!(
                "--target {other:?} is not a target: embedded (SQLite catalog, local \
                 warehouse) or rest (the REST catalog and S3 server of `services up`)"
            ),
            (flag, value) => self.service_options.push(format!("{flag}={value}")),
        }
        Ok(())
    }

    /// The target asked for (`rest_by_default` when none was). The services are configured as
    /// for `services up`: its options, then its `SLUICE_XTASK_*` variables (read through `env`).
    pub(crate) fn target(
        self,
        rest_by_default: bool,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Target> {
        if self.rest.unwrap_or(rest_by_default) {
            let service_options: Vec<&str> =
                self.service_options.iter().map(String::as_str).collect();
            let config = crate::parse_config(&service_options, env)?;
            if config.s3 == S3Backend::Moto {
                bail!(
                    "--target rest cannot use moto: pyarrow's S3 client (pyiceberg's reads and \
                     writes) fails on its multipart uploads; use s3s-fs or minio"
                );
            }
            Ok(Target::Rest(config))
        } else if let Some(option) = self.service_options.first() {
            let flag = option.split('=').next().unwrap_or(option);
            bail!("{flag} configures the services, so it goes with --target rest only");
        } else {
            Ok(Target::Embedded)
        }
    }
}

fn positive<T: std::str::FromStr + Default + PartialOrd>(flag: &str, text: &str) -> Result<T> {
    match text.parse::<T>() {
        Ok(number) if number > T::default() => Ok(number),
        _ => bail!("{flag}: {text:?} is not a positive whole number"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(options: &[&str]) -> Result<BenchOptions> {
        parse_options(options, &no_env)
    }

    #[test]
    fn options_default_to_the_issue_data_set_and_every_mode() {
        let options = parse(&[]).unwrap();
        assert_eq!(options.files, 10);
        assert_eq!(options.rows, 1_000_000);
        assert_eq!(options.repeat, 1);
        assert_eq!(options.peer_dir, None);
        assert_eq!(
            options.modes,
            vec![Mode::Copy, Mode::Rewrite, Mode::Register, Mode::Partitioned]
        );
        assert_eq!(options.target, Target::Embedded);
        assert_eq!(options.compression, "zstd");
    }

    #[test]
    fn options_are_parsed_in_both_spellings() {
        let options = parse(&[
            "--files",
            "3",
            "--rows=100000",
            "--repeat",
            "5",
            "--peer-dir",
            "/opt/peer",
            "--mode",
            "register",
            "--target",
            "embedded",
            "--compression=snappy",
        ])
        .unwrap();
        assert_eq!(
            options,
            BenchOptions {
                files: 3,
                rows: 100_000,
                repeat: 5,
                peer_dir: Some(PathBuf::from("/opt/peer")),
                modes: vec![Mode::Register],
                target: Target::Embedded,
                compression: "snappy".to_string(),
            }
        );
    }

    #[test]
    fn target_rest_takes_the_services_configuration() {
        let options = parse(&["--target", "rest", "--files", "3"]).unwrap();
        assert_eq!(options.target, Target::Rest(ServicesConfig::default()));
        assert_eq!(options.target.name(), "rest");
        assert_eq!(options.files, 3);

        // The options of `services up` win over its variables, as there.
        let env = |name: &str| match name {
            "SLUICE_XTASK_REST_PORT" => Some("18181".to_string()),
            "SLUICE_XTASK_S3_PORT" => Some("19000".to_string()),
            _ => None,
        };
        let options = parse_options(
            &["--s3-port=29000", "--target=rest", "--timeout", "30"],
            &env,
        )
        .unwrap();
        let Target::Rest(config) = &options.target else {
            panic!("not the rest target: {:?}", options.target);
        };
        assert_eq!((config.s3_port, config.rest_port), (29000, 18181));
        assert_eq!(config.s3, S3Backend::S3sFs);
        assert_eq!(config.timeout, Duration::from_secs(30));
        assert_eq!(
            options.target.description(),
            "Iceberg REST catalog at http://127.0.0.1:18181, s3s-fs S3 at http://127.0.0.1:29000"
        );

        // The last --target counts; the variables do not matter for embedded.
        let options = parse_options(&["--target", "rest", "--target", "embedded"], &env).unwrap();
        assert_eq!(options.target, Target::Embedded);
    }

    #[test]
    fn bad_options_are_named() {
        let error = |args: &[&str]| parse(args).unwrap_err().to_string();
        assert!(error(&["--files", "0"]).contains("--files"));
        assert!(error(&["--rows", "-5"]).contains("\"-5\""));
        assert!(error(&["--repeat"]).contains("needs a value"));
        assert!(error(&["--mode", "append"]).contains("append"));
        assert!(error(&["--compression", "lzo"]).contains("\"lzo\""));
        assert_eq!(
            parse(&["--mode", "rewrite"]).unwrap().modes,
            vec![Mode::Rewrite]
        );
        assert!(error(&["--fast"]).contains("--fast"));

        let target = error(&["--target", "glue"]);
        assert!(target.contains("\"glue\" is not a target"), "{target}");
        assert!(
            target.contains("embedded") && target.contains("rest"),
            "{target}"
        );
        assert!(error(&["--target"]).contains("--target needs a value"));

        let services_only = error(&["--rest-port", "18181"]);
        assert!(
            services_only.contains("--rest-port configures the services"),
            "{services_only}"
        );
        assert!(error(&["--target", "rest", "--s3-port", "x"]).contains("\"x\""));
        let moto = error(&["--target", "rest", "--s3", "moto"]);
        assert!(moto.contains("cannot use moto"), "{moto}");
    }
}
