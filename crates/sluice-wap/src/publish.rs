//! The publish step: `main` fast-forwards to the audit branch, or, when `main` moved since
//! the branch was cut, the branch's appends are rebased onto it, audited again against the new
//! `main`, and only then published. Either way the branch is deleted and the run added to the
//! table's ingest ledger in the publish commit itself.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sluice_checks::AuditReport;
use sluice_lake::summary::{COMMIT_ID_PROPERTY, RUN_ID_PROPERTY};
use sluice_lake::{PublishKind, RebaseOptions, RefMove, RefName, RefSpec};
use sluice_txn::StepError;

use crate::audit::failing_checks;
use crate::options::RunOptions;
use crate::pipeline::{Pipeline, RunState, lock, step_error};
use crate::write::Written;

/// What the publish step did (journalled as the step's output).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Published {
    pub(crate) snapshot_id: i64,
    pub(crate) kind: PublishKind,
    pub(crate) audit: Option<AuditReport>,
}

impl Pipeline {
    /// Publishes the run's branch into `main`. Safe to retry: a run that already published
    /// (its key is in the ledger) only removes its branch.
    pub(crate) async fn publish(
        &self,
        options: &RunOptions,
        branch: &RefName,
        written: &Written,
        state: &Mutex<RunState>,
    ) -> Result<Published, StepError> {
        let lake = self.lake();
        let name = &options.table;
        let into_main = RefMove::into_main(branch);
        let ingested = written.ledger_entry();
        // A run that published before it crashed (or whose publish answer was lost) is
        // recognised by its run key in the ledger.
        if lake
            .run_key_published(name, &ingested.run_key)
            .await
            .map_err(step_error)?
        {
            lake.delete_ref_if_exists(name, branch)
                .await
                .map_err(step_error)?;
            if let Some(q) = &written.quarantine {
                lake.delete_ref_if_exists(&q.table, branch)
                    .await
                    .map_err(step_error)?;
            }
            let head = lake
                .resolve(name, &RefSpec::main())
                .await
                .map_err(step_error)?
                .snapshot_id
                .unwrap_or_default();
            return Ok(Published {
                snapshot_id: head,
                kind: PublishKind::UpToDate,
                audit: None,
            });
        }
        if let Some(q) = &written.quarantine {
            return self
                .publish_with_quarantine(options, branch, written, &q.table, state)
                .await;
        }
        match lake
            .fast_forward_and_delete(name, into_main, Some(&ingested))
            .await
        {
            Ok(outcome) => {
                return Ok(Published {
                    snapshot_id: outcome.snapshot_id,
                    kind: outcome.kind,
                    audit: None,
                });
            }
            Err(sluice_lake::Error::CannotPublish { .. }) => {}
            Err(e) => return Err(step_error(e)),
        }
        // main moved since the branch was cut. When no check looks past the new rows, the
        // audit still holds on top of any main: re-apply the appends there and move main in
        // one commit, which another writer can only make re-plan, not fail.
        let table_name = name.to_string();
        if !options
            .checks
            .as_ref()
            .is_some_and(|suite| suite.depends_on_table(&table_name))
        {
            let mut properties = written.properties.clone();
            properties.remove(COMMIT_ID_PROPERTY);
            let outcome = lake
                .rebase_and_delete(
                    name,
                    into_main,
                    RebaseOptions {
                        properties,
                        stage: false,
                    },
                    Some(&ingested),
                )
                .await
                .map_err(step_error)?;
            return Ok(Published {
                snapshot_id: outcome.snapshot_id,
                kind: PublishKind::Rebase,
                audit: None,
            });
        }
        // Otherwise re-apply our appends on top of it, audit the result against the new main,
        // and only then move main.
        let Staged {
            snapshot_id: staged,
            audit,
        } = self.stage_rebase(options, branch, written, state).await?;
        match lake
            .publish_staged_and_delete(name, staged, into_main, Some(&ingested))
            .await
        {
            Ok(outcome) => Ok(Published {
                snapshot_id: outcome.snapshot_id,
                kind: PublishKind::Rebase,
                audit,
            }),
            // main moved again: the step is retried (a new rebase).
            Err(e) => Err(step_error(e)),
        }
    }

    /// Publishes the table and its quarantine table in one atomic catalog commit: both
    /// `main`s move (the table's ledger records the run) or neither does. A `main` that moved
    /// since the branch was cut gets the branch's appends re-applied on top (the table's
    /// audited again), and the commit is tried again.
    async fn publish_with_quarantine(
        &self,
        options: &RunOptions,
        branch: &RefName,
        written: &Written,
        quarantine: &sluice_lake::TableName,
        state: &Mutex<RunState>,
    ) -> Result<Published, StepError> {
        let lake = self.lake();
        let name = &options.table;
        let ingested = written.ledger_entry();
        let (mut staged_main, mut staged_quarantine): (Option<Staged>, Option<i64>) = (None, None);
        for _ in 0..8 {
            let items = [
                sluice_lake::TablePublish {
                    table: name,
                    refs: RefMove::into_main(branch),
                    staged: staged_main.as_ref().map(|s| s.snapshot_id),
                    delete_source: true,
                    ingested: Some(&ingested),
                },
                sluice_lake::TablePublish {
                    table: quarantine,
                    refs: RefMove::into_main(branch),
                    staged: staged_quarantine,
                    delete_source: true,
                    ingested: None,
                },
            ];
            let moved = match lake.publish_many(&items).await {
                Ok(outcomes) => {
                    let main = &outcomes[0];
                    return Ok(Published {
                        snapshot_id: main.snapshot_id,
                        kind: if staged_main.is_some() {
                            PublishKind::Rebase
                        } else {
                            main.kind
                        },
                        audit: staged_main.and_then(|s| s.audit),
                    });
                }
                Err(
                    sluice_lake::Error::CannotPublish { table, .. }
                    | sluice_lake::Error::CommitConflict { table, .. },
                ) => table,
                Err(e) => return Err(step_error(e)),
            };
            if moved == quarantine.to_string() {
                // The rebased rows are still the run's: a rollback finds them by its id.
                let properties: HashMap<String, String> = written
                    .properties
                    .get(RUN_ID_PROPERTY)
                    .map(|id| (RUN_ID_PROPERTY.to_string(), id.clone()))
                    .into_iter()
                    .collect();
                let rebased = lake
                    .rebase_appends(
                        quarantine,
                        RefMove::into_main(branch),
                        RebaseOptions {
                            properties,
                            stage: true,
                        },
                    )
                    .await
                    .map_err(step_error)?;
                staged_quarantine = Some(rebased.snapshot_id);
            } else {
                staged_main = Some(self.stage_rebase(options, branch, written, state).await?);
            }
        }
        Err(StepError::transient(format!(
            "{name} and {quarantine} kept moving while publishing; try again"
        )))
    }

    /// Re-applies the run's appends on top of the moved `main` as a staged snapshot (main does
    /// not move yet) and runs the checks again against it. A failed re-audit is a permanent
    /// step error, with the report kept in `state`.
    pub(crate) async fn stage_rebase(
        &self,
        options: &RunOptions,
        branch: &RefName,
        written: &Written,
        state: &Mutex<RunState>,
    ) -> Result<Staged, StepError> {
        let lake = self.lake();
        let ingested = written.ledger_entry();
        let mut properties = written.properties.clone();
        properties.remove(COMMIT_ID_PROPERTY);
        let staged = lake
            .rebase_appends(
                &options.table,
                RefMove::into_main(branch),
                RebaseOptions {
                    properties,
                    stage: true,
                },
            )
            .await
            .map_err(step_error)?;
        let mut audit = None;
        if let Some(suite) = &options.checks {
            let report = self
                .reaudit(options, suite, branch, &ingested.files, staged.parent_id)
                .await
                .map_err(step_error)?;
            // The sql checks see the rebased snapshot, the one main will point at.
            let report = self
                .audit_branch(options, branch, staged.snapshot_id, Some(&report))
                .await
                .map_err(step_error)?
                .unwrap_or(report);
            if !report.publishable() {
                let failing = failing_checks(&report);
                lock(state).audit_failed = Some(report);
                let run_id = written
                    .properties
                    .get(RUN_ID_PROPERTY)
                    .cloned()
                    .unwrap_or_default();
                self.keep_failed(options, branch, &run_id, state).await;
                return Err(StepError::permanent(format!(
                    "audit of {} failed after rebasing onto the new main: {failing}",
                    options.table
                )));
            }
            audit = Some(report);
        }
        Ok(Staged {
            snapshot_id: staged.snapshot_id,
            audit,
        })
    }
}

/// A rebase staged on the moved `main`, audited.
pub(crate) struct Staged {
    pub(crate) snapshot_id: i64,
    pub(crate) audit: Option<AuditReport>,
}
