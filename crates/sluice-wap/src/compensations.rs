//! What the transaction engine runs to undo a run that did not publish: after a failure in
//! this process, or by `recover` after a crash. Registered by name, so that a run journalled
//! by an earlier version is undone the way it asked.

use std::sync::Arc;

use sluice_lake::{Lake, RefName, TableName};
use sluice_txn::{Registry, StepError};

use crate::pipeline::step_error;

/// Name of the compensation that deletes an audit branch (staged by earlier versions; still
/// run by `recover` for their runs).
pub const DELETE_BRANCH: &str = "delete-branch";
/// Name of the compensation that undoes a run that did not publish: its audit branch, its
/// snapshots and every file it wrote (see [`Lake::discard_run`]).
pub const DISCARD_RUN: &str = "discard-run";

/// The compensations of a WAP run, over `lake`.
pub(crate) fn registry(lake: &Arc<Lake>) -> Registry {
    let (branch_lake, discard_lake) = (lake.clone(), lake.clone());
    Registry::new()
        .with_handler(DELETE_BRANCH, move |payload| {
            let lake = branch_lake.clone();
            async move { delete_branch(&lake, &payload).await }
        })
        .with_handler(DISCARD_RUN, move |payload| {
            let lake = discard_lake.clone();
            async move { discard_run(&lake, &payload).await }
        })
}

/// A text field of a compensation's payload.
fn field(payload: &serde_json::Value, name: &str, key: &str) -> Result<String, StepError> {
    payload[key]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| StepError::permanent(format!("bad {name} payload: no `{key}`")))
}

/// The table and the branch a compensation's payload names.
fn table_and_branch(
    payload: &serde_json::Value,
    name: &str,
) -> Result<(TableName, RefName), StepError> {
    let bad = |e: &dyn std::fmt::Display| StepError::permanent(format!("bad {name} payload: {e}"));
    let table: TableName = field(payload, name, "table")?
        .parse()
        .map_err(|e| bad(&e))?;
    let branch = RefName::new(field(payload, name, "branch")?).map_err(|e| bad(&e))?;
    Ok((table, branch))
}

/// The `delete-branch` compensation: removes the audit branch if it is still there.
async fn delete_branch(lake: &Lake, payload: &serde_json::Value) -> Result<(), StepError> {
    let (table, branch) = table_and_branch(payload, DELETE_BRANCH)?;
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
async fn discard_run(lake: &Lake, payload: &serde_json::Value) -> Result<(), StepError> {
    let (table, branch) = table_and_branch(payload, DISCARD_RUN)?;
    let run_id = field(payload, DISCARD_RUN, "run_id")?;
    let run_key = field(payload, DISCARD_RUN, "run_key")?;
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
    fn a_payload_names_its_table_and_branch_or_says_what_is_missing() {
        let good = json!({"table": "ns.events", "branch": "sluice/r1"});
        let (table, branch) = table_and_branch(&good, DISCARD_RUN).unwrap();
        assert_eq!(table.to_string(), "ns.events");
        assert_eq!(branch.as_str(), "sluice/r1");

        let missing = json!({"table": "ns.events"});
        let err = table_and_branch(&missing, DISCARD_RUN).unwrap_err();
        assert!(err.to_string().contains("no `branch`"), "{err}");

        let bad_name = json!({"table": "events", "branch": "sluice/r1"});
        let err = table_and_branch(&bad_name, DELETE_BRANCH).unwrap_err();
        assert!(
            err.to_string().contains("bad delete-branch payload"),
            "{err}"
        );
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
        let payload = json!({"table": "ns.missing", "branch": "sluice/r1"});
        let err = discard_run(&lake, &payload).await.unwrap_err();
        assert!(err.to_string().contains("no `run_id`"), "{err}");
    }
}
