//! The ingest ledger (exactly-once across snapshot expiry by other engines) and the clean-up of
//! what a run that did not publish wrote.

use std::collections::BTreeSet;
use std::process::Command;

use crate::common::*;

/// Every file of the warehouse except the catalog's metadata files (each commit adds one, and
/// the metadata log refers to them all).
fn warehouse_files(env: &Env) -> BTreeSet<String> {
    walk(&env.path(".sluice/warehouse"))
        .into_iter()
        .map(|p| p.display().to_string())
        .filter(|p| !p.ends_with(".metadata.json"))
        .collect()
}

/// The newest metadata file of ns.events, as text.
fn current_metadata(env: &Env) -> String {
    let newest = walk(&env.path(".sluice/warehouse"))
        .into_iter()
        .filter(|p| p.display().to_string().ends_with(".metadata.json"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .expect("a metadata file");
    std::fs::read_to_string(newest).unwrap()
}

/// Expires every snapshot of ns.events that no ref points at, as routine maintenance by
/// pyiceberg does; prints how many snapshots are left.
const EXPIRE: &str = r#"
import sys, datetime
from pyiceberg.catalog.sql import SqlCatalog
cat = SqlCatalog("default", uri=f"sqlite:///{sys.argv[1]}", warehouse=sys.argv[2])
t = cat.load_table("ns.events")
t.maintenance.expire_snapshots().older_than(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)).commit()
print(len(cat.load_table("ns.events").metadata.snapshots))
"#;

fn expire_with_pyiceberg(env: &Env) -> usize {
    let dir = env.dir.path().canonicalize().unwrap();
    let out = Command::new("python3")
        .args(["-c", EXPIRE])
        .arg(dir.join(".sluice/catalog.db"))
        .arg(format!(
            "file://{}",
            dir.join(".sluice/warehouse").display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pyiceberg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn runs_interleaved_with_snapshot_expiry_by_pyiceberg_publish_each_file_once() {
    if !python_available("snapshot expiry", "pyiceberg.catalog.sql, pyarrow") {
        return;
    }
    let env = Env::new();
    for i in 0..3i64 {
        write(
            &env.path(&format!("raw/f{i}.parquet")),
            &events(i * 1000..(i + 1) * 1000, false),
        );
        let (code, report) = env.run("raw");
        assert_eq!(code, 0, "{report}");
        assert_eq!(report["status"], "published", "{report}");
        assert_eq!(report["files"].as_array().unwrap().len(), 1, "{report}");
    }
    assert_eq!(expire_with_pyiceberg(&env), 1, "only main's head is left");

    // The same source again: nothing new.
    let (code, report) = env.run("raw");
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["status"], "nothing_to_do", "{report}");

    // A new file among the old ones: only it is published, and expiry again in between.
    write(&env.path("raw/f3.parquet"), &events(3000..4000, false));
    let (code, report) = env.run("raw");
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        report["files"].as_array().unwrap().len(),
        1,
        "only the new file: {report}"
    );
    expire_with_pyiceberg(&env);
    write(&env.path("raw/f4.parquet"), &events(4000..5000, false));
    let (code, report) = env.run("raw");
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["files"].as_array().unwrap().len(), 1, "{report}");

    assert_eq!(env.event_ids("ns.events"), (0..5000).collect::<Vec<_>>());
}

#[test]
fn the_metadata_file_does_not_list_ingested_files() {
    let env = Env::new();
    for i in 0..3i64 {
        write(
            &env.path(&format!("raw/distinctive-name-{i}.parquet")),
            &events(i * 10..(i + 1) * 10, false),
        );
        assert_eq!(env.run("raw").0, 0);
    }
    let metadata = current_metadata(&env);
    assert!(
        !metadata.contains("distinctive-name-"),
        "the metadata file lists source files: {metadata}"
    );
    // It points at the ledger, which holds them.
    let md: serde_json::Value = serde_json::from_str(&metadata).unwrap();
    let root = md["properties"]["sluice.ingest-ledger"]
        .as_str()
        .expect("the ledger property")
        .trim_start_matches("file://")
        .to_string();
    let root_doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&root).unwrap()).unwrap();
    let mut held = String::new();
    for bucket in root_doc["buckets"].as_array().unwrap() {
        if let Some(b) = bucket.as_str() {
            held.push_str(&std::fs::read_to_string(b.trim_start_matches("file://")).unwrap());
        }
    }
    for i in 0..3 {
        assert!(
            held.contains(&format!("distinctive-name-{i}.parquet")),
            "{held}"
        );
    }
    // Superseded versions of the ledger are not left behind: one root file.
    let roots = walk(&env.path(".sluice/warehouse"))
        .into_iter()
        .filter(|p| p.display().to_string().ends_with(".root.json"))
        .count();
    assert_eq!(roots, 1);
}

#[test]
fn the_ledger_survives_losing_the_table_property_only_as_an_error() {
    let env = Env::new();
    write(&env.path("raw/a.parquet"), &events(0..10, false));
    assert_eq!(env.run("raw").0, 0);
    let metadata = current_metadata(&env);
    let md: serde_json::Value = serde_json::from_str(&metadata).unwrap();
    let root = md["properties"]["sluice.ingest-ledger"]
        .as_str()
        .unwrap()
        .trim_start_matches("file://")
        .to_string();
    // An orphan-file clean-up that does not know the ledger removes it.
    std::fs::remove_file(&root).unwrap();
    write(&env.path("raw/b.parquet"), &events(10..20, false));
    let out = env.sluice(&run_args("raw", &[]));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ingest ledger") && stderr.contains("ns.events") && stderr.contains(&root),
        "{stderr}"
    );
    // Nothing was ingested twice, nothing new was published.
    assert_eq!(env.event_ids("ns.events"), (0..10).collect::<Vec<_>>());
}

#[test]
fn a_rejected_run_leaves_no_file_behind_in_either_mode() {
    for mode in ["copy", "register"] {
        let env = Env::new();
        write(&env.path("seed/s.parquet"), &events(0..10, false));
        assert_eq!(env.json(&run_args("seed", &["--mode", mode])).0, 0);
        let before = warehouse_files(&env);

        write(&env.path("bad/b.parquet"), &events(100..200, true));
        let (code, report) = env.json(&run_args("bad", &["--mode", mode]));
        assert_eq!(code, 3, "{mode}: {report}");
        assert_eq!(report["status"], "audit_failed", "{mode}: {report}");

        assert_eq!(
            warehouse_files(&env),
            before,
            "{mode}: the rejected run's data files and manifests must be gone"
        );
        // The snapshot of the audit branch is gone from the metadata too.
        let metadata = current_metadata(&env);
        let run_id = report["run_id"].as_str().unwrap();
        assert!(!metadata.contains(run_id), "{mode}: {metadata}");
        // Register mode never deletes a source file.
        assert!(env.path("bad/b.parquet").exists(), "{mode}");
        assert!(env.path("seed/s.parquet").exists(), "{mode}");
        assert_eq!(env.event_ids("ns.events"), (0..10).collect::<Vec<_>>());
    }
}

#[test]
fn a_killed_run_leaves_no_file_behind_after_recover() {
    for point in ["write", "after-write", "publish"] {
        let env = Env::new();
        write(&env.path("seed/s.parquet"), &events(0..10, false));
        assert_eq!(env.run("seed").0, 0);
        let before = warehouse_files(&env);
        write_zstd(
            &env.path("raw/a.parquet"),
            &random_events(1000..1100, false),
        );
        write(&env.path("raw/b.parquet"), &events(2000..2050, false));
        crate::crash::kill_at(&env, point, "raw");
        assert_ne!(
            warehouse_files(&env),
            before,
            "{point}: the killed run had written files"
        );

        let (code, recovered) = env.json(&["recover", "--wait"]);
        assert_eq!(code, 0, "{point}: {recovered}");
        assert_eq!(
            warehouse_files(&env),
            before,
            "{point}: recover must delete what the killed run wrote"
        );
        // The files are ingested by the next run, exactly once.
        let (code, report) = env.run("raw");
        assert_eq!(code, 0, "{point}: {report}");
        let mut expected: Vec<i64> = (0..10).chain(1000..1100).chain(2000..2050).collect();
        expected.sort_unstable();
        assert_eq!(env.event_ids("ns.events"), expected, "{point}");
    }
}
