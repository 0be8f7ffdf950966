//! A committed key is skipped; a rolled-back key runs again.

use serde_json::json;
use sluice_txn::{Isolation, Outcome, State, StepError};

use crate::common::{Recorder, engine_in, label};

#[tokio::test]
async fn a_committed_key_is_skipped_with_its_recorded_output() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    let engine = engine_in(dir.path(), &rec);
    let mut bodies_run = 0;
    let first = engine
        .transaction("sha256:abc")
        .run(async |tx| {
            bodies_run += 1;
            tx.stage_commit_action("record", label("published")).await?;
            Ok(json!({"rows": 7}))
        })
        .await
        .unwrap();
    assert_eq!(first.state(), State::Completed);
    for isolation in [Isolation::Serializable, Isolation::ReadCommitted] {
        let again = engine
            .transaction("sha256:abc")
            .isolation(isolation)
            .run(async |_| {
                bodies_run += 1;
                Ok(json!("must not run"))
            })
            .await
            .unwrap();
        match &again {
            Outcome::Skipped {
                committed_run,
                output,
                run_id,
            } => {
                assert_eq!(*committed_run, first.run_id());
                assert_eq!(*output, json!({"rows": 7}));
                assert_ne!(*run_id, first.run_id());
            }
            other => panic!("expected Skipped, got {other:?}"),
        }
        let report = engine.show_run(again.run_id()).await.unwrap();
        assert_eq!(report.state, State::Skipped);
        assert_eq!(report.committed_run, Some(first.run_id()));
    }
    assert_eq!(bodies_run, 1);
    assert_eq!(rec.entries(), vec!["published"], "commit actions ran once");
    // A different key runs.
    let other = engine
        .transaction("sha256:def")
        .run(async |_| Ok(json!(2)))
        .await
        .unwrap();
    assert_eq!(other.state(), State::Completed);
}

#[tokio::test]
async fn a_rolled_back_key_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    let engine = engine_in(dir.path(), &rec);
    let mut attempts = 0;
    for expected in [
        State::RolledBack,
        State::RolledBack,
        State::Completed,
        State::Skipped,
    ] {
        let outcome = engine
            .transaction("key")
            .run(async |tx| {
                attempts += 1;
                tx.stage_compensation("record", label(&format!("undo-{attempts}")))
                    .await?;
                if attempts < 3 {
                    Err(StepError::permanent("source not ready"))
                } else {
                    Ok(json!(attempts))
                }
            })
            .await
            .unwrap();
        assert_eq!(outcome.state(), expected);
    }
    assert_eq!(attempts, 3);
    assert_eq!(rec.entries(), vec!["undo-1", "undo-2"]);
}
