//! SQL over an embedded lake: refs in table names, joins across refs, pushdown, time travel
//! across a rename, and the errors a user sees.

use std::sync::Arc;

use arrow_array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use sluice_lake::{Lake, LakeConfig, RefName, RefSpec, TableName};
use sluice_sql::{DefaultRef, Error, SqlSession};
use sluice_testkit::batch;

struct TestLake {
    _dir: tempfile::TempDir,
    lake: Lake,
    table: TableName,
}

/// `ns.events` with ids 0..10 on main (one file), and a branch `audit` that adds 10..15.
async fn lake_with_branch() -> TestLake {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::connect(&LakeConfig::embedded(dir.path()).unwrap())
        .await
        .unwrap();
    let table: TableName = "ns.events".parse().unwrap();
    lake.create_table(&table, &sluice_testkit::schema())
        .await
        .unwrap();
    lake.append_batches(
        &table,
        &RefName::main(),
        &[batch(0..10)],
        Default::default(),
    )
    .await
    .unwrap();
    let audit = RefName::new("audit").unwrap();
    lake.create_branch(&table, &audit, &RefSpec::main())
        .await
        .unwrap();
    lake.append_batches(&table, &audit, &[batch(10..15)], Default::default())
        .await
        .unwrap();
    TestLake {
        _dir: dir,
        lake,
        table,
    }
}

async fn rows(session: &SqlSession<'_>, sql: &str) -> Vec<RecordBatch> {
    session
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn int64s(batches: &[RecordBatch], column: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for b in batches {
        let c = b.column_by_name(column).unwrap();
        let c = c.as_any().downcast_ref::<Int64Array>().unwrap();
        out.extend(c.iter().flatten());
    }
    out
}

fn one_int(batches: &[RecordBatch]) -> i64 {
    let b = batches.iter().find(|b| b.num_rows() > 0).unwrap();
    b.column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0)
}

fn plan_text(batches: &[RecordBatch]) -> String {
    let mut out = String::new();
    for b in batches {
        let plans = b.column_by_name("plan").unwrap();
        let plans = plans.as_any().downcast_ref::<StringArray>().unwrap();
        for p in plans.iter().flatten() {
            out.push_str(p);
            out.push('\n');
        }
    }
    out
}

#[tokio::test]
async fn each_ref_form_reads_its_own_rows() {
    let t = lake_with_branch().await;
    let session = SqlSession::new(&t.lake);
    let main_id = t.lake.list_refs(&t.table).await.unwrap();
    let main_id = main_id
        .iter()
        .find(|r| r.name == "main")
        .unwrap()
        .snapshot_id;

    for (sql, expected) in [
        ("SELECT count(*) FROM ns.events", 10),
        ("SELECT count(*) FROM ns.\"events@main\"", 10),
        ("SELECT count(*) FROM ns.\"events@audit\"", 15),
        ("SELECT count(*) FROM \"ns.events@audit\"", 15),
        (
            &*format!("SELECT count(*) FROM ns.\"events@{main_id}\""),
            10,
        ),
        (
            "SELECT count(*) FROM ns.\"events@audit@2000-01-01T00:00:00Z\"",
            -1,
        ),
    ] {
        if expected < 0 {
            // Before the table existed: a clear error naming the ref.
            let error = session.sql(sql).await.unwrap_err().to_string();
            assert!(error.contains("audit@2000-01-01"), "{error}");
            continue;
        }
        assert_eq!(one_int(&rows(&session, sql).await), expected, "{sql}");
    }
}

#[tokio::test]
async fn a_join_of_main_and_a_branch_finds_the_rows_the_branch_adds() {
    let t = lake_with_branch().await;
    let session = SqlSession::new(&t.lake);
    let batches = rows(
        &session,
        "SELECT b.id FROM ns.\"events@audit\" b \
         LEFT JOIN ns.events m ON b.id = m.id \
         WHERE m.id IS NULL ORDER BY b.id",
    )
    .await;
    assert_eq!(int64s(&batches, "id"), (10..15).collect::<Vec<_>>());

    let sums = rows(
        &session,
        "SELECT (SELECT sum(amount) FROM ns.\"events@audit\") - (SELECT sum(amount) FROM ns.events) AS added",
    )
    .await;
    let added = sums[0]
        .column(0)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap()
        .value(0);
    assert_eq!(added, sluice_testkit::expected_sum(10..15));
}

#[tokio::test]
async fn filters_prune_files_and_explain_shows_it() {
    let t = lake_with_branch().await;
    // Two more files on main, with ids far from the first file's.
    for ids in [100..110, 200..210] {
        t.lake
            .append_batches(
                &t.table,
                &RefName::main(),
                &[batch(ids)],
                Default::default(),
            )
            .await
            .unwrap();
    }
    let session = SqlSession::new(&t.lake);
    let plan = plan_text(
        &rows(
            &session,
            "EXPLAIN SELECT name FROM ns.events WHERE id >= 200 AND id < 205",
        )
        .await,
    );
    assert!(
        plan.contains("SluiceScan: ns.events@main snapshot="),
        "{plan}"
    );
    assert!(plan.contains("files=1 of 3"), "{plan}");
    assert!(
        plan.contains("predicate=[(id >= 200) AND (id < 205)]"),
        "{plan}"
    );
    assert!(
        plan.contains("columns=[name, id]") || plan.contains("columns=[id, name]"),
        "{plan}"
    );

    let batches = rows(
        &session,
        "SELECT id FROM ns.events WHERE id >= 200 AND id < 205 ORDER BY id",
    )
    .await;
    assert_eq!(int64s(&batches, "id"), vec![200, 201, 202, 203, 204]);
    // A filter Iceberg cannot use still filters rows.
    let odd = rows(&session, "SELECT count(*) FROM ns.events WHERE id % 2 = 1").await;
    assert_eq!(one_int(&odd), 15);
}

#[tokio::test]
async fn an_old_ref_reads_the_column_under_its_old_name() {
    let t = lake_with_branch().await;
    t.lake
        .create_tag(
            &t.table,
            &RefName::new("before-rename").unwrap(),
            &RefSpec::main(),
        )
        .await
        .unwrap();
    t.lake
        .rename_column(&t.table, "amount", "price")
        .await
        .unwrap();
    let renamed = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("price", DataType::Float64, true),
    ]));
    let more = RecordBatch::try_new(renamed, batch(50..52).columns().to_vec()).unwrap();
    t.lake
        .append_batches(&t.table, &RefName::main(), &[more], Default::default())
        .await
        .unwrap();

    let session = SqlSession::new(&t.lake);
    let old = rows(
        &session,
        "SELECT sum(amount) AS s FROM ns.\"events@before-rename\"",
    )
    .await;
    let old_sum = old[0]
        .column(0)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap()
        .value(0);
    assert_eq!(old_sum, sluice_testkit::expected_sum(0..10));
    let now = rows(&session, "SELECT sum(price) AS s FROM ns.events").await;
    let now_sum = now[0]
        .column(0)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap()
        .value(0);
    assert_eq!(now_sum, sluice_testkit::expected_sum((0..10).chain(50..52)));

    let error = session
        .sql("SELECT price FROM ns.\"events@before-rename\"")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("price"), "{error}");
}

#[tokio::test]
async fn tables_without_a_ref_read_the_default_branch_where_they_have_it() {
    let t = lake_with_branch().await;
    let other: TableName = "ns.users".parse().unwrap();
    t.lake
        .create_table(&other, &sluice_testkit::schema())
        .await
        .unwrap();
    t.lake
        .append_batches(&other, &RefName::main(), &[batch(0..3)], Default::default())
        .await
        .unwrap();
    let session =
        SqlSession::new(&t.lake).with_default_ref(DefaultRef::BranchOrMain("audit".into()));
    assert_eq!(
        one_int(&rows(&session, "SELECT count(*) FROM ns.events").await),
        15
    );
    assert_eq!(
        one_int(&rows(&session, "SELECT count(*) FROM ns.users").await),
        3
    );
}

#[tokio::test]
async fn a_table_without_snapshots_has_no_rows_and_the_right_columns() {
    let t = lake_with_branch().await;
    let empty: TableName = "ns.empty".parse().unwrap();
    t.lake
        .create_table(&empty, &sluice_testkit::schema())
        .await
        .unwrap();
    let session = SqlSession::new(&t.lake);
    let batches = rows(&session, "SELECT id, name FROM ns.empty").await;
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 0);
    assert_eq!(
        one_int(&rows(&session, "SELECT count(*) FROM ns.empty").await),
        0
    );
}

#[tokio::test]
async fn errors_name_the_table_the_ref_or_the_parser_position() {
    let t = lake_with_branch().await;
    let session = SqlSession::new(&t.lake);

    let missing = session.sql("SELECT * FROM ns.nope").await.unwrap_err();
    assert!(matches!(missing, Error::Lake(_)), "{missing:?}");
    assert!(missing.to_string().contains("ns.nope"), "{missing}");

    let no_ref = session
        .sql("SELECT * FROM ns.\"events@nightly\"")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        no_ref.contains("nightly") && no_ref.contains("audit"),
        "{no_ref}"
    );

    let parse = session.sql("SELEC id FROM ns.events").await.unwrap_err();
    assert!(matches!(parse, Error::Parse { .. }), "{parse:?}");
    assert!(parse.to_string().contains("SELEC"), "{parse}");

    let column = session
        .sql("SELECT nope FROM ns.events")
        .await
        .unwrap_err()
        .to_string();
    assert!(column.contains("nope"), "{column}");

    for statement in [
        "CREATE TABLE x AS SELECT 1",
        "DROP TABLE ns.events",
        "INSERT INTO ns.events VALUES (1, 'a', 1.0)",
        "COPY (SELECT 1) TO '/tmp/x.csv'",
    ] {
        let refused = session.sql(statement).await.unwrap_err();
        assert!(
            matches!(refused, Error::NotAQuery { .. }),
            "{statement}: {refused:?}"
        );
    }
    // Nothing was created or changed.
    assert_eq!(
        one_int(&rows(&session, "SELECT count(*) FROM ns.events").await),
        10
    );
}

#[tokio::test]
async fn a_registered_alias_and_plain_datafusion_work_together() {
    let t = lake_with_branch().await;
    let session = SqlSession::new(&t.lake);
    session
        .register("audit", &t.table, &RefSpec::parse("audit").unwrap())
        .await
        .unwrap();
    let frame = session
        .context()
        .sql("SELECT max(id) FROM audit")
        .await
        .unwrap();
    let batches = frame.collect().await.unwrap();
    assert_eq!(one_int(&batches), 14);
    let names = batches[0].column(0).data_type().clone();
    assert_eq!(names, DataType::Int64);
}

#[tokio::test]
async fn a_rounding_cast_in_a_filter_loses_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::connect(&LakeConfig::embedded(dir.path()).unwrap())
        .await
        .unwrap();
    let table: TableName = "ns.prices".parse().unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new(
        "amount",
        DataType::Float64,
        true,
    )]));
    lake.create_table(&table, &schema).await.unwrap();
    let values = RecordBatch::try_new(
        schema,
        vec![Arc::new(Float64Array::from(vec![
            4.5, 5.0, 5.25, 5.75, 6.5,
        ]))],
    )
    .unwrap();
    lake.append_batches(&table, &RefName::main(), &[values], Default::default())
        .await
        .unwrap();
    let session = SqlSession::new(&lake);
    // 5.0, 5.25 and 5.75 all truncate to 5.
    let batches = rows(
        &session,
        "SELECT count(*) FROM ns.prices WHERE CAST(amount AS BIGINT) = 5",
    )
    .await;
    assert_eq!(one_int(&batches), 3);
}
