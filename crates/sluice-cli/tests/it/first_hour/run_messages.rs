//! What a run says when it fails, and who its commits name as their author.

use std::sync::Arc;

use super::*;

#[test]
fn a_partition_spec_that_differs_fails_even_with_nothing_new() {
    let env = Env::new();
    write(&env.path("raw/a.parquet"), &events(0..10, false));
    let partitioned = |by: &str| {
        env.sluice(&[
            "run",
            "--source",
            "raw",
            "--table",
            "ns.events",
            "--partition-by",
            by,
        ])
    };
    let out = partitioned("bucket(4, user_id)");
    assert!(out.status.success(), "{}", stderr(&out));
    // The same spec again: nothing new, nothing to say.
    let out = partitioned("bucket(4, user_id)");
    assert!(out.status.success(), "{}", stderr(&out));
    // Another spec: refused, showing both, although there is nothing new to write.
    let out = partitioned("truncate(10, event_id)");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(
            "table ns.events is partitioned by bucket(4, user_id), not by truncate(10, event_id)"
        ),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("nothing to do"));
    let (code, doc) = env.json(&[
        "run",
        "--source",
        "raw",
        "--table",
        "ns.events",
        "--partition-by",
        "event_id",
    ]);
    assert_eq!(code, 1);
    assert_eq!(doc["status"], "failed", "{doc}");
}

/// Events whose `amount` is a string (a producer that wrote it as text).
fn text_amounts(ids: std::ops::Range<i64>) -> arrow_array::RecordBatch {
    let schema = arrow_schema::Schema::new(vec![
        arrow_schema::Field::new("event_id", arrow_schema::DataType::Int64, true),
        arrow_schema::Field::new("amount", arrow_schema::DataType::LargeUtf8, true),
    ]);
    arrow_array::RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(arrow_array::Int64Array::from(
                ids.clone().collect::<Vec<_>>(),
            )),
            Arc::new(arrow_array::LargeStringArray::from(
                ids.map(|i| format!("{i}.00")).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

#[test]
fn failed_runs_say_the_cause_first_in_the_tables_types_and_what_became_of_the_table() {
    let env = seeded();
    write(&env.path("typed/t.parquet"), &text_amounts(10..20));
    let out = env.sluice(&["run", "--source", "typed", "--table", "ns.events"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("run failed in step write: schema of ")
            && err.contains("t.parquet does not match table ns.events: column `amount` is string in the file but double in the table (write it as double, or load the file into a table of its own)"),
        "{err}"
    );
    for noise in ["attempt", "LargeUtf8", "Float64", "step \""] {
        assert!(!err.contains(noise), "{noise:?} in {err}");
    }
    assert!(err.contains("main of ns.events is unchanged"), "{err}");

    // A new table whose files disagree is not created at all, and the run says so.
    write(&env.path("mixed/a.parquet"), &events(0..10, false));
    write(&env.path("mixed/b.parquet"), &text_amounts(10..20));
    let out = env.sluice(&["run", "--source", "mixed", "--table", "ns.bad2"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("table ns.bad2 was not created"), "{err}");
    assert!(!err.contains("main of ns.bad2"), "{err}");
    let (_, tables) = env.json(&["tables"]);
    assert!(!tables.to_string().contains("bad2"), "{tables}");

    // A new table whose first run fails its audit exists afterwards, without rows: said too.
    write(&env.path("nulls/n.parquet"), &events(0..10, true));
    let out = env.sluice(&[
        "run",
        "--source",
        "nulls",
        "--table",
        "ns.fresh",
        "--checks",
        "checks.toml",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("rolled back, table ns.fresh was created by this run and has no rows yet"),
        "{text}"
    );
}

#[test]
fn the_author_is_the_flag_the_config_the_user_or_the_host() {
    let env = seeded();
    let author_of_newest = |env: &Env| {
        let (_, log) = env.json(&["log", "ns.events", "--limit", "1"]);
        log[0]["author"].as_str().unwrap_or_default().to_string()
    };
    let run =
        |env: &Env, ids: std::ops::Range<i64>, configure: &dyn Fn(&mut std::process::Command)| {
            let dir = format!("more{}", ids.start);
            write(&env.path(&format!("{dir}/m.parquet")), &events(ids, false));
            let mut cmd = env.cmd();
            cmd.env_remove("USER")
                .env_remove("LOGNAME")
                .env_remove("SLUICE_AUTHOR")
                .args(["run", "--source", &dir, "--table", "ns.events"]);
            configure(&mut cmd);
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            author_of_newest(env)
        };
    // Without $USER: the system's name for the process's user, else the host; never empty.
    let fallback = run(&env, 10..20, &|_| {});
    assert!(!fallback.is_empty());
    let (_, whoami) = (0, std::process::Command::new("id").arg("-un").output());
    if let Ok(out) = whoami
        && out.status.success()
    {
        assert_eq!(fallback, String::from_utf8_lossy(&out.stdout).trim());
    }
    assert_eq!(
        run(&env, 20..30, &|c| {
            c.env("USER", "ana");
        }),
        "ana"
    );
    let config = std::fs::read_to_string(env.path("sluice.toml")).unwrap();
    std::fs::write(
        env.path("sluice.toml"),
        format!("{config}\n[run]\nauthor = \"etl-bot\"\n"),
    )
    .unwrap();
    assert_eq!(
        run(&env, 30..40, &|c| {
            c.env("USER", "ana");
        }),
        "etl-bot"
    );
    assert_eq!(
        run(&env, 40..50, &|c| {
            c.env("SLUICE_AUTHOR", "ci-job-17");
        }),
        "ci-job-17"
    );
    assert_eq!(
        run(&env, 50..60, &|c| {
            c.env("SLUICE_AUTHOR", "ci-job-17")
                .args(["--author", "dana"]);
        }),
        "dana"
    );
}

#[test]
fn values_only_in_hive_style_directories_are_named_in_a_warning() {
    let env = Env::new();
    // Spark's partitioned output: `country` is in the paths, not in the files.
    write(
        &env.path("spark/country=IT/part-00000.snappy.parquet"),
        &events(0..10, false),
    );
    write(
        &env.path("spark/country=DE/part-00000.snappy.parquet"),
        &events(10..20, false),
    );
    std::fs::write(env.path("spark/_SUCCESS"), b"").unwrap();
    let out = env.sluice(&run_args("spark", &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("`country` appears only in the source's directory names"),
        "{stderr}"
    );
    assert!(stderr.contains("country=DE/"), "{stderr}");
    assert_eq!(env.event_ids("ns.events"), (0..20).collect::<Vec<_>>());

    // Directories that name a column the files hold are not warned about.
    write(
        &env.path("by_type/event_type=view/part-00000.parquet"),
        &events(20..30, false),
    );
    let out = env.sluice(&run_args("by_type", &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("directory names"), "{stderr}");
}
