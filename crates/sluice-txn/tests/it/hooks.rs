//! Hook order, failure reporting, nesting, and what counts as a failure.

use std::time::Duration;

use serde_json::json;
use sluice_txn::{
    CancelToken, HookKind, HookState, Outcome, RetryPolicy, RunFilter, State, StepError, TxnState,
};

use crate::common::{Recorder, engine_in, label, run_txn, stage_compensations, steps_with_hooks};

#[tokio::test]
async fn compensations_run_lifo_and_commit_actions_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    let engine = engine_in(dir.path(), &rec);

    let committed = run_txn(&engine, "k-commit", async |tx| {
        steps_with_hooks(&tx, 1..=3).await?;
        Ok(json!("done"))
    })
    .await;
    assert_eq!(committed.state(), State::Completed);
    assert_eq!(rec.entries(), vec!["commit-1", "commit-2", "commit-3"]);

    let rec = Recorder::default();
    let engine = engine_in(dir.path(), &rec);
    let rolled_back = run_txn(&engine, "k-rollback", async |tx| {
        steps_with_hooks(&tx, 1..=3).await?;
        Err(StepError::permanent("audit failed"))
    })
    .await;
    match &rolled_back {
        Outcome::RolledBack { error, .. } => {
            assert!(error.message().contains("audit failed"), "{error}")
        }
        other => panic!("expected a rollback, got {other:?}"),
    }
    assert_eq!(rec.entries(), vec!["undo-3", "undo-2", "undo-1"]);
    let report = engine.show_run(rolled_back.run_id()).await.unwrap();
    assert_eq!(report.state, State::RolledBack);
    assert!(report.compensations().all(|h| h.state == HookState::Done));
    assert!(
        report
            .commit_actions()
            .all(|h| h.state == HookState::Discarded)
    );
}

#[tokio::test]
async fn a_flaky_compensation_is_retried_and_a_failing_one_fails_the_run_visibly() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    rec.fail("undo-1", 2);
    rec.fail("undo-2", u32::MAX);
    let engine = engine_in(dir.path(), &rec);
    let outcome = run_txn(&engine, "k", async |tx| {
        stage_compensations(&tx, &["undo-1", "undo-2", "undo-3"]).await?;
        Err(StepError::permanent("boom"))
    })
    .await;
    let Outcome::Failed {
        run_id,
        error,
        failed_hooks,
    } = outcome
    else {
        panic!("a compensation that keeps failing must fail the run, got {outcome:?}");
    };
    let said = error.message();
    assert!(
        said.contains("boom") && said.contains("undo-2 is unavailable"),
        "{error}"
    );
    assert_eq!(failed_hooks.len(), 1);
    assert_eq!(failed_hooks[0].payload, label("undo-2"));
    assert_eq!(failed_hooks[0].attempts, 4);
    assert!(
        failed_hooks[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("undo-2 is unavailable")
    );
    // undo-3 first, undo-2 gives up after 4 attempts, undo-1 still runs (after 2 failures).
    assert_eq!(
        rec.entries(),
        vec![
            "undo-3",
            "failed undo-2",
            "failed undo-2",
            "failed undo-2",
            "failed undo-2",
            "failed undo-1",
            "failed undo-1",
            "undo-1"
        ]
    );
    let report = engine.show_run(run_id).await.unwrap();
    assert_eq!(report.state, State::Failed);
    let states: Vec<HookState> = report.hooks.iter().map(|h| h.state).collect();
    assert_eq!(
        states,
        vec![HookState::Done, HookState::Failed, HookState::Done]
    );
    let failed = engine
        .list_runs(&RunFilter::all().with_state(State::Failed))
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);

    // Once the cause is fixed, recover() finishes the rollback.
    rec.fail("undo-2", 0);
    let recovery = engine.recover().await.unwrap();
    assert_eq!(recovery.recovered.len(), 1);
    assert_eq!(recovery.recovered[0].state, State::RolledBack);
    assert_eq!(recovery.recovered[0].hooks_completed, 1);
    assert_eq!(rec.entries().last().unwrap(), "undo-2");
    assert_eq!(
        engine.show_run(run_id).await.unwrap().state,
        State::RolledBack
    );
}

#[tokio::test]
async fn a_step_that_fails_then_succeeds_on_retry_leaves_the_transaction_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    let engine = engine_in(dir.path(), &rec);
    let outcome = run_txn(&engine, "k", async |tx| {
        tx.stage_compensation("record", label("undo")).await?;
        let value = tx
            .step("flaky")
            .retry(RetryPolicy::new(3).with_base_delay(Duration::from_millis(1)))
            .run(async |step| {
                if step.attempt() == 1 {
                    Err(StepError::transient("throttled"))
                } else {
                    Ok(step.attempt() * 10)
                }
            })
            .await?;
        tx.stage_commit_action("record", label("publish")).await?;
        Ok(json!(value))
    })
    .await;
    assert_eq!(
        outcome,
        Outcome::Committed {
            run_id: outcome.run_id(),
            output: json!(20)
        }
    );
    assert_eq!(rec.entries(), vec!["publish"], "no compensation may run");
    let report = engine.show_run(outcome.run_id()).await.unwrap();
    assert_eq!(report.state, State::Completed);
    assert_eq!(report.steps[0].state, State::Completed);
    assert_eq!(report.steps[0].attempts, 2);
    assert_eq!(report.steps[0].errors.len(), 1);
    assert_eq!(report.steps[0].errors[0].error, "throttled");
    assert!(report.steps[0].errors[0].transient);
    assert_eq!(report.steps[0].output, Some(json!(20)));
}

#[tokio::test]
async fn permanent_errors_are_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(dir.path(), &Recorder::default());
    let outcome = run_txn(&engine, "k", async |tx| {
        tx.step("bad input")
            .retry(RetryPolicy::new(5).with_base_delay(Duration::from_millis(1)))
            .run(async |_| Err::<(), _>(StepError::permanent("schema drift")))
            .await?;
        Ok(json!(null))
    })
    .await;
    assert_eq!(outcome.state(), State::RolledBack);
    let report = engine.show_run(outcome.run_id()).await.unwrap();
    assert_eq!(report.steps[0].attempts, 1);
    assert_eq!(report.steps[0].state, State::Failed);
    assert!(report.error.unwrap().contains("schema drift"));
}

#[tokio::test]
async fn a_commit_action_that_keeps_failing_is_finished_by_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    rec.fail("second", u32::MAX);
    let engine = engine_in(dir.path(), &rec);
    let outcome = run_txn(&engine, "k", async |tx| {
        tx.stage_compensation("record", label("undo")).await?;
        for l in ["first", "second", "third"] {
            tx.stage_commit_action("record", label(l)).await?;
        }
        Ok(json!(1))
    })
    .await;
    let Outcome::Failed { failed_hooks, .. } = &outcome else {
        panic!("expected Failed, got {outcome:?}");
    };
    assert_eq!(failed_hooks[0].payload, label("second"));
    // The commit was decided: nothing is compensated, and "third" waits for "second".
    assert_eq!(
        rec.entries()
            .iter()
            .filter(|e| !e.starts_with("failed"))
            .collect::<Vec<_>>(),
        vec!["first"]
    );
    rec.fail("second", 1);
    let recovery = engine.recover().await.unwrap();
    assert_eq!(recovery.recovered[0].state, State::Completed);
    let done: Vec<String> = rec
        .entries()
        .into_iter()
        .filter(|e| !e.starts_with("failed"))
        .collect();
    assert_eq!(done, vec!["first", "second", "third"]);
    let report = engine.show_run(outcome.run_id()).await.unwrap();
    assert_eq!(report.state, State::Completed);
    assert_eq!(report.output, Some(json!(1)));
    assert!(report.commit_actions().all(|h| h.state == HookState::Done));
    assert_eq!(
        report.compensations().next().unwrap().state,
        HookState::Discarded
    );
    // Nothing left: a second recovery does nothing.
    assert!(engine.recover().await.unwrap().recovered.is_empty());
}

#[tokio::test]
async fn nested_transactions_commit_into_their_parent() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    let engine = engine_in(dir.path(), &rec);
    let outcome = run_txn(&engine, "k", async |tx| {
        tx.stage_compensation("record", label("undo-parent-1"))
            .await?;
        tx.nested("child-ok", async |child| {
            child
                .stage_compensation("record", label("undo-child-ok"))
                .await?;
            child
                .stage_commit_action("record", label("commit-child-ok"))
                .await?;
            Ok(json!(null))
        })
        .await?;
        let failed = tx
            .nested("child-bad", async |child| {
                child
                    .stage_compensation("record", label("undo-child-bad"))
                    .await?;
                child
                    .stage_commit_action("record", label("commit-child-bad"))
                    .await?;
                Err(StepError::permanent("child failed"))
            })
            .await;
        assert!(failed.unwrap_err().message().contains("child failed"));
        // The failed child was compensated at once; the parent carries on.
        tx.stage_compensation("record", label("undo-parent-2"))
            .await?;
        Err(StepError::permanent("parent failed later"))
    })
    .await;
    assert_eq!(outcome.state(), State::RolledBack);
    assert_eq!(
        rec.entries(),
        vec![
            "undo-child-bad",
            "undo-parent-2",
            "undo-child-ok",
            "undo-parent-1"
        ]
    );
    let report = engine.show_run(outcome.run_id()).await.unwrap();
    let txns: Vec<(String, TxnState)> = report
        .transactions
        .iter()
        .map(|t| (t.name.clone(), t.state))
        .collect();
    assert_eq!(
        txns,
        vec![
            ("k".to_string(), TxnState::RolledBack),
            ("child-ok".to_string(), TxnState::Committed),
            ("child-bad".to_string(), TxnState::RolledBack),
        ]
    );

    // When the parent commits, only the committed child's commit actions run.
    let rec = Recorder::default();
    let engine = engine_in(dir.path(), &rec);
    let outcome = run_txn(&engine, "k2", async |tx| {
        tx.nested("a", async |c| {
            c.stage_commit_action("record", label("commit-a")).await?;
            Ok(json!(null))
        })
        .await?;
        let _ = tx
            .nested("b", async |c| {
                c.stage_commit_action("record", label("commit-b")).await?;
                Err(StepError::permanent("no"))
            })
            .await;
        tx.stage_commit_action("record", label("commit-top"))
            .await?;
        Ok(json!(null))
    })
    .await;
    assert_eq!(outcome.state(), State::Completed);
    assert_eq!(rec.entries(), vec!["commit-a", "commit-top"]);
}

#[tokio::test]
async fn panics_timeouts_and_cancellation_roll_back() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    let engine = engine_in(dir.path(), &rec);

    let panicked = run_txn(&engine, "panic", async |tx| {
        tx.stage_compensation("record", label("undo-panic")).await?;
        tx.step("explodes")
            .run(async |_| -> Result<(), StepError> { panic!("kaboom") })
            .await?;
        Ok(json!(null))
    })
    .await;
    match &panicked {
        Outcome::RolledBack { error, .. } => assert!(error.message().contains("kaboom"), "{error}"),
        other => panic!("{other:?}"),
    }

    let timed_out = run_txn(&engine, "timeout", async |tx| {
        tx.stage_compensation("record", label("undo-timeout"))
            .await?;
        tx.step("hangs")
            .retry(
                RetryPolicy::new(2)
                    .with_base_delay(Duration::from_millis(1))
                    .with_attempt_timeout(Duration::from_millis(20)),
            )
            .run(async |_| {
                std::future::pending::<()>().await;
                Ok(())
            })
            .await?;
        Ok(json!(null))
    })
    .await;
    assert_eq!(timed_out.state(), State::RolledBack);
    let report = engine.show_run(timed_out.run_id()).await.unwrap();
    assert_eq!(
        report.steps[0].attempts, 2,
        "a timed-out attempt is transient and retried"
    );
    assert!(report.steps[0].errors[0].error.contains("timed out"));

    let token = CancelToken::new();
    let canceller = token.clone();
    let cancelled = engine
        .transaction("cancel")
        .cancel_token(token)
        .run(async |tx| {
            tx.stage_compensation("record", label("undo-cancel"))
                .await?;
            canceller.cancel();
            std::future::pending::<()>().await;
            Ok(json!(null))
        })
        .await
        .unwrap();
    match &cancelled {
        Outcome::RolledBack { error, .. } => {
            assert!(error.message().contains("cancelled"), "{error}")
        }
        other => panic!("{other:?}"),
    }

    let whole = engine
        .transaction("whole-timeout")
        .timeout(Duration::from_millis(20))
        .run(async |tx| {
            tx.stage_compensation("record", label("undo-whole")).await?;
            std::future::pending::<()>().await;
            Ok(json!(null))
        })
        .await
        .unwrap();
    assert_eq!(whole.state(), State::RolledBack);
    assert_eq!(
        rec.entries(),
        vec!["undo-panic", "undo-timeout", "undo-cancel", "undo-whole"]
    );
}

#[tokio::test]
async fn history_lists_newest_first_with_filters_and_shows_details() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    let engine = engine_in(dir.path(), &rec);
    let mut ids = Vec::new();
    for (i, fail) in [false, true, false].into_iter().enumerate() {
        let outcome = engine
            .transaction(format!("key-{i}"))
            .name(if i == 1 { "backfill" } else { "ingest" })
            .params(json!({ "n": i }))
            .run(async |tx| {
                tx.step("write")
                    .run(async |s| {
                        s.stage_compensation("record", label("undo")).await?;
                        Ok(())
                    })
                    .await?;
                if fail {
                    Err(StepError::permanent("bad"))
                } else {
                    Ok(json!(i))
                }
            })
            .await
            .unwrap();
        ids.push(outcome.run_id());
    }
    let all = engine.list_runs(&RunFilter::all()).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.run_id).collect::<Vec<_>>(),
        vec![ids[2], ids[1], ids[0]]
    );
    let ingest = engine
        .list_runs(&RunFilter::all().with_name("ingest"))
        .await
        .unwrap();
    assert_eq!(
        ingest.iter().map(|r| r.run_id).collect::<Vec<_>>(),
        vec![ids[2], ids[0]]
    );
    let newest = engine
        .list_runs(&RunFilter::all().with_limit(1))
        .await
        .unwrap();
    assert_eq!(newest[0].run_id, ids[2]);
    let rolled = engine
        .list_runs(&RunFilter::all().with_state(State::RolledBack))
        .await
        .unwrap();
    assert_eq!(rolled.len(), 1);
    assert_eq!(rolled[0].name, "backfill");

    let shown = engine.show_run(ids[1]).await.unwrap();
    assert_eq!(shown.params, json!({ "n": 1 }));
    assert_eq!(shown.key, "key-1");
    assert!(shown.ended_at.unwrap() >= shown.started_at);
    assert_eq!(shown.steps.len(), 1);
    assert_eq!(shown.hooks[0].kind, HookKind::Compensation);
    assert_eq!(shown.hooks[0].state, HookState::Done);
    assert!(matches!(
        engine.show_run(uuid::Uuid::now_v7()).await,
        Err(sluice_txn::Error::RunNotFound { .. })
    ));
}

/// The error a step failed with reaches the outcome as a value the caller can match, through
/// the step's retries and the rollback.
#[tokio::test]
async fn the_outcome_keeps_the_error_the_failing_step_returned() {
    #[derive(Debug, PartialEq)]
    struct BadFile {
        path: String,
    }
    impl std::fmt::Display for BadFile {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot read {}", self.path)
        }
    }
    impl std::error::Error for BadFile {}

    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    let engine = engine_in(dir.path(), &rec);
    let outcome = run_txn(&engine, "k-typed", async |tx| {
        tx.step("write")
            .run(async |step| {
                step.stage_compensation("record", label("undo")).await?;
                Err::<(), _>(StepError::permanent_cause(BadFile {
                    path: "a.parquet".into(),
                }))
            })
            .await?;
        Ok(serde_json::Value::Null)
    })
    .await;
    let Outcome::RolledBack { error, .. } = &outcome else {
        panic!("expected a rollback, got {outcome:?}");
    };
    assert_eq!(
        error.downcast_ref::<BadFile>(),
        Some(&BadFile {
            path: "a.parquet".into()
        })
    );
    // The cause comes first; one attempt is not worth a mention.
    assert_eq!(error.message(), "cannot read a.parquet", "{error}");
    assert!(error.downcast_ref::<std::io::Error>().is_none());
    assert_eq!(rec.entries(), vec!["undo"]);
}
