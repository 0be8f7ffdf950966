//! What the transaction engine runs to undo a run that did not publish: after a failure in
//! this process, or by `recover` after a crash. Registered by name, so that a run journalled
//! by an earlier version is undone the way it asked.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sluice_lake::{Lake, RefName, TableName};
use sluice_txn::{Registry, StepError};

use crate::pipeline::step_error;

/// Name of the compensation that deletes an audit branch (staged by earlier versions; still
/// run by `recover` for their runs).
pub const DELETE_BRANCH: &str = "delete-branch";
/// Name of the compensation that undoes a run that did not publish: its audit branch, its
/// snapshots and every file it wrote (see [`Lake::discard_run`]).
pub const DISCARD_RUN: &str = "discard-run";

/// Name of the compensation that finishes a snapshot expiry whose process died between its
/// commit and the deletion of the files (see [`Lake::finish_expiry`]); it does nothing when
/// the expiry did not commit.
pub const FINISH_EXPIRY: &str = "finish-expiry";

/// Name of the commit action that publishes one table of a job published table by table
/// (`atomic = false`): run once the job's transaction commits, and by `recover` when the
/// process died before every table was published (the job rolls forward).
pub const PUBLISH_TABLE: &str = "publish-table";

/// The compensations and commit actions of a WAP run, over `lake`.
pub(crate) fn registry(lake: &Arc<Lake>) -> Registry {
    let (branch_lake, discard_lake, publish_lake) = (lake.clone(), lake.clone(), lake.clone());
    let expiry_lake = lake.clone();
    Registry::new()
        .with_handler(FINISH_EXPIRY, move |payload| {
            let lake = expiry_lake.clone();
            async move { finish_expiry(&lake, &payload).await }
        })
        .with_handler(PUBLISH_TABLE, move |payload| {
            let lake = publish_lake.clone();
            async move { publish_table(&lake, &payload).await }
        })
        .with_handler(DELETE_BRANCH, move |payload| {
            let lake = branch_lake.clone();
            async move { delete_branch(&lake, &payload).await }
        })
        .with_handler(DISCARD_RUN, move |payload| {
            let lake = discard_lake.clone();
            async move { discard_run(&lake, &payload).await }
        })
}

/// What the `delete-branch` compensation is given (journalled when it was staged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeleteBranch {
    pub(crate) table: TableName,
    pub(crate) branch: String,
}

/// What the `discard-run` compensation is given (journalled before the run writes anything).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DiscardRun {
    pub(crate) table: TableName,
    /// The run's audit branch.
    pub(crate) branch: String,
    pub(crate) run_id: String,
    pub(crate) run_key: String,
}

impl DiscardRun {
    /// The payload to stage.
    pub(crate) fn to_payload(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// What the `publish-table` commit action is given: an audited branch of one table, and the
/// rebase of it staged on `main` when `main` had moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PublishTable {
    pub(crate) table: TableName,
    pub(crate) branch: String,
    pub(crate) staged: Option<i64>,
    pub(crate) run_key: String,
    pub(crate) files: Vec<String>,
}

/// The `publish-table` commit action: moves `main` to the audited branch (or its staged
/// rebase), deletes the branch and records the files in the ledger, in one commit. If `main`
/// moved again since the audit, the branch's appends are re-applied on top (appends only).
/// Idempotent: a table whose run key is in its ledger only loses its branch.
async fn publish_table(lake: &Lake, raw: &serde_json::Value) -> Result<(), StepError> {
    let PublishTable {
        table,
        branch,
        staged,
        run_key,
        files,
    } = payload(PUBLISH_TABLE, raw)?;
    let branch = branch_name(PUBLISH_TABLE, &branch)?;
    if lake
        .run_key_published(&table, &run_key)
        .await
        .map_err(step_error)?
    {
        lake.delete_ref_if_exists(&table, &branch)
            .await
            .map_err(step_error)?;
        return Ok(());
    }
    let entry = sluice_lake::LedgerEntry { run_key, files };
    let into_main = sluice_lake::RefMove::into_main(&branch);
    let result = match staged {
        Some(id) => {
            lake.publish_staged_and_delete(&table, id, into_main, Some(&entry))
                .await
        }
        None => {
            lake.fast_forward_and_delete(&table, into_main, Some(&entry))
                .await
        }
    };
    match result {
        Ok(_) => {}
        Err(
            sluice_lake::Error::CannotPublish { .. } | sluice_lake::Error::CommitConflict { .. },
        ) => {
            tracing::warn!(%table, "main moved after the audit; re-applying the audited appends on top");
            lake.publish_recording(&table, into_main, Default::default(), &entry)
                .await
                .map_err(step_error)?;
            lake.delete_ref_if_exists(&table, &branch)
                .await
                .map_err(step_error)?;
        }
        Err(e) => return Err(step_error(e)),
    }
    tracing::info!(%table, "published");
    crate::interrupt::pause_env("between-tables").await;
    Ok(())
}

/// The `finish-expiry` compensation: deletes the files of an expiry that committed.
async fn finish_expiry(lake: &Lake, raw: &serde_json::Value) -> Result<(), StepError> {
    let intent: sluice_lake::ExpiryIntent = payload(FINISH_EXPIRY, raw)?;
    match lake.finish_expiry(&intent).await.map_err(step_error)? {
        Some(done) => tracing::info!(
            table = %intent.table,
            manifest_lists = done.manifest_lists,
            manifests = done.manifests,
            data_files = done.data_files,
            "finished the deletes of an expiry that had committed"
        ),
        None => {
            tracing::info!(table = %intent.table, "the expiry had not committed; nothing to finish")
        }
    }
    Ok(())
}

/// A compensation's payload, or a permanent failure that names the compensation.
fn payload<T: serde::de::DeserializeOwned>(
    name: &str,
    payload: &serde_json::Value,
) -> Result<T, StepError> {
    serde_json::from_value(payload.clone())
        .map_err(|e| StepError::permanent(format!("bad {name} payload: {e}")))
}

fn branch_name(name: &str, branch: &str) -> Result<RefName, StepError> {
    RefName::new(branch).map_err(|e| StepError::permanent(format!("bad {name} payload: {e}")))
}

/// The `delete-branch` compensation: removes the audit branch if it is still there.
async fn delete_branch(lake: &Lake, raw: &serde_json::Value) -> Result<(), StepError> {
    let DeleteBranch { table, branch } = payload(DELETE_BRANCH, raw)?;
    let branch = branch_name(DELETE_BRANCH, &branch)?;
    let deleted = lake
        .delete_ref_if_exists(&table, &branch)
        .await
        .map_err(step_error)?;
    tracing::info!(%table, %branch, deleted, "audit branch removed");
    Ok(())
}

/// The `discard-run` compensation: unless the ledger shows that the run published (it may
/// have, if the process died between the publish commit and the journal's commit record),
/// deletes its branch, its snapshots and every file it wrote. Idempotent.
async fn discard_run(lake: &Lake, raw: &serde_json::Value) -> Result<(), StepError> {
    let DiscardRun {
        table,
        branch,
        run_id,
        run_key,
    } = payload(DISCARD_RUN, raw)?;
    let branch = branch_name(DISCARD_RUN, &branch)?;
    if lake
        .run_key_published(&table, &run_key)
        .await
        .map_err(step_error)?
    {
        // Published: the files are main's now. Only the branch may be left.
        let deleted = lake
            .delete_ref_if_exists(&table, &branch)
            .await
            .map_err(step_error)?;
        tracing::info!(%table, %branch, deleted, "run had published; nothing else to undo");
        return Ok(());
    }
    let discarded = lake
        .discard_run(&table, &branch, &run_id)
        .await
        .map_err(step_error)?;
    tracing::info!(
        %table,
        %branch,
        branch_deleted = discarded.branch_deleted,
        snapshots = discarded.snapshots_removed,
        files = discarded.files_deleted,
        "run discarded"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn payloads_read_what_was_journalled_or_say_what_is_wrong() {
        // The shape earlier versions journalled.
        let journalled = json!({
            "table": "ns.events", "branch": "sluice/r1", "run_id": "r1", "run_key": "k1"
        });
        let run: DiscardRun = payload(DISCARD_RUN, &journalled).unwrap();
        assert_eq!(run.table.to_string(), "ns.events");
        assert_eq!(run.branch, "sluice/r1");
        assert_eq!(run.to_payload(), journalled);

        let missing = json!({"table": "ns.events", "branch": "sluice/r1"});
        let err = payload::<DiscardRun>(DISCARD_RUN, &missing).unwrap_err();
        assert!(err.to_string().contains("bad discard-run payload"), "{err}");
        assert!(err.to_string().contains("run_id"), "{err}");

        let bad_table = json!({"table": "events", "branch": "sluice/r1"});
        let err = payload::<DeleteBranch>(DELETE_BRANCH, &bad_table).unwrap_err();
        assert!(
            err.to_string().contains("bad delete-branch payload"),
            "{err}"
        );
        assert!(!err.is_transient());
    }

    #[tokio::test]
    async fn discarding_a_run_of_a_missing_table_has_nothing_to_undo() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::connect(&sluice_lake::LakeConfig::embedded(dir.path()).unwrap())
            .await
            .unwrap();
        let payload = json!({
            "table": "ns.missing", "branch": "sluice/r1", "run_id": "r1", "run_key": "k1"
        });
        // A compensation tolerates "nothing to undo": it may run for a write that never happened.
        discard_run(&lake, &payload).await.unwrap();
        assert!(lake.list_tables(None).await.unwrap().is_empty());
        let bad = json!({"table": "ns.missing", "branch": "sluice/../main", "run_id": "r1", "run_key": "k1"});
        let err = discard_run(&lake, &bad).await.unwrap_err();
        assert!(err.to_string().contains("bad discard-run payload"), "{err}");
    }
}
